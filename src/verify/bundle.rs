//! Reading a bundle once and collecting what its signature source says: the
//! detached signature, the signed manifest, the inline message, or an `.rpm`'s own
//! signature header (`rpm`), judged signature by signature, then handed to
//! `verdict::decide`. A signed apt `Release`/`InRelease` whose signed dates are stale
//! or ahead of `now` is refused after that (`release`).
//!
//! A rejected bundle is a value (`Ok(report)` with `Verdict::Rejected`), never an error;
//! `Err` means the bundle could not be checked at all (unreadable bundle or signature
//! file).
//!
//! Architecture invariant: the bundle is read once, through one open handle, by
//! `digest::hash_once` (or the signed-message parser for inline bundles); the pin digest
//! and the signature digests come from that single pass. Nothing here reopens the
//! bundle by path after discovery, and nothing reads the clock.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use openpgp::crypto::hash::Context;
use openpgp::packet::Signature;
use openpgp::types::SignatureType;
use sequoia_openpgp as openpgp;

use crate::package::deb;
use crate::policy::{self, MAX_MANIFEST, MAX_RELEASE_HEADER, MAX_SIGNATURE_FILE};
use crate::verify::checksums;
use crate::verify::digest::{self, Mode};
use crate::verify::discover::{self, Source};
use crate::verify::judge::{judge_signature, Judge};
use crate::verify::release;
use crate::verify::repository::{self, HeadCapture, Repository};
use crate::verify::rpm;
use crate::verify::sigfile::{self, Malformed};
use crate::verify::verdict::{decide, Findings, Pin, Report, Subject};

