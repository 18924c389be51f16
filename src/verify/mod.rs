//! The verifier: a bundle, a vendor's pinned certificates and pinned hashes in; a
//! [`Report`] with a [`Verdict`] out.
//!
//! A rejected bundle is a value (`Ok(report)` with `Verdict::Rejected`), never an error;
//! `Err` means the bundle could not be checked at all (unreadable bundle or signature
//! file). The policy, applied to every signature by [`judge_signature`]:
//!
//! * Sequoia's standard policy (no SHA-1 data signatures, no weak keys).
//! * The signing key and its binding must be valid at the signature's creation time,
//!   and alive (not expired) then; a hard revocation (compromised, or no reason) counts
//!   at every time, a soft one (superseded, retired) from its own date on.
//! * A signature dated in the future beyond [`CLOCK_SKEW`] is rejected.
//! * A good signature by a key that has expired since is accepted with a warning.
//!
//! A bundle verifies when at least `threshold` *distinct* pinned certificates made a
//! good signature, no signature claiming a pinned certificate is bad, and the SHA-256 of
//! the bundle equals every pin that applies. `now` is an input: nothing here reads the
//! clock.
//!
//! Architecture invariant: the bundle is read once, through one open handle, by
//! `digest::hash_once` (or the signed-message parser for inline bundles); the pin digest
//! and the signature digests come from that single pass.

pub mod armor;
pub mod checksums;
pub mod digest;
pub mod discover;
pub mod framing;
pub mod keyring;
pub mod keys;
pub mod report;
pub mod sigfile;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use openpgp::cert::prelude::*;
use openpgp::crypto::hash::Context;
use openpgp::packet::{Key, Signature};
use openpgp::policy::{HashAlgoSecurity, Policy};
use openpgp::types::{HashAlgorithm, RevocationStatus, SignatureType};
use openpgp::{Fingerprint, KeyHandle};
use sequoia_openpgp as openpgp;

use crate::policy::{
    self, CLOCK_SKEW, EXPIRY_WARNING, EXPIRY_WARNING_DAYS, MAX_MANIFEST, MAX_SIGNATURE_FILE,
};
use crate::text::error_chain;
use digest::Mode;
use discover::Source;
use keyring::Keyring;
use sigfile::Malformed;

/// What the operator gets to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Enough distinct pinned certificates signed, nothing bad, every pin matched.
    Verified,
    /// Tampered, bad or malformed signature, no signature, digest mismatch, expired,
    /// revoked or weak, below threshold.
    Rejected,
    /// No pinned certificate signed, and some signature claims a key that is not pinned.
    UnexpectedSigner,
}

impl Verdict {
    /// Stable code: `verified`, `rejected`, `unexpected-signer`.
    pub fn code(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::Rejected => "rejected",
            Verdict::UnexpectedSigner => "unexpected-signer",
        }
    }
}

/// The outcome for one signature. Every status has a stable kebab-case code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    BadSignature,
    UnpinnedSigner,
    KeyRevoked,
    KeyExpired,
    KeyInvalid,
    KeyNotSigningCapable,
    FutureSignature,
    SignatureExpired,
    WeakHash,
    PolicyRejected,
    UnsupportedHash,
    WrongSignatureType,
    MalformedSignature,
}

impl Status {
    pub fn code(self) -> &'static str {
        match self {
            Status::Good => "good-signature",
            Status::BadSignature => "bad-signature",
            Status::UnpinnedSigner => "unpinned-signer",
            Status::KeyRevoked => "key-revoked",
            Status::KeyExpired => "key-expired",
            Status::KeyInvalid => "key-invalid",
            Status::KeyNotSigningCapable => "key-not-signing-capable",
            Status::FutureSignature => "future-signature",
            Status::SignatureExpired => "signature-expired",
            Status::WeakHash => "weak-hash",
            Status::PolicyRejected => "policy-rejected",
            Status::UnsupportedHash => "unsupported-hash",
            Status::WrongSignatureType => "wrong-signature-type",
            Status::MalformedSignature => "malformed-signature",
        }
    }
}

