//! What `preflight` needs from a bundle's lines beyond `inspect`'s findings: the
//! systemd units a script or unit refers to, SQL that changes a schema (and whether a
//! lock or migration tool is in sight in the same file), outbound registrations
//! (`curl`/`wget` sending data), writes to absolute paths, and host names in cron
//! lines, units and scripts.
//!
//! Also the entries as declared (kind, size, mode, link target), for the units a
//! bundle ships and the paths it owns. The inspector feeds both when asked
//! (`Inspector::with_signals`), as it walks for `diff`/`preflight` or as `unpack`'s
//! extractor writes, so no bundle is walked twice. Decides nothing about the host it
//! will run on (that is `preflight`'s job with the host's view) and never escapes:
//! text is kept raw and escaped where it is printed.

use std::collections::BTreeMap;

use crate::archive::walk::{Kind, Meta, Part};
use crate::policy::MAX_SIGNALS;

/// One entry as the archive declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `file`, `dir`, `symlink`, `hardlink` or the special kind.
    pub kind: String,
    pub size: u64,
    pub mode: u32,
    /// A link's target; for a file, its SHA-256 when the summary hashed it.
    pub content: String,
}

/// The path entries are filed under: the raw archive name without a leading `./`; a
/// package's control entries start `control:`.
pub fn entry_path(meta: &Meta) -> String {
    let name = String::from_utf8_lossy(&meta.name);
    let name = name.trim_start_matches("./");
    match meta.part {
        Part::Payload => name.to_string(),
        Part::Control => format!("control:{name}"),
    }
}

/// One thing a line says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum What {
    /// A systemd unit the line starts, stops, enables or depends on (`name.service`).
    UnitRef(String),
    /// SQL that changes a schema (the statement's start).
    Ddl(String),
    /// `curl`/`wget` sending data to a URL (the command).
    Outbound(String),
    /// A write to this absolute path (the path).
    Write(String),
    /// A host name the line talks to.
    Host(String),
}

/// A signal with where it was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Signal {
    pub file: String,
    pub line: usize,
    pub what: What,
}

/// What kind of file the lines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A systemd unit: `Requires=`, `After=`... name units.
    Unit,
    /// SQL: every line may hold DDL.
    Sql,
    /// Anything else with lines: scripts, cron files, configuration.
    Other,
}

/// Signals of the whole bundle, with the per-file state of the file being read.
#[derive(Debug, Default)]
pub struct Signals {
    pub found: Vec<Signal>,
    /// Signals were dropped past [`MAX_SIGNALS`].
    pub capped: bool,
    /// Files that mention a lock or a migration tool.
    pub locked_files: Vec<String>,
    /// Every entry, by [`entry_path`].
    pub entries: BTreeMap<String, Entry>,
    file_has_lock: bool,
}

impl Source {
    /// What the file at `path` is, by its name.
    pub fn of(path: &str) -> Source {
        if path.ends_with(".sql") {
            Source::Sql
        } else if [".service", ".timer", ".socket", ".path", ".mount"]
            .iter()
            .any(|s| path.ends_with(s))
        {
            Source::Unit
        } else {
            Source::Other
        }
    }
}

impl Signals {
    /// Records an entry; the walker caps how many there are.
    pub fn entry(&mut self, meta: &Meta) {
        let (kind, content) = match &meta.kind {
            Kind::File => ("file".to_string(), String::new()),
            Kind::Dir => ("dir".to_string(), String::new()),
            Kind::Symlink(t) => ("symlink".into(), String::from_utf8_lossy(t).into_owned()),
            Kind::Hardlink(t) => ("hardlink".into(), String::from_utf8_lossy(t).into_owned()),
            Kind::Special(what) => (what.to_string(), String::new()),
        };
        let entry = Entry {
            kind,
            size: meta.size,
            mode: meta.mode & 0o7777,
            content,
        };
        self.entries.insert(entry_path(meta), entry);
    }

    /// Ends the previous file, if any: its lock status is final.
    pub fn end_file(&mut self, file: &str) {
        if std::mem::take(&mut self.file_has_lock) {
            self.locked_files.push(file.to_string());
        }
    }

    /// Reads one line of `file`.
    pub fn line(&mut self, file: &str, source: Source, n: usize, line: &str) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("--") {
            return;
        }
        if mentions_lock(line) {
            self.file_has_lock = true;
        }
        let mut add = |what: What| {
            if self.found.len() >= MAX_SIGNALS {
                self.capped = true;
            } else {
                self.found.push(Signal {
                    file: file.to_string(),
                    line: n,
                    what,
                });
            }
        };
        if source == Source::Unit {
            if let Some((key, value)) = line.split_once('=') {
                if DEPENDENCY_KEYS.contains(&key.trim()) {
                    value
                        .split_whitespace()
                        .filter_map(unit_name)
                        .for_each(|u| add(What::UnitRef(u)));
                }
            }
        } else {
            for unit in units_commanded(line) {
                add(What::UnitRef(unit));
            }
        }
        if let Some(ddl) = ddl(line) {
            add(What::Ddl(ddl));
        }
        if outbound(line) {
            add(What::Outbound(line.chars().take(300).collect()));
        }
        for path in writes(line) {
            add(What::Write(path));
        }
        for host in hosts(line) {
            add(What::Host(host));
        }
    }
}

