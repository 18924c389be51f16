//! The `sha256sum` text format: signed `SHA256SUMS` manifests and `pinned.sha256` files.
//!
//! Lines are `HEX  NAME` (text mode) or `HEX *NAME` (binary mode); a line starting with
//! `\` has `\\`, `\n` and `\r` escapes in its name, as GNU coreutils writes names with
//! newlines. Blank lines and `#` comments are skipped. This file parses and looks up;
//! deciding what a mismatch means is `verdict`'s job.

/// One `HEX NAME` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Lowercase hex digest.
    pub hex: String,
    pub name: String,
    /// 1-based line number, for messages.
    pub line: usize,
}

/// A line that is not in the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub reason: &'static str,
}

/// Parses sha256sum-format `text`. Lines that do not parse are returned beside the
/// entries so that the caller decides whether they are fatal.
pub fn parse(text: &str, digest_hex_len: usize) -> (Vec<Entry>, Vec<BadLine>) {
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end_matches('\r');
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        let (escaped, l) = match l.strip_prefix('\\') {
            Some(rest) => (true, rest),
            None => (false, l),
        };
        let Some((hex, rest)) = l.split_once(' ') else {
            bad.push(BadLine {
                line,
                reason: "expected \"HEX  NAME\"",
            });
            continue;
        };
        if hex.len() != digest_hex_len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bad.push(BadLine {
                line,
                reason: "the digest is not the expected length of hex digits",
            });
            continue;
        }
        // "HEX  NAME" or "HEX *NAME": the second character is the mode flag.
        let name = match rest.as_bytes().first() {
            Some(b' ') | Some(b'*') => &rest[1..],
            _ => rest,
        };
        let name = if escaped {
            match unescape(name) {
                Some(n) => n,
                None => {
                    bad.push(BadLine {
                        line,
                        reason: "bad backslash escape in the name",
                    });
                    continue;
                }
            }
        } else {
            name.to_string()
        };
        if name.is_empty() {
            bad.push(BadLine {
                line,
                reason: "no file name",
            });
            continue;
        }
        entries.push(Entry {
            hex: hex.to_ascii_lowercase(),
            name,
            line,
        });
    }
    (entries, bad)
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Formats one line the way `sha256sum` would, escaping names with newlines or
/// backslashes.
pub fn format_line(hex: &str, name: &str) -> String {
    if name.contains(['\\', '\n', '\r']) {
        let esc = name
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r");
        format!("\\{hex}  {esc}\n")
    } else {
        format!("{hex}  {name}\n")
    }
}

/// Whether a manifest entry names the file `file_name`: the same name, optionally behind
/// `./` or a folder prefix (`2026/<file>` as some CSAF providers write it).
pub fn names_file(entry_name: &str, file_name: &str) -> bool {
    let n = entry_name.strip_prefix("./").unwrap_or(entry_name);
    n == file_name || n.rsplit('/').next() == Some(file_name)
}

/// Every entry naming `file_name`.
pub fn entries_for<'a>(entries: &'a [Entry], file_name: &str) -> Vec<&'a Entry> {
    entries
        .iter()
        .filter(|e| names_file(&e.name, file_name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn check(text: &str, want_entries: &[(&str, usize)], want_bad: &[usize]) {
        let (entries, bad) = parse(text, 64);
        let got: Vec<(&str, usize)> = entries.iter().map(|e| (e.name.as_str(), e.line)).collect();
        assert_eq!(got, want_entries, "{text:?}");
        let got_bad: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(got_bad, want_bad, "{text:?}");
    }

    #[test]
    fn formats() {
        check(&format!("{H1}  a.zip\n"), &[("a.zip", 1)], &[]);
        check(&format!("{H1} *a.zip\r\n"), &[("a.zip", 1)], &[]);
        check(&format!("# c\n\n{H1}  ./a b.zip"), &[("./a b.zip", 3)], &[]);
        check(&format!("\\{H1}  a\\nb.zip\n"), &[("a\nb.zip", 1)], &[]);
        check("nothex  a.zip\n", &[], &[1]);
        check(&format!("{}  a.zip\n", &H1[1..]), &[], &[1]);
        check(&format!("{H1}\n"), &[], &[1]);
    }

    #[test]
    fn escaped_names_round_trip() {
        let line = format_line(H1, "evil\nname\\x");
        let (entries, bad) = parse(&line, 64);
        assert!(bad.is_empty());
        assert_eq!(entries[0].name, "evil\nname\\x");
    }

    #[test]
    fn name_matching() {
        assert!(names_file("a.zip", "a.zip"));
        assert!(names_file("./a.zip", "a.zip"));
        assert!(names_file("2026/a.zip", "a.zip"));
        assert!(!names_file("a.zip.asc", "a.zip"));
        assert!(!names_file("xa.zip", "a.zip"));
    }
}
