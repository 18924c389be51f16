//! Reading archives entry by entry: zip, tar plain or compressed with gzip, xz or
//! zstd, and `.deb` and `.rpm` packages (walked by `deb.rs` through `walk_tar`, and by
//! `rpm.rs`), detected by content, never by name.
//!
//! `walk` hands every entry's metadata and a reader over its bytes to a [`Visitor`],
//! then calls its `end`. It decides nothing about entries' safety: refusing `..` paths,
//! escaping links or bombs is the extractor's job (`extract`), and reading content for
//! findings the inspector's (`inspect`). The one exception is a zip's central
//! directory, which it reads itself first, as a stream in bounded memory, because the
//! zip library would keep one of two same-named entries and holds the whole directory:
//! duplicate names, end records whose claims do not fit the file, and more entries than
//! the visitor's limit are refused there, and so are overlapping entries and a
//! directory the zip library swaps for another. The other exception is bounds on what
//! the walk itself must hold: tar extension headers (GNU long names, pax) are read here
//! from raw entries, refused by their declared size, and names and link targets handed
//! on are capped per entry and in total. A truncated archive, a bad checksum or bytes
//! that are no archive come back as [`WalkError::Corrupt`] naming the entry.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::rc::Rc;

/// Archive formats we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Zip,
    Tar,
    TarGz,
    TarXz,
    TarZst,
    /// A Debian package: an ar archive of control and data tar members.
    Deb,
    /// An `.rpm` package: scriptlets from its header, files from its cpio payload.
    Rpm,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Zip => "zip",
            Format::Tar => "tar",
            Format::TarGz => "tar.gz",
            Format::TarXz => "tar.xz",
            Format::TarZst => "tar.zst",
            Format::Deb => "deb",
            Format::Rpm => "rpm",
        }
    }
}

/// Detects the format from the first bytes (at least 512 for plain tar).
pub fn detect(head: &[u8]) -> Option<Format> {
    if crate::package::rpm::detect(head) {
        Some(Format::Rpm)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Format::Zip)
    } else if head.starts_with(crate::package::ar::MAGIC) {
        Some(Format::Deb)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some(Format::TarGz)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(Format::TarXz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Format::TarZst)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Format::Tar)
    } else {
        None
    }
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// A symbolic link and its target as stored.
    Symlink(Vec<u8>),
    /// A hard link to an earlier entry (its archive path).
    Hardlink(Vec<u8>),
    /// Device, FIFO, socket, sparse or unknown entry: never extracted.
    Special(&'static str),
}

/// Which part of a package an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Part {
    /// What installs: every zip and tar entry, a package's files.
    #[default]
    Payload,
    /// What the package manager runs or keeps about the package (a `.deb`'s
    /// control.tar members, an `.rpm`'s scriptlets): inspected, never extracted.
    Control,
}

/// The owner a package declares for a file, as names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user: String,
    pub group: String,
}

impl Owner {
    /// Whether this is `root:root`, the owner nobody needs to review.
    pub fn is_root(&self) -> bool {
        self.user == "root" && self.group == "root"
    }
}

/// An entry's metadata as the archive declares it.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The raw stored name.
    pub name: Vec<u8>,
    pub kind: Kind,
    /// Unix permission bits (including setuid/setgid/sticky), when stored.
    pub mode: u32,
    /// Declared uncompressed size (not trusted).
    pub size: u64,
    /// Compressed size, for zip entries.
    pub compressed_size: Option<u64>,
    pub part: Part,
    /// The declared owner, set only where a package manager will apply it (a
    /// package's files); `None` for zip and tar bundles, whose stored owners are the
    /// builder's and mean nothing on the target.
    pub owner: Option<Owner>,
}

impl Meta {
    /// The name for messages, escaped.
    pub fn display_name(&self) -> String {
        crate::text::escape(&String::from_utf8_lossy(&self.name))
    }
}

/// A refusal by the visitor: which entry, a stable code, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub entry: String,
    pub code: &'static str,
    pub message: String,
}