/// What to verify, and against what.
pub struct Request<'a> {
    pub bundle: &'a Path,
    /// The pinned keyring, the vendor, the policy and `now` every signature is judged
    /// against.
    pub judge: Judge<'a>,
    /// The vendor's contact, shown in the report.
    pub contact: Option<&'a str>,
    pub threshold: usize,
    pub pins: Vec<Pin>,
    pub signature: Option<&'a Path>,
    /// When set, every byte read from the bundle is also written here, in the same
    /// pass: `unpack` extracts from this private copy, so the bytes written are exactly
    /// the bytes verified.
    pub copy: Option<&'a File>,
    /// When set, the bundle is a `.deb` checked through its apt repository: the
    /// signed release, the index it vouches for, and the package's stanza there.
    pub repository: Option<Repository<'a>>,
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
    #[error("{}: cannot read the index: {source}", crate::text::escape_os(path.as_os_str()))]
    Index { path: PathBuf, source: io::Error },
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

    let source = match &req.repository {
        Some(_) => Source::Repository,
        None => discover::find(req.bundle, req.signature, &head),
    };
    let judge = &req.judge;
    let mut acc = Findings::default();
    let mut reader = Tee {
        inner: &file,
        copy: req.copy,
        failed: None,
    };
    // Signed apt metadata whose `Date` and `Valid-Until` apply (an inline `InRelease`
    // bundle, or the release file a `.deb` is checked through) and the file it came from.
    let mut dated: Option<(PathBuf, Vec<u8>)> = None;
    let (size, sha256, source_path) = match &source {
        Source::Detached { signature } => {
            let sig_bytes = read_signature_file(signature)?;
            let sigs = sigfile::parse_detached(&sig_bytes);
            let digests = hash_with_signatures(&mut reader, sigs.as_deref().unwrap_or(&[]))
                .map_err(|e| reader.error(req.bundle, e))?;
            match sigs {
                Ok(sigs) => judge_detached(judge, &sigs, &digests, &mut acc),
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
            check_manifest(judge, req.bundle, manifest, signature.as_deref(), &mut acc)?;
            (digests.size, digests.sha256(), Some(manifest.clone()))
        }
        Source::Inline => {
            let mut tee = digest::HashingReader::new(&mut reader);
            let parsed = sigfile::parse_signed_message(&mut tee, MAX_RELEASE_HEADER)
                .map_err(|e| tee.inner.error(req.bundle, e))?;
            match parsed {
                Ok(msg) => {
                    judge_message(judge, &msg.signatures, &mut acc);
                    if let Some(u) = &msg.unsigned {
                        acc.unsigned_content(req.bundle, u);
                    }
                    let file_name = req
                        .bundle
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    if release::is_release(&file_name, &msg.content) {
                        dated = Some((req.bundle.to_path_buf(), msg.content));
                    }
                }
                Err(Malformed(m)) => acc.malformed(req.bundle, &m),
            }
            io::copy(&mut tee, &mut io::sink()).map_err(|e| tee.inner.error(req.bundle, e))?;
            let (size, sha256) = tee.finish();
            (size, sha256, Some(req.bundle.to_path_buf()))
        }
        Source::Repository => {
            let repo = req
                .repository
                .as_ref()
                .expect("a repository source has one");
            let mut capture = HeadCapture {
                inner: &mut reader,
                head: Vec::new(),
            };
            let digests = digest::hash_once(&mut capture, &digest::plan([]));
            let head = capture.head;
            let digests = digests.map_err(|e| reader.error(req.bundle, e))?;
            let release = signed_text(judge, repo.release, repo.release_signature, &mut acc)?;
            if let Some(text) = &release {
                dated = Some((repo.release.to_path_buf(), text.clone()));
            }
            let package = repository::Package {
                path: req.bundle,
                size: digests.size,
                head: &head,
            };
            repository::check(repo, release.as_deref(), &package, &mut acc).map_err(|source| {
                VerifyError::Index {
                    path: repo.index.to_path_buf(),
                    source,
                }
            })?;
            (
                digests.size,
                digests.sha256(),
                Some(repo.release.to_path_buf()),
            )
        }
        Source::Embedded { looked_at, skipped } => {
            let found = deb::signature_members(&mut &file).map_err(bundle_err)?;
            match found.origin {
                // Cut short: whatever a signature says, this is not the package.
                _ if found.truncated.is_some() => {
                    let digests = digest::hash_once(&mut reader, &digest::plan([]))
                        .map_err(|e| reader.error(req.bundle, e))?;
                    acc.codes.push("malformed-package");
                    acc.problems.push(format!(
                        "{}: deb: truncated: {}",
                        crate::text::escape_os(req.bundle.as_os_str()),
                        found.truncated.as_deref().unwrap_or_default()
                    ));
                    (digests.size, digests.sha256(), None)
                }
                Some(Ok(sig_bytes)) => {
                    let sigs = sigfile::parse_detached(&sig_bytes);
                    let mut whole = digest::HashingReader::new(&mut reader);
                    let mut signed = deb::SignedMembers::new(&mut whole);
                    let digests = hash_with_signatures(&mut signed, sigs.as_deref().unwrap_or(&[]));
                    let unsigned = std::mem::take(&mut signed.unsigned);
                    let (size, sha256) = whole.finish();
                    let digests = digests.map_err(|e| reader.error(req.bundle, e))?;
                    let origin = req.bundle.join("_gpgorigin");
                    match sigs {
                        Ok(sigs) => judge_detached(judge, &sigs, &digests, &mut acc),
                        Err(Malformed(m)) => acc.malformed(&origin, &m),
                    }
                    for u in unsigned {
                        acc.codes.push("unsigned-content");
                        acc.problems.push(format!(
                            "{}: {}",
                            crate::text::escape_os(req.bundle.as_os_str()),
                            crate::text::escape(&u)
                        ));
                    }
                    (size, sha256, Some(origin))
                }
                Some(Err(why)) => {
                    let digests = digest::hash_once(&mut reader, &digest::plan([]))
                        .map_err(|e| reader.error(req.bundle, e))?;
                    acc.malformed(&req.bundle.join("_gpgorigin"), &why);
                    (digests.size, digests.sha256(), None)
                }
                None if found.builder => {
                    let digests = digest::hash_once(&mut reader, &digest::plan([]))
                        .map_err(|e| reader.error(req.bundle, e))?;
                    acc.codes.push("weak-hash");
                    acc.problems.push(format!(
                        "{}: only dpkg-sig's _gpgbuilder signs it, and that vouches for the members by MD5 and SHA-1 alone, which is not enough; verify it through the vendor's repository (--release, --index) or ask for a debsigs (_gpgorigin) signature",
                        crate::text::escape_os(req.bundle.as_os_str())
                    ));
                    (digests.size, digests.sha256(), None)
                }
                None => {
                    let digests = digest::hash_once(&mut reader, &digest::plan([]))
                        .map_err(|e| reader.error(req.bundle, e))?;
                    no_signature(&mut acc, looked_at, skipped, "a _gpgorigin member");
                    (digests.size, digests.sha256(), None)
                }
            }
        }
        Source::Rpm => {
            let mut tee = digest::HashingReader::new(&mut reader);
            rpm::check_rpm(&mut tee, req.bundle, judge, &mut acc)
                .map_err(|e| tee.inner.error(req.bundle, e))?;
            let (size, sha256) = tee.finish();
            (size, sha256, Some(req.bundle.to_path_buf()))
        }
        Source::None { looked_at, skipped } => {
            let digests = digest::hash_once(&mut reader, &digest::plan([]))
                .map_err(|e| reader.error(req.bundle, e))?;
            no_signature(&mut acc, looked_at, skipped, "an inline signature");
            (digests.size, digests.sha256(), None)
        }
    };

    if let Some(e) = reader.failed.take() {
        return Err(VerifyError::Copy(e));
    }
    let subject = Subject {
        bundle: req.bundle.to_path_buf(),
        size,
        sha256: crate::text::hex(&sha256),
        vendor: judge.vendor.map(str::to_string),
        contact: req.contact.map(str::to_string),
        threshold: req.threshold,
        source_kind: source.kind(),
        source_path,
    };
    let mut report = decide(subject, &req.pins, acc);
    if let Some((path, text)) = &dated {
        if let Some((refusal, message)) = release::check(text, judge.now) {
            let shown = crate::text::escape_os(path.as_os_str());
            report.refuse(refusal, format!("{shown}: {message}"));
        }
    }
    Ok(report)
}

