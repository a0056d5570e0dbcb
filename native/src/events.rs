//! Input events of the calls and accounts topics, judged before the core sees them.
//!
//! A pure function of the raw bytes and the deck currency: a line becomes an `Event`, or a
//! `Rejection` naming its dead-letter reason (contracts.md: the first failing rule wins).

use crate::clock::{parse_instant, Instant};
use crate::json::{self, Object, Value};
use crate::money::{parse_command_micros, MICROS_PER_UNIT};
use crate::pricing::Kind;

/// Each command type and the fields it requires, in the contract's order.
pub const COMMAND_FIELDS: [(&str, &[&str]); 6] = [
    ("add_funds", &["amount", "currency"]),
    (
        "set_auto_recharge",
        &["enabled", "trigger_amount", "recharge_amount"],
    ),
    ("payment_result", &["request_id", "status"]),
    ("assign_licence", &["user_id"]),
    ("remove_licence", &["user_id"]),
    ("set_pool", &["plan", "country", "minutes"]),
];
const CALL_START_FIELDS: [&str; 9] = [
    "call_id",
    "tenant_id",
    "user_id",
    "kind",
    "from",
    "to",
    "usage_location",
    "switch_id",
    "ts",
];
const CALL_END_FIELDS: [&str; 3] = ["call_id", "tenant_id", "ts"];
/// Pool minutes above this (the largest JSON integer kept exact) are refused (`bad_field:minutes`).
pub const MAX_POOL_MINUTES: i128 = u64::MAX as i128;

/// What a valid input asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    CallStart {
        kind: Kind,
        user_id: Option<String>,
        /// The numbers when they are strings (anything else cannot be E.164).
        from: Option<String>,
        to: Option<String>,
        usage_location: Option<String>,
        /// The switch id as JSON text: a string, an integer, a boolean or null.
        switch_id_json: Vec<u8>,
    },
    CallEnd,
    AddFunds {
        amount_micros: i128,
    },
    SetAutoRecharge {
        enabled: bool,
        trigger_micros: Option<i128>,
        recharge_micros: Option<i128>,
    },
    PaymentResult {
        request_id: String,
        succeeded: bool,
        /// The `reason` member as JSON text (any JSON value; null when absent).
        reason_json: Vec<u8>,
    },
    AssignLicence {
        user_id: String,
    },
    RemoveLicence {
        user_id: String,
    },
    SetPool {
        pool: String,
        minutes: i128,
    },
}

impl Body {
    /// The input's `type` as the switch or tool wrote it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::CallStart { .. } => "call_start",
            Body::CallEnd => "call_end",
            Body::AddFunds { .. } => "add_funds",
            Body::SetAutoRecharge { .. } => "set_auto_recharge",
            Body::PaymentResult { .. } => "payment_result",
            Body::AssignLicence { .. } => "assign_licence",
            Body::RemoveLicence { .. } => "remove_licence",
            Body::SetPool { .. } => "set_pool",
        }
    }
}

/// A valid input: its tenant, instant and key (call_id for calls, command_id for commands).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub tenant_id: String,
    pub ts: Instant,
    pub key: String,
    pub body: Body,
}

impl Event {
    /// The key under which the input is remembered for duplicates (edge rule 7).
    pub fn seen_key(&self) -> String {
        let head = match self.body {
            Body::CallStart { .. } => "call_start\u{1f}",
            Body::CallEnd => "call_end\u{1f}",
            _ => "cmd\u{1f}",
        };
        let mut key = String::with_capacity(head.len() + self.key.len());
        key.push_str(head);
        key.push_str(&self.key);
        key
    }

    pub fn is_call(&self) -> bool {
        matches!(self.body, Body::CallStart { .. } | Body::CallEnd)
    }
}

/// An invalid input: the dead-letter reason and the tenant when it could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub tenant_id: Option<String>,
}

fn bad(field: &str) -> String {
    format!("bad_field:{field}")
}

fn get<'v, 'a>(obj: &'v Object<'a>, field: &str) -> &'v Value<'a> {
    obj.get(field).unwrap_or(&Value::Null)
}

/// A non-empty string field (or null when `nullable`).
fn text(obj: &Object<'_>, field: &str, nullable: bool) -> Result<Option<String>, String> {
    match get(obj, field) {
        Value::Null if nullable => Ok(None),
        Value::Str(s) if !s.is_empty() => Ok(Some(s.to_string())),
        _ => Err(bad(field)),
    }
}

fn required_text(obj: &Object<'_>, field: &str) -> Result<String, String> {
    text(obj, field, false)?.ok_or_else(|| bad(field))
}

