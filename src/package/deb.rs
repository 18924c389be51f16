//! What a `.deb` holds and in which order: `debian-binary` (`2.0`) first, then
//! `control.tar[.gz|.xz|.zst]`, then `data.tar[.gz|.xz|.zst|.bz2]`, with debsig's
//! `_gpgorigin` and dpkg-sig's `_gpgbuilder` allowed where those tools put them.
//! [`Layout`] checks that order member by member, refusing duplicates, unknown members
//! and members after the data, as dpkg does; [`decoder`] gives a member's
//! decompressed bytes; [`control_fields`] reads the package's `control` paragraph from
//! the first bytes of a `.deb` (for finding its stanza in an index).
//!
//! Reading the tar members' entries is the archive walker's job, and judging the
//! signature members the verifier's.

use std::io::{self, BufReader, Read, Seek, SeekFrom};

use crate::package::ar::ArReader;
use crate::package::deb822::{self, Paragraph};

/// How a tar member is compressed, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
    Bzip2,
}

impl Compression {
    /// By content: the magic bytes of gzip, xz, zstd or bzip2; anything else is plain.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else {
            Compression::None
        }
    }
}

/// What one ar member of a `.deb` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    DebianBinary,
    Control(Compression),
    Data(Compression),
    /// debsig-verify's detached signature over the three members before it.
    GpgOrigin,
    /// dpkg-sig's cleartext-signed list of member digests.
    GpgBuilder,
}

/// A `.deb` whose members are not what dpkg accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: member {member}: {message}")]
pub struct LayoutError {
    /// `bad-member`, `duplicate-entry` or `unsigned-content`.
    pub code: &'static str,
    pub member: String,
    pub message: String,
}

/// The members seen so far, checking each against dpkg's order.
#[derive(Debug, Default)]
pub struct Layout {
    seen_binary: bool,
    seen_control: bool,
    seen_data: bool,
    seen_origin: bool,
    seen_builder: bool,
}

impl Layout {
    /// Classifies the next member, refusing what dpkg would.
    ///
    /// # Errors
    ///
    /// [`LayoutError`]: `debian-binary` not first, a member twice, one dpkg does not
    /// know, or anything after the data but the signature members.
    pub fn next(&mut self, name: &str) -> Result<MemberKind, LayoutError> {
        let err = |code, message: &str| LayoutError {
            code,
            member: crate::text::escape(name),
            message: message.to_string(),
        };
        let kind = classify(name)
            .ok_or_else(|| err("bad-member", "is not a member a .deb holds (debian-binary, control.tar.*, data.tar.*, _gpgorigin, _gpgbuilder)"))?;
        if !self.seen_binary && kind != MemberKind::DebianBinary {
            return Err(err(
                "bad-member",
                "comes before debian-binary, which must be first",
            ));
        }
        let slot = match kind {
            MemberKind::DebianBinary => &mut self.seen_binary,
            MemberKind::Control(_) => {
                if self.seen_data {
                    return Err(err("bad-member", "control data after the payload"));
                }
                &mut self.seen_control
            }
            MemberKind::Data(_) => {
                if !self.seen_control {
                    return Err(err("bad-member", "the payload before the control data"));
                }
                &mut self.seen_data
            }
            MemberKind::GpgOrigin => &mut self.seen_origin,
            MemberKind::GpgBuilder => &mut self.seen_builder,
        };
        if *slot {
            return Err(err(
                "duplicate-entry",
                "appears twice (dpkg reads one, another reader the other)",
            ));
        }
        *slot = true;
        Ok(kind)
    }

    /// Checks the end: control data and payload both present.
    ///
    /// # Errors
    ///
    /// `bad-member` naming what is missing.
    pub fn finish(&self) -> Result<(), LayoutError> {
        let missing = if !self.seen_binary {
            "debian-binary"
        } else if !self.seen_control {
            "control.tar"
        } else if !self.seen_data {
            "data.tar"
        } else {
            return Ok(());
        };
        Err(LayoutError {
            code: "bad-member",
            member: missing.into(),
            message: "is missing".into(),
        })
    }
}

fn classify(name: &str) -> Option<MemberKind> {
    let tar = |rest: &str| match rest {
        "" => Some(Compression::None),
        ".gz" => Some(Compression::Gzip),
        ".xz" => Some(Compression::Xz),
        ".zst" => Some(Compression::Zstd),
        ".bz2" => Some(Compression::Bzip2),
        _ => None,
    };
    match name {
        "debian-binary" => Some(MemberKind::DebianBinary),
        "_gpgorigin" => Some(MemberKind::GpgOrigin),
        "_gpgbuilder" => Some(MemberKind::GpgBuilder),
        _ => {
            if let Some(rest) = name.strip_prefix("control.tar") {
                tar(rest)
                    .filter(|c| *c != Compression::Bzip2)
                    .map(MemberKind::Control)
            } else {
                name.strip_prefix("data.tar")
                    .and_then(tar)
                    .map(MemberKind::Data)
            }
        }
    }
}

