//! Exact money: integer micro-units (1e-6), formatted once, half-up, to 4 places.
//!
//! No binary float ever holds an amount. Deck rates carry up to 6 decimals, so micro-units
//! hold them exactly; every amount that leaves the engine is a multiple of 100 micros.

use crate::pystr::py_strip;

pub const MICROS_PER_UNIT: i128 = 1_000_000;
/// One unit of the 4th decimal place.
pub const MICROS_PER_CENTI_CENT: i128 = 100;
/// Whole parts longer than this are refused, so every amount and product stays in i128.
pub const MAX_WHOLE_DIGITS: usize = 18;
/// The largest whole part of an amount in a command: a JSON integer's largest value.
pub const MAX_COMMAND_UNITS: i128 = u64::MAX as i128;

/// A text that is not an exact decimal amount of the allowed precision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoneyError(pub String);

/// Parse `[+-]digits[.digits]` or `[+-].digits` (after Python's `strip()`) into signed
/// micro-units, refusing lost precision (more than `max_places` significant decimals) and
/// whole parts of more than 18 digits.
pub fn parse_decimal_micros(text: &str, max_places: u32) -> Result<i128, MoneyError> {
    parse_bounded(text, max_places, MAX_WHOLE_DIGITS, None)
}

/// An amount in an accounts command: the grammar of [`parse_decimal_micros`], with a whole
/// part up to [`MAX_COMMAND_UNITS`], the range a JSON integer amount has, so that `"N"` and
/// `N` are accepted alike.
pub fn parse_command_micros(text: &str, max_places: u32) -> Result<i128, MoneyError> {
    parse_bounded(text, max_places, 20, Some(MAX_COMMAND_UNITS))
}

fn parse_bounded(
    text: &str,
    max_places: u32,
    max_digits: usize,
    max_units: Option<i128>,
) -> Result<i128, MoneyError> {
    let t = py_strip(text);
    let not_decimal = || MoneyError(format!("{text:?} is not a decimal number"));
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (whole, frac) = match body.find('.') {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let has_dot = body.contains('.');
    let ok = if whole.is_empty() {
        has_dot && !frac.is_empty() && digits(frac)
    } else {
        digits(whole) && digits(frac)
    };
    if !ok {
        return Err(not_decimal());
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > max_digits {
        return Err(not_decimal());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > max_places as usize || frac.len() > 6 {
        return Err(MoneyError(format!(
            "{text:?} has more than {max_places} decimal places"
        )));
    }
    let mut micros: i128 = 0;
    for b in whole.bytes() {
        micros = micros * 10 + i128::from(b - b'0');
    }
    if max_units.is_some_and(|m| micros > m) {
        return Err(not_decimal());
    }
    micros *= MICROS_PER_UNIT;
    let mut scale = 100_000;
    for b in frac.bytes() {
        micros += i128::from(b - b'0') * scale;
        scale /= 10;
    }
    Ok(if negative { -micros } else { micros })
}

/// Integer division rounded half away from zero (half-up for amounts >= 0); `den` > 0.
pub fn div_round_half_up(num: i128, den: i128) -> i128 {
    let den = den.max(1);
    if num >= 0 {
        (2 * num + den) / (2 * den)
    } else {
        -((-2 * num + den) / (2 * den))
    }
}

/// Round an exact amount `x / den` micros to whole 1e-4 units, in micros.
pub fn round_micros_to_4dp(x: i128, den: i128) -> i128 {
    div_round_half_up(x, den * MICROS_PER_CENTI_CENT) * MICROS_PER_CENTI_CENT
}

/// Write a 4-place amount held in micros as `12.3400` (no quotes).
pub fn write_money(out: &mut Vec<u8>, micros: i128) {
    let centi = micros / MICROS_PER_CENTI_CENT;
    if centi < 0 {
        out.push(b'-');
    }
    let (whole, part) = crate::json::div_rem_u128(centi.unsigned_abs(), 10_000);
    crate::json::write_uint(out, whole);
    let part = part as u32;
    out.extend_from_slice(&[
        b'.',
        b'0' + (part / 1000) as u8,
        b'0' + (part / 100 % 10) as u8,
        b'0' + (part / 10 % 10) as u8,
        b'0' + (part % 10) as u8,
    ]);
}

pub fn format_money(micros: i128) -> String {
    let mut out = Vec::with_capacity(24);
    write_money(&mut out, micros);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_reference() {
        assert_eq!(parse_decimal_micros("0.06", 6), Ok(60_000));
        assert_eq!(parse_decimal_micros(" 1. ", 6), Ok(1_000_000));
        assert_eq!(parse_decimal_micros("-.5", 6), Ok(-500_000));
        assert_eq!(parse_decimal_micros("+2.1000000", 4), Ok(2_100_000));
        assert!(parse_decimal_micros("1.00001", 4).is_err());
        assert!(parse_decimal_micros(".", 6).is_err());
        assert!(parse_decimal_micros("1e3", 6).is_err());
        assert!(parse_decimal_micros("١", 6).is_err());
        assert!(parse_decimal_micros("", 6).is_err());
        assert!(parse_decimal_micros("1234567890123456789", 6).is_err());
    }

    #[test]
    fn command_amounts_reach_the_json_integer_range() {
        let max = "18446744073709551615";
        assert_eq!(
            parse_command_micros(max, 4),
            Ok(MAX_COMMAND_UNITS * MICROS_PER_UNIT)
        );
        assert_eq!(
            parse_command_micros(&format!("000{max}.9999"), 4),
            Ok(MAX_COMMAND_UNITS * MICROS_PER_UNIT + 999_900)
        );
        assert!(parse_command_micros("18446744073709551616", 4).is_err());
        assert!(parse_command_micros("123456789012345678901", 4).is_err());
        assert!(parse_command_micros("1.00001", 4).is_err());
    }

    #[test]
    fn rounds_half_up_once() {
        assert_eq!(div_round_half_up(5, 10), 1);
        assert_eq!(div_round_half_up(4, 10), 0);
        assert_eq!(div_round_half_up(-5, 10), -1);
        assert_eq!(round_micros_to_4dp(60 * 49, 60), 0);
        assert_eq!(round_micros_to_4dp(60 * 50, 60), 100);
        assert_eq!(round_micros_to_4dp(60 * 150, 60), 200);
    }

    #[test]
    fn formats_four_places() {
        assert_eq!(format_money(0), "0.0000");
        assert_eq!(format_money(12_340_000), "12.3400");
        assert_eq!(format_money(-500_000), "-0.5000");
        assert_eq!(format_money(100), "0.0001");
    }
}