/// One signature, judged.
#[derive(Debug, Clone)]
pub struct SignatureCheck {
    pub status: Status,
    /// Why, in words, when not good.
    pub detail: Option<String>,
    /// Uppercase hex of the issuer: a fingerprint when the signature names one, else a
    /// 16-digit key ID.
    pub issuer: Option<String>,
    pub issuer_is_fingerprint: bool,
    /// The pinned certificate the issuer belongs to, when there is one.
    pub certificate: Option<Fingerprint>,
    /// The (sub)key that made the signature, when pinned.
    pub signing_key: Option<Fingerprint>,
    pub created: Option<SystemTime>,
    pub hash_algorithm: HashAlgorithm,
    /// Set on good signatures whose key has expired since signing.
    pub key_expired_at: Option<SystemTime>,
    /// Set on good signatures whose key expires within [`EXPIRY_WARNING`].
    pub key_expires_soon: Option<SystemTime>,
    /// Set on good signatures whose certificate was soft-revoked after signing.
    pub revoked_since: bool,
}

/// A SHA-256 the bundle must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Where the pin came from: `--sha256`, a `pinned.sha256` path and line, or the
    /// signed manifest.
    pub source: String,
    /// Lowercase hex.
    pub expected: String,
}

/// A pin, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinCheck {
    pub pin: Pin,
    pub matched: bool,
}

/// A non-fatal finding with a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
}

/// Everything the verifier found.
#[derive(Debug, Clone)]
pub struct Report {
    pub verdict: Verdict,
    /// Stable codes of every reason for the verdict (empty when verified).
    pub codes: Vec<&'static str>,
    pub bundle: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub vendor: Option<String>,
    pub threshold: usize,
    /// `detached`, `manifest`, `inline` or `none`.
    pub source_kind: &'static str,
    /// The signature (or manifest) file used.
    pub source_path: Option<PathBuf>,
    pub signatures: Vec<SignatureCheck>,
    pub pins: Vec<PinCheck>,
    /// Distinct pinned certificates with a good signature.
    pub good_certificates: Vec<Fingerprint>,
    pub warnings: Vec<Warning>,
    /// Problems with the signature source itself (malformed file, manifest errors).
    pub problems: Vec<String>,
}

/// What to verify, and against what.
pub struct Request<'a> {
    pub bundle: &'a Path,
    pub keyring: &'a Keyring,
    pub vendor: Option<&'a str>,
    pub threshold: usize,
    pub pins: Vec<Pin>,
    pub signature: Option<&'a Path>,
    pub policy: &'a dyn Policy,
    pub now: SystemTime,
    /// When set, every byte read from the bundle is also written here, in the same
    /// pass: `unpack` extracts from this private copy, so the bytes written are exactly
    /// the bytes verified.
    pub copy: Option<&'a File>,
}

/// Why a bundle could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{}: cannot read bundle: {source}", crate::text::escape_os(path.as_os_str()))]
    Bundle { path: PathBuf, source: io::Error },
    #[error("{}: is not a regular file", crate::text::escape_os(path.as_os_str()))]
    NotAFile { path: PathBuf },
    #[error("{}: cannot read signature: {source}", crate::text::escape_os(path.as_os_str()))]
    Signature { path: PathBuf, source: io::Error },
    #[error("cannot write the private copy of the bundle: {0}")]
    Copy(io::Error),
}