/// Keys of a unit that name other units (`Unit=` is the one a timer or path starts).
const DEPENDENCY_KEYS: &[&str] = &[
    "Requires",
    "Requisite",
    "Wants",
    "After",
    "Before",
    "BindsTo",
    "PartOf",
    "OnFailure",
    "Unit",
];

/// `acme` → `acme.service`; services and timers only (targets, slices and the rest
/// belong to systemd itself); templates and shell variables are not names.
fn unit_name(word: &str) -> Option<String> {
    let w = word.trim_matches(['"', '\'', ';', ',']);
    if w.is_empty()
        || w.starts_with('-')
        || !w
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        || w.ends_with('@')
        || w.contains("@.")
    {
        return None;
    }
    match w.rsplit_once('.') {
        Some((_, "service" | "timer")) => Some(w.to_string()),
        Some((_, ext)) if ext.chars().all(|c| c.is_ascii_alphabetic()) => None,
        _ => Some(format!("{w}.service")),
    }
}

/// Units in `systemctl VERB UNIT...` and `service UNIT ACTION`.
fn units_commanded(line: &str) -> Vec<String> {
    const VERBS: &[&str] = &[
        "start",
        "stop",
        "restart",
        "reload",
        "try-restart",
        "reload-or-restart",
        "enable",
        "disable",
        "reenable",
        "mask",
        "unmask",
    ];
    let mut out = Vec::new();
    for command in line.split([';', '&', '|', '(', ')', '`']) {
        let words: Vec<&str> = command.split_whitespace().collect();
        let Some(at) = words
            .iter()
            .position(|w| matches!(w.rsplit('/').next(), Some("systemctl" | "service")))
        else {
            continue;
        };
        let args: Vec<&str> = words[at + 1..]
            .iter()
            .copied()
            .filter(|w| !w.starts_with('-'))
            .collect();
        if words[at].ends_with("service") {
            if let (Some(unit), Some(_action)) = (args.first(), args.get(1)) {
                out.extend(unit_name(unit));
            }
        } else if args.first().is_some_and(|v| VERBS.contains(v)) {
            out.extend(args[1..].iter().filter_map(|w| unit_name(w)));
        }
    }
    out
}

/// The DDL statement a line starts, if any: `ALTER TABLE`, `DROP TABLE`, `CREATE
/// TABLE`, `CREATE INDEX` without `CONCURRENTLY`, `TRUNCATE`, `RENAME TABLE`.
fn ddl(line: &str) -> Option<String> {
    let upper = line.to_ascii_uppercase();
    let words: Vec<&str> = upper
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let found = words.windows(2).position(|w| {
        matches!(
            (w[0], w[1]),
            ("ALTER" | "DROP" | "CREATE" | "RENAME", "TABLE")
                | ("DROP" | "ALTER", "INDEX" | "COLUMN" | "SCHEMA")
                | ("CREATE", "INDEX" | "UNIQUE")
                | ("TRUNCATE", _)
        )
    })?;
    if words[found] == "CREATE" && words[found + 1] != "TABLE" && words.contains(&"CONCURRENTLY") {
        return None;
    }
    Some(line.chars().take(200).collect())
}

/// A lock or a migration tool: what makes DDL safe to run beside live traffic.
fn mentions_lock(line: &str) -> bool {
    const WORDS: &[&str] = &[
        "lock table",
        "lock tables",
        "pg_advisory_lock",
        "pg_advisory_xact_lock",
        "pg_try_advisory_lock",
        "get_lock(",
        "flock ",
        "flyway",
        "liquibase",
        "alembic",
        "sqitch",
        "dbmate",
        "goose ",
        "db:migrate",
        "manage.py migrate",
    ];
    let lower = line.to_ascii_lowercase();
    WORDS.iter().any(|w| lower.contains(w))
}

/// `curl` or `wget` with a method that changes something or data to send.
fn outbound(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some(at) = words
        .iter()
        .position(|w| matches!(w.rsplit('/').next(), Some("curl" | "wget")))
    else {
        return false;
    };
    let args = &words[at + 1..];
    let sends = args.windows(2).any(|w| {
        matches!(w[0], "-X" | "--request" | "--method")
            && matches!(
                w[1].trim_matches(['"', '\'']).to_ascii_uppercase().as_str(),
                "POST" | "PUT" | "PATCH" | "DELETE"
            )
    }) || args.iter().any(|a| {
        let flag = a.split('=').next().unwrap_or(a);
        matches!(
            flag,
            "-d" | "--data"
                | "--data-raw"
                | "--data-binary"
                | "--data-urlencode"
                | "--json"
                | "-F"
                | "--form"
                | "-T"
                | "--upload-file"
                | "--post-data"
                | "--post-file"
                | "--body-data"
                | "-XPOST"
                | "-XPUT"
                | "-XPATCH"
        )
    });
    sends && line.contains("://")
}

