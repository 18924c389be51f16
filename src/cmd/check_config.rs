//! `check-config`: load `feeds.toml`, every vendor keyring and pin file, and the
//! escalation program, and report every problem at once. It changes nothing.

use anyhow::{bail, Context as _};

use crate::cmd::outcome::Outcome;
use crate::config::Config;
use crate::text::plural;
use crate::verify::keyring::{self, Keyring};

pub fn run_check_config(config: Option<&Config>) -> anyhow::Result<Outcome> {
    let config = config.context("no feeds.toml here: pass --config FILE")?;
    let mut problems: Vec<String> = Vec::new();
    let mut cert_count = 0;
    for v in &config.vendors {
        if !v.keyring.exists() {
            problems.push(format!(
                "vendor {}: keyring folder {} does not exist; put the vendor's pinned certificate there",
                v.name,
                v.keyring.display()
            ));
        } else {
            match Keyring::load(std::slice::from_ref(&v.keyring)) {
                Ok(k) => {
                    cert_count += k.certs().len();
                    for w in k.warnings {
                        problems.push(format!("vendor {}: {w}", v.name));
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
