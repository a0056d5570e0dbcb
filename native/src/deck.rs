//! Rate-deck compiler: rows of text into a prefix table keyed by service.
//!
//! The CSV file itself is read by the Python side (polars), so the messages of an unreadable
//! file stay polars' own; this module judges every row and column with the exact messages
//! of the contract (`FILE:LINE: column COL: …`) and builds the lookup table. A lookup walks the
//! number's prefixes from the longest, one hash probe each: O(number length), never a scan.

use crate::fxhash::FxHashMap;

use crate::clock::{day_start_us, Instant};
use crate::json::write_str;
use crate::money::parse_decimal_micros;
use crate::pystr::{py_repr, py_strip};

/// The deck's columns, in the order the contract lists them.
pub const COLUMNS: [&str; 13] = [
    "prefix",
    "country",
    "destination",
    "zone",
    "number_type",
    "service",
    "rate_per_minute",
    "connection_fee",
    "currency",
    "first_increment",
    "next_increment",
    "effective_from",
    "effective_to",
];
const NUMBER_TYPES: [&str; 5] = ["geographic", "mobile", "other", "premium", "tollfree"];
/// Increments above this many seconds (31,700 years) are refused, so that a price
/// (rate × billed seconds) always fits in 128 bits.
pub const MAX_INCREMENT_S: i64 = 1_000_000_000_000;

/// What a deck row prices: calls out (on the called number) or toll-free calls in (on the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Outbound,
    TollfreeInbound,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Outbound => "outbound",
            Service::TollfreeInbound => "tollfree_inbound",
        }
    }
    fn index(self) -> usize {
        match self {
            Service::Outbound => 0,
            Service::TollfreeInbound => 1,
        }
    }
}

/// One compiled deck row. `*_text` keep the deck's own spelling for output.
#[derive(Clone, Debug)]
pub struct Rate {
    pub index: usize,
    pub line: u64,
    pub prefix: String,
    pub country: String,
    pub destination: String,
    pub zone: String,
    pub number_type: String,
    pub service: Service,
    pub rate_text: String,
    pub fee_text: String,
    pub rate_micros_per_min: i128,
    pub fee_micros: i128,
    pub currency: String,
    pub first_increment_s: i64,
    pub next_increment_s: i64,
    pub effective_from_us: Option<i128>,
    pub effective_to_us: Option<i128>,
    /// The row's members on a priced line, `"prefix":…,"connection_fee":…`, written once.
    pub members_json: Vec<u8>,
}

impl Rate {
    /// Whether the row is in effect at `at` (its window is `[from, to)`, open ends unbounded).
    pub fn covers(&self, at: &Instant) -> bool {
        self.effective_from_us.is_none_or(|lo| at.ge_us(lo))
            && self.effective_to_us.is_none_or(|hi| at.lt_us(hi))
    }
}

/// The members written where no deck row applies.
pub const NO_ROW_MEMBERS: &[u8] = b"\"prefix\":null,\"destination\":null,\"country\":null,\"number_type\":null,\"zone\":null,\"rate_per_minute\":null,\"connection_fee\":null";

fn row_members(r: &Rate) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    for (i, (key, value)) in [
        ("prefix", &r.prefix),
        ("destination", &r.destination),
        ("country", &r.country),
        ("number_type", &r.number_type),
        ("zone", &r.zone),
        ("rate_per_minute", &r.rate_text),
        ("connection_fee", &r.fee_text),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        write_str(&mut out, value);
    }
    out
}

/// An invalid deck. `Display` gives the contract's message; the Python binding formats the
/// quoted value with Python's own `repr` (see `message_with`), so non-ASCII texts match too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeckError {
    pub path: String,
    pub line: u64,
    pub column: Option<&'static str>,
    /// The offending text, shown quoted before `message` when present.
    pub value: Option<String>,
    pub message: String,
}

impl DeckError {
    fn new(
        path: &str,
        line: u64,
        column: Option<&'static str>,
        value: Option<&str>,
        message: String,
    ) -> Self {
        DeckError {
            path: path.to_owned(),
            line,
            column,
            value: value.map(str::to_owned),
            message,
        }
    }