/// The member's decompressed bytes. Trailing bytes after a gzip stream are refused by
/// the tar reader that follows (they read as a corrupt header), not skipped.
///
/// # Errors
///
/// Setting up the zstd decoder can fail on I/O.
pub fn decoder<'a, R: Read + 'a>(c: Compression, r: R) -> io::Result<Box<dyn Read + 'a>> {
    let r = BufReader::with_capacity(1 << 16, r);
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(r)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Compression::Bzip2 => Box::new(bzip2::read::BzDecoder::new(r)),
    })
}

/// The largest `control` file read from control.tar.
pub const MAX_CONTROL_FILE: u64 = 1 << 20;

/// The package's `control` paragraph, read from `deb` (a `.deb`'s first bytes; the
/// control data comes before the payload).
///
/// # Errors
///
/// Why it cannot be read: not a `.deb`, control data cut off by the end of `deb`, no
/// `control` file, or one that is not a single deb822 paragraph.
pub fn control_fields(deb: impl Read) -> Result<Paragraph, String> {
    let mut ar = ArReader::new(deb).map_err(|e| e.to_string())?;
    let mut layout = Layout::default();
    loop {
        let member = ar
            .next_member()
            .map_err(|e| e.to_string())?
            .ok_or("no control.tar member")?;
        let kind = layout.next(&member.name).map_err(|e| e.to_string())?;
        let MemberKind::Control(c) = kind else {
            continue;
        };
        let dec = decoder(c, ar.data()).map_err(|e| e.to_string())?;
        let mut tar = tar::Archive::new(dec);
        for entry in tar.entries().map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let path = entry.path_bytes();
            if path.as_ref() != b"./control" && path.as_ref() != b"control" {
                continue;
            }
            let mut text = Vec::new();
            entry
                .take(MAX_CONTROL_FILE + 1)
                .read_to_end(&mut text)
                .map_err(|e| e.to_string())?;
            if text.len() as u64 > MAX_CONTROL_FILE {
                return Err(format!(
                    "the control file is larger than {} MiB",
                    crate::policy::mib(MAX_CONTROL_FILE)
                ));
            }
            let mut paragraphs = deb822::parse(&text).map_err(|e| format!("control: {e}"))?;
            if paragraphs.len() != 1 {
                return Err(format!("control: {} paragraphs, not one", paragraphs.len()));
            }
            return Ok(paragraphs.remove(0));
        }
        return Err("control.tar has no control file".into());
    }
}

/// The signature members of a `.deb`, found by reading its member headers only.
#[derive(Debug, Default)]
pub struct Embedded {
    /// debsig's `_gpgorigin`: its bytes, or why they cannot be used.
    pub origin: Option<Result<Vec<u8>, String>>,
    /// Whether dpkg-sig's `_gpgbuilder` is there.
    pub builder: bool,
    /// Where the file ends inside a member header or a member's data, if it does.
    pub truncated: Option<String>,
}

/// Looks for the signature members by reading each member header and seeking over its
/// data; only `_gpgorigin`'s bytes are read, at most
/// [`MAX_SIGNATURE_FILE`](crate::policy::MAX_SIGNATURE_FILE). A malformed container
/// ends the search (the verifying pass reports it); a file that ends inside a member
/// is recorded in `truncated`. Leaves `r` at its start.
///
/// # Errors
///
/// Reading or seeking fails.
pub fn signature_members<R: Read + Seek>(r: &mut R) -> io::Result<Embedded> {
    use crate::package::ar::{parse_header, HEADER, MAGIC};
    let mut found = Embedded::default();
    r.rewind()?;
    let mut magic = [0u8; 8];
    let len = r.seek(SeekFrom::End(0))?;
    r.rewind()?;
    if len < 8 || {
        r.read_exact(&mut magic)?;
        &magic != MAGIC
    } {
        r.rewind()?;
        return Ok(found);
    }
    let mut at = 8u64;
    while at + HEADER as u64 <= len {
        let mut h = [0u8; HEADER];
        r.read_exact(&mut h)?;
        let Ok(m) = parse_header(&h, at) else { break };
        let start = at + HEADER as u64;
        if m.size > len - start {
            found.truncated = Some(format!(
                "the file ends {} bytes into the {} bytes of member {}",
                len - start,
                m.size,
                crate::text::escape(&m.name)
            ));
            break;
        }
        match m.name.as_str() {
            "_gpgorigin" if found.origin.is_none() => {
                found.origin = Some(if m.size > crate::policy::MAX_SIGNATURE_FILE {
                    Err(format!(
                        "member _gpgorigin claims {} bytes; a signature is at most {} MiB",
                        m.size,
                        crate::policy::mib(crate::policy::MAX_SIGNATURE_FILE)
                    ))
                } else {
                    let mut sig = Vec::new();
                    (&mut *r).take(m.size).read_to_end(&mut sig)?;
                    Ok(sig)
                });
            }
            "_gpgbuilder" => found.builder = true,
            _ => {}
        }
        at = start.saturating_add(m.size).saturating_add(m.size % 2);
        r.seek(SeekFrom::Start(at))?;
    }
    if found.truncated.is_none() && at < len && at + HEADER as u64 > len {
        found.truncated = Some(format!(
            "the file ends inside the member header at offset {at}"
        ));
    }
    r.rewind()?;
    Ok(found)
}

