//! Will this bundle break on *this* host: its side effects (a [`Summary`]: the
//! inspector's findings and the lines' signals, from one walk) checked against a
//! [`HostView`] (which units are installed, which names resolve, whether the user can
//! `sudo -n`), and the rollback checklist: what a snapshot restore will not undo.
//!
//! Codes: `missing-unit`, `unresolvable-host` (blocking in a cron job or a unit, a
//! warning elsewhere), `needs-root` (a warning), `schema-change-without-lock`. The host
//! is only ever asked through the view, which `cmd` builds from `--root` and
//! `--hosts`; nothing here touches the file system or the network, or picks an exit
//! code. Every text from the bundle is escaped as it is recorded.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::archive::inspect::{Finding as Seen, FindingKind};
use crate::archive::signals::{is_host_name, Signal, What};
use crate::archive::summary::Summary;
use crate::text::escape;

/// What preflight needs to know about the host.
pub trait HostView {
    /// Whether `unit` (`name.service`) is installed under the root.
    fn unit_installed(&self, unit: &str) -> bool;
    /// Whether `host` resolves.
    fn resolves(&self, host: &str) -> bool;
    /// Whether the user running the upgrade may run privileged commands (root, or
    /// `sudo -n` works).
    fn can_sudo(&self) -> bool;
}

/// Stable codes of preflight findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    MissingUnit,
    UnresolvableHost,
    SchemaChangeWithoutLock,
    NeedsRoot,
}

impl Code {
    pub fn code(self) -> &'static str {
        match self {
            Code::MissingUnit => "missing-unit",
            Code::UnresolvableHost => "unresolvable-host",
            Code::SchemaChangeWithoutLock => "schema-change-without-lock",
            Code::NeedsRoot => "needs-root",
        }
    }
}

/// One preflight finding; text escaped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// A finding that should stop the upgrade (exit 1).
    pub blocking: bool,
    pub code: Code,
    pub path: String,
    pub line: Option<usize>,
    pub detail: String,
}

impl Finding {
    pub fn severity(&self) -> &'static str {
        if self.blocking {
            "blocking"
        } else {
            "warning"
        }
    }
}

/// Kinds of side effect a snapshot restore will not undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rollback {
    OutboundRegistration,
    OutsideWrite,
    DatabaseChange,
    Account,
    Cron,
    Systemd,
}

impl Rollback {
    pub fn code(self) -> &'static str {
        match self {
            Rollback::OutboundRegistration => "outbound-registration",
            Rollback::OutsideWrite => "outside-write",
            Rollback::DatabaseChange => "database-change",
            Rollback::Account => "account",
            Rollback::Cron => "cron",
            Rollback::Systemd => "systemd",
        }
    }
}

/// One rollback checklist item; text escaped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    pub kind: Rollback,
    pub path: String,
    pub line: Option<usize>,
    pub detail: String,
}

/// The result: findings (blocking first) and the checklist.
#[derive(Debug, Default)]
pub struct Preflight {
    pub findings: Vec<Finding>,
    pub rollback: Vec<Item>,
}

impl Preflight {
    pub fn blocking(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.blocking)
    }
}

/// Checks `summary` against `host`.
pub fn check(summary: &Summary, host: &dyn HostView) -> Preflight {
    let mut findings = BTreeSet::new();
    let mut rollback = BTreeSet::new();
    let signals = &summary.signals.found;

    let shipped: BTreeSet<&str> = summary
        .entries
        .keys()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .collect();
    for s in signals {
        if let What::UnitRef(unit) = &s.what {
            if !shipped.contains(unit.as_str()) && !host.unit_installed(unit) {
                let detail = format!(
                    "unit {} is neither installed under the root nor shipped in the bundle",
                    escape(unit)
                );
                findings.insert(found(true, Code::MissingUnit, s, detail));
            }
        }
    }

    let mut resolved: BTreeMap<String, bool> = BTreeMap::new();
    let mut resolves = |h: &str| {
        *resolved
            .entry(h.to_string())
            .or_insert_with(|| host.resolves(h))
    };
    for s in signals {
        if let What::Host(name) = &s.what {
            if operative(summary, &s.file) && !resolves(name) {
                let (blocking, context) = host_context(summary, s);
                let detail = format!("{} does not resolve ({context})", escape(name));
                findings.insert(found(blocking, Code::UnresolvableHost, s, detail));
            }
        }
    }
    for ((path, key), value) in &summary.config {
        let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
        let named = last.contains("host") || last.contains("server");
        if named && is_host_name(value) && !resolves(&value.to_ascii_lowercase()) {
            findings.insert(Finding {
                blocking: false,
                code: Code::UnresolvableHost,
                path: escape(path),
                line: None,
                detail: format!(
                    "{} does not resolve (configuration key {})",
                    escape(value),
                    escape(key)
                ),
            });
        }
    }

    let locked: BTreeSet<&str> = summary
        .signals
        .locked_files
        .iter()
        .map(String::as_str)
        .collect();
    let own = own_paths(summary);
    for s in signals {
        let item = |kind, detail: String| Item {
            kind,
            path: escape(&s.file),
            line: Some(s.line),
            detail,
        };
        match &s.what {
            What::Ddl(sql) if runs_sql(summary, &s.file) => {
                rollback.insert(item(Rollback::DatabaseChange, escape(sql)));
                if !locked.contains(s.file.as_str()) {
                    let detail =
                        format!("{} (no lock or migration tool in this file)", escape(sql));
                    findings.insert(found(true, Code::SchemaChangeWithoutLock, s, detail));
                }
            }
            What::Outbound(cmd) => {
                rollback.insert(item(Rollback::OutboundRegistration, escape(cmd)));
            }
            What::Write(path) => {
                if !own.iter().any(|o| within(path, o)) {
                    let detail = format!("writes {}, outside the bundle's own paths", escape(path));
                    rollback.insert(item(Rollback::OutsideWrite, detail));
                }
                if !host.can_sudo() && within(path, "/etc") {
                    let detail = format!("writes {} as a user who cannot sudo -n", escape(path));
                    findings.insert(found(false, Code::NeedsRoot, s, detail));
                }
            }
            _ => {}
        }
    }

    for f in &summary.findings {
        let kind = match f.kind {
            FindingKind::Account => Rollback::Account,
            FindingKind::Cron => Rollback::Cron,
            FindingKind::Systemd => Rollback::Systemd,
            FindingKind::PrivilegedCommand if !host.can_sudo() => {
                findings.insert(Finding {
                    blocking: false,
                    code: Code::NeedsRoot,
                    path: f.file.clone(),
                    line: f.line,
                    detail: format!("{} (the user cannot sudo -n)", f.detail),
                });
                continue;
            }
            _ => continue,
        };
        rollback.insert(Item {
            kind,
            path: f.file.clone(),
            line: f.line,
            detail: f.detail.clone(),
        });
    }
    let mut findings: Vec<Finding> = findings.into_iter().collect();
    findings.sort_by_key(|f| !f.blocking);
    Preflight {
        findings,
        rollback: rollback.into_iter().collect(),
    }
}