/// Why a walk stopped.
#[derive(Debug)]
pub enum WalkError {
    /// Not an archive we read, truncated, or failing its own checksums.
    Corrupt {
        entry: Option<String>,
        message: String,
    },
    /// The visitor refused an entry.
    Refused(Refusal),
    /// Writing (by the visitor) or reading the file failed.
    Io(io::Error),
}

impl WalkError {
    /// The stable code: `archive-corrupt`, the refusal's code, or `io-error`.
    pub fn code(&self) -> &'static str {
        match self {
            WalkError::Corrupt { .. } => "archive-corrupt",
            WalkError::Refused(r) => r.code,
            WalkError::Io(_) => "io-error",
        }
    }
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkError::Corrupt {
                entry: Some(e),
                message,
            } => write!(f, "archive-corrupt: entry {e}: {message}"),
            WalkError::Corrupt {
                entry: None,
                message,
            } => write!(f, "archive-corrupt: {message}"),
            WalkError::Refused(r) => write!(f, "{}: entry {}: {}", r.code, r.entry, r.message),
            WalkError::Io(e) => write!(f, "io-error: {e}"),
        }
    }
}

/// Receives entries in archive order.
pub trait Visitor {
    /// Called once per entry. `data` yields the entry's (decompressed) bytes; the
    /// visitor may read all, some or none of them.
    ///
    /// # Errors
    ///
    /// A refusal or an I/O error stops the walk.
    fn entry(&mut self, meta: &Meta, data: &mut dyn Read) -> Result<(), WalkError>;

    /// Called once after the last entry, for what can only be judged on the whole
    /// archive (links that point at later links).
    ///
    /// # Errors
    ///
    /// A refusal or an I/O error fails the walk.
    fn end(&mut self) -> Result<(), WalkError> {
        Ok(())
    }

    /// Entries read at most from a zip's central directory, before any is visited.
    fn max_entries(&self) -> u64 {
        DEFAULT_MAX_ENTRIES
    }
}

/// Walks every entry of the archive in `file` (from its start).
///
/// # Errors
///
/// [`WalkError::Corrupt`] when the bytes are not a readable archive, or whatever the
/// visitor returns.
pub fn walk(file: &mut File, visitor: &mut dyn Visitor) -> Result<Format, WalkError> {
    file.seek(SeekFrom::Start(0)).map_err(WalkError::Io)?;
    let mut head = Vec::with_capacity(512);
    (&mut *file)
        .take(512)
        .read_to_end(&mut head)
        .map_err(WalkError::Io)?;
    file.seek(SeekFrom::Start(0)).map_err(WalkError::Io)?;
    let format = detect(&head).ok_or_else(|| WalkError::Corrupt {
        entry: None,
        message: "not an archive vendorguard reads (zip, tar, tar.gz, tar.xz, tar.zst, deb, rpm)"
            .into(),
    })?;
    match format {
        Format::Zip => walk_zip(file, visitor)?,
        Format::Tar => walk_tar(
            BufReader::with_capacity(1 << 20, &mut *file),
            visitor,
            TarOptions::BUNDLE,
        )?,
        Format::TarGz => walk_tar(
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, &mut *file)),
            visitor,
            TarOptions::BUNDLE,
        )?,
        Format::TarXz => walk_tar(
            liblzma::read::XzDecoder::new_multi_decoder(BufReader::with_capacity(
                1 << 20,
                &mut *file,
            )),
            visitor,
            TarOptions::BUNDLE,
        )?,
        Format::TarZst => {
            let dec = zstd::stream::read::Decoder::new(&mut *file).map_err(WalkError::Io)?;
            walk_tar(dec, visitor, TarOptions::BUNDLE)?
        }
        Format::Deb => crate::archive::deb::walk_deb(file, visitor)?,
        Format::Rpm => crate::archive::rpm::walk_rpm(file, visitor)?,
    }
    visitor.end()?;
    Ok(format)
}

pub(crate) fn corrupt(entry: Option<String>, e: impl std::fmt::Display) -> WalkError {
    WalkError::Corrupt {
        entry,
        message: e.to_string(),
    }
}

/// Entries read from one archive unless the visitor says otherwise (`--max-entries`).
pub const DEFAULT_MAX_ENTRIES: u64 = 200_000;

