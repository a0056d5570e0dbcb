//! A strict JSON parser and writer with exactly the acceptance and output of orjson 3.13,
//! the JSON library the reference (Python) implementation used. Dead-letter reasons, echoed
//! values and saved state must stay byte for byte what the Python code produced, so every
//! rule here was measured against orjson rather than taken from RFC 8259 alone:
//!
//! - duplicate keys: the last value wins, at the first key's position (a Python dict);
//! - integers in [i64::MIN, u64::MAX] stay integers (`-0` is the integer 0), integers
//!   outside that range become doubles; a number that is infinite as a double is an error,
//!   and there are no NaN or Infinity literals;
//! - containers may nest 1024 deep, no deeper; the check needs no recursion, so any input is
//!   safe on a small stack;
//! - a BOM, invalid UTF-8 anywhere, lone surrogate escapes, raw control characters in
//!   strings, empty input and trailing bytes are errors; space, tab, LF and CR around and
//!   between tokens are fine;
//! - output is compact, strings escape only `"`, `\` and C0 controls (`\b \t \n \f \r`,
//!   otherwise `\u00xx` in lower case), and doubles print their shortest round-trip digits,
//!   in plain notation for decimal exponents -5..=15 and as `1.5e-7` / `1e+16` otherwise.
//!
//! One orjson behaviour cannot live in [`write_value`]'s signature: `orjson.dumps` refuses
//! values nested deeper than [`DUMPS_MAX_DEPTH`] ("Recursion limit reached") although
//! `orjson.loads` accepts up to [`MAX_DEPTH`]. [`try_write_value`] reproduces that refusal.
//!
//! Speed matters (about a million ~200-byte events a second): the input is checked as UTF-8
//! once, so strings without escapes are borrowed slices; open containers collect their
//! elements in two scratch vectors shared by the whole parse, so each finished array or
//! object is allocated once at its exact size; string scanning goes eight bytes at a time.

use crate::fxhash::FxHashMap;
use std::borrow::Cow;
use std::fmt;

/// Containers may nest this deep when parsing (orjson.loads), no deeper.
pub const MAX_DEPTH: usize = 1024;
/// Containers may nest this deep when writing with orjson.dumps, no deeper.
pub const DUMPS_MAX_DEPTH: usize = 254;
/// Objects with more members than this get a hash index, so that duplicate-key checks and
/// lookups stay linear in total; below it a scan of a few short keys is faster than hashing.
const INDEX_AFTER: usize = 16;

/// A parsed JSON value. Strings borrow from the input unless they contained escapes.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// Always within [i64::MIN, u64::MAX] when produced by [`parse`].
    Int(i128),
    /// Always finite when produced by [`parse`]; [`write_value`] writes non-finite as `null`
    /// like orjson does.
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Object<'a>),
}

/// The hash index of a large object: key -> position in `entries`.
type Index<'a> = FxHashMap<Cow<'a, str>, usize>;

/// A JSON object with Python dict semantics: insertion order, and a repeated key replaces
/// the value but keeps the position of its first occurrence.
#[derive(Clone, Default)]
pub struct Object<'a> {
    entries: Vec<(Cow<'a, str>, Value<'a>)>,
    /// Present once the object has more than [`INDEX_AFTER`] members. Boxed to keep
    /// `Value` small, since nearly all objects never need it.
    index: Option<Box<Index<'a>>>,
}

impl<'a> Object<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        find(&self.entries, self.index.as_deref(), key)
            .and_then(|i| self.entries.get(i).map(|(_, v)| v))
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

    /// Members in dict order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Sets `key` the way a Python dict assignment does.
    pub fn insert(&mut self, key: Cow<'a, str>, value: Value<'a>) {
        insert_member(&mut self.entries, 0, &mut self.index, key, value);
    }
}

impl PartialEq for Object<'_> {
    /// Equal members in equal order; the index is a cache and does not take part.
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl fmt::Debug for Object<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Position of `key` among `members`, through the index when there is one.
fn find(
    members: &[(Cow<'_, str>, Value<'_>)],
    index: Option<&Index<'_>>,
    key: &str,
) -> Option<usize> {
    match index {
        Some(ix) => ix.get(key).copied(),
        None => members.iter().position(|(k, _)| k.as_ref() == key),
    }
}

/// Dict assignment into `members[start..]` (the parser keeps the members of all open
/// objects in one scratch vector, so the object's own members start at `start`).
fn insert_member<'a>(
    members: &mut Vec<(Cow<'a, str>, Value<'a>)>,
    start: usize,
    index: &mut Option<Box<Index<'a>>>,
    key: Cow<'a, str>,
    value: Value<'a>,
) {
    let own = members.get_mut(start..).unwrap_or_default();
    if let Some(slot) = find(own, index.as_deref(), &key).and_then(|i| own.get_mut(i)) {
        slot.1 = value;
        return;
    }
    let position = own.len();
    if let Some(ix) = index {
        ix.insert(key.clone(), position);
    }
    members.push((key, value));
    if index.is_none() && position + 1 > INDEX_AFTER {
        let own = members.get(start..).unwrap_or_default();
        let ix: Index<'a> = own
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        *index = Some(Box::new(ix));
    }
}

/// Why parsing failed, and at which byte offset. The messages are short and stable; they
/// are not orjson's wording (callers only distinguish success from failure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    pub message: &'static str,
    pub offset: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

impl std::error::Error for JsonError {}

fn error<T>(message: &'static str, offset: usize) -> Result<T, JsonError> {
    Err(JsonError { message, offset })
}

/// An open container while parsing. Its elements live in the parser's scratch vectors
/// from `start` on, so each finished container is allocated once, at its exact size.
enum Frame<'a> {
    Array {
        start: usize,
    },
    Object {
        start: usize,
        key: Cow<'a, str>,
        index: Option<Box<Index<'a>>>,
    },
}