/// Verifies `req.bundle`, reading it once.
///
/// # Errors
///
/// [`VerifyError`] when the bundle or the signature file cannot be read. Every other
/// outcome, including garbage signatures, is an `Ok(Report)`.
pub fn verify_bundle(req: &Request<'_>) -> Result<Report, VerifyError> {
    let bundle_err = |source| VerifyError::Bundle {
        path: req.bundle.to_path_buf(),
        source,
    };
    let mut file = File::open(req.bundle).map_err(bundle_err)?;
    if !file.metadata().map_err(bundle_err)?.is_file() {
        return Err(VerifyError::NotAFile {
            path: req.bundle.to_path_buf(),
        });
    }
    let mut head = Vec::with_capacity(512);
    (&mut file)
        .take(512)
        .read_to_end(&mut head)
        .map_err(bundle_err)?;
    file.seek(SeekFrom::Start(0)).map_err(bundle_err)?;

    let source = discover::find(req.bundle, req.signature, &head);
    let mut acc = Accumulator::default();
    let mut reader = Tee {
        inner: &file,
        copy: req.copy,
        failed: None,
    };
    let (size, sha256, source_path) = match &source {
        Source::Detached { signature } => {
            let sig_bytes = read_signature_file(signature)?;
            let sigs = sigfile::parse_detached(&sig_bytes);
            let digests = hash_with_signatures(&mut reader, sigs.as_deref().unwrap_or(&[]))
                .map_err(|e| reader.error(req.bundle, e))?;
            match sigs {
                Ok(sigs) => judge_detached(req, &sigs, &digests, &mut acc),
                Err(Malformed(m)) => acc.malformed(signature, &m),
            }
            (digests.size, digests.sha256(), Some(signature.clone()))
        }
        Source::Manifest {
            manifest,
            signature,
        } => {
            let digests = digest::hash_once(&mut reader, &digest::plan([]))
                .map_err(|e| reader.error(req.bundle, e))?;
            check_manifest(req, manifest, signature.as_deref(), &mut acc)?;
            (digests.size, digests.sha256(), Some(manifest.clone()))
        }
        Source::Inline => {
            let mut tee = HashingReader::new(&mut reader);
            let parsed = sigfile::parse_signed_message(&mut tee, 0)
                .map_err(|e| tee.inner.error(req.bundle, e))?;
            match parsed {
                Ok(msg) => {
                    for sig in &msg.signatures {
                        let check = judge_signature(req, sig, |key| sig.verify_document(key));
                        acc.signatures.push(check);
                    }
                    if let Some(u) = &msg.unsigned {
                        acc.unsigned_content(req.bundle, u);
                    }
                }
                Err(Malformed(m)) => acc.malformed(req.bundle, &m),
            }
            io::copy(&mut tee, &mut io::sink()).map_err(|e| tee.inner.error(req.bundle, e))?;
            let (size, sha256) = tee.finish();
            (size, sha256, Some(req.bundle.to_path_buf()))
        }
        Source::None { looked_at, skipped } => {
            let digests = digest::hash_once(&mut reader, &digest::plan([]))
                .map_err(|e| reader.error(req.bundle, e))?;
            let looked: Vec<String> = looked_at
                .iter()
                .map(|p| crate::text::escape_os(p.as_os_str()))
                .collect();
            acc.codes.push("no-signature");
            acc.problems.push(format!(
                "no signature found: looked for {}, a signed SHA256SUMS, and an inline signature",
                looked.join(", ")
            ));
            acc.problems.extend(skipped.iter().map(ToString::to_string));
            if skipped
                .iter()
                .any(|s| matches!(s, discover::Skipped::NotListed { .. }))
            {
                acc.codes.push("not-in-manifest");
            }
            (digests.size, digests.sha256(), None)
        }
    };

    if let Some(e) = reader.failed.take() {
        return Err(VerifyError::Copy(e));
    }
    let sha256 = crate::text::hex(&sha256);
    let mut pins: Vec<PinCheck> = req
        .pins
        .iter()
        .chain(acc.manifest_pins.iter())
        .map(|p| PinCheck {
            matched: p.expected.eq_ignore_ascii_case(&sha256),
            pin: p.clone(),
        })
        .collect();
    pins.dedup_by(|a, b| a.pin == b.pin);

    Ok(decide(
        req,
        source.kind(),
        source_path,
        size,
        sha256,
        pins,
        acc,
    ))
}

/// Collects findings while the bundle is checked.
#[derive(Default)]
struct Accumulator {
    signatures: Vec<SignatureCheck>,
    codes: Vec<&'static str>,
    problems: Vec<String>,
    manifest_pins: Vec<Pin>,
}

