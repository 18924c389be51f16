//! Describing pinned certificates: `keys list`, `keys show FILE`, `keys check`.
//!
//! A certificate's health is judged as of `now` under the same policy the verifier
//! uses: revoked or expired pinned certificates are findings that fail `keys check`,
//! one expiring within `policy::EXPIRY_WARNING_DAYS` is a warning. Loading is
//! `keyring`'s job.

use std::time::SystemTime;

use openpgp::cert::prelude::*;
use openpgp::policy::Policy;
use openpgp::types::{KeyFlags, RevocationStatus, RevocationType};
use openpgp::Cert;
use sequoia_openpgp as openpgp;
use serde_json::{json, Value};

use crate::policy::{EXPIRY_WARNING, EXPIRY_WARNING_DAYS};
use crate::text::{escape, time};

/// The health of one certificate now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Ok,
    /// Expires within [`EXPIRY_WARNING_DAYS`].
    Expiring,
    /// No valid signing-capable key now.
    NoSigningKey,
    Expired,
    Revoked,
    /// Not valid under the policy at all (weak key, bad self-signatures).
    Invalid,
}

impl Health {
    pub fn code(self) -> &'static str {
        match self {
            Health::Ok => "key-ok",
            Health::Expiring => "key-expiring",
            Health::NoSigningKey => "no-signing-key",
            Health::Expired => "key-expired",
            Health::Revoked => "key-revoked",
            Health::Invalid => "key-invalid",
        }
    }

    /// How `keys check` and `check-config` grade a pinned certificate, under the
    /// vendor's `expired_signer`: revoked and invalid are errors; expired is an error
    /// only when the vendor refuses signatures by expired keys (`reject_expired`),
    /// since otherwise what it signed before it expired still verifies.
    pub fn level(self, reject_expired: bool) -> Level {
        match self {
            Health::Ok => Level::Ok,
            Health::Revoked | Health::Invalid => Level::Error,
            Health::Expired if reject_expired => Level::Error,
            Health::Expiring | Health::NoSigningKey | Health::Expired => Level::Warning,
        }
    }
}

/// How a pinned certificate is graded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warning,
    /// Fails `keys check` (exit 1) and `check-config` (exit 2).
    Error,
}

impl Level {
    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One key (primary or subkey) of a certificate.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub fingerprint: String,
    pub primary: bool,
    pub algorithm: String,
    pub bits: Option<usize>,
    pub flags: Vec<&'static str>,
    pub created: SystemTime,
    pub expires: Option<SystemTime>,
    pub revoked: Option<String>,
    pub valid: bool,
}

/// A certificate described as of `now`.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub fingerprint: String,
    pub health: Health,
    /// The health in words, with the date that matters.
    pub health_detail: String,
    pub user_ids: Vec<String>,
    pub keys: Vec<KeyInfo>,
}

/// Describes `cert` as of `now`.
pub fn describe(cert: &Cert, policy: &dyn Policy, now: SystemTime) -> CertInfo {
    let valid = cert.with_policy(policy, now);
    let user_ids: Vec<String> = cert
        .userids()
        .map(|u| escape(&String::from_utf8_lossy(u.userid().value())))
        .collect();
    let mut keys = Vec::new();
    for ka in cert.keys() {
        let vka = ka.clone().with_policy(policy, now).ok();
        let flags = vka
            .as_ref()
            .and_then(|v| v.key_flags())
            .map(flag_names)
            .unwrap_or_default();
        let expires = vka.as_ref().and_then(|v| v.key_expiration_time());
        let revoked = vka.as_ref().and_then(|v| match v.revocation_status() {
            RevocationStatus::Revoked(revs) => Some(revocation_text(&revs)),
            _ => None,
        });
        keys.push(KeyInfo {
            fingerprint: ka.key().fingerprint().to_hex(),
            primary: ka.primary(),
            algorithm: ka.key().pk_algo().to_string(),
            bits: ka.key().mpis().bits(),
            flags,
            created: ka.key().creation_time(),
            expires,
            revoked,
            valid: vka.is_some(),
        });
    }

    let (health, health_detail) = match &valid {
        Err(e) => (
            Health::Invalid,
            format!(
                "not valid under the policy: {}",
                crate::text::error_chain(&**e)
            ),
        ),
        Ok(vc) => {
            if let RevocationStatus::Revoked(revs) = vc.revocation_status() {
                (
                    Health::Revoked,
                    format!("revoked: {}", revocation_text(&revs)),
                )
            } else if let Err(e) = vc.alive() {
                let when = vc.primary_key().key_expiration_time();
                (
                    Health::Expired,
                    match when {
                        Some(t) => format!("expired at {}", time(t)),
                        None => format!("not alive: {e}"),
                    },
                )
            } else {
                let signing: Vec<_> = vc.keys().for_signing().alive().revoked(false).collect();
                if signing.is_empty() {
                    (
                        Health::NoSigningKey,
                        "no valid signing-capable key: it cannot verify any new signature".into(),
                    )
                } else {
                    // The soonest expiry that matters: the certificate's, or the last
                    // signing key's if every signing key expires.
                    let cert_exp = vc.primary_key().key_expiration_time();
                    let signing_exp = signing
                        .iter()
                        .map(|k| k.key_expiration_time())
                        .try_fold(None::<SystemTime>, |acc, e| {
                            e.map(|e| Some(acc.map_or(e, |a: SystemTime| a.max(e))))
                        })
                        .flatten();
                    let exp = [cert_exp, signing_exp].into_iter().flatten().min();
                    match exp {
                        Some(t) if t <= now + EXPIRY_WARNING => (
                            Health::Expiring,
                            format!("expires at {}, within {EXPIRY_WARNING_DAYS} days: ask the vendor for the renewed certificate", time(t)),
                        ),
                        Some(t) => (Health::Ok, format!("valid until {}", time(t))),
                        None => (Health::Ok, "valid, no expiry".into()),
                    }
                }
            }
        }
    };

    CertInfo {
        fingerprint: cert.fingerprint().to_hex(),
        user_ids,
        keys,
        health,
        health_detail,
    }
}

