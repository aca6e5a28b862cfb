//! File names in trees, encoded as restic does: the raw name bytes are escaped like Go's
//! `strconv.Quote` (without the surrounding quotes) before JSON encoding, so names that are not
//! valid UTF-8, or contain quotes, backslashes or control characters, survive exactly.

/// Escape raw name bytes the way restic stores them.
///
/// Matches Go's `strconv.Quote` for every byte sequence except non-ASCII characters that Go
/// considers unprintable (e.g. U+00A0), which are kept as they are — Go's `Unquote` reads both.
pub fn quote(raw: &[u8]) -> String {
    // Fast path: printable ASCII without quotes or backslashes needs no escaping.
    if raw.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_escaped(&mut out, s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // Valid by construction: `valid_up_to` says so.
                push_escaped(&mut out, std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len());
                for b in &bad[..n] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (0x80..0xa0).contains(&(c as u32)) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// Undo [`quote`] (and Go's `strconv.Quote`): returns the raw name bytes, or `None` when the text
/// is not a valid escaped string.
pub fn unquote(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |t: &[u8]| std::str::from_utf8(t).ok().and_then(|t| u32::from_str_radix(t, 16).ok());
    while i < b.len() {
        match b[i] {
            b'"' | b'\n' => return None,
            b'\\' => {
                let c = *b.get(i + 1)?;
                i += 2;
                match c {
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'\\' | b'"' | b'\'' => out.push(c),
                    b'x' => {
                        out.push(hex(b.get(i..i + 2)?)? as u8);
                        i += 2;
                    }
                    b'0'..=b'7' => {
                        let t = b.get(i - 1..i + 2)?;
                        let v = u32::from_str_radix(std::str::from_utf8(t).ok()?, 8).ok()?;
                        out.push(u8::try_from(v).ok()?);
                        i += 2;
                    }
                    b'u' | b'U' => {
                        let n = if c == b'u' { 4 } else { 8 };
                        let ch = char::from_u32(hex(b.get(i..i + n)?)?)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        i += n;
                    }
                    _ => return None,
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Bring a stored name into Lifeboat's canonical escaping (names written by other programs may
/// escape more characters); text that is not a valid escape sequence is taken literally.
pub fn canonical(stored: &str) -> String {
    match unquote(stored) {
        Some(raw) => quote(&raw),
        None => quote(stored.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_go_strconv_quote() {
        // Expected values are Go's strconv.Quote output without the quotes.
        assert_eq!(quote(b"plain.txt"), "plain.txt");
        assert_eq!(quote(b"quo\"te"), "quo\\\"te");
        assert_eq!(quote(b"back\\slash"), "back\\\\slash");
        assert_eq!(quote(b"new\nline"), "new\\nline");
        assert_eq!(quote(b"bad\xff"), "bad\\xff");
        assert_eq!(quote(b"ctl\x01x"), "ctl\\x01x");
        assert_eq!(quote("grüße €".as_bytes()), "grüße €");
        assert_eq!(quote(b"\xe2\x82"), "\\xe2\\x82");
    }

    #[test]
    fn reads_go_escapes() {
        assert_eq!(unquote("\\u00a0x\\U0001F600").expect("unquote"), "\u{a0}x😀".as_bytes());
        assert_eq!(unquote("\\101\\x41").expect("octal"), b"AA");
        assert!(unquote("bad\\q").is_none());
        assert!(unquote("trailing\\").is_none());
        assert_eq!(canonical("a\\u0041"), "aA");
    }

    proptest! {
        #[test]
        fn round_trip(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let q = quote(&raw);
            prop_assert_eq!(unquote(&q).expect("valid"), raw);
            prop_assert!(!q.contains('"') || q.contains("\\\""));
        }
    }
}
