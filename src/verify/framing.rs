//! The signed-region rule for inline and cleartext-signed messages: a message verifies
//! only when every byte of the file is armor framing, packet framing, signed data, a
//! signature, or trailing whitespace.
//!
//! Sequoia's parser is lenient where that is harmless for mail: it skips text around an
//! armored block, reads one cleartext message and ignores what follows it, and stops at
//! the end of a compressed stream, dropping whatever the packet holds after it. For a
//! bundle whose SHA-256 and pins cover the whole file, each of those is a way to ship
//! bytes nobody signed. So the bytes are checked here, as they stream to the parser in
//! the one pass over the file: [`TextFraming`] holds armored and cleartext files to a
//! strict line grammar; [`PacketFraming`] follows the top-level packets of a binary (or
//! dearmored) message, and takes apart a compressed packet that wraps the whole message
//! itself, so that nothing can hide behind the end of its compressed stream.
//!
//! The order of the packets the parser sees (one message, one literal) is `sigfile`'s
//! check; judging the signatures is `verify`'s.

use std::fmt;
use std::io::{self, Read};

/// The first line of a cleartext-signed message.
pub const CLEARTEXT_BEGIN: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";
/// The first line of an armored message.
pub const MESSAGE_BEGIN: &[u8] = b"-----BEGIN PGP MESSAGE-----";
const SIGNATURE_BEGIN: &[u8] = b"-----BEGIN PGP SIGNATURE-----";

/// Hash algorithm names a cleartext `Hash:` header may carry (RFC 4880, RFC 9580), as
/// written there: a changed letter is a changed file.
const HASH_NAMES: &[&str] = &[
    "MD5",
    "SHA1",
    "RIPEMD160",
    "SHA224",
    "SHA256",
    "SHA384",
    "SHA512",
    "SHA3-256",
    "SHA3-512",
];

/// Armor headers accepted in an armored block (RFC 4880 section 6.2, less `Hash`).
const ARMOR_HEADERS: &[&str] = &["Version", "Comment", "Charset", "MessageID"];

/// How many bytes of each line are kept to classify it.
const KEEP: usize = 96;

/// Where unsigned bytes start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// A line of an armored or cleartext file (from 1) and its byte offset (from 0).
    Line { line: u64, offset: u64 },
    /// A byte offset in a binary file.
    Offset(u64),
    /// A byte offset in the data decoded from the armor.
    Dearmored(u64),
    /// The n-th packet (from 1) inside the compressed packet that wraps the message.
    Compressed(usize),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line { line, offset } => write!(f, "line {line} (offset {offset})"),
            Position::Offset(o) => write!(f, "offset {o}"),
            Position::Dearmored(o) => write!(f, "offset {o} of the dearmored data"),
            Position::Compressed(n) => write!(f, "packet {n} of the compressed data"),
        }
    }
}

/// Bytes of a signed message that no signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedContent {
    pub at: Option<Position>,
    /// What the bytes are, in words (may quote the file: escape before printing).
    pub what: String,
}

impl fmt::Display for UnsignedContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(at) => write!(f, "unsigned content at {at}: {}", self.what),
            None => write!(f, "unsigned content: {}", self.what),
        }
    }
}

/// What kind of signed message a file is, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `-----BEGIN PGP SIGNED MESSAGE-----`.
    Cleartext,
    /// `-----BEGIN PGP MESSAGE-----`.
    Armored,
    /// Binary packets.
    Binary,
    /// None of these.
    Unknown,
}

