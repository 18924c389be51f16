//! An `.rpm` judged by what it carries: the OpenPGP signatures in its signature
//! header, the header digests, and the payload digest, all from the one read of the
//! bundle.
//!
//! What each check covers, and so what "verified" means for a package:
//!
//! * Header-only signatures (`RSAHEADER`, also EdDSA; `DSAHEADER`; rpm 6's `OPENPGP`)
//!   cover the main header exactly as stored, magic included. The main header holds
//!   `PAYLOADDIGEST`, so a good header signature plus a matching payload digest covers
//!   every byte from the main header to the end of the file.
//! * Legacy header+payload signatures (`PGP`, `GPG`) cover the main header and the
//!   payload in one digest, hashed as the payload streams. When the header declares no
//!   payload digest, they are the only signatures that count: a header-only signature
//!   is listed as `not-counted`, since it says nothing of the payload.
//! * `SHA256HEADER` (else `SHA1HEADER`) must match the main header, and
//!   `PAYLOADDIGEST` (with `PAYLOADDIGESTALGO`) the payload as stored, compressed:
//!   a changed payload is `digest-mismatch` even when the header signature is good.
//! * The lead, the signature header and its padding are what no signature can cover
//!   (the signatures live there); a pinned SHA-256 still covers the whole file. A
//!   signed package whose payload nothing covers (no `PAYLOADDIGEST` and no legacy
//!   signature: rpm before 4.14) is `unsigned-content`.
//! * `MD5` and rpm 6's `SHA3_256HEADER` are not checked: MD5 proves nothing, and
//!   `SHA256HEADER` covers the same bytes.
//!
//! The framing comes from `package::rpm`; signatures are judged by `judge` exactly as
//! for any other bundle. Nothing here reads the clock or reopens the file.

use std::io::{self, Read};
use std::path::Path;

use openpgp::crypto::hash::Context;
use openpgp::packet::Signature;
use openpgp::types::HashAlgorithm;
use sequoia_openpgp as openpgp;

use crate::package::rpm::{self as format, sigtag, tag, Package, RpmError};
use crate::text::{escape, escape_os, hex};
use crate::verify::judge::{judge_signature, Judge};
use crate::verify::sigfile;
use crate::verify::verdict::{Checked, Findings};

/// Bytes per read of the payload.
const CHUNK: usize = 1 << 20;

/// The signature tags, what each covers, in the order they are reported.
const SIGNATURE_TAGS: [(u32, &str, Covers); 5] = [
    (sigtag::RSAHEADER, "RSAHEADER", Covers::Header),
    (sigtag::DSAHEADER, "DSAHEADER", Covers::Header),
    (sigtag::OPENPGP, "OPENPGP", Covers::Header),
    (sigtag::PGP, "PGP", Covers::HeaderAndPayload),
    (sigtag::GPG, "GPG", Covers::HeaderAndPayload),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Covers {
    Header,
    HeaderAndPayload,
}

impl Covers {
    fn words(self) -> &'static str {
        match self {
            Covers::Header => "the header",
            Covers::HeaderAndPayload => "the header and payload",
        }
    }
}

