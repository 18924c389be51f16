//! A `.deb` checked through its apt repository, as apt does: the release file
//! (`InRelease`, or `Release` with `Release.gpg`) is verified by the caller like any
//! signed manifest; here its `SHA256:` list must vouch for the index file given
//! (`Packages`, `.gz`, `.xz`, `.zst`, `.bz2`, detected by content), and the index's
//! stanza for the package gives the SHA-256 and size the `.deb` must have.
//!
//! The index is read once, through one handle: the raw bytes are hashed for the
//! release while they are decompressed and parsed stanza by stanza, so what is
//! compared with the release is exactly what was parsed, and memory stays at one
//! stanza whatever the index's size. Only stanzas naming the package are kept. The
//! package's own bytes are hashed by the caller's single pass (`bundle.rs`); its first
//! bytes, captured in that pass, give the control fields for the fallback lookup by
//! package, version and architecture.
//!
//! Nothing here reads the clock: the release's `Date` and `Valid-Until` are checked by
//! the caller (`verify/release.rs`, the same rule as for an `InRelease` bundle).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use crate::package::deb::{self, Compression};
use crate::package::deb822::{self, FileHash, Paragraph, Paragraphs};
use crate::verify::digest::HashingReader;
use crate::verify::verdict::{Findings, Pin};

/// The repository files a `.deb` is checked through.
#[derive(Debug, Clone, Copy)]
pub struct Repository<'a> {
    /// `InRelease` (cleartext-signed), or `Release` when `release_signature` is set.
    pub release: &'a Path,
    pub release_signature: Option<&'a Path>,
    /// `Packages`, possibly compressed.
    pub index: &'a Path,
}

/// Bytes of a `.deb`'s start kept from the verifying pass for its control fields: the
/// control member comes right after `debian-binary`, and is a few KiB in practice.
pub const CONTROL_HEAD: usize = 4 << 20;

/// Index bytes decompressed at most: Debian's largest `Packages` is a few hundred MiB.
pub const MAX_INDEX: u64 = 4 << 30;

/// Stanzas naming the package kept at most; an index listing it more often is refused.
const MAX_MATCHES: usize = 64;

/// The package as read: its name, size and first bytes (its SHA-256 is checked
/// against the stanza's as a pin).
pub struct Package<'a> {
    pub path: &'a Path,
    pub size: u64,
    pub head: &'a [u8],
}

/// Checks the chain release → index → package, adding codes, problems and the
/// stanza's hash as pins to `acc`. `release_text` is the release's signed content,
/// already verified by the caller (`None` when it could not be; the index and
/// package are then not checked, since nothing vouches for them).
///
/// # Errors
///
/// The index file cannot be opened or read.
pub fn check(
    repo: &Repository<'_>,
    release_text: Option<&[u8]>,
    package: &Package<'_>,
    acc: &mut Findings,
) -> io::Result<()> {
    let Some(text) = release_text else {
        return Ok(());
    };
    let release_name = shown(repo.release);
    let release = match deb822::parse(text) {
        Ok(mut ps) if !ps.is_empty() => ps.remove(0),
        Ok(_) => return malformed_release(acc, &release_name, "it holds no fields"),
        Err(e) => return malformed_release(acc, &release_name, &e.to_string()),
    };
    let listed = match deb822::release_sha256(&release) {
        Ok(Some(list)) => list,
        Ok(None) => {
            acc.codes.push("weak-hash");
            acc.problems.push(format!(
                "{release_name}: lists no SHA256 checksums (MD5Sum and SHA1 are not enough to vouch for an index)"
            ));
            return Ok(());
        }
        Err(e) => return malformed_release(acc, &release_name, &e),
    };

    let index_name = file_name(repo.index);
    let identity = deb::control_fields(package.head).map(|p| Identity::of(&p));
    let scan = scan_index(repo.index, &file_name(package.path), identity.as_ref().ok())?;
    let index_shown = shown(repo.index);
    let candidates: Vec<&FileHash> = listed
        .iter()
        .filter(|e| e.path.rsplit('/').next() == Some(index_name.as_str()))
        .collect();
    let vouched = candidates
        .iter()
        .find(|e| e.sha256 == scan.sha256 && e.size == scan.size);
    if vouched.is_none() {
        acc.codes.push("index-mismatch");
        let listed: Vec<String> = candidates
            .iter()
            .map(|e| {
                format!(
                    "{} with SHA-256 {} and size {}",
                    crate::text::escape(&e.path),
                    e.sha256,
                    e.size
                )
            })
            .collect();
        let what = if listed.is_empty() {
            format!("lists no index named {}", crate::text::escape(&index_name))
        } else {
            format!("lists {}", listed.join("; "))
        };
        acc.problems.push(format!(
            "{index_shown}: SHA-256 {} and size {} are not what the release vouches for: {release_name} {what}",
            scan.sha256, scan.size
        ));
    }
    if let Some(why) = &scan.malformed {
        acc.codes.push("malformed-index");
        acc.problems.push(format!("{index_shown}: {why}"));
        return Ok(());
    }
    stanza_pins(&scan, package, &index_shown, identity, acc);
    Ok(())
}

