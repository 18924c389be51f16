//! Watching a vendor's published key (`key_url`) against the pinned certificates.
//!
//! A new primary key or a new signing subkey that is not pinned is `key-changed`:
//! medium severity when the pinned certificate vouches for it (a subkey bound by the
//! pinned primary, or a new primary certified by a pinned key: a planned rotation),
//! high when nothing pinned vouches for it. A revocation of a pinned key is
//! `key-revoked`. A pinned key expiring within `policy::EXPIRY_WARNING_DAYS` (and
//! again within `policy::EXPIRY_URGENT_DAYS`) is `key-expiring`, once per key, expiry
//! and threshold: the event id makes repeats no-ops. Fetching is `fetch`'s job,
//! storing the store's.

use std::time::SystemTime;

use openpgp::cert::prelude::*;
use openpgp::policy::StandardPolicy;
use openpgp::types::RevocationStatus;
use openpgp::Cert;
use sequoia_openpgp as openpgp;

use crate::alert::event::{key_expiring_identity, Event, Kind, Severity};
use crate::policy::{self, EXPIRY_URGENT_DAYS, EXPIRY_WARNING_DAYS};
use crate::text::{group4, time};
use crate::verify::keyring::{parse_certs, Keyring};
use crate::watch::source::PollError;

/// Days before expiry at which a pinned key is reported, most urgent first.
const THRESHOLDS: [u64; 2] = [EXPIRY_URGENT_DAYS, EXPIRY_WARNING_DAYS];

/// Compares the certificates published at `url` with the pinned keyring.
///
/// # Errors
///
/// `key-malformed` when the body holds no certificate.
pub fn compare(
    vendor: &str,
    url: &str,
    body: &[u8],
    pinned: &Keyring,
    now: SystemTime,
) -> Result<Vec<Event>, PollError> {
    let (published, problems) = parse_certs(body);
    if published.is_empty() {
        return Err(PollError::new(
            "key-malformed",
            format!(
                "{url} holds no OpenPGP certificate ({})",
                problems.first().map(String::as_str).unwrap_or("empty")
            ),
        ));
    }
    let policy = StandardPolicy::new();
    let mut events = Vec::new();
    for cert in &published {
        let fpr = cert.fingerprint().to_hex();
        match pinned
            .certs()
            .iter()
            .find(|c| c.fingerprint() == cert.fingerprint())
        {
            None => {
                let vouched = certified_by_pinned(cert, pinned);
                let (severity, how) = match &vouched {
                    Some(by) => (
                        Severity::Medium,
                        format!("certified by pinned key {by}: looks like a planned rotation"),
                    ),
                    None => (Severity::High, "no pinned key vouches for it".to_string()),
                };
                events.push(
                    Event::new(
                        Kind::KeyChanged,
                        vendor,
                        &format!("primary {fpr}"),
                        severity,
                        format!(
                            "{vendor} publishes a new key {} that is not pinned ({how})",
                            group4(&fpr)
                        ),
                        url,
                        now,
                    )
                    .with("fingerprint", fpr.clone())
                    .with("change", "new-primary-key"),
                );
            }
            Some(pinned_cert) => {
                let merged = pinned_cert
                    .clone()
                    .merge_public(cert.clone())
                    .unwrap_or_else(|_| cert.clone());
                events.extend(changes_of_pinned(
                    vendor,
                    url,
                    pinned_cert,
                    &merged,
                    &policy,
                    now,
                ));
            }
        }
    }
    Ok(events)
}

/// The pinned certificate whose key certified one of `cert`'s user IDs, if any.
pub fn certified_by_pinned(cert: &Cert, pinned: &Keyring) -> Option<String> {
    for ua in cert.userids() {
        for sig in ua.certifications() {
            for issuer in sig.get_issuers() {
                for pc in pinned.certs() {
                    for ka in pc.keys().key_handle(issuer.clone()) {
                        if sig
                            .verify_userid_binding(ka.key(), cert.primary_key().key(), ua.userid())
                            .is_ok()
                        {
                            return Some(pc.fingerprint().to_hex());
                        }
                    }
                }
            }
        }
    }
    None
}