/// Reads the whole package from `reader` once, to its end, and records every
/// signature and digest check in `acc`. The caller hashes the file for pins through
/// `reader`.
///
/// # Errors
///
/// A failed read. A package that is malformed or truncated is a finding
/// (`malformed-package`), not an error.
pub fn check_rpm(
    mut whole: impl Read,
    bundle: &Path,
    judge: &Judge<'_>,
    acc: &mut Findings,
) -> io::Result<()> {
    let shown = escape_os(bundle.as_os_str());
    let pkg = match format::read_package(&mut whole) {
        Ok(p) => p,
        Err(RpmError::Io(e)) => return Err(e),
        Err(e) => {
            acc.codes.push("malformed-package");
            acc.problems
                .push(format!("{shown}: rpm: {}", escape(&e.to_string())));
            io::copy(&mut whole, &mut io::sink())?;
            return Ok(());
        }
    };
    let header = pkg.header.bytes();
    // Without a payload digest in the header, a header-only signature vouches for
    // nothing of the payload: only header+payload signatures then count, so that a
    // vendor's old header with a swapped payload and anyone's header+payload
    // signature is not "verified" (rpm before 4.14 wrote no payload digest).
    let payload_digest = payload_digest(&pkg, &shown, acc);

    let mut legacy: Vec<(&str, Signature, Option<Context>)> = Vec::new();
    let mut any_signature = false;
    for (t, name, covers) in SIGNATURE_TAGS {
        // A tag that holds no readable signature is malformed-signature, not absent.
        any_signature |= pkg.signature.tags().any(|x| x == t);
        for sig in signatures_in(&pkg, t, name, bundle, acc) {
            let mut ctx = signature_context(&sig);
            if let Some(c) = ctx.as_mut() {
                c.update(header);
            }
            if covers == Covers::HeaderAndPayload {
                legacy.push((name, sig, ctx));
                continue;
            }
            if payload_digest.is_none() {
                acc.checked.push(Checked {
                    what: format!(
                        "{name} signature over {}, not counted: the header declares no payload digest",
                        covers.words()
                    ),
                    outcome: "not-counted",
                });
                continue;
            }
            judge_one(judge, name, covers, &sig, ctx, acc);
        }
    }
    if !any_signature {
        acc.codes.push("no-signature");
        acc.problems.push(format!(
            "{shown}: the rpm signature header holds no OpenPGP signature (RSAHEADER, DSAHEADER, OPENPGP, PGP or GPG)"
        ));
    }
    check_header_digest(&pkg, &shown, acc);

    if any_signature && payload_digest.is_none() && legacy.is_empty() {
        acc.codes.push("unsigned-content");
        acc.problems.push(format!(
            "{shown}: no signature covers the rpm payload: the header has no usable payload digest and no header+payload signature exists"
        ));
    }

    // The payload: streamed once into the payload digest and the legacy signatures'
    // contexts, and (through the caller's reader) into the file's SHA-256.
    let mut payload_ctx = payload_digest.as_ref().map(|(algo, _)| {
        algo.context()
            .expect("payload_digest returns supported algorithms only")
            .for_digest()
    });
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = whole.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if let Some(c) = payload_ctx.as_mut() {
            c.update(&buf[..n]);
        }
        for (_, _, ctx) in legacy.iter_mut() {
            if let Some(c) = ctx.as_mut() {
                c.update(&buf[..n]);
            }
        }
    }
    if let (Some(ctx), Some((algo, expected))) = (payload_ctx, payload_digest) {
        let got = hex(&ctx.into_digest().unwrap_or_default());
        let what = format!("PAYLOADDIGEST ({algo}) of the compressed payload");
        record_digest(acc, &shown, what, &got, &expected);
    }
    for (name, sig, ctx) in legacy {
        judge_one(judge, name, Covers::HeaderAndPayload, &sig, ctx, acc);
    }
    Ok(())
}

/// The OpenPGP signatures under one signature tag: a `BIN` packet, or rpm 6's array of
/// base64 packets. What does not parse is a `malformed-signature` naming the tag.
fn signatures_in(
    pkg: &Package,
    t: u32,
    name: &str,
    bundle: &Path,
    acc: &mut Findings,
) -> Vec<Signature> {
    let blobs: Vec<Vec<u8>> = if t == sigtag::OPENPGP {
        match pkg.signature.strings(t) {
            // Base64 is armor without its lines: parsed by the armor reader.
            Some(list) => list
                .into_iter()
                .map(|b64| {
                    let mut armored = b"-----BEGIN PGP SIGNATURE-----\n\n".to_vec();
                    armored.extend_from_slice(b64);
                    armored.extend_from_slice(b"\n-----END PGP SIGNATURE-----\n");
                    armored
                })
                .collect(),
            None => Vec::new(),
        }
    } else {
        pkg.signature
            .bin(t)
            .map(<[u8]>::to_vec)
            .into_iter()
            .collect()
    };
    let present = pkg.signature.tags().any(|x| x == t);
    if present && blobs.is_empty() {
        acc.malformed(bundle, &format!("rpm {name}: not stored with its type"));
    }
    let mut sigs = Vec::new();
    for blob in blobs {
        match sigfile::parse_detached(&blob) {
            Ok(s) => sigs.extend(s),
            Err(sigfile::Malformed(m)) => acc.malformed(bundle, &format!("rpm {name}: {m}")),
        }
    }
    sigs
}

