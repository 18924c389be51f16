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