    /// The message with the value quoted by `repr`.
    pub fn message_with(&self, repr: impl Fn(&str) -> String) -> String {
        let mut text = format!("{}:{}", self.path, self.line);
        if let Some(col) = self.column {
            text.push_str(": column ");
            text.push_str(col);
        }
        text.push_str(": ");
        if let Some(v) = &self.value {
            text.push_str(&repr(v));
            text.push(' ');
        }
        text.push_str(&self.message);
        text
    }
}

impl std::fmt::Display for DeckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message_with(py_repr))
    }
}

/// The compiled deck: `table[service][prefix]` holds that prefix's rows, ordered by window.
#[derive(Clone, Debug, Default)]
pub struct Deck {
    pub path: String,
    pub currency: Option<String>,
    pub rows: Vec<Rate>,
    table: [FxHashMap<String, Vec<usize>>; 2],
    max_prefix_len: usize,
    /// `lengths[service][first two digits]`: the prefix lengths, longest first, that a number
    /// starting with those digits can have, so a lookup probes only those.
    lengths: [Vec<Vec<usize>>; 2],
}

fn is_ascii_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_upper_code(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_uppercase())
}

struct RowReader<'r> {
    path: &'r str,
    line: u64,
    cells: [String; 13],
}

impl RowReader<'_> {
    fn text(&self, col: usize) -> &str {
        self.cells.get(col).map_or("", String::as_str)
    }

    fn fail(&self, col: usize, message: String) -> DeckError {
        DeckError::new(
            self.path,
            self.line,
            COLUMNS.get(col).copied(),
            Some(self.text(col)),
            message,
        )
    }

    fn need(&self, col: usize, ok: bool, what: &str) -> Result<(), DeckError> {
        if ok {
            Ok(())
        } else {
            Err(self.fail(col, format!("is not {what}")))
        }
    }

    fn decimal(&self, col: usize) -> Result<i128, DeckError> {
        let micros = parse_decimal_micros(self.text(col), 6)
            .map_err(|_| self.fail(col, "is not a decimal with at most 6 places".into()))?;
        if micros < 0 {
            return Err(self.fail(col, "is negative".into()));
        }
        Ok(micros)
    }

    fn whole_seconds(&self, col: usize) -> Result<i64, DeckError> {
        let value = self.text(col);
        if let Some(rest) = value.strip_prefix('-') {
            if is_ascii_digits(rest) {
                return Err(self.fail(col, "is negative".into()));
            }
        }
        self.need(col, is_ascii_digits(value), "whole seconds >= 1")?;
        let digits = value.trim_start_matches('0');
        if digits.len() > 13 {
            return Err(self.fail(col, format!("is more than {MAX_INCREMENT_S} seconds")));
        }
        let seconds: i64 = digits.parse().unwrap_or(0);
        self.need(col, seconds >= 1, "whole seconds >= 1")?;
        if seconds > MAX_INCREMENT_S {
            return Err(self.fail(col, format!("is more than {MAX_INCREMENT_S} seconds")));
        }
        Ok(seconds)
    }

    fn day(&self, col: usize) -> Result<Option<i128>, DeckError> {
        let value = self.text(col);
        if value.is_empty() {
            return Ok(None);
        }
        day_start_us(value)
            .map(Some)
            .map_err(|_| self.fail(col, "is not an ISO date (YYYY-MM-DD)".into()))
    }
}

const C_PREFIX: usize = 0;
const C_COUNTRY: usize = 1;
const C_DESTINATION: usize = 2;
const C_ZONE: usize = 3;
const C_NUMBER_TYPE: usize = 4;
const C_SERVICE: usize = 5;
const C_RATE: usize = 6;
const C_FEE: usize = 7;
const C_CURRENCY: usize = 8;
const C_FIRST: usize = 9;
const C_NEXT: usize = 10;
const C_FROM: usize = 11;
const C_TO: usize = 12;