impl Accumulator {
    /// Bytes of a signed message that no signature covers: the whole file must be what
    /// the signer signed, so this rejects whatever the signatures say.
    fn unsigned_content(&mut self, path: &Path, found: &crate::verify::framing::UnsignedContent) {
        self.codes.push("unsigned-content");
        self.problems.push(format!(
            "{}: {}",
            crate::text::escape_os(path.as_os_str()),
            crate::text::escape(&found.to_string())
        ));
    }

    fn malformed(&mut self, path: &Path, message: &str) {
        self.codes.push("malformed-signature");
        self.problems.push(format!(
            "{}: {}",
            crate::text::escape_os(path.as_os_str()),
            crate::text::escape(message)
        ));
    }
}

fn read_signature_file(path: &Path) -> Result<Vec<u8>, VerifyError> {
    let err = |source| VerifyError::Signature {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(err)?;
    let mut bytes = Vec::new();
    (&mut f)
        .take(MAX_SIGNATURE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_SIGNATURE_FILE {
        // Too large to be a signature: keep the head so parsing reports what it is.
        bytes.truncate(MAX_SIGNATURE_FILE as usize);
    }
    Ok(bytes)
}

/// The hashing mode a signature needs.
fn mode_for(sig: &Signature) -> Mode {
    Mode {
        algo: sig.hash_algo(),
        salt: sig.salt().map(<[u8]>::to_vec).unwrap_or_default(),
        text: sig.typ() == SignatureType::Text,
    }
}

fn hash_with_signatures(reader: impl Read, sigs: &[Signature]) -> io::Result<digest::Digests> {
    digest::hash_once(reader, &digest::plan(sigs.iter().map(mode_for)))
}

/// Reads the bundle and, when asked, writes each chunk to the private copy before
/// handing it on: the copy holds exactly the bytes that were hashed.
struct Tee<'a> {
    inner: &'a File,
    copy: Option<&'a File>,
    /// A failed write to the copy; reading stops and the error is reported as such.
    failed: Option<io::Error>,
}

impl Tee<'_> {
    /// The error to report for a failed read: the copy's own failure when that was the
    /// cause, else a bundle read error.
    fn error(&mut self, bundle: &Path, e: io::Error) -> VerifyError {
        match self.failed.take() {
            Some(copy) => VerifyError::Copy(copy),
            None => VerifyError::Bundle {
                path: bundle.to_path_buf(),
                source: e,
            },
        }
    }
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Write as _;
        if self.failed.is_some() {
            return Err(io::Error::other("the private copy failed"));
        }
        let n = self.inner.read(buf)?;
        if let Some(mut copy) = self.copy {
            if let Err(e) = copy.write_all(&buf[..n]) {
                let shown = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                return Err(shown);
            }
        }
        Ok(n)
    }
}

fn judge_detached(
    req: &Request<'_>,
    sigs: &[Signature],
    digests: &digest::Digests,
    acc: &mut Accumulator,
) {
    for sig in sigs {
        let ctx: Option<Context> = digests.context(&mode_for(sig));
        let check = judge_signature(req, sig, |key| match ctx.clone() {
            Some(ctx) => sig.verify_hash(key, ctx),
            None => Err(openpgp::Error::UnsupportedHashAlgorithm(sig.hash_algo()).into()),
        });
        acc.signatures.push(check);
    }
}