/// Records that nothing signs the bundle, saying where discovery looked (`last`: the
/// place a bundle of this kind may carry its own signature).
fn no_signature(
    acc: &mut Findings,
    looked_at: &[PathBuf],
    skipped: &[discover::Skipped],
    last: &str,
) {
    let looked: Vec<String> = looked_at
        .iter()
        .map(|p| crate::text::escape_os(p.as_os_str()))
        .collect();
    acc.codes.push("no-signature");
    acc.problems.push(format!(
        "no signature found: looked for {}, a signed SHA256SUMS, and {last}",
        looked.join(", ")
    ));
    acc.problems.extend(skipped.iter().map(ToString::to_string));
    if skipped
        .iter()
        .any(|s| matches!(s, discover::Skipped::NotListed { .. }))
    {
        acc.codes.push("not-in-manifest");
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

/// Judges detached signatures against the digests of the one pass.
fn judge_detached(
    judge: &Judge<'_>,
    sigs: &[Signature],
    digests: &digest::Digests,
    acc: &mut Findings,
) {
    for sig in sigs {
        let ctx: Option<Context> = digests.context(&mode_for(sig));
        let check = judge_signature(judge, sig, &|key| match ctx.clone() {
            Some(ctx) => sig.verify_hash(key, ctx),
            None => Err(openpgp::Error::UnsupportedHashAlgorithm(sig.hash_algo()).into()),
        });
        acc.signatures.push(check);
    }
}

/// Judges the signatures of a signed message, each carrying the digest the parser
/// computed over the signed content.
fn judge_message(judge: &Judge<'_>, sigs: &[Signature], acc: &mut Findings) {
    for sig in sigs {
        let check = judge_signature(judge, sig, &|key| sig.verify_document(key));
        acc.signatures.push(check);
    }
}

/// Reads a signed manifest or release file (at most `MAX_MANIFEST` bytes), judges its
/// signatures into `acc`, and returns its signed text; `None` when a problem recorded
/// in `acc` leaves no text to trust (malformed, unsigned content, too large).
fn signed_text(
    judge: &Judge<'_>,
    manifest: &Path,
    signature: Option<&Path>,
    acc: &mut Findings,
) -> Result<Option<Vec<u8>>, VerifyError> {
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
        return Ok(None);
    }
    let signed_text: Vec<u8> = match signature {
        Some(sig_path) => {
            let sig_bytes = read_signature_file(sig_path)?;
            match sigfile::parse_detached(&sig_bytes) {
                Ok(sigs) => {
                    let digests = hash_with_signatures_bytes(&bytes, &sigs);
                    judge_detached(judge, &sigs, &digests, acc);
                    bytes
                }
                Err(Malformed(m)) => {
                    acc.malformed(sig_path, &m);
                    return Ok(None);
                }
            }
        }
        None => match sigfile::parse_signed_message(&bytes[..], MAX_MANIFEST as usize)
            .map_err(manifest_err)?
        {
            Ok(msg) => {
                judge_message(judge, &msg.signatures, acc);
                if let Some(u) = &msg.unsigned {
                    acc.unsigned_content(manifest, u);
                    return Ok(None);
                }
                msg.content
            }
            Err(Malformed(m)) => {
                acc.malformed(manifest, &m);
                return Ok(None);
            }
        },
    };
    Ok(Some(signed_text))
}

/// Verifies a signed manifest and turns its line for the bundle into a pin.
fn check_manifest(
    judge: &Judge<'_>,
    bundle: &Path,
    manifest: &Path,
    signature: Option<&Path>,
    acc: &mut Findings,
) -> Result<(), VerifyError> {
    let Some(signed_text) = signed_text(judge, manifest, signature, acc)? else {
        return Ok(());
    };
    let name = bundle
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

/// Verifies `data` (already in memory, such as a CSAF advisory) against a detached
/// signature, with the same policy, threshold and verdict rules as a bundle (no pins).
/// `name` is used in messages.
pub fn verify_detached_bytes(
    name: &Path,
    data: &[u8],
    signature: &[u8],
    judge: &Judge<'_>,
    threshold: usize,
) -> Report {
    let mut acc = Findings::default();
    let sigs = sigfile::parse_detached(signature);
    let digests = hash_with_signatures_bytes(data, sigs.as_deref().unwrap_or(&[]));
    match sigs {
        Ok(sigs) => judge_detached(judge, &sigs, &digests, &mut acc),
        Err(Malformed(m)) => acc.malformed(name, &m),
    }
    let subject = Subject {
        bundle: name.to_path_buf(),
        size: digests.size,
        sha256: crate::text::hex(&digests.sha256()),
        vendor: judge.vendor.map(str::to_string),
        contact: None,
        threshold,
        source_kind: "detached",
        source_path: None,
    };
    decide(subject, &[], acc)
}