/// A decimal string or JSON integer with at most 4 places; a JSON float is refused.
fn amount(obj: &Object<'_>, field: &str, allow_zero: bool) -> Result<i128, String> {
    let micros = match get(obj, field) {
        Value::Int(n) => n.checked_mul(MICROS_PER_UNIT).ok_or_else(|| bad(field))?,
        Value::Str(s) => parse_command_micros(s, 4).map_err(|_| bad(field))?,
        _ => return Err(bad(field)),
    };
    if micros < 0 || (micros == 0 && !allow_zero) {
        return Err(bad(field));
    }
    Ok(micros)
}

fn minutes(obj: &Object<'_>) -> Result<i128, String> {
    let value = match get(obj, "minutes") {
        Value::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            let digits = s.trim_start_matches('0');
            if digits.len() > 20 {
                return Err(bad("minutes"));
            }
            digits.parse::<i128>().unwrap_or(0)
        }
        Value::Int(n) => *n,
        _ => return Err(bad("minutes")),
    };
    if !(0..=MAX_POOL_MINUTES).contains(&value) {
        return Err(bad("minutes"));
    }
    Ok(value)
}

fn json_text(v: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    json::write_value(&mut out, v);
    out
}

fn call_start(obj: &Object<'_>) -> Result<Body, String> {
    let kind = match get(obj, "kind") {
        Value::Str(s) => Kind::parse(s).ok_or_else(|| bad("kind"))?,
        _ => return Err(bad("kind")),
    };
    let switch_id = get(obj, "switch_id");
    if !matches!(
        switch_id,
        Value::Null | Value::Str(_) | Value::Int(_) | Value::Bool(_)
    ) {
        return Err(bad("switch_id"));
    }
    let number = |field: &str| match get(obj, field) {
        Value::Str(s) => Some(s.to_string()),
        _ => None,
    };
    let user_id = text(obj, "user_id", true)?;
    let usage_location = text(obj, "usage_location", true)?;
    Ok(Body::CallStart {
        kind,
        user_id,
        from: number("from"),
        to: number("to"),
        usage_location,
        switch_id_json: json_text(switch_id),
    })
}

fn command(kind: &str, obj: &Object<'_>, currency: Option<&str>) -> Result<Body, String> {
    match kind {
        "add_funds" => {
            let amount_micros = amount(obj, "amount", false)?;
            let cur = required_text(obj, "currency")?;
            if currency.is_some_and(|c| c != cur) {
                return Err("currency_mismatch".into());
            }
            Ok(Body::AddFunds { amount_micros })
        }
        "set_auto_recharge" => {
            let enabled = match get(obj, "enabled") {
                Value::Bool(b) => *b,
                _ => return Err(bad("enabled")),
            };
            let read = |field: &str, zero_ok: bool| -> Result<Option<i128>, String> {
                if matches!(get(obj, field), Value::Null) && !enabled {
                    return Ok(None); // present but null: keep the previous setting while disabled
                }
                amount(obj, field, zero_ok).map(Some)
            };
            let trigger_micros = read("trigger_amount", true)?;
            let recharge_micros = read("recharge_amount", false)?;
            Ok(Body::SetAutoRecharge {
                enabled,
                trigger_micros,
                recharge_micros,
            })
        }
        "payment_result" => {
            let succeeded = match get(obj, "status") {
                Value::Str(s) if s == "succeeded" => true,
                Value::Str(s) if s == "failed" => false,
                _ => return Err(bad("status")),
            };
            let reason_json = json_text(get(obj, "reason"));
            let request_id = required_text(obj, "request_id")?;
            Ok(Body::PaymentResult {
                request_id,
                succeeded,
                reason_json,
            })
        }
        "assign_licence" => Ok(Body::AssignLicence {
            user_id: required_text(obj, "user_id")?,
        }),
        "remove_licence" => Ok(Body::RemoveLicence {
            user_id: required_text(obj, "user_id")?,
        }),
        _ => {
            let plan = match get(obj, "plan") {
                Value::Str(s)
                    if matches!(s.as_ref(), "domestic" | "international" | "conferencing") =>
                {
                    s.to_string()
                }
                _ => return Err(bad("plan")),
            };
            let pool = if plan == "conferencing" {
                plan
            } else {
                format!("{plan}:{}", required_text(obj, "country")?)
            };
            Ok(Body::SetPool {
                pool,
                minutes: minutes(obj)?,
            })
        }
    }
}

/// Validate one input line; the first failing rule names the dead-letter reason.
/// The largest input record the engine reads (key and value on the wire, the line in a file):
/// 1 MiB, Kafka's default record limit. A switch's or an admin's event is a few hundred bytes;
/// a larger one is dead-lettered `too_large` unread, so no output, state or dead letter can
/// grow from it beyond a Kafka record.
pub const INPUT_MAX_BYTES: usize = 1_048_576;