impl Layout {
    /// Classifies a file by its first bytes. An armor line further down `head` counts
    /// too: the bytes before it are then unsigned content, which [`TextFraming`] reports.
    pub fn of(head: &[u8]) -> Layout {
        if let Some(&first) = head.first() {
            if first & 0x80 != 0 {
                return Layout::Binary;
            }
        }
        for line in head.split(|&b| b == b'\n') {
            let line = line.trim_ascii_start();
            if line.starts_with(CLEARTEXT_BEGIN) {
                return Layout::Cleartext;
            }
            if line.starts_with(MESSAGE_BEGIN) {
                return Layout::Armored;
            }
            if line.starts_with(b"-----BEGIN ") {
                return Layout::Unknown;
            }
        }
        Layout::Unknown
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first line: the BEGIN line, nothing before it.
    Begin,
    /// `Hash:` headers of a cleartext message, up to the blank line.
    CleartextHeaders,
    /// The dash-escaped signed text.
    Text,
    /// Headers of an armored block, up to the blank line.
    ArmorHeaders,
    /// Base64 lines.
    Body,
    /// After the `=XXXX` checksum line: only the END line.
    Checksum,
    /// After the END line: whitespace only.
    Trailing,
    /// Done checking (a finding, or a binary file).
    Stop,
}

/// Checks the lines of an armored or cleartext-signed file as they are read through it.
/// The bytes pass unchanged; the first violation is kept in [`TextFraming::found`].
pub struct TextFraming<R> {
    inner: R,
    cleartext: bool,
    state: State,
    /// Offset of the next byte.
    pos: u64,
    line_no: u64,
    line_start: u64,
    /// The first [`KEEP`] bytes of the current line.
    line: Vec<u8>,
    line_len: u64,
    /// In `Body`: every byte of the line so far is base64 or whitespace. In
    /// `Trailing`: every byte so far is whitespace.
    line_ok: bool,
    eof: bool,
    /// The first unsigned content found.
    pub found: Option<UnsignedContent>,
    /// The finding is a line inside an armored block: when the parser failed too, the
    /// armor is corrupt rather than carrying extra text.
    pub found_in_armor: bool,
    /// A read from the file failed (kind and message): the file could not be read,
    /// as opposed to bytes that do not parse.
    pub failed: Option<(io::ErrorKind, String)>,
}

impl<R: Read> TextFraming<R> {
    pub fn new(inner: R, layout: Layout) -> Self {
        let state = match layout {
            Layout::Cleartext | Layout::Armored => State::Begin,
            Layout::Binary | Layout::Unknown => State::Stop,
        };
        TextFraming {
            inner,
            cleartext: layout == Layout::Cleartext,
            state,
            pos: 0,
            line_no: 1,
            line_start: 0,
            line: Vec::with_capacity(KEEP),
            line_len: 0,
            line_ok: true,
            eof: false,
            found: None,
            found_in_armor: false,
            failed: None,
        }
    }