/// Bytes of a zip central directory read at most: the zip library holds all of it, and
/// 200,000 entries with long names and extra fields fit in a fraction of this.
pub const MAX_CENTRAL_DIRECTORY: u64 = 128 << 20;

/// The fixed part of a central directory header; no entry is smaller.
const CD_HEADER: u64 = 46;
const EOCD_SIG: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];

fn le16(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes([b[o], b[o + 1]]) as u64
}

fn le32(b: &[u8], o: usize) -> u64 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as u64
}

fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// The end of central directory record in `tail` (the file's last bytes): the last one
/// whose comment fits in the file, as the zip library picks it. A second record in its
/// comment or around it is refused: readers that insist the comment reaches the end of
/// the file take the other one, and would see another directory than the one checked.
fn end_record(tail: &[u8]) -> Result<usize, WalkError> {
    let sigs: Vec<usize> = (0..tail.len().saturating_sub(3))
        .filter(|&i| tail[i..i + 4] == EOCD_SIG)
        .collect();
    let reach = |i: usize| i + 22 + le16(tail, i + 20) as usize;
    let fits = |i: usize| i + 22 <= tail.len() && reach(i) <= tail.len();
    let Some(&chosen) = sigs.iter().rev().find(|&&i| fits(i)) else {
        return Err(corrupt(
            None,
            "no end of central directory record (truncated zip?)",
        ));
    };
    let after = sigs.last() != Some(&chosen);
    let inside = sigs
        .iter()
        .any(|&j| j < chosen && fits(j) && reach(j) > chosen);
    if after || inside {
        return Err(corrupt(
            None,
            "a second end of central directory record hides in the archive comment; \
             zip readers disagree on which directory counts",
        ));
    }
    Ok(chosen)
}

