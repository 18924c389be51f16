//! What changes between two versions of a bundle: entries (size, mode, content),
//! every kind of `inspect` finding, and configuration keys, compared from two
//! [`Summary`]s (one walk each).
//!
//! Findings are matched by kind, file and detail (a line number that moved is no
//! change); systemd units by unit name, so a rename is a removal plus an addition and
//! a changed `ExecStart`, `User` or `OnCalendar` is a change; configuration keys by
//! file and dotted key, so an unchanged key is not reported. Every text from the
//! bundles is escaped in the [`Change`] (findings arrive escaped from the inspector).
//! It reads nothing itself and decides no exit code.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::archive::inspect::FindingKind;
use crate::archive::summary::{Entry, Summary};
use crate::text::escape;

/// Added, removed or changed; removals sort first (they break things).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Removed,
    Changed,
    Added,
}

impl ChangeKind {
    pub fn code(self) -> &'static str {
        match self {
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
            ChangeKind::Added => "added",
        }
    }
}

/// What a change is about: an entry, a finding's kind, or a configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    File,
    Finding(FindingKind),
    ConfigKey,
}

impl Subject {
    /// The stable code: `file`, a finding's code, or `config-key`.
    pub fn code(self) -> &'static str {
        match self {
            Subject::File => "file",
            Subject::Finding(kind) => kind.code(),
            Subject::ConfigKey => "config-key",
        }
    }
}

/// One difference. Text is escaped for terminals.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub subject: Subject,
    pub change: ChangeKind,
    pub path: String,
    /// A configuration key, or a unit's name.
    pub key: Option<String>,
    pub old: Option<String>,
    pub new: Option<String>,
    pub detail: String,
}

/// Every difference from `old` to `new`, grouped by subject, removals first.
pub fn compare(old: &Summary, new: &Summary) -> Vec<Change> {
    let mut out = Vec::new();
    entries(&old.entries, &new.entries, &mut out);
    keys(&old.config, &new.config, &mut out);
    // Findings come escaped from the inspector; entries and keys are escaped here.
    out = out.into_iter().map(escaped).collect();
    findings(old, new, &mut out);
    units(old, new, &mut out);
    out.sort_by(|a, b| {
        (a.subject, a.change, &a.path, &a.key).cmp(&(b.subject, b.change, &b.path, &b.key))
    });
    out
}

fn escaped(c: Change) -> Change {
    let esc = |s: Option<String>| s.map(|s| escape(&s));
    Change {
        path: escape(&c.path),
        key: esc(c.key),
        old: esc(c.old),
        new: esc(c.new),
        detail: escape(&c.detail),
        ..c
    }
}

/// An entry for `old`/`new`: what [`describe`] says, with a file's SHA-256.
fn state(e: &Entry) -> String {
    if e.kind == "file" && !e.content.is_empty() {
        format!("{}, sha256 {}", describe(e), e.content)
    } else {
        describe(e)
    }
}

fn describe(e: &Entry) -> String {
    match e.kind.as_str() {
        "file" => format!("file, {} bytes, mode {:04o}", e.size, e.mode),
        "symlink" | "hardlink" => format!("{} to {}", e.kind, e.content),
        other => format!("{other}, mode {:04o}", e.mode),
    }
}

fn entries(old: &BTreeMap<String, Entry>, new: &BTreeMap<String, Entry>, out: &mut Vec<Change>) {
    for (path, o) in old {
        let change = |change, old: Option<String>, new: Option<String>, detail| Change {
            subject: Subject::File,
            change,
            path: path.clone(),
            key: None,
            old,
            new,
            detail,
        };
        let Some(n) = new.get(path) else {
            out.push(change(
                ChangeKind::Removed,
                Some(state(o)),
                None,
                describe(o),
            ));
            continue;
        };
        let mut what = Vec::new();
        if o.kind != n.kind {
            what.push(format!("{} → {}", o.kind, n.kind));
        }
        if o.size != n.size {
            what.push(format!("size {} → {}", o.size, n.size));
        }
        if o.mode != n.mode {
            what.push(format!("mode {:04o} → {:04o}", o.mode, n.mode));
        }
        if o.kind == n.kind && o.content != n.content {
            what.push(if o.kind == "file" {
                "content changed".to_string()
            } else {
                format!("target {} → {}", o.content, n.content)
            });
        }
        if !what.is_empty() {
            out.push(change(
                ChangeKind::Changed,
                Some(state(o)),
                Some(state(n)),
                what.join(", "),
            ));
        }
    }
    for (path, n) in new.iter().filter(|(p, _)| !old.contains_key(*p)) {
        out.push(Change {
            subject: Subject::File,
            change: ChangeKind::Added,
            path: path.clone(),
            key: None,
            old: None,
            new: Some(state(n)),
            detail: describe(n),
        });
    }
}

