//! `diff` and `preflight`: each bundle opened, hashed and summarized in one walk, the
//! comparison or the host check printed; and [`Host`], the view of this machine that
//! preflight checks against (`--root`, `--hosts` or the system resolver, and whether
//! the user can `sudo -n`). `unpack` uses the same view for its `preflight:` lines.
//!
//! `VENDORGUARD_CAN_SUDO=yes|no` overrides the privilege probe (for tests, and for
//! operators preparing a run as another user); otherwise root can, and anyone else can
//! when `sudo -n true` succeeds (no sudo installed: cannot).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use sha2::{Digest as _, Sha256};

use crate::archive::diff::{self, Side};
use crate::archive::inspect::{Finding, ReadLimits};
use crate::archive::preflight::{self, HostView};
use crate::archive::signals::Signals;
use crate::archive::summary::{self, Summary};
use crate::archive::walk::WalkError;
use crate::cli::{DiffArgs, PreflightArgs, ReadLimitArgs};
use crate::cmd::outcome::Outcome;
use crate::policy::MAX_MANIFEST;
use crate::text::escape_os;

/// How long the system resolver may take for one name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens and summarizes one bundle; its escaped name and, for `diff`, its SHA-256
/// (with every file's hash; `preflight` needs neither).
fn read_bundle(
    path: &Path,
    ReadLimitArgs {
        max_size,
        max_ratio,
    }: ReadLimitArgs,
    diff: bool,
) -> anyhow::Result<(String, String, Summary)> {
    let shown = escape_os(path.as_os_str());
    let mut file = File::open(path).with_context(|| format!("{shown}: cannot read bundle"))?;
    let mut sha256 = String::new();
    if diff {
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)
            .with_context(|| format!("{shown}: cannot read bundle"))?;
        sha256 = format!("{:x}", hasher.finalize());
    }
    let archive_size = file
        .metadata()
        .with_context(|| format!("{shown}: cannot read bundle"))?
        .len();
    let limits = ReadLimits {
        max_size,
        max_ratio,
        archive_size,
    };
    let summary = match summary::summarize(&mut file, limits, diff) {
        Ok(s) => s,
        Err(WalkError::Io(e)) => {
            return Err(anyhow::Error::new(e).context(format!("{shown}: cannot read bundle")))
        }
        Err(e) => bail!("{shown}: cannot read the archive: {e}"),
    };
    for note in &summary.notes {
        eprintln!("vendorguard: note: {shown}: {note}");
    }
    Ok((shown, sha256, summary))
}

pub fn run_diff(args: &DiffArgs) -> anyhow::Result<Outcome> {
    let (old_path, old_sha, old) = read_bundle(&args.old, args.limits, true)?;
    let (new_path, new_sha, new) = read_bundle(&args.new, args.limits, true)?;
    let changes = diff::compare(&old, &new);
    let (old_side, new_side) = (
        Side {
            path: &old_path,
            sha256: &old_sha,
        },
        Side {
            path: &new_path,
            sha256: &new_sha,
        },
    );
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(
            stdout,
            "{}",
            diff::render_json(&old_side, &new_side, &changes)
        )?;
    } else {
        write!(
            stdout,
            "{}",
            diff::render_text(&old_side, &new_side, &changes)
        )?;
    }
    Ok(Outcome::Clean)
}

pub fn run_preflight(args: &PreflightArgs) -> anyhow::Result<Outcome> {
    let host = Host::new(&args.root, args.hosts.as_deref(), true)?;
    let (shown, _, summary) = read_bundle(&args.bundle, args.limits, false)?;
    let result = preflight::check(&summary, &host);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(stdout, "{}", preflight::render_json(&result))?;
    } else {
        write!(stdout, "{}", preflight::render_text(&shown, &result))?;
    }
    Ok(if result.blocking().next().is_some() {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

/// `unpack`'s preflight, from what its inspector collected while the extractor wrote
/// (no second walk), with host names checked only against `hosts`.
///
/// # Errors
///
/// The hosts file cannot be read, or `VENDORGUARD_CAN_SUDO` is invalid.
pub fn unpack_preflight(
    findings: Vec<Finding>,
    signals: Signals,
    root: &Path,
    hosts: Option<&Path>,
) -> anyhow::Result<preflight::Preflight> {
    let host = Host::new(root, hosts, false)?;
    let summary = Summary::from_inspection(findings, signals, Vec::new());
    Ok(preflight::check(&summary, &host))
}

/// This machine as preflight sees it.
pub struct Host {
    root: PathBuf,
    /// Names from `--hosts`; `None` means the system resolver, or no check at all.
    names: Option<BTreeSet<String>>,
    dns: bool,
    can_sudo: bool,
}

impl Host {
    /// The view for `root`, resolving from `hosts` when given, else with the system
    /// resolver when `dns`, else taking every name as resolving.
    ///
    /// # Errors
    ///
    /// The hosts file cannot be read, or `VENDORGUARD_CAN_SUDO` is neither `yes` nor
    /// `no`.
    pub fn new(root: &Path, hosts: Option<&Path>, dns: bool) -> anyhow::Result<Host> {
        let names = hosts.map(read_hosts).transpose()?;
        Ok(Host {
            root: root.to_path_buf(),
            names,
            dns,
            can_sudo: can_sudo()?,
        })
    }
}

impl HostView for Host {
    fn unit_installed(&self, unit: &str) -> bool {
        [
            "etc/systemd/system",
            "lib/systemd/system",
            "usr/lib/systemd/system",
        ]
        .iter()
        .any(|dir| self.root.join(dir).join(unit).symlink_metadata().is_ok())
    }

    fn resolves(&self, host: &str) -> bool {
        match &self.names {
            Some(names) => names.contains(&host.to_ascii_lowercase()),
            None => !self.dns || resolve(host),
        }
    }

    fn can_sudo(&self) -> bool {
        self.can_sudo
    }
}

/// The names of a hosts-format file: `ADDRESS NAME [ALIAS...]`, `#` comments.
fn read_hosts(path: &Path) -> anyhow::Result<BTreeSet<String>> {
    let shown = escape_os(path.as_os_str());
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(MAX_MANIFEST).read_to_string(&mut text))
        .with_context(|| format!("{shown}: cannot read the hosts file"))?;
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next().is_some() {
            names.extend(words.map(str::to_ascii_lowercase));
        }
    }
    Ok(names)
}

/// The system resolver, given [`RESOLVE_TIMEOUT`]; a name still pending then counts
/// as unresolvable (its thread finishes on its own).
fn resolve(host: &str) -> bool {
    use std::net::ToSocketAddrs as _;
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_string();
    std::thread::spawn(move || {
        let ok = (name.as_str(), 0)
            .to_socket_addrs()
            .is_ok_and(|mut a| a.next().is_some());
        let _ = tx.send(ok);
    });
    rx.recv_timeout(RESOLVE_TIMEOUT).unwrap_or(false)
}

fn can_sudo() -> anyhow::Result<bool> {
    match std::env::var("VENDORGUARD_CAN_SUDO") {
        Ok(v) if v == "yes" => return Ok(true),
        Ok(v) if v == "no" => return Ok(false),
        Ok(v) => bail!(
            "VENDORGUARD_CAN_SUDO is {:?}: expected yes or no",
            crate::text::escape(&v)
        ),
        Err(_) => {}
    }
    if rustix::process::geteuid().is_root() {
        return Ok(true);
    }
    Ok(std::process::Command::new("sudo")
        .args(["-n", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success()))
}