fn parse_row(r: &RowReader<'_>, index: usize) -> Result<Rate, DeckError> {
    let prefix = r.text(C_PREFIX);
    r.need(
        C_PREFIX,
        is_ascii_digits(prefix) && prefix.len() <= 15,
        "a digit prefix",
    )?;
    r.need(
        C_COUNTRY,
        is_upper_code(r.text(C_COUNTRY), 2),
        "an ISO 3166 alpha-2 code",
    )?;
    let zone = r.text(C_ZONE);
    r.need(
        C_ZONE,
        matches!(zone, "A" | "B" | "C" | "D"),
        "a zone A, B, C or D",
    )?;
    let number_type = r.text(C_NUMBER_TYPE);
    r.need(
        C_NUMBER_TYPE,
        NUMBER_TYPES.contains(&number_type),
        "one of geographic, mobile, other, premium, tollfree",
    )?;
    let service = match r.text(C_SERVICE) {
        "" | "outbound" => Service::Outbound,
        "tollfree_inbound" => Service::TollfreeInbound,
        _ => return Err(r.fail(C_SERVICE, "is not outbound or tollfree_inbound".into())),
    };
    r.need(
        C_CURRENCY,
        is_upper_code(r.text(C_CURRENCY), 3),
        "an ISO 4217 code",
    )?;
    let rate = r.decimal(C_RATE)?;
    let fee = r.decimal(C_FEE)?;
    let first = r.whole_seconds(C_FIRST)?;
    let next = r.whole_seconds(C_NEXT)?;
    let lo = r.day(C_FROM)?;
    let hi = r.day(C_TO)?;
    if let (Some(lo), Some(hi)) = (lo, hi) {
        if hi <= lo {
            return Err(DeckError::new(
                r.path,
                r.line,
                Some("effective_to"),
                None,
                "window is empty: effective_to must be after effective_from".into(),
            ));
        }
    }
    let mut row = Rate {
        index,
        line: r.line,
        prefix: prefix.to_owned(),
        country: r.text(C_COUNTRY).to_owned(),
        destination: r.text(C_DESTINATION).to_owned(),
        zone: zone.to_owned(),
        number_type: number_type.to_owned(),
        service,
        rate_text: r.text(C_RATE).to_owned(),
        fee_text: r.text(C_FEE).to_owned(),
        rate_micros_per_min: rate,
        fee_micros: fee,
        currency: r.text(C_CURRENCY).to_owned(),
        first_increment_s: first,
        next_increment_s: next,
        effective_from_us: lo,
        effective_to_us: hi,
        members_json: Vec::new(),
    };
    row.members_json = row_members(&row);
    Ok(row)
}

impl Deck {
    /// Validate and index rows given as text cells under `header` (None for an empty cell);
    /// the first failing rule is the error. Data rows start on line `first_line`.
    pub fn compile_rows(
        path: &str,
        header: &[String],
        rows: &[Vec<Option<String>>],
        first_line: u64,
    ) -> Result<Deck, DeckError> {
        let names: Vec<String> = header.iter().map(|h| py_strip(h).to_owned()).collect();
        // each column's position in a row (the last of equal trimmed names, as a dict would keep)
        let mut position = [usize::MAX; 13];
        for (c, col) in COLUMNS.iter().enumerate() {
            match names.iter().rposition(|n| n == col) {
                Some(p) => position[c] = p,
                None => {
                    return Err(DeckError::new(
                        path,
                        1,
                        Some(COLUMNS[c]),
                        None,
                        "missing column".into(),
                    ))
                }
            }
        }
        let mut parsed: Vec<Rate> = Vec::with_capacity(rows.len());
        let mut currency: Option<String> = None;
        for (offset, raw) in rows.iter().enumerate() {
            let line = first_line + offset as u64;
            let cells = position.map(|p| match raw.get(p) {
                Some(Some(v)) => py_strip(v).to_owned(),
                _ => String::new(),
            });
            let reader = RowReader { path, line, cells };
            let rate = parse_row(&reader, parsed.len())?;
            match &currency {
                None => currency = Some(rate.currency.clone()),
                Some(c) if *c != rate.currency => {
                    return Err(DeckError::new(
                        path,
                        line,
                        Some("currency"),
                        None,
                        format!("{} differs from the deck's {}", rate.currency, c),
                    ))
                }
                Some(_) => {}
            }
            parsed.push(rate);
        }
        let mut deck = Deck {
            path: path.to_owned(),
            currency,
            max_prefix_len: parsed.iter().map(|r| r.prefix.len()).max().unwrap_or(0),
            rows: parsed,
            ..Deck::default()
        };
        deck.index()?;
        Ok(deck)
    }

