//! The policy: one signature judged against the pinned certificates, as of its
//! creation time and as of `now`.
//!
//! * Sequoia's standard policy (no SHA-1 data signatures, no weak keys).
//! * The signing key and its binding must be valid at the signature's creation time,
//!   and alive (not expired) then; a hard revocation (compromised, or no reason) counts
//!   at every time, a soft one (superseded, retired) from its own date on.
//! * A signature dated in the future beyond `policy::CLOCK_SKEW` is rejected.
//! * A good signature by a key that has expired since is accepted with a warning.
//!
//! The checks are the ones Sequoia's stock verifier makes, in its order (see
//! ARCHITECTURE.md for why we do not use it). This file never reads the bundle: the
//! caller's `crypto` closure checks the mathematics against the digest it computed.
//! Counting signatures into a verdict is `verdict`'s job.

use std::time::SystemTime;

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
    pub now: SystemTime,
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
    c
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
        let keyring = Keyring::from_certs(pinned.iter().map(|c| (*c).clone()));
        let policy = StandardPolicy::new();
        let judge = Judge {
            keyring: &keyring,
            vendor: Some("acme"),
            policy: &policy,
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
