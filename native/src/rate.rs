//! Offline rating of CDR lines (contracts.md section 3): one JSON line in, one priced line out.
//!
//! `rate_text` prices a piece of a file made of whole lines, in parallel on scoped threads
//! (each takes a contiguous run of lines; their outputs are joined in order), so the output
//! and the `FILE:LINE: invalid: reason` messages are the same as line by line.

use crate::clock::{parse_instant, Instant};
use crate::deck::Deck;
use crate::engine::{is_blank, trim_newline};
use crate::json::{self, Object, Value};
use crate::pricing::{billed_seconds, is_e164, price_micros, Kind};
use crate::records::{priced_members, Obj};

pub const REQUIRED_FIELDS: [&str; 6] = ["call_id", "kind", "from", "to", "start", "end"];

/// The members a CDR is priced from, picked out in one pass over its object (its keys are
/// unique: a repeated key already kept its last value).
#[derive(Default)]
struct Cdr<'o, 'a> {
    call_id: Option<&'o Value<'a>>,
    tenant_id: Option<&'o Value<'a>>,
    user_id: Option<&'o Value<'a>>,
    kind: Option<&'o Value<'a>>,
    from: Option<&'o Value<'a>>,
    to: Option<&'o Value<'a>>,
    start: Option<&'o Value<'a>>,
    end: Option<&'o Value<'a>>,
}

impl<'o, 'a> Cdr<'o, 'a> {
    fn of(obj: &'o Object<'a>) -> Self {
        let mut cdr = Cdr::default();
        for (key, value) in obj.iter() {
            let slot = match key {
                "call_id" => &mut cdr.call_id,
                "tenant_id" => &mut cdr.tenant_id,
                "user_id" => &mut cdr.user_id,
                "kind" => &mut cdr.kind,
                "from" => &mut cdr.from,
                "to" => &mut cdr.to,
                "start" => &mut cdr.start,
                "end" => &mut cdr.end,
                _ => continue,
            };
            *slot = Some(value);
        }
        cdr
    }

    /// The first of [`REQUIRED_FIELDS`] the line lacks.
    fn missing(&self) -> Option<&'static str> {
        let present = [
            self.call_id,
            self.kind,
            self.from,
            self.to,
            self.start,
            self.end,
        ];
        REQUIRED_FIELDS
            .iter()
            .zip(present)
            .find(|(_, v)| v.is_none())
            .map(|(f, _)| *f)
    }
}

fn text<'o>(value: Option<&'o Value<'_>>) -> Option<&'o str> {
    match value {
        Some(Value::Str(s)) => Some(s.as_ref()),
        _ => None,
    }
}

/// Price one CDR line: the output record and, when the line is refused, the reason.
pub fn rate_line(deck: &Deck, raw: &[u8]) -> (Vec<u8>, Option<String>) {
    rate_line_after(deck, raw, Vec::with_capacity(256))
}

/// `rate_line` with the record written at the end of `out` (returned with it).
pub fn rate_line_after(deck: &Deck, raw: &[u8], out: Vec<u8>) -> (Vec<u8>, Option<String>) {
    let currency = deck.currency.as_deref();
    let invalid = |o: &mut Obj, reason: &str, duration: Option<&Instant>| {
        priced_members(o, "invalid", Some(reason), None, duration, 0, 0, currency);
    };
    let obj = match json::parse(raw) {
        Ok(Value::Object(obj)) => obj,
        Ok(_) | Err(_) => {
            let reason = if json::parse(raw).is_ok() {
                "not_an_object"
            } else {
                "invalid_json"
            };
            let mut o = Obj::after(out);
            o.raw("call_id", b"null").raw("kind", b"null");
            invalid(&mut o, reason, None);
            return (o.finish(), Some(reason.to_owned()));
        }
    };
    let cdr = Cdr::of(&obj);
    let mut o = Obj::after(out);
    let call_id = text(cdr.call_id);
    o.opt_str("call_id", call_id);
    for (echoed, value) in [("tenant_id", cdr.tenant_id), ("user_id", cdr.user_id)] {
        if let Some(v) = value {
            json::write_value(o.key(echoed), v);
        }
    }
    let kind = text(cdr.kind).and_then(Kind::parse);
    o.opt_str("kind", kind.map(Kind::as_str));
    let refuse = |mut o: Obj, reason: String, duration: Option<&Instant>| {
        invalid(&mut o, &reason, duration);
        (o.finish(), Some(reason))
    };
    if let Some(missing) = cdr.missing() {
        return refuse(o, format!("missing_field:{missing}"), None);
    }
    if call_id.is_none() {
        return refuse(o, "bad_field:call_id".into(), None);
    }
    let Some(kind) = kind else {
        return refuse(o, "bad_field:kind".into(), None);
    };
    let instant = |value| text(value).and_then(|s| parse_instant(s).ok());
    let Some(start) = instant(cdr.start) else {
        return refuse(o, "bad_field:start".into(), None);
    };
    let Some(end) = instant(cdr.end) else {
        return refuse(o, "bad_field:end".into(), None);
    };
    let duration = &end - &start;
    let Some(service) = kind.service() else {
        priced_members(&mut o, "free", None, None, Some(&duration), 0, 0, currency);
        return (o.finish(), None);
    };
    let number = |value| text(value).filter(|s| is_e164(s));
    let (Some(from), Some(to)) = (number(cdr.from), number(cdr.to)) else {
        return refuse(o, "bad_number".into(), Some(&duration));
    };
    let number = if kind == Kind::TollfreeInbound {
        from
    } else {
        to
    };
    let Some(row) = deck.lookup(service, number.get(1..).unwrap_or(""), &start) else {
        priced_members(
            &mut o,
            "unrated",
            Some("no_rate"),
            None,
            Some(&duration),
            0,
            0,
            currency,
        );
        return (o.finish(), Some("no_rate".into()));
    };
    let billed = billed_seconds(&duration, row.first_increment_s, row.next_increment_s);
    let charge = price_micros(row, billed, true);
    priced_members(
        &mut o,
        "rated",
        None,
        Some(row),
        Some(&duration),
        billed,
        charge,
        Some(&row.currency),
    );
    (o.finish(), None)
}

