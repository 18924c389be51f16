//! The RPM package format up to its payload: the 96-byte lead, the signature header,
//! its padding, and the main header, read from a stream with every count, offset and
//! length checked against the bytes actually there.
//!
//! A package is `lead | signature header | padding to 8 | main header | payload`. Both
//! headers are `magic (8e ad e8 01 00 00 00 00) | index count | data size | index
//! entries (tag, type, offset, count; 16 bytes each) | data`. The index count and data
//! size are refused above the caps in `policy.rs` before anything is allocated, then
//! each entry must fit the data: a known type, one string for `STRING`, `count`
//! NUL-terminated strings inside the data for the array types, no two entries with the
//! same tag and no two whose data overlap (rpm's own rule). The payload is left on the
//! stream for the caller to hash or decompress.
//!
//! Why not the `rpm` crate: its `Package::parse` reads the whole payload into memory,
//! and a vendor package may be gigabytes. The framing is small enough to own here, with
//! the bounds a hostile file needs.
//!
//! Tag numbers and types follow rpm's `rpmtag.h` and `doc/manual/format.md`. This file
//! judges nothing: it says what the headers hold, and the verifier and the archive
//! walker decide what that means.

use std::collections::HashSet;
use std::io::{self, Read};

use crate::policy::{RPM_MAX_HEADER_DATA, RPM_MAX_INDEX, RPM_MAX_SIGNATURE_DATA};

/// The lead's magic, the first four bytes of every package.
pub const LEAD_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];
/// The lead's fixed size.
pub const LEAD_LEN: usize = 96;
/// A header's magic and four reserved zero bytes.
pub const HEADER_MAGIC: [u8; 8] = [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];

/// Signature header tags.
pub mod sigtag {
    /// DSA signature over the main header (OpenPGP packet).
    pub const DSAHEADER: u32 = 267;
    /// RSA or EdDSA signature over the main header (OpenPGP packet).
    pub const RSAHEADER: u32 = 268;
    /// SHA-1 of the main header, hex.
    pub const SHA1HEADER: u32 = 269;
    /// SHA-256 of the main header, hex.
    pub const SHA256HEADER: u32 = 273;
    /// rpm 6: base64 OpenPGP signatures over the main header, any algorithm.
    pub const OPENPGP: u32 = 278;
    /// Legacy RSA signature over the main header and the payload.
    pub const PGP: u32 = 1002;
    /// Legacy DSA signature over the main header and the payload.
    pub const GPG: u32 = 1005;
}

/// Main header tags.
pub mod tag {
    pub const PREIN: u32 = 1023;
    pub const POSTIN: u32 = 1024;
    pub const PREUN: u32 = 1025;
    pub const POSTUN: u32 = 1026;
    pub const FILESIZES: u32 = 1028;
    pub const FILEMODES: u32 = 1030;
    pub const FILELINKTOS: u32 = 1036;
    pub const FILEFLAGS: u32 = 1037;
    pub const FILEUSERNAME: u32 = 1039;
    pub const FILEGROUPNAME: u32 = 1040;
    pub const TRIGGERSCRIPTS: u32 = 1065;
    pub const TRIGGERNAME: u32 = 1066;
    pub const TRIGGERFLAGS: u32 = 1068;
    pub const TRIGGERINDEX: u32 = 1069;
    pub const PREINPROG: u32 = 1085;
    pub const POSTINPROG: u32 = 1086;
    pub const PREUNPROG: u32 = 1087;
    pub const POSTUNPROG: u32 = 1088;
    pub const TRIGGERSCRIPTPROG: u32 = 1092;
    pub const DIRINDEXES: u32 = 1116;
    pub const BASENAMES: u32 = 1117;
    pub const DIRNAMES: u32 = 1118;
    pub const PRETRANS: u32 = 1151;
    pub const POSTTRANS: u32 = 1152;
    pub const PRETRANSPROG: u32 = 1153;
    pub const POSTTRANSPROG: u32 = 1154;
    pub const LONGFILESIZES: u32 = 5008;
    /// Digest of the compressed payload, hex, one per algorithm.
    pub const PAYLOADDIGEST: u32 = 5092;
    /// The OpenPGP hash algorithm id of [`PAYLOADDIGEST`].
    pub const PAYLOADDIGESTALGO: u32 = 5093;
}