/// Verifies a signed manifest and turns its line for the bundle into a pin.
fn check_manifest(
    req: &Request<'_>,
    manifest: &Path,
    signature: Option<&Path>,
    acc: &mut Accumulator,
) -> Result<(), VerifyError> {
    let manifest_err = |source| VerifyError::Signature {
        path: manifest.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    File::open(manifest)
        .and_then(|f| f.take(MAX_MANIFEST + 1).read_to_end(&mut bytes))
        .map_err(manifest_err)?;
    if bytes.len() as u64 > MAX_MANIFEST {
        let why = format!(
            "larger than {} MiB; not a checksum manifest",
            policy::mib(MAX_MANIFEST)
        );
        acc.malformed(manifest, &why);
        return Ok(());
    }
    let signed_text: Vec<u8> = match signature {
        Some(sig_path) => {
            let sig_bytes = read_signature_file(sig_path)?;
            match sigfile::parse_detached(&sig_bytes) {
                Ok(sigs) => {
                    let digests = hash_with_signatures_bytes(&bytes, &sigs);
                    judge_detached(req, &sigs, &digests, acc);
                    bytes
                }
                Err(Malformed(m)) => {
                    acc.malformed(sig_path, &m);
                    return Ok(());
                }
            }
        }
        None => match sigfile::parse_signed_message(&bytes[..], MAX_MANIFEST as usize)
            .map_err(manifest_err)?
        {
            Ok(msg) => {
                for sig in &msg.signatures {
                    let check = judge_signature(req, sig, |key| sig.verify_document(key));
                    acc.signatures.push(check);
                }
                if let Some(u) = &msg.unsigned {
                    acc.unsigned_content(manifest, u);
                    return Ok(());
                }
                msg.content
            }
            Err(Malformed(m)) => {
                acc.malformed(manifest, &m);
                return Ok(());
            }
        },
    };

    let name = req
        .bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&signed_text);
    let (entries, _bad) = checksums::parse(&text, 64);
    let lines = checksums::entries_for(&entries, &name);
    let shown = crate::text::escape_os(manifest.as_os_str());
    if lines.is_empty() {
        acc.codes.push("not-in-manifest");
        acc.problems.push(format!(
            "{shown}: the signed manifest does not list {}",
            crate::text::escape(&name)
        ));
        return Ok(());
    }
    let distinct: BTreeSet<&str> = lines.iter().map(|e| e.hex.as_str()).collect();
    if distinct.len() > 1 {
        acc.codes.push("manifest-conflict");
        let where_: Vec<String> = lines.iter().map(|e| format!("line {}", e.line)).collect();
        acc.problems.push(format!(
            "{shown}: lists {} with different hashes on {}",
            crate::text::escape(&name),
            where_.join(", ")
        ));
    }
    for e in lines {
        acc.manifest_pins.push(Pin {
            source: format!("{shown} line {} (signed manifest)", e.line),
            expected: e.hex.clone(),
        });
    }
    Ok(())
}

fn hash_with_signatures_bytes(bytes: &[u8], sigs: &[Signature]) -> digest::Digests {
    // `plan` leaves out unsupported algorithms, the only error.
    digest::hash_bytes(bytes, &digest::plan(sigs.iter().map(mode_for)))
        .expect("hashing bytes in memory")
}

/// Judges one signature against the pinned keyring. `crypto` checks the signature's
/// mathematics against a candidate key; everything else, the policy, lives here.
pub fn judge_signature(
    req: &Request<'_>,
    sig: &Signature,
    crypto: impl Fn(
        &Key<openpgp::packet::key::PublicParts, openpgp::packet::key::UnspecifiedRole>,
    ) -> openpgp::Result<()>,
) -> SignatureCheck {
    let issuers = sig.get_issuers();
    let fpr_issuer = issuers.iter().find_map(|h| match h {
        KeyHandle::Fingerprint(f) => Some(f.to_hex()),
        KeyHandle::KeyID(_) => None,
    });
    let (issuer, issuer_is_fingerprint) = match fpr_issuer {
        Some(f) => (Some(f), true),
        None => (issuers.first().map(|h| h.to_hex()), false),
    };
    let check = SignatureCheck {
        status: Status::MalformedSignature,
        detail: None,
        issuer,
        issuer_is_fingerprint,
        certificate: None,
        signing_key: None,
        created: sig.signature_creation_time(),
        hash_algorithm: sig.hash_algo(),
        key_expired_at: None,
        key_expires_soon: None,
        revoked_since: false,
    };
    let fail = |mut c: SignatureCheck, status: Status, detail: String| {
        c.status = status;
        c.detail = Some(detail);
        c
    };
    if issuers.is_empty() {
        return fail(
            check,
            Status::MalformedSignature,
            "the signature names no issuer key".into(),
        );
    }
    let Some(created) = check.created else {
        return fail(
            check,
            Status::MalformedSignature,
            "the signature has no creation time".into(),
        );
    };

    let candidates: Vec<_> = req
        .keyring
        .certs()
        .iter()
        .flat_map(|c| c.keys().key_handles(issuers.iter().cloned()))
        .collect();
    if candidates.is_empty() {
        let vendor = req
            .vendor
            .map(|v| format!(" for vendor {v:?}"))
            .unwrap_or_default();
        return fail(
            check,
            Status::UnpinnedSigner,
            format!("the issuer key is not pinned{vendor}"),
        );
    }

    // Several candidates only with a key-ID collision or a key in two certificates:
    // the first good one wins, otherwise the last failure is reported.
    let mut last = check.clone();
    for ka in candidates {
        let mut c = check.clone();
        c.certificate = Some(ka.cert().fingerprint());
        c.signing_key = Some(ka.key().fingerprint());
        let judged = judge_with_key(req, sig, created, &ka, &crypto, c);
        if judged.status == Status::Good {
            return judged;
        }
        last = judged;
    }
    last
}

