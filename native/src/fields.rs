//! Readers of the values in the tenant state format (`state.rs`), shared by the state's
//! loader and the account view (`view.rs`), which reads the same bytes without a deck. Each
//! names the field that is not what the format says; the caller's error type says where.

use crate::clock::Instant;
use crate::json::Value;

/// The field (as the caller named it) that is missing or of the wrong kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad(pub String);

pub type Read<T> = Result<T, Bad>;

fn bad<T>(what: &str) -> Read<T> {
    Err(Bad(what.to_owned()))
}

pub fn int(v: &Value<'_>, what: &str) -> Read<i128> {
    match v {
        Value::Int(n) => Ok(*n),
        _ => bad(what),
    }
}

pub fn opt_int(v: &Value<'_>, what: &str) -> Read<Option<i128>> {
    match v {
        Value::Null => Ok(None),
        _ => int(v, what).map(Some),
    }
}

pub fn boolean(v: &Value<'_>, what: &str) -> Read<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => bad(what),
    }
}

pub fn string<'v>(v: &'v Value<'_>, what: &str) -> Read<&'v str> {
    match v {
        Value::Str(s) => Ok(s),
        _ => bad(what),
    }
}

pub fn opt_string<'v>(v: &'v Value<'_>, what: &str) -> Read<Option<&'v str>> {
    match v {
        Value::Null => Ok(None),
        _ => string(v, what).map(Some),
    }
}

/// An instant as the state writes it: integer microseconds, or a `"num/den"` rational.
pub fn instant(v: &Value<'_>, what: &str) -> Read<Instant> {
    match v {
        Value::Int(n) => Ok(Instant::Us(*n)),
        Value::Str(s) => Instant::from_state_text(s).map_or_else(|| bad(what), Ok),
        _ => bad(what),
    }
}

pub fn opt_instant(v: &Value<'_>, what: &str) -> Read<Option<Instant>> {
    match v {
        Value::Null => Ok(None),
        _ => instant(v, what).map(Some),
    }
}

/// An array, of exactly `len` items when given.
pub fn array<'v, 'a>(v: &'v Value<'a>, what: &str, len: Option<usize>) -> Read<&'v [Value<'a>]> {
    match v {
        Value::Array(items) if len.is_none_or(|n| items.len() == n) => Ok(items),
        _ => bad(what),
    }
}