/// `FILEFLAGS` bit of a configuration file (`%config`).
pub const FILE_CONFIG: u32 = 1;

/// The data types of header entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Null,
    Char,
    Int8,
    Int16,
    Int32,
    Int64,
    String,
    Bin,
    StringArray,
    I18nString,
}

impl Type {
    fn from_raw(raw: u32) -> Option<Type> {
        Some(match raw {
            0 => Type::Null,
            1 => Type::Char,
            2 => Type::Int8,
            3 => Type::Int16,
            4 => Type::Int32,
            5 => Type::Int64,
            6 => Type::String,
            7 => Type::Bin,
            8 => Type::StringArray,
            9 => Type::I18nString,
            _ => return None,
        })
    }

    /// Bytes per element of a fixed-size type.
    fn width(self) -> Option<usize> {
        match self {
            Type::Null => Some(0),
            Type::Char | Type::Int8 | Type::Bin => Some(1),
            Type::Int16 => Some(2),
            Type::Int32 => Some(4),
            Type::Int64 => Some(8),
            Type::String | Type::StringArray | Type::I18nString => None,
        }
    }
}

/// Which of the two headers, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Signature,
    Main,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Signature => "signature header",
            Which::Main => "header",
        }
    }
}

/// Why the bytes are not an RPM package we read.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    #[error("not an rpm package (no lead magic)")]
    NotRpm,
    #[error("truncated: the file ends inside the {0}")]
    Truncated(&'static str),
    #[error("the {0} does not start with the header magic")]
    BadMagic(&'static str),
    #[error("the {what} claims {claimed} {unit}, more than the {cap} vendorguard reads")]
    TooLarge {
        what: &'static str,
        claimed: u64,
        unit: &'static str,
        cap: u64,
    },
    #[error("the {what}: entry {index} (tag {tag}): {why}")]
    BadEntry {
        what: &'static str,
        index: usize,
        tag: u32,
        why: String,
    },
    #[error("the padding after the signature header is not zero")]
    Padding,
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
}

/// One index entry, checked against its header's data.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u32,
    typ: Type,
    offset: usize,
    count: usize,
    /// The entry's data length in bytes, computed and bounds-checked.
    len: usize,
}

/// A header: its bytes exactly as stored (magic through data) and its checked index.
#[derive(Debug, Clone)]
pub struct Header {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    data_start: usize,
}

/// A typed value of a header entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Bytes(&'a [u8]),
    Int16(Vec<u16>),
    Int32(Vec<u32>),
    Int64(Vec<u64>),
    Strings(Vec<&'a [u8]>),
}

impl Header {
    /// The header exactly as stored, magic included: what header digests and
    /// header-only signatures cover.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The tags present, in index order.
    pub fn tags(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().map(|e| e.tag)
    }

    fn entry(&self, tag: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }

    fn data(&self, e: &Entry) -> &[u8] {
        let start = self.data_start + e.offset;
        &self.bytes[start..start + e.len]
    }

    /// The entry's value, typed as the header declares it.
    pub fn get(&self, tag: u32) -> Option<Value<'_>> {
        let e = self.entry(tag)?;
        let data = self.data(e);
        Some(match e.typ {
            Type::Null => Value::Null,
            Type::Char | Type::Int8 | Type::Bin => Value::Bytes(data),
            Type::Int16 => Value::Int16(
                data.chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect(),
            ),
            Type::Int32 => Value::Int32(
                data.chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Type::Int64 => Value::Int64(
                data.chunks_exact(8)
                    .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            ),
            Type::String | Type::StringArray | Type::I18nString => Value::Strings(
                data.split(|b| *b == 0)
                    .take(e.count)
                    .collect::<Vec<&[u8]>>(),
            ),
        })
    }

    /// A `BIN` entry.
    pub fn bin(&self, tag: u32) -> Option<&[u8]> {
        match (self.entry(tag)?.typ, self.get(tag)?) {
            (Type::Bin, Value::Bytes(b)) => Some(b),
            _ => None,
        }
    }

    /// The first string of a `STRING`, `STRING_ARRAY` or `I18NSTRING` entry.
    pub fn string(&self, tag: u32) -> Option<&[u8]> {
        self.strings(tag)?.into_iter().next()
    }

