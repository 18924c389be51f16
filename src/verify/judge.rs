//! The policy: one signature judged against the pinned certificates, as of its
//! creation time and as of `now`.
//!
//! * Sequoia's standard policy (no SHA-1 data signatures, no weak keys).
//! * The signing key and its binding must be valid at the signature's creation time,
//!   and alive (not expired) then; a hard revocation (compromised, or no reason) counts
//!   at every time, a soft one (superseded, retired) from its own date on.
//! * A signature dated in the future beyond `policy::CLOCK_SKEW` is rejected.
//! * A good signature by a key that has expired since is accepted with a warning, or
//!   refused (`key-expired-since-signing`) when the vendor's `expired_signer` says
//!   `reject`; one older than the vendor's `max_signature_age` is refused
//!   (`signature-too-old`). A refused signature does not count toward the threshold.
//!
//! The checks are the ones Sequoia's stock verifier makes, in its order (see
//! ARCHITECTURE.md for why we do not use it). This file never reads the bundle: the
//! caller's `crypto` closure checks the mathematics against the digest it computed.
//! Counting signatures into a verdict is `verdict`'s job.

use std::time::{Duration, SystemTime};

use openpgp::cert::prelude::*;
use openpgp::packet::key::{PublicParts, UnspecifiedRole};
use openpgp::packet::{Key, Signature};
use openpgp::policy::{HashAlgoSecurity, Policy};
use openpgp::types::{HashAlgorithm, RevocationStatus, SignatureType};
use openpgp::KeyHandle;
use sequoia_openpgp as openpgp;

use crate::policy::{CLOCK_SKEW, EXPIRY_WARNING};
use crate::text::error_chain;
use crate::verify::keyring::Keyring;
use crate::verify::verdict::{SignatureCheck, Status};

/// What a signature is judged against: the pinned certificates, Sequoia's policy, and
/// the time of the check.
#[derive(Clone, Copy)]
pub struct Judge<'a> {
    pub keyring: &'a Keyring,
    /// Named in the detail of an unpinned signer.
    pub vendor: Option<&'a str>,
    pub policy: &'a dyn Policy,
    /// The vendor's own rules on good signatures.
    pub signers: SignerPolicy,
    pub now: SystemTime,
}

/// What a vendor accepts of a signature the standard policy finds good: whether one by
/// a key that has expired since still counts, and how old one may be. `verify`,
/// `unpack` and CSAF checks judge with it; `keys check` and `check-config` grade
/// expired pinned keys by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignerPolicy {
    /// Refuse a signature whose key has expired since it was made
    /// (`key-expired-since-signing`), as apt refuses an `EXPKEYSIG` signature; when
    /// false it is accepted with that warning, as GnuPG's `gpgv` does.
    pub reject_expired_signer: bool,
    /// A signature made longer ago than this is refused (`signature-too-old`).
    pub max_signature_age: Option<Duration>,
}

/// What a vendor requires of a signed document: `threshold` distinct pinned
/// certificates whose signatures `signers` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acceptance {
    pub threshold: usize,
    pub signers: SignerPolicy,
}

/// Checks a signature's mathematics against one candidate key.
pub type Crypto<'c> = dyn Fn(&Key<PublicParts, UnspecifiedRole>) -> openpgp::Result<()> + 'c;

type Amalgamation<'a> = ErasedKeyAmalgamation<'a, PublicParts>;

fn fail(mut c: SignatureCheck, status: Status, detail: String) -> SignatureCheck {
    c.status = status;
    c.detail = Some(detail);
    c
}

/// Judges one signature against the pinned keyring. `crypto` checks the signature's
/// mathematics against a candidate key; everything else, the policy, lives here.
pub fn judge_signature(judge: &Judge<'_>, sig: &Signature, crypto: &Crypto<'_>) -> SignatureCheck {
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
        user_id: None,
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

    let candidates: Vec<_> = judge
        .keyring
        .certs()
        .iter()
        .flat_map(|c| c.keys().key_handles(issuers.iter().cloned()))
        .collect();
    if candidates.is_empty() {
        let vendor = judge
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
        c.user_id = primary_user_id(ka.cert(), judge);
        let judged = judge_with_key(judge, sig, created, &ka, crypto, c);
        if judged.status == Status::Good {
            return judged;
        }
        last = judged;
    }
    last
}