pub fn parse_event(raw: &[u8], currency: Option<&str>) -> Result<Event, Rejection> {
    let reject = |reason: String, tenant_id: Option<String>| Rejection { reason, tenant_id };
    if raw.len() > INPUT_MAX_BYTES {
        return Err(reject("too_large".into(), None));
    }
    let value = json::parse(raw).map_err(|_| reject("invalid_json".into(), None))?;
    let Value::Object(obj) = value else {
        return Err(reject("not_an_object".into(), None));
    };
    let tenant_id = match obj.get("tenant_id") {
        Some(Value::Str(s)) if !s.is_empty() => Some(s.to_string()),
        _ => None,
    };
    let Some(kind) = obj.get("type") else {
        return Err(reject("missing_field:type".into(), tenant_id));
    };
    let Value::Str(kind) = kind else {
        return Err(reject("unknown_type".into(), tenant_id));
    };
    let kind: &str = kind;
    let command_fields = COMMAND_FIELDS
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, f)| *f);
    let fields: Vec<&str> = match kind {
        "call_start" => CALL_START_FIELDS.to_vec(),
        "call_end" => CALL_END_FIELDS.to_vec(),
        _ => match command_fields {
            Some(f) => ["tenant_id", "command_id", "ts"]
                .iter()
                .chain(f.iter())
                .copied()
                .collect(),
            None => return Err(reject("unknown_type".into(), tenant_id)),
        },
    };
    if let Some(missing) = fields.iter().find(|f| !obj.contains_key(f)) {
        return Err(reject(format!("missing_field:{missing}"), tenant_id));
    }
    let judged = (|| -> Result<Event, String> {
        let tid = required_text(&obj, "tenant_id")?;
        let ts = match get(&obj, "ts") {
            Value::Str(s) => parse_instant(s).map_err(|_| bad("ts"))?,
            _ => return Err(bad("ts")),
        };
        let (key, body) = match kind {
            "call_start" => (required_text(&obj, "call_id")?, call_start(&obj)?),
            "call_end" => (required_text(&obj, "call_id")?, Body::CallEnd),
            _ => (
                required_text(&obj, "command_id")?,
                command(kind, &obj, currency)?,
            ),
        };
        Ok(Event {
            tenant_id: tid,
            ts,
            key,
            body,
        })
    })();
    judged.map_err(|reason| reject(reason, tenant_id))
}

/// An input line's `ts`, or None when it has none that parses (it will be dead-lettered):
/// for ordering and pacing inputs before they are decided.
pub fn stamp_of(raw: &[u8]) -> Option<Instant> {
    match json::parse(raw).ok()? {
        Value::Object(obj) => match obj.get("ts")? {
            Value::Str(s) => parse_instant(s).ok(),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(raw: &str) -> String {
        parse_event(raw.as_bytes(), Some("GBP")).unwrap_err().reason
    }

    #[test]
    fn first_failing_rule_names_the_reason() {
        assert_eq!(reason("{"), "invalid_json");
        assert_eq!(reason("[]"), "not_an_object");
        assert_eq!(reason("{}"), "missing_field:type");
        assert_eq!(reason(r#"{"type":1}"#), "unknown_type");
        assert_eq!(reason(r#"{"type":"x"}"#), "unknown_type");
        assert_eq!(
            reason(r#"{"type":"call_end","call_id":"c","tenant_id":"t"}"#),
            "missing_field:ts"
        );
        assert_eq!(
            reason(r#"{"type":"call_end","call_id":"c","tenant_id":"t","ts":"2026-01-01"}"#),
            "bad_field:ts"
        );
        assert_eq!(
            reason(
                r#"{"type":"add_funds","tenant_id":"t","command_id":"k","ts":"2026-01-01T00:00:00Z","amount":1.5,"currency":"GBP"}"#
            ),
            "bad_field:amount"
        );
        assert_eq!(
            reason(
                r#"{"type":"add_funds","tenant_id":"t","command_id":"k","ts":"2026-01-01T00:00:00Z","amount":"1.5","currency":"EUR"}"#
            ),
            "currency_mismatch"
        );
    }

    #[test]
    fn a_valid_call_start() {
        let ev = parse_event(
            br#"{"type":"call_start","call_id":"c1","tenant_id":"t","user_id":null,"kind":"inbound","from":1,"to":"+4420","usage_location":"GB","switch_id":true,"ts":"2026-01-01T00:00:00Z"}"#,
            None,
        )
        .unwrap();
        assert_eq!(ev.seen_key(), "call_start\u{1f}c1");
        match ev.body {
            Body::CallStart {
                from,
                switch_id_json,
                ..
            } => {
                assert_eq!(from, None);
                assert_eq!(switch_id_json, b"true");
            }
            _ => panic!("not a call_start"),
        }
    }
}
