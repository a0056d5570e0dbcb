//! Tenant state to bytes and back, for the worker's changelog-backed tables.
//!
//! The format (version 1) is a JSON document of arrays; rational instants travel as
//! `"num/den"` strings, everything else as JSON integers, so a restored tenant decides exactly
//! as the one that was saved. `extra` carries the driver's own members untouched.

use crate::clock::Instant;
use crate::deck::Deck;
use crate::fields::{self, array, boolean, instant, int, opt_instant, opt_int};
use crate::json::{self, Value};
use crate::pricing::Kind;
use crate::records::{Output, Topic};
use crate::tenant::{LiveCall, Lot, Pool, Tenant};

pub const FORMAT_VERSION: i128 = 1;

fn put_int(out: &mut Vec<u8>, n: i128) {
    json::write_int(out, n);
}

fn put_instant(out: &mut Vec<u8>, t: &Instant) {
    match t.to_state_text() {
        None => put_int(out, t.floor_us()),
        Some(text) => json::write_str(out, &text),
    }
}

fn put_opt_instant(out: &mut Vec<u8>, t: Option<&Instant>) {
    match t {
        Some(t) => put_instant(out, t),
        None => out.extend_from_slice(b"null"),
    }
}

fn put_opt_int(out: &mut Vec<u8>, n: Option<i128>) {
    match n {
        Some(n) => put_int(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json::write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// A list written as `[a,b,…]` with `item` writing each element.
fn put_list<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut item: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, x);
    }
    out.push(b']');
}

/// The tenant as state bytes; `extra_json` is a JSON object of the driver's own members.
pub fn dump_tenant(t: &Tenant, deck: &Deck, extra_json: &[u8]) -> Vec<u8> {
    let _ = deck;
    let mut o = Vec::with_capacity(512);
    o.extend_from_slice(b"{\"v\":1,\"tenant_id\":");
    json::write_str(&mut o, &t.tenant_id);
    o.extend_from_slice(b",\"clock\":");
    put_opt_instant(&mut o, t.clock.as_ref());
    o.extend_from_slice(b",\"pools\":");
    put_list(&mut o, &t.pools, |o, p| {
        o.push(b'[');
        json::write_str(o, &p.key);
        o.push(b',');
        put_int(o, p.allowance_us);
        o.push(b',');
        json::write_str(o, &p.month);
        o.push(b',');
        put_instant(o, &p.settled_at);
        o.push(b',');
        put_instant(o, &p.used_us);
        o.push(b',');
        put_list(o, &p.calls, |o, c| json::write_str(o, c));
        o.push(b',');
        put_bool(o, p.sent_80);
        o.push(b',');
        put_bool(o, p.sent_100);
        o.push(b']');
    });
    o.extend_from_slice(b",\"month_due\":");
    put_opt_int(&mut o, t.month_due);
    o.extend_from_slice(b",\"lots\":");
    put_list(&mut o, &t.lots, |o, l| {
        o.push(b'[');
        json::write_str(o, &l.lot_id);
        o.push(b',');
        put_int(o, i128::from(l.seq));
        o.push(b',');
        put_instant(o, &l.bought_at);
        o.push(b',');
        put_instant(o, &l.expires_at);
        o.push(b',');
        put_int(o, l.remaining_micros);
        o.push(b',');
        put_bool(o, l.expired);
        o.push(b',');
        put_int(o, i128::from(l.forfeits));
        o.push(b']');
    });
    o.extend_from_slice(b",\"lot_seq\":");
    put_int(&mut o, i128::from(t.lot_seq));
    o.extend_from_slice(b",\"balance\":");
    put_int(&mut o, t.balance_micros);
    o.extend_from_slice(b",\"holds\":");
    put_int(&mut o, t.holds_micros);
    o.extend_from_slice(b",\"licences\":");
    let mut licences: Vec<&String> = t.licences.iter().collect();
    licences.sort();
    put_list(&mut o, licences, |o, u| json::write_str(o, u));
    o.extend_from_slice(b",\"auto\":[");
    put_bool(&mut o, t.auto_enabled);
    o.push(b',');
    put_opt_int(&mut o, t.trigger_micros);
    o.push(b',');
    put_opt_int(&mut o, t.recharge_micros);
    o.extend_from_slice(b"],\"outstanding\":");
    match &t.outstanding {
        Some((rid, amount)) => {
            o.push(b'[');
            json::write_str(&mut o, rid);
            o.push(b',');
            put_int(&mut o, *amount);
            o.push(b']');
        }
        None => o.extend_from_slice(b"null"),
    }
    o.extend_from_slice(b",\"backoff_until\":");
    put_opt_instant(&mut o, t.backoff_until.as_ref());
    o.extend_from_slice(b",\"counters\":");
    put_list(
        &mut o,
        [t.requests_n, t.plain_notices_n, t.call_seq],
        |o, n| put_int(o, i128::from(n)),
    );
    o.extend_from_slice(b",\"live\":");
    put_list(&mut o, &t.live, |o, c| {
        o.push(b'[');
        json::write_str(o, &c.call_id);
        o.push(b',');
        put_int(o, i128::from(c.seq));
        o.push(b',');
        put_opt_str(o, c.user_id.as_deref());
        o.push(b',');
        json::write_str(o, c.kind.as_str());
        o.push(b',');
        o.extend_from_slice(&c.switch_id_json);
        o.push(b',');
        put_opt_int(o, c.row.map(|r| r as i128));
        o.push(b',');
        put_instant(o, &c.start);
        o.push(b',');
        put_opt_str(o, c.pool_key.as_deref());
        o.push(b',');
        put_bool(o, c.on_pool);
        o.push(b',');
        put_opt_instant(o, c.pool_end.as_ref());
        o.push(b',');
        put_opt_instant(o, c.credit_start.as_ref());
        o.push(b',');
        put_bool(o, c.with_fee);
        o.push(b',');
        put_int(o, i128::from(c.prepaid_s));
        o.push(b',');
        put_int(o, c.hold_micros);
        o.push(b']');
    });
    o.extend_from_slice(b",\"forget\":[],\"extra\":");
    o.extend_from_slice(if extra_json.is_empty() {
        b"{}"
    } else {
        extra_json
    });
    o.push(b'}');
    o
}