    /// Every string of a string entry.
    pub fn strings(&self, tag: u32) -> Option<Vec<&[u8]>> {
        match self.get(tag)? {
            Value::Strings(s) => Some(s),
            _ => None,
        }
    }

    /// An `INT32` entry's values.
    pub fn int32s(&self, tag: u32) -> Option<Vec<u32>> {
        match self.get(tag)? {
            Value::Int32(v) => Some(v),
            _ => None,
        }
    }

    /// An integer entry of any width, widened: `FILEMODES` is `INT16`, sizes are `INT32`
    /// or `INT64`.
    pub fn ints(&self, tag: u32) -> Option<Vec<u64>> {
        match self.get(tag)? {
            Value::Int16(v) => Some(v.into_iter().map(u64::from).collect()),
            Value::Int32(v) => Some(v.into_iter().map(u64::from).collect()),
            Value::Int64(v) => Some(v),
            Value::Bytes(b) if self.entry(tag)?.typ != Type::Bin => {
                Some(b.iter().map(|&x| u64::from(x)).collect())
            }
            _ => None,
        }
    }
}

/// The framing of a package, read up to the payload.
#[derive(Debug, Clone)]
pub struct Package {
    pub signature: Header,
    pub header: Header,
}

/// Whether `head` starts like an RPM package: the lead magic and, when enough bytes
/// are there, the signature header's magic right after the lead.
pub fn detect(head: &[u8]) -> bool {
    head.starts_with(&LEAD_MAGIC)
        && (head.len() < LEAD_LEN + 8 || head[LEAD_LEN..LEAD_LEN + 8] == HEADER_MAGIC)
}

/// Reads a package's lead and both headers from `r`, leaving `r` at the payload.
///
/// # Errors
///
/// [`RpmError`]: not a package, truncated, a count or size over its cap, an entry
/// that does not fit its header; [`RpmError::Io`] for a failed read.
pub fn read_package(r: &mut impl Read) -> Result<Package, RpmError> {
    let mut lead = [0u8; LEAD_LEN];
    read_exact(r, &mut lead, "lead")?;
    if lead[..4] != LEAD_MAGIC {
        return Err(RpmError::NotRpm);
    }
    let signature = read_header(r, Which::Signature)?;
    let sig_len = signature.bytes.len();
    let pad = (8 - sig_len % 8) % 8;
    let mut padding = [0u8; 8];
    read_exact(r, &mut padding[..pad], "signature header's padding")?;
    if padding.iter().any(|b| *b != 0) {
        return Err(RpmError::Padding);
    }
    let header = read_header(r, Which::Main)?;
    Ok(Package { signature, header })
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), RpmError> {
    match r.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(RpmError::Truncated(what)),
        Err(e) => Err(RpmError::Io(e)),
    }
}

/// Reads one header: magic, counts (capped before allocating), index and data.
pub fn read_header(r: &mut impl Read, which: Which) -> Result<Header, RpmError> {
    let what = which.name();
    let mut intro = [0u8; 16];
    read_exact(r, &mut intro, what)?;
    if intro[..8] != HEADER_MAGIC {
        return Err(RpmError::BadMagic(what));
    }
    let il = u32::from_be_bytes(intro[8..12].try_into().expect("4 bytes"));
    let dl = u32::from_be_bytes(intro[12..16].try_into().expect("4 bytes"));
    if il == 0 || il > RPM_MAX_INDEX {
        return Err(RpmError::TooLarge {
            what,
            claimed: u64::from(il),
            unit: "index entries",
            cap: u64::from(RPM_MAX_INDEX),
        });
    }
    let cap = match which {
        Which::Signature => RPM_MAX_SIGNATURE_DATA,
        Which::Main => RPM_MAX_HEADER_DATA,
    };
    if dl > cap {
        return Err(RpmError::TooLarge {
            what,
            claimed: u64::from(dl),
            unit: "bytes of data",
            cap: u64::from(cap),
        });
    }
    let data_start = 16 + il as usize * 16;
    let total = data_start + dl as usize;
    let mut bytes = Vec::with_capacity(total);
    bytes.extend_from_slice(&intro);
    let got = r
        .take((total - 16) as u64)
        .read_to_end(&mut bytes)
        .map_err(RpmError::Io)?;
    if got < total - 16 {
        return Err(RpmError::Truncated(what));
    }
    let entries = check_index(&bytes[16..data_start], &bytes[data_start..], what)?;
    Ok(Header {
        bytes,
        entries,
        data_start,
    })
}