struct Parser<'a> {
    /// The whole input, already checked to be UTF-8, so borrowed strings need no check.
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// Parses one JSON document, accepting exactly what `orjson.loads` accepts.
pub fn parse(bytes: &[u8]) -> Result<Value<'_>, JsonError> {
    if bytes.is_empty() {
        return error("empty input", 0);
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return error("byte order mark", 0);
    }
    // orjson rejects invalid UTF-8 anywhere in the document; checking it all up front (a
    // fast ASCII path in std) lets strings borrow without a second check.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return error("invalid UTF-8", e.valid_up_to()),
    };
    Parser {
        text,
        bytes,
        pos: 0,
    }
    .document()
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn fail<T>(&self, message: &'static str) -> Result<T, JsonError> {
        error(message, self.pos)
    }

    /// The error for an unexpected byte at `pos`, or for the end of the input.
    fn unexpected<T>(&self, message: &'static str) -> Result<T, JsonError> {
        if self.pos >= self.bytes.len() {
            self.fail("unexpected end of data")
        } else {
            self.fail(message)
        }
    }

    /// A whole document that is one object of scalar members (the shape of every event and
    /// CDR), read straight into its entries: no frames, no scratch vectors. `None` at the
    /// first nested container or error, for the general loop to read the input again, so
    /// what is accepted and every error stay the general loop's.
    fn flat_object(&mut self) -> Option<Value<'a>> {
        self.skip_ws();
        if self.peek() != Some(b'{') {
            return None;
        }
        self.pos += 1;
        self.skip_ws();
        let mut entries: Vec<(Cow<'a, str>, Value<'a>)> = Vec::with_capacity(12);
        let mut index = None;
        if self.peek() != Some(b'}') {
            loop {
                let key = self.key().ok()?;
                self.skip_ws();
                let value = match self.peek()? {
                    b'"' => Value::Str(self.string().ok()?),
                    b'-' | b'0'..=b'9' => self.number().ok()?,
                    b't' => self.literal(b"true", Value::Bool(true)).ok()?,
                    b'f' => self.literal(b"false", Value::Bool(false)).ok()?,
                    b'n' => self.literal(b"null", Value::Null).ok()?,
                    _ => return None,
                };
                insert_member(&mut entries, 0, &mut index, key, value);
                self.skip_ws();
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        self.skip_ws();
                    }
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        self.pos += 1;
        self.skip_ws();
        (self.pos == self.bytes.len()).then_some(Value::Object(Object { entries, index }))
    }

    fn document(mut self) -> Result<Value<'a>, JsonError> {
        if let Some(value) = self.flat_object() {
            return Ok(value);
        }
        self.pos = 0;
        self.general()
    }

    /// The parse loop: values are read in place and containers are open frames on an
    /// explicit stack, so depth costs heap, not call stack.
    fn general(mut self) -> Result<Value<'a>, JsonError> {
        let mut frames: Vec<Frame<'a>> = Vec::new();
        let mut items: Vec<Value<'a>> = Vec::new();
        let mut members: Vec<(Cow<'a, str>, Value<'a>)> = Vec::new();
        'value: loop {
            self.skip_ws();
            let mut value = match self.peek() {
                Some(b'[') => {
                    if frames.len() >= MAX_DEPTH {
                        return self.fail("nesting too deep");
                    }
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        Value::Array(Vec::new())
                    } else {
                        if frames.is_empty() {
                            frames.reserve(8);
                        }
                        if items.capacity() == 0 {
                            items.reserve(16);
                        }
                        frames.push(Frame::Array { start: items.len() });
                        continue 'value;
                    }
                }
                Some(b'{') => {
                    if frames.len() >= MAX_DEPTH {
                        return self.fail("nesting too deep");
                    }
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        Value::Object(Object::new())
                    } else {
                        let key = self.key()?;
                        if frames.is_empty() {
                            frames.reserve(8);
                        }
                        if members.capacity() == 0 {
                            members.reserve(16);
                        }
                        frames.push(Frame::Object {
                            start: members.len(),
                            key,
                            index: None,
                        });
                        continue 'value;
                    }
                }
                Some(b'"') => Value::Str(self.string()?),
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true", Value::Bool(true))?,
                Some(b'f') => self.literal(b"false", Value::Bool(false))?,
                Some(b'n') => self.literal(b"null", Value::Null)?,
                Some(_) => return self.fail("expected a JSON value"),
                None => return self.fail("unexpected end of data"),
            };
            // `value` is complete: hand it to the innermost open container, closing
            // containers for as long as their closing bracket follows.
            loop {
                match frames.last_mut() {
                    None => {
                        self.skip_ws();
                        if self.pos != self.bytes.len() {
                            return self.fail("unexpected content after document");
                        }
                        return Ok(value);
                    }
                    Some(Frame::Array { start }) => {
                        let start = *start;
                        items.push(value);
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                continue 'value;
                            }
                            Some(b']') => {
                                self.pos += 1;
                                frames.pop();
                                value = Value::Array(items.drain(start..).collect());
                            }
                            _ => return self.unexpected("expected ',' or ']'"),
                        }
                    }
                    Some(Frame::Object { start, key, index }) => {
                        let start = *start;
                        insert_member(&mut members, start, index, std::mem::take(key), value);
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                self.skip_ws();
                                *key = self.key()?;
                                continue 'value;
                            }
                            Some(b'}') => {
                                self.pos += 1;
                                let index = match frames.pop() {
                                    Some(Frame::Object { index, .. }) => index,
                                    _ => None,
                                };
                                let entries = members.drain(start..).collect();
                                value = Value::Object(Object { entries, index });
                            }
                            _ => return self.unexpected("expected ',' or '}'"),
                        }
                    }
                }
            }
        }
    }

    /// An object key and its colon; whitespace before the key is already skipped.
    fn key(&mut self) -> Result<Cow<'a, str>, JsonError> {
        if self.peek() != Some(b'"') {
            return self.unexpected("expected a string key");
        }
        let key = self.string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return self.unexpected("expected ':' after key");
        }
        self.pos += 1;
        Ok(key)
    }

    fn literal(&mut self, word: &'static [u8], value: Value<'a>) -> Result<Value<'a>, JsonError> {
        let end = self.pos + word.len();
        match self.bytes.get(self.pos..end) {
            Some(found) if found == word => {
                self.pos = end;
                Ok(value)
            }
            Some(_) => self.fail("invalid literal"),
            None => self.fail("unexpected end of data"),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number: an integer if it has no fraction or exponent and fits [i64::MIN,
    /// u64::MAX], otherwise a correctly rounded double that must be finite.
    fn number(&mut self) -> Result<Value<'a>, JsonError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return self.fail("leading zero");
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.unexpected("no digit after sign"),
        }
        let int_end = self.pos;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.unexpected("no digit after decimal point");
            }
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.unexpected("no digit in exponent");
            }
            is_float = true;
        }
        if !is_float {
            if let Some(magnitude) = self.bytes.get(int_start..int_end).and_then(decimal_u64) {
                if !negative {
                    return Ok(Value::Int(i128::from(magnitude)));
                }
                if magnitude <= 1 << 63 {
                    return Ok(Value::Int(-i128::from(magnitude)));
                }
            }
        }
        // Rust's parser is correctly rounded like orjson's, and accepts every number the
        // grammar above let through.
        let parsed = self
            .text
            .get(start..self.pos)
            .and_then(|t| t.parse::<f64>().ok());
        match parsed {
            Some(f) if f.is_finite() => Ok(Value::Float(f)),
            Some(_) => error("number is infinite as a double", start),
            None => error("invalid number", start),
        }
    }

    /// A string; `pos` is at its opening quote. Borrows unless there are escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.pos += 1;
        let start = self.pos;
        let end = scan_plain(self.bytes, start);
        self.pos = end;
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                match self.text.get(start..end) {
                    Some(s) => Ok(Cow::Borrowed(s)),
                    None => error("invalid UTF-8", start),
                }
            }
            Some(b'\\') => {
                let mut out = String::with_capacity(end - start + 16);
                out.push_str(self.text.get(start..end).unwrap_or_default());
                self.escaped_rest(out).map(Cow::Owned)
            }
            Some(_) => self.fail("control character in string"),
            None => self.fail("unexpected end of data"),
        }
    }

    /// The rest of a string that has escapes, from the first backslash on.
    fn escaped_rest(&mut self, mut out: String) -> Result<String, JsonError> {
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let at = self.pos;
                    self.pos += 1;
                    let c = match self.peek() {
                        Some(b'u') => {
                            self.pos += 1;
                            self.unicode_escape(at)?
                        }
                        Some(letter) => {
                            let c = match letter {
                                b'"' => '"',
                                b'\\' => '\\',
                                b'/' => '/',
                                b'b' => '\u{8}',
                                b'f' => '\u{c}',
                                b'n' => '\n',
                                b'r' => '\r',
                                b't' => '\t',
                                _ => return error("invalid escape", at),
                            };
                            self.pos += 1;
                            c
                        }
                        None => return self.fail("unexpected end of data"),
                    };
                    out.push(c);
                }
                Some(_) => {
                    let start = self.pos;
                    let end = scan_plain(self.bytes, start);
                    if end == start {
                        return self.fail("control character in string");
                    }
                    out.push_str(self.text.get(start..end).unwrap_or_default());
                    self.pos = end;
                }
                None => return self.fail("unexpected end of data"),
            }
        }
    }

    fn hex4(&mut self, at: usize) -> Result<u32, JsonError> {
        let Some(digits) = self.bytes.get(self.pos..self.pos + 4) else {
            return error("invalid escape", at);
        };
        let mut n = 0;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return error("invalid escape", at),
            };
            n = n * 16 + u32::from(v);
        }
        self.pos += 4;
        Ok(n)
    }

    /// `\uXXXX` after the `u`; a high surrogate must be followed by an escaped low one.
    fn unicode_escape(&mut self, at: usize) -> Result<char, JsonError> {
        let unit = self.hex4(at)?;
        let code = match unit {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return error("lone surrogate escape", at);
                }
                self.pos += 2;
                let low = self.hex4(at)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return error("invalid low surrogate", at);
                }
                0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return error("lone surrogate escape", at),
            _ => unit,
        };
        char::from_u32(code).map_or_else(|| error("invalid escape", at), Ok)
    }
}