fn changes_of_pinned(
    vendor: &str,
    url: &str,
    pinned: &Cert,
    merged: &Cert,
    policy: &StandardPolicy,
    now: SystemTime,
) -> Vec<Event> {
    let mut events = Vec::new();
    let fpr = merged.fingerprint().to_hex();
    let Ok(vc) = merged.with_policy(policy, now) else {
        return events;
    };
    if let RevocationStatus::Revoked(revs) = vc.revocation_status() {
        let when = revs
            .first()
            .and_then(|r| r.signature_creation_time())
            .map(time)
            .unwrap_or_default();
        let reason = revs
            .first()
            .and_then(|r| r.reason_for_revocation())
            .map(|(c, _)| c.to_string())
            .unwrap_or_else(|| "no reason given".into());
        events.push(
            Event::new(
                Kind::KeyRevoked,
                vendor,
                &format!("{fpr} revoked {when}"),
                Severity::Critical,
                format!(
                    "{vendor} revoked its pinned key {} ({reason})",
                    group4(&fpr)
                ),
                url,
                now,
            )
            .with("fingerprint", fpr.clone())
            .with("reason", reason),
        );
        return events;
    }
    for ka in vc.keys().subkeys() {
        let sfpr = ka.key().fingerprint().to_hex();
        if let RevocationStatus::Revoked(_) = ka.revocation_status() {
            let was_valid = pinned
                .with_policy(policy, now)
                .ok()
                .and_then(|p| {
                    p.keys()
                        .subkeys()
                        .find(|k| k.key().fingerprint() == ka.key().fingerprint())
                        .map(|k| !matches!(k.revocation_status(), RevocationStatus::Revoked(_)))
                })
                .unwrap_or(false);
            if was_valid {
                events.push(
                    Event::new(
                        Kind::KeyRevoked,
                        vendor,
                        &format!("{sfpr} revoked"),
                        Severity::High,
                        format!(
                            "{vendor} revoked signing subkey {} of pinned key {}",
                            group4(&sfpr),
                            group4(&fpr)
                        ),
                        url,
                        now,
                    )
                    .with("fingerprint", sfpr.clone()),
                );
            }
            continue;
        }
        let is_new = !pinned
            .keys()
            .subkeys()
            .any(|k| k.key().fingerprint() == ka.key().fingerprint());
        if is_new && ka.for_signing() && ka.alive().is_ok() {
            events.push(
                Event::new(
                    Kind::KeyChanged,
                    vendor,
                    &format!("subkey {sfpr}"),
                    Severity::Medium,
                    format!("{vendor} added signing subkey {} to pinned key {} (bound by the pinned key: a planned change)", group4(&sfpr), group4(&fpr)),
                    url,
                    now,
                )
                .with("fingerprint", sfpr.clone())
                .with("certificate", fpr.clone())
                .with("change", "new-signing-subkey"),
            );
        }
    }
    if let Some(exp) = vc.primary_key().key_expiration_time() {
        if exp > now {
            let left = exp.duration_since(now).unwrap_or_default();
            if let Some(days) = THRESHOLDS.into_iter().find(|d| left <= policy::days(*d)) {
                events.push(
                    Event::new(
                        Kind::KeyExpiring,
                        vendor,
                        &key_expiring_identity(&fpr, exp, days),
                        if days <= EXPIRY_URGENT_DAYS {
                            Severity::High
                        } else {
                            Severity::Medium
                        },
                        format!(
                            "{vendor}'s pinned key {} expires at {} (within {days} days)",
                            group4(&fpr),
                            time(exp)
                        ),
                        url,
                        now,
                    )
                    .with("fingerprint", fpr.clone())
                    .with("expires", time(exp)),
                );
            }
        }
    }
    events
}