/// Checks every index entry against the data and returns them.
///
/// Every check is linear in the index and the data (after one sort): duplicate tags
/// go through a set, and the strings of string entries are counted in offset order,
/// each entry's scan refused as an overlap as soon as it starts inside an earlier
/// entry's data, so no byte is scanned for two entries that both pass.
fn check_index(index: &[u8], data: &[u8], what: &'static str) -> Result<Vec<Entry>, RpmError> {
    let mut entries: Vec<Entry> = Vec::with_capacity(index.len() / 16);
    let mut tags = HashSet::with_capacity(index.len() / 16);
    for (i, raw) in index.chunks_exact(16).enumerate() {
        let word = |n: usize| u32::from_be_bytes(raw[n..n + 4].try_into().expect("4 bytes"));
        let (tag, typ_raw, offset, count) = (word(0), word(4), word(8), word(12));
        let bad = |why: String| bad_entry(what, i, tag, why);
        let typ = Type::from_raw(typ_raw).ok_or_else(|| bad(format!("unknown type {typ_raw}")))?;
        let (offset, count) = (offset as usize, count as usize);
        if count == 0 && typ != Type::Null {
            return Err(bad("a count of zero".into()));
        }
        if offset > data.len() {
            return Err(bad(format!(
                "offset {offset} past the end of the {} bytes of data",
                data.len()
            )));
        }
        let len = match typ.width() {
            Some(w) => count
                .checked_mul(w)
                .filter(|n| *n <= data.len() - offset)
                .ok_or_else(|| {
                    bad(format!(
                        "{count} elements at offset {offset} do not fit the data"
                    ))
                })?,
            None if typ == Type::String && count != 1 => {
                return Err(bad(format!("a STRING with count {count}")));
            }
            // Counted below, in offset order.
            None => 0,
        };
        if !tags.insert(tag) {
            return Err(bad("a second entry with the same tag".into()));
        }
        entries.push(Entry {
            tag,
            typ,
            offset,
            count,
            len,
        });
    }
    // No two entries' data may overlap: one byte means one thing. The region entry
    // (tags 62 and 63) points at a trailer that is not otherwise referenced.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_unstable_by_key(|&i| (entries[i].offset, i));
    // The end of the data seen so far, and the tag whose data reaches it.
    let mut reach: Option<(usize, u32)> = None;
    for i in order {
        let e = &entries[i];
        let counted = e.typ.width().is_none();
        if !counted && e.len == 0 {
            continue;
        }
        if let Some((_, by)) = reach.filter(|(end, _)| e.offset < *end) {
            return Err(bad_entry(
                what,
                i,
                e.tag,
                format!("its data overlaps that of tag {by}"),
            ));
        }
        if counted {
            let len = strings_len(&data[e.offset..], e.count).ok_or_else(|| {
                bad_entry(
                    what,
                    i,
                    e.tag,
                    format!(
                        "{} strings at offset {} do not end inside the data",
                        e.count, e.offset
                    ),
                )
            })?;
            entries[i].len = len;
        }
        let e = &entries[i];
        reach = Some((e.offset + e.len, e.tag));
    }
    Ok(entries)
}

fn bad_entry(what: &'static str, index: usize, tag: u32, why: String) -> RpmError {
    RpmError::BadEntry {
        what,
        index,
        tag,
        why,
    }
}