fn found(blocking: bool, code: Code, s: &Signal, detail: String) -> Finding {
    Finding {
        blocking,
        code,
        path: escape(&s.file),
        line: Some(s.line),
        detail,
    }
}

/// Whether a host's line runs unattended (a cron job or a unit: blocking), and what
/// it is, for the message.
fn host_context(summary: &Summary, s: &Signal) -> (bool, &'static str) {
    let file = escape(&s.file);
    let is = |f: &Seen, kind| f.kind == kind && f.file.trim_start_matches("./") == file;
    let cron_line = summary
        .findings
        .iter()
        .any(|f| is(f, FindingKind::Cron) && (f.line.is_none() || f.line == Some(s.line)));
    if cron_line {
        (true, "cron job")
    } else if [".service", ".timer"].iter().any(|x| s.file.ends_with(x)) {
        (true, "systemd unit")
    } else {
        (false, "not in a cron job or unit")
    }
}

/// Files whose hosts the installed product talks to: cron files, units, scripts and
/// configuration (not documentation).
fn operative(summary: &Summary, file: &str) -> bool {
    let shown = escape(file);
    let cron = summary
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::Cron && f.file.trim_start_matches("./") == shown);
    cron || [".service", ".timer"].iter().any(|x| file.ends_with(x))
        || runs_sql(summary, file)
        || crate::archive::config_keys::format_of(file).is_some()
}

/// `.sql` files and scripts (executable, `.sh`, or a package's control entries) run
/// SQL; other files merely mention it.
fn runs_sql(summary: &Summary, file: &str) -> bool {
    let executable = summary
        .entries
        .get(file)
        .is_some_and(|e| e.mode & 0o111 != 0);
    executable
        || file.starts_with("control:")
        || [".sql", ".sh", ".bash"].iter().any(|x| file.ends_with(x))
}

/// Absolute paths the bundle owns: its files, and the folders below the top level
/// that hold them (`/etc/acme`, not `/etc`).
fn own_paths(summary: &Summary) -> Vec<String> {
    let mut own = BTreeSet::new();
    for path in summary
        .entries
        .keys()
        .filter(|p| !p.starts_with("control:"))
    {
        let path = path.trim_end_matches('/');
        own.insert(format!("/{path}"));
        if let Some((dir, _)) = path.rsplit_once('/') {
            if dir.contains('/') {
                own.insert(format!("/{dir}"));
            }
        }
    }
    own.into_iter().collect()
}

fn within(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// Text: blocking findings first, warnings, then the rollback checklist.
pub fn render_text(bundle: &str, p: &Preflight) -> String {
    let blocking = p.blocking().count();
    let mut out = format!(
        "preflight: {bundle}: {blocking} blocking, {} warnings, {} rollback items\n",
        p.findings.len() - blocking,
        p.rollback.len()
    );
    for f in &p.findings {
        out.push_str(&format!(
            "{:<8} {}: {}  {}\n",
            f.severity(),
            f.code.code(),
            at(&f.path, f.line),
            f.detail
        ));
    }
    if !p.rollback.is_empty() {
        out.push_str("\nrollback checklist (a snapshot restore does not undo these):\n");
        for i in &p.rollback {
            out.push_str(&format!(
                "  [ ] {}: {}  {}\n",
                i.kind.code(),
                at(&i.path, i.line),
                i.detail
            ));
        }
    }
    out
}

/// `unpack`'s lines: one per blocking finding.
pub fn render_blocking(p: &Preflight) -> String {
    p.blocking()
        .map(|f| {
            format!(
                "preflight: {}: {}  {}\n",
                f.code.code(),
                at(&f.path, f.line),
                f.detail
            )
        })
        .collect()
}

fn at(path: &str, line: Option<usize>) -> String {
    match line {
        Some(n) => format!("{path}:{n}"),
        None => path.to_string(),
    }
}

/// `--json`: `{"findings": [...], "rollback": [...]}`.
pub fn render_json(p: &Preflight) -> Value {
    json!({
        "findings": p.findings.iter().map(|f| json!({
            "code": f.code.code(),
            "severity": f.severity(),
            "path": f.path,
            "line": f.line,
            "detail": f.detail,
        })).collect::<Vec<_>>(),
        "rollback": p.rollback.iter().map(|i| json!({
            "kind": i.kind.code(),
            "path": i.path,
            "line": i.line,
            "detail": i.detail,
        })).collect::<Vec<_>>(),
    })
}
