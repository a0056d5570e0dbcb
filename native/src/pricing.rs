//! Pricing a call (contracts.md section 2): increments, connection fee, one half-up rounding.

use crate::clock::{Instant, US_PER_S};
use crate::deck::{Deck, Rate, Service};
use crate::money::round_micros_to_4dp;

/// The four kinds of call the contracts price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    UserOutbound,
    ConferenceDialout,
    TollfreeInbound,
    Inbound,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "user_outbound" => Some(Kind::UserOutbound),
            "conference_dialout" => Some(Kind::ConferenceDialout),
            "tollfree_inbound" => Some(Kind::TollfreeInbound),
            "inbound" => Some(Kind::Inbound),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::UserOutbound => "user_outbound",
            Kind::ConferenceDialout => "conference_dialout",
            Kind::TollfreeInbound => "tollfree_inbound",
            Kind::Inbound => "inbound",
        }
    }

    /// The deck service pricing this kind (None: inbound calls are free).
    pub fn service(self) -> Option<Service> {
        match self {
            Kind::UserOutbound | Kind::ConferenceDialout => Some(Service::Outbound),
            Kind::TollfreeInbound => Some(Service::TollfreeInbound),
            Kind::Inbound => None,
        }
    }
}

/// `+` and 8 to 15 ASCII digits.
pub fn is_e164(number: &str) -> bool {
    let b = number.as_bytes();
    b.first() == Some(&b'+') && (9..=16).contains(&b.len()) && b[1..].iter().all(u8::is_ascii_digit)
}

/// Whole seconds billed for a duration: 0 if none, the first increment, then whole next ones.
pub fn billed_seconds(duration: &Instant, first_s: i64, next_s: i64) -> i64 {
    if !duration.gt_us(0) {
        return 0;
    }
    let first_us = i128::from(first_s) * US_PER_S;
    if !duration.gt_us(first_us) {
        return first_s;
    }
    let step_us = i128::from(next_s.max(1)) * US_PER_S;
    // ceil((d - first) / step) on the exact duration
    let over = duration - first_us;
    let steps = -((-over.ceil_us()).div_euclid(step_us));
    let steps = i64::try_from(steps).unwrap_or(i64::MAX);
    first_s.saturating_add(steps.saturating_mul(next_s))
}

/// `fee + rate * billed / 60`, exact, rounded once half-up to 4 places (in micros).
pub fn price_micros(rate: &Rate, billed_s: i64, with_fee: bool) -> i128 {
    if billed_s <= 0 {
        return 0;
    }
    let fee = if with_fee { rate.fee_micros } else { 0 };
    round_micros_to_4dp(
        fee * 60 + rate.rate_micros_per_min * i128::from(billed_s),
        60,
    )
}

/// The deck row pricing a call of `kind`: outbound rows on `to`, toll-free inbound on `from`.
/// Both numbers are E.164 here (checked before).
pub fn rate_for<'d>(
    deck: &'d Deck,
    kind: Kind,
    from: &str,
    to: &str,
    at: &Instant,
) -> Option<&'d Rate> {
    let service = kind.service().unwrap_or(Service::Outbound);
    let number = if service == Service::TollfreeInbound {
        from
    } else {
        to
    };
    deck.lookup(service, number.get(1..).unwrap_or(""), at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigInt;
    use num_rational::BigRational;

    #[test]
    fn e164() {
        assert!(is_e164("+44207100000"));
        assert!(is_e164("+12345678"));
        assert!(!is_e164("+1234567"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("44207100000"));
        assert!(!is_e164("+4420710000a"));
        assert!(!is_e164("+٤٤٢٠٧١٠٠٠٠"));
    }

    #[test]
    fn increments() {
        let s = |x: i128| Instant::Us(x * US_PER_S);
        assert_eq!(billed_seconds(&s(0), 60, 60), 0);
        assert_eq!(billed_seconds(&Instant::Us(1), 60, 60), 60);
        assert_eq!(billed_seconds(&s(60), 60, 60), 60);
        assert_eq!(billed_seconds(&Instant::Us(60 * US_PER_S + 1), 60, 6), 66);
        assert_eq!(billed_seconds(&s(61), 30, 6), 66);
        let frac = Instant::from_ratio(BigRational::new(
            BigInt::from(60 * US_PER_S * 3 + 1),
            BigInt::from(3),
        ));
        assert_eq!(billed_seconds(&frac, 60, 1), 61);
    }
}