/// The decimal value of a run of ASCII digits, or None if it exceeds u64.
fn decimal_u64(digits: &[u8]) -> Option<u64> {
    if digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?
            .checked_add(u64::from(d.wrapping_sub(b'0')))
    })
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Non-zero iff some byte of `v` is zero (exact as a yes/no answer).
fn has_zero_byte(v: u64) -> u64 {
    v.wrapping_sub(ONES) & !v & HIGHS
}

/// The first index from `i` holding `"`, `\` or a control character (or the length):
/// the end of the part of a string that can be copied or borrowed as is. Eight bytes at
/// a time, since strings are most of a typical event.
fn scan_plain(bytes: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = bytes.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let special = has_zero_byte(w ^ (ONES * u64::from(b'"')))
            | has_zero_byte(w ^ (ONES * u64::from(b'\\')))
            | has_zero_byte(w & (ONES * 0xE0));
        if special != 0 {
            break;
        }
        i += 8;
    }
    while let Some(&c) = bytes.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    bytes.len()
}

/// What each byte becomes inside a string literal: 0 = itself, `u` = `\u00xx`, otherwise
/// the letter after a backslash. orjson escapes nothing else (not `/`, DEL, U+2028).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0A] = b'n';
    t[0x0C] = b'f';
    t[0x0D] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Writes `n`'s decimal digits, through 64-bit arithmetic when it fits: nearly every amount and