/// The priced lines of a piece of a CDR file and its stderr messages.
#[derive(Default)]
pub struct Rated {
    pub output: Vec<u8>,
    pub messages: Vec<u8>,
    /// Lines in the piece (blank ones included: they count for line numbers).
    pub lines: u64,
}

fn rate_run(deck: &Deck, text: &[u8], name: &str, first_line: u64) -> Rated {
    let mut rated = Rated {
        output: Vec::with_capacity(text.len() * 2),
        ..Rated::default()
    };
    for piece in text.split_inclusive(|&b| b == b'\n') {
        let line = first_line + rated.lines;
        rated.lines += 1;
        let raw = trim_newline(piece);
        if is_blank(raw) {
            continue;
        }
        let (output, reason) = rate_line_after(deck, raw, std::mem::take(&mut rated.output));
        rated.output = output;
        if let Some(reason) = reason.filter(|r| r != "no_rate") {
            {
                // every refusal but `no_rate` (status unrated) is an invalid line
                rated
                    .messages
                    .extend_from_slice(format!("{name}:{line}: invalid: {reason}\n").as_bytes());
            }
        }
        rated.output.push(b'\n');
    }
    rated
}

/// Price whole lines on `threads` threads; `first_line` is the number of the text's first line.
pub fn rate_text(deck: &Deck, text: &[u8], name: &str, first_line: u64, threads: usize) -> Rated {
    let mut parts = rate_parts(deck, text, name, first_line, threads).into_iter();
    let mut all = parts.next().unwrap_or_default();
    for r in parts {
        all.output.extend_from_slice(&r.output);
        all.messages.extend_from_slice(&r.messages);
        all.lines += r.lines;
    }
    all
}

/// The same, as one `Rated` per thread in line order (a driver copies them out once).
pub fn rate_parts(
    deck: &Deck,
    text: &[u8],
    name: &str,
    first_line: u64,
    threads: usize,
) -> Vec<Rated> {
    let threads = threads.max(1);
    if threads == 1 || text.len() < 1 << 16 {
        return vec![rate_run(deck, text, name, first_line)];
    }
    // cut at line ends near equal shares
    let mut cuts = vec![0usize];
    for k in 1..threads {
        let target = (text.len() * k / threads).max(*cuts.last().unwrap_or(&0));
        let cut = memchr::memchr(b'\n', text.get(target..).unwrap_or(b""))
            .map_or(text.len(), |p| target + p + 1);
        cuts.push(cut);
    }
    cuts.push(text.len());
    let parts: Vec<&[u8]> = cuts
        .windows(2)
        .map(|w| text.get(w[0]..w[1]).unwrap_or(b""))
        .collect();
    // each part's first line number needs the line count of the parts before it
    let counts: Vec<u64> = parts.iter().map(|p| count_lines(p)).collect();
    std::thread::scope(|s| {
        let mut line = first_line;
        let handles: Vec<_> = parts
            .iter()
            .zip(&counts)
            .map(|(part, n)| {
                let start = line;
                line += n;
                s.spawn(move || rate_run(deck, part, name, start))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Lines in a text: its `\n`s, plus one for a last line without one.
pub fn count_lines(text: &[u8]) -> u64 {
    let n = memchr::memchr_iter(b'\n', text).count() as u64;
    n + u64::from(!text.is_empty() && text.last() != Some(&b'\n'))
}
