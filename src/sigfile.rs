//! Reading signatures: detached signature files, and signed (inline or cleartext)
//! messages such as apt `InRelease` files.
//!
//! A signature file that is empty, garbage, truncated, or armored under the wrong label
//! is not an error here but a [`Malformed`] value with a reason, because for the
//! operator it is a rejected bundle, not a tool failure. Judging the signatures found
//! is `verify`'s job.

use std::io::{self, Read};

use openpgp::armor;
use openpgp::packet::{Packet, Signature};
use openpgp::parse::{PacketParserBuilder, PacketParserResult, Parse};
use sequoia_openpgp as openpgp;

use crate::keyring::error_chain;

/// Signature files larger than this are not signature files.
pub const MAX_SIGNATURE_FILE: u64 = 1 << 20;

/// Why a signature file or signed message could not be read as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// Parses a detached signature file: binary packets, or one or more armored
/// `PGP SIGNATURE` blocks (several signers' `.asc` files concatenated).
pub fn parse_detached(bytes: &[u8]) -> Result<Vec<Signature>, Malformed> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Malformed("the signature file is empty".into()));
    }
    if crate::armor::is_armored(bytes) {
        let mut sigs = Vec::new();
        for block in crate::armor::blocks(bytes) {
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
        .map_err(|e| Malformed(format!("not an OpenPGP signature: {}", error_chain(&e))))?;
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp
            .next()
            .map_err(|e| Malformed(format!("truncated or corrupt packet: {}", error_chain(&e))))?;
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
}

/// Parses an inline-signed or cleartext-signed message from `reader`, hashing the signed
/// content as it streams by. At most `keep` bytes of content are kept.
///
/// # Errors
///
/// `Err(io)` when reading fails; `Ok(Err(Malformed))` when the bytes are not a signed
/// message.
pub fn parse_signed_message<R: Read + Send + Sync>(
    reader: R,
    keep: usize,
) -> io::Result<Result<SignedMessage, Malformed>> {
    let mut out = SignedMessage {
        signatures: Vec::new(),
        content: Vec::new(),
        content_truncated: false,
    };
    let mut saw_literal = false;
    let mut ppr = match PacketParserBuilder::from_reader(reader)
        .and_then(|b| b.process_csf_message(true).build())
    {
        Ok(p) => p,
        Err(e) => return malformed_or_io(e, "not a signed OpenPGP message"),
    };
    while let PacketParserResult::Some(mut pp) = ppr {
        if let Packet::Literal(_) = pp.packet {
            saw_literal = true;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match pp.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) => return Ok(Err(Malformed(format!("corrupt signed content: {e}")))),
                };
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
        if let Packet::SEIP(_) | Packet::PKESK(_) | Packet::SKESK(_) = pp.packet {
            return Ok(Err(Malformed(
                "the message is encrypted, not signed; vendorguard only verifies".into(),
            )));
        }
        let (packet, next) = match pp.recurse() {
            Ok(x) => x,
            Err(e) => return malformed_or_io(e, "truncated or corrupt signed message"),
        };
        if let Packet::Signature(sig) = packet {
            out.signatures.push(sig);
        }
        ppr = next;
    }
    if !saw_literal {
        return Ok(Err(Malformed("no signed content in the message".into())));
    }
    if out.signatures.is_empty() {
        return Ok(Err(Malformed("the message carries no signature".into())));
    }
    Ok(Ok(out))
}

fn malformed_or_io<T>(e: anyhow::Error, what: &str) -> io::Result<Result<T, Malformed>> {
    // A read error from the underlying file is a could-not-check, not a bad message.
    if let Some(io) = e.downcast_ref::<io::Error>() {
        if io.kind() != io::ErrorKind::UnexpectedEof && io.kind() != io::ErrorKind::InvalidData {
            return Err(io::Error::new(io.kind(), io.to_string()));
        }
    }
    Ok(Err(Malformed(format!("{what}: {}", error_chain(&e)))))
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
    if crate::armor::is_armored(head) {
        let blocks = crate::armor::blocks(head);
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
