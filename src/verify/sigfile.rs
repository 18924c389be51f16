//! Reading signatures: detached signature files, and signed (inline or cleartext)
//! messages such as apt `InRelease` files.
//!
//! A signature file that is empty, garbage, truncated, or armored under the wrong label
//! is not an error here but a [`Malformed`] value with a reason, because for the
//! operator it is a rejected bundle, not a tool failure. A signed message is read
//! through `framing`'s checks, and packets that are no part of its one signed message
//! are reported as unsigned content. Judging the signatures found is `judge`'s job.

use std::io::{self, Read};

use openpgp::armor;
use openpgp::packet::{Packet, Signature, Tag};
use openpgp::parse::{PacketParserBuilder, PacketParserResult, Parse};
use sequoia_openpgp as openpgp;

use crate::text::error_chain;
use crate::verify::framing::{Layout, PacketFraming, TextFraming, UnsignedContent};

/// Why a signature file or signed message could not be read as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// Parses a detached signature file: binary packets, or one or more armored
/// `PGP SIGNATURE` blocks (several signers' `.asc` files concatenated).
pub fn parse_detached(bytes: &[u8]) -> Result<Vec<Signature>, Malformed> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Malformed("the signature file is empty".into()));
    }
    if crate::verify::armor::is_armored(bytes) {
        let mut sigs = Vec::new();
        for block in crate::verify::armor::blocks(bytes) {
            if block.label != "PGP SIGNATURE" {
                return Err(Malformed(format!(
                    "armored block labelled {:?}, expected \"PGP SIGNATURE\"",
                    block.label
                )));
            }
            let mut binary = Vec::new();
            armor::Reader::from_bytes(
                block.bytes,
                armor::ReaderMode::Tolerant(Some(armor::Kind::Signature)),
            )
            .read_to_end(&mut binary)
            .map_err(|e| Malformed(format!("bad ASCII armor: {e}")))?;
            sigs.extend(parse_binary_signatures(&binary)?);
        }
        Ok(sigs)
    } else {
        parse_binary_signatures(bytes)
    }
}

fn parse_binary_signatures(bytes: &[u8]) -> Result<Vec<Signature>, Malformed> {
    let mut sigs = Vec::new();
    let mut ppr = PacketParserBuilder::from_bytes(bytes)
        .and_then(|b| b.dearmor(openpgp::parse::Dearmor::Disabled).build())
        .map_err(|e| Malformed(format!("not an OpenPGP signature: {}", error_chain(&*e))))?;
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp
            .next()
            .map_err(|e| Malformed(format!("truncated or corrupt packet: {}", error_chain(&*e))))?;
        match packet {
            Packet::Signature(sig) => sigs.push(sig),
            Packet::Unknown(u) => {
                return Err(Malformed(format!(
                    "a {} packet that does not parse: {}",
                    u.tag(),
                    u.error()
                )))
            }
            other => {
                return Err(Malformed(format!(
                    "expected only signature packets, found a {} packet",
                    other.tag()
                )))
            }
        }
        ppr = next;
    }
    if sigs.is_empty() {
        return Err(Malformed("no signature packets".into()));
    }
    Ok(sigs)
}

/// What parsing a signed message produced.
pub struct SignedMessage {
    /// The signatures, each carrying the digest the parser computed over the signed data.
    pub signatures: Vec<Signature>,
    /// The signed content, kept only up to `keep` bytes (for manifests).
    pub content: Vec<u8>,
    /// Whether the content was longer than `keep`.
    pub content_truncated: bool,
    /// Bytes of the file that no signature covers. When set, the message must be
    /// rejected, whatever its signatures say; they are kept to show who signed.
    pub unsigned: Option<UnsignedContent>,
}

/// How many leading bytes decide what kind of message a file is.
const HEAD: u64 = 512;

