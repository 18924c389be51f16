//! `check-config`: load `feeds.toml`, every vendor keyring and pin file, and the
//! escalation program, and report every problem at once. It changes nothing.
//!
//! It demands what the other commands need and no more: a keyring only of a vendor
//! that verifies something (bundles, a CSAF feed, a key URL), and pinned keys graded
//! exactly as `keys check` grades them, under the vendor's `expired_signer`.

use std::time::SystemTime;

use anyhow::{bail, Context as _};
use sequoia_openpgp::policy::StandardPolicy;

use crate::cmd::keys::expired_signer_note;
use crate::cmd::outcome::Outcome;
use crate::cmd::setup::NO_CONFIG;
use crate::config::{Config, ExpiredSigner};
use crate::text::plural;
use crate::verify::keyring::{self, Keyring};
use crate::verify::keys;

pub fn run_check_config(config: Option<&Config>, now: SystemTime) -> anyhow::Result<Outcome> {
    let config = config.context(NO_CONFIG)?;
    let policy = StandardPolicy::new();
    let mut problems: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut cert_count = 0;
    for v in &config.vendors {
        if !v.keyring.exists() {
            // A vendor of plain feeds checks no signature, so it needs no keyring: the
            // same rule `watch` and `keys check` follow.
            let uses = v.signature_uses();
            if !uses.is_empty() {
                problems.push(format!(
                    "vendor {}: keyring folder {} does not exist; it is needed for {}: put the vendor's pinned certificate there",
                    v.name,
                    v.keyring.display(),
                    uses.join(", ")
                ));
            }
        } else {
            match Keyring::load(std::slice::from_ref(&v.keyring)) {
                Ok(k) => {
                    cert_count += k.certs().len();
                    for w in &k.warnings {
                        problems.push(format!("vendor {}: {w}", v.name));
                    }
                    // The pinned keys graded as `keys check` grades them, under the
                    // vendor's own `expired_signer`.
                    for cert in k.certs() {
                        let info = keys::describe(cert, &policy, now);
                        let line = format!(
                            "vendor {}: pinned certificate {}: {}: {}{}",
                            v.name,
                            info.fingerprint,
                            info.health.code(),
                            info.health_detail,
                            expired_signer_note(&info, v.expired_signer)
                        );
                        match info.health.level(v.expired_signer == ExpiredSigner::Reject) {
                            keys::Level::Error => problems.push(line),
                            keys::Level::Warning => warnings.push(line),
                            keys::Level::Ok => {}
                        }
                    }
                }
                Err(e) => problems.push(format!("vendor {}: {e}", v.name)),
            }
            if v.keyring.is_dir() {
                if let Err(e) = keyring::pinned_hashes(&v.keyring, "") {
                    problems.push(format!("vendor {}: {e}", v.name));
                }
            }
        }
    }
    if let Some(script) = &config.alerts.escalation {
        match std::fs::metadata(script) {
            Err(e) => problems.push(format!("alerts.escalation: {}: {e}", script.display())),
            Ok(m) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    if !m.is_file() || m.permissions().mode() & 0o111 == 0 {
                        problems.push(format!(
                            "alerts.escalation: {}: not an executable file (chmod +x it)",
                            script.display()
                        ));
                    }
                }
                #[cfg(not(unix))]
                let _ = m;
            }
        }
    }
    for w in &warnings {
        println!("warning: {w}");
    }
    if problems.is_empty() {
        let feeds: usize = config.vendors.iter().map(|v| v.feeds.len()).sum();
        println!(
            "ok: {}: {} vendor{}, {} feed{}, {} pinned certificate{}",
            config.path.display(),
            config.vendors.len(),
            plural(config.vendors.len() as u64),
            feeds,
            plural(feeds as u64),
            cert_count,
            plural(cert_count as u64)
        );
        Ok(Outcome::Clean)
    } else {
        let n = problems.len();
        bail!(
            "{}\n{}: {n} problem{}",
            problems.join("\n"),
            config.path.display(),
            plural(n as u64)
        )
    }
}