fn judge_with_key(
    judge: &Judge<'_>,
    sig: &Signature,
    created: SystemTime,
    ka: &Amalgamation<'_>,
    crypto: &Crypto<'_>,
    mut c: SignatureCheck,
) -> SignatureCheck {
    let when = crate::text::time(created);
    let vka = match ka.clone().with_policy(judge.policy, created) {
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
    if created > judge.now + CLOCK_SKEW {
        return fail(
            c,
            Status::FutureSignature,
            format!("the signature is dated {when}, in the future"),
        );
    }
    if let Err(e) = sig.signature_alive(judge.now, CLOCK_SKEW) {
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
    if let Err(e) = judge
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
    note_key_state_now(judge, ka, &mut c);
    apply_signer_policy(&judge.signers, judge.now, created, c)
}

/// The vendor's rules on a signature that is otherwise good.
fn apply_signer_policy(
    signers: &SignerPolicy,
    now: SystemTime,
    created: SystemTime,
    c: SignatureCheck,
) -> SignatureCheck {
    if let Some(max) = signers.max_signature_age {
        let age = now.duration_since(created).unwrap_or_default();
        if age > max {
            let detail = format!(
                "made {} ago, longer than the vendor's max_signature_age of {}",
                in_days(age),
                in_days(max)
            );
            return fail(c, Status::SignatureTooOld, detail);
        }
    }
    match (signers.reject_expired_signer, c.key_expired_at) {
        (true, Some(t)) => {
            let detail = format!(
                "the signing key expired at {}, after it made this signature, and the vendor's expired_signer is \"reject\"",
                crate::text::time(t)
            );
            fail(c, Status::KeyExpiredSinceSigning, detail)
        }
        _ => c,
    }
}

/// Warnings about a good signer's key as of `now`: expired since signing, expiring
/// soon, soft-revoked since.
fn note_key_state_now(judge: &Judge<'_>, ka: &Amalgamation<'_>, c: &mut SignatureCheck) {
    let Ok(now_ka) = ka.clone().with_policy(judge.policy, judge.now) else {
        return;
    };
    let cert_exp = now_ka.valid_cert().primary_key().key_expiration_time();
    let key_exp = now_ka.key_expiration_time();
    let expiry = [cert_exp, key_exp].into_iter().flatten().min();
    if let Some(exp) = expiry {
        if exp <= judge.now {
            c.key_expired_at = Some(exp);
        } else if exp <= judge.now + EXPIRY_WARNING {
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

/// The certificate's primary user ID now under the policy, else its first one (an
/// expired or damaged certificate still has a name worth showing).
fn primary_user_id(cert: &Cert, judge: &Judge<'_>) -> Option<String> {
    let valid = cert
        .with_policy(judge.policy, judge.now)
        .ok()
        .and_then(|v| v.primary_userid().ok().map(|u| u.userid().clone()));
    let uid = valid.or_else(|| cert.userids().next().map(|u| u.userid().clone()))?;
    Some(String::from_utf8_lossy(uid.value()).into_owned())
}

/// `d` in whole days ("400 days"), or as `1h 5m` when shorter than a day, for a
/// message.
fn in_days(d: Duration) -> String {
    match d.as_secs() / 86400 {
        0 => humantime::format_duration(Duration::from_secs(d.as_secs())).to_string(),
        1 => "1 day".into(),
        n => format!("{n} days"),
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

#[cfg(test)]
mod tests {
    //! The timeline every case is placed on (days before `NOW` unless noted):
    //!
    //! ```text
    //!  -200  signature older than the key
    //!  -100  certificates made (primary key certifies and signs)
    //!   -80  signed while the 30-day certificate was alive
    //!   -70  the 30-day certificate expires
    //!   -60  signed after it expired; revocations "before signing" are dated -60
    //!   -50  most signatures; revocations "after signing" are dated -10
    //!    -5  signed by the certificate that expires in 10 days
    //!    +5m / +4m  signatures dated past / within the clock skew
    //! ```
    use std::time::{Duration, UNIX_EPOCH};

    use openpgp::cert::CertRevocationBuilder;
    use openpgp::packet::signature::SignatureBuilder;
    use openpgp::packet::UserID;
    use openpgp::policy::StandardPolicy;
    use openpgp::types::{KeyFlags, ReasonForRevocation};
    use openpgp::Cert;

    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);
    const DATA: &[u8] = b"the vendor's bundle";

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    fn ago(days: u32) -> SystemTime {
        now() - DAY * days
    }

    /// An Ed25519 certificate made 100 days ago, valid for `validity`.
    fn cert(validity: Option<Duration>) -> Cert {
        CertBuilder::new()
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_creation_time(ago(100))
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .set_validity_period(validity)
            .add_userid("Vendor <release@vendor.example>")
            .generate()
            .expect("generate")
            .0
    }

    fn signer(cert: &Cert) -> openpgp::crypto::KeyPair {
        cert.primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .unwrap()
            .into_keypair()
            .unwrap()
    }

    fn sign(cert: &Cert, data: &[u8], at: SystemTime, hash: HashAlgorithm) -> Signature {
        SignatureBuilder::new(SignatureType::Binary)
            .set_signature_creation_time(at)
            .unwrap()
            .set_hash_algo(hash)
            .sign_message(&mut signer(cert), data)
            .unwrap()
    }

    fn revoked(cert: &Cert, reason: ReasonForRevocation, at: SystemTime) -> Cert {
        let rev = CertRevocationBuilder::new()
            .set_signature_creation_time(at)
            .unwrap()
            .set_reason_for_revocation(reason, b"test")
            .unwrap()
            .build(&mut signer(cert), cert, None)
            .unwrap();
        cert.clone().insert_packets(rev).unwrap().0
    }

    /// `cert` with its user ID bound again at `at` and the original binding dropped:
    /// a certificate re-exported with only its newest self-signature.
    fn rebound(cert: &Cert, at: SystemTime) -> Cert {
        let uid = UserID::from("Vendor <release@vendor.example>");
        let binding = uid
            .bind(
                &mut signer(cert),
                cert,
                SignatureBuilder::new(SignatureType::PositiveCertification)
                    .set_signature_creation_time(at)
                    .unwrap()
                    .set_key_flags(KeyFlags::empty().set_certification().set_signing())
                    .unwrap(),
            )
            .unwrap();
        let primary = cert.primary_key().key().clone().role_into_primary();
        Cert::from_packets(
            vec![openpgp::Packet::from(primary), uid.into(), binding.into()].into_iter(),
        )
        .unwrap()
    }

    /// Judges `sig` over `DATA` against `pinned` at `NOW`; checks the status and that
    /// the detail (when not good) says `why`.
    fn check(
        name: &str,
        pinned: &[&Cert],
        sig: &Signature,
        want: Status,
        why: &str,
    ) -> SignatureCheck {
        check_under(SignerPolicy::default(), name, pinned, sig, want, why)
    }

    /// [`check`] under the vendor's `signers` policy.
    fn check_under(
        signers: SignerPolicy,
        name: &str,
        pinned: &[&Cert],
        sig: &Signature,
        want: Status,
        why: &str,
    ) -> SignatureCheck {
        let keyring = Keyring::from_certs(pinned.iter().map(|c| (*c).clone()));
        let policy = StandardPolicy::new();
        let judge = Judge {
            keyring: &keyring,
            vendor: Some("acme"),
            policy: &policy,
            signers,
            now: now(),
        };
        let c = judge_signature(&judge, sig, &|key| sig.verify_message(key, DATA));
        assert_eq!(c.status, want, "{name}: {:?}", c.detail);
        let detail = c.detail.clone().unwrap_or_default();
        assert!(detail.contains(why), "{name}: {detail:?} lacks {why:?}");
        c
    }

    #[test]
    fn pins_and_mathematics() {
        let pinned = cert(None);
        let stranger = cert(None);
        let sha256 = |c: &Cert, at| sign(c, DATA, at, HashAlgorithm::SHA256);
        check(
            "good",
            &[&pinned],
            &sha256(&pinned, ago(50)),
            Status::Good,
            "",
        );
        check(
            "not pinned",
            &[&pinned],
            &sha256(&stranger, ago(50)),
            Status::UnpinnedSigner,
            "not pinned for vendor \"acme\"",
        );
        check(
            "other data",
            &[&pinned],
            &sign(&pinned, b"tampered", ago(50), HashAlgorithm::SHA256),
            Status::BadSignature,
            "does not match the data",
        );
        check(
            "SHA-1",
            &[&pinned],
            &sign(&pinned, DATA, ago(50), HashAlgorithm::SHA1),
            Status::WeakHash,
            "rejected by policy",
        );
    }

    #[test]
    fn revocations_hard_at_any_time_soft_from_their_date() {
        use ReasonForRevocation::*;
        let c = cert(None);
        let sig = sign(&c, DATA, ago(50), HashAlgorithm::SHA256);
        for (name, reason, at, want, why) in [
            (
                "hard, after signing",
                KeyCompromised,
                ago(10),
                Status::KeyRevoked,
                "hard revocation",
            ),
            (
                "hard, before signing",
                KeyCompromised,
                ago(60),
                Status::KeyRevoked,
                "hard revocation",
            ),
            (
                "unspecified is hard",
                Unspecified,
                ago(10),
                Status::KeyRevoked,
                "hard revocation",
            ),
            (
                "soft, before signing",
                KeySuperseded,
                ago(60),
                Status::KeyRevoked,
                "soft revocation",
            ),
            ("soft, after signing", KeyRetired, ago(10), Status::Good, ""),
        ] {
            let judged = check(name, &[&revoked(&c, reason, at)], &sig, want, why);
            assert_eq!(judged.revoked_since, want == Status::Good, "{name}");
        }
    }

    #[test]
    fn expiry_at_and_since_signing() {
        let month = cert(Some(DAY * 30));
        let sig = |at| sign(&month, DATA, at, HashAlgorithm::SHA256);
        let c = check(
            "alive then, expired since",
            &[&month],
            &sig(ago(80)),
            Status::Good,
            "",
        );
        assert_eq!(c.key_expired_at, Some(ago(70)));
        check(
            "expired when it signed",
            &[&month],
            &sig(ago(60)),
            Status::KeyExpired,
            "not alive",
        );
        check(
            "signed the instant it expired",
            &[&month],
            &sig(ago(70)),
            Status::KeyExpired,
            "not alive",
        );
        let short = cert(Some(DAY * 110));
        let c = check(
            "expiring soon",
            &[&short],
            &sign(&short, DATA, ago(5), HashAlgorithm::SHA256),
            Status::Good,
            "",
        );
        assert_eq!(c.key_expires_soon, Some(ago(100) + DAY * 110));
    }

    #[test]
    fn the_vendor_policy_refuses_old_signatures_and_expired_signers() {
        let month = cert(Some(DAY * 30));
        let since = sign(&month, DATA, ago(80), HashAlgorithm::SHA256);
        let expired = |reject_expired_signer| SignerPolicy {
            reject_expired_signer,
            max_signature_age: None,
        };
        check_under(
            expired(true),
            "expired since, reject",
            &[&month],
            &since,
            Status::KeyExpiredSinceSigning,
            "expired_signer is \"reject\"",
        );
        check_under(
            expired(false),
            "expired since, warn",
            &[&month],
            &since,
            Status::Good,
            "",
        );
        let c = cert(None);
        let old = sign(&c, DATA, ago(50), HashAlgorithm::SHA256);
        let max_age = |days| SignerPolicy {
            reject_expired_signer: false,
            max_signature_age: Some(DAY * days),
        };
        check_under(
            max_age(40),
            "older than max_signature_age",
            &[&c],
            &old,
            Status::SignatureTooOld,
            "made 50 days ago, longer than the vendor's max_signature_age of 40 days",
        );
        check_under(max_age(60), "younger", &[&c], &old, Status::Good, "");
    }

    #[test]
    fn signing_time_outside_the_key_or_the_clock() {
        let c = cert(None);
        let sig = |at| sign(&c, DATA, at, HashAlgorithm::SHA256);
        check(
            "within the skew",
            &[&c],
            &sig(now() + Duration::from_secs(240)),
            Status::Good,
            "",
        );
        check(
            "past the skew",
            &[&c],
            &sig(now() + Duration::from_secs(360)),
            Status::FutureSignature,
            "in the future",
        );
        check(
            "before the key",
            &[&c],
            &sig(ago(200)),
            Status::KeyInvalid,
            "older than the key",
        );
        check(
            "binding newer than the signature",
            &[&rebound(&c, ago(20))],
            &sig(ago(50)),
            Status::KeyInvalid,
            "no self-signature that old",
        );
    }
}