/// Checks a zip's central directory as a stream, before the zip library reads it: the
/// end records' claims must fit in the file, the count must match what is there, no
/// name may appear twice, and there may be at most `max_entries` entries. Memory is a
/// fixed buffer plus 48 bytes per entry, whatever the records claim. Two entries whose
/// data overlap are refused: that is how a small zip expands to many times its size
/// (every entry inflating the same stream). Returns the count and where it starts.
fn check_central_directory(file: &mut File, max_entries: u64) -> Result<Directory, WalkError> {
    use sha2::{Digest, Sha256};
    let len = file.seek(SeekFrom::End(0)).map_err(WalkError::Io)?;
    let tail_len = len.min(65_535 + 22);
    let tail_start = len - tail_len;
    file.seek(SeekFrom::Start(tail_start))
        .map_err(WalkError::Io)?;
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact(&mut tail).map_err(WalkError::Io)?;
    let eocd = end_record(&tail)?;
    let mut count = le16(&tail, eocd + 10);
    let mut size = le32(&tail, eocd + 12);
    let mut offset = le32(&tail, eocd + 16);
    // Where the end records start: the directory must lie before them.
    let mut records = tail_start + eocd as u64;
    if count == 0xffff || size == 0xffff_ffff || offset == 0xffff_ffff {
        // Zip64: the locator sits just before the EOCD record.
        if eocd < 20 || tail[eocd - 20..eocd - 16] != [0x50, 0x4b, 0x06, 0x07] {
            return Err(corrupt(None, "zip64 sizes without a zip64 locator"));
        }
        let rec = le64(&tail, eocd - 20 + 8);
        if rec.checked_add(56).is_none_or(|end| end > records - 20) {
            return Err(corrupt(
                None,
                format!("the zip64 end record (at offset {rec}) lies outside the file"),
            ));
        }
        let mut r = [0u8; 56];
        file.seek(SeekFrom::Start(rec)).map_err(WalkError::Io)?;
        file.read_exact(&mut r).map_err(|e| corrupt(None, e))?;
        if r[..4] != [0x50, 0x4b, 0x06, 0x06] {
            return Err(corrupt(None, "bad zip64 end of central directory record"));
        }
        count = le64(&r, 32);
        size = le64(&r, 40);
        offset = le64(&r, 48);
        records = rec;
    }
    if offset.checked_add(size).is_none_or(|end| end > records) {
        return Err(corrupt(
            None,
            format!(
                "the central directory ({size} bytes at offset {offset}) lies outside the file ({len} bytes)"
            ),
        ));
    }
    if count > size / CD_HEADER {
        return Err(corrupt(
            None,
            format!(
                "the central directory claims {count} entries, but its {size} bytes hold at most {}",
                size / CD_HEADER
            ),
        ));
    }
    file.seek(SeekFrom::Start(offset)).map_err(WalkError::Io)?;
    let mut cd = BufReader::with_capacity(64 << 10, (&mut *file).take(size));
    let mut seen = std::collections::HashSet::new();
    // (local header offset, least end of its data) per entry.
    let mut spans: Vec<(u64, u64)> = Vec::new();
    let mut extra = Vec::new();
    let mut name = Vec::new();
    let mut header = [0u8; CD_HEADER as usize];
    let mut left = size;
    let mut found = 0u64;
    while left >= CD_HEADER {
        cd.read_exact(&mut header).map_err(|e| corrupt(None, e))?;
        if header[..4] != [0x50, 0x4b, 0x01, 0x02] {
            break;
        }
        left -= CD_HEADER;
        let name_len = le16(&header, 28);
        let extra_len = le16(&header, 30);
        let rest = le16(&header, 32);
        if name_len + extra_len > left {
            return Err(corrupt(None, "a central directory entry runs past its end"));
        }
        name.resize(name_len as usize, 0);
        cd.read_exact(&mut name).map_err(|e| corrupt(None, e))?;
        extra.resize(extra_len as usize, 0);
        cd.read_exact(&mut extra).map_err(|e| corrupt(None, e))?;
        left -= name_len + extra_len;
        spans.push(data_span(&header, &extra));
        let skip = rest.min(left);
        io::copy(&mut (&mut cd).take(skip), &mut io::sink()).map_err(|e| corrupt(None, e))?;
        left -= skip;
        found += 1;
        let shown = || crate::text::escape(&String::from_utf8_lossy(&name));
        if found > max_entries {
            return Err(WalkError::Refused(Refusal {
                entry: shown(),
                code: "too-many-entries",
                message: format!("the zip central directory lists more than {max_entries} entries"),
            }));
        }
        if size - left > MAX_CENTRAL_DIRECTORY {
            return Err(WalkError::Refused(Refusal {
                entry: shown(),
                code: "too-large",
                message: format!(
                    "the zip central directory runs past {MAX_CENTRAL_DIRECTORY} bytes here"
                ),
            }));
        }
        let key = name.strip_prefix(b"./").unwrap_or(&name);
        if !seen.insert(<[u8; 32]>::from(Sha256::digest(key))) {
            return Err(WalkError::Refused(Refusal {
                entry: shown(),
                code: "duplicate-entry",
                message: "the name appears twice in the archive".into(),
            }));
        }
    }
    if found != count && count != 0xffff {
        return Err(corrupt(
            None,
            format!("the central directory says {count} entries but holds {found}"),
        ));
    }
    spans.sort_unstable();
    if let Some(w) = spans.windows(2).find(|w| w[1].0 < w[0].1) {
        return Err(corrupt(
            None,
            format!(
                "two entries share bytes (local headers at offsets {} and {}): \
                 overlapping entries expand one stream many times",
                w[0].0, w[1].0
            ),
        ));
    }
    Ok(Directory {
        count: found,
        start: offset,
    })
}

/// What [`check_central_directory`] found: the zip library must open the same.
struct Directory {
    count: u64,
    start: u64,
}

/// Where an entry's local header starts and the least offset its data ends at (a local
/// header is at least 30 bytes), from its central directory header and extra field
/// (zip64 sizes and offset live there when the header says 0xffffffff).
fn data_span(header: &[u8], extra: &[u8]) -> (u64, u64) {
    let mut compressed = le32(header, 20);
    let uncompressed = le32(header, 24);
    let mut local = le32(header, 42);
    let mut at = 0;
    while at + 4 <= extra.len() {
        let (id, len) = (le16(extra, at), le16(extra, at + 2) as usize);
        let body = &extra[at + 4..(at + 4 + len).min(extra.len())];
        if id == 1 {
            let mut fields = body.chunks_exact(8).map(|c| le64(c, 0));
            if uncompressed == 0xffff_ffff {
                fields.next();
            }
            if compressed == 0xffff_ffff {
                compressed = fields.next().unwrap_or(compressed);
            }
            if local == 0xffff_ffff {
                local = fields.next().unwrap_or(local);
            }
            break;
        }
        at += 4 + len;
    }
    (local, local.saturating_add(30).saturating_add(compressed))
}

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