    fn scan(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            if self.state == State::Stop {
                self.pos += chunk.len() as u64;
                return;
            }
            let (segment, newline) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], true),
                None => (chunk, false),
            };
            self.take(segment);
            self.pos += segment.len() as u64;
            chunk = &chunk[segment.len()..];
            if newline {
                self.pos += 1;
                chunk = &chunk[1..];
                self.end_line();
            }
        }
    }

    fn take(&mut self, segment: &[u8]) {
        let room = KEEP.saturating_sub(self.line.len());
        self.line
            .extend_from_slice(&segment[..segment.len().min(room)]);
        self.line_len += segment.len() as u64;
        match self.state {
            State::Body => {
                self.line_ok &= segment
                    .iter()
                    .all(|&b| is_base64(b) || b == b'=' || b.is_ascii_whitespace());
            }
            State::Trailing => self.line_ok &= segment.iter().all(u8::is_ascii_whitespace),
            _ => {}
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        self.classify(&line);
        self.line = line;
        self.line.clear();
        self.line_no += 1;
        self.line_start = self.pos;
        self.line_len = 0;
        self.line_ok = true;
    }

    fn end_of_file(&mut self) {
        if !self.eof {
            self.eof = true;
            // A last line without its newline is complete only after the text: the END
            // line may lack one. Anywhere else the file is truncated, which is the
            // parser's to report.
            let complete = matches!(self.state, State::Body | State::Checksum | State::Trailing);
            if self.line_len > 0 && complete {
                self.end_line();
            }
        }
    }

    fn unsigned(&mut self, what: String) {
        self.found_in_armor = matches!(
            self.state,
            State::ArmorHeaders | State::Body | State::Checksum
        );
        self.found = Some(UnsignedContent {
            at: Some(Position::Line {
                line: self.line_no,
                offset: self.line_start,
            }),
            what,
        });
        self.state = State::Stop;
    }

    fn classify(&mut self, line: &[u8]) {
        let whole = self.line_len == line.len() as u64;
        let trimmed = line.trim_ascii_end();
        let is = |marker: &[u8]| whole && trimmed == marker;
        let label = if self.cleartext {
            "SIGNATURE"
        } else {
            "MESSAGE"
        };
        let end = format!("-----END PGP {label}-----");
        match self.state {
            State::Begin => {
                let begin = if self.cleartext {
                    CLEARTEXT_BEGIN
                } else {
                    MESSAGE_BEGIN
                };
                if is(begin) {
                    self.state = if self.cleartext {
                        State::CleartextHeaders
                    } else {
                        State::ArmorHeaders
                    };
                } else {
                    self.unsigned(format!(
                        "bytes before the {} line",
                        String::from_utf8_lossy(begin)
                    ));
                }
            }
            State::CleartextHeaders => {
                if trimmed.is_empty() {
                    self.state = State::Text;
                } else if let Some(names) = trimmed.strip_prefix(b"Hash: ").filter(|_| whole) {
                    let names = String::from_utf8_lossy(names);
                    let unknown = names
                        .split(',')
                        .map(str::trim)
                        .find(|n| !HASH_NAMES.contains(n));
                    if let Some(n) = unknown {
                        self.unsigned(format!("unknown hash algorithm {n:?} in the Hash: header"));
                    }
                } else {
                    self.unsigned(format!(
                        "armor header {:?} is not allowed in a cleartext-signed message (only Hash:)",
                        String::from_utf8_lossy(trimmed)
                    ));
                }
            }
            State::Text => {
                if line.starts_with(b"- ") {
                    // Dash-escaped text.
                } else if is(SIGNATURE_BEGIN) {
                    self.state = State::ArmorHeaders;
                } else if line.first() == Some(&b'-') {
                    self.unsigned(
                        "a line of the signed text starts with a dash but is not dash-escaped (\"- \"), so another reader could take it for armor"
                            .into(),
                    );
                } else if looks_like_armor(line) {
                    self.unsigned(
                        "a line of the signed text looks like an armor line (dashes, then BEGIN or END PGP)"
                            .into(),
                    );
                }
            }
            State::ArmorHeaders => {
                if trimmed.is_empty() {
                    self.state = State::Body;
                } else if !armor_header(trimmed) {
                    self.unsigned(format!(
                        "armor header {:?} is not allowed (only {})",
                        String::from_utf8_lossy(trimmed),
                        ARMOR_HEADERS.join(", ")
                    ));
                }
            }
            State::Body => {
                if is(end.as_bytes()) {
                    self.state = State::Trailing;
                } else if whole
                    && trimmed.len() == 5
                    && trimmed[0] == b'='
                    && trimmed[1..].iter().all(|&b| is_base64(b))
                {
                    self.state = State::Checksum;
                } else if !self.line_ok {
                    self.unsigned(format!(
                        "a line inside the {label} armor that is not base64"
                    ));
                }
            }
            State::Checksum => {
                if is(end.as_bytes()) {
                    self.state = State::Trailing;
                } else {
                    self.unsigned(format!("a line after the armor checksum that is not {end}"));
                }
            }
            State::Trailing => {
                if !self.line_ok {
                    let what = if trimmed.starts_with(CLEARTEXT_BEGIN) {
                        "a second signed message after the first one's signature"
                    } else if trimmed.starts_with(SIGNATURE_BEGIN) {
                        "a second signature block after the first"
                    } else if trimmed.starts_with(MESSAGE_BEGIN) {
                        "a second OpenPGP message after the first"
                    } else if trimmed.starts_with(b"-----BEGIN ") {
                        "another armored block after the message"
                    } else if self.cleartext {
                        "text after the end of the signature"
                    } else {
                        "text after the end of the armored message"
                    };
                    self.unsigned(what.into());
                }
            }
            State::Stop => {}
        }
    }
}

impl<R: Read> Read for TextFraming<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed = Some((e.kind(), e.to_string()));
                }
                return Err(e);
            }
        };
        if n == 0 {
            self.end_of_file();
        } else {
            self.scan(&buf[..n]);
        }
        Ok(n)
    }
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn armor_header(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    match line.split_once(": ") {
        Some((key, _)) => ARMOR_HEADERS.contains(&key),
        None => false,
    }
}

/// Whether a text line starts with Unicode dashes and then `BEGIN PGP` or `END PGP`:
/// Sequoia reads any dash punctuation as armor dashes.
fn looks_like_armor(line: &[u8]) -> bool {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&line[..e.valid_up_to()]).unwrap_or_default(),
    };
    let rest = text.trim_start_matches(|c: char| {
        c == '-'
            || matches!(
                c,
                '\u{058A}' | '\u{05BE}' | '\u{1400}' | '\u{1806}' | '\u{2010}'
                    ..='\u{2015}'
                        | '\u{2E17}'
                        | '\u{2E1A}'
                        | '\u{2E3A}'
                        | '\u{2E3B}'
                        | '\u{2E40}'
                        | '\u{301C}'
                        | '\u{3030}'
                        | '\u{30A0}'
                        | '\u{FE31}'
                        | '\u{FE32}'
                        | '\u{FE58}'
                        | '\u{FE63}'
                        | '\u{FF0D}'
            )
    });
    rest.len() < text.len() && (rest.starts_with("BEGIN PGP") || rest.starts_with("END PGP"))
}

