//! The commands: turning parsed flags into validated settings, calling the capability
//! modules, and printing their results.
//!
//! Each command returns an [`Outcome`]; `main.rs` maps it to an exit code. Errors
//! returned from here mean "could not check" (exit 2). This file reads the clock once
//! per command and passes `now` down; nothing below it reads time.

pub mod watch;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context as _};
use sequoia_openpgp::policy::StandardPolicy;

use crate::cli::{
    AlertCommand, CheckArgs, Cli, Command, InspectArgs, KeysCommand, PinArgs, UnpackArgs,
    VerifyArgs,
};
use crate::config::{self, Config};
use crate::text::escape_os;
use crate::verify::keyring::{self, Keyring};
use crate::verify::{self, Pin, Verdict};
use crate::verify::{checksums, keys, report};

/// How a command ended, short of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Verified, or nothing to report.
    Clean,
    /// Rejected, or findings that fail a check.
    Findings,
    /// A signature by a key that is not pinned, and no pinned one.
    UnexpectedSigner,
    /// Another run holds the lock; nothing was done.
    Busy,
}

/// Runs the command in `cli`.
///
/// # Errors
///
/// Anything that means the command could not do its job: bad configuration, unreadable
/// bundle or keyring, bad usage.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let now = SystemTime::now();
    let quiet = cli.quiet;
    let config = load_config(cli.config.as_deref())?;
    match cli.command {
        Command::Verify(args) => run_verify(config.as_ref(), &args, now),
        Command::Unpack(args) => run_unpack(config.as_ref(), &args, now),
        Command::Inspect(args) => run_inspect(&args),
        Command::Watch(args) => {
            crate::cmd::watch::run_watch(config.as_ref(), args.once, args.json, quiet)
        }
        Command::Status { json } => crate::cmd::watch::run_status(config.as_ref(), json),
        Command::Alert {
            command: AlertCommand::Test { json },
        } => crate::cmd::watch::run_alert_test(config.as_ref(), json),
        Command::Pin(args) => run_pin(config.as_ref(), &args),
        Command::Keys { command } => run_keys(config.as_ref(), command, now),
        Command::CheckConfig => run_check_config(config.as_ref()),
    }
}

/// The configuration: `--config FILE` (which must load), else `./feeds.toml` when it
/// exists, else none.
fn load_config(explicit: Option<&Path>) -> anyhow::Result<Option<Config>> {
    match explicit {
        Some(p) => Ok(Some(Config::load(p)?)),
        None => {
            let p = Path::new("feeds.toml");
            if p.is_file() {
                Ok(Some(Config::load(p)?))
            } else {
                Ok(None)
            }
        }
    }
}

/// The vendor settings a run uses, config or not.
struct VendorChoice {
    name: String,
    keyring_dir: PathBuf,
    signatures: usize,
    contact: Option<String>,
}