fn judge_with_key(
    req: &Request<'_>,
    sig: &Signature,
    created: SystemTime,
    ka: &openpgp::cert::prelude::ErasedKeyAmalgamation<'_, openpgp::packet::key::PublicParts>,
    crypto: &impl Fn(
        &Key<openpgp::packet::key::PublicParts, openpgp::packet::key::UnspecifiedRole>,
    ) -> openpgp::Result<()>,
    mut c: SignatureCheck,
) -> SignatureCheck {
    let fail = |mut c: SignatureCheck, status: Status, detail: String| {
        c.status = status;
        c.detail = Some(detail);
        c
    };
    let when = crate::text::time(created);
    let vka = match ka.clone().with_policy(req.policy, created) {
        Ok(v) => v,
        Err(e) => {
            let why = error_chain(&*e);
            let hint = if created < ka.key().creation_time() {
                "; the signature is older than the key"
            } else if no_binding_signature(&e) {
                "; the pinned certificate has no self-signature that old (re-exported with only its newest ones?): pin the vendor's full certificate, or ask for a fresh signature"
            } else {
                ""
            };
            return fail(
                c,
                Status::KeyInvalid,
                format!("the signing key was not valid at {when}: {why}{hint}"),
            );
        }
    };
    if let RevocationStatus::Revoked(revs) = vka.valid_cert().revocation_status() {
        return fail(
            c,
            Status::KeyRevoked,
            format!("the certificate is revoked{}", reason(&revs)),
        );
    }
    if let RevocationStatus::Revoked(revs) = vka.revocation_status() {
        return fail(
            c,
            Status::KeyRevoked,
            format!("the signing key is revoked{}", reason(&revs)),
        );
    }
    if let Err(e) = vka.valid_cert().alive() {
        return fail(
            c,
            Status::KeyExpired,
            format!(
                "the certificate was not alive when it signed ({when}): {}",
                error_chain(&*e)
            ),
        );
    }
    if let Err(e) = vka.alive() {
        return fail(
            c,
            Status::KeyExpired,
            format!(
                "the signing key was not alive when it signed ({when}): {}",
                error_chain(&*e)
            ),
        );
    }
    if !vka.for_signing() {
        return fail(
            c,
            Status::KeyNotSigningCapable,
            "the key that signed is not marked for signing".into(),
        );
    }
    if !matches!(sig.typ(), SignatureType::Binary | SignatureType::Text) {
        return fail(
            c,
            Status::WrongSignatureType,
            format!(
                "a {} signature is not a signature over a document",
                sig.typ()
            ),
        );
    }
    if !sig.hash_algo().is_supported() {
        return fail(
            c,
            Status::UnsupportedHash,
            format!("hash algorithm {} is not supported", sig.hash_algo()),
        );
    }
    if created > req.now + CLOCK_SKEW {
        return fail(
            c,
            Status::FutureSignature,
            format!("the signature is dated {when}, in the future"),
        );
    }
    if let Err(e) = sig.signature_alive(req.now, CLOCK_SKEW) {
        return fail(
            c,
            Status::SignatureExpired,
            format!("the signature has expired: {}", error_chain(&*e)),
        );
    }
    if let Err(e) = crypto(vka.key().parts_as_public().role_as_unspecified()) {
        return fail(
            c,
            Status::BadSignature,
            format!(
                "the signature does not match the data: {}",
                error_chain(&*e)
            ),
        );
    }
    if let Err(e) = req
        .policy
        .signature(sig, HashAlgoSecurity::CollisionResistance)
    {
        let weak = matches!(
            sig.hash_algo(),
            HashAlgorithm::SHA1 | HashAlgorithm::MD5 | HashAlgorithm::RipeMD
        );
        let status = if weak {
            Status::WeakHash
        } else {
            Status::PolicyRejected
        };
        return fail(
            c,
            status,
            format!("rejected by policy: {}", error_chain(&*e)),
        );
    }

    c.status = Status::Good;
    note_key_state_now(req, ka, &mut c);
    c
}