fn walk_zip(file: &mut File, visitor: &mut dyn Visitor) -> Result<(), WalkError> {
    // The zip crate indexes entries by name, so a second entry with the same name
    // silently replaces the first: the "master key" ambiguity. It also holds the whole
    // directory in memory. Read the central directory ourselves first, as a stream, and
    // refuse duplicates and directories past the limits.
    let dir = check_central_directory(file, visitor.max_entries())?;
    let count = dir.count;
    file.seek(SeekFrom::Start(0)).map_err(WalkError::Io)?;
    // While the zip library looks for its directory, everything before the one we
    // checked reads as zeros: it cannot find, parse and hold an earlier directory
    // (which could list millions of entries) in place of ours.
    let hidden = Rc::new(Cell::new(dir.start));
    let masked = BeforeHidden {
        inner: &mut *file,
        hidden: hidden.clone(),
        pos: 0,
    };
    let mut zip = zip::ZipArchive::new(masked).map_err(|e| {
        corrupt(
            None,
            format!(
                "the directory of the last end record (at offset {}) passed vendorguard's \
                 checks but the zip library cannot read it ({e}); zip readers disagree on \
                 which directory counts",
                dir.start
            ),
        )
    })?;
    hidden.set(0);
    if zip.len() as u64 != count {
        return Err(corrupt(
            None,
            format!(
                "the central directory lists {count} entries but {} are readable",
                zip.len()
            ),
        ));
    }
    // When the directory we checked does not parse, the zip library quietly falls back
    // to an earlier end record and another directory: never extract one we did not check.
    if zip.central_directory_start() != dir.start {
        return Err(corrupt(
            None,
            format!(
                "zip readers disagree on which directory counts (the last end record's at \
                 offset {}, the zip library's at offset {})",
                dir.start,
                zip.central_directory_start()
            ),
        ));
    }
    let mut budget = NameBudget::default();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| corrupt(Some(format!("#{i}")), e))?;
        let name = entry.name_raw().to_vec();
        let shown = crate::text::escape(&String::from_utf8_lossy(&name));
        let unix = entry.unix_mode();
        let file_type = unix.map(|m| m & S_IFMT).unwrap_or(0);
        let kind = if entry.is_dir() || file_type == S_IFDIR {
            Kind::Dir
        } else if file_type == S_IFLNK {
            let mut target = Vec::new();
            (&mut entry)
                .take(4096)
                .read_to_end(&mut target)
                .map_err(|e| corrupt(Some(shown.clone()), e))?;
            Kind::Symlink(target)
        } else if file_type == 0 || file_type == S_IFREG {
            Kind::File
        } else {
            Kind::Special("device, FIFO or socket")
        };
        let meta = Meta {
            name,
            mode: unix
                .map(|m| m & 0o7777)
                .unwrap_or(if kind == Kind::Dir { 0o755 } else { 0o644 }),
            size: entry.size(),
            compressed_size: Some(entry.compressed_size()),
            kind,
            part: Part::Payload,
            owner: None,
        };
        budget.offer(visitor, &meta, &mut entry, &shown)?;
        // Drain what the visitor left so the zip reader checks the entry's CRC.
        io::copy(&mut entry, &mut io::sink()).map_err(|e| corrupt(Some(shown.clone()), e))?;
    }
    Ok(())
}

/// Longest name or link target accepted (PATH_MAX): a GNU long name or pax record may
/// claim any length, and is read into memory before the entry it names.
pub const MAX_NAME: u64 = 4096;

/// Bytes of names and link targets one walk passes on at most: the visitor keeps them
/// until the end (links are judged last), so this bounds its memory.
pub const MAX_NAMES_TOTAL: u64 = 64 << 20;

