//! deb822 paragraphs, the format of a `.deb`'s `control` file and of an apt
//! repository's `Release` and `Packages`: `Field: value` lines, continuation lines
//! starting with a space or tab, paragraphs separated by blank lines.
//!
//! Strict where a lax reader would let two readers disagree: a field given twice in a
//! paragraph, a continuation line with no field before it, and a line that is neither
//! are refused, naming the line. Bounded: a line is at most [`MAX_LINE`] bytes, a
//! paragraph has at most `policy::DEB822_MAX_FIELDS` fields (each checked against the
//! earlier ones in one set lookup), and a
//! paragraph at most [`MAX_PARAGRAPH`], so a `Packages` index of any size streams
//! through [`Paragraphs`] in constant memory. What the fields mean (which index a
//! release vouches for, which stanza a package is) is the verifier's business; only
//! the `Release` file's `SHA256:` list is parsed here, as data.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, Read};

use crate::policy::DEB822_MAX_FIELDS;

/// Longest line read.
pub const MAX_LINE: usize = 64 << 10;
/// Largest paragraph read; a `Release` listing thousands of indexes fits, and a
/// package's stanza is a few KiB.
pub const MAX_PARAGRAPH: usize = crate::policy::MAX_MANIFEST as usize;

/// Why text is not deb822.
#[derive(Debug, thiserror::Error)]
pub enum Deb822Error {
    #[error("line {line}: {message}")]
    Bad { line: u64, message: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One paragraph: its fields in order, values with continuation lines joined by `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    pub fields: Vec<(String, String)>,
    /// The line the paragraph starts on (1-based).
    pub line: u64,
}

impl Paragraph {
    /// The value of `name` (field names are case-insensitive), first line trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads paragraphs one at a time from a stream.
pub struct Paragraphs<R> {
    inner: R,
    line: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> Paragraphs<R> {
    pub fn new(inner: R) -> Self {
        Paragraphs {
            inner,
            line: 0,
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next paragraph, `None` at the end.
    ///
    /// # Errors
    ///
    /// [`Deb822Error::Bad`] naming the line; `Io` when the stream fails.
    pub fn next_paragraph(&mut self) -> Result<Option<Paragraph>, Deb822Error> {
        let mut p = Paragraph::default();
        // Field names seen in this paragraph, lowercased: one lookup per field.
        let mut names: HashSet<String> = HashSet::new();
        let mut bytes = 0usize;
        while !self.done {
            if !self.read_line()? {
                self.done = true;
                break;
            }
            let line = self.line;
            let bad = |message: String| Deb822Error::Bad { line, message };
            let text = std::str::from_utf8(&self.buf)
                .map_err(|_| bad("is not UTF-8".into()))?
                .trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                if p.fields.is_empty() {
                    continue;
                }
                return Ok(Some(p));
            }
            bytes += text.len() + 1;
            if bytes > MAX_PARAGRAPH {
                return Err(bad(format!(
                    "the paragraph starting on line {} is larger than {} MiB",
                    p.line,
                    crate::policy::mib(MAX_PARAGRAPH as u64)
                )));
            }
            if text.starts_with('#') {
                continue;
            }
            if text.starts_with([' ', '\t']) {
                let Some((_, value)) = p.fields.last_mut() else {
                    return Err(bad("a continuation line with no field before it".into()));
                };
                value.push('\n');
                value.push_str(text.trim());
                continue;
            }
            let Some((name, value)) = text.split_once(':') else {
                return Err(bad(format!(
                    "{} is neither a field nor a continuation line",
                    crate::text::escape(&text[..text.len().min(80)])
                )));
            };
            if name.is_empty()
                || name.starts_with('-')
                || !name.bytes().all(|c| c.is_ascii_graphic() && c != b':')
            {
                return Err(bad(format!(
                    "{} is not a field name",
                    crate::text::escape(&name[..name.len().min(80)])
                )));
            }
            if p.fields.is_empty() {
                p.line = line;
            }
            if !names.insert(name.to_ascii_lowercase()) {
                return Err(bad(format!(
                    "field {} is given twice in the paragraph starting on line {}",
                    crate::text::escape(name),
                    p.line
                )));
            }
            if p.fields.len() == DEB822_MAX_FIELDS {
                return Err(bad(format!(
                    "the paragraph starting on line {} has more than {DEB822_MAX_FIELDS} fields",
                    p.line
                )));
            }
            p.fields.push((name.to_string(), value.trim().to_string()));
        }
        Ok((!p.fields.is_empty()).then_some(p))
    }

    /// Reads one line into `buf`, at most [`MAX_LINE`] bytes; false at the end.
    fn read_line(&mut self) -> Result<bool, Deb822Error> {
        self.buf.clear();
        let n = Read::by_ref(&mut self.inner)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.buf.len() > MAX_LINE && self.buf.last() != Some(&b'\n') {
            return Err(Deb822Error::Bad {
                line: self.line,
                message: format!("is longer than {MAX_LINE} bytes"),
            });
        }
        Ok(true)
    }
}

/// Every paragraph of `text`.
///
/// # Errors
///
/// As [`Paragraphs::next_paragraph`].
pub fn parse(text: &[u8]) -> Result<Vec<Paragraph>, Deb822Error> {
    let mut reader = Paragraphs::new(text);
    let mut out = Vec::new();
    while let Some(p) = reader.next_paragraph()? {
        out.push(p);
    }
    Ok(out)
}

/// One line of a `Release` file's `SHA256:` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    /// Lowercase hex.
    pub sha256: String,
    pub size: u64,
    /// The path relative to the release, e.g. `main/binary-amd64/Packages.gz`.
    pub path: String,
}

/// The `SHA256:` list of a `Release` paragraph: `hash size path` per line. `None` when
/// the field is absent (a release with only `MD5Sum`/`SHA1` lists).
///
/// # Errors
///
/// A line that is not three fields, a hash that is not 64 hex digits, a size that is
/// not decimal, or one path listed twice with different hashes or sizes.
pub fn release_sha256(p: &Paragraph) -> Result<Option<Vec<FileHash>>, String> {
    let Some(list) = p.get("SHA256") else {
        return Ok(None);
    };
    let mut out: Vec<FileHash> = Vec::new();
    // Where each path is in `out`, so a path listed twice is found in one lookup.
    let mut at: HashMap<String, usize> = HashMap::new();
    for (i, line) in list.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let shown = || crate::text::escape(&line[..line.len().min(120)]);
        let [hash, size, path] = words[..] else {
            return Err(format!(
                "SHA256 line {}: {} is not `hash size path`",
                i + 1,
                shown()
            ));
        };
        if hash.len() != 64 || !hash.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "SHA256 line {}: {} has no 64-digit hash",
                i + 1,
                shown()
            ));
        }
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|_| size.bytes().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| format!("SHA256 line {}: {} has no decimal size", i + 1, shown()))?;
        let entry = FileHash {
            sha256: hash.to_ascii_lowercase(),
            size,
            path: path.to_string(),
        };
        if let Some(&seen) = at.get(&entry.path) {
            if out[seen] != entry {
                return Err(format!(
                    "lists {} twice with different hashes or sizes",
                    crate::text::escape(path)
                ));
            }
            continue;
        }
        at.insert(entry.path.clone(), out.len());
        out.push(entry);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` and compares each paragraph's fields, or the error's text.
    fn check(text: &str, want: Result<&[&[(&str, &str)]], &str>) {
        let got = parse(text.as_bytes());
        match want {
            Ok(paragraphs) => {
                let got = got.unwrap_or_else(|e| panic!("{e}"));
                let got: Vec<Vec<(&str, &str)>> = got
                    .iter()
                    .map(|p| {
                        p.fields
                            .iter()
                            .map(|(n, v)| (n.as_str(), v.as_str()))
                            .collect()
                    })
                    .collect();
                let want: Vec<Vec<(&str, &str)>> = paragraphs.iter().map(|p| p.to_vec()).collect();
                assert_eq!(got, want);
            }
            Err(fragment) => {
                let e = got.expect_err("should be refused").to_string();
                assert!(e.contains(fragment), "{e:?} lacks {fragment:?}");
            }
        }
    }

    #[test]
    fn paragraphs_fields_and_continuations() {
        check(
            "Package: acme\nVersion: 1.0\nDescription: short\n more\n .\n\n\nPackage: b\n",
            Ok(&[
                &[
                    ("Package", "acme"),
                    ("Version", "1.0"),
                    ("Description", "short\nmore\n."),
                ],
                &[("Package", "b")],
            ]),
        );
        check("# comment\nA: b\r\n", Ok(&[&[("A", "b")]]));
        check("", Ok(&[]));
        check("\n \n\t\n", Ok(&[]));
    }

    #[test]
    fn what_two_readers_could_read_differently_is_refused() {
        check("A: 1\na: 2\n", Err("line 2: field a is given twice"));
        check(" cont\nA: 1\n", Err("line 1: a continuation line"));
        check("A: 1\njunk\n", Err("line 2: junk is neither"));
        check(": v\n", Err("is not a field name"));
        check("-A: v\n", Err("is not a field name"));
        let long = format!("A: {}\n", "x".repeat(MAX_LINE + 10));
        check(&long, Err("longer than"));
    }

    #[test]
    fn a_paragraph_past_the_cap_is_refused_without_holding_it() {
        let line = format!(" {}\n", "x".repeat(MAX_LINE - 10));
        let mut text = String::from("A: b\n");
        while text.len() <= MAX_PARAGRAPH + MAX_LINE {
            text.push_str(&line);
        }
        check(&text, Err("larger than 16 MiB"));
    }

    /// A paragraph of `n` distinct fields, and how long parsing it took.
    fn many_fields(n: usize) -> (Result<Vec<Paragraph>, Deb822Error>, std::time::Duration) {
        let text: String = (0..n).map(|i| format!("F{i:x}:\n")).collect();
        let start = std::time::Instant::now();
        let got = parse(text.as_bytes());
        (got, start.elapsed())
    }

    #[test]
    fn fields_are_checked_for_duplicates_in_one_lookup_each() {
        // At the cap: every field is read. Compared with each earlier field, the
        // 1.5 million fields that fit in 16 MiB were a trillion comparisons.
        let (got, took) = many_fields(DEB822_MAX_FIELDS);
        assert_eq!(got.unwrap()[0].fields.len(), DEB822_MAX_FIELDS);
        assert!(took.as_millis() < 1000, "took {took:?}");
        let (got, took) = many_fields(200_000);
        let e = got.expect_err("past the field cap").to_string();
        assert_eq!(
            e,
            format!(
                "line {}: the paragraph starting on line 1 has more than {DEB822_MAX_FIELDS} fields",
                DEB822_MAX_FIELDS + 1
            )
        );
        assert!(took.as_millis() < 1000, "took {took:?}");
        check(
            "A: 1\nB: 2\nb: 3\n",
            Err("line 3: field b is given twice in the paragraph starting on line 1"),
        );
    }

    #[test]
    fn a_long_release_list_is_checked_for_repeats_in_one_lookup_each() {
        let h = "ab".repeat(32);
        let list: String = (0..100_000).map(|i| format!(" {h} 1 p{i}\n")).collect();
        let start = std::time::Instant::now();
        let got = release_sha256(&release(&list)).unwrap().unwrap();
        assert_eq!(got.len(), 100_000);
        assert!(start.elapsed().as_secs() < 3, "took {:?}", start.elapsed());
    }

    fn release(list: &str) -> Paragraph {
        parse(format!("Origin: x\nSHA256:\n{list}").as_bytes())
            .unwrap()
            .remove(0)
    }

    #[test]
    fn the_release_file_list() {
        let h = "ab".repeat(32);
        let got = release_sha256(&release(&format!(
            " {h} 12 main/Packages\n {h} 12 main/Packages\n"
        )))
        .unwrap()
        .unwrap();
        assert_eq!(
            got,
            vec![FileHash {
                sha256: h.clone(),
                size: 12,
                path: "main/Packages".into()
            }]
        );
        let h2 = "cd".repeat(32);
        let twice = release_sha256(&release(&format!(" {h} 12 Packages\n {h2} 12 Packages\n")));
        assert!(twice.unwrap_err().contains("twice"));
        for bad in [
            format!(" {h} 12\n"),
            " abc 12 P\n".to_string(),
            format!(" {h} -1 P\n"),
            format!(" {h} +1 P\n"),
        ] {
            assert!(release_sha256(&release(&bad)).is_err(), "{bad}");
        }
        let md5_only = parse(b"MD5Sum:\n d41d8cd98f00b204e9800998ecf8427e 0 Packages\n").unwrap();
        assert_eq!(release_sha256(&md5_only[0]).unwrap(), None);
    }
}
