//! A strict JSON parser and writer with exactly the acceptance and output of the JSON library
//! the reference implementation used (orjson 3.x), so dead-letter reasons and echoed values
//! stay byte for byte the same:
//!
//! - duplicate keys: the last value wins, at the first key's position (a Python dict);
//! - integers in [i64::MIN, u64::MAX] stay integers, larger ones become doubles; a number
//!   that is infinite as a double is an error, as are NaN and Infinity;
//! - nesting deeper than 1024 is an error (checked without recursion, so any input is safe);
//! - a BOM, invalid UTF-8, lone surrogate escapes, control characters in strings and
//!   trailing bytes are errors; surrounding JSON whitespace is fine.

use std::borrow::Cow;
use std::collections::HashMap;

/// Containers may nest this deep, no deeper.
pub const MAX_DEPTH: usize = 1024;
/// Objects with more members than this get a hash index for their duplicate-key checks.
const INDEX_AFTER: usize = 16;

#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Object<'a>),
}

/// A JSON object with Python dict semantics (insertion order, last duplicate wins).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object<'a> {
    entries: Vec<(Cow<'a, str>, Value<'a>)>,
    index: Option<HashMap<String, usize>>,
}

impl<'a> Object<'a> {
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match &self.index {
            Some(ix) => ix.get(key).map(|&i| &self.entries[i].1),
            None => self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    fn insert(&mut self, key: Cow<'a, str>, value: Value<'a>) {
        let found = match &self.index {
            Some(ix) => ix.get(key.as_ref()).copied(),
            None => self.entries.iter().position(|(k, _)| *k == key),
        };
        if let Some(i) = found {
            self.entries[i].1 = value;
            return;
        }
        if let Some(ix) = &mut self.index {
            ix.insert(key.to_string(), self.entries.len());
        }
        self.entries.push((key, value));
        if self.index.is_none() && self.entries.len() > INDEX_AFTER {
            self.index = Some(
                self.entries
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.to_string(), i))
                    .collect(),
            );
        }
    }
}

/// Why a text is not accepted JSON (with the byte offset where it went wrong).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    pub message: &'static str,
    pub offset: usize,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