/// Findings other than units, as sets of (kind, file, detail).
fn findings(old: &Summary, new: &Summary, out: &mut Vec<Change>) {
    let set = |s: &Summary| -> BTreeSet<(FindingKind, String, String)> {
        s.findings
            .iter()
            .filter(|f| f.kind != FindingKind::Systemd)
            .map(|f| (f.kind, f.file.clone(), f.detail.clone()))
            .collect()
    };
    let (o, n) = (set(old), set(new));
    for (change, from, to) in [(ChangeKind::Removed, &o, &n), (ChangeKind::Added, &n, &o)] {
        for (kind, file, detail) in from.difference(to) {
            let value = Some(detail.clone());
            out.push(Change {
                subject: Subject::Finding(*kind),
                change,
                path: file.clone(),
                key: None,
                old: value.clone().filter(|_| change == ChangeKind::Removed),
                new: value.filter(|_| change == ChangeKind::Added),
                detail: detail.clone(),
            });
        }
    }
}

/// Systemd units by unit name: what `ExecStart`, `User`, `OnCalendar`... say.
fn units(old: &Summary, new: &Summary, out: &mut Vec<Change>) {
    let map = |s: &Summary| -> BTreeMap<String, (String, String)> {
        s.findings
            .iter()
            .filter(|f| f.kind == FindingKind::Systemd)
            .map(|f| {
                let name = f.file.rsplit('/').next().unwrap_or(&f.file).to_string();
                (name, (f.file.clone(), f.detail.clone()))
            })
            .collect()
    };
    let (o, n) = (map(old), map(new));
    let names: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    for name in names {
        let (change, path, detail) = match (o.get(name), n.get(name)) {
            (Some((p, _)), None) => (ChangeKind::Removed, p, format!("unit {name} is gone")),
            (None, Some((p, d))) => (ChangeKind::Added, p, format!("new unit {name}: {d}")),
            (Some((_, a)), Some((p, b))) if a != b => {
                (ChangeKind::Changed, p, format!("unit {name} changed"))
            }
            _ => continue,
        };
        out.push(Change {
            subject: Subject::Finding(FindingKind::Systemd),
            change,
            path: path.clone(),
            key: Some(name.clone()),
            old: o.get(name).map(|(_, d)| d.clone()),
            new: n.get(name).map(|(_, d)| d.clone()),
            detail,
        });
    }
}

type Keys = BTreeMap<(String, String), String>;

fn keys(old: &Keys, new: &Keys, out: &mut Vec<Change>) {
    let all: BTreeSet<&(String, String)> = old.keys().chain(new.keys()).collect();
    for k in all {
        let (o, n) = (old.get(k), new.get(k));
        let change = match (o, n) {
            (Some(_), None) => ChangeKind::Removed,
            (None, Some(_)) => ChangeKind::Added,
            (Some(a), Some(b)) if a != b => ChangeKind::Changed,
            _ => continue,
        };
        let detail = match (o, n) {
            (Some(a), Some(b)) => format!("{a} → {b}"),
            (Some(a), None) => format!("was {a}"),
            (_, Some(b)) => format!("= {b}"),
            _ => String::new(),
        };
        out.push(Change {
            subject: Subject::ConfigKey,
            change,
            path: k.0.clone(),
            key: Some(k.1.clone()),
            old: o.cloned(),
            new: n.cloned(),
            detail,
        });
    }
}

/// A bundle's identity for the report (escaped path, SHA-256).
pub struct Side<'a> {
    pub path: &'a str,
    pub sha256: &'a str,
}

/// Text: a header, then the changes grouped by subject, removals first.
pub fn render_text(old: &Side, new: &Side, changes: &[Change]) -> String {
    let mut out = format!(
        "diff: {} → {}: {} changes\n",
        old.path,
        new.path,
        changes.len()
    );
    let mut subject = None;
    for c in changes {
        if subject != Some(c.subject) {
            subject = Some(c.subject);
            let n = changes.iter().filter(|x| x.subject == c.subject).count();
            out.push_str(&format!("\n[{}]: {n}\n", c.subject.code()));
        }
        let key = c.key.as_ref().map(|k| format!(" {k}")).unwrap_or_default();
        out.push_str(&format!(
            "  {:<7} {}{key}  {}\n",
            c.change.code(),
            c.path,
            c.detail
        ));
    }
    out
}

/// `--json`: `{"old", "new", "changes"}`.
pub fn render_json(old: &Side, new: &Side, changes: &[Change]) -> Value {
    json!({
        "old": {"path": old.path, "sha256": old.sha256},
        "new": {"path": new.path, "sha256": new.sha256},
        "changes": changes.iter().map(|c| json!({
            "change": c.change.code(),
            "kind": c.subject.code(),
            "path": c.path,
            "key": c.key,
            "old": c.old,
            "new": c.new,
            "detail": c.detail,
        })).collect::<Vec<_>>(),
    })
}
