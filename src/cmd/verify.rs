//! `verify`, `unpack` and `inspect`: which keyring, pins and threshold apply, calling
//! the verifier, extracting exactly the verified bytes, printing the report, and the
//! events a verdict raises when `feeds.toml` configures an alert channel.
//!
//! Only here is a bundle opened by name for unpacking: the verifier writes the private
//! copy that extraction reads. A failed alert never changes the verdict's outcome.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context as _};
use sequoia_openpgp::policy::StandardPolicy;
use serde_json::{json, Value};

use crate::alert::event::{Event, Kind, Severity};
use crate::alert::{self, ChannelReport, Scope};
use crate::cli::{CheckArgs, InspectArgs, UnpackArgs, VerifyArgs};
use crate::cmd::history::{self, Run, Who};
use crate::cmd::outcome::Outcome;
use crate::cmd::setup::{choose_vendor, runtime};
use crate::config::{self, Config};
use crate::store;
use crate::text::escape_os;
use crate::verify::judge::Judge;
use crate::verify::keyring::{self, Keyring};
use crate::verify::{self, report, Pin, Report, Verdict};

pub fn run_verify(
    config: Option<&Config>,
    args: &VerifyArgs,
    now: SystemTime,
) -> anyhow::Result<Outcome> {
    let result = verify_command(config, &args.bundle, &args.check, now, None);
    match result {
        Ok(mut report) => {
            let mut tracking = history::track(config, &report);
            let allowed = tracking.guard(&mut report, args.check.allow_downgrade);
            raise_verify_events(config, &report, args.check.no_alert);
            let mut stdout = std::io::stdout().lock();
            if args.json {
                writeln!(stdout, "{}", report::render_json(&report))?;
            } else {
                write!(stdout, "{}", report::render_text(&report))?;
            }
            let run = Run {
                command: "verify",
                report: &report,
                verdict: None,
                extra_code: None,
                into: None,
                allowed: &allowed,
                now,
                who: &Who::current(),
            };
            if let Err(e) = tracking.record(run) {
                eprintln!("vendorguard: warning: {e}: this verdict is not in the history, and the installed version was checked against feeds.toml only; the verdict stands");
            }
            Ok(Outcome::from(report.verdict))
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
        judge: Judge {
            keyring: &keyring,
            vendor: vendor.as_ref().map(|v| v.name.as_str()),
            policy: &policy,
            signers: vendor.as_ref().map(|v| v.signers).unwrap_or_default(),
            now,
        },
        contact: vendor.as_ref().and_then(|v| v.contact.as_deref()),
        threshold,
        pins,
        signature: args.signature.as_deref(),
        copy,
        repository: match (&args.release, &args.index) {
            (Some(release), Some(index)) => Some(verify::Repository {
                release,
                release_signature: args.release_signature.as_deref(),
                index,
            }),
            _ => None,
        },
    };
    Ok(verify::verify_bundle(&req)?)
}

pub fn run_unpack(
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
    let mut report = verify_command(config, &args.bundle, &args.check, now, Some(&copy))?;
    let mut tracking = history::track(config, &report);
    let allowed = tracking.guard(&mut report, args.check.allow_downgrade);
    raise_verify_events(config, &report, args.check.no_alert);
    let mut stdout = std::io::stdout().lock();
    if !args.json {
        write!(stdout, "{}", report::render_text(&report))?;
    }
    let who = Who::current();
    let run = |verdict, extra_code, into| Run {
        command: "unpack",
        report: &report,
        verdict,
        extra_code,
        into,
        allowed: &allowed,
        now,
        who: &who,
    };
    match report.verdict {
        Verdict::Verified => {}
        Verdict::Rejected | Verdict::UnexpectedSigner => {
            if args.json {
                writeln!(stdout, "{}", unpack_json(&report, Value::Null, None))?;
            }
            writeln!(std::io::stderr(), "vendorguard: nothing was extracted")?;
            if let Err(e) = tracking.record(run(None, None, None)) {
                eprintln!("vendorguard: warning: {e}: this verdict is not in the history; the verdict stands");
            }
            return Ok(Outcome::from(report.verdict));
        }
    }
    // What the history would not show must not be installed.
    if let Some(problem) = &tracking.problem {
        bail!("{problem}: the history cannot record this unpack, so nothing was extracted (the bundle verified; fix or move aside the state and run again)");
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
    let mut inspector = Inspector::new().with_signals();
    let mut extractor = Extractor::new(staging.path(), limits, report.subject.size, &mut inspector);
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
                let refused = json!({"code": e.code(), "message": e.to_string()});
                let out = unpack_json(&report, Value::Null, Some(("refused", refused)));
                writeln!(stdout, "{out}")?;
            }
            let recorded = match &e {
                WalkError::Io(_) => {
                    tracking.record(run(Some("error"), Some("could-not-check"), None))
                }
                other => tracking.record(run(Some("rejected"), Some(other.code()), None)),
            };
            if let Err(r) = recorded {
                eprintln!("vendorguard: warning: {r}: this refusal is not in the history");
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
    if let Err(e) = tracking.record(run(None, None, Some(into))) {
        bail!("{shown_into}: the bundle was unpacked, but its history record could not be written ({e}); `inventory` and the rollback check do not know of it");
    }
    let entries = inspector.entries;
    let (findings, signals) = inspector.finish_with_signals();
    let checked = crate::cmd::review::unpack_preflight(
        findings.clone(),
        signals,
        &args.root,
        args.hosts.as_deref(),
    )?;
    if args.json {
        let unpacked = json!({"into": shown_into, "format": format.name(), "bytes": bytes});
        let bundle = escape_os(args.bundle.as_os_str());
        let inspected = inspect::render_json(&bundle, format.name(), entries, &findings);
        let mut out = unpack_json(&report, unpacked, Some(("inspect", inspected)));
        out["preflight"] = crate::archive::preflight::render_json(&checked);
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(
            stdout,
            "unpacked: {} into {shown_into} ({}, {bytes} bytes)",
            escape_os(args.bundle.as_os_str()),
            format.name()
        )?;
        write!(stdout, "{}", inspect::render_summary(&findings))?;
        write!(
            stdout,
            "{}",
            crate::archive::preflight::render_blocking(&checked)
        )?;
        writeln!(
            stdout,
            "next: review the findings with `vendorguard inspect {}` before the upgrade window",
            escape_os(args.bundle.as_os_str())
        )?;
    }
    Ok(Outcome::Clean)
}

/// `unpack --json`'s one object: the verify report, what was unpacked (null when
/// nothing was), and one more member (`refused` or `inspect`).
fn unpack_json(report: &Report, unpacked: Value, more: Option<(&str, Value)>) -> Value {
    let mut out = json!({"verify": report::render_json(report), "unpacked": unpacked});
    if let Some((key, value)) = more {
        out[key] = value;
    }
    out
}

pub fn run_inspect(args: &InspectArgs) -> anyhow::Result<Outcome> {
    use crate::archive::inspect::{self, Inspector};
    use crate::archive::walk::{self as archive, WalkError};
    let bundle = escape_os(args.bundle.as_os_str());
    let mut file = std::fs::File::open(&args.bundle)
        .with_context(|| format!("{bundle}: cannot read bundle"))?;
    let archive_size = file
        .metadata()
        .with_context(|| format!("{bundle}: cannot read bundle"))?
        .len();
    let mut inspector = Inspector::with_limits(inspect::ReadLimits {
        max_size: args.limits.max_size,
        max_ratio: args.limits.max_ratio,
        archive_size,
    });
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

/// After `verify` or `unpack`: an unexpected signer, a rejected bundle, or a signer
/// expiring soon becomes an event when feeds.toml configures a channel. Failures to
/// alert are reported but never change the verdict's exit code.
fn raise_verify_events(config: Option<&Config>, report: &Report, no_alert: bool) {
    let Some(config) = config else { return };
    if no_alert || !alert::any_configured(&config.alerts) {
        return;
    }
    let now = SystemTime::now();
    let vendor = report
        .subject
        .vendor
        .clone()
        .unwrap_or_else(|| "unknown".into());
    let bundle = crate::text::escape_os(report.subject.bundle.as_os_str());
    let mut events = Vec::new();
    match report.verdict {
        Verdict::UnexpectedSigner => {
            for s in report
                .signatures
                .iter()
                .filter(|s| s.status == crate::verify::Status::UnpinnedSigner)
            {
                let fpr = s.issuer.clone().unwrap_or_default();
                events.push(
                    Event::new(
                        Kind::UnexpectedSigner,
                        &vendor,
                        &format!("bundle {} {} {fpr}", bundle, report.subject.sha256),
                        Severity::High,
                        format!(
                            "{bundle} is signed by key {} that is not pinned for {vendor}",
                            crate::text::group4(&fpr)
                        ),
                        "",
                        now,
                    )
                    .with("fingerprint", fpr)
                    .with("bundle", bundle.clone())
                    .with("sha256", report.subject.sha256.clone()),
                );
            }
        }
        Verdict::Rejected => events.push(
            Event::new(
                Kind::BundleRejected,
                &vendor,
                &format!(
                    "bundle {} {} {}",
                    bundle,
                    report.subject.sha256,
                    report.codes.join(",")
                ),
                Severity::High,
                format!("{bundle} was rejected: {}", report.codes.join(", ")),
                "",
                now,
            )
            .with("bundle", bundle.clone())
            .with("sha256", report.subject.sha256.clone())
            .with("code", report.codes.join(",")),
        ),
        Verdict::Verified => {}
    }
    for s in &report.signatures {
        if let (Some(exp), Some(cert)) = (s.key_expires_soon, &s.certificate) {
            let fpr = cert.to_hex();
            events.push(Event::signer_expiring(&vendor, fpr, exp, "", now));
        }
    }
    if events.is_empty() {
        return;
    }
    for e in &mut events {
        e.set_contact(report.subject.contact.as_deref());
    }
    let result = (|| -> anyhow::Result<Vec<ChannelReport>> {
        let me = store::Instance::this_process(
            config.watch.instance.as_deref(),
            config.watch.lease,
            now,
        );
        let mut state = store::open(&config.watch.state, &me)?;
        state.add_events(&events)?;
        // Deliver only while holding the watcher's lock (SQLite; PostgreSQL claims each
        // delivery instead): two processes delivering the same pending event at once
        // would send it twice. When a watcher holds it, the events are in the outbox
        // and it delivers them.
        let Some(_lock) = store::lock(&config.watch.state)? else {
            eprintln!("vendorguard: alert stored; the running watcher will deliver it");
            return Ok(Vec::new());
        };
        let rt = runtime()?;
        Ok(rt.block_on(async {
            let channels = alert::channels(&config.alerts, false);
            // Only what this run raised: the rest of the outbox is the watcher's.
            let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
            alert::deliver_pending(&mut *state, &channels, Scope::Only(&ids), now).await
        })?)
    })();
    match result {
        Ok(reports) => {
            for r in reports.iter().filter(|r| r.pending > 0) {
                eprintln!(
                    "vendorguard: alert pending on {}: {}",
                    r.channel,
                    r.last_error.clone().unwrap_or_default()
                );
            }
        }
        Err(e) => eprintln!("vendorguard: could not raise the alert: {e:#}"),
    }
}