/// Parses an inline-signed or cleartext-signed message from `reader`, hashing the signed
/// content as it streams by, and reads `reader` to its end. At most `keep` bytes of
/// content are kept.
///
/// Every byte is checked against the signed-region rule (see `framing`): bytes before
/// the armor, after it other than whitespace, a second message or signature block,
/// packets after the signed message, and data hidden after a compressed stream are
/// reported in [`SignedMessage::unsigned`].
///
/// # Errors
///
/// `Err(io)` when reading fails; `Ok(Err(Malformed))` when the bytes are not a signed
/// message.
pub fn parse_signed_message<R: Read + Send + Sync>(
    mut reader: R,
    keep: usize,
) -> io::Result<Result<SignedMessage, Malformed>> {
    let mut head = Vec::new();
    (&mut reader).take(HEAD).read_to_end(&mut head)?;
    let layout = Layout::of(&head);
    let mut text = TextFraming::new(io::Cursor::new(head).chain(reader), layout);
    let mut out = SignedMessage {
        signatures: Vec::new(),
        content: Vec::new(),
        content_truncated: false,
        unsigned: None,
    };
    let parsed = match layout {
        Layout::Unknown => Err("not a signed OpenPGP message".to_string()),
        Layout::Cleartext => match parse_packets(&mut text, true, keep, &mut out) {
            Ok(Some((_, what))) => {
                out.unsigned = Some(UnsignedContent { at: None, what });
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        },
        Layout::Binary => {
            let framing = PacketFraming::new(&mut text, false);
            framed_packets(framing, keep, &mut out)
        }
        Layout::Armored => {
            let dearmored = armor::Reader::from_reader(
                &mut text,
                armor::ReaderMode::Tolerant(Some(armor::Kind::Message)),
            );
            framed_packets(PacketFraming::new(dearmored, true), keep, &mut out)
        }
    };
    // The rest of the file: the armor's trailing lines, or all of it after a failure.
    let drained = io::copy(&mut text, &mut io::sink());
    if let Some((kind, message)) = text.failed.take() {
        return Err(io::Error::new(kind, message));
    }
    drained?;
    // The earliest layer's finding is the most precise: lines, then packets.
    // A garbled armor line that the parser choked on is corrupt armor, not extra text.
    if let Some(found) = text.found.take() {
        if !(text.found_in_armor && parsed.is_err()) {
            out.unsigned = Some(found);
        }
    }
    if out.unsigned.is_some() {
        return Ok(Ok(out));
    }
    if let Err(e) = parsed {
        return Ok(Err(Malformed(e)));
    }
    if out.signatures.is_empty() {
        return Ok(Err(Malformed("the message carries no signature".into())));
    }
    Ok(Ok(out))
}

/// Parses a binary (or dearmored) message through its packet framing, then reads the
/// framing to its end so that it sees what follows the message.
fn framed_packets<P: Read + Send + Sync>(
    mut framing: PacketFraming<P>,
    keep: usize,
    out: &mut SignedMessage,
) -> Result<(), String> {
    let parsed = parse_packets(&mut framing, false, keep, out);
    if framing.found.is_none() && !matches!(parsed, Ok(Some(_))) {
        // Errors here are the armor's or the framing's, reported through `parsed`
        // or `broken`; the file's own read errors are the caller's to report.
        let _ = io::copy(&mut framing, &mut io::sink());
    }
    if let Some(found) = framing.found.take() {
        out.unsigned = Some(found);
        return Ok(());
    }
    match parsed {
        Ok(Some((index, what))) => {
            out.unsigned = Some(UnsignedContent {
                at: framing.position(index),
                what,
            });
            Ok(())
        }
        Ok(None) => match framing.broken.take() {
            Some(b) => Err(b),
            None => Ok(()),
        },
        Err(e) => Err(match framing.broken.take() {
            Some(b) => format!("{b} ({e})"),
            None => e,
        }),
    }
}

/// Runs Sequoia's parser over `source`, collecting the signatures and up to `keep`
/// bytes of the signed content into `out`, and checks the order of the top-level
/// packets. `Ok(Some((index, what)))` names the first packet that is no part of the
/// one signed message; `Err` is why the bytes are not a signed message.
fn parse_packets<S: Read + Send + Sync>(
    source: S,
    csf: bool,
    keep: usize,
    out: &mut SignedMessage,
) -> Result<Option<(usize, String)>, String> {
    let mut ppr = PacketParserBuilder::from_reader(source)
        .and_then(|b| {
            if csf {
                b.process_csf_message(true).build()
            } else {
                b.dearmor(openpgp::parse::Dearmor::Disabled).build()
            }
        })
        .map_err(|e| format!("not a signed OpenPGP message: {}", error_chain(&*e)))?;
    let mut order = Order {
        csf,
        ..Order::default()
    };
    let mut index = 0;
    loop {
        let mut pp = match ppr {
            PacketParserResult::Some(pp) => pp,
            PacketParserResult::EOF(eof) => {
                if !order.literal {
                    return Err("no signed content in the message".into());
                }
                if let Err(e) = eof.is_message() {
                    return Err(format!("not one signed message: {}", error_chain(&*e)));
                }
                return Ok(None);
            }
        };
        if let Packet::SEIP(_) | Packet::PKESK(_) | Packet::SKESK(_) = pp.packet {
            return Err("the message is encrypted, not signed; vendorguard only verifies".into());
        }
        let tag = pp.packet.tag();
        let signature_like = match &pp.packet {
            Packet::Signature(_) => true,
            Packet::Unknown(u) => u.tag() == Tag::Signature,
            _ => false,
        };
        if let Packet::Unknown(u) = &pp.packet {
            if !signature_like {
                let what = if order.complete {
                    "an unreadable packet after the end of the signed message".to_string()
                } else {
                    return Err(format!(
                        "a {} packet that does not parse: {}",
                        tag,
                        u.error()
                    ));
                };
                return Ok(Some((index, what)));
            }
        }
        if let Err(what) = order.next(tag, signature_like) {
            return Ok(Some((index, what)));
        }
        if let Packet::Literal(_) = pp.packet {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = pp
                    .read(&mut buf)
                    .map_err(|e| format!("corrupt signed content: {e}"))?;
                if n == 0 {
                    break;
                }
                let room = keep.saturating_sub(out.content.len());
                out.content.extend_from_slice(&buf[..n.min(room)]);
                if n > room {
                    out.content_truncated = true;
                }
            }
        }
        // Bytes after the message that are no packet are found by the framing, which
        // knows where they start; an error here is the message's own.
        let (packet, next) = pp
            .next()
            .map_err(|e| format!("truncated or corrupt signed message: {}", error_chain(&*e)))?;
        if let Packet::Signature(sig) = packet {
            out.signatures.push(sig);
        }
        index += 1;
        ppr = next;
    }
}

