//! `history`, `inventory`, and what `verify` and `unpack` do around a verdict with
//! them: which product and version a bundle is, the refusal of a rollback or a reused
//! version against the inventory, and the history record every run appends.
//!
//! The state is the `[watch] state` database, created when missing. When it cannot be
//! opened or written, the verdict stands: `verify` warns on stderr and keeps its exit
//! code; `unpack` extracts nothing (exit 2) rather than install what the history would
//! not show. Without a configuration there is no state and nothing is recorded.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::cli::HistoryArgs;
use crate::cmd::outcome::Outcome;
use crate::cmd::setup::NO_CONFIG;
use crate::config::Config;
use crate::inventory::{Installed, Inventory};
use crate::store::history::{self, Entry, Record};
use crate::store::{self, History};
use crate::text::{escape, time};
use crate::verify::{Refusal, Report, Status};
use crate::version::Version;

/// A bundle's product and version, and the state its verdict goes into.
pub struct Tracking {
    history: Option<Box<dyn History>>,
    /// Why the state could not be opened or read.
    pub problem: Option<String>,
    product: Option<String>,
    version: Option<Version>,
    inventory: Inventory,
}

/// Opens the state of `config` and finds the product and version of the bundle of
/// `report`.
pub fn track(config: Option<&Config>, report: &Report) -> Tracking {
    let file_name = report
        .subject
        .bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let product = config
        .zip(report.subject.vendor.as_deref())
        .and_then(|(c, v)| c.product_for_bundle(v, &file_name));
    let version = product.and_then(|p| p.version_of(&file_name));
    let mut t = Tracking {
        history: None,
        problem: None,
        product: product.map(|p| p.name.clone()),
        version,
        inventory: Inventory::build(config, &[]),
    };
    let Some(config) = config else { return t };
    let opened = store::open_history(&config.watch.state)
        .and_then(|h| h.installed().map(|unpacked| (h, unpacked)));
    match opened {
        Ok((h, unpacked)) => {
            t.inventory = Inventory::build(Some(config), &unpacked);
            t.history = Some(h);
        }
        Err(e) => t.problem = Some(e.to_string()),
    }
    t
}

impl Tracking {
    /// Refuses a verified bundle whose version is below the installed one (`rollback`)
    /// or equal to it with other bytes (`version-reused`); with `allow` the refusal is
    /// a warning instead. Returns the codes allowed.
    pub fn guard(&self, report: &mut Report, allow: bool) -> Vec<String> {
        let mut allowed = Vec::new();
        if report.verdict != crate::verify::Verdict::Verified {
            return allowed;
        }
        let (Some(vendor), Some(product), Some(version)) = (
            report.subject.vendor.as_deref(),
            &self.product,
            &self.version,
        ) else {
            return allowed;
        };
        let Some(installed) = self.inventory.get(vendor, product) else {
            return allowed;
        };
        let Some(current) = &installed.version else {
            return allowed;
        };
        let bundle = crate::text::escape_os(report.subject.bundle.as_os_str());
        let found = if version < current {
            Some((
                Refusal::Rollback,
                format!(
                    "{bundle}: rollback: version {} of {} is lower than the installed version {} ({})",
                    escape(version.as_str()),
                    escape(product),
                    escape(current.as_str()),
                    provenance(installed)
                ),
            ))
        } else if version == current
            && installed
                .sha256
                .as_deref()
                .is_some_and(|h| h != report.subject.sha256)
        {
            Some((
                Refusal::VersionReused,
                format!(
                    "{bundle}: version-reused: version {} of {} is installed from a bundle with SHA-256 {}, and this bundle of the same version has SHA-256 {} ({})",
                    escape(version.as_str()),
                    escape(product),
                    installed.sha256.as_deref().unwrap_or_default(),
                    report.subject.sha256,
                    provenance(installed)
                ),
            ))
        } else {
            None
        };
        if let Some((refusal, message)) = found {
            if allow {
                report.allow(refusal, format!("{message}; accepted by --allow-downgrade"));
                allowed.push(refusal.code().to_string());
            } else {
                report.refuse(refusal, message);
            }
        }
        allowed
    }