/// Warnings about a good signer's key as of `now`: expired since signing, expiring
/// soon, soft-revoked since.
fn note_key_state_now(
    req: &Request<'_>,
    ka: &openpgp::cert::prelude::ErasedKeyAmalgamation<'_, openpgp::packet::key::PublicParts>,
    c: &mut SignatureCheck,
) {
    let Ok(now_ka) = ka.clone().with_policy(req.policy, req.now) else {
        return;
    };
    let cert_exp = now_ka.valid_cert().primary_key().key_expiration_time();
    let key_exp = now_ka.key_expiration_time();
    let expiry = [cert_exp, key_exp].into_iter().flatten().min();
    if let Some(exp) = expiry {
        if exp <= req.now {
            c.key_expired_at = Some(exp);
        } else if exp <= req.now + EXPIRY_WARNING {
            c.key_expires_soon = Some(exp);
        }
    }
    if matches!(
        now_ka.valid_cert().revocation_status(),
        RevocationStatus::Revoked(_)
    ) || matches!(now_ka.revocation_status(), RevocationStatus::Revoked(_))
    {
        c.revoked_since = true;
    }
}

/// Whether Sequoia refused the key because no binding signature existed at the time
/// asked (found anywhere in the error's chain).
fn no_binding_signature(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<openpgp::Error>(),
            Some(openpgp::Error::NoBindingSignature(_))
        )
    })
}

fn reason(revs: &[&Signature]) -> String {
    let Some(r) = revs.first() else {
        return String::new();
    };
    match r.reason_for_revocation() {
        Some((code, msg)) => {
            let msg = String::from_utf8_lossy(msg);
            let hard = if code.revocation_type() == openpgp::types::RevocationType::Hard {
                "hard revocation, invalidates every signature"
            } else {
                "soft revocation, invalidates signatures made after it"
            };
            if msg.trim().is_empty() {
                format!(" (reason: {code}; {hard})")
            } else {
                format!(
                    " (reason: {code}: {:?}; {hard})",
                    crate::text::escape(msg.trim())
                )
            }
        }
        None => " (no reason given: treated as compromised, invalidates every signature)".into(),
    }
}

