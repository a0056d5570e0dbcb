//! Python's own text rules where the contracts inherit them: `str.strip()` and `repr(str)`.
//!
//! The reference implementation was Python, and its deck messages quote values with `repr`
//! and trim cells with `strip`; these keep the same texts without a Python interpreter.

/// Python's `str.isspace()` for one character (Rust's `char::is_whitespace` lacks U+001C..1F).
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` without arguments.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python's `bytes.isspace()` for one byte: the ASCII whitespace `bytes.strip()` removes.
pub fn is_py_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Whether Python's `str.isprintable()` holds for `c`, for the characters a deck or an id
/// plausibly holds: ASCII exactly; beyond it the control, format, separator and private-use
/// ranges are refused (Python also refuses unassigned code points, which need the Unicode
/// database: those are shown as themselves here, the one place the texts may differ).
fn is_py_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    !matches!(u,
        0x80..=0xa0 | 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x1680 | 0x180e
        | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064 | 0x2066..=0x206f | 0x3000
        | 0xd800..=0xf8ff | 0xfeff | 0xfff9..=0xfffb | 0xe0001 | 0xe0020..=0xe007f
        | 0xf0000..=0x10ffff)
}

/// Python's `repr(s)` of a string: single quotes unless the text holds `'` and no `"`.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_py_printable(c) => out.push(c),
            c => {
                let u = c as u32;
                if u < 0x100 {
                    out.push_str(&format!("\\x{u:02x}"));
                } else if u < 0x10000 {
                    out.push_str(&format!("\\u{u:04x}"));
                } else {
                    out.push_str(&format!("\\U{u:08x}"));
                }
            }
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_is_pythons() {
        assert_eq!(py_strip("\u{1f} 44\u{a0}\u{3000}"), "44");
        assert_eq!(py_strip("\u{200b}44"), "\u{200b}44"); // not a space in Python either
    }

    #[test]
    fn repr_is_pythons() {
        assert_eq!(py_repr("4x"), "'4x'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("'\""), "'\\'\"'");
        assert_eq!(
            py_repr("a\tb\u{7f}\u{85}é\u{2028}"),
            "'a\\tb\\x7f\\x85é\\u2028'"
        );
        assert_eq!(py_repr("\\"), "'\\\\'");
    }
}
