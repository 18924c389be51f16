//! Text that came from outside (file names, user IDs, signature notations) made safe to
//! print on a terminal, and fingerprints made readable.
//!
//! Control characters (C0, DEL, C1) are escaped so that a bundle named with a newline
//! or an ANSI escape cannot forge report lines or repaint the terminal.

use std::ffi::OsStr;
use std::fmt::Write as _;

/// Escapes control characters in `s`: `\n`, `\r`, `\t`, `\\`, `\x1b`, `\u{9b}`, and
/// the line separators and bidirectional controls of [`invisible_control`] (`\u{202e}`).
/// `s` with every NUL character replaced by U+FFFD: text from outside that is stored
/// (PostgreSQL's text cannot hold NUL; both backends store the same).
pub fn without_nul(s: &str) -> std::borrow::Cow<'_, str> {
    match s.contains('\0') {
        true => std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}")),
        false => std::borrow::Cow::Borrowed(s),
    }
}

/// [`without_nul`] in place.
pub fn strip_nul(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', "\u{FFFD}");
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (0x80..0xa0).contains(&(c as u32)) || invisible_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters that are not C0/C1 controls but still change what a reader sees: line
/// and paragraph separators (a second line to a log reader or a mail client), the
/// bidirectional controls that reorder text ("Trojan Source", CVE-2021-42574), and the
/// zero-width characters that make two different names look the same.
fn invisible_control(c: char) -> bool {
    matches!(
        c,
        '\u{2028}'
            | '\u{2029}'
            | '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// Escapes a path or file name; bytes that are not UTF-8 become `\xNN`.
pub fn escape_os(s: &OsStr) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let mut out = String::new();
        for chunk in s.as_bytes().utf8_chunks() {
            out.push_str(&escape(chunk.valid()));
            for b in chunk.invalid() {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
        out
    }
    #[cfg(not(unix))]
    {
        escape(&s.to_string_lossy())
    }
}

/// Groups hex in fours for reading aloud: `0123 4567 89AB ...`.
pub fn group4(hex: &str) -> String {
    let mut out = String::with_capacity(hex.len() + hex.len() / 4);
    for (i, c) in hex.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
            // Sequoia's convention: a double space in the middle of a v4 fingerprint.
            if hex.len() == 40 && i == 20 {
                out.push(' ');
            }
        }
        out.push(c);
    }
    out
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// An error and its causes on one line, `outer: cause: root cause`, each cause once:
/// many errors (io, hyper, lettre) already print their source in their own message, so
/// a cause whose text is already on the line is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let text = c.to_string();
        if !text.is_empty() && !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = c.source();
    }
    s
}

/// Seconds since the Unix epoch (0 before it), for identities that name a moment.
pub fn unix_secs(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `"s"` unless `n` is one: `format!("{n} event{}", plural(n))`.
pub fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// RFC 3339 UTC timestamp to the second.
pub fn time(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        for (input, want) in [
            ("plain.zip", "plain.zip"),
            ("a\nverified: b", "a\\nverified: b"),
            ("\x1b[2Jx", "\\x1b[2Jx"),
            ("tab\there", "tab\\there"),
            ("c1\u{9b}31m", "c1\\u{9b}31m"),
            ("back\\slash", "back\\\\slash"),
            ("ünïcode", "ünïcode"),
            ("evil\u{202e}piz.exe", "evil\\u{202e}piz.exe"),
            (
                "line\u{2028}sep\u{2029}para",
                "line\\u{2028}sep\\u{2029}para",
            ),
            (
                "\u{2066}iso\u{2069}\u{200f}",
                "\\u{2066}iso\\u{2069}\\u{200f}",
            ),
            ("arabic \u{627}\u{644}", "arabic \u{627}\u{644}"),
            ("zero\u{200b}width\u{feff}", "zero\\u{200b}width\\u{feff}"),
        ] {
            assert_eq!(escape(input), want);
        }
    }

    #[cfg(unix)]
    #[test]
    fn escapes_non_utf8() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(escape_os(OsStr::from_bytes(b"a\xffb\n")), "a\\xffb\\n");
    }

    /// An error with a message and an optional cause.
    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);

    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    fn check_chain(messages: &[&'static str], want: &str) {
        let mut e: Option<Box<E>> = None;
        for m in messages.iter().rev() {
            e = Some(Box::new(E(m, e)));
        }
        assert_eq!(error_chain(&*e.unwrap()), want);
    }

    #[test]
    fn chains_print_each_cause_once() {
        let refused = "Connection refused (os error 111)";
        check_chain(&["a", "b", "c"], "a: b: c");
        check_chain(&[refused, refused], refused);
        check_chain(
            &[
                "connection error: Connection refused (os error 111)",
                refused,
            ],
            "connection error: Connection refused (os error 111)",
        );
        check_chain(&["outer", refused, refused], &format!("outer: {refused}"));
        check_chain(&["outer", ""], "outer");
    }

    #[test]
    fn groups() {
        assert_eq!(
            group4("0123456789ABCDEF0123456789ABCDEF01234567"),
            "0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567"
        );
        assert_eq!(group4("0123456789ABCDEF"), "0123 4567 89AB CDEF");
    }
}
