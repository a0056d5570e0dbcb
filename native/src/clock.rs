//! Instants and durations as exact numbers of microseconds since the Unix epoch.
//!
//! An instant is a whole number of microseconds, or an exact rational when a pool shared by
//! n calls empties at a non-whole microsecond (R/n). Sums and comparisons stay exact; only
//! printing floors or rounds. Calendar arithmetic is proleptic Gregorian on integers; beyond
//! year 9999 (which no parsed input reaches, but a lot bought late in 9999 expires in 10000)
//! it simply goes on, printing as many year digits as needed, instead of failing.

use std::cmp::Ordering;
use std::ops::{Add, Sub};

use num_bigint::BigInt;
use num_integer::Integer;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

pub const US_PER_S: i128 = 1_000_000;
pub const US_PER_DAY: i128 = 86_400 * US_PER_S;

/// An exact instant (or duration) in microseconds. One form per value, so the derived
/// equality and hash are exact: `Us` when whole; `Q(n, d)`, n/d in lowest terms with d > 1,
/// when both fit machine integers (nearly every fraction the rules make: a pool's rest
/// shared by a few calls); `Frac` otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Instant {
    Us(i128),
    Q(i128, i128),
    Frac(Box<BigRational>),
}

impl From<i128> for Instant {
    fn from(us: i128) -> Instant {
        Instant::Us(us)
    }
}

impl Instant {
    /// The normalized instant of a rational number of microseconds (in lowest terms).
    pub fn from_ratio(r: BigRational) -> Instant {
        if r.is_integer() {
            if let Some(us) = r.to_integer().to_i128() {
                return Instant::Us(us);
            }
        } else if let (Some(n), Some(d)) = (r.numer().to_i128(), r.denom().to_i128()) {
            return Instant::Q(n, d);
        }
        Instant::Frac(Box::new(r))
    }

    /// The normalized instant of n/d microseconds (d > 0).
    fn from_parts(n: i128, d: i128) -> Instant {
        let g = gcd_i128(n, d);
        match (n / g, d / g) {
            (n, 1) => Instant::Us(n),
            (n, d) => Instant::Q(n, d),
        }
    }

    fn ratio(&self) -> BigRational {
        match self {
            Instant::Us(us) => BigRational::from_integer(BigInt::from(*us)),
            Instant::Q(n, d) => BigRational::new_raw(BigInt::from(*n), BigInt::from(*d)),
            Instant::Frac(r) => (**r).clone(),
        }
    }

    pub fn is_whole(&self) -> bool {
        matches!(self, Instant::Us(_))
    }

    pub fn floor_us(&self) -> i128 {
        match self {
            Instant::Us(us) => *us,
            Instant::Q(n, d) => n.div_euclid(*d),
            Instant::Frac(r) => r.floor().to_integer().to_i128().unwrap_or(i128::MAX),
        }
    }

    pub fn ceil_us(&self) -> i128 {
        match self {
            Instant::Us(us) => *us,
            Instant::Q(n, d) => n.div_euclid(*d) + 1, // never whole
            Instant::Frac(r) => r.ceil().to_integer().to_i128().unwrap_or(i128::MAX),
        }
    }