/// Counts the names and link targets passed on, refusing past [`MAX_NAMES_TOTAL`].
#[derive(Default)]
pub(crate) struct NameBudget(u64);

impl NameBudget {
    fn spend(&mut self, meta: &Meta, shown: &str) -> Result<(), WalkError> {
        let link = match &meta.kind {
            Kind::Symlink(t) | Kind::Hardlink(t) => t.len(),
            _ => 0,
        };
        self.0 += (meta.name.len() + link) as u64;
        if self.0 > MAX_NAMES_TOTAL {
            return Err(WalkError::Refused(Refusal {
                entry: shown.to_string(),
                code: "too-large",
                message: format!(
                    "the archive's names and link targets run past {MAX_NAMES_TOTAL} bytes here"
                ),
            }));
        }
        Ok(())
    }

    /// Counts `meta`'s names, then hands the entry to the visitor with read errors
    /// tagged as the archive's corruption and the visitor's errors naming the entry.
    pub(crate) fn offer<R: Read>(
        &mut self,
        visitor: &mut dyn Visitor,
        meta: &Meta,
        entry: &mut R,
        shown: &str,
    ) -> Result<(), WalkError> {
        self.spend(meta, shown)?;
        let mut reader = CorruptionTagger { inner: entry };
        visitor
            .entry(meta, &mut reader)
            .map_err(|e| retag(e, shown))
    }
}

/// Largest pax extended header read.
pub const MAX_PAX_HEADER: u64 = 1 << 20;

/// Names and link targets declared by the extension headers before an entry. The tar
/// library reads these wholly into memory, whatever length they claim, so the walk
/// reads them itself (raw entries), with bounds.
#[derive(Default)]
struct Pending {
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

/// Reads an extension header's data, refusing with `code` before reading any when it
/// claims more than `limit` bytes (plus the NUL a GNU long name ends with).
fn read_extension(
    entry: &mut impl Read,
    size: u64,
    (limit, code): (u64, &'static str),
    index: usize,
    what: &str,
) -> Result<Vec<u8>, WalkError> {
    let slack = u64::from(code == "bad-name");
    if size > limit + slack {
        return Err(WalkError::Refused(Refusal {
            entry: format!("#{index}"),
            code,
            message: format!("{what} claims {size} bytes; the limit is {limit}"),
        }));
    }
    let mut data = Vec::with_capacity(size as usize);
    entry
        .take(size)
        .read_to_end(&mut data)
        .map_err(|e| corrupt(Some(format!("#{index}")), e))?;
    Ok(data)
}

/// The value of pax record `key` in `pax` (records are "LEN KEY=VALUE\n").
fn pax_value<'a>(pax: &'a [u8], key: &[u8]) -> Result<Option<&'a [u8]>, WalkError> {
    let mut found = None;
    for ext in tar::PaxExtensions::new(pax) {
        let ext = ext.map_err(|e| corrupt(None, format!("bad pax extended header: {e}")))?;
        if ext.key_bytes() == key {
            found = Some(ext.value_bytes());
        }
    }
    Ok(found)
}

fn name_checked(bytes: Vec<u8>, index: usize, what: &str) -> Result<Vec<u8>, WalkError> {
    if bytes.len() as u64 > MAX_NAME {
        return Err(WalkError::Refused(Refusal {
            entry: format!("#{index}"),
            code: "bad-name",
            message: format!(
                "{what} claims {} bytes; the limit is {MAX_NAME}",
                bytes.len()
            ),
        }));
    }
    Ok(bytes)
}

/// How a tar stream's entries are handed on: a bundle's, or one of a package's parts.
#[derive(Debug, Clone, Copy)]
pub struct TarOptions {
    /// The part every entry belongs to.
    pub part: Part,
    /// Whether the stored user and group names are the owners the package manager
    /// applies (a package's data.tar), so they are handed on in `Meta::owner`.
    pub owners: bool,
    /// Prepended to every name (after a leading `./`), e.g. `control/` for a
    /// `.deb`'s control.tar members; empty for none.
    pub prefix: &'static str,
}