/// Why state bytes could not be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type R<T> = Result<T, StateError>;

fn err<T>(what: &str) -> R<T> {
    Err(StateError::from(fields::Bad(what.to_owned())))
}

impl From<fields::Bad> for StateError {
    fn from(bad: fields::Bad) -> StateError {
        StateError(format!("tenant state: bad {}", bad.0))
    }
}

fn uint(v: &Value<'_>, what: &str) -> R<u64> {
    u64::try_from(int(v, what)?).or_else(|_| err(what))
}

fn string(v: &Value<'_>, what: &str) -> R<String> {
    Ok(fields::string(v, what)?.to_owned())
}

fn opt_string(v: &Value<'_>, what: &str) -> R<Option<String>> {
    Ok(fields::opt_string(v, what)?.map(str::to_owned))
}

/// Restore a tenant from state bytes; returns it and its `extra` member as JSON text.
pub fn load_tenant(data: &[u8], deck: &Deck) -> R<(Tenant, Vec<u8>)> {
    let doc = json::parse(data).map_err(|e| StateError(format!("tenant state: {e}")))?;
    let Value::Object(doc) = doc else {
        return err("document");
    };
    let null = Value::Null;
    let get = |k: &str| doc.get(k).unwrap_or(&null);
    if !matches!(get("v"), Value::Int(v) if *v == FORMAT_VERSION) {
        return Err(StateError("unknown tenant state version".into()));
    }
    let mut t = Tenant::new(&string(get("tenant_id"), "tenant_id")?);
    t.clock = opt_instant(get("clock"), "clock")?;
    for p in array(get("pools"), "pools", None)? {
        let f = array(p, "pool", Some(8))?;
        t.pools.push(Pool {
            key: string(&f[0], "pool key")?,
            allowance_us: int(&f[1], "allowance")?,
            month: string(&f[2], "month")?,
            settled_at: instant(&f[3], "settled_at")?,
            used_us: instant(&f[4], "used")?,
            calls: array(&f[5], "pool calls", None)?
                .iter()
                .map(|c| string(c, "pool call"))
                .collect::<R<_>>()?,
            sent_80: boolean(&f[6], "sent_80")?,
            sent_100: boolean(&f[7], "sent_100")?,
        });
    }
    t.month_due = opt_int(get("month_due"), "month_due")?;
    for l in array(get("lots"), "lots", None)? {
        let f = array(l, "lot", Some(7))?;
        t.lots.push(Lot {
            lot_id: string(&f[0], "lot id")?,
            seq: uint(&f[1], "lot seq")?,
            bought_at: instant(&f[2], "bought_at")?,
            expires_at: instant(&f[3], "expires_at")?,
            remaining_micros: int(&f[4], "lot remaining")?,
            expired: boolean(&f[5], "lot expired")?,
            forfeits: uint(&f[6], "lot forfeits")?,
        });
    }
    t.lot_seq = uint(get("lot_seq"), "lot_seq")?;
    t.balance_micros = int(get("balance"), "balance")?;
    t.holds_micros = int(get("holds"), "holds")?;
    for u in array(get("licences"), "licences", None)? {
        t.licences.insert(string(u, "licence")?);
    }
    let auto = array(get("auto"), "auto", Some(3))?;
    t.auto_enabled = boolean(&auto[0], "auto enabled")?;
    t.trigger_micros = opt_int(&auto[1], "trigger")?;
    t.recharge_micros = opt_int(&auto[2], "recharge")?;
    t.outstanding = match get("outstanding") {
        Value::Null => None,
        v => {
            let f = array(v, "outstanding", Some(2))?;
            Some((string(&f[0], "request id")?, int(&f[1], "request amount")?))
        }
    };
    t.backoff_until = opt_instant(get("backoff_until"), "backoff_until")?;
    let counters = array(get("counters"), "counters", Some(3))?;
    t.requests_n = uint(&counters[0], "counters")?;
    t.plain_notices_n = uint(&counters[1], "counters")?;
    t.call_seq = uint(&counters[2], "counters")?;
    for c in array(get("live"), "live", None)? {
        let f = array(c, "live call", Some(14))?;
        let row = match &f[5] {
            Value::Null => None,
            v => {
                let i = usize::try_from(int(v, "row")?).or_else(|_| err("row"))?;
                if i >= deck.rows.len() {
                    return err("row (not in this deck)");
                }
                Some(i)
            }
        };
        let mut switch_id_json = Vec::new();
        json::write_value(&mut switch_id_json, &f[4]);
        t.live.push(LiveCall {
            call_id: string(&f[0], "call id")?,
            seq: uint(&f[1], "call seq")?,
            user_id: opt_string(&f[2], "user id")?,
            kind: Kind::parse(&string(&f[3], "kind")?).map_or_else(|| err("kind"), Ok)?,
            switch_id_json,
            row,
            start: instant(&f[6], "start")?,
            pool_key: opt_string(&f[7], "pool key")?,
            on_pool: boolean(&f[8], "on_pool")?,
            pool_end: opt_instant(&f[9], "pool_end")?,
            credit_start: opt_instant(&f[10], "credit_start")?,
            with_fee: boolean(&f[11], "with_fee")?,
            prepaid_s: i64::try_from(int(&f[12], "prepaid")?).or_else(|_| err("prepaid"))?,
            hold_micros: int(&f[13], "hold")?,
        });
    }
    let mut extra = Vec::new();
    json::write_value(&mut extra, get("extra"));
    Ok((t, extra))
}

/// Remembered outputs of one input, for duplicate re-emission: `topic\tjson` lines.
pub fn dump_outputs(outputs: &[Output]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (topic, payload)) in outputs.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(topic.as_str().as_bytes());
        out.push(b'\t');
        out.extend_from_slice(payload);
    }
    out
}

pub fn load_outputs(data: &[u8]) -> R<Vec<Output>> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    data.split(|&b| b == b'\n')
        .map(|line| {
            let tab = memchr::memchr(b'\t', line).map_or_else(|| err("outputs"), Ok)?;
            let topic = std::str::from_utf8(&line[..tab])
                .ok()
                .and_then(Topic::parse);
            let topic = topic.map_or_else(|| err("output topic"), Ok)?;
            Ok((topic, line[tab + 1..].to_vec()))
        })
        .collect()
}