/// Records a release file that does not parse; nothing it lists can be trusted.
fn malformed_release(acc: &mut Findings, release: &str, why: &str) -> io::Result<()> {
    acc.codes.push("malformed-release");
    acc.problems.push(format!(
        "{release}: not a release file: {}",
        crate::text::escape(why)
    ));
    Ok(())
}

/// Turns the stanzas naming the package into pins (and size checks), or says it is
/// not listed.
fn stanza_pins(
    scan: &Scan,
    package: &Package<'_>,
    index: &str,
    identity: Result<Identity, String>,
    acc: &mut Findings,
) {
    let by_name = !scan.by_name.is_empty();
    let stanzas = if by_name {
        &scan.by_name
    } else {
        &scan.by_identity
    };
    let deb_name = crate::text::escape(&file_name(package.path));
    if stanzas.is_empty() {
        acc.codes.push("not-in-index");
        let fallback = match &identity {
            Ok(id) => format!("nor package {id}"),
            Err(why) => format!(
                "and its package name, version and architecture could not be read: {}",
                crate::text::escape(why)
            ),
        };
        acc.problems.push(format!(
            "{index}: lists no package with Filename {deb_name} {fallback}"
        ));
        return;
    }
    let hashes: std::collections::BTreeSet<Option<&str>> =
        stanzas.iter().map(|p| p.get("SHA256")).collect();
    if hashes.len() > 1 {
        let lines: Vec<String> = stanzas.iter().map(|p| format!("line {}", p.line)).collect();
        acc.problems.push(format!(
            "{index}: lists {deb_name} with different hashes on {}",
            lines.join(", ")
        ));
    }
    for stanza in stanzas {
        let how = if by_name {
            "Filename".to_string()
        } else {
            identity
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        let Some(hex) = stanza.get("SHA256") else {
            acc.codes.push("weak-hash");
            acc.problems.push(format!(
                "{index} line {}: the stanza for {deb_name} gives no SHA256 (MD5sum and SHA1 are not enough)",
                stanza.line
            ));
            continue;
        };
        acc.manifest_pins.push(Pin {
            source: format!("{index} line {} ({how})", stanza.line),
            expected: crate::text::escape(hex),
        });
        if let Some(size) = stanza.get("Size") {
            if size.parse::<u64>().ok() != Some(package.size) {
                acc.codes.push("digest-mismatch");
                acc.problems.push(format!(
                    "{index} line {}: gives size {} for {deb_name}, which has {} bytes",
                    stanza.line,
                    crate::text::escape(size),
                    package.size
                ));
            }
        }
    }
}

/// A package's name, version and architecture, from its control file or a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    package: String,
    version: String,
    architecture: String,
}