/// How a packet body's length is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Full(u64),
    /// A partial body chunk; more length headers follow.
    Partial(u64),
    /// To the end of the input (old format, length type 3).
    Indeterminate,
}

/// Decodes a packet header from `h`: `None` when more bytes are needed; `Some(Err)`
/// when `h` is no packet header. Returns the tag and the body length.
fn packet_header(h: &[u8]) -> Option<Result<(u8, Length), ()>> {
    let &ctb = h.first()?;
    if ctb & 0x80 == 0 {
        return Some(Err(()));
    }
    let (tag, length) = if ctb & 0x40 != 0 {
        (ctb & 0x3f, new_length(&h[1..])?)
    } else {
        let tag = (ctb >> 2) & 0x0f;
        let n = match ctb & 3 {
            0 => 1,
            1 => 2,
            2 => 4,
            _ => return Some(Ok((tag, Length::Indeterminate))),
        };
        let bytes = h.get(1..1 + n)?;
        let len = bytes.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b));
        (tag, Length::Full(len))
    };
    if tag == 0 {
        return Some(Err(()));
    }
    Some(Ok((tag, length)))
}

/// A new-format length (also a partial body chunk's next length).
fn new_length(h: &[u8]) -> Option<Length> {
    let &first = h.first()?;
    Some(match first {
        0..=191 => Length::Full(u64::from(first)),
        192..=223 => {
            let &second = h.get(1)?;
            Length::Full(((u64::from(first) - 192) << 8) + u64::from(second) + 192)
        }
        255 => {
            let bytes = h.get(1..5)?;
            Length::Full(bytes.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)))
        }
        _ => Length::Partial(1 << (first & 0x1f)),
    })
}

/// Where the packet framing is.
#[derive(Debug)]
enum PacketState {
    /// Collecting a packet header.
    Header(Vec<u8>),
    /// Collecting the next length of a partial body.
    ChunkLength(Vec<u8>),
    /// Inside a body; `left` bytes of this chunk remain (`None`: to the end).
    Body { left: Option<u64>, partial: bool },
    /// Bytes past a finding: passed on unchecked (or dropped when unwrapping).
    Rest,
}

/// The compressed packet that wraps the whole message, taken apart here.
enum Unwrap {
    /// The first packet is not compressed: bytes pass through.
    No,
    /// Waiting for the compression algorithm octet.
    Algorithm,
    /// Algorithm 0: the body is the message.
    Stored,
    Inflate(Box<flate2::Decompress>),
    Bunzip(Box<bzip2::Decompress>),
    /// The compressed stream ended; the body must end too.
    Ended,
    /// Could not decompress; nothing more is passed on.
    Broken,
}

const CHUNK: usize = 64 * 1024;

/// Follows the top-level packets of a binary message as they are read through it.
///
/// Packets pass unchanged, except that a compressed packet that is the first packet is
/// replaced by its decompressed content, so that the end of the compressed stream is
/// seen here: data after it, inside the packet or after the packet, is unsigned
/// content. Bytes after the last packet that are no packet header are unsigned
/// content too.
pub struct PacketFraming<R> {
    inner: R,
    /// Offsets are in data decoded from armor.
    dearmored: bool,
    /// Offset of the next byte read from `inner`.
    pos: u64,
    raw: Vec<u8>,
    raw_at: usize,
    out: Vec<u8>,
    out_at: usize,
    eof: bool,
    state: PacketState,
    unwrap: Unwrap,
    /// Top-level packets begun.
    packets: usize,
    /// Offsets of the first top-level packets, for messages.
    pub offsets: Vec<u64>,
    /// The first unsigned content found.
    pub found: Option<UnsignedContent>,
    /// Why the compressed data could not be read, when it could not.
    pub broken: Option<String>,
}

/// At most this many packet offsets are remembered.
const MAX_OFFSETS: usize = 64;

impl<R: Read> PacketFraming<R> {
    pub fn new(inner: R, dearmored: bool) -> Self {
        PacketFraming {
            inner,
            dearmored,
            pos: 0,
            raw: Vec::new(),
            raw_at: 0,
            out: Vec::new(),
            out_at: 0,
            eof: false,
            state: PacketState::Header(Vec::new()),
            unwrap: Unwrap::No,
            packets: 0,
            offsets: Vec::new(),
            found: None,
            broken: None,
        }
    }