/// instant does, and 128-bit division is a library call.
pub fn write_int(out: &mut Vec<u8>, n: i128) {
    let mut buf = itoa::Buffer::new();
    let digits = match i64::try_from(n) {
        Ok(small) => buf.format(small),
        Err(_) => buf.format(n),
    };
    out.extend_from_slice(digits.as_bytes());
}

/// [`write_int`] of an unsigned magnitude.
pub fn write_uint(out: &mut Vec<u8>, n: u128) {
    let mut buf = itoa::Buffer::new();
    let digits = match u64::try_from(n) {
        Ok(small) => buf.format(small),
        Err(_) => buf.format(n),
    };
    out.extend_from_slice(digits.as_bytes());
}

/// `n / d` and `n % d` for a `d` that fits 64 bits, in 64-bit arithmetic when `n` fits too.
pub fn div_rem_u128(n: u128, d: u64) -> (u128, u128) {
    match u64::try_from(n) {
        Ok(small) => (u128::from(small / d), u128::from(small % d)),
        Err(_) => (n / u128::from(d), n % u128::from(d)),
    }
}

/// Does any byte of `word` need escaping (a control character, `"` or `\\`)? Exact: the
/// subtractions borrow only from a byte below the constant they subtract.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    (below_space | zero_byte(quote) | zero_byte(backslash)) & HIGHS != 0
}

/// Writes `s` as a JSON string literal, escaped exactly as orjson escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Eight bytes at a time up to the first word holding a byte to escape (most strings
    // have none): those bytes go out as they are, the rest byte by byte.
    let mut clean = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if needs_escape(u64::from_le_bytes(word)) {
            break;
        }
        clean += 8;
    }
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        let e = ESCAPE[usize::from(b)];
        if e == 0 {
            continue;
        }
        out.extend_from_slice(bytes.get(run..i).unwrap_or_default());
        run = i + 1;
        if e == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        } else {
            out.push(b'\\');
            out.push(e);
        }
    }
    out.extend_from_slice(bytes.get(run..).unwrap_or_default());
    out.push(b'"');
}

/// Writes a double as orjson does: shortest round-trip digits; plain notation (always
/// with a fraction, `100.0`) when the decimal exponent is in -5..=15, otherwise one digit,
/// an optional fraction and a signed exponent (`1e+16`, `1.5e-7`); non-finite as `null`.
pub fn write_float(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    if f == 0.0 {
        out.extend_from_slice(if f.is_sign_negative() {
            b"-0.0"
        } else {
            b"0.0"
        });
        return;
    }
    // ryu finds the digits (the same shortest, closest digits); its layout differs from
    // orjson's, so take its output apart into digits and a decimal exponent.
    let mut buffer = ryu::Buffer::new();
    let printed = buffer.format_finite(f).as_bytes();
    let mut digits = [0u8; 24];
    let mut n = 0usize;
    // Digits before the decimal point, not counting leading zeros (negative for 0.00ddd).
    let mut point: i32 = 0;
    let mut seen_point = false;
    let mut exponent: i32 = 0;
    let mut iter = printed.iter();
    while let Some(&c) = iter.next() {
        match c {
            b'-' => out.push(b'-'),
            b'.' => seen_point = true,
            b'0'..=b'9' => {
                if n == 0 && c == b'0' {
                    if seen_point {
                        point -= 1;
                    }
                } else {
                    if let Some(slot) = digits.get_mut(n) {
                        *slot = c;
                    }
                    n += 1;
                    if !seen_point {
                        point += 1;
                    }
                }
            }
            b'e' | b'E' => {
                let rest = iter.as_slice();
                exponent = std::str::from_utf8(rest)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                break;
            }
            _ => {}
        }
    }
    let n = n.min(digits.len());
    let mut digits = digits.get(..n).unwrap_or_default();
    while let Some((&b'0', head)) = digits.split_last() {
        digits = head;
    }
    let Some((&first, rest)) = digits.split_first() else {
        out.extend_from_slice(b"0.0");
        return;
    };
    let x = point + exponent - 1;
    if (-5..16).contains(&x) {
        if x >= 0 {
            let whole = x as usize + 1;
            if digits.len() <= whole {
                out.extend_from_slice(digits);
                out.resize(out.len() + whole - digits.len(), b'0');
                out.extend_from_slice(b".0");
            } else {
                let (int, frac) = digits.split_at(whole);
                out.extend_from_slice(int);
                out.push(b'.');
                out.extend_from_slice(frac);
            }
        } else {
            out.extend_from_slice(b"0.");
            out.resize(out.len() + (-x - 1) as usize, b'0');
            out.extend_from_slice(digits);
        }
    } else {
        out.push(first);
        if !rest.is_empty() {
            out.push(b'.');
            out.extend_from_slice(rest);
        }
        out.extend_from_slice(if x < 0 { b"e-" } else { b"e+" });
        out.extend_from_slice(itoa::Buffer::new().format(x.unsigned_abs()).as_bytes());
    }
}

/// Writes `v` compactly: `write_value(parse(x))` is `orjson.dumps(orjson.loads(x))` for
/// every `x` that orjson accepts, except that orjson.dumps refuses values nested deeper
/// than [`DUMPS_MAX_DEPTH`] (use [`try_write_value`] to get that refusal too).
pub fn write_value(out: &mut Vec<u8>, v: &Value<'_>) {
    // Without a depth limit the writer cannot fail.
    let _ = write_limited(out, v, usize::MAX, false);
}

/// Like [`write_value`], but fails (writing nothing) where `orjson.dumps` raises:
/// containers nested more than [`DUMPS_MAX_DEPTH`] deep ("Recursion limit reached") and
/// integers outside [i64::MIN, u64::MAX] ("Integer exceeds 64-bit range"), which only a
/// hand-built value can hold.
pub fn try_write_value(out: &mut Vec<u8>, v: &Value<'_>) -> Result<(), JsonError> {
    let mark = out.len();
    write_limited(out, v, DUMPS_MAX_DEPTH, true).inspect_err(|_| out.truncate(mark))
}