/// Turns the findings into a verdict.
fn decide(
    req: &Request<'_>,
    source_kind: &'static str,
    source_path: Option<PathBuf>,
    size: u64,
    sha256: String,
    pins: Vec<PinCheck>,
    acc: Accumulator,
) -> Report {
    let mut codes = acc.codes;
    let good: BTreeSet<Fingerprint> = acc
        .signatures
        .iter()
        .filter(|s| s.status == Status::Good)
        .filter_map(|s| s.certificate.clone())
        .collect();
    let pinned_bad: Vec<&SignatureCheck> = acc
        .signatures
        .iter()
        .filter(|s| s.status != Status::Good && s.certificate.is_some())
        .collect();
    let unpinned = acc
        .signatures
        .iter()
        .any(|s| s.status == Status::UnpinnedSigner);

    if pins.iter().any(|p| !p.matched) {
        codes.push("digest-mismatch");
    }
    for s in &pinned_bad {
        codes.push(s.status.code());
    }
    let below = good.len() < req.threshold;
    let verdict = if !codes.is_empty() {
        Verdict::Rejected
    } else if !below {
        Verdict::Verified
    } else if good.is_empty() && unpinned {
        codes.push("unpinned-signer");
        Verdict::UnexpectedSigner
    } else {
        if !good.is_empty() {
            codes.push("below-threshold");
        }
        for s in &acc.signatures {
            if s.status != Status::Good {
                codes.push(s.status.code());
            }
        }
        if codes.is_empty() {
            codes.push("no-signature");
        }
        Verdict::Rejected
    };
    let mut seen = BTreeSet::new();
    codes.retain(|c| seen.insert(*c));

    let mut warnings = Vec::new();
    for s in acc.signatures.iter().filter(|s| s.status == Status::Good) {
        let who = s
            .certificate
            .as_ref()
            .map(|f| f.to_hex())
            .unwrap_or_default();
        if let Some(t) = s.key_expired_at {
            warnings.push(Warning {
                code: "key-expired-since-signing",
                message: format!(
                    "the signing key of {who} expired at {}, after it made this signature; the signature is accepted, but the vendor must publish a renewed key",
                    crate::text::time(t)
                ),
            });
        }
        if let Some(t) = s.key_expires_soon {
            warnings.push(Warning {
                code: "key-expiring",
                message: format!(
                    "the signing key of {who} expires at {}, within {EXPIRY_WARNING_DAYS} days; ask the vendor for the renewed key",
                    crate::text::time(t)
                ),
            });
        }
        if s.revoked_since {
            warnings.push(Warning {
                code: "key-revoked-since-signing",
                message: format!(
                    "{who} was revoked (soft: superseded or retired) after this signature was made; the signature is accepted, later ones will not be"
                ),
            });
        }
    }
    if verdict != Verdict::UnexpectedSigner && unpinned {
        warnings.push(Warning {
            code: "unpinned-signer",
            message: "a key that is not pinned also signed this bundle".into(),
        });
    }

    Report {
        verdict,
        codes,
        bundle: req.bundle.to_path_buf(),
        size,
        sha256,
        vendor: req.vendor.map(str::to_string),
        threshold: req.threshold,
        source_kind,
        source_path,
        signatures: acc.signatures,
        pins,
        good_certificates: good.into_iter().collect(),
        warnings,
        problems: acc.problems,
    }
}

/// Hashes (SHA-256) everything read through it: the file pin of an inline-signed
/// bundle, computed in the same pass as the parser's signature digests.
struct HashingReader<R> {
    inner: R,
    sha256: sha2::Sha256,
    size: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        use sha2::Digest as _;
        HashingReader {
            inner,
            sha256: sha2::Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (u64, [u8; 32]) {
        use sha2::Digest as _;
        (self.size, self.sha256.finalize().into())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.read(buf)?;
        self.sha256.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Verifies `data` (already in memory, such as a CSAF advisory) against a detached
/// signature, with the same policy, threshold and verdict rules as a bundle.
/// `req.bundle` names the data in messages; `req.pins`, `req.signature` and `req.copy`
/// are not used.
pub fn verify_detached_bytes(req: &Request<'_>, data: &[u8], signature: &[u8]) -> Report {
    let mut acc = Accumulator::default();
    let sigs = sigfile::parse_detached(signature);
    let digests = hash_with_signatures_bytes(data, sigs.as_deref().unwrap_or(&[]));
    match sigs {
        Ok(sigs) => judge_detached(req, &sigs, &digests, &mut acc),
        Err(Malformed(m)) => acc.malformed(req.bundle, &m),
    }
    let sha256 = crate::text::hex(&digests.sha256());
    decide(req, "detached", None, digests.size, sha256, Vec::new(), acc)
}