    fn index(&mut self) -> Result<(), DeckError> {
        // services and prefixes in order of first appearance, as the reference's dicts
        let mut order: Vec<(Service, String)> = Vec::new();
        for row in &self.rows {
            let by_prefix = &mut self.table[row.service.index()];
            match by_prefix.get_mut(&row.prefix) {
                Some(list) => list.push(row.index),
                None => {
                    by_prefix.insert(row.prefix.clone(), vec![row.index]);
                    order.push((row.service, row.prefix.clone()));
                }
            }
        }
        let mut first_service: Option<Service> = None;
        if let Some(first) = self.rows.first() {
            first_service = Some(first.service);
        }
        // Overlaps are reported service by service in order of first appearance, then prefix.
        let mut services = Vec::new();
        if let Some(s) = first_service {
            services.push(s);
            let other = if s == Service::Outbound {
                Service::TollfreeInbound
            } else {
                Service::Outbound
            };
            services.push(other);
        }
        for service in services {
            for (_, prefix) in order.iter().filter(|(s, _)| *s == service) {
                let rows = &self.rows;
                let Some(list) = self.table[service.index()].get_mut(prefix) else {
                    continue;
                };
                list.sort_by_key(|&i| (rows[i].effective_from_us.unwrap_or(-1), rows[i].line));
                for pair in list.windows(2) {
                    let (before, after) = (&rows[pair[0]], &rows[pair[1]]);
                    let overlaps = match (before.effective_to_us, after.effective_from_us) {
                        (None, _) | (_, None) => true,
                        (Some(to), Some(from)) => from < to,
                    };
                    if overlaps {
                        let (early, late) = if before.line <= after.line {
                            (before, after)
                        } else {
                            (after, before)
                        };
                        return Err(DeckError::new(
                            &self.path,
                            late.line,
                            Some("effective_from"),
                            None,
                            format!(
                                "window overlaps line {} for prefix {} ({})",
                                early.line,
                                prefix,
                                service.as_str()
                            ),
                        ));
                    }
                }
            }
        }
        for service in [Service::Outbound, Service::TollfreeInbound] {
            let by_prefix = &self.table[service.index()];
            let mut by_head: Vec<Vec<usize>> = vec![Vec::new(); 100];
            for prefix in by_prefix.keys() {
                let b = prefix.as_bytes();
                if b.len() >= 2 {
                    let head = usize::from(b[0] - b'0') * 10 + usize::from(b[1] - b'0');
                    if !by_head[head].contains(&b.len()) {
                        by_head[head].push(b.len());
                    }
                }
            }
            for (head, found) in by_head.iter_mut().enumerate() {
                let first = ((head / 10) as u8 + b'0') as char;
                if by_prefix.contains_key(first.to_string().as_str()) {
                    found.push(1);
                }
                found.sort_unstable_by(|a, b| b.cmp(a));
            }
            self.lengths[service.index()] = by_head;
        }
        Ok(())
    }