    /// Whether the message was unwrapped from a compressed packet.
    pub fn unwrapped(&self) -> bool {
        !matches!(self.unwrap, Unwrap::No)
    }

    /// Where the `index`-th (from 0) top-level packet the parser saw starts.
    pub fn position(&self, index: usize) -> Option<Position> {
        if self.unwrapped() {
            return Some(Position::Compressed(index + 1));
        }
        let offset = *self.offsets.get(index)?;
        Some(if self.dearmored {
            Position::Dearmored(offset)
        } else {
            Position::Offset(offset)
        })
    }

    fn at(&self, offset: u64) -> Position {
        if self.dearmored {
            Position::Dearmored(offset)
        } else {
            Position::Offset(offset)
        }
    }

    fn unsigned(&mut self, offset: u64, what: &str) {
        if self.found.is_none() {
            self.found = Some(UnsignedContent {
                at: Some(self.at(offset)),
                what: what.into(),
            });
        }
        self.state = PacketState::Rest;
    }

    /// Hands `n` raw bytes on to the parser, unless the message was unwrapped.
    fn pass(&mut self, n: usize) {
        if !self.unwrapped() {
            self.out
                .extend_from_slice(&self.raw[self.raw_at..self.raw_at + n]);
        }
        self.consume(n);
    }

    fn consume(&mut self, n: usize) {
        self.raw_at += n;
        self.pos += n as u64;
    }

    /// One step over the raw bytes at hand; false when nothing could be done.
    fn step(&mut self) -> bool {
        let avail = self.raw.len() - self.raw_at;
        let state = std::mem::replace(&mut self.state, PacketState::Rest);
        match state {
            PacketState::Rest => {
                if avail == 0 {
                    return false;
                }
                self.pass(avail);
                true
            }
            PacketState::Header(mut h) => {
                if avail == 0 {
                    self.state = PacketState::Header(h);
                    return false;
                }
                let start = self.pos - h.len() as u64;
                if h.is_empty() && self.unwrapped() {
                    // The compressed packet that holds the message is over.
                    self.unsigned(
                        start,
                        "data after the compressed packet that holds the message",
                    );
                    return true;
                }
                h.push(self.raw[self.raw_at]);
                self.consume(1);
                match packet_header(&h) {
                    None => self.state = PacketState::Header(h),
                    Some(Err(())) => {
                        if self.packets > 0 {
                            self.unsigned(start, "bytes that are not an OpenPGP packet");
                        }
                        self.out.extend_from_slice(&h);
                    }
                    Some(Ok((tag, length))) => {
                        if self.offsets.len() < MAX_OFFSETS {
                            self.offsets.push(start);
                        }
                        self.packets += 1;
                        if self.packets == 1 && tag == 8 {
                            self.unwrap = Unwrap::Algorithm;
                        } else {
                            self.out.extend_from_slice(&h);
                        }
                        self.state = body_state(length);
                    }
                }
                true
            }
            PacketState::ChunkLength(mut h) => {
                if avail == 0 {
                    self.state = PacketState::ChunkLength(h);
                    return false;
                }
                h.push(self.raw[self.raw_at]);
                self.consume(1);
                match new_length(&h) {
                    None => self.state = PacketState::ChunkLength(h),
                    Some(length) => {
                        if matches!(self.unwrap, Unwrap::No) {
                            self.out.extend_from_slice(&h);
                        }
                        self.state = body_state(length);
                    }
                }
                true
            }
            PacketState::Body { left, partial } => {
                if left == Some(0) {
                    self.state = if partial {
                        PacketState::ChunkLength(Vec::new())
                    } else {
                        PacketState::Header(Vec::new())
                    };
                    return true;
                }
                self.state = PacketState::Body { left, partial };
                let n = match left {
                    Some(l) => avail.min(usize::try_from(l).unwrap_or(usize::MAX)),
                    None => avail,
                };
                let before = self.raw_at;
                let progress = self.body(n);
                let used = (self.raw_at - before) as u64;
                if let PacketState::Body { left: Some(l), .. } = &mut self.state {
                    *l -= used;
                }
                progress
            }
        }
    }