    fn cmp_us(&self, us: i128) -> Ordering {
        match self {
            Instant::Us(x) => x.cmp(&us),
            // not whole, so never equal: compare the floor
            Instant::Q(..) | Instant::Frac(_) => {
                if self.floor_us() < us {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
        }
    }

    pub fn gt_us(&self, us: i128) -> bool {
        self.cmp_us(us) == Ordering::Greater
    }
    pub fn ge_us(&self, us: i128) -> bool {
        self.cmp_us(us) != Ordering::Less
    }
    pub fn lt_us(&self, us: i128) -> bool {
        self.cmp_us(us) == Ordering::Less
    }
    pub fn eq_us(&self, us: i128) -> bool {
        self.cmp_us(us) == Ordering::Equal
    }

    pub fn mul_i128(&self, n: i128) -> Instant {
        match self {
            Instant::Us(us) => match us.checked_mul(n) {
                Some(x) => Instant::Us(x),
                None => Instant::from_ratio(self.ratio() * BigInt::from(n)),
            },
            Instant::Q(p, d) => match p.checked_mul(n) {
                Some(x) => Instant::from_parts(x, *d),
                None => Instant::from_ratio(self.ratio() * BigInt::from(n)),
            },
            Instant::Frac(r) => Instant::from_ratio(&**r * BigInt::from(n)),
        }
    }

    /// Exact `self / n` (n > 0): whole when it divides.
    pub fn div_exact(&self, n: i128) -> Instant {
        let n = n.max(1);
        match self {
            Instant::Us(us) if us % n == 0 => Instant::Us(us / n),
            // reduced in i128 (n > 1 does not divide us, so the denominator stays > 1)
            Instant::Us(us) => Instant::from_parts(*us, n),
            Instant::Q(p, d) => match d.checked_mul(n) {
                Some(dn) => Instant::from_parts(*p, dn),
                None => Instant::from_ratio(self.ratio() / BigInt::from(n)),
            },
            Instant::Frac(_) => Instant::from_ratio(self.ratio() / BigInt::from(n)),
        }
    }

    /// `whole + sign * frac` without a gcd: (w·d ± p)/d is already in lowest terms when p/d
    /// is, and never whole (d > 1).
    fn whole_plus_frac(whole: i128, frac: &BigRational, negate_frac: bool) -> Instant {
        let den = frac.denom();
        let scaled = BigInt::from(whole) * den;
        let numer = if negate_frac {
            scaled - frac.numer()
        } else {
            scaled + frac.numer()
        };
        Instant::from_ratio(BigRational::new_raw(numer, den.clone()))
    }

    /// `whole·sw + p/d·sp` (signs ±1) for a machine fraction: in lowest terms as above.
    fn whole_plus_q(whole: i128, sw: i128, p: i128, d: i128, sp: i128) -> Instant {
        let sum = whole
            .checked_mul(d)
            .and_then(|wd| wd.checked_mul(sw))
            .and_then(|wd| p.checked_mul(sp).and_then(|ps| wd.checked_add(ps)));
        match sum {
            Some(n) => Instant::Q(n, d),
            None => {
                let frac =
                    BigRational::new_raw(BigInt::from(p) * BigInt::from(sp), BigInt::from(d));
                let whole = BigRational::from_integer(BigInt::from(whole) * BigInt::from(sw));
                Instant::from_ratio(frac + whole)
            }
        }
    }

    /// p1/d1 + p2/d2 in machine integers, None on overflow.
    fn q_plus_q(p1: i128, d1: i128, p2: i128, d2: i128) -> Option<Instant> {
        let n = p1.checked_mul(d2)?.checked_add(p2.checked_mul(d1)?)?;
        Some(Instant::from_parts(n, d1.checked_mul(d2)?))
    }

    /// `"num/den"` for a rational instant (as the state format stores it), None when whole.
    pub fn to_state_text(&self) -> Option<String> {
        match self {
            Instant::Us(_) => None,
            Instant::Q(n, d) => Some(format!("{n}/{d}")),
            Instant::Frac(r) => Some(format!("{}/{}", r.numer(), r.denom())),
        }
    }

    pub fn from_state_text(s: &str) -> Option<Instant> {
        let (n, d) = s.split_once('/').unwrap_or((s, "1"));
        let parse = |t: &str| -> Option<BigInt> {
            let t = t.trim();
            let digits = t.strip_prefix('-').unwrap_or(t);
            if digits.is_empty()
                || !digits.bytes().all(|b| b.is_ascii_digit())
                || digits.len() > 4000
            {
                return None;
            }
            t.parse().ok()
        };
        let (n, d) = (parse(n)?, parse(d)?);
        if d.is_zero() {
            return None;
        }
        Some(Instant::from_ratio(BigRational::new(n, d)))
    }
}

impl PartialOrd for Instant {
    fn partial_cmp(&self, other: &Instant) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Instant {
    fn cmp(&self, other: &Instant) -> Ordering {
        match (self, other) {
            (Instant::Us(a), Instant::Us(b)) => a.cmp(b),
            (Instant::Us(a), _) => other.cmp_us(*a).reverse(),
            (_, Instant::Us(b)) => self.cmp_us(*b),
            (Instant::Q(p1, d1), Instant::Q(p2, d2)) => {
                match (p1.checked_mul(*d2), p2.checked_mul(*d1)) {
                    (Some(l), Some(r)) => l.cmp(&r),
                    _ => self.ratio().cmp(&other.ratio()),
                }
            }
            (Instant::Frac(a), Instant::Frac(b)) => a.cmp(b),
            _ => self.ratio().cmp(&other.ratio()),
        }
    }
}

impl Add<&Instant> for &Instant {
    type Output = Instant;
    fn add(self, other: &Instant) -> Instant {
        match (self, other) {
            (Instant::Us(a), Instant::Us(b)) if a.checked_add(*b).is_some() => Instant::Us(a + b),
            (Instant::Us(a), Instant::Q(p, d)) | (Instant::Q(p, d), Instant::Us(a)) => {
                Instant::whole_plus_q(*a, 1, *p, *d, 1)
            }
            (Instant::Q(p1, d1), Instant::Q(p2, d2)) => Instant::q_plus_q(*p1, *d1, *p2, *d2)
                .unwrap_or_else(|| Instant::from_ratio(self.ratio() + other.ratio())),
            (Instant::Us(a), Instant::Frac(r)) | (Instant::Frac(r), Instant::Us(a)) => {
                Instant::whole_plus_frac(*a, r, false)
            }
            _ => Instant::from_ratio(self.ratio() + other.ratio()),
        }
    }
}

impl Sub<&Instant> for &Instant {
    type Output = Instant;
    fn sub(self, other: &Instant) -> Instant {
        match (self, other) {
            (Instant::Us(a), Instant::Us(b)) if a.checked_sub(*b).is_some() => Instant::Us(a - b),
            (Instant::Us(a), Instant::Q(p, d)) => Instant::whole_plus_q(*a, 1, *p, *d, -1),
            (Instant::Q(p, d), Instant::Us(b)) => Instant::whole_plus_q(*b, -1, *p, *d, 1),
            (Instant::Q(p1, d1), Instant::Q(p2, d2)) => p2
                .checked_neg()
                .and_then(|n2| Instant::q_plus_q(*p1, *d1, n2, *d2))
                .unwrap_or_else(|| Instant::from_ratio(self.ratio() - other.ratio())),
            (Instant::Us(a), Instant::Frac(r)) => Instant::whole_plus_frac(*a, r, true),
            (Instant::Frac(r), Instant::Us(b)) => {
                // p/d - b = (p - b·d)/d, in lowest terms as above
                let den = r.denom();
                let numer = r.numer() - BigInt::from(*b) * den;
                Instant::from_ratio(BigRational::new_raw(numer, den.clone()))
            }
            _ => Instant::from_ratio(self.ratio() - other.ratio()),
        }
    }
}

impl Add<i128> for &Instant {
    type Output = Instant;
    fn add(self, us: i128) -> Instant {
        self + &Instant::Us(us)
    }
}

impl Sub<i128> for &Instant {
    type Output = Instant;
    fn sub(self, us: i128) -> Instant {
        self - &Instant::Us(us)
    }
}

/// The greatest common divisor of `a` and `b` (b > 0), positive.
fn gcd_i128(a: i128, b: i128) -> i128 {
    let (mut x, mut y) = (a.unsigned_abs(), b.unsigned_abs());
    while y != 0 {
        (x, y) = (y, x % y);
    }
    i128::try_from(x).unwrap_or(1).max(1)
}

/// A timestamp that is not ISO 8601 with a zone (or not a real date).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampError;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day number since the epoch.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Midnight UTC of a real date with year 1..9999 (Python's `datetime` range).
fn day_us(y: i64, m: u32, d: u32) -> Result<i128, TimestampError> {
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(TimestampError);
    }
    Ok(i128::from(days_from_civil(y, m, d)) * US_PER_DAY)
}

fn num(b: &[u8]) -> Option<u32> {
    let mut n: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    Some(n)
}

/// Parse ISO 8601 with a zone: `YYYY-MM-DD[Tt ]HH:MM:SS[(.|,)f{1,12}](Z|z|±HH:MM|±HHMM)`.
pub fn parse_instant(text: &str) -> Result<Instant, TimestampError> {
    let b = text.as_bytes();
    let e = TimestampError;
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(e);
    }
    let (y, mo, d) = (
        num(&b[0..4]).ok_or(e)?,
        num(&b[5..7]).ok_or(e)?,
        num(&b[8..10]).ok_or(e)?,
    );
    let (h, mi, s) = (
        num(&b[11..13]).ok_or(e)?,
        num(&b[14..16]).ok_or(e)?,
        num(&b[17..19]).ok_or(e)?,
    );
    let mut i = 19;
    let mut frac: &[u8] = &[];
    if matches!(b[i], b'.' | b',') {
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j == start || j - start > 12 {
            return Err(e);
        }
        frac = &b[start..j];
        i = j;
    }
    let rest = &b[i..];
    let offset_min: i128 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2]
        | [sign @ (b'+' | b'-'), oh1, oh2, om1, om2] => {
            let oh = num(&[*oh1, *oh2]).ok_or(e)?;
            let om = num(&[*om1, *om2]).ok_or(e)?;
            if oh > 23 || om > 59 {
                return Err(e);
            }
            let m = i128::from(oh * 60 + om);
            if *sign == b'+' {
                -m
            } else {
                m
            }
        }
        _ => return Err(e),
    };
    if h > 23 || mi > 59 || s > 59 {
        return Err(e);
    }
    let base = day_us(i64::from(y), mo, d)?
        + i128::from((h * 60 + mi) * 60 + s) * US_PER_S
        + offset_min * 60 * US_PER_S;
    if frac.is_empty() {
        return Ok(Instant::Us(base));
    }
    let mut f: i128 = 0;
    for &c in frac {
        f = f * 10 + i128::from(c - b'0');
    }
    if frac.len() <= 6 {
        Ok(Instant::Us(base + f * 10i128.pow(6 - frac.len() as u32)))
    } else {
        let den = BigInt::from(10i128.pow(frac.len() as u32 - 6));
        Ok(Instant::from_ratio(
            BigRational::from_integer(BigInt::from(base)) + BigRational::new(BigInt::from(f), den),
        ))
    }
}