    /// The longest prefix of `digits` with a row of `service` in effect at `at`.
    pub fn lookup(&self, service: Service, digits: &str, at: &Instant) -> Option<&Rate> {
        let by_prefix = &self.table[service.index()];
        if by_prefix.is_empty() {
            return None;
        }
        let b = digits.as_bytes();
        let head = match (b.first(), b.get(1)) {
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                Some(usize::from(x - b'0') * 10 + usize::from(y - b'0'))
            }
            _ => None,
        };
        let probe = |length: usize| -> Option<&Rate> {
            let key = digits.get(..length)?;
            let list = by_prefix.get(key)?;
            list.iter()
                .map(|&i| &self.rows[i])
                .find(|row| row.covers(at))
        };
        match head.and_then(|h| self.lengths[service.index()].get(h)) {
            Some(lengths) => lengths
                .iter()
                .find_map(|&n| if n <= b.len() { probe(n) } else { None }),
            None => (1..=b.len().min(self.max_prefix_len)).rev().find_map(probe),
        }
    }

    /// The window bounds on any prefix of `digits` nearest `at`: the last `<= at` and the
    /// first `> at`. A lookup's answer cannot change between them (the callers' memo).
    pub fn constant_span(
        &self,
        service: Service,
        digits: &str,
        at: &Instant,
    ) -> (Option<i128>, Option<i128>) {
        let by_prefix = &self.table[service.index()];
        let (mut lo, mut hi): (Option<i128>, Option<i128>) = (None, None);
        for n in 1..=digits.len().min(self.max_prefix_len) {
            let Some(list) = digits.get(..n).and_then(|k| by_prefix.get(k)) else {
                continue;
            };
            for &i in list {
                let row = &self.rows[i];
                for bound in [row.effective_from_us, row.effective_to_us]
                    .into_iter()
                    .flatten()
                {
                    if at.ge_us(bound) {
                        lo = Some(lo.map_or(bound, |l| l.max(bound)));
                    } else {
                        hi = Some(hi.map_or(bound, |h| h.min(bound)));
                    }
                }
            }
        }
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<String> {
        COLUMNS.iter().map(|c| c.to_string()).collect()
    }

    fn row(prefix: &str, rate: &str, from: &str, to: &str) -> Vec<Option<String>> {
        [
            prefix,
            "GB",
            "UK",
            "A",
            "geographic",
            "outbound",
            rate,
            "0",
            "GBP",
            "60",
            "60",
            from,
            to,
        ]
        .iter()
        .map(|s| Some(s.to_string()))
        .collect()
    }

    #[test]
    fn longest_prefix_in_effect_wins() {
        let deck = Deck::compile_rows(
            "d.csv",
            &header(),
            &[
                row("44", "0.01", "", ""),
                row("4420", "0.02", "", "2026-01-01"),
                row("4420", "0.03", "2026-01-01", ""),
            ],
            2,
        )
        .unwrap();
        let before = Instant::Us(day_start_us("2025-06-01").unwrap());
        let after = Instant::Us(day_start_us("2026-06-01").unwrap());
        assert_eq!(
            deck.lookup(Service::Outbound, "442071", &before)
                .unwrap()
                .rate_text,
            "0.02"
        );
        assert_eq!(
            deck.lookup(Service::Outbound, "442071", &after)
                .unwrap()
                .rate_text,
            "0.03"
        );
        assert_eq!(
            deck.lookup(Service::Outbound, "4430", &after)
                .unwrap()
                .rate_text,
            "0.01"
        );
        assert!(deck.lookup(Service::Outbound, "33", &after).is_none());
        assert!(deck
            .lookup(Service::TollfreeInbound, "44", &after)
            .is_none());
    }

    #[test]
    fn messages_name_file_line_and_column() {
        let err = Deck::compile_rows(
            "d.csv",
            &header(),
            &[row("44", "0.01", "", ""), row("4x", "1", "", "")],
            2,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.csv:3: column prefix: '4x' is not a digit prefix"
        );
        let err =
            Deck::compile_rows("d.csv", &header(), &[row("44", "-1", "", "")], 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.csv:2: column rate_per_minute: '-1' is negative"
        );
        let err = Deck::compile_rows("d.csv", &header()[1..], &[], 2).unwrap_err();
        assert_eq!(err.to_string(), "d.csv:1: column prefix: missing column");
        let err = Deck::compile_rows(
            "d.csv",
            &header(),
            &[row("44", "1", "", ""), row("44", "1", "2026-01-01", "")],
            2,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.csv:3: column effective_from: window overlaps line 2 for prefix 44 (outbound)"
        );
    }

    #[test]
    fn huge_increments_are_refused() {
        let mut r = row("44", "1", "", "");
        r[9] = Some("99999999999999999999".into());
        let err = Deck::compile_rows("d.csv", &header(), &[r], 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.csv:2: column first_increment: '99999999999999999999' is more than 1000000000000 seconds"
        );
    }
}