/// Absolute paths a line writes: after `>`/`>>`, `tee`, `sed -i`, `crudini --set`.
fn writes(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        let target = if let Some(rest) = w.strip_prefix(">>").or_else(|| w.strip_prefix('>')) {
            if rest.is_empty() {
                words.get(i + 1).copied()
            } else {
                Some(rest)
            }
        } else if matches!(w, "tee" | "crudini") {
            words[i + 1..].iter().copied().find(|a| !a.starts_with('-'))
        } else if w == "sed" && words[i + 1..].iter().any(|a| a.starts_with("-i")) {
            words[i + 1..]
                .iter()
                .copied()
                .take_while(|a| !matches!(*a, "|" | ";" | "&&" | "||"))
                .last()
        } else {
            None
        };
        if let Some(path) = target.map(|t| t.trim_matches(['"', '\'', ';'])) {
            let scratch = ["/dev/", "/tmp/", "/proc/"]
                .iter()
                .any(|p| path.starts_with(p));
            if path.starts_with('/') && !scratch && !path.contains('$') {
                out.push(path.to_string());
            }
        }
        i += 1;
    }
    out
}

/// Host names in URLs (`scheme://host`), and after `@` in `user@host:` (scp, sftp).
fn hosts(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        rest = &rest[at + 3..];
        let authority = rest
            .split(['/', '?', '#', ' ', '"', '\'', '`', '<', '>', ')'])
            .next()
            .unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        let host = if host.starts_with('[') {
            ""
        } else {
            host.split(':').next().unwrap_or("")
        };
        if is_host_name(host) {
            out.push(host.to_ascii_lowercase());
        }
    }
    out
}

/// A DNS name with at least one dot and no IP address literal: what a resolver is
/// asked about.
pub fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.contains('.')
        && s.parse::<std::net::IpAddr>().is_err()
        && s.split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && s.rsplit('.')
            .next()
            .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: Source, line: &str, want: &[What]) {
        let mut s = Signals::default();
        s.line("f", source, 1, line);
        let got: Vec<What> = s.found.into_iter().map(|s| s.what).collect();
        assert_eq!(got, want, "{line}");
    }

    fn unit(s: &str) -> What {
        What::UnitRef(s.into())
    }

    #[test]
    fn lines_and_what_they_say() {
        use What::*;
        check(
            Source::Other,
            "systemctl --now enable acme-worker && systemctl daemon-reload",
            &[unit("acme-worker.service")],
        );
        check(
            Source::Other,
            "service acme-legacy restart; systemctl restart x.target",
            &[unit("acme-legacy.service")],
        );
        check(Source::Other, "systemctl restart \"$UNIT\"", &[]);
        check(
            Source::Unit,
            "After=network.target acme-db.service",
            &[unit("acme-db.service")],
        );
        check(Source::Unit, "ExecStart=/bin/true", &[]);
        check(
            Source::Unit,
            "Unit=acme-report.service",
            &[unit("acme-report.service")],
        );
        check(
            Source::Sql,
            "ALTER TABLE jobs ADD COLUMN x int;",
            &[Ddl("ALTER TABLE jobs ADD COLUMN x int;".into())],
        );
        check(Source::Sql, "CREATE INDEX CONCURRENTLY i ON jobs (x);", &[]);
        check(Source::Sql, "-- DROP TABLE jobs", &[]);
        check(
            Source::Other,
            "curl -fsS -X POST https://hooks.example.com/r -d @body",
            &[
                Outbound("curl -fsS -X POST https://hooks.example.com/r -d @body".into()),
                Host("hooks.example.com".into()),
            ],
        );
        check(
            Source::Other,
            "curl -fsS https://dl.example.com/x -o /tmp/x",
            &[Host("dl.example.com".into())],
        );
        check(
            Source::Other,
            "sed -i 's/new_ui=false/new_ui=true/' /etc/other/flags.conf",
            &[Write("/etc/other/flags.conf".into())],
        );
        check(
            Source::Other,
            "echo on >> /etc/x.conf; echo > /dev/null",
            &[Write("/etc/x.conf".into())],
        );
        check(
            Source::Other,
            "rsync sftp://user@sftp-legacy.example:22/in 10.0.0.1",
            &[Host("sftp-legacy.example".into())],
        );
        assert!(is_host_name("a.example") && !is_host_name("10.1.2.3") && !is_host_name("x"));
    }

    #[test]
    fn lock_status_per_file() {
        let mut s = Signals::default();
        s.line("a.sql", Source::Sql, 1, "SELECT pg_advisory_lock(1);");
        s.end_file("a.sql");
        s.line("b.sql", Source::Sql, 1, "DROP TABLE x;");
        s.end_file("b.sql");
        assert_eq!(s.locked_files, vec!["a.sql".to_string()]);
    }
}