fn revocation_text(revs: &[&openpgp::packet::Signature]) -> String {
    let Some(r) = revs.first() else {
        return "revoked".into();
    };
    let when = r.signature_creation_time().map(time).unwrap_or_default();
    match r.reason_for_revocation() {
        Some((code, msg)) => {
            let kind = if code.revocation_type() == RevocationType::Hard {
                "hard"
            } else {
                "soft"
            };
            let msg = String::from_utf8_lossy(msg);
            if msg.trim().is_empty() {
                format!("{code} ({kind}) at {when}")
            } else {
                format!("{code} ({kind}) at {when}: {}", escape(msg.trim()))
            }
        }
        None => format!("no reason given (hard) at {when}"),
    }
}

fn flag_names(f: KeyFlags) -> Vec<&'static str> {
    let mut v = Vec::new();
    if f.for_certification() {
        v.push("certify");
    }
    if f.for_signing() {
        v.push("sign");
    }
    if f.for_transport_encryption() || f.for_storage_encryption() {
        v.push("encrypt");
    }
    if f.for_authentication() {
        v.push("authenticate");
    }
    v
}

/// Text rendering of one certificate.
pub fn render_text(info: &CertInfo, origin: Option<&str>) -> String {
    let mut out = String::new();
    out.push_str(&format!("certificate {}\n", info.fingerprint));
    out.push_str(&format!(
        "  read aloud  {}\n",
        crate::text::group4(&info.fingerprint)
    ));
    if let Some(o) = origin {
        out.push_str(&format!("  file        {o}\n"));
    }
    out.push_str(&format!(
        "  status      {}: {}\n",
        info.health.code(),
        info.health_detail
    ));
    for u in &info.user_ids {
        out.push_str(&format!("  user ID     {u}\n"));
    }
    for k in &info.keys {
        out.push_str(&format!(
            "  {}  {}  {}{}  [{}]  created {}  {}{}{}\n",
            if k.primary { "primary" } else { "subkey " },
            k.fingerprint,
            k.algorithm,
            k.bits.map(|b| format!("/{b}")).unwrap_or_default(),
            k.flags.join(","),
            time(k.created),
            k.expires
                .map(|t| format!("expires {}", time(t)))
                .unwrap_or_else(|| "no expiry".into()),
            k.revoked
                .as_ref()
                .map(|r| format!("  REVOKED {r}"))
                .unwrap_or_default(),
            if k.valid {
                ""
            } else {
                "  (not valid under the policy now)"
            },
        ));
    }
    out
}

/// JSON rendering of one certificate.
pub fn render_json(info: &CertInfo, origin: Option<&str>) -> Value {
    json!({
        "fingerprint": info.fingerprint,
        "file": origin,
        "status": info.health.code(),
        "detail": info.health_detail,
        "user_ids": info.user_ids,
        "keys": info.keys.iter().map(|k| json!({
            "fingerprint": k.fingerprint,
            "primary": k.primary,
            "algorithm": k.algorithm,
            "bits": k.bits,
            "flags": k.flags,
            "created": time(k.created),
            "expires": k.expires.map(time),
            "revoked": k.revoked,
            "valid": k.valid,
        })).collect::<Vec<_>>(),
    })
}