/// A fresh context for `sig`, salted for v6; `None` for an unsupported algorithm.
fn signature_context(sig: &Signature) -> Option<Context> {
    let mut ctx = sig.hash_algo().context().ok()?.for_signature(sig.version());
    if let Some(salt) = sig.salt() {
        ctx.update(salt);
    }
    Some(ctx)
}

fn judge_one(
    judge: &Judge<'_>,
    name: &str,
    covers: Covers,
    sig: &Signature,
    ctx: Option<Context>,
    acc: &mut Findings,
) {
    let check = judge_signature(judge, sig, &|key| match ctx.clone() {
        Some(ctx) => sig.verify_hash(key, ctx),
        None => Err(openpgp::Error::UnsupportedHashAlgorithm(sig.hash_algo()).into()),
    });
    acc.checked.push(Checked {
        what: format!("{name} signature over {}", covers.words()),
        outcome: check.status.code(),
    });
    acc.signatures.push(check);
}

/// `SHA256HEADER`, else `SHA1HEADER`, against the main header as stored.
fn check_header_digest(pkg: &Package, shown: &str, acc: &mut Findings) {
    let header = pkg.header.bytes();
    let (name, algo) = if pkg.signature.string(sigtag::SHA256HEADER).is_some() {
        ("SHA256HEADER", HashAlgorithm::SHA256)
    } else if pkg.signature.string(sigtag::SHA1HEADER).is_some() {
        ("SHA1HEADER", HashAlgorithm::SHA1)
    } else {
        return;
    };
    let t = if algo == HashAlgorithm::SHA256 {
        sigtag::SHA256HEADER
    } else {
        sigtag::SHA1HEADER
    };
    let expected = String::from_utf8_lossy(pkg.signature.string(t).unwrap_or_default());
    let mut ctx = algo
        .context()
        .expect("SHA-1 and SHA-256 are built in")
        .for_digest();
    ctx.update(header);
    let got = hex(&ctx.into_digest().unwrap_or_default());
    record_digest(acc, shown, format!("{name} of the header"), &got, &expected);
}

/// The payload digest the header declares, when its algorithm is supported. An
/// unsupported one is an `unsupported-hash` finding.
fn payload_digest(
    pkg: &Package,
    shown: &str,
    acc: &mut Findings,
) -> Option<(HashAlgorithm, String)> {
    let expected = pkg.header.string(tag::PAYLOADDIGEST)?;
    let expected = String::from_utf8_lossy(expected).into_owned();
    // rpm's default when the algorithm tag is absent is SHA-256.
    let id = pkg
        .header
        .int32s(tag::PAYLOADDIGESTALGO)
        .and_then(|v| v.first().copied())
        .unwrap_or(8);
    let algo = u8::try_from(id)
        .map(HashAlgorithm::from)
        .unwrap_or(HashAlgorithm::Unknown(0));
    if !algo.is_supported() || matches!(algo, HashAlgorithm::MD5 | HashAlgorithm::SHA1) {
        acc.codes.push("unsupported-hash");
        acc.problems.push(format!(
            "{shown}: the rpm payload digest uses hash algorithm {id}, which vendorguard does not accept"
        ));
        return None;
    }
    Some((algo, expected))
}

fn record_digest(acc: &mut Findings, shown: &str, what: String, got: &str, expected: &str) {
    let matched = got.eq_ignore_ascii_case(expected.trim());
    if !matched {
        acc.codes.push("digest-mismatch");
        acc.problems.push(format!(
            "{shown}: rpm {what} does not match: the package says {}, the bytes hash to {got}",
            escape(expected)
        ));
    }
    acc.checked.push(Checked {
        what,
        outcome: if matched {
            "matched"
        } else {
            "digest-mismatch"
        },
    });
}
