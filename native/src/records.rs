//! Output records (contracts.md): built in one place so `rate`, `simulate` and the worker
//! write the same bytes. Keys come in the contract's order; money is a 4-place string,
//! seconds an exact JSON number, instants `YYYY-MM-DDTHH:MM:SS.mmmZ`.

use crate::clock::{write_instant, write_seconds, Instant};
use crate::deck::{Rate, NO_ROW_MEMBERS};
use crate::json::write_str;
use crate::money::write_money;

pub const DISCONNECTS: &str = "disconnects";
pub const CHARGES: &str = "charges";
pub const NOTIFICATIONS: &str = "notifications";
pub const PAYMENTS: &str = "payments";
pub const DEAD_LETTERS: &str = "dead-letters";
pub const OUTPUT_TOPICS: [&str; 5] = [DISCONNECTS, CHARGES, NOTIFICATIONS, PAYMENTS, DEAD_LETTERS];

/// The topic of an output record, as a small number (index into `OUTPUT_TOPICS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    Disconnects = 0,
    Charges = 1,
    Notifications = 2,
    Payments = 3,
    DeadLetters = 4,
}

impl Topic {
    pub fn as_str(self) -> &'static str {
        OUTPUT_TOPICS[self as usize]
    }

    pub fn parse(text: &str) -> Option<Topic> {
        Some(match text {
            DISCONNECTS => Topic::Disconnects,
            CHARGES => Topic::Charges,
            NOTIFICATIONS => Topic::Notifications,
            PAYMENTS => Topic::Payments,
            DEAD_LETTERS => Topic::DeadLetters,
            _ => return None,
        })
    }
}

/// One output record: its topic and its JSON bytes.
pub type Output = (Topic, Vec<u8>);

/// A JSON object written member by member, in call order.
pub struct Obj {
    pub out: Vec<u8>,
    /// Where this object's `{` is in `out` (0 unless it continues a caller's buffer).
    start: usize,
}

impl Default for Obj {
    fn default() -> Self {
        Self::new()
    }
}

impl Obj {
    pub fn new() -> Obj {
        Obj::after(Vec::with_capacity(256))
    }

    /// An object written at the end of `out` (so a run of lines fills one buffer).
    pub fn after(mut out: Vec<u8>) -> Obj {
        let start = out.len();
        out.push(b'{');
        Obj { out, start }
    }

    /// Starts the member `key` (writes the comma and the key).
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if self.out.len() > self.start + 1 {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        &mut self.out
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        write_str(self.key(key), value);
        self
    }

    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => write_str(self.key(key), v),
            None => self.key(key).extend_from_slice(b"null"),
        }
        self
    }

    /// A member whose value is already JSON text.
    pub fn raw(&mut self, key: &str, json: &[u8]) -> &mut Self {
        self.key(key).extend_from_slice(json);
        self
    }

    /// Members already written as JSON text (`"a":1,"b":2`).
    pub fn members(&mut self, json: &[u8]) -> &mut Self {
        if self.out.len() > 1 {
            self.out.push(b',');
        }
        self.out.extend_from_slice(json);
        self
    }

    pub fn int(&mut self, key: &str, value: i128) -> &mut Self {
        let mut buf = itoa::Buffer::new();
        self.key(key)
            .extend_from_slice(buf.format(value).as_bytes());
        self
    }

    pub fn money(&mut self, key: &str, micros: i128) -> &mut Self {
        let out = self.key(key);
        out.push(b'"');
        write_money(out, micros);
        out.push(b'"');
        self
    }

    pub fn instant(&mut self, key: &str, at: &Instant) -> &mut Self {
        let out = self.key(key);
        out.push(b'"');
        write_instant(out, at);
        out.push(b'"');
        self
    }

    pub fn seconds(&mut self, key: &str, us: &Instant) -> &mut Self {
        write_seconds(self.key(key), us);
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

/// The contract's pricing members shared by `rate` lines and charges records.
#[allow(clippy::too_many_arguments)]
pub fn priced_members(
    o: &mut Obj,
    status: &str,
    reason: Option<&str>,
    row: Option<&Rate>,
    duration: Option<&Instant>,
    billed_s: i64,
    charge_micros: i128,
    currency: Option<&str>,
) {
    o.str("status", status).opt_str("reason", reason);
    o.members(row.map_or(NO_ROW_MEMBERS, |r| &r.members_json));
    match duration {
        Some(d) => o.seconds("duration_seconds", d),
        None => o.raw("duration_seconds", b"null"),
    };
    o.int("billed_seconds", i128::from(billed_s))
        .money("charge", charge_micros)
        .opt_str("currency", currency);
}

/// The charges record of a finished (or refused) call.
pub struct Charge<'a> {
    pub tenant_id: &'a str,
    pub call_id: &'a str,
    pub user_id: Option<&'a str>,
    pub kind: &'a str,
    pub status: &'a str,
    pub reason: Option<&'a str>,
    pub row: Option<&'a Rate>,
    pub start: &'a Instant,
    pub end: &'a Instant,
    pub billed_s: i64,
    pub charge_micros: i128,
    pub currency: Option<&'a str>,
    pub pool: Option<&'a str>,
    pub pool_us: &'a Instant,
    pub disconnected: Option<&'a str>,
}