/// The bytes debsig signs: the data of `debian-binary`, `control.tar.*` and
/// `data.tar.*` concatenated, read from the whole `.deb` as it streams. Every byte of
/// the inner reader is consumed (so a file hash and private copy beneath are whole),
/// but only those members' data is handed on. Members debsig does not sign, other than
/// the signature members, are recorded in `unsigned` with why: dpkg would read them.
pub struct SignedMembers<R: Read> {
    ar: Option<ArReader<R>>,
    layout: Layout,
    in_signed: bool,
    pub unsigned: Vec<String>,
}

impl<R: Read> SignedMembers<R> {
    /// Starts after checking the ar header; a reader that is no ar archive yields
    /// nothing and records why.
    pub fn new(inner: R) -> Self {
        let mut unsigned = Vec::new();
        let ar = ArReader::new(inner)
            .map_err(|e| unsigned.push(e.to_string()))
            .ok();
        SignedMembers {
            ar,
            layout: Layout::default(),
            in_signed: false,
            unsigned,
        }
    }
}

impl<R: Read> Read for SignedMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(ar) = self.ar.as_mut() else {
            return Ok(0);
        };
        loop {
            if self.in_signed {
                match ar.data().read(buf) {
                    Ok(0) => self.in_signed = false,
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        self.unsigned.push(e.to_string());
                        self.ar = None;
                        return Ok(0);
                    }
                    Err(e) => return Err(e),
                }
                continue;
            }
            let member = match ar.next_member() {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(0),
                Err(crate::package::ar::ArError::Io(e)) => return Err(e),
                Err(e) => {
                    self.unsigned.push(e.to_string());
                    // What follows is no member anybody signed; read it through for
                    // the file's hash and copy.
                    io::copy(ar.inner_mut(), &mut io::sink())?;
                    return Ok(0);
                }
            };
            match self.layout.next(&member.name) {
                Ok(MemberKind::DebianBinary | MemberKind::Control(_) | MemberKind::Data(_)) => {
                    self.in_signed = true;
                }
                // Signatures: dpkg ignores them, and they sign rather than install.
                Ok(MemberKind::GpgOrigin | MemberKind::GpgBuilder) => {}
                Err(e) => self.unsigned.push(e.to_string()),
            }
        }
    }
}

/// A control.tar holding `./control` with `text`, for tests.
#[cfg(test)]
pub fn control_tar(text: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "./control", text).unwrap();
    tar.into_inner().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(members: &[&str], want: Result<(), &str>) {
        let mut layout = Layout::default();
        let got = members
            .iter()
            .try_for_each(|m| layout.next(m).map(|_| ()))
            .and_then(|()| layout.finish());
        match want {
            Ok(()) => got.unwrap(),
            Err(fragment) => {
                let e = got.expect_err("should be refused").to_string();
                assert!(e.contains(fragment), "{e:?} lacks {fragment:?}");
            }
        }
    }

    #[test]
    fn member_order_as_dpkg_reads_it() {
        check(&["debian-binary", "control.tar.gz", "data.tar.xz"], Ok(()));
        check(
            &["debian-binary", "control.tar", "data.tar.bz2", "_gpgorigin"],
            Ok(()),
        );
        check(
            &[
                "debian-binary",
                "_gpgbuilder",
                "control.tar.zst",
                "data.tar.zst",
            ],
            Ok(()),
        );
        check(
            &["control.tar.gz", "debian-binary"],
            Err("bad-member: member control.tar.gz: comes before"),
        );
        check(
            &[
                "debian-binary",
                "control.tar.gz",
                "control.tar.xz",
                "data.tar",
            ],
            Err("duplicate-entry"),
        );
        check(
            &["debian-binary", "control.tar.gz", "data.tar", "data.tar.gz"],
            Err("duplicate-entry"),
        );
        check(
            &["debian-binary", "data.tar", "control.tar"],
            Err("payload before the control"),
        );
        check(
            &["debian-binary", "control.tar", "data.tar", "extra"],
            Err("bad-member: member extra"),
        );
        check(&["debian-binary", "control.tar.bz2"], Err("bad-member"));
        check(
            &["debian-binary", "control.tar"],
            Err("data.tar: is missing"),
        );
    }

    #[test]
    fn control_fields_from_a_deb_built_in_memory() {
        let control_tar = control_tar(b"Package: acme\nVersion: 1.0\nArchitecture: all\n");
        let deb = crate::package::ar::build(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar", &control_tar),
            ("data.tar", b""),
        ]);
        let p = control_fields(&deb[..]).unwrap();
        assert_eq!(p.get("package"), Some("acme"));
        assert!(control_fields(&deb[..100]).is_err());
        let no_control = crate::package::ar::build(&[("debian-binary", b"2.0\n")]);
        assert!(control_fields(&no_control[..])
            .unwrap_err()
            .contains("no control.tar"));
    }
}