    /// Appends the record of this run. `verdict` and `codes` are the report's unless
    /// `unpack` refused the archive; `into` is where it extracted.
    ///
    /// # Errors
    ///
    /// Why the record could not be written (the state could not be opened, or the
    /// write failed). Without a configuration nothing is written and this is `Ok`.
    pub fn record(&mut self, run: Run<'_>) -> Result<(), String> {
        if let Some(p) = &self.problem {
            return Err(p.clone());
        }
        let Some(h) = self.history.as_mut() else {
            return Ok(());
        };
        let r = run.report;
        let bundle =
            std::path::absolute(&r.subject.bundle).unwrap_or_else(|_| r.subject.bundle.clone());
        let entry = Entry {
            at: history::epoch(run.now),
            command: run.command.into(),
            bundle: bundle.to_string_lossy().into_owned(),
            size: r.subject.size,
            sha256: r.subject.sha256.clone(),
            vendor: r.subject.vendor.clone(),
            product: self.product.clone(),
            version: self.version.as_ref().map(|v| v.as_str().to_string()),
            verdict: run.verdict.unwrap_or(r.verdict.code()).into(),
            codes: r
                .codes
                .iter()
                .map(|c| c.to_string())
                .chain(run.extra_code.map(String::from))
                .collect(),
            signers: r.good_certificates.iter().map(|f| f.to_hex()).collect(),
            unexpected: r
                .signatures
                .iter()
                .filter(|s| s.status == Status::UnpinnedSigner)
                .filter_map(|s| s.issuer.clone())
                .collect(),
            into: run.into.map(|p| {
                std::path::absolute(p)
                    .unwrap_or_else(|_| p.to_path_buf())
                    .to_string_lossy()
                    .into_owned()
            }),
            user: run.who.user.clone(),
            host: run.who.host.clone(),
            allowed: run.allowed.to_vec(),
        };
        h.append(&entry).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// One run to record.
pub struct Run<'a> {
    pub command: &'static str,
    pub report: &'a Report,
    /// Overrides the report's verdict (`rejected` when `unpack` refused the archive,
    /// `error` when it could not write it).
    pub verdict: Option<&'static str>,
    pub extra_code: Option<&'static str>,
    pub into: Option<&'a Path>,
    pub allowed: &'a [String],
    pub now: SystemTime,
    pub who: &'a Who,
}

/// Who ran the command, where: read by the command, recorded as given.
pub struct Who {
    pub user: String,
    pub host: String,
}

impl Who {
    /// `$USER` (else `$LOGNAME`, else the uid) and the kernel's host name.
    pub fn current() -> Who {
        let user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| format!("uid {}", rustix::process::getuid().as_raw()));
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".into());
        Who { user, host }
    }
}

