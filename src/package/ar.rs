//! A streaming reader of `ar` archives, the outer container of a `.deb`: the global
//! header `!<arch>\n`, then per member a 60-byte header (name, dates, owner, mode, a
//! decimal size, the magic `` `\n ``), its data, and one padding byte after data of odd
//! length.
//!
//! Members are handed out one at a time as a bounded reader over their data; nothing
//! is held but the current header, so memory does not depend on the archive. Sizes are
//! plain decimal digits and nothing else; names are the short names `.deb`s use
//! (GNU's trailing `/` accepted); GNU and BSD long-name members (`//`, `#1/N`) are
//! refused rather than resolved, since no `.deb` needs them. What the members mean is
//! `deb`'s business.

use std::io::{self, Read};

/// The global header every ar archive starts with.
pub const MAGIC: &[u8; 8] = b"!<arch>\n";
/// Bytes of a member header.
pub const HEADER: usize = 60;

/// Why an ar archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArError {
    /// Not an ar archive, a malformed header, or truncated data.
    #[error("{0}")]
    Corrupt(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One member's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The name, GNU's trailing `/` removed.
    pub name: String,
    /// The declared data size (not trusted: reading past the end is `Corrupt`).
    pub size: u64,
    /// Where the member's header starts in the archive.
    pub offset: u64,
}

/// Reads members in order from an archive's start.
pub struct ArReader<R> {
    inner: R,
    /// Bytes consumed from the start of the archive.
    offset: u64,
    /// Data bytes of the current member not yet read.
    left: u64,
    /// Whether the current member is followed by a padding byte.
    pad: bool,
}

impl<R: Read> ArReader<R> {
    /// Reads and checks the global header.
    ///
    /// # Errors
    ///
    /// [`ArError::Corrupt`] when the input does not start with `!<arch>\n`.
    pub fn new(mut inner: R) -> Result<Self, ArError> {
        let mut magic = [0u8; 8];
        read_exact_or(&mut inner, &mut magic, "the ar global header")?;
        if &magic != MAGIC {
            return Err(ArError::Corrupt(
                "not an ar archive (no !<arch> header)".into(),
            ));
        }
        Ok(ArReader {
            inner,
            offset: 8,
            left: 0,
            pad: false,
        })
    }

    /// The next member's header, after skipping what is left of the current one.
    /// `None` at a clean end of the archive.
    ///
    /// # Errors
    ///
    /// [`ArError::Corrupt`] for a truncated archive or a malformed header.
    pub fn next_member(&mut self) -> Result<Option<Member>, ArError> {
        self.skip_rest()?;
        let mut header = [0u8; HEADER];
        let got = read_up_to(&mut self.inner, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        let offset = self.offset;
        if got < HEADER {
            return Err(ArError::Corrupt(format!(
                "a member header at offset {offset} is cut short ({got} of {HEADER} bytes)"
            )));
        }
        self.offset += HEADER as u64;
        let member = parse_header(&header, offset)?;
        self.left = member.size;
        self.pad = member.size % 2 == 1;
        Ok(Some(member))
    }

    /// A reader over the current member's data; it ends at the member's end and fails
    /// if the archive ends first.
    pub fn data(&mut self) -> MemberData<'_, R> {
        MemberData { ar: self }
    }

    /// The underlying reader, positioned after what was read so far.
    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn skip_rest(&mut self) -> Result<(), ArError> {
        match io::copy(&mut self.data(), &mut io::sink()) {
            Ok(_) => {}
            // The archive ends inside the member: the archive's fault, not the disk's.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ArError::Corrupt(e.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
        if self.pad {
            self.pad = false;
            let mut b = [0u8; 1];
            // A missing final padding byte is tolerated by ar(1) and dpkg alike: only
            // a member header may follow, so nothing can hide there.
            if read_up_to(&mut self.inner, &mut b)? == 1 {
                self.offset += 1;
                if b[0] != b'\n' {
                    return Err(ArError::Corrupt(format!(
                        "the padding byte at offset {} is not a newline",
                        self.offset - 1
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The current member's data.
pub struct MemberData<'a, R> {
    ar: &'a mut ArReader<R>,
}

impl<R: Read> Read for MemberData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ar.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.ar.left).unwrap_or(usize::MAX));
        let n = self.ar.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the archive ends {} bytes before the member's declared end",
                    self.ar.left
                ),
            ));
        }
        self.ar.left -= n as u64;
        self.ar.offset += n as u64;
        Ok(n)
    }
}