/// The length of `count` NUL-terminated strings at the start of `data`, if they all
/// end inside it. Each string takes at least one byte, so the loop is bounded by the
/// data, not by the claimed count, and each byte is looked at once.
fn strings_len(data: &[u8], count: usize) -> Option<usize> {
    if count > data.len() {
        return None;
    }
    let mut pos = 0;
    for _ in 0..count {
        let end = data[pos..].iter().position(|b| *b == 0)?;
        pos += end + 1;
    }
    Some(pos)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `NAME`, the package's name: a string every test header can carry.
    pub(crate) const NAME: u32 = 1000;

    /// Builds a header from `(tag, type, data, count)` entries, data laid out in
    /// order.
    pub(crate) fn header(entries: &[(u32, u32, &[u8], u32)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, typ, bytes, count) in entries {
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&typ.to_be_bytes());
            index.extend_from_slice(&(data.len() as u32).to_be_bytes());
            index.extend_from_slice(&count.to_be_bytes());
            data.extend_from_slice(bytes);
        }
        let mut out = HEADER_MAGIC.to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    /// A whole package: lead, signature header, padding, main header, payload.
    pub(crate) fn package(sig: &[u8], main: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut out = LEAD_MAGIC.to_vec();
        out.resize(LEAD_LEN, 0);
        out.extend_from_slice(sig);
        out.resize(out.len() + (8 - sig.len() % 8) % 8, 0);
        out.extend_from_slice(main);
        out.extend_from_slice(payload);
        out
    }

    fn simple() -> Vec<u8> {
        package(
            &header(&[(sigtag::SHA256HEADER, 6, b"abc\0", 1)]),
            &header(&[
                (NAME, 6, b"acme\0", 1),
                (tag::FILEMODES, 3, &[0x81, 0xa4, 0x41, 0xed], 2),
                (tag::BASENAMES, 8, b"a\0b\0", 2),
            ]),
            b"PAYLOAD",
        )
    }

    /// Parses `bytes`; `Ok(remaining payload)` or the error's text.
    fn parse(bytes: &[u8]) -> Result<(Package, Vec<u8>), String> {
        let mut r = bytes;
        let p = read_package(&mut r).map_err(|e| e.to_string())?;
        Ok((p, r.to_vec()))
    }

    fn check(bytes: &[u8], want: Result<(), &str>) {
        match (parse(bytes), want) {
            (Ok(_), Ok(())) => {}
            (Err(got), Err(w)) => assert!(got.contains(w), "{got:?} lacks {w:?}"),
            (got, want) => panic!("got {:?}, want {want:?}", got.map(|_| ())),
        }
    }

    #[test]
    fn reads_typed_entries_and_leaves_the_payload() {
        let (p, rest) = parse(&simple()).unwrap();
        assert_eq!(rest, b"PAYLOAD");
        assert_eq!(p.header.string(NAME), Some(&b"acme"[..]));
        assert_eq!(p.header.ints(tag::FILEMODES), Some(vec![0o100644, 0o40755]));
        assert_eq!(
            p.header.strings(tag::BASENAMES),
            Some(vec![&b"a"[..], &b"b"[..]])
        );
        assert_eq!(p.signature.string(sigtag::SHA256HEADER), Some(&b"abc"[..]));
    }

    #[test]
    fn hostile_framing_is_refused() {
        let good = simple();
        let sig_at = LEAD_LEN;
        let set = |at: usize, v: u32| {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_be_bytes());
            b
        };
        let main_at = LEAD_LEN + 16 + 16 + 8;
        check(&good, Ok(()));
        check(
            b"\xed\xab\xee\xdb",
            Err("truncated: the file ends inside the lead"),
        );
        check(&good[..LEAD_LEN + 10], Err("inside the signature header"));
        check(&good[..main_at + 20], Err("inside the header"));
        check(&[0u8; 200], Err("not an rpm package"));
        // Counts that would allocate gigabytes are refused before reading.
        check(
            &set(sig_at + 8, u32::MAX),
            Err("claims 4294967295 index entries"),
        );
        check(&set(sig_at + 12, u32::MAX), Err("bytes of data"));
        check(&set(main_at + 12, 0x7fff_ffff), Err("bytes of data"));
        check(&set(sig_at + 8, 0), Err("claims 0 index entries"));
        // An offset past the end, a count past the end, an unknown type.
        check(&set(main_at + 16 + 16 + 8, 1000), Err("past the end"));
        check(&set(main_at + 16 + 16 + 12, 5), Err("do not fit the data"));
        check(
            &set(main_at + 16 + 16 + 12, 3),
            Err("overlaps that of tag 1030"),
        );
        check(&set(main_at + 16 + 32 + 12, 3), Err("do not end inside"));
        check(
            &set(main_at + 16 + 32 + 12, u32::MAX),
            Err("do not end inside"),
        );
        check(&set(main_at + 16 + 4, 42), Err("unknown type 42"));
        check(&set(main_at + 16 + 12, 2), Err("a STRING with count 2"));
        let mut magic = good.clone();
        magic[main_at + 5] = 1;
        check(
            &magic,
            Err("the header does not start with the header magic"),
        );
        let mut pad = good.clone();
        pad[LEAD_LEN + 16 + 16 + 5] = 1;
        check(&pad, Err("padding"));
    }

    #[test]
    fn duplicate_and_overlapping_entries_are_refused() {
        let dup = package(
            &header(&[(sigtag::SHA256HEADER, 6, b"a\0", 1)]),
            &header(&[(NAME, 6, b"a\0", 1), (NAME, 6, b"b\0", 1)]),
            b"",
        );
        check(&dup, Err("a second entry with the same tag"));
        let mut overlap = package(
            &header(&[(sigtag::SHA256HEADER, 6, b"a\0", 1)]),
            &header(&[(NAME, 6, b"ab\0", 1), (tag::BASENAMES, 6, b"c\0", 1)]),
            b"",
        );
        // Point VERSION's offset (second entry) into NAME's string.
        let at = LEAD_LEN + 16 + 16 + 8 + 16 + 16 + 8;
        overlap[at..at + 4].copy_from_slice(&1u32.to_be_bytes());
        check(&overlap, Err("overlaps that of tag 1000"));
    }

    /// An index of `n` entries `(tag, type, offset, count)` over `data` bytes.
    fn index(entries: impl Iterator<Item = (u32, u32, u32, u32)>) -> Vec<u8> {
        entries
            .flat_map(|(t, y, o, c)| [t, y, o, c])
            .flat_map(u32::to_be_bytes)
            .collect()
    }

    /// Runs `check_index` and returns the error's text and how long it took.
    fn timed_refusal(index: &[u8], data: &[u8]) -> (String, std::time::Duration) {
        let start = std::time::Instant::now();
        let got = check_index(index, data, "header").map(|_| ());
        (got.unwrap_err().to_string(), start.elapsed())
    }

    #[test]
    fn many_string_arrays_over_the_same_bytes_are_refused_in_linear_time() {
        // 65,535 STRING_ARRAY entries at offset 0, each claiming 1 Mi one-byte strings
        // over 1 MiB of NULs: counted one by one this is 2^36 steps.
        let n = RPM_MAX_INDEX;
        let data = vec![0u8; 1 << 20];
        let idx = index((0..n).map(|i| (100_000 + i, 8, 0, 1 << 20)));
        let (err, took) = timed_refusal(&idx, &data);
        assert!(err.contains("overlaps that of tag 100000"), "{err}");
        assert!(took.as_secs() < 5, "took {took:?}");
        // One string running over the start of every later entry: an overlap found after
        // one scan, not 65,535 scans of a megabyte each.
        let mut text = vec![b'a'; 1 << 20];
        *text.last_mut().unwrap() = 0;
        let idx = index((0..n).map(|i| (100_000 + i, 8, n - 1 - i, 1)));
        let (err, took) = timed_refusal(&idx, &text);
        assert!(err.contains("its data overlaps"), "{err}");
        assert!(took.as_secs() < 5, "took {took:?}");
    }

    #[test]
    fn a_duplicate_tag_among_many_entries_is_found_in_linear_time() {
        // 65,534 distinct INT32 entries and then the first tag again: pairwise this is
        // two billion comparisons.
        let n = RPM_MAX_INDEX;
        let data = vec![0u8; 4 * n as usize];
        let idx = index((0..n).map(|i| (100_000 + i % (n - 1), 4, 4 * i, 1)));
        let (err, took) = timed_refusal(&idx, &data);
        assert!(err.contains("a second entry with the same tag"), "{err}");
        assert!(err.contains("entry 65534"), "{err}");
        assert!(took.as_secs() < 2, "took {took:?}");
    }

    #[test]
    fn detects_by_content() {
        assert!(detect(&simple()));
        assert!(!detect(b"PK\x03\x04"));
        let mut wrong = simple();
        wrong[LEAD_LEN] = 0;
        assert!(!detect(&wrong));
    }
}