impl Identity {
    fn of(p: &Paragraph) -> Identity {
        let f = |n| p.get(n).unwrap_or_default().to_string();
        Identity {
            package: f("Package"),
            version: f("Version"),
            architecture: f("Architecture"),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            crate::text::escape(&self.package),
            crate::text::escape(&self.version),
            crate::text::escape(&self.architecture)
        )
    }
}

/// What one read of the index gave.
struct Scan {
    size: u64,
    sha256: String,
    /// Stanzas whose `Filename`'s last component is the package's file name.
    by_name: Vec<Paragraph>,
    /// Stanzas with the package's name, version and architecture.
    by_identity: Vec<Paragraph>,
    /// Why the index could not be read as one, if so.
    malformed: Option<String>,
}

/// Reads the index once: hashes its raw bytes, decompresses and parses them, keeping
/// the stanzas that name the package.
fn scan_index(path: &Path, deb_name: &str, identity: Option<&Identity>) -> io::Result<Scan> {
    let mut file = File::open(path)?;
    let mut magic = Vec::with_capacity(6);
    (&mut file).take(6).read_to_end(&mut magic)?;
    file.rewind()?;
    let mut raw = BufReader::with_capacity(1 << 16, HashingReader::new(file));
    let mut scan = Scan {
        size: 0,
        sha256: String::new(),
        by_name: Vec::new(),
        by_identity: Vec::new(),
        malformed: None,
    };
    let mut keep = |p: Paragraph| -> Result<(), String> {
        let named = p
            .get("Filename")
            .is_some_and(|f| f.rsplit('/').next() == Some(deb_name));
        let same = identity.is_some_and(|id| &Identity::of(&p) == id);
        if named {
            scan.by_name.push(p);
        } else if same {
            scan.by_identity.push(p);
        }
        if scan.by_name.len() + scan.by_identity.len() > MAX_MATCHES {
            return Err(format!("lists the package more than {MAX_MATCHES} times"));
        }
        Ok(())
    };
    // Each decoder reads one stream from `raw` and stops at its end, so whatever
    // `raw` still holds afterwards is trailing data.
    let parsed = match Compression::sniff(&magic) {
        Compression::None => stanzas(&mut raw, &mut keep),
        Compression::Gzip => stanzas(flate2::bufread::GzDecoder::new(&mut raw), &mut keep),
        Compression::Xz => stanzas(liblzma::bufread::XzDecoder::new(&mut raw), &mut keep),
        Compression::Bzip2 => stanzas(bzip2::bufread::BzDecoder::new(&mut raw), &mut keep),
        Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(&mut raw) {
            Ok(d) => stanzas(d.single_frame(), &mut keep),
            Err(e) => Err(format!("not a zstd stream: {e}")),
        },
    };
    let trailing = io::copy(&mut raw, &mut io::sink())?;
    let (size, sha256) = raw.into_inner().finish();
    scan.size = size;
    scan.sha256 = crate::text::hex(&sha256);
    scan.malformed = match parsed {
        Err(why) => Some(why),
        Ok(()) if trailing > 0 => Some(format!(
            "{trailing} bytes follow the end of the compressed stream"
        )),
        Ok(()) => None,
    };
    Ok(scan)
}

/// Parses every stanza of the decompressed index, at most [`MAX_INDEX`] bytes.
fn stanzas(
    decompressed: impl Read,
    keep: &mut dyn FnMut(Paragraph) -> Result<(), String>,
) -> Result<(), String> {
    stanzas_within(decompressed, keep, MAX_INDEX)
}