/// The order of the top-level packets of one signed message: one-pass signatures or
/// prefixed signatures, one literal, the signatures that close the one-pass ones, and
/// nothing after. (A compressed packet around the whole message was taken off by
/// `PacketFraming`; one anywhere else is refused.)
#[derive(Default)]
struct Order {
    /// Cleartext: the parser builds the packets, and puts every signature after the
    /// literal, unreadable ones without a one-pass packet.
    csf: bool,
    open: usize,
    literal: bool,
    complete: bool,
}

impl Order {
    /// Takes the next packet; `Err` says why it is no part of the signed message.
    fn next(&mut self, tag: Tag, signature_like: bool) -> Result<(), String> {
        let name = tag.to_string();
        let name = name.trim_end_matches(" Packet");
        if self.complete && !(self.csf && signature_like) {
            return Err(format!(
                "a {name} packet after the end of the signed message"
            ));
        }
        match tag {
            Tag::OnePassSig if !self.literal => self.open += 1,
            Tag::Literal if !self.literal => {
                self.literal = true;
                self.complete = self.open == 0;
            }
            Tag::Literal => return Err("a second literal data packet".into()),
            _ if signature_like => {
                if self.literal {
                    self.open = self.open.saturating_sub(1);
                    self.complete = self.open == 0;
                }
            }
            Tag::CompressedData => {
                return Err(
                    "compressed data inside the message (one compressed packet may wrap the whole message, nothing else)"
                        .into(),
                )
            }
            _ => return Err(format!("a {name} packet, which a signed message does not carry")),
        }
        Ok(())
    }
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// `-----BEGIN PGP SIGNED MESSAGE-----`.
    Cleartext,
    /// An armored or binary OpenPGP message that may carry signatures.
    Message,
    /// An armored or binary detached signature.
    Signature,
    Other,
}

/// Classifies a file by its first bytes (a few hundred are enough).
pub fn sniff(head: &[u8]) -> Sniff {
    if crate::verify::armor::is_armored(head) {
        let blocks = crate::verify::armor::blocks(head);
        return match blocks.first().map(|b| b.label.as_str()) {
            Some("PGP SIGNED MESSAGE") => Sniff::Cleartext,
            Some("PGP MESSAGE") => Sniff::Message,
            Some("PGP SIGNATURE") => Sniff::Signature,
            _ => Sniff::Other,
        };
    }
    let Some(&first) = head.first() else {
        return Sniff::Other;
    };
    if first & 0x80 == 0 {
        return Sniff::Other;
    }
    let tag = if first & 0x40 != 0 {
        first & 0x3f
    } else {
        (first >> 2) & 0x0f
    };
    match tag {
        2 => Sniff::Signature,
        // One-pass signature, compressed data, literal data.
        4 | 8 | 11 => Sniff::Message,
        _ => Sniff::Other,
    }
}