enum Frame<'a> {
    Array(Vec<Value<'a>>),
    Object(Object<'a>, Cow<'a, str>),
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Parser<'a> {
    fn fail<T>(&self, message: &'static str) -> Result<T, JsonError> {
        Err(JsonError {
            message,
            offset: self.i,
        })
    }

    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(|&c| is_ws(c)) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn literal(&mut self, word: &'static [u8], v: Value<'a>) -> Result<Value<'a>, JsonError> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(v)
        } else {
            self.fail("invalid literal")
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let Some(h) = self.b.get(self.i..self.i + 4) else {
            return self.fail("short \\u escape");
        };
        let mut n = 0u32;
        for &c in h {
            let d = (c as char).to_digit(16);
            let Some(d) = d else {
                return self.fail("bad \\u escape");
            };
            n = n * 16 + d;
        }
        self.i += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.i += 1; // the opening quote
        let start = self.i;
        // the common case: no escape before the closing quote
        loop {
            match self.peek() {
                None => return self.fail("unterminated string"),
                Some(b'"') => {
                    let text = &self.s[start..self.i];
                    self.i += 1;
                    return Ok(Cow::Borrowed(text));
                }
                Some(b'\\') => break,
                Some(c) if c < 0x20 => return self.fail("control character in string"),
                Some(_) => self.i += 1,
            }
        }
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.s[start..self.i]);
        loop {
            match self.peek() {
                None => return self.fail("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let Some(e) = self.peek() else {
                        return self.fail("unterminated escape");
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return self.fail("lone surrogate");
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return self.fail("lone surrogate");
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else if (0xdc00..0xe000).contains(&hi) {
                                return self.fail("lone surrogate");
                            } else {
                                hi
                            };
                            match char::from_u32(code) {
                                Some(c) => out.push(c),
                                None => return self.fail("bad \\u escape"),
                            }
                        }
                        _ => return self.fail("bad escape"),
                    }
                }
                Some(c) if c < 0x20 => return self.fail("control character in string"),
                Some(_) => {
                    // copy a run of plain bytes (whole UTF-8 characters: the input is valid)
                    let run = self.i;
                    while self
                        .peek()
                        .is_some_and(|c| c != b'"' && c != b'\\' && c >= 0x20)
                    {
                        self.i += 1;
                    }
                    out.push_str(&self.s[run..self.i]);
                }
            }
        }
    }

    fn number(&mut self) -> Result<Value<'a>, JsonError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.i += 1;
            }
            p.i - s
        };
        let int_start = self.i;
        let n = digits(self);
        if n == 0 {
            return self.fail("invalid number");
        }
        if n > 1 && self.b[int_start] == b'0' {
            return self.fail("leading zero");
        }
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return self.fail("invalid number");
            }
            is_float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return self.fail("invalid number");
            }
            is_float = true;
        }
        let text = &self.s[start..self.i];
        if !is_float && text.len() <= 21 {
            if let Ok(v) = text.parse::<i128>() {
                if (i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&v) {
                    return Ok(Value::Int(v));
                }
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => self.fail("number out of range"),
        }
    }

    fn parse(&mut self) -> Result<Value<'a>, JsonError> {
        let mut stack: Vec<Frame<'a>> = Vec::new();
        self.ws();
        'value: loop {
            // read one value (or open a container)
            let mut value = match self.peek() {
                None => return self.fail("unexpected end"),
                Some(b'{') | Some(b'[') => {
                    if stack.len() >= MAX_DEPTH {
                        return self.fail("too deeply nested");
                    }
                    let open = self.b[self.i];
                    self.i += 1;
                    self.ws();
                    if open == b'[' {
                        if self.peek() == Some(b']') {
                            self.i += 1;
                            Value::Array(Vec::new())
                        } else {
                            stack.push(Frame::Array(Vec::new()));
                            continue 'value;
                        }
                    } else if self.peek() == Some(b'}') {
                        self.i += 1;
                        Value::Object(Object::default())
                    } else {
                        let key = self.key()?;
                        stack.push(Frame::Object(Object::default(), key));
                        continue 'value;
                    }
                }
                Some(b'"') => Value::Str(self.string()?),
                Some(b't') => self.literal(b"true", Value::Bool(true))?,
                Some(b'f') => self.literal(b"false", Value::Bool(false))?,
                Some(b'n') => self.literal(b"null", Value::Null)?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => return self.fail("unexpected character"),
            };
            // hand it to its container, closing every container that ends here
            loop {
                self.ws();
                match stack.last_mut() {
                    None => {
                        if self.i != self.b.len() {
                            return self.fail("trailing data");
                        }
                        return Ok(value);
                    }
                    Some(Frame::Array(items)) => {
                        items.push(value);
                        match self.peek() {
                            Some(b',') => {
                                self.i += 1;
                                self.ws();
                                continue 'value;
                            }
                            Some(b']') => {
                                self.i += 1;
                                let Some(Frame::Array(items)) = stack.pop() else {
                                    return self.fail("internal");
                                };
                                value = Value::Array(items);
                            }
                            _ => return self.fail("expected , or ]"),
                        }
                    }
                    Some(Frame::Object(obj, key)) => {
                        obj.insert(std::mem::take(key), value);
                        match self.peek() {
                            Some(b',') => {
                                self.i += 1;
                                self.ws();
                                let next = self.key()?;
                                if let Some(Frame::Object(_, key)) = stack.last_mut() {
                                    *key = next;
                                }
                                continue 'value;
                            }
                            Some(b'}') => {
                                self.i += 1;
                                let Some(Frame::Object(obj, _)) = stack.pop() else {
                                    return self.fail("internal");
                                };
                                value = Value::Object(obj);
                            }
                            _ => return self.fail("expected , or }"),
                        }
                    }
                }
            }
        }
    }

    /// `"key"` and its colon, leaving the parser at the value.
    fn key(&mut self) -> Result<Cow<'a, str>, JsonError> {
        if self.peek() != Some(b'"') {
            return self.fail("expected a key");
        }
        let key = self.string()?;
        self.ws();
        if self.peek() != Some(b':') {
            return self.fail("expected :");
        }
        self.i += 1;
        self.ws();
        Ok(key)
    }
}

/// Parse one JSON text.
pub fn parse(bytes: &[u8]) -> Result<Value<'_>, JsonError> {
    let s = std::str::from_utf8(bytes).map_err(|e| JsonError {
        message: "invalid UTF-8",
        offset: e.valid_up_to(),
    })?;
    Parser { s, b: bytes, i: 0 }.parse()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A JSON string literal with orjson's escaping: `"`, `\` and control characters only.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut run = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            c if c < 0x20 => {
                out.extend_from_slice(&b[run..i]);
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ]);
                run = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&b[run..i]);
        out.extend_from_slice(esc);
        run = i + 1;
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

/// A double as orjson prints it: the shortest round-trip digits, fixed notation for decimal
/// exponents -4..=15 (always with a fraction), else `d.ddde±x`.
pub fn write_float(out: &mut Vec<u8>, f: f64) {
    let sci = format!("{f:e}"); // shortest digits: "-1.2345e-7"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.extend_from_slice(sign.as_bytes());
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(digits.as_bytes());
        } else {
            let point = exp as usize + 1;
            if digits.len() <= point {
                out.extend_from_slice(digits.as_bytes());
                out.extend(std::iter::repeat_n(b'0', point - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits.as_bytes()[..point]);
                out.push(b'.');
                out.extend_from_slice(&digits.as_bytes()[point..]);
            }
        }
    } else {
        out.extend_from_slice(&digits.as_bytes()[..1]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits.as_bytes()[1..]);
        }
        out.push(b'e');
        if exp >= 0 {
            out.push(b'+');
        }
        out.extend_from_slice(exp.to_string().as_bytes());
    }
}