    /// Takes up to `n` bytes of a packet body (`n` is 0 at the end of the input, to
    /// drain a decompressor); false when nothing could be done.
    fn body(&mut self, n: usize) -> bool {
        let input = self.raw_at..self.raw_at + n;
        let mut buf = [0u8; 16 * 1024];
        let (used, made, status) = match &mut self.unwrap {
            Unwrap::No | Unwrap::Stored => {
                self.out.extend_from_slice(&self.raw[input]);
                self.consume(n);
                return n > 0;
            }
            Unwrap::Algorithm => {
                if n == 0 {
                    return false;
                }
                self.unwrap = match self.raw[self.raw_at] {
                    0 => Unwrap::Stored,
                    1 => Unwrap::Inflate(Box::new(flate2::Decompress::new(false))),
                    2 => Unwrap::Inflate(Box::new(flate2::Decompress::new(true))),
                    3 => Unwrap::Bunzip(Box::new(bzip2::Decompress::new(false))),
                    other => {
                        self.broken = Some(format!("unknown compression algorithm {other}"));
                        Unwrap::Broken
                    }
                };
                self.consume(1);
                return true;
            }
            Unwrap::Ended => {
                if n == 0 {
                    return false;
                }
                let at = self.pos;
                self.unsigned(at, "data after the end of the compressed stream");
                return true;
            }
            Unwrap::Broken => {
                self.consume(n);
                return n > 0;
            }
            Unwrap::Inflate(d) => {
                let before = (d.total_in(), d.total_out());
                let ended = d
                    .decompress(&self.raw[input], &mut buf, flate2::FlushDecompress::None)
                    .map(|s| s == flate2::Status::StreamEnd);
                progress(before, (d.total_in(), d.total_out()), ended)
            }
            Unwrap::Bunzip(d) => {
                let before = (d.total_in(), d.total_out());
                let ended = d
                    .decompress(&self.raw[input], &mut buf)
                    .map(|s| s == bzip2::Status::StreamEnd);
                progress(before, (d.total_in(), d.total_out()), ended)
            }
        };
        self.out.extend_from_slice(&buf[..made]);
        self.consume(used);
        match status {
            Ok(true) => self.unwrap = Unwrap::Ended,
            Ok(false) if used == 0 && made == 0 => {
                if n == 0 {
                    return false;
                }
                self.broken = Some("corrupt compressed data".into());
                self.unwrap = Unwrap::Broken;
            }
            Ok(false) => {}
            Err(e) => {
                self.broken = Some(format!("corrupt compressed data: {e}"));
                self.unwrap = Unwrap::Broken;
            }
        }
        true
    }

    fn end_of_input(&mut self) {
        match &self.state {
            PacketState::Header(h) if !h.is_empty() => {
                let start = self.pos - h.len() as u64;
                if self.packets > 0 {
                    self.unsigned(start, "bytes that are not a complete OpenPGP packet");
                }
            }
            PacketState::ChunkLength(_)
            | PacketState::Body {
                left: Some(1..), ..
            } => {
                // The parser sees this in packets that pass through; not inside a
                // compressed packet taken apart here.
                self.broken
                    .get_or_insert_with(|| "the last packet is cut short".into());
            }
            _ => {}
        }
        if matches!(
            self.unwrap,
            Unwrap::Algorithm | Unwrap::Inflate(_) | Unwrap::Bunzip(_)
        ) {
            self.broken.get_or_insert_with(|| {
                "the compressed data ends before its compressed stream".into()
            });
        }
    }
}

fn body_state(length: Length) -> PacketState {
    match length {
        Length::Full(n) => PacketState::Body {
            left: Some(n),
            partial: false,
        },
        Length::Partial(n) => PacketState::Body {
            left: Some(n),
            partial: true,
        },
        Length::Indeterminate => PacketState::Body {
            left: None,
            partial: false,
        },
    }
}

impl<R: Read> Read for PacketFraming<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_at < self.out.len() {
                let n = buf.len().min(self.out.len() - self.out_at);
                buf[..n].copy_from_slice(&self.out[self.out_at..self.out_at + n]);
                self.out_at += n;
                return Ok(n);
            }
            self.out.clear();
            self.out_at = 0;
            if self.raw_at == self.raw.len() && !self.eof {
                self.raw.resize(CHUNK, 0);
                let n = match self.inner.read(&mut self.raw) {
                    Ok(n) => n,
                    Err(e) => {
                        self.raw.clear();
                        self.raw_at = 0;
                        return Err(e);
                    }
                };
                self.raw.truncate(n);
                self.raw_at = 0;
                if n == 0 {
                    self.eof = true;
                }
                continue;
            }
            // Each step is bounded (a header byte, a chunk of body, 16 KiB of
            // decompressed data), so the output stays small whatever the ratio.
            if !self.step() {
                if self.raw_at == self.raw.len() {
                    self.end_of_input();
                    return Ok(0);
                }
                // No progress with input at hand cannot happen; stop rather than spin.
                self.broken
                    .get_or_insert_with(|| "the packet framing stopped".into());
                self.state = PacketState::Rest;
                self.unwrap = Unwrap::Broken;
            }
        }
    }
}

