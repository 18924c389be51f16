//! The verdict: every signature judged and every pin checked, turned into one
//! [`Verdict`] with the stable codes of its reasons, and the warnings an operator must
//! see even when the bundle verifies.
//!
//! [`decide`] is the one place the rules of the contract meet: at least `threshold`
//! *distinct* pinned certificates made a good signature; no signature claiming a pinned
//! certificate is bad; the bundle's SHA-256 equals every pin. It reads nothing and
//! judges no signature itself (`judge` does); it only counts and names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use openpgp::types::HashAlgorithm;
use openpgp::Fingerprint;
use sequoia_openpgp as openpgp;

use crate::policy::EXPIRY_WARNING_DAYS;
use crate::verify::framing::UnsignedContent;

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
    /// Good, but older than the vendor's `max_signature_age`.
    SignatureTooOld,
    /// Good, but its key has expired since and the vendor's `expired_signer` is
    /// `reject`.
    KeyExpiredSinceSigning,
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
            Status::SignatureTooOld => "signature-too-old",
            Status::KeyExpiredSinceSigning => "key-expired-since-signing",
        }
    }

    /// A genuine signature the vendor's policy does not accept: it does not count
    /// toward the threshold, but it does not reject the others either.
    pub fn is_refused_by_vendor_policy(self) -> bool {
        matches!(
            self,
            Status::SignatureTooOld | Status::KeyExpiredSinceSigning
        )
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
    /// That certificate's primary user ID, as the certificate says it (unescaped), so
    /// that signers are told apart by name as well as fingerprint.
    pub user_id: Option<String>,
    /// The (sub)key that made the signature, when pinned.
    pub signing_key: Option<Fingerprint>,
    pub created: Option<SystemTime>,
    pub hash_algorithm: HashAlgorithm,
    /// Set on good signatures whose key has expired since signing.
    pub key_expired_at: Option<SystemTime>,
    /// Set on good signatures whose key expires within `policy::EXPIRY_WARNING`.
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

/// What was verified: the bundle as read, and what it was checked against.
#[derive(Debug, Clone)]
pub struct Subject {
    pub bundle: PathBuf,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    /// `detached`, `manifest`, `inline`, `rpm` or `none`.
    pub source_kind: &'static str,
    /// The signature (or manifest) file used.
    pub source_path: Option<PathBuf>,
    pub vendor: Option<String>,
    /// Distinct pinned certificates that must sign.
    pub threshold: usize,
    /// The vendor's `contact` from feeds.toml: whom to call about a bad bundle.
    pub contact: Option<String>,
}

/// Everything the verifier found.
#[derive(Debug, Clone)]
pub struct Report {
    pub verdict: Verdict,
    /// Stable codes of every reason for the verdict (empty when verified).
    pub codes: Vec<&'static str>,
    pub signatures: Vec<SignatureCheck>,
    /// What was verified.
    pub subject: Subject,
    pub pins: Vec<PinCheck>,
    /// Distinct pinned certificates with a good signature.
    pub good_certificates: Vec<Fingerprint>,
    pub warnings: Vec<Warning>,
    /// Problems with the signature source itself (malformed file, manifest errors).
    pub problems: Vec<String>,
    /// A package's own checks, in the order made.
    pub checked: Vec<Checked>,
}

/// A refusal of a bundle whose signatures are fine but whose content is stale: an
/// older release than the one installed, a version number reused for other bytes, or
/// signed apt metadata past its `Valid-Until` or dated in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Rollback,
    VersionReused,
    ExpiredMetadata,
    FutureMetadata,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Rollback => "rollback",
            Refusal::VersionReused => "version-reused",
            Refusal::ExpiredMetadata => "expired-metadata",
            Refusal::FutureMetadata => "future-metadata",
        }
    }
}

impl Report {
    /// Rejects a bundle that verified for `refusal`, with `message` as its problem line.
    /// A bundle already rejected or signed by an unexpected key keeps its verdict and
    /// gains the code.
    pub fn refuse(&mut self, refusal: Refusal, message: String) {
        if self.verdict == Verdict::Verified {
            self.verdict = Verdict::Rejected;
        }
        if !self.codes.contains(&refusal.code()) {
            self.codes.push(refusal.code());
        }
        self.problems.push(message);
    }

    /// Keeps the verdict and records `refusal` as a warning: what the operator let
    /// through (`--allow-downgrade`).
    pub fn allow(&mut self, refusal: Refusal, message: String) {
        self.warnings.push(Warning {
            code: refusal.code(),
            message,
        });
    }
}

/// What checking the signature source found.
#[derive(Debug, Default)]
pub struct Findings {
    pub signatures: Vec<SignatureCheck>,
    /// Codes of problems with the source itself (`malformed-signature`,
    /// `malformed-package`, `digest-mismatch` of a package's own digests,
    /// `unsigned-content`, `not-in-manifest`, `manifest-conflict`, `no-signature`).
    pub codes: Vec<&'static str>,
    pub problems: Vec<String>,
    /// The signed manifest's lines for the bundle.
    pub manifest_pins: Vec<Pin>,
    /// What a package's own checks covered (an `.rpm`'s signature tags and digests).
    pub checked: Vec<Checked>,
}