/// Parses a member header: the fixed layout, a decimal size, the magic.
pub(crate) fn parse_header(h: &[u8; HEADER], offset: u64) -> Result<Member, ArError> {
    let bad = |what: String| ArError::Corrupt(format!("member header at offset {offset}: {what}"));
    if &h[58..60] != b"`\n" {
        return Err(bad("the header magic is missing".into()));
    }
    let raw_name = trim_spaces(&h[0..16]);
    if raw_name == b"//" || raw_name == b"/" || raw_name.starts_with(b"#1/") {
        return Err(bad(format!(
            "a {} member (long names or a symbol table), which a .deb never has",
            if raw_name.starts_with(b"#1/") {
                "BSD long-name"
            } else {
                "GNU table"
            }
        )));
    }
    let name = raw_name.strip_suffix(b"/").unwrap_or(raw_name);
    if name.is_empty()
        || !name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"._-+".contains(&c))
    {
        return Err(bad(format!(
            "member name {} is not a plain name",
            crate::text::escape(&String::from_utf8_lossy(&h[0..16]))
        )));
    }
    let size_field = trim_spaces(&h[48..58]);
    if size_field.is_empty() || !size_field.iter().all(u8::is_ascii_digit) {
        return Err(bad(format!(
            "size {} is not a decimal number",
            crate::text::escape(&String::from_utf8_lossy(&h[48..58]))
        )));
    }
    // At most ten digits: always fits in a u64.
    let size = std::str::from_utf8(size_field)
        .expect("digits")
        .parse::<u64>()
        .expect("ten digits fit");
    Ok(Member {
        name: String::from_utf8(name.to_vec()).expect("ascii"),
        size,
        offset,
    })
}

fn trim_spaces(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    &b[..end]
}

/// Reads as much of `buf` as the input holds; fewer bytes only at its end.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = Vec::with_capacity(buf.len());
    r.take(buf.len() as u64).read_to_end(&mut got)?;
    buf[..got.len()].copy_from_slice(&got);
    Ok(got.len())
}

fn read_exact_or(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), ArError> {
    let n = read_up_to(r, buf)?;
    if n < buf.len() {
        return Err(ArError::Corrupt(format!(
            "{what} is cut short ({n} of {} bytes)",
            buf.len()
        )));
    }
    Ok(())
}

/// Builds an ar archive from `(name, data)` members, for tests.
#[cfg(test)]
pub fn build(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (name, data) in members {
        out.extend_from_slice(&header(name, data.len() as u64));
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
pub fn header(name: &str, size: u64) -> Vec<u8> {
    format!(
        "{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n",
        0, 0, 0, "100644"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads every member of `bytes` into `(name, data)`, or the first error's text.
    fn read_all(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut ar = ArReader::new(bytes).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(m) = ar.next_member().map_err(|e| e.to_string())? {
            let mut data = Vec::new();
            ar.data()
                .read_to_end(&mut data)
                .map_err(|e| e.to_string())?;
            out.push((m.name, data));
        }
        Ok(out)
    }

    fn check(bytes: &[u8], want: Result<&[(&str, &[u8])], &str>) {
        let got = read_all(bytes);
        match want {
            Ok(members) => {
                let got = got.unwrap_or_else(|e| panic!("{e}"));
                let want: Vec<(String, Vec<u8>)> = members
                    .iter()
                    .map(|(n, d)| (n.to_string(), d.to_vec()))
                    .collect();
                assert_eq!(got, want);
            }
            Err(fragment) => {
                let e = got.expect_err("should be refused");
                assert!(e.contains(fragment), "{e:?} lacks {fragment:?}");
            }
        }
    }

    #[test]
    fn members_in_order_with_padding() {
        let good = build(&[("debian-binary", b"2.0\n"), ("control.tar.gz", b"odd")]);
        check(
            &good,
            Ok(&[("debian-binary", b"2.0\n"), ("control.tar.gz", b"odd")]),
        );
        // GNU's trailing slash, and an odd last member without its padding byte.
        let mut gnu = MAGIC.to_vec();
        gnu.extend(header("data.tar/", 3));
        gnu.extend(b"abc");
        check(&gnu, Ok(&[("data.tar", b"abc")]));
        check(MAGIC, Ok(&[]));
    }

    #[test]
    fn hostile_archives_are_refused() {
        check(b"!<arch", Err("cut short"));
        check(b"!<arch>X", Err("not an ar archive"));
        let mut cut = build(&[("a", b"0123456789")]);
        cut.truncate(cut.len() - 4);
        check(&cut, Err("ends 4 bytes before"));
        let mut short_header = MAGIC.to_vec();
        short_header.extend(&header("a", 1)[..30]);
        check(&short_header, Err("cut short (30 of 60"));
        // A size that claims gigabytes allocates nothing: it is a truncation.
        let mut huge = MAGIC.to_vec();
        huge.extend(header("a", 9_999_999_999));
        check(&huge, Err("ends 9999999999 bytes before"));
        for size in ["-1", "0x10", "1 2", "+5"] {
            let mut h = header("a", 0);
            h[48..58].copy_from_slice(format!("{size:<10}").as_bytes());
            check(&[&MAGIC[..], &h].concat(), Err("not a decimal number"));
        }
        let mut no_magic = header("a", 0);
        no_magic[58] = b'x';
        check(&[&MAGIC[..], &no_magic].concat(), Err("magic is missing"));
        check(&build(&[("//", b"long")]), Err("GNU table"));
        check(&build(&[("#1/20", b"x")]), Err("BSD long-name"));
        check(&build(&[("../x", b"x")]), Err("not a plain name"));
        check(&build(&[("a b", b"x")]), Err("not a plain name"));
        let mut bad_pad = build(&[("a", b"x"), ("b", b"")]);
        bad_pad[8 + 60 + 1] = b'Z';
        check(&bad_pad, Err("padding byte"));
    }
}