/// What one decompression step did, from the (in, out) byte totals before and after:
/// bytes consumed, bytes made, and whether the stream ended (or why it broke).
fn progress(
    before: (u64, u64),
    after: (u64, u64),
    ended: Result<bool, impl std::fmt::Display>,
) -> (usize, usize, Result<bool, String>) {
    let used = (after.0 - before.0) as usize;
    let made = (after.1 - before.1) as usize;
    (used, made, ended.map_err(|e| e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(layout: Layout, input: &str) -> Option<String> {
        let mut t = TextFraming::new(input.as_bytes(), layout);
        io::copy(&mut t, &mut io::sink()).unwrap();
        t.found.map(|f| f.to_string())
    }

    const SIG: &str =
        "-----BEGIN PGP SIGNATURE-----\n\niHUEARYIAB0WIQ==\n=n60D\n-----END PGP SIGNATURE-----\n";

    fn clear(body: &str) -> String {
        format!("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{body}{SIG}")
    }

    fn check(input: &str, want: Option<&str>) {
        let got = text(Layout::Cleartext, input);
        match want {
            None => assert_eq!(got, None, "{input:?}"),
            Some(w) => {
                let got = got.unwrap_or_default();
                assert!(got.contains(w), "{input:?}: {got:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn cleartext_grammar() {
        check(&clear("a\n- -dash\n"), None);
        check(&format!("{}\n \t\r\n\n", clear("a\n")), None);
        check(
            &format!("x{}", clear("a\n")),
            Some("line 1 (offset 0): bytes before"),
        );
        check(
            &format!("{}x", clear("a\n")),
            Some("line 10 (offset 133): text after"),
        );
        check(
            &format!("{}{SIG}", clear("a\n")),
            Some("a second signature block"),
        );
        check(
            &format!("{}{}", clear("a\n"), clear("b\n")),
            Some("line 10 (offset 133): a second signed message"),
        );
        check(
            &clear("-a\n"),
            Some("line 4 (offset 49): a line of the signed text starts with a dash"),
        );
        check(
            &clear("\u{2014}\u{2014}BEGIN PGP SIGNATURE\n"),
            Some("looks like an armor line"),
        );
        check(&clear("\u{2014} a list item\n"), None);
        // Truncation is the parser's to report, not unsigned content.
        check(&clear("a\n")[..60], None);
        // One edit of a good cleartext file each: (from, to, what the finding says).
        #[rustfmt::skip]
        let edits: [(&str, &str, Option<&str>); 9] = [
            ("\n", "\r\n", None),
            ("Hash: SHA256", "Hash: SHA256,SHA512", None),
            ("\n\niHUE", "\nVersion: GnuPG v1\n\niHUE", None),
            ("Hash: SHA256", "Hash: ROT13", Some("unknown hash algorithm \"ROT13\"")),
            ("Hash: SHA256", "Hash: sHA256", Some("unknown hash algorithm \"sHA256\"")),
            ("Hash: SHA256", "Comment: x", Some("armor header \"Comment: x\"")),
            ("\n\niHUE", "\nHash: SHA1\n\niHUE", Some("armor header \"Hash: SHA1\"")),
            ("=n60D", "=n60D\nAAAA", Some("after the armor checksum")),
            ("iHUEARYIAB0WIQ==", "iHUE: ARY", Some("not base64")),
        ];
        for (from, to, want) in edits {
            check(&clear("a\n").replace(from, to), want);
        }
    }

    #[test]
    fn armored_message_grammar() {
        let msg = "-----BEGIN PGP MESSAGE-----\n\nowGbwMvMwCE=\n=abcd\n-----END PGP MESSAGE-----\n";
        assert_eq!(text(Layout::Armored, msg), None);
        assert_eq!(text(Layout::Armored, &format!("{msg}\n\n")), None);
        let got = text(Layout::Armored, &format!("{msg}{msg}")).unwrap();
        assert!(
            got.contains("line 6 (offset 74): a second OpenPGP message"),
            "{got}"
        );
        let got = text(Layout::Armored, &format!("{msg}x\n")).unwrap();
        assert!(
            got.contains("text after the end of the armored message"),
            "{got}"
        );
        assert_eq!(text(Layout::Binary, &format!("{msg}x\n")), None);
    }

    #[test]
    fn layout_by_first_bytes() {
        let cases: [(&[u8], Layout); 6] = [
            (b"-----BEGIN PGP SIGNED MESSAGE-----\n", Layout::Cleartext),
            (
                b"junk\n-----BEGIN PGP SIGNED MESSAGE-----\n",
                Layout::Cleartext,
            ),
            (b"\n-----BEGIN PGP MESSAGE-----\n", Layout::Armored),
            (b"-----BEGIN PGP SIGNATURE-----\n", Layout::Unknown),
            (b"\xa3\x01", Layout::Binary),
            (b"hello", Layout::Unknown),
        ];
        for (input, want) in cases {
            assert_eq!(Layout::of(input), want, "{}", input.escape_ascii());
        }
    }

    fn packets(input: &[u8]) -> (Vec<u8>, Option<String>, Option<String>) {
        let mut p = PacketFraming::new(input, false);
        let mut out = Vec::new();
        p.read_to_end(&mut out).unwrap();
        (out, p.found.map(|f| f.to_string()), p.broken)
    }

    #[test]
    fn packets_pass_through_and_junk_after_them_is_found() {
        // An old-format literal (tag 11, one-octet length) and a new-format marker.
        let two = b"\xac\x02ab\xca\x03PGP";
        assert_eq!(packets(two), (two.to_vec(), None, None));
        let mut junk = two.to_vec();
        junk.extend_from_slice(b"\nx");
        let (out, found, _) = packets(&junk);
        assert_eq!(out, junk);
        assert_eq!(
            found.unwrap(),
            "unsigned content at offset 9: bytes that are not an OpenPGP packet"
        );
        // A header cut short after the last packet (a new-format five-octet length).
        let mut cut = two.to_vec();
        cut.extend_from_slice(b"\xff\xff\xff\xff");
        let (_, found, _) = packets(&cut);
        assert_eq!(
            found.unwrap(),
            "unsigned content at offset 9: bytes that are not a complete OpenPGP packet"
        );
        // A partial body: a 2-byte chunk (0xe1), then a final 1-byte length.
        let partial = b"\xcb\xe1ab\x01c";
        assert_eq!(packets(partial), (partial.to_vec(), None, None));
    }

    fn compressed(algo: u8, inner: &[u8]) -> Vec<u8> {
        let mut body = match algo {
            1 => {
                let mut e =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut e, inner).unwrap();
                e.finish().unwrap()
            }
            2 => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut e, inner).unwrap();
                e.finish().unwrap()
            }
            3 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
                std::io::Write::write_all(&mut e, inner).unwrap();
                e.finish().unwrap()
            }
            _ => inner.to_vec(),
        };
        // Old format, tag 8, indeterminate length, as GnuPG writes it.
        let mut p = vec![0xa3, algo];
        p.append(&mut body);
        p
    }

    #[test]
    fn a_compressed_packet_around_the_message_is_unwrapped_and_must_end_with_it() {
        let inner = b"\xac\x02ab";
        for algo in [0, 1, 2, 3] {
            let c = compressed(algo, inner);
            assert_eq!(packets(&c), (inner.to_vec(), None, None), "algo {algo}");
            if algo == 0 {
                continue;
            }
            let mut more = c.clone();
            more.extend_from_slice(b"junk");
            let (out, found, _) = packets(&more);
            assert_eq!(out, inner, "algo {algo}");
            assert_eq!(
                found.unwrap(),
                format!(
                    "unsigned content at offset {}: data after the end of the compressed stream",
                    c.len()
                ),
            );
            let (_, found, broken) = packets(&c[..c.len() - 1]);
            assert_eq!(found, None);
            assert!(broken.is_some(), "algo {algo}");
        }
        // A definite-length compressed packet that claims one byte more than the file
        // holds: its stream ended, but the packet is cut short.
        let body = &compressed(1, inner)[1..];
        let mut c = vec![0xc8, body.len() as u8 + 1];
        c.extend_from_slice(body);
        let (out, found, broken) = packets(&c);
        assert_eq!((out, found), (inner.to_vec(), None));
        assert_eq!(broken.as_deref(), Some("the last packet is cut short"));
        // A definite-length compressed packet, then another packet.
        let body = &compressed(1, inner)[1..];
        let mut c = vec![0xc8, body.len() as u8];
        c.extend_from_slice(body);
        c.extend_from_slice(b"\xac\x02ab");
        let (_, found, _) = packets(&c);
        assert_eq!(
            found.unwrap(),
            format!("unsigned content at offset {}: data after the compressed packet that holds the message", body.len() + 2)
        );
    }
}