fn provenance(i: &Installed) -> String {
    match (i.source, i.since) {
        (Some(crate::inventory::Source::Config), _) => "installed = in feeds.toml".into(),
        (_, Some(t)) => format!("unpacked {}", time(t)),
        _ => "from the history".into(),
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `history`: list, or check the chain.
pub fn run_history(config: Option<&Config>, args: &HistoryArgs) -> anyhow::Result<Outcome> {
    let config = config.ok_or_else(|| anyhow::anyhow!(NO_CONFIG))?;
    let h = store::open_history(&config.watch.state)?;
    let mut out = std::io::stdout().lock();
    if args.check {
        return match h.check()? {
            Ok(n) => {
                writeln!(out, "history intact: {n} record{}", crate::text::plural(n))?;
                Ok(Outcome::Clean)
            }
            Err(b) => {
                writeln!(
                    out,
                    "history broken at record {}: {}; the records from there on cannot be trusted: compare them with your logs and a backup of the state",
                    b.seq, b.message,
                )?;
                Ok(Outcome::Findings)
            }
        };
    }
    let records = h.records(args.vendor.as_deref(), args.product.as_deref())?;
    if args.json {
        let all: Vec<Value> = records.iter().map(record_json).collect();
        writeln!(out, "{}", Value::from(all))?;
    } else {
        for r in &records {
            writeln!(out, "{}", record_line(r))?;
        }
    }
    Ok(Outcome::Clean)
}

fn record_json(r: &Record) -> Value {
    let e = &r.entry;
    json!({
        "seq": r.seq,
        "time": time(at(e.at)),
        "command": e.command,
        "bundle": escape(&e.bundle),
        "size": e.size,
        "sha256": e.sha256,
        "vendor": e.vendor.as_deref().map(escape),
        "product": e.product.as_deref().map(escape),
        "version": e.version.as_deref().map(escape),
        "verdict": e.verdict,
        "codes": e.codes,
        "signers": e.signers,
        "unexpected_signers": e.unexpected,
        "into": e.into.as_deref().map(escape),
        "user": escape(&e.user),
        "host": escape(&e.host),
        "allowed": e.allowed,
        "prev": r.prev,
        "hash": r.hash,
    })
}

fn record_line(r: &Record) -> String {
    let e = &r.entry;
    let or_dash = |v: &Option<String>| v.as_deref().map_or_else(|| "-".into(), escape);
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            escape(&v.join(","))
        }
    };
    let mut line = format!(
        "#{} {} {} {} {} vendor {} product {} version {} sha256 {} codes {} signers {}",
        r.seq,
        time(at(e.at)),
        e.command,
        escape(&e.verdict),
        escape(&e.bundle),
        or_dash(&e.vendor),
        or_dash(&e.product),
        or_dash(&e.version),
        escape(&e.sha256),
        list(&e.codes),
        list(&e.signers),
    );
    if !e.unexpected.is_empty() {
        line.push_str(&format!(" unexpected {}", list(&e.unexpected)));
    }
    if let Some(into) = &e.into {
        line.push_str(&format!(" into {}", escape(into)));
    }
    if !e.allowed.is_empty() {
        line.push_str(&format!(" allowed {}", list(&e.allowed)));
    }
    line.push_str(&format!(" by {}@{}", escape(&e.user), escape(&e.host)));
    line
}

/// `inventory`.
pub fn run_inventory(config: Option<&Config>, json: bool) -> anyhow::Result<Outcome> {
    let config = config.ok_or_else(|| anyhow::anyhow!(NO_CONFIG))?;
    let h = store::open_history(&config.watch.state)?;
    let inventory = Inventory::build(Some(config), &h.installed()?);
    let mut out = std::io::stdout().lock();
    if json {
        let all: Vec<Value> = inventory
            .items
            .iter()
            .map(|i| {
                json!({
                    "vendor": i.vendor,
                    "product": escape(&i.product),
                    "installed": i.version.as_ref().map(|v| escape(v.as_str())),
                    "source": i.source.map(crate::inventory::Source::code),
                    "since": i.since.map(time),
                    "sha256": i.sha256,
                    "bundle": i.bundle.as_deref().map(escape),
                })
            })
            .collect();
        writeln!(out, "{}", Value::from(all))?;
        return Ok(Outcome::Clean);
    }
    if inventory.items.is_empty() {
        writeln!(
            out,
            "no products: add [[vendor.product]] tables to {}",
            config.path.display()
        )?;
    }
    for i in &inventory.items {
        let what = match (&i.version, i.source) {
            (Some(v), Some(src)) => {
                let mut s = format!("{} source {}", escape(v.as_str()), src.code());
                if let Some(t) = i.since {
                    s.push_str(&format!(" since {}", time(t)));
                }
                if let Some(h) = &i.sha256 {
                    s.push_str(&format!(" sha256 {h}"));
                }
                s
            }
            _ => "not installed (no installed = and no successful unpack)".into(),
        };
        writeln!(out, "{} {} {what}", i.vendor, escape(&i.product))?;
    }
    Ok(Outcome::Clean)
}