/// An open container while writing; `first` says no member has been written yet.
enum WriteFrame<'v, 'a> {
    Array {
        items: std::slice::Iter<'v, Value<'a>>,
        first: bool,
    },
    Object {
        members: std::slice::Iter<'v, (Cow<'a, str>, Value<'a>)>,
        first: bool,
    },
}

/// The writer, with an explicit stack so that no value can exhaust the call stack.
/// `limit` is the deepest nesting allowed; `strict_ints` refuses integers orjson cannot write.
fn write_limited(
    out: &mut Vec<u8>,
    root: &Value<'_>,
    limit: usize,
    strict_ints: bool,
) -> Result<(), JsonError> {
    let mut stack: Vec<WriteFrame<'_, '_>> = Vec::new();
    let mut next = Some(root);
    loop {
        if let Some(v) = next.take() {
            match v {
                Value::Null => out.extend_from_slice(b"null"),
                Value::Bool(true) => out.extend_from_slice(b"true"),
                Value::Bool(false) => out.extend_from_slice(b"false"),
                Value::Int(i) => {
                    if strict_ints && !(i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(i) {
                        return error("integer exceeds 64-bit range", stack.len());
                    }
                    write_int(out, *i);
                }
                Value::Float(f) => write_float(out, *f),
                Value::Str(s) => write_str(out, s),
                Value::Array(items) => {
                    if stack.len() >= limit {
                        return error("nesting too deep to write", stack.len());
                    }
                    out.push(b'[');
                    stack.push(WriteFrame::Array {
                        items: items.iter(),
                        first: true,
                    });
                }
                Value::Object(obj) => {
                    if stack.len() >= limit {
                        return error("nesting too deep to write", stack.len());
                    }
                    out.push(b'{');
                    stack.push(WriteFrame::Object {
                        members: obj.entries.iter(),
                        first: true,
                    });
                }
            }
        }
        match stack.last_mut() {
            None => return Ok(()),
            Some(WriteFrame::Array { items, first }) => match items.next() {
                Some(item) => {
                    if !std::mem::replace(first, false) {
                        out.push(b',');
                    }
                    next = Some(item);
                }
                None => {
                    out.push(b']');
                    stack.pop();
                }
            },
            Some(WriteFrame::Object { members, first }) => match members.next() {
                Some((key, value)) => {
                    if !std::mem::replace(first, false) {
                        out.push(b',');
                    }
                    write_str(out, key);
                    out.push(b':');
                    next = Some(value);
                }
                None => {
                    out.push(b'}');
                    stack.pop();
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dumps(input: &[u8]) -> Option<String> {
        let v = parse(input).ok()?;
        let mut out = Vec::new();
        write_value(&mut out, &v);
        Some(String::from_utf8(out).expect("writer output is UTF-8"))
    }

    fn ok(input: &str) -> String {
        dumps(input.as_bytes()).unwrap_or_else(|| panic!("rejected {input:?}"))
    }

    /// The general loop alone, without the flat-object path in front of it.
    fn parse_general(bytes: &[u8]) -> Result<Value<'_>, JsonError> {
        let text = std::str::from_utf8(bytes).map_err(|e| JsonError {
            message: "invalid UTF-8",
            offset: e.valid_up_to(),
        })?;
        Parser {
            text,
            bytes,
            pos: 0,
        }
        .general()
    }

    #[test]
    fn the_flat_object_path_reads_what_the_general_loop_reads() {
        let many: String = (0..40).map(|i| format!("\"k{}\":{i},", i % 23)).collect();
        let many = format!("{{{}\"z\":null}}", many);
        let inputs: Vec<&[u8]> = vec![
            br#"{"type":"call_end","call_id":"c1","tenant_id":"t","ts":"2026-12-07T00:00:00Z"}"#,
            br#" { "a" : 1 , "b" : -0 , "c" : 1.5e3 , "d" : true , "e" : false , "f" : null } "#,
            br#"{"a":1,"a":2,"b":3,"a":4}"#,
            br#"{"esc":"a\"b\u00e9","n":18446744073709551615,"m":-9223372036854775808}"#,
            br#"{"big":18446744073709551616,"x":1e400}"#,
            br#"{}"#,
            br#"{"a":{"b":1}}"#,
            br#"{"a":[1,2]}"#,
            br#"{"a":1,}"#,
            br#"{"a":1} x"#,
            br#"{"a":01}"#,
            br#"{"a":tru}"#,
            br#"{"a" 1}"#,
            br#"{"a":1"#,
            br#"{"a":"#,
            br#"{"#,
            br#"{"a":""}"#,
            b"{\"a\":\"\x01\"}",
            many.as_bytes(),
        ];
        for input in inputs {
            assert_eq!(
                parse(input),
                parse_general(input),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    fn rejected(input: &[u8]) -> bool {
        parse(input).is_err()
    }

    fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    }

    /// Undoes the vector file's escaping. Each line of tests/json_vectors.txt is `input TAB
    /// expected`, generated with orjson 3.13: `expected` is orjson.dumps(orjson.loads(input)),
    /// `!` if loads raised, `~` if only dumps raised. Printable ASCII stands for itself,
    /// `\\` for a backslash, `\xHH` for any other byte.
    fn unescape(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
            } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
                let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 4;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    /// Checks every `input TAB expected` line against orjson's recorded behaviour.
    fn check_vectors(text: &str) -> usize {
        let mut failures = Vec::new();
        let mut count = 0;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
            let (input, expected) = line.split_once('\t').expect("tab-separated line");
            let (input, expected) = (unescape(input), unescape(expected));
            count += 1;
            let got: Vec<u8> = match parse(&input) {
                Err(_) => b"!".to_vec(),
                Ok(v) => {
                    let mut full = Vec::new();
                    write_value(&mut full, &v);
                    let mut limited = Vec::new();
                    match try_write_value(&mut limited, &v) {
                        Ok(()) if limited == full => full,
                        Ok(()) => b"try_write_value differs".to_vec(),
                        Err(_) => b"~".to_vec(),
                    }
                }
            };
            if got != expected {
                failures.push(format!(
                    "line {}: {:?}\n  orjson: {:?}\n  ours:   {:?}",
                    n + 1,
                    String::from_utf8_lossy(&input),
                    String::from_utf8_lossy(&expected),
                    String::from_utf8_lossy(&got)
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {count} vectors differ:\n{}",
            failures.len(),
            failures.join("\n")
        );
        count
    }

    #[test]
    fn orjson_vectors() {
        let n = check_vectors(include_str!("../tests/json_vectors.txt"));
        assert!(n > 1000, "only {n} vectors");
    }

    /// A bigger generated set, when there is one: JSON_EXTRA_VECTORS=path cargo test.
    #[test]
    fn orjson_extra_vectors() {
        if let Ok(path) = std::env::var("JSON_EXTRA_VECTORS") {
            let text = std::fs::read_to_string(&path).expect("readable vector file");
            let n = check_vectors(&text);
            eprintln!("{n} extra vectors from {path} match");
        }
    }

    #[test]
    fn duplicate_keys_last_value_first_position() {
        assert_eq!(ok(r#"{"a":1,"a":2}"#), r#"{"a":2}"#);
        assert_eq!(ok(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
        assert_eq!(
            ok(r#"{"a":1,"\u0061":2,"b":{"x":1,"x":[]}}"#),
            r#"{"a":2,"b":{"x":[]}}"#
        );
        let Ok(Value::Object(o)) = parse(br#"{"a":1,"b":2,"a":3}"#) else {
            panic!()
        };
        assert_eq!(o.len(), 2);
        assert_eq!(o.get("a"), Some(&Value::Int(3)));
        assert_eq!(o.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn many_keys_with_duplicates_stay_linear_and_ordered() {
        // 200,000 members over 100,000 distinct keys: quadratic scanning would take minutes.
        let mut doc = String::from("{");
        for i in 0..200_000 {
            if i > 0 {
                doc.push(',');
            }
            doc.push_str(&format!("\"k{}\":{i}", i % 100_000));
        }
        doc.push('}');
        let started = std::time::Instant::now();
        let Ok(Value::Object(o)) = parse(doc.as_bytes()) else {
            panic!()
        };
        assert!(started.elapsed().as_secs() < 10);
        assert_eq!(o.len(), 100_000);
        assert_eq!(o.get("k0"), Some(&Value::Int(100_000)));
        assert_eq!(o.get("k99999"), Some(&Value::Int(199_999)));
        assert!(o.contains_key("k5") && !o.contains_key("k100000"));
        let keys: Vec<&str> = o.iter().take(3).map(|(k, _)| k).collect();
        assert_eq!(keys, ["k0", "k1", "k2"]);
    }

    #[test]
    fn object_api_small_and_indexed() {
        for n in [0usize, 1, 16, 17, 40] {
            let mut o = Object::new();
            for i in 0..n {
                o.insert(Cow::Owned(format!("k{i}")), Value::Int(i as i128));
            }
            for i in 0..n {
                o.insert(Cow::Owned(format!("k{i}")), Value::Int(-(i as i128)));
            }
            assert_eq!(o.len(), n);
            assert_eq!(o.is_empty(), n == 0);
            for i in 0..n {
                assert_eq!(o.get(&format!("k{i}")), Some(&Value::Int(-(i as i128))));
            }
            assert!(!o.contains_key("missing"));
            assert!(o
                .iter()
                .map(|(k, _)| k.to_string())
                .eq((0..n).map(|i| format!("k{i}"))));
        }
    }

    #[test]
    fn integers_and_their_range() {
        assert_eq!(ok("0"), "0");
        assert_eq!(ok("-0"), "0");
        assert_eq!(parse(b"-0"), Ok(Value::Int(0)));
        assert_eq!(
            parse(b"18446744073709551615"),
            Ok(Value::Int(u64::MAX.into()))
        );
        assert_eq!(
            parse(b"-9223372036854775808"),
            Ok(Value::Int(i64::MIN.into()))
        );
        assert_eq!(ok("18446744073709551616"), "1.8446744073709552e+19");
        assert_eq!(ok("-9223372036854775809"), "-9.223372036854776e+18");
        assert_eq!(
            ok("123456789012345678901234567890"),
            "1.2345678901234568e+29"
        );
        for bad in [
            "01", "-01", "00", "-", "+1", ".5", "1.", "1.e5", "1e", "1e+", "-a", "0x1",
        ] {
            assert!(rejected(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn floats_and_infinity() {
        assert_eq!(parse(b"-0.0"), Ok(Value::Float(-0.0)));
        for bad in [
            "1e400",
            "-1e400",
            "1.7976931348623159e308",
            "1e99999999999999999999",
        ] {
            assert!(rejected(bad.as_bytes()), "{bad}");
        }
        assert!(rejected(&[b"1".repeat(309), b"0".to_vec()].concat()));
        assert_eq!(ok("1e-400"), "0.0");
        assert_eq!(ok("-1e-400"), "-0.0");
        for bad in ["NaN", "Infinity", "-Infinity", "nan", "inf"] {
            assert!(rejected(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn float_output_matches_orjson() {
        let cases: [(f64, &str); 22] = [
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-7"),
            (100.0, "100.0"),
            (1.2345678901234568e29, "1.2345678901234568e+29"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (5e-324, "5e-324"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1e22, "1e+22"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (1e-5, "0.00001"),
            (1.234e-5, "0.00001234"),
            (1e-6, "1e-6"),
            (9.99999e-6, "9.99999e-6"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (1234567890123456.8, "1234567890123456.8"),
            (1.2e16, "1.2e+16"),
            (2.225073858507201e-308, "2.225073858507201e-308"),
            (-1e-10, "-1e-10"),
            (f64::NAN, "null"),
        ];
        for (f, want) in cases {
            let mut out = Vec::new();
            write_float(&mut out, f);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{f:e}");
        }
        let mut out = Vec::new();
        write_value(&mut out, &Value::Float(f64::INFINITY));
        assert_eq!(out, b"null");
    }

    #[test]
    fn floats_round_trip() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..200_000 {
            let f = f64::from_bits(rng.next());
            if !f.is_finite() {
                continue;
            }
            let mut out = Vec::new();
            write_float(&mut out, f);
            match parse(&out) {
                Ok(Value::Float(g)) => assert_eq!(
                    g.to_bits(),
                    f.to_bits(),
                    "{}",
                    String::from_utf8_lossy(&out)
                ),
                other => panic!("{f:e} -> {:?} -> {other:?}", String::from_utf8_lossy(&out)),
            }
        }
    }

    #[test]
    fn depth_limit_1024() {
        for (open, inner, close) in [
            ("[", "", "]"),
            ("{\"a\":", "1", "}"),
            ("[{\"k\":", "0", "}]"),
        ] {
            let per = if open.starts_with("[{") { 2 } else { 1 };
            let fits = nested(open, inner, close, 1024 / per);
            assert!(parse(fits.as_bytes()).is_ok(), "{open} x {}", 1024 / per);
            let deeper = nested(open, &format!("{open}{inner}{close}"), close, 1024 / per);
            assert!(rejected(deeper.as_bytes()), "{open} deeper");
        }
        assert!(parse(nested("[", "[]", "]", 1023).as_bytes()).is_ok());
        assert!(rejected(nested("[", "{}", "]", 1024).as_bytes()));
    }

    /// Deep input fails fast and needs no call stack; a 1024-deep value also parses,
    /// writes and drops on a small stack.
    #[test]
    fn deep_input_on_a_small_stack() {
        let worker = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let started = std::time::Instant::now();
                for doc in [
                    "[".repeat(10_000),
                    "{\"a\":".repeat(10_000),
                    "[".repeat(1_000_000),
                ] {
                    assert_eq!(
                        parse(doc.as_bytes()).map_err(|e| e.message),
                        Err("nesting too deep")
                    );
                }
                let closed = nested("[", "", "]", 100_000);
                assert!(rejected(closed.as_bytes()));
                assert!(started.elapsed().as_secs() < 5);
                let deep = nested("[{\"a\":", "\"x\"", "}]", 512);
                let v = parse(deep.as_bytes()).expect("1024 deep is fine");
                let mut out = Vec::new();
                write_value(&mut out, &v);
                assert_eq!(out, deep.as_bytes());
            });
        worker.expect("spawn").join().expect("no stack overflow");
    }

    #[test]
    fn dumps_depth_limit_254() {
        for (n, inner, good) in [
            (254, "", true),
            (255, "", false),
            (253, "{}", true),
            (254, "{}", false),
        ] {
            let doc = nested("[", inner, "]", n);
            let v = parse(doc.as_bytes()).expect("loads accepts it");
            let mut out = b"keep".to_vec();
            assert_eq!(try_write_value(&mut out, &v).is_ok(), good, "{n} {inner}");
            if !good {
                assert_eq!(out, b"keep", "nothing written on failure");
            }
            let mut all = Vec::new();
            write_value(&mut all, &v);
            assert_eq!(all.len(), 2 * n + inner.len());
        }
        // orjson.dumps also refuses integers beyond 64 bits; parse never makes them.
        let big = Value::Array(vec![Value::Int(i128::from(u64::MAX) + 1)]);
        assert!(try_write_value(&mut Vec::new(), &big).is_err());
        let mut out = Vec::new();
        write_value(&mut out, &big);
        assert_eq!(out, b"[18446744073709551616]");
        let edge = Value::Array(vec![
            Value::Int(i64::MIN.into()),
            Value::Int(u64::MAX.into()),
        ]);
        assert!(try_write_value(&mut Vec::new(), &edge).is_ok());
    }

    #[test]
    fn utf8_bom_surrogates() {
        assert!(rejected(b"\xEF\xBB\xBF1"));
        assert!(rejected(b"\xEF\xBB\xBF{}"));
        assert!(rejected(b" \xEF\xBB\xBF1"));
        assert_eq!(ok("\"\u{feff}\""), "\"\u{feff}\"");
        for bad in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud83d\u0041""#,
            r#""\ud83dx""#,
            r#""\uD800\uDBFF""#,
            r#"{"\ud800":1}"#,
        ] {
            assert!(rejected(bad.as_bytes()), "{bad}");
        }
        assert_eq!(
            ok(r#""\ud83d\ude00\uDBFF\uDFFF""#),
            "\"\u{1F600}\u{10FFFF}\""
        );
        for bad in [
            &b"\"\xff\""[..],
            b"\"\xc0\x80\"",
            b"\"\xed\xa0\x80\"",
            b"\"\xf4\x90\x80\x80\"",
            b"\"\xf0\x9f\x98\"",
            b"[1]\xff",
            b"\xff",
        ] {
            assert!(rejected(bad), "{bad:?}");
        }
    }

    #[test]
    fn whitespace_trailing_and_empty() {
        assert_eq!(ok(" \t\n\r[ 1 ,\t2 ]\r\n "), "[1,2]");
        assert_eq!(ok("{ \"a\" : 1 , \"b\" :[ ] }"), r#"{"a":1,"b":[]}"#);
        for bad in [
            &b""[..],
            b" ",
            b"\t\n\r",
            b"\x0c1",
            b"\x0b1",
            b"1 x",
            b"[1]]",
            b"null null",
            b"truex",
            b"1\x00",
            b"\"a\"b",
        ] {
            assert!(rejected(bad), "{bad:?}");
        }
        for bad in [
            "[1,]",
            "{\"a\":1,}",
            "[,1]",
            "{,}",
            "{\"a\"}",
            "{1:2}",
            "[1 2]",
            "[",
            "{",
            "{\"a\":",
            "\"abc",
            "nul",
            "TRUE",
        ] {
            assert!(rejected(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let input = br#"{"plain":"value with spaces and e\u0301","key\n":"a\"b","k":"\u00e9"}"#;
        let Ok(Value::Object(o)) = parse(input) else {
            panic!()
        };
        assert!(matches!(o.get("plain"), Some(Value::Str(Cow::Owned(_)))));
        let Ok(Value::Object(o)) =
            parse(br#"{"plain":"long enough to cross a word boundary","x":"\u00e9"}"#)
        else {
            panic!()
        };
        assert!(matches!(
            o.get("plain"),
            Some(Value::Str(Cow::Borrowed(
                "long enough to cross a word boundary"
            )))
        ));
        assert!(matches!(o.get("x"), Some(Value::Str(Cow::Owned(s))) if s == "\u{e9}"));
        assert!(matches!(o.iter().next(), Some(("plain", _))));
        let Ok(Value::Str(s)) = parse("\"é\u{2028}\"".as_bytes()) else {
            panic!()
        };
        assert!(matches!(s, Cow::Borrowed("é\u{2028}")));
        assert_eq!(
            ok(r#""\b\f\n\r\t\"\\\/\u0000\u001f\u007f""#),
            "\"\\b\\f\\n\\r\\t\\\"\\\\/\\u0000\\u001f\u{7f}\""
        );
        for bad in [
            "\"\x01\"",
            "\"\t\"",
            "\"\n\"",
            r#""\x""#,
            r#""\U0041""#,
            r#""\u00""#,
            r#""\u00G0""#,
            "\"\\",
        ] {
            assert!(rejected(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn write_str_escaping() {
        let all: String = (0u8..0x20).map(char::from).collect();
        let mut out = Vec::new();
        write_str(&mut out, &all);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\
             \\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\""
        );
        let mut out = Vec::new();
        write_str(&mut out, "\"\\/\u{7f}é\u{2028}\u{2029}\u{feff}\u{1F600}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"\\\"\\\\/\u{7f}é\u{2028}\u{2029}\u{feff}\u{1F600}\""
        );
    }

    #[test]
    fn write_str_word_scan_escapes_every_byte_wherever_it_is() {
        let naive = |s: &str| {
            let mut o = vec![b'"'];
            for &b in s.as_bytes() {
                match ESCAPE[usize::from(b)] {
                    0 => o.push(b),
                    b'u' => o.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
                    e => o.extend_from_slice(&[b'\\', e]),
                }
            }
            o.push(b'"');
            o
        };
        for b in 0u8..0x80 {
            for at in 0..20 {
                let mut s = vec![b'a'; 20];
                s[at] = b;
                let s = String::from_utf8(s).unwrap();
                let mut out = Vec::new();
                write_str(&mut out, &s);
                assert_eq!(out, naive(&s), "byte {b:#x} at {at}");
            }
        }
    }

    #[test]
    fn integers_either_side_of_64_bits() {
        for n in [
            0i128,
            -1,
            i128::from(i64::MAX),
            i128::from(i64::MAX) + 1,
            i128::from(i64::MIN),
            i128::from(i64::MIN) - 1,
            i128::MAX,
            i128::MIN,
        ] {
            let mut out = Vec::new();
            write_int(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
        for n in [
            0u128,
            u128::from(u64::MAX),
            u128::from(u64::MAX) + 1,
            u128::MAX,
        ] {
            let mut out = Vec::new();
            write_uint(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
            assert_eq!(div_rem_u128(n, 10_000), (n / 10_000, n % 10_000));
        }
    }

    #[test]
    fn errors_display() {
        let e = parse(b"[1,]").unwrap_err();
        assert_eq!(e.offset, 3);
        assert_eq!(e.to_string(), "expected a JSON value at byte 3");
        assert!(format!("{e:?}").contains("JsonError"));
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*: deterministic, no dependency.
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    /// Random byte soup biased towards JSON's own characters: never a panic, and whatever
    /// parses writes out as JSON that parses back to the same value.
    #[test]
    fn random_bytes_never_panic() {
        const ALPHABET: &[u8] = b"[]{}[]{}\"\"\"\",,::\\\\ \t\n0123456789.-+eEtruefalsnlu\x00\x1f\x7f\xc3\xa9\xed\xa0\xf0\x9f\x98\x80\xff";
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let mut accepted = 0;
        for round in 0..300_000u32 {
            let len = (rng.next() % if round.is_multiple_of(100) { 400 } else { 24 }) as usize;
            let doc: Vec<u8> = (0..len)
                .map(|_| {
                    let r = rng.next();
                    if r.is_multiple_of(8) {
                        (r >> 8) as u8
                    } else {
                        ALPHABET[(r >> 8) as usize % ALPHABET.len()]
                    }
                })
                .collect();
            if let Ok(v) = parse(&doc) {
                accepted += 1;
                let mut out = Vec::new();
                write_value(&mut out, &v);
                assert_eq!(
                    parse(&out).as_ref(),
                    Ok(&v),
                    "{:?}",
                    String::from_utf8_lossy(&doc)
                );
            }
        }
        assert!(accepted > 1000, "only {accepted} accepted");
    }

    /// Throughput on event-like objects: `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput() {
        let event = br#"{"event_id":"evt-000123456","tenant_id":"acme-corp","kind":"call_start","ts":"2024-05-01T12:34:56.789Z","call_id":"c-9f8e7d6c5b4a","from":"+14155550123","to":"+442071838750","duration":183,"amount":"0.0125","ok":true}"#;
        let n = 2_000_000;
        let started = std::time::Instant::now();
        let mut keys = 0;
        for _ in 0..n {
            if let Ok(Value::Object(o)) = parse(std::hint::black_box(event)) {
                keys += o.len();
            }
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{} bytes/event: {:.2}M events/s, {:.0} MB/s ({keys})",
            event.len(),
            n as f64 / secs / 1e6,
            (n * event.len()) as f64 / secs / 1e6
        );
    }
}