/// Write a parsed value back: `orjson.dumps(orjson.loads(x))`.
pub fn write_value(out: &mut Vec<u8>, v: &Value<'_>) {
    // an explicit stack, like the parser: any accepted depth is safe
    enum Step<'v, 'a> {
        Value(&'v Value<'a>),
        Raw(&'static [u8]),
        Key(&'v str),
    }
    let mut todo = vec![Step::Value(v)];
    while let Some(step) = todo.pop() {
        match step {
            Step::Raw(b) => out.extend_from_slice(b),
            Step::Key(k) => {
                write_str(out, k);
                out.push(b':');
            }
            Step::Value(v) => match v {
                Value::Null => out.extend_from_slice(b"null"),
                Value::Bool(true) => out.extend_from_slice(b"true"),
                Value::Bool(false) => out.extend_from_slice(b"false"),
                Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
                Value::Float(f) => write_float(out, *f),
                Value::Str(s) => write_str(out, s),
                Value::Array(items) => {
                    out.push(b'[');
                    todo.push(Step::Raw(b"]"));
                    for (i, item) in items.iter().enumerate().rev() {
                        todo.push(Step::Value(item));
                        if i > 0 {
                            todo.push(Step::Raw(b","));
                        }
                    }
                }
                Value::Object(obj) => {
                    out.push(b'{');
                    todo.push(Step::Raw(b"}"));
                    for (i, (k, item)) in obj.entries.iter().enumerate().rev() {
                        todo.push(Step::Value(item));
                        todo.push(Step::Key(k));
                        if i > 0 {
                            todo.push(Step::Raw(b","));
                        }
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(text: &str) -> Option<String> {
        let v = parse(text.as_bytes()).ok()?;
        let mut out = Vec::new();
        write_value(&mut out, &v);
        String::from_utf8(out).ok()
    }

    #[test]
    fn acceptance_is_orjsons() {
        assert_eq!(
            round(r#"{"a":1,"b":2,"a":3}"#).as_deref(),
            Some(r#"{"a":3,"b":2}"#)
        );
        assert_eq!(
            round("18446744073709551615").as_deref(),
            Some("18446744073709551615")
        );
        assert_eq!(
            round("18446744073709551616").as_deref(),
            Some("1.8446744073709552e+19")
        );
        assert_eq!(
            round("-9223372036854775809").as_deref(),
            Some("-9.223372036854776e+18")
        );
        assert_eq!(round(" -0 ").as_deref(), Some("0"));
        for bad in [
            "1e400",
            "NaN",
            "Infinity",
            "\u{feff}{}",
            "\"\\ud800\"",
            "{} x",
            "",
            "01",
            "1.",
            "[1,]",
            "\"\u{1}\"",
        ] {
            assert!(round(bad).is_none(), "{bad:?}");
        }
        assert!(parse(b"\"\xff\"").is_err());
        let deep_ok = "[".repeat(1024) + &"]".repeat(1024);
        assert!(parse(deep_ok.as_bytes()).is_ok());
        let deep_bad = "[".repeat(1025) + &"]".repeat(1025);
        assert!(parse(deep_bad.as_bytes()).is_err());
        assert!(parse("[".repeat(100_000).as_bytes()).is_err());
    }

    #[test]
    fn floats_print_as_orjson_does() {
        for (f, text) in [
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-7"),
            (100.0, "100.0"),
            (1e15, "1000000000000000.0"),
            (5e-324, "5e-324"),
            (-0.0, "-0.0"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (1.2345678901234568e16, "1.2345678901234568e+16"),
            (0.0001, "0.0001"),
            (0.5, "0.5"),
            (123.456, "123.456"),
        ] {
            let mut out = Vec::new();
            write_float(&mut out, f);
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    #[test]
    fn strings_escape_only_what_json_needs() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"\\\n\u{1}/é\u{7f}\u{2028}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"\\\\\\n\\u0001/é\u{7f}\u{2028}\""
        );
    }

    #[test]
    fn many_duplicate_keys_stay_linear() {
        let mut text = String::from("{");
        for i in 0..50_000 {
            text.push_str(&format!("\"k{}\":{},", i % 1000, i));
        }
        text.push_str("\"end\":0}");
        let Ok(Value::Object(obj)) = parse(text.as_bytes()) else {
            panic!("not parsed")
        };
        assert_eq!(obj.len(), 1001);
        assert_eq!(obj.get("k7"), Some(&Value::Int(49_007)));
    }
}