fn choose_vendor(
    config: Option<&Config>,
    explicit: Option<&str>,
    bundle: &Path,
) -> anyhow::Result<Option<VendorChoice>> {
    let file_name = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let from_config = |v: &config::Vendor| VendorChoice {
        name: v.name.clone(),
        keyring_dir: v.keyring.clone(),
        signatures: v.signatures,
        contact: v.contact.clone(),
    };
    match (explicit, config) {
        (Some(name), Some(c)) => match c.vendor(name) {
            Some(v) => Ok(Some(from_config(v))),
            None => bail!(
                "vendor {:?} is not in {}; known vendors: {}",
                name,
                c.path.display(),
                c.vendors
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        (Some(name), None) => Ok(Some(VendorChoice {
            name: name.to_string(),
            keyring_dir: config::default_keyring_dir(Path::new("."), name),
            signatures: config::DEFAULT_SIGNATURES,
            contact: None,
        })),
        (None, Some(c)) => {
            let matches = c.vendors_for_bundle(&file_name);
            match matches.as_slice() {
                [] => Ok(None),
                [v] => Ok(Some(from_config(v))),
                many => bail!(
                    "{}: the bundles patterns of several vendors match ({}); pass --vendor",
                    escape_os(bundle.as_os_str()),
                    many.iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        (None, None) => Ok(None),
    }
}

fn run_verify(
    config: Option<&Config>,
    args: &VerifyArgs,
    now: SystemTime,
) -> anyhow::Result<Outcome> {
    let result = verify_command(config, &args.bundle, &args.check, now, None);
    match result {
        Ok(report) => {
            crate::cmd::watch::raise_verify_events(config, &report, args.check.no_alert);
            let mut stdout = std::io::stdout().lock();
            if args.json {
                writeln!(stdout, "{}", report::render_json(&report))?;
            } else {
                write!(stdout, "{}", report::render_text(&report))?;
            }
            Ok(match report.verdict {
                Verdict::Verified => Outcome::Clean,
                Verdict::Rejected => Outcome::Findings,
                Verdict::UnexpectedSigner => Outcome::UnexpectedSigner,
            })
        }
        Err(e) => {
            if args.json {
                let msg = format!("{e:#}");
                println!("{}", report::render_error_json(&msg));
            }
            Err(e)
        }
    }
}

fn verify_command(
    config: Option<&Config>,
    bundle: &Path,
    args: &CheckArgs,
    now: SystemTime,
    copy: Option<&std::fs::File>,
) -> anyhow::Result<verify::Report> {
    let vendor = choose_vendor(config, args.vendor.as_deref(), bundle)?;
    let keyring_paths: Vec<PathBuf> = if !args.keyring.is_empty() {
        args.keyring.clone()
    } else if let Some(v) = &vendor {
        if !v.keyring_dir.is_dir() {
            bail!(
                "no keyring for vendor {:?}: {} does not exist; put the vendor's certificate there, or pass --keyring PATH",
                v.name,
                v.keyring_dir.display()
            );
        }
        vec![v.keyring_dir.clone()]
    } else {
        bail!(
            "{}: no keyring to check against: pass --keyring PATH or --vendor NAME, or add a [[vendor]] whose `bundles` patterns match this file name to feeds.toml (there is no fallback to any system keyring)",
            escape_os(bundle.as_os_str())
        );
    };
    let keyring = Keyring::load(&keyring_paths)?;
    for w in &keyring.warnings {
        tracing::warn!("{w}");
    }

    let file_name = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut pins = Vec::new();
    if let Some(h) = &args.sha256 {
        pins.push(Pin {
            source: "--sha256".into(),
            expected: h.clone(),
        });
    }
    if let Some(v) = &vendor {
        let pin_file = v.keyring_dir.join("pinned.sha256");
        for e in keyring::pinned_hashes(&v.keyring_dir, &file_name).map_err(anyhow::Error::msg)? {
            pins.push(Pin {
                source: format!("{} line {}", pin_file.display(), e.line),
                expected: e.hex,
            });
        }
    }
    let threshold = args
        .signatures
        .map(|n| n as usize)
        .or(vendor.as_ref().map(|v| v.signatures))
        .unwrap_or(config::DEFAULT_SIGNATURES);
    let policy = StandardPolicy::new();
    let req = verify::Request {
        bundle,
        keyring: &keyring,
        vendor: vendor.as_ref().map(|v| v.name.as_str()),
        contact: vendor.as_ref().and_then(|v| v.contact.as_deref()),
        threshold,
        pins,
        signature: args.signature.as_deref(),
        policy: &policy,
        now,
        copy,
    };
    Ok(verify::verify_bundle(&req)?)
}

fn run_unpack(
    config: Option<&Config>,
    args: &UnpackArgs,
    now: SystemTime,
) -> anyhow::Result<Outcome> {
    use crate::archive::extract::{Extractor, Limits};
    use crate::archive::inspect::{self, Inspector};
    use crate::archive::walk::{self as archive, WalkError};

    let into = &args.into;
    let shown_into = escape_os(into.as_os_str());
    match std::fs::read_dir(into) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                bail!(
                    "{shown_into}: target-not-empty: the target folder must not exist or be empty"
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("{shown_into}: cannot use as the target: {e}"),
    }
    let parent = match into.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // The private copy: unnamed, beside the target, gone when this process is.
    let mut copy = tempfile::tempfile_in(&parent)
        .with_context(|| format!("{}: cannot write beside the target", parent.display()))?;
    let report = verify_command(config, &args.bundle, &args.check, now, Some(&copy))?;
    crate::cmd::watch::raise_verify_events(config, &report, args.check.no_alert);
    let mut stdout = std::io::stdout().lock();
    if !args.json {
        write!(stdout, "{}", report::render_text(&report))?;
    }
    match report.verdict {
        Verdict::Verified => {}
        Verdict::Rejected | Verdict::UnexpectedSigner => {
            if args.json {
                writeln!(
                    stdout,
                    "{}",
                    serde_json::json!({"verify": report::render_json(&report), "unpacked": null})
                )?;
            }
            writeln!(std::io::stderr(), "vendorguard: nothing was extracted")?;
            return Ok(if report.verdict == Verdict::Rejected {
                Outcome::Findings
            } else {
                Outcome::UnexpectedSigner
            });
        }
    }

    let staging = tempfile::Builder::new()
        .prefix(".vendorguard-staging-")
        .tempdir_in(&parent)
        .with_context(|| {
            format!(
                "{}: cannot create a staging folder beside the target",
                parent.display()
            )
        })?;
    let limits = Limits {
        max_size: args.max_size,
        max_ratio: args.max_ratio,
        max_entries: args.max_entries,
        keep_setuid: args.keep_setuid,
    };
    let mut inspector = Inspector::new();
    let mut extractor = Extractor::new(staging.path(), limits, report.size, &mut inspector);
    let walked = archive::walk(&mut copy, &mut extractor);
    let result = walked.and_then(|format| {
        extractor
            .finish()
            .map(|bytes| (format, bytes))
            .map_err(WalkError::Io)
    });
    let (format, bytes) = match result {
        Ok(x) => x,
        Err(e) => {
            // Dropping `staging` removes it; the target was never touched.
            drop(staging);
            let bundle = escape_os(args.bundle.as_os_str());
            if args.json {
                writeln!(
                    stdout,
                    "{}",
                    serde_json::json!({
                        "verify": report::render_json(&report),
                        "unpacked": null,
                        "refused": {"code": e.code(), "message": e.to_string()},
                    })
                )?;
            }
            return match e {
                WalkError::Io(io) => Err(anyhow::Error::new(io)
                    .context(format!("{bundle}: could not write the extracted files beside {shown_into}; the target is untouched"))),
                other => {
                    writeln!(std::io::stderr(), "vendorguard: refused: {bundle}: {other}; nothing was extracted")?;
                    Ok(Outcome::Findings)
                }
            };
        }
    };
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, into) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(anyhow::Error::new(e).context(format!(
            "{shown_into}: cannot move the extracted files into place; the target is untouched"
        )));
    }
    let entries = inspector.entries;
    let findings = inspector.finish();
    if args.json {
        writeln!(
            stdout,
            "{}",
            serde_json::json!({
                "verify": report::render_json(&report),
                "unpacked": {"into": shown_into, "format": format.name(), "bytes": bytes},
                "inspect": inspect::render_json(&escape_os(args.bundle.as_os_str()), format.name(), entries, &findings),
            })
        )?;
    } else {
        writeln!(
            stdout,
            "unpacked: {} into {shown_into} ({}, {bytes} bytes)",
            escape_os(args.bundle.as_os_str()),
            format.name()
        )?;
        write!(stdout, "{}", inspect::render_summary(&findings))?;
        writeln!(
            stdout,
            "next: review the findings with `vendorguard inspect {}` before the upgrade window",
            escape_os(args.bundle.as_os_str())
        )?;
    }
    Ok(Outcome::Clean)
}

fn run_inspect(args: &InspectArgs) -> anyhow::Result<Outcome> {
    use crate::archive::inspect::{self, Inspector};
    use crate::archive::walk::{self as archive, WalkError};
    let bundle = escape_os(args.bundle.as_os_str());
    let mut file = std::fs::File::open(&args.bundle)
        .with_context(|| format!("{bundle}: cannot read bundle"))?;
    let mut inspector = Inspector::new();
    let format = match archive::walk(&mut file, &mut inspector) {
        Ok(f) => f,
        Err(WalkError::Io(e)) => {
            return Err(anyhow::Error::new(e).context(format!("{bundle}: cannot read bundle")))
        }
        Err(e) => bail!("{bundle}: cannot read the archive: {e}"),
    };
    let entries = inspector.entries;
    let findings = inspector.finish();
    if args.json {
        println!(
            "{}",
            inspect::render_json(&bundle, format.name(), entries, &findings)
        );
    } else {
        print!(
            "{}",
            inspect::render_text(&bundle, format.name(), entries, &findings)
        );
    }
    Ok(Outcome::Clean)
}

fn run_pin(config: Option<&Config>, args: &PinArgs) -> anyhow::Result<Outcome> {
    let vendor = choose_vendor(config, Some(&args.vendor), &args.bundle)?
        .expect("an explicit vendor is always chosen");
    let file = std::fs::File::open(&args.bundle)
        .with_context(|| format!("{}: cannot read bundle", escape_os(args.bundle.as_os_str())))?;
    let digests = crate::verify::digest::hash_once(&file, &crate::verify::digest::plan([]))
        .with_context(|| format!("{}: cannot read bundle", escape_os(args.bundle.as_os_str())))?;
    let hex = crate::text::hex(&digests.sha256());
    let name = args
        .bundle
        .file_name()
        .and_then(|n| n.to_str())
        .context("the bundle's file name is not UTF-8; rename it before pinning")?
        .to_string();
    let replaced = write_pin(&vendor.keyring_dir, &name, &hex)?;
    let pin_file = vendor.keyring_dir.join("pinned.sha256");
    match replaced {
        Some(old) if old == hex => println!(
            "already pinned: {hex}  {} in {}",
            crate::text::escape(&name),
            pin_file.display()
        ),
        Some(old) => println!(
            "pinned: {hex}  {} in {} (replaced {old})",
            crate::text::escape(&name),
            pin_file.display()
        ),
        None => println!(
            "pinned: {hex}  {} in {}",
            crate::text::escape(&name),
            pin_file.display()
        ),
    }
    Ok(Outcome::Clean)
}

/// Records `hex` for `name` in `dir/pinned.sha256`, replacing an older line for the same
/// name. Written to a temporary file and renamed, so a crash leaves the old file whole.
/// Returns the hash it replaced.
fn write_pin(dir: &Path, name: &str, hex: &str) -> anyhow::Result<Option<String>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create folder", dir.display()))?;
    let path = dir.join("pinned.sha256");
    let old_text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    let (entries, bad) = checksums::parse(&old_text, 64);
    if let Some(b) = bad.first() {
        bail!(
            "{}: line {}: {}; fix the file before pinning",
            path.display(),
            b.line,
            b.reason
        );
    }
    let mut replaced = None;
    // Rebuild without the lines for this name, keeping comments and other names.
    let mut kept = String::new();
    let drop_lines: Vec<usize> = entries
        .iter()
        .filter(|e| e.name.strip_prefix("./").unwrap_or(&e.name) == name)
        .map(|e| {
            replaced = Some(e.hex.clone());
            e.line
        })
        .collect();
    for (i, line) in old_text.lines().enumerate() {
        if !drop_lines.contains(&(i + 1)) {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept.push_str(&checksums::format_line(hex, name));
    let tmp = dir.join(".pinned.sha256.tmp");
    {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
        f.write_all(kept.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("{}: cannot replace", path.display()))?;
    Ok(replaced)
}

fn run_keys(
    config: Option<&Config>,
    command: KeysCommand,
    now: SystemTime,
) -> anyhow::Result<Outcome> {
    let policy = StandardPolicy::new();
    match command {
        KeysCommand::Add {
            file,
            vendor,
            fingerprint,
        } => {
            use sequoia_openpgp::serialize::SerializeInto;
            let want: String = fingerprint
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_uppercase();
            if !(want.len() == 40 || want.len() == 64)
                || !want.bytes().all(|b| b.is_ascii_hexdigit())
            {
                bail!("--fingerprint: expected a full 40 or 64 hex digit fingerprint (a key ID is not enough), got {fingerprint:?}");
            }
            let choice = choose_vendor(config, Some(&vendor), &file)?.expect("explicit vendor");
            let bytes =
                std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
            let (certs, _) = keyring::parse_certs(&bytes);
            let cert = certs
                .into_iter()
                .find(|c| c.keys().any(|k| k.key().fingerprint().to_hex() == want))
                .with_context(|| format!("{}: holds no certificate with fingerprint {want}; nothing was pinned (compare the fingerprint again)", file.display()))?;
            let fpr = cert.fingerprint().to_hex();
            std::fs::create_dir_all(&choice.keyring_dir)
                .with_context(|| format!("{}: cannot create", choice.keyring_dir.display()))?;
            let dest = choice.keyring_dir.join(format!("{fpr}.asc"));
            let tmp = choice.keyring_dir.join(format!(".{fpr}.asc.tmp"));
            let armored = cert.strip_secret_key_material().armored().to_vec()?;
            {
                let mut f = std::fs::File::create(&tmp)
                    .with_context(|| format!("{}: cannot write", tmp.display()))?;
                f.write_all(&armored)?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &dest)
                .with_context(|| format!("{}: cannot write", dest.display()))?;
            println!(
                "pinned: {fpr} for vendor {} in {}",
                choice.name,
                dest.display()
            );
            Ok(Outcome::Clean)
        }
        KeysCommand::Show { file, json } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("{}: cannot read", file.display()))?;
            let (certs, problems) = keyring::parse_certs(&bytes);
            if certs.is_empty() {
                bail!(
                    "{}: not an OpenPGP certificate file: {}",
                    file.display(),
                    problems
                        .first()
                        .map(String::as_str)
                        .unwrap_or("no certificate in it")
                );
            }
            for p in problems {
                tracing::warn!(
                    "{}: skipped a certificate that does not parse: {p}",
                    file.display()
                );
            }
            let origin = file.display().to_string();
            let infos: Vec<_> = certs
                .iter()
                .map(|c| keys::describe(c, &policy, now))
                .collect();
            if json {
                let v: Vec<_> = infos
                    .iter()
                    .map(|i| keys::render_json(i, Some(&origin)))
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                for i in &infos {
                    print!("{}", keys::render_text(i, Some(&origin)));
                }
            }
            Ok(Outcome::Clean)
        }
        KeysCommand::List { json } | KeysCommand::Check { json } => {
            let check = matches!(command, KeysCommand::Check { .. });
            let config = config.context("keys list and keys check read the vendors from feeds.toml: pass --config FILE or run where feeds.toml is")?;
            let mut failed = false;
            let mut out_json = Vec::new();
            for v in &config.vendors {
                let kr = match Keyring::load(std::slice::from_ref(&v.keyring)) {
                    Ok(k) => k,
                    Err(e) => {
                        // One vendor's broken keyring degrades the listing; it fails check.
                        failed = true;
                        eprintln!("vendor {}: {e}", v.name);
                        out_json
                            .push(serde_json::json!({"vendor": v.name, "error": e.to_string()}));
                        continue;
                    }
                };
                if !json {
                    println!(
                        "vendor {} ({} certificate{}, {})",
                        v.name,
                        kr.certs().len(),
                        if kr.certs().len() == 1 { "" } else { "s" },
                        v.keyring.display()
                    );
                }
                let mut certs_json = Vec::new();
                for cert in kr.certs() {
                    let info = keys::describe(cert, &policy, now);
                    let origin = kr
                        .origin(&cert.fingerprint())
                        .map(|p| p.display().to_string());
                    if info.health.is_failure() {
                        failed = true;
                    }
                    if json {
                        certs_json.push(keys::render_json(&info, origin.as_deref()));
                    } else if check {
                        let level = if info.health.is_failure() {
                            "error"
                        } else if info.health == keys::Health::Ok {
                            "ok"
                        } else {
                            "warning"
                        };
                        println!(
                            "  {level}: {}: {} {}",
                            info.health.code(),
                            info.fingerprint,
                            info.health_detail
                        );
                    } else {
                        for line in keys::render_text(&info, origin.as_deref()).lines() {
                            println!("  {line}");
                        }
                    }
                }
                out_json.push(serde_json::json!({"vendor": v.name, "keyring": v.keyring.display().to_string(), "certificates": certs_json}));
            }
            if json {
                println!("{}", serde_json::Value::Array(out_json));
            }
            Ok(if check && failed {
                Outcome::Findings
            } else {
                Outcome::Clean
            })
        }
    }
}

fn run_check_config(config: Option<&Config>) -> anyhow::Result<Outcome> {
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
            if config.vendors.len() == 1 { "" } else { "s" },
            feeds,
            if feeds == 1 { "" } else { "s" },
            cert_count,
            if cert_count == 1 { "" } else { "s" }
        );
        Ok(Outcome::Clean)
    } else {
        let n = problems.len();
        bail!(
            "{}\n{}: {n} problem{}",
            problems.join("\n"),
            config.path.display(),
            if n == 1 { "" } else { "s" }
        )
    }
}