fn stanzas_within(
    decompressed: impl Read,
    keep: &mut dyn FnMut(Paragraph) -> Result<(), String>,
    limit: u64,
) -> Result<(), String> {
    let mut limited = decompressed.take(limit + 1);
    let mut counted = Counting {
        inner: &mut limited,
        n: 0,
    };
    let mut reader = Paragraphs::new(BufReader::with_capacity(1 << 16, &mut counted));
    loop {
        match reader.next_paragraph() {
            Ok(Some(p)) => keep(p)?,
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    drop(reader);
    if counted.n > limit {
        return Err(format!(
            "decompresses to more than {} MiB",
            crate::policy::mib(limit)
        ));
    }
    Ok(())
}

struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Keeps the first [`CONTROL_HEAD`] bytes read through it: the verifying pass reads
/// the package once, and its control fields come from these.
pub struct HeadCapture<R> {
    pub inner: R,
    pub head: Vec<u8>,
}

impl<R: Read> Read for HeadCapture<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let room = CONTROL_HEAD.saturating_sub(self.head.len()).min(n);
        self.head.extend_from_slice(&buf[..room]);
        Ok(n)
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn shown(p: &Path) -> String {
    crate::text::escape_os(p.as_os_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const STANZA: &str = "Package: acme\nVersion: 1.0\nArchitecture: all\nFilename: pool/acme_1.0_all.deb\nSize: 3\nSHA256: abc\n\n";

    /// Scans `index` (as a file) for acme_1.0_all.deb; the stanzas found by name and
    /// by identity, or why the index is malformed.
    fn check(index: &[u8], want: Result<(usize, usize), &str>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Packages");
        std::fs::write(&path, index).unwrap();
        let id = Identity {
            package: "acme".into(),
            version: "1.0".into(),
            architecture: "all".into(),
        };
        let scan = scan_index(&path, "acme_1.0_all.deb", Some(&id)).unwrap();
        assert_eq!(scan.size, index.len() as u64);
        assert_eq!(
            scan.sha256,
            crate::text::hex(&<sha2::Sha256 as sha2::Digest>::digest(index))
        );
        match (want, scan.malformed) {
            (Ok(counts), None) => assert_eq!((scan.by_name.len(), scan.by_identity.len()), counts),
            (Err(fragment), Some(why)) => {
                assert!(why.contains(fragment), "{why:?} lacks {fragment:?}")
            }
            (want, got) => panic!("want {want:?}, got {got:?}"),
        }
    }

    #[test]
    fn the_index_is_hashed_whole_and_only_matching_stanzas_are_kept() {
        let renamed = STANZA.replace("pool/acme_1.0_all.deb", "pool/other.deb");
        let other = "Package: b\nVersion: 1\nArchitecture: all\nFilename: b.deb\n\n";
        check(STANZA.as_bytes(), Ok((1, 0)));
        check(format!("{other}{renamed}").as_bytes(), Ok((0, 1)));
        check(
            &gzip(format!("{STANZA}{other}{STANZA}").as_bytes()),
            Ok((2, 0)),
        );
        check(b"", Ok((0, 0)));
    }

    #[test]
    fn hostile_indexes_are_malformed_not_errors() {
        let mut trailing = gzip(STANZA.as_bytes());
        trailing.extend_from_slice(b"junk");
        check(
            &trailing,
            Err("4 bytes follow the end of the compressed stream"),
        );
        let mut two_streams = gzip(STANZA.as_bytes());
        two_streams.extend(gzip(STANZA.as_bytes()));
        check(&two_streams, Err("bytes follow the end"));
        let mut cut = gzip(STANZA.as_bytes());
        cut.truncate(cut.len() - 5);
        check(&cut, Err(""));
        check(b"Package: a\nPackage: b\n", Err("given twice"));
        check(
            &gzip(STANZA.repeat(MAX_MATCHES + 1).as_bytes()),
            Err("more than 64 times"),
        );
        check(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0], Err(""));
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_cap() {
        let bomb = gzip(&b"A: b\n\n".repeat(1 << 20));
        let mut kept = 0;
        let got = stanzas_within(
            flate2::read::GzDecoder::new(&bomb[..]),
            &mut |_| {
                kept += 1;
                Ok(())
            },
            1 << 20,
        );
        assert!(got.unwrap_err().contains("decompresses to more than 1 MiB"));
        assert!(kept <= (1 << 20) / 6 + 1);
    }
}