impl Charge<'_> {
    pub fn to_json(&self) -> Vec<u8> {
        let mut o = Obj::new();
        let mut id = String::with_capacity(self.tenant_id.len() + self.call_id.len() + 1);
        id.push_str(self.tenant_id);
        id.push(':');
        id.push_str(self.call_id);
        o.str("charge_id", &id)
            .str("call_id", self.call_id)
            .str("tenant_id", self.tenant_id)
            .opt_str("user_id", self.user_id)
            .str("kind", self.kind)
            .instant("start", self.start)
            .instant("end", self.end);
        let duration = self.end - self.start;
        priced_members(
            &mut o,
            self.status,
            self.reason,
            self.row,
            Some(&duration),
            self.billed_s,
            self.charge_micros,
            self.currency,
        );
        o.opt_str("pool", self.pool)
            .seconds("pool_seconds", self.pool_us)
            .opt_str("disconnected", self.disconnected);
        o.finish()
    }
}

/// The disconnects record; `switch_id_json` is the switch id as JSON text (string, integer,
/// boolean or null, as the call_start carried it).
pub fn disconnect_json(
    tenant_id: &str,
    call_id: &str,
    switch_id_json: &[u8],
    reason: &str,
    at: &Instant,
) -> Vec<u8> {
    let mut o = Obj::new();
    o.str("call_id", call_id)
        .str("tenant_id", tenant_id)
        .raw("switch_id", switch_id_json)
        .str("reason", reason)
        .instant("at", at);
    o.finish()
}

/// A notifications record's head; the caller adds the kind's details and finishes it.
pub fn notification(notification_id: &str, tenant_id: &str, kind: &str, ts: &Instant) -> Obj {
    let mut o = Obj::new();
    o.str("notification_id", notification_id)
        .str("tenant_id", tenant_id)
        .str("kind", kind)
        .instant("ts", ts);
    o
}

pub fn payment_json(
    request_id: &str,
    tenant_id: &str,
    amount_micros: i128,
    currency: Option<&str>,
    ts: &Instant,
) -> Vec<u8> {
    let mut o = Obj::new();
    o.str("request_id", request_id)
        .str("tenant_id", tenant_id)
        .money("amount", amount_micros)
        .opt_str("currency", currency)
        .instant("ts", ts);
    o.finish()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The most bytes of a rejected input its dead letter keeps. A dead letter of a larger input
/// keeps its first bytes (cut back to a whole UTF-8 character) and adds `original_size` and
/// `original_sha256` of the whole, so the record stays well inside a Kafka record's limit
/// however large the input was (its text form is at most about 7.3 times the kept bytes).
pub const DEAD_LETTER_ORIGINAL_MAX_BYTES: usize = 65_536;

/// The rejected input kept whole (up to `DEAD_LETTER_ORIGINAL_MAX_BYTES`): as text when it is
/// UTF-8, else also as base64. `line` is the file line or the partition offset.
pub fn dead_letter_json(
    reason: &str,
    original: &[u8],
    line: Option<i128>,
    tenant_id: Option<&str>,
) -> Vec<u8> {
    let kept = dead_letter_kept(original);
    let mut o = Obj::new();
    o.str("reason", reason);
    let text = String::from_utf8_lossy(kept);
    o.str("original", &text);
    match line {
        Some(n) => o.int("line", n),
        None => o.raw("line", b"null"),
    };
    o.opt_str("tenant_id", tenant_id);
    if std::str::from_utf8(kept).is_err() {
        o.str("original_base64", &base64(kept));
    }
    if kept.len() < original.len() {
        o.int("original_size", original.len() as i128);
        o.str("original_sha256", &sha256_hex(original));
    }
    o.finish()
}

/// The bytes of `original` a dead letter keeps: all of them up to the limit, else the first
/// `DEAD_LETTER_ORIGINAL_MAX_BYTES` less a UTF-8 character the cut left incomplete.
fn dead_letter_kept(original: &[u8]) -> &[u8] {
    let Some(kept) = original.get(..DEAD_LETTER_ORIGINAL_MAX_BYTES) else {
        return original;
    };
    match std::str::from_utf8(kept) {
        Err(e) if e.error_len().is_none() => kept.get(..e.valid_up_to()).unwrap_or(kept),
        _ => kept,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// The simulate line: the record with `"topic"` added first.
pub fn with_topic(out: &mut Vec<u8>, topic: Topic, payload: &[u8]) {
    out.extend_from_slice(b"{\"topic\":\"");
    out.extend_from_slice(topic.as_str().as_bytes());
    out.extend_from_slice(b"\",");
    out.extend_from_slice(payload.get(1..).unwrap_or(b""));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"\xff\xfe\x00"), "//4A");
    }

    #[test]
    fn dead_letter_of_a_large_input_keeps_its_head_size_and_hash() {
        let mut big = vec![b'a'; DEAD_LETTER_ORIGINAL_MAX_BYTES - 1];
        big.extend_from_slice("é".as_bytes()); // cut in the middle of its two bytes
        big.extend_from_slice(b"tail");
        let rec = String::from_utf8(dead_letter_json("invalid_json", &big, Some(7), None)).unwrap();
        let head = "a".repeat(DEAD_LETTER_ORIGINAL_MAX_BYTES - 1);
        assert!(rec.starts_with(&format!(
            "{{\"reason\":\"invalid_json\",\"original\":\"{head}\",\"line\":7,\"tenant_id\":null,\"original_size\":{}",
            big.len()
        )));
        assert!(!rec.contains("original_base64"));
        let small = dead_letter_json("invalid_json", b"abc", None, None);
        assert!(!String::from_utf8(small).unwrap().contains("original_size"));
    }

    #[test]
    fn sha256_is_the_standard_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn dead_letter_keeps_bytes() {
        let rec = dead_letter_json("invalid_json", b"{\xff", Some(3), None);
        assert_eq!(
            String::from_utf8(rec).unwrap(),
            "{\"reason\":\"invalid_json\",\"original\":\"{\u{fffd}\",\"line\":3,\"tenant_id\":null,\"original_base64\":\"e/8=\"}"
        );
    }
}