impl TarOptions {
    /// A tar bundle: payload entries, owners not handed on, names as stored.
    pub const BUNDLE: TarOptions = TarOptions {
        part: Part::Payload,
        owners: false,
        prefix: "",
    };
}

/// Longest user or group name handed on (pax names are otherwise bounded only by the
/// extension header's cap).
const MAX_OWNER_NAME: usize = 256;

/// Walks a tar stream, every entry with `opts`' part, owners and prefix. Package
/// walkers call this for the tar members they contain.
pub(crate) fn walk_tar<R: Read>(
    reader: R,
    visitor: &mut dyn Visitor,
    opts: TarOptions,
) -> Result<(), WalkError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| corrupt(None, e))?.raw(true);
    let mut pending = Pending::default();
    let mut budget = NameBudget::default();
    for (i, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| corrupt(Some(format!("#{i}")), e))?;
        let header = entry.header().clone();
        let size = header.entry_size().unwrap_or(0);
        use tar::EntryType as T;
        let twice = |what: &str| {
            corrupt(
                Some(format!("#{i}")),
                format!("two headers give {what} for the same entry"),
            )
        };
        let gnu = header.as_gnu().is_some() || header.as_ustar().is_some();
        match header.entry_type() {
            flag @ (T::GNULongName | T::GNULongLink) if gnu => {
                let (slot, what) = if flag == T::GNULongName {
                    (&mut pending.name, "a GNU long name")
                } else {
                    (&mut pending.link, "a GNU long link target")
                };
                if slot.is_some() {
                    return Err(twice(what));
                }
                let mut n = read_extension(&mut entry, size, (MAX_NAME, "bad-name"), i, what)?;
                while n.last() == Some(&0) {
                    n.pop();
                }
                *slot = Some(name_checked(n, i, what)?);
                continue;
            }
            T::XHeader if gnu => {
                if pending.pax.is_some() {
                    return Err(twice("a pax extended header"));
                }
                pending.pax = Some(read_extension(
                    &mut entry,
                    size,
                    (MAX_PAX_HEADER, "too-large"),
                    i,
                    "a pax extended header",
                )?);
                continue;
            }
            T::XGlobalHeader => continue,
            _ => {}
        }
        let ext = std::mem::take(&mut pending);
        let pax = ext.pax.as_deref().unwrap_or_default();
        // The raw walk frames entries by the header's size; a pax size that disagrees
        // would have other readers see other entries.
        if let Some(v) = pax_value(pax, b"size")? {
            let claimed = std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
            if claimed != Some(size) {
                return Err(corrupt(
                    Some(format!("#{i}")),
                    "the pax size disagrees with the header's; tar readers would split the archive differently",
                ));
            }
        }
        let name = match (pax_value(pax, b"path")?, ext.name) {
            (Some(p), _) => name_checked(p.to_vec(), i, "a pax path")?,
            (None, Some(n)) => n,
            (None, None) => header.path_bytes().into_owned(),
        };
        let shown = crate::text::escape(&String::from_utf8_lossy(&name));
        let link = || -> Result<Vec<u8>, WalkError> {
            Ok(match (pax_value(pax, b"linkpath")?, &ext.link) {
                (Some(p), _) => name_checked(p.to_vec(), i, "a pax linkpath")?,
                (None, Some(n)) => n.clone(),
                (None, None) => header
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default(),
            })
        };
        let kind = match header.entry_type() {
            T::Regular | T::Continuous => Kind::File,
            T::Directory => Kind::Dir,
            T::Symlink => Kind::Symlink(link()?),
            T::Link => Kind::Hardlink(link()?),
            T::Char | T::Block => Kind::Special("device"),
            T::Fifo => Kind::Special("FIFO"),
            T::GNUSparse => Kind::Special("sparse file"),
            _ => Kind::Special("unknown entry type"),
        };
        let owner = if opts.owners {
            let field = |pax_key: &[u8], stored: Option<&[u8]>| -> Result<String, WalkError> {
                let raw = pax_value(pax, pax_key)?.or(stored).unwrap_or_default();
                let raw = &raw[..raw.len().min(MAX_OWNER_NAME)];
                Ok(String::from_utf8_lossy(raw).into_owned())
            };
            Some(Owner {
                user: field(b"uname", header.username_bytes())?,
                group: field(b"gname", header.groupname_bytes())?,
            })
        } else {
            None
        };
        let name = if opts.prefix.is_empty() {
            name
        } else {
            let bare = name.strip_prefix(b"./").unwrap_or(&name);
            [opts.prefix.as_bytes(), bare].concat()
        };
        let meta = Meta {
            name,
            mode: header.mode().unwrap_or(0o644) & 0o7777,
            size,
            compressed_size: None,
            kind,
            part: opts.part,
            owner,
        };
        budget.offer(visitor, &meta, &mut entry, &shown)?;
    }
    if pending.name.is_some() || pending.link.is_some() || pending.pax.is_some() {
        return Err(corrupt(
            None,
            "extension headers describe an entry that never comes",
        ));
    }
    Ok(())
}