fn push2(out: &mut Vec<u8>, n: u32) {
    out.push(b'0' + (n / 10 % 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, floored to the millisecond.
pub fn write_instant(out: &mut Vec<u8>, t: &Instant) {
    let us = t.floor_us();
    // 64-bit arithmetic for every instant of the next 290,000 years (i128 division is slow)
    let (days, of_day) = match i64::try_from(us) {
        Ok(us) => {
            let ms = us.div_euclid(1000);
            (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000) as u32)
        }
        Err(_) => {
            let ms = us.div_euclid(1000);
            let days = ms.div_euclid(86_400_000);
            (
                i64::try_from(days).unwrap_or(i64::MAX / 2),
                ms.rem_euclid(86_400_000) as u32,
            )
        }
    };
    let (y, m, d) = civil_from_days(days);
    if (0..10_000).contains(&y) {
        let y = y as u32;
        out.extend_from_slice(&[
            b'0' + (y / 1000) as u8,
            b'0' + (y / 100 % 10) as u8,
            b'0' + (y / 10 % 10) as u8,
            b'0' + (y % 10) as u8,
        ]);
    } else {
        out.extend_from_slice(format!("{y:04}").as_bytes());
    }
    out.push(b'-');
    push2(out, m);
    out.push(b'-');
    push2(out, d);
    out.push(b'T');
    push2(out, of_day / 3_600_000);
    out.push(b':');
    push2(out, of_day / 60_000 % 60);
    out.push(b':');
    push2(out, of_day / 1000 % 60);
    out.push(b'.');
    let milli = of_day % 1000;
    out.extend_from_slice(&[
        b'0' + (milli / 100) as u8,
        b'0' + (milli / 10 % 10) as u8,
        b'0' + (milli % 10) as u8,
        b'Z',
    ]);
}

pub fn format_instant(t: &Instant) -> String {
    let mut out = Vec::with_capacity(24);
    write_instant(&mut out, t);
    String::from_utf8(out).unwrap_or_default()
}

/// `sign whole . digits` of `scaled / 10^places` with the fraction's trailing zeros dropped.
fn write_decimal(out: &mut Vec<u8>, scaled: &BigInt, places: usize) {
    if let Some(small) = scaled.to_i128().filter(|_| places <= 38) {
        return write_decimal_i128(out, small, places); // 10^38 is the largest u128 power
    }
    if scaled.is_negative() {
        out.push(b'-');
    }
    let digits = scaled.abs().to_string();
    if places == 0 {
        out.extend_from_slice(digits.as_bytes());
        return;
    }
    let padded = format!("{digits:0>width$}", width = places + 1);
    let (whole, part) = padded.split_at(padded.len() - places);
    out.extend_from_slice(whole.as_bytes());
    let part = part.trim_end_matches('0');
    if !part.is_empty() {
        out.push(b'.');
        out.extend_from_slice(part.as_bytes());
    }
}

/// `write_decimal` of a machine integer: the same text without a big-integer detour
/// (every charge prints two durations this way).
fn write_decimal_i128(out: &mut Vec<u8>, scaled: i128, places: usize) {
    if scaled < 0 {
        out.push(b'-');
    }
    let magnitude = scaled.unsigned_abs();
    if places == 0 {
        crate::json::write_uint(out, magnitude);
        return;
    }
    let (whole, mut part) = match u64::try_from(places).ok().filter(|p| *p <= 19) {
        // 10^19 is the largest power of ten in 64 bits
        Some(p) => crate::json::div_rem_u128(magnitude, 10u64.pow(p as u32)),
        None => {
            let unit = 10u128.pow(places as u32);
            (magnitude / unit, magnitude % unit)
        }
    };
    crate::json::write_uint(out, whole);
    if part == 0 {
        return;
    }
    let mut width = places;
    while part.is_multiple_of(10) {
        part /= 10;
        width -= 1;
    }
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(part);
    out.push(b'.');
    out.extend(std::iter::repeat_n(b'0', width - digits.len()));
    out.extend_from_slice(digits.as_bytes());
}

/// A count of seconds as JSON number text: exact when the decimal ends, else 3 places half-up.
pub fn write_seconds(out: &mut Vec<u8>, t: &Instant) {
    match t {
        Instant::Us(us) => write_decimal_i128(out, *us, 6),
        fraction => {
            let s = fraction.ratio() / BigInt::from(US_PER_S);
            let den = s.denom().clone();
            let (mut d, mut twos, mut fives) = (den.clone(), 0usize, 0usize);
            let two = BigInt::from(2);
            let five = BigInt::from(5);
            while d.is_even() {
                d /= &two;
                twos += 1;
            }
            while (&d % &five).is_zero() {
                d /= &five;
                fives += 1;
            }
            if d.is_one() {
                let places = twos.max(fives);
                let scaled = s.numer() * (BigInt::from(10).pow(places as u32) / &den);
                write_decimal(out, &scaled, places);
            } else {
                let n = s.numer() * BigInt::from(1000);
                let (mut q, r) = n.abs().div_rem(&den);
                if BigInt::from(2) * r >= den {
                    q += 1;
                }
                let scaled = if n.is_negative() { -q } else { q };
                write_decimal(out, &scaled, 3);
            }
        }
    }
}

pub fn seconds_text(t: &Instant) -> String {
    let mut out = Vec::new();
    write_seconds(&mut out, t);
    String::from_utf8(out).unwrap_or_default()
}

/// Midnight UTC of an ISO date `YYYY-MM-DD` (ASCII digits, a real date, year 1..9999).
pub fn day_start_us(iso_date: &str) -> Result<i128, TimestampError> {
    let b = iso_date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(TimestampError);
    }
    let (y, m, d) = (
        num(&b[0..4]).ok_or(TimestampError)?,
        num(&b[5..7]).ok_or(TimestampError)?,
        num(&b[8..10]).ok_or(TimestampError)?,
    );
    day_us(i64::from(y), m, d)
}

fn civil_of(t: &Instant) -> (i64, u32, u32, i128) {
    let us = t.floor_us();
    let days = us.div_euclid(US_PER_DAY);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    (y, m, d, us.rem_euclid(US_PER_DAY))
}

/// 00:00 UTC on the 1st of the month after the one holding `t`.
pub fn next_month_start(t: &Instant) -> i128 {
    let (y, m, _, _) = civil_of(t);
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    i128::from(days_from_civil(y, m, 1)) * US_PER_DAY
}

/// `YYYY-MM` of the month holding `t`.
pub fn month_label(t: &Instant) -> String {
    let (y, m, _, _) = civil_of(t);
    format!("{y:04}-{m:02}")
}

/// Same UTC time of day, same day of month, a year later (28 February for 29 February).
pub fn add_twelve_months(t: &Instant) -> Instant {
    let (y, m, d, _) = civil_of(t);
    let d = if m == 2 && d == 29 && !is_leap(y + 1) {
        28
    } else {
        d
    };
    let shift = i128::from(days_from_civil(y + 1, m, d) - days_from_civil(y, m, civil_of(t).2))
        * US_PER_DAY;
    t + shift
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(text: &str) -> i128 {
        parse_instant(text).unwrap().floor_us()
    }

    #[test]
    fn fast_paths_equal_the_rational_arithmetic() {
        let slow = |r: BigRational| Instant::from_ratio(r);
        let values: [i128; 9] = [
            -7,
            -1,
            0,
            1,
            3,
            10,
            999_999,
            1_796_083_200_000_001,
            i128::MAX / 4,
        ];
        for &a in &values {
            for n in 1..=12_i128 {
                let q = Instant::Us(a).div_exact(n);
                assert_eq!(
                    q,
                    slow(BigRational::new(BigInt::from(a), BigInt::from(n))),
                    "{a}/{n}"
                );
                for &b in &values {
                    let (w, r) = (Instant::Us(b), q.ratio());
                    assert_eq!(&w + &q, slow(BigRational::from_integer(b.into()) + &r));
                    assert_eq!(&q + &w, slow(&r + BigRational::from_integer(b.into())));
                    assert_eq!(&w - &q, slow(BigRational::from_integer(b.into()) - &r));
                    assert_eq!(&q - &w, slow(&r - BigRational::from_integer(b.into())));
                }
            }
        }
    }

    /// Every form an instant takes, and the same value as a plain big rational.
    fn instants() -> Vec<(Instant, BigRational)> {
        let big = |n: i128, d: i128| BigRational::new(BigInt::from(n), BigInt::from(d));
        let mut parts: Vec<(i128, i128)> = vec![(0, 1), (7, 1), (-7, 3), (1, 2), (5, 6)];
        parts.extend([(1_796_083_200_000_001, 7), (-1_796_083_200_000_001, 12)]);
        parts.extend([
            (i128::MAX, 3),
            (i128::MIN + 1, 5),
            (i128::MAX, 1),
            (i128::MIN, 1),
        ]);
        parts.extend([(i128::MAX / 2, i128::MAX / 3), (3, i128::MAX)]);
        let mut out: Vec<(Instant, BigRational)> = parts
            .iter()
            .map(|&(n, d)| (Instant::from_ratio(big(n, d)), big(n, d)))
            .collect();
        // past the machine integers: the big form
        let huge = BigRational::new(BigInt::from(i128::MAX) * 5 + 1, BigInt::from(3));
        out.push((Instant::from_ratio(huge.clone()), huge));
        out
    }

    #[test]
    fn machine_fractions_equal_the_rational_arithmetic() {
        let slow = |r: BigRational| Instant::from_ratio(r);
        let all = instants();
        for (x, rx) in &all {
            let canonical = match x {
                Instant::Us(_) => rx.is_integer(),
                Instant::Q(_, d) => *d > 1 && !rx.is_integer(),
                Instant::Frac(r) => r.numer().to_i128().is_none() || r.denom().to_i128().is_none(),
            };
            assert!(canonical, "{x:?}");
            assert_eq!(x.ratio(), *rx);
            assert_eq!(
                x.to_state_text()
                    .and_then(|t| Instant::from_state_text(&t))
                    .unwrap_or_else(|| x.clone()),
                *x
            );
            if let Some(f) = rx.floor().to_integer().to_i128() {
                assert_eq!(x.floor_us(), f, "{x:?}");
            }
            if let Some(c) = rx.ceil().to_integer().to_i128() {
                assert_eq!(x.ceil_us(), c, "{x:?}");
            }
            for n in [-3i128, 1, 2, 6, 1 << 70] {
                assert_eq!(x.mul_i128(n), slow(rx * BigInt::from(n)), "{x:?} * {n}");
            }
            for n in [1i128, 2, 6, 1 << 70] {
                assert_eq!(x.div_exact(n), slow(rx / BigInt::from(n)), "{x:?} / {n}");
            }
            for (y, ry) in &all {
                assert_eq!(x + y, slow(rx + ry), "{x:?} + {y:?}");
                assert_eq!(x - y, slow(rx - ry), "{x:?} - {y:?}");
                assert_eq!(x.cmp(y), rx.cmp(ry), "{x:?} <=> {y:?}");
            }
        }
    }

    #[test]
    fn parses_zones_and_fractions() {
        assert_eq!(us("1970-01-01T00:00:00Z"), 0);
        assert_eq!(us("1970-01-01t01:00:00+01:00"), 0);
        assert_eq!(us("1970-01-01 00:00:00.25-0100"), 3_600_250_000);
        assert_eq!(us("1970-01-01T00:00:00,000001z"), 1);
        let r = parse_instant("1970-01-01T00:00:00.0000005Z").unwrap();
        assert_eq!(r.to_state_text().as_deref(), Some("1/2"));
        for bad in [
            "1970-01-01T00:00:00",
            "1970-01-01T24:00:00Z",
            "1970-02-30T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00.0000000000001Z",
            "1970-01-01T00:00:00+24:00",
            "1970-01-01T00:00:00Z\n",
            "١٩٧٠-01-01T00:00:00Z",
            "",
        ] {
            assert!(parse_instant(bad).is_err(), "{bad}");
        }
        assert!(parse_instant("2024-02-29T00:00:00Z").is_ok());
        assert!(parse_instant("2023-02-29T00:00:00Z").is_err());
    }

    #[test]
    fn prints_floored_milliseconds() {
        assert_eq!(
            format_instant(&Instant::Us(1_999)),
            "1970-01-01T00:00:00.001Z"
        );
        assert_eq!(format_instant(&Instant::Us(-1)), "1969-12-31T23:59:59.999Z");
    }

    /// The plain big-integer form `write_decimal` had before its machine-integer path.
    fn decimal_by_bigint(scaled: i128, places: usize) -> String {
        let big = BigInt::from(scaled);
        let digits = big.abs().to_string();
        let sign = if scaled < 0 { "-" } else { "" };
        if places == 0 {
            return format!("{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = places + 1);
        let (whole, part) = padded.split_at(padded.len() - places);
        let part = part.trim_end_matches('0');
        match part {
            "" => format!("{sign}{whole}"),
            _ => format!("{sign}{whole}.{part}"),
        }
    }

    #[test]
    fn machine_integer_decimals_print_like_big_integers() {
        let mut values = vec![0i128, 1, -1, 9, 10, 100_000, 999_999, 1_000_000, -1_000_001];
        values.extend([i128::MAX, i128::MIN, i128::MAX - 1, 12_345_678_901_234_567]);
        for k in 0..60 {
            values.push(7i128.pow(k % 40) * if k % 2 == 0 { 1 } else { -3 });
        }
        for &v in &values {
            for places in [0usize, 1, 3, 6, 12, 38] {
                let mut out = Vec::new();
                write_decimal_i128(&mut out, v, places);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    decimal_by_bigint(v, places)
                );
            }
        }
    }

    #[test]
    fn seconds_are_exact_or_three_places() {
        assert_eq!(seconds_text(&Instant::Us(1_500_000)), "1.5");
        assert_eq!(seconds_text(&Instant::Us(-1)), "-0.000001");
        assert_eq!(seconds_text(&Instant::Us(0)), "0");
        assert_eq!(seconds_text(&Instant::Us(60_000_000)), "60");
        let third = Instant::Us(10_000_000).div_exact(3);
        assert_eq!(seconds_text(&third), "3.333");
        let half = Instant::Us(1).div_exact(2);
        assert_eq!(seconds_text(&half), "0.0000005");
    }

    #[test]
    fn calendar() {
        let t = Instant::Us(day_start_us("2024-02-29").unwrap() + 5);
        assert_eq!(
            format_instant(&add_twelve_months(&t)),
            "2025-02-28T00:00:00.000Z"
        );
        assert_eq!(month_label(&t), "2024-02");
        assert_eq!(next_month_start(&t), day_start_us("2024-03-01").unwrap());
        let late = Instant::Us(day_start_us("9999-12-31").unwrap());
        assert_eq!(
            format_instant(&add_twelve_months(&late)),
            "10000-12-31T00:00:00.000Z"
        );
    }
}