/// One check a package format makes of itself, for the report: what was checked
/// (`SHA256HEADER of the header`) and its outcome code (`matched`,
/// `digest-mismatch`, or the signature's status code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub what: String,
    pub outcome: &'static str,
}

impl Findings {
    /// Bytes of a signed message that no signature covers: the whole file must be what
    /// the signer signed, so this rejects whatever the signatures say.
    pub fn unsigned_content(&mut self, path: &Path, found: &UnsignedContent) {
        self.codes.push("unsigned-content");
        self.problems.push(format!(
            "{}: {}",
            crate::text::escape_os(path.as_os_str()),
            crate::text::escape(&found.to_string())
        ));
    }

    /// Records a signature file or message that could not be read as one.
    pub fn malformed(&mut self, path: &Path, message: &str) {
        self.codes.push("malformed-signature");
        self.problems.push(format!(
            "{}: {}",
            crate::text::escape_os(path.as_os_str()),
            crate::text::escape(message)
        ));
    }
}

/// Turns the findings into a verdict. `pins` are the caller's (`--sha256`,
/// `pinned.sha256`); a signed manifest's line comes in the findings.
pub fn decide(subject: Subject, pins: &[Pin], acc: Findings) -> Report {
    let mut pins: Vec<PinCheck> = pins
        .iter()
        .chain(acc.manifest_pins.iter())
        .map(|p| PinCheck {
            matched: p.expected.eq_ignore_ascii_case(&subject.sha256),
            pin: p.clone(),
        })
        .collect();
    pins.dedup_by(|a, b| a.pin == b.pin);
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
        .filter(|s| {
            s.status != Status::Good
                && s.certificate.is_some()
                && !s.status.is_refused_by_vendor_policy()
        })
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
    let below = good.len() < subject.threshold;
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
        // A co-signer that is not pinned is a warning, not a reason.
        for s in &acc.signatures {
            if !matches!(s.status, Status::Good | Status::UnpinnedSigner) {
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
    let mut warn = |code, message| warnings.push(Warning { code, message });
    for s in acc.signatures.iter().filter(|s| s.status == Status::Good) {
        let who = s
            .certificate
            .as_ref()
            .map(|f| f.to_hex())
            .unwrap_or_default();
        if let Some(at) = s.key_expired_at.map(crate::text::time) {
            warn("key-expired-since-signing", format!("the signing key of {who} expired at {at}, after it made this signature; the signature is accepted, but the vendor must publish a renewed key"));
        }
        if let Some(at) = s.key_expires_soon.map(crate::text::time) {
            warn("key-expiring", format!("the signing key of {who} expires at {at}, within {EXPIRY_WARNING_DAYS} days; ask the vendor for the renewed key"));
        }
        if s.revoked_since {
            warn("key-revoked-since-signing", format!("{who} was revoked (soft: superseded or retired) after this signature was made; the signature is accepted, later ones will not be"));
        }
    }
    if verdict == Verdict::Verified {
        for s in acc
            .signatures
            .iter()
            .filter(|s| s.status.is_refused_by_vendor_policy())
        {
            let who = s
                .certificate
                .as_ref()
                .map(|f| f.to_hex())
                .unwrap_or_default();
            let why = s.detail.as_deref().unwrap_or_default();
            warn(
                s.status.code(),
                format!("the signature of {who} was not counted: {why}"),
            );
        }
    }
    if verdict != Verdict::UnexpectedSigner && unpinned {
        warn(
            "unpinned-signer",
            "a key that is not pinned also signed this bundle".into(),
        );
    }

    Report {
        verdict,
        codes,
        subject,
        signatures: acc.signatures,
        pins,
        good_certificates: good.into_iter().collect(),
        warnings,
        problems: acc.problems,
        checked: acc.checked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0af8fef8b939640ec81af2ca28559945ba410cb5350b3a1af176a606a9690e75";
    const OTHER: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// A signature by pinned certificate `cert` (1, 2, ...) or, with 0, by a key that is
    /// not pinned.
    fn sig(status: Status, cert: u8) -> SignatureCheck {
        SignatureCheck {
            status,
            detail: None,
            issuer: Some(format!("{cert:040X}")),
            issuer_is_fingerprint: true,
            certificate: (cert > 0).then(|| format!("{cert:040X}").parse().unwrap()),
            signing_key: None,
            created: None,
            hash_algorithm: HashAlgorithm::SHA256,
            key_expired_at: None,
            key_expires_soon: None,
            revoked_since: false,
            user_id: None,
        }
    }

    fn good(cert: u8) -> SignatureCheck {
        sig(Status::Good, cert)
    }

    fn pin(expected: &str) -> Pin {
        Pin {
            source: format!("test {expected}"),
            expected: expected.into(),
        }
    }

    /// Decides `signatures` and `pins` at `threshold` and compares the verdict, the codes
    /// and the warning codes.
    fn check(
        threshold: usize,
        signatures: Vec<SignatureCheck>,
        pins: Vec<Pin>,
        want: (Verdict, &[&str], &[&str]),
    ) {
        let subject = Subject {
            bundle: PathBuf::from("b.zip"),
            size: 1,
            sha256: SHA.into(),
            vendor: Some("acme".into()),
            contact: None,
            threshold,
            source_kind: "detached",
            source_path: None,
        };
        let shown: Vec<_> = signatures.iter().map(|s| s.status.code()).collect();
        let findings = Findings {
            signatures,
            ..Findings::default()
        };
        let r = decide(subject, &pins, findings);
        let warnings: Vec<&str> = r.warnings.iter().map(|w| w.code).collect();
        assert_eq!(
            (r.verdict, r.codes.as_slice(), warnings.as_slice()),
            want,
            "threshold {threshold}, signatures {shown:?}"
        );
    }

    #[test]
    fn threshold_counts_distinct_pinned_certificates() {
        use Verdict::*;
        check(1, vec![good(1)], vec![], (Verified, &[], &[]));
        check(
            2,
            vec![good(1)],
            vec![],
            (Rejected, &["below-threshold"], &[]),
        );
        check(
            2,
            vec![good(1), good(1)],
            vec![],
            (Rejected, &["below-threshold"], &[]),
        );
        check(2, vec![good(1), good(2)], vec![], (Verified, &[], &[]));
        check(1, vec![], vec![], (Rejected, &["no-signature"], &[]));
    }

    #[test]
    fn every_pin_must_match() {
        use Verdict::*;
        check(1, vec![good(1)], vec![pin(SHA)], (Verified, &[], &[]));
        check(
            1,
            vec![good(1)],
            vec![pin(SHA), pin(OTHER)],
            (Rejected, &["digest-mismatch"], &[]),
        );
        // The bytes are wrong whoever signed them.
        check(
            1,
            vec![sig(Status::UnpinnedSigner, 0)],
            vec![pin(OTHER)],
            (Rejected, &["digest-mismatch"], &["unpinned-signer"]),
        );
    }

    #[test]
    fn a_bad_pinned_signature_rejects_even_beside_good_ones() {
        use Verdict::*;
        check(
            1,
            vec![good(1), sig(Status::BadSignature, 2)],
            vec![],
            (Rejected, &["bad-signature"], &[]),
        );
        check(
            1,
            vec![sig(Status::KeyRevoked, 1)],
            vec![],
            (Rejected, &["key-revoked"], &[]),
        );
    }

    #[test]
    fn unpinned_signers() {
        use Verdict::*;
        let unpinned = || sig(Status::UnpinnedSigner, 0);
        check(
            1,
            vec![unpinned()],
            vec![],
            (UnexpectedSigner, &["unpinned-signer"], &[]),
        );
        // One pinned good signature plus an unpinned one verifies, and says so.
        check(
            1,
            vec![good(1), unpinned()],
            vec![],
            (Verified, &[], &["unpinned-signer"]),
        );
        check(
            2,
            vec![good(1), unpinned()],
            vec![],
            (Rejected, &["below-threshold"], &["unpinned-signer"]),
        );
    }

    #[test]
    fn a_signature_the_vendor_policy_refuses_does_not_count() {
        use Verdict::*;
        let old = |n| sig(Status::SignatureTooOld, n);
        check(
            1,
            vec![old(1)],
            vec![],
            (Rejected, &["signature-too-old"], &[]),
        );
        check(
            1,
            vec![good(1), old(2)],
            vec![],
            (Verified, &[], &["signature-too-old"]),
        );
        check(
            2,
            vec![good(1), sig(Status::KeyExpiredSinceSigning, 2)],
            vec![],
            (
                Rejected,
                &["below-threshold", "key-expired-since-signing"],
                &[],
            ),
        );
    }

    #[test]
    fn key_state_now_is_a_warning_on_good_signatures() {
        use Verdict::*;
        let t = SystemTime::UNIX_EPOCH;
        let expired = SignatureCheck {
            key_expired_at: Some(t),
            ..good(1)
        };
        let expiring = SignatureCheck {
            key_expires_soon: Some(t),
            ..good(1)
        };
        let revoked = SignatureCheck {
            revoked_since: true,
            ..good(1)
        };
        check(
            1,
            vec![expired],
            vec![],
            (Verified, &[], &["key-expired-since-signing"]),
        );
        check(
            1,
            vec![expiring],
            vec![],
            (Verified, &[], &["key-expiring"]),
        );
        check(
            1,
            vec![revoked],
            vec![],
            (Verified, &[], &["key-revoked-since-signing"]),
        );
    }
}