/// A reader whose bytes before `hidden` read as zeros (see `walk_zip`).
struct BeforeHidden<'a> {
    inner: &'a mut File,
    hidden: Rc<Cell<u64>>,
    pos: u64,
}

impl Read for BeforeHidden<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let hidden = self.hidden.get();
        if self.pos < hidden {
            let covered = (hidden - self.pos).min(n as u64) as usize;
            buf[..covered].fill(0);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for BeforeHidden<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

/// Marks read errors from the archive as corruption rather than I/O, so that a bad CRC
/// or a truncated stream is reported as the archive's fault.
struct CorruptionTagger<'a, R> {
    inner: &'a mut R,
}

impl<R: Read> Read for CorruptionTagger<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|e| io::Error::other(ArchiveReadError(e.to_string())))
    }
}

#[derive(Debug)]
struct ArchiveReadError(String);

impl std::fmt::Display for ArchiveReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArchiveReadError {}

/// An I/O error that came from reading the archive becomes `Corrupt` for `entry`.
fn retag(e: WalkError, entry: &str) -> WalkError {
    match e {
        WalkError::Io(io) => match io
            .get_ref()
            .and_then(|r| r.downcast_ref::<ArchiveReadError>())
        {
            Some(a) => corrupt(Some(entry.to_string()), &a.0),
            None => WalkError::Io(io),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_by_content() {
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        for (head, want) in [
            (&b"PK\x03\x04rest"[..], Some(Format::Zip)),
            (&[0x1f, 0x8b, 8][..], Some(Format::TarGz)),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0][..], Some(Format::TarXz)),
            (&[0x28, 0xb5, 0x2f, 0xfd][..], Some(Format::TarZst)),
            (&tar[..], Some(Format::Tar)),
            (&b"hello world"[..], None),
            (&b""[..], None),
        ] {
            assert_eq!(detect(head), want, "{head:?}");
        }
    }

    /// An end record with `comment` bytes of comment (its length field says `claims`).
    fn eocd(claims: u16, comment: &[u8]) -> Vec<u8> {
        let mut r = EOCD_SIG.to_vec();
        r.extend([0; 16]);
        r.extend(claims.to_le_bytes());
        r.extend(comment);
        r
    }

    #[test]
    fn the_end_record_is_the_last_that_fits_and_is_alone() {
        let cd = b"....central directory....".to_vec();
        let plain = [cd.clone(), eocd(0, b"")].concat();
        let commented = [cd.clone(), eocd(5, b"hello")].concat();
        // Trailing bytes after a record whose comment fits are tolerated, as zip does.
        let trailing = [cd.clone(), eocd(0, b""), b"xyz".to_vec()].concat();
        let hidden = [cd.clone(), eocd(22, &eocd(0, b""))].concat();
        let after = [cd.clone(), eocd(0, b""), eocd(9, b"")].concat();
        let short = [cd.clone(), eocd(9, b"abc")].concat();
        for (tail, want) in [
            (&plain, Some(cd.len())),
            (&commented, Some(cd.len())),
            (&trailing, Some(cd.len())),
            (&hidden, None),
            (&after, None),
            (&short, None),
            (&cd, None),
        ] {
            assert_eq!(end_record(tail).ok(), want, "{tail:?}");
        }
    }
}
