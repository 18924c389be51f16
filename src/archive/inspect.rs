//! What an upgrade will *do*: side effects an operator must review before the window.
//!
//! The [`Inspector`] is fed entries and their bytes as an archive streams by (as the
//! walker's visitor for `inspect`, which extracts nothing, or by the extractor while
//! `unpack` writes), and collects findings: cron entries with their schedules, systemd
//! units and timers, scripts that call sudo/su/systemctl/service/crontab, host names,
//! IP addresses and URLs in text files, setuid/setgid files, maintainer scripts, and
//! links that `unpack` would refuse for leaving the folder it unpacks into or looping
//! (judged on the whole tree, which the inspector models with `tree` when it walks an
//! archive itself). It keeps memory bounded: only the first [`SCAN_LIMIT`] bytes of
//! each text file are scanned, lines are capped, and binary files are skipped after
//! their first block. Findings are information, never a verdict.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use std::io::Read;

use crate::archive::signals::{entry_path, Signals, Source};
use crate::archive::tree::{node_cap, normal_path, where_to, Added, Clash, Entry, NodeId, Tree};
use crate::archive::walk::{Kind, Meta, Part, Visitor, WalkError, DEFAULT_MAX_ENTRIES};
use crate::policy::SCAN_LIMIT;
use crate::text::escape;

const LINE_LIMIT: usize = 8192;
const BINARY_PROBE: usize = 8192;

/// The kinds of finding, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FindingKind {
    SymlinkEscape,
    Cron,
    Systemd,
    MaintainerScript,
    Account,
    Conffile,
    PrivilegedCommand,
    Setuid,
    Ownership,
    Host,
}

impl FindingKind {
    pub const ALL: [FindingKind; 10] = [
        FindingKind::SymlinkEscape,
        FindingKind::Cron,
        FindingKind::Systemd,
        FindingKind::MaintainerScript,
        FindingKind::Account,
        FindingKind::Conffile,
        FindingKind::PrivilegedCommand,
        FindingKind::Setuid,
        FindingKind::Ownership,
        FindingKind::Host,
    ];

    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            FindingKind::SymlinkEscape => "symlink-escape",
            FindingKind::Cron => "cron",
            FindingKind::Systemd => "systemd",
            FindingKind::MaintainerScript => "maintainer-script",
            FindingKind::Account => "account",
            FindingKind::Conffile => "conffile",
            FindingKind::PrivilegedCommand => "privileged-command",
            FindingKind::Setuid => "setuid",
            FindingKind::Ownership => "ownership",
            FindingKind::Host => "host",
        }
    }

    fn heading(self) -> &'static str {
        match self {
            FindingKind::SymlinkEscape => {
                "links that leave the folder the archive unpacks into, or loop"
            }
            FindingKind::Cron => "cron entries (schedule, user, command)",
            FindingKind::Systemd => "systemd units and timers",
            FindingKind::MaintainerScript => "maintainer and install scripts",
            FindingKind::Account => "users and groups the package creates",
            FindingKind::Conffile => {
                "configuration files the package manager keeps across upgrades"
            }
            FindingKind::PrivilegedCommand => "commands that need privileges or change services",
            FindingKind::Setuid => "setuid/setgid files",
            FindingKind::Ownership => "files the package gives to an owner other than root",
            FindingKind::Host => "hosts, addresses and URLs the package refers to",
        }
    }
}

/// One thing to review.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub kind: FindingKind,
    /// The archive path, escaped.
    pub file: String,
    pub line: Option<usize>,
    /// What was found: a schedule and command, a unit's ExecStart, a host.
    pub detail: String,
}

/// The file being scanned.
struct Scan {
    file: String,
    /// The raw path and what it is, for [`Signals`].
    raw: String,
    source: Source,
    cron: Option<CronStyle>,
    systemd: bool,
    /// Lines gathered from a systemd unit.
    unit: Vec<String>,
    line_no: usize,
    partial: Vec<u8>,
    scanned: usize,
    binary: bool,
    hosts: BTreeSet<String>,
    /// What the lines of this file are, beyond text to scan.
    lists: Lists,
}

/// Files whose lines are a list the inspector reports item by item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lists {
    Nothing,
    /// A package's `conffiles`: one path per line.
    Conffiles,
    /// A `sysusers.d/*.conf`: `u NAME ...`, `g NAME ...` lines.
    Sysusers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CronStyle {
    /// `/etc/crontab`, `/etc/cron.d/*`: schedule, user, command.
    System,
    /// A user crontab: schedule, command.
    User,
    /// A script in `cron.daily` and friends: the file itself runs on that schedule.
    Periodic(&'static str),
}

/// Collects findings from a stream of entries: fed by the extractor as it writes, or
/// walking an archive itself as a [`Visitor`] (for `inspect`, which writes nothing).
#[derive(Default)]
pub struct Inspector {
    findings: BTreeSet<Finding>,
    current: Option<Scan>,
    /// Entries seen.
    pub entries: u64,
    /// Read buffer when walking as a visitor; allocated on first use.
    buf: Vec<u8>,
    /// The archive's tree when walking as a visitor, for its links.
    links: Links,
    /// When walking as a visitor: what the archive's entries may declare in total. A
    /// tar entry is read through to reach the next, so an honest 1 TB entry would cost
    /// its whole decompression though only its start is scanned.
    limits: Option<ReadLimits>,
    declared: u64,
    /// What `preflight` needs beyond findings, when asked for.
    signals: Option<Signals>,
}

/// What a walk that extracts nothing (`inspect`, `diff`, `preflight`) reads at most:
/// the entries' declared bytes in total, and their ratio to the archive's own size
/// (past the first MiB; `unpack` judges a zip entry's the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    pub max_size: u64,
    pub max_ratio: u64,
    /// The archive's size on disk.
    pub archive_size: u64,
}

/// Declared bytes below which the ratio is not judged: small archives of small files
/// compress absurdly well and harm nobody.
const RATIO_FLOOR: u64 = 1 << 20;

/// The links of the archive being walked, modelled as the extractor models them, so
/// that links it would refuse are reported. Built on the first entry; given up (and
/// said so) once the names outgrow the tree's cap.
#[derive(Default)]
enum Links {
    #[default]
    NotStarted,
    Modelled {
        tree: Tree,
        symlinks: Vec<NodeId>,
    },
    GaveUp,
}

impl Inspector {
    pub fn new() -> Inspector {
        Inspector::default()
    }

    /// An inspector that, when it walks an archive itself, refuses archives whose
    /// entries declare more than `limits.max_size` bytes in total (`too-large`) or more
    /// than `limits.max_ratio` times the archive's size (`ratio-exceeded`).
    pub fn with_limits(limits: ReadLimits) -> Inspector {
        Inspector {
            limits: Some(limits),
            ..Inspector::default()
        }
    }

    /// Also collects the entries and the lines' [`Signals`], for `preflight`.
    pub fn with_signals(self) -> Inspector {
        Inspector {
            signals: Some(Signals::default()),
            ..self
        }
    }

    /// Starts an entry; returns whether its bytes are worth feeding.
    pub fn begin(&mut self, meta: &Meta) -> bool {
        self.finish_current();
        self.entries += 1;
        if let Some(signals) = &mut self.signals {
            signals.entry(meta);
        }
        let file = meta.display_name();
        let path = String::from_utf8_lossy(&meta.name).into_owned();
        let path = path.trim_start_matches("./");
        let base = path.rsplit('/').next().unwrap_or(path);
        if meta.kind == Kind::File && meta.mode & 0o6000 != 0 {
            let what = match (meta.mode & 0o4000 != 0, meta.mode & 0o2000 != 0) {
                (true, true) => "setuid and setgid",
                (true, false) => "setuid",
                _ => "setgid",
            };
            self.add(
                FindingKind::Setuid,
                &file,
                None,
                format!("{what}, mode {:04o}", meta.mode),
            );
        }
        if let Some(owner) = meta.owner.as_ref().filter(|o| !o.is_root()) {
            let detail = format!("owned by {}:{}", escape(&owner.user), escape(&owner.group));
            self.add(FindingKind::Ownership, &file, None, detail);
        }
        if meta.kind != Kind::File {
            return false;
        }
        let control = meta.part == Part::Control;
        let lists = if control && base == "conffiles" {
            Lists::Conffiles
        } else if !control
            && base.ends_with(".conf")
            && path.rsplit('/').nth(1) == Some("sysusers.d")
        {
            Lists::Sysusers
        } else {
            Lists::Nothing
        };
        if control && is_package_script(base) {
            self.add(
                FindingKind::MaintainerScript,
                &file,
                None,
                format!(
                    "the package manager runs it at install, upgrade or removal ({})",
                    escape(base)
                ),
            );
        } else if !control && is_maintainer_script(base) {
            self.add(
                FindingKind::MaintainerScript,
                &file,
                None,
                format!("runs at install or upgrade time ({base})"),
            );
        }
        let cron = if control { None } else { cron_style(path) };
        if let Some(CronStyle::Periodic(when)) = cron {
            self.add(
                FindingKind::Cron,
                &file,
                None,
                format!("runs {when} (script in cron.{when})"),
            );
        }
        let systemd = [".service", ".timer", ".socket", ".path", ".mount"]
            .iter()
            .any(|s| base.ends_with(s))
            && !base.starts_with('.');
        let raw = entry_path(meta);
        self.current = Some(Scan {
            file,
            source: Source::of(&raw),
            raw,
            cron,
            systemd,
            unit: Vec::new(),
            line_no: 0,
            partial: Vec::new(),
            scanned: 0,
            binary: false,
            hosts: BTreeSet::new(),
            lists,
        });
        true
    }

    /// Feeds the current entry's bytes.
    pub fn data(&mut self, chunk: &[u8]) {
        let Some(mut scan) = self.current.take() else {
            return;
        };
        if !scan.binary && scan.scanned < SCAN_LIMIT {
            if scan.scanned < BINARY_PROBE {
                let probe_end = chunk.len().min(BINARY_PROBE - scan.scanned);
                if chunk[..probe_end].contains(&0) {
                    scan.binary = true;
                }
            }
            if !scan.binary {
                let take = chunk.len().min(SCAN_LIMIT - scan.scanned);
                scan.scanned += take;
                let mut rest = &chunk[..take];
                while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                    push_capped(&mut scan.partial, &rest[..nl]);
                    let line = std::mem::take(&mut scan.partial);
                    self.line(&mut scan, &line);
                    rest = &rest[nl + 1..];
                }
                push_capped(&mut scan.partial, rest);
            }
        }
        self.current = Some(scan);
    }

    /// Records a link that leaves the folder the archive unpacks into, or loops.
    pub fn link_escape(&mut self, file: &str, detail: String) {
        self.add(FindingKind::SymlinkEscape, file, None, detail);
    }

    /// Everything found so far (finishing the current entry).
    pub fn finish(self) -> Vec<Finding> {
        self.finish_with_signals().0
    }

    /// Everything found so far, and the signals when collected ([`with_signals`]).
    ///
    /// [`with_signals`]: Inspector::with_signals
    pub fn finish_with_signals(mut self) -> (Vec<Finding>, Signals) {
        self.finish_current();
        let signals = self.signals.take().unwrap_or_default();
        (self.findings.into_iter().collect(), signals)
    }

    fn finish_current(&mut self) {
        let Some(mut scan) = self.current.take() else {
            return;
        };
        if !scan.binary && !scan.partial.is_empty() {
            let line = std::mem::take(&mut scan.partial);
            self.line(&mut scan, &line);
        }
        if scan.systemd && !scan.unit.is_empty() {
            let detail = scan.unit.join("; ");
            self.add(FindingKind::Systemd, &scan.file, None, detail);
        }
        if let Some(signals) = &mut self.signals {
            signals.end_file(&scan.raw);
        }
    }

    fn add(&mut self, kind: FindingKind, file: &str, line: Option<usize>, detail: String) {
        self.findings.insert(Finding {
            kind,
            file: file.to_string(),
            line,
            detail,
        });
    }

    fn line(&mut self, scan: &mut Scan, raw: &[u8]) {
        scan.line_no += 1;
        let n = scan.line_no;
        let text = String::from_utf8_lossy(raw);
        if let Some(signals) = &mut self.signals {
            signals.line(&scan.raw, scan.source, n, &text);
        }
        let line = text.trim();
        if line.is_empty() {
            return;
        }
        let comment = line.starts_with('#') || line.starts_with(';');

        match scan.lists {
            Lists::Conffiles if !comment => {
                self.add(FindingKind::Conffile, &scan.file, Some(n), escape(line));
            }
            Lists::Sysusers if !comment => {
                if let Some(detail) = sysusers_line(line) {
                    self.add(FindingKind::Account, &scan.file, Some(n), detail);
                }
            }
            _ => {}
        }
        if !comment {
            if let Some(cmd) = account_command(line) {
                self.add(
                    FindingKind::Account,
                    &scan.file,
                    Some(n),
                    format!("{cmd}: {}", escape(&truncate(line, 200))),
                );
            }
            if let Some(style @ (CronStyle::System | CronStyle::User)) = scan.cron {
                if let Some(detail) = parse_cron_line(line, style == CronStyle::System) {
                    self.add(FindingKind::Cron, &scan.file, Some(n), detail);
                }
            }
            if scan.systemd {
                for key in [
                    "ExecStart",
                    "ExecStartPre",
                    "ExecStartPost",
                    "ExecStop",
                    "ExecReload",
                    "User",
                    "Group",
                    "OnCalendar",
                    "OnBootSec",
                    "OnUnitActiveSec",
                    "ListenStream",
                    "WantedBy",
                ] {
                    if let Some(v) = line
                        .strip_prefix(key)
                        .and_then(|r| r.trim_start().strip_prefix('='))
                    {
                        scan.unit.push(escape(&format!("{key}={}", v.trim())));
                    }
                }
            }
            if let Some(cmd) = privileged_command(line) {
                self.add(
                    FindingKind::PrivilegedCommand,
                    &scan.file,
                    Some(n),
                    format!("{cmd}: {}", escape(&truncate(line, 200))),
                );
            }
        }
        // Hosts are worth knowing even in comments (a retired server in a note).
        for host in hosts_in(line) {
            if scan.hosts.insert(host.clone()) {
                self.add(FindingKind::Host, &scan.file, Some(n), escape(&host));
            }
        }
    }
}

impl Inspector {
    /// Adds the entry to the tree, and reports a hard link that leaves it.
    fn model(&mut self, meta: &Meta) {
        if let Links::NotStarted = self.links {
            self.links = Links::Modelled {
                tree: Tree::new(node_cap(DEFAULT_MAX_ENTRIES)),
                symlinks: Vec::new(),
            };
        }
        let Links::Modelled { tree, .. } = &mut self.links else {
            return;
        };
        // Names `unpack` refuses outright are in no tree it would make.
        let Ok(rel) = normal_path(&meta.name) else {
            return;
        };
        if let Kind::Hardlink(target) = &meta.kind {
            if let Err(why) = tree.hardlink_source(target) {
                let detail = format!("hard link to {}", where_to(target, &why, UNPACKED));
                self.link_escape(&meta.display_name(), detail);
            }
        }
        let Links::Modelled { tree, symlinks } = &mut self.links else {
            return;
        };
        let entry = match &meta.kind {
            Kind::Dir => Entry::Dir,
            Kind::Symlink(target) => Entry::Symlink(target),
            _ => Entry::File,
        };
        match (tree.insert(&rel, entry), &meta.kind) {
            (Ok(Added::New(id)), Kind::Symlink(_)) => symlinks.push(id),
            (Err(Clash::Full(n)), _) => {
                self.links = Links::GaveUp;
                let detail = format!(
                    "links were not checked: the names make more than {n} files, folders and links"
                );
                self.link_escape(&meta.display_name(), detail);
            }
            _ => {}
        }
    }
}

/// What an escaping link leaves, in findings.
const UNPACKED: &str = "the folder it unpacks into";

impl Visitor for Inspector {
    /// Models the entry's links and scans the first [`SCAN_LIMIT`] bytes of each file;
    /// extracts nothing.
    fn entry(&mut self, meta: &Meta, data: &mut dyn Read) -> Result<(), WalkError> {
        self.declared = self.declared.saturating_add(meta.size);
        if let Some(l) = self.limits {
            let refuse = |code, message| {
                Err(WalkError::Refused(crate::archive::walk::Refusal {
                    entry: meta.display_name(),
                    code,
                    message,
                }))
            };
            if self.declared > l.max_size {
                let max = l.max_size;
                return refuse(
                    "too-large",
                    format!("the archive's entries declare more than {max} bytes (--max-size)"),
                );
            }
            if self.declared > RATIO_FLOOR
                && self.declared > l.archive_size.max(1).saturating_mul(l.max_ratio)
            {
                return refuse(
                    "ratio-exceeded",
                    format!(
                        "the archive's entries declare more than {} times its {} bytes (--max-ratio)",
                        l.max_ratio, l.archive_size
                    ),
                );
            }
        }
        if meta.part == Part::Payload {
            self.model(meta);
        }
        self.scan(meta, data)
    }

    /// Reports the symlinks that leave the folder or loop, judged on the whole tree.
    fn end(&mut self) -> Result<(), WalkError> {
        self.links_end()
    }
}

impl Inspector {
    /// Scans one entry's first [`SCAN_LIMIT`] bytes; for the extractor, which hands
    /// over the package control entries it does not write.
    ///
    /// # Errors
    ///
    /// Reading the entry failed.
    pub fn scan(&mut self, meta: &Meta, data: &mut dyn Read) -> Result<(), WalkError> {
        if !self.begin(meta) {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(256 * 1024, 0);
        let mut scanned = 0usize;
        let result = loop {
            if scanned >= SCAN_LIMIT {
                break Ok(());
            }
            let n = match data.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(WalkError::Io(e)),
            };
            scanned += n;
            self.data(&buf[..n]);
        };
        self.buf = buf;
        result
    }

    fn links_end(&mut self) -> Result<(), WalkError> {
        let Links::Modelled { tree, symlinks } = std::mem::take(&mut self.links) else {
            return Ok(());
        };
        for link in symlinks {
            if let Err(why) = tree.check_symlink(link) {
                let target = where_to(tree.symlink_target(link), &why, UNPACKED);
                let file = crate::text::escape_os(tree.path(link).as_os_str());
                self.link_escape(&file, format!("symlink to {target}"));
            }
        }
        Ok(())
    }
}

fn push_capped(buf: &mut Vec<u8>, more: &[u8]) {
    let room = LINE_LIMIT.saturating_sub(buf.len());
    buf.extend_from_slice(&more[..more.len().min(room)]);
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// A package's control member or scriptlet that the package manager runs: a `.deb`'s
/// maintainer scripts and triggers, an `.rpm`'s `%pre`, `%post`, triggers and the rest.
fn is_package_script(base: &str) -> bool {
    base.starts_with('%')
        || [
            "preinst", "postinst", "prerm", "postrm", "config", "triggers",
        ]
        .contains(&base)
}

/// The command a line runs that creates a user or group, if any.
fn account_command(line: &str) -> Option<&'static str> {
    const WORDS: &[&str] = &[
        "useradd",
        "adduser",
        "groupadd",
        "addgroup",
        "systemd-sysusers",
        "newusers",
    ];
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '/'))
        .map(|w| w.rsplit('/').next().unwrap_or(w))
        .find_map(|w| WORDS.iter().find(|k| **k == w).copied())
}

/// A `sysusers.d` line that creates a user (`u`), a group (`g`) or a membership (`m`).
fn sysusers_line(line: &str) -> Option<String> {
    let mut fields = line.split_whitespace();
    let what = match fields.next()? {
        "u" | "u!" => "user",
        "g" => "group",
        "m" => "membership",
        _ => return None,
    };
    let name = fields.next()?;
    Some(format!("{what} {}", escape(name)))
}

fn is_maintainer_script(base: &str) -> bool {
    const NAMES: &[&str] = &[
        "preinst",
        "postinst",
        "prerm",
        "postrm",
        "config",
        "install.sh",
        "uninstall.sh",
        "upgrade.sh",
        "update.sh",
        "setup.sh",
        "pre-install.sh",
        "post-install.sh",
        "pre-upgrade.sh",
        "post-upgrade.sh",
        "migrate.sh",
    ];
    NAMES.contains(&base)
        || [".preinst", ".postinst", ".prerm", ".postrm"]
            .iter()
            .any(|s| base.ends_with(s))
}

fn cron_style(path: &str) -> Option<CronStyle> {
    let parts: Vec<&str> = path.split('/').collect();
    let base = *parts.last()?;
    if base.is_empty() || base.starts_with('.') {
        return None;
    }
    let parent = if parts.len() >= 2 {
        parts[parts.len() - 2]
    } else {
        ""
    };
    match parent {
        "cron.d" => return Some(CronStyle::System),
        "cron.hourly" => return Some(CronStyle::Periodic("hourly")),
        "cron.daily" => return Some(CronStyle::Periodic("daily")),
        "cron.weekly" => return Some(CronStyle::Periodic("weekly")),
        "cron.monthly" => return Some(CronStyle::Periodic("monthly")),
        "crontabs" | "cron" if parts.contains(&"spool") => return Some(CronStyle::User),
        _ => {}
    }
    if base == "crontab" && parent == "etc" {
        Some(CronStyle::System)
    } else if base == "crontab" || base.ends_with(".cron") || base.ends_with(".crontab") {
        Some(CronStyle::User)
    } else {
        None
    }
}

/// `0 3 * * * user command` → "schedule 0 3 * * *, user user, command ...".
fn parse_cron_line(line: &str, with_user: bool) -> Option<String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let first = *fields.first()?;
    // Environment settings such as MAILTO=... are not jobs.
    if first.contains('=') && !first.starts_with('@') {
        return None;
    }
    let sched_len = if first.starts_with('@') { 1 } else { 5 };
    if fields.len() <= sched_len {
        return None;
    }
    if sched_len == 5
        && !fields[..5].iter().all(|f| {
            f.chars()
                .all(|c| c.is_ascii_alphanumeric() || "*/,-".contains(c))
        })
    {
        return None;
    }
    let schedule = fields[..sched_len].join(" ");
    let (user, cmd_start) = if with_user && fields.len() > sched_len + 1 {
        (Some(fields[sched_len]), sched_len + 1)
    } else {
        (None, sched_len)
    };
    let command = fields[cmd_start..].join(" ");
    Some(escape(&match user {
        Some(u) => format!(
            "schedule {schedule}, user {u}, command {}",
            truncate(&command, 300)
        ),
        None => format!("schedule {schedule}, command {}", truncate(&command, 300)),
    }))
}

/// The first privileged or service-changing command on a line, matched as a word.
fn privileged_command(line: &str) -> Option<&'static str> {
    const WORDS: &[&str] = &[
        "sudo",
        "su",
        "systemctl",
        "service",
        "crontab",
        "doas",
        "pkexec",
    ];
    let words = line.split(|c: char| {
        !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' || c == '/')
    });
    for w in words {
        let base = w.rsplit('/').next().unwrap_or(w);
        if let Some(found) = WORDS.iter().find(|k| **k == base) {
            // `su` as a word is common in prose ("su" in French); require a shell-ish line.
            if *found == "su"
                && !(line.contains("su -") || line.starts_with("su ") || line.contains("/su "))
            {
                continue;
            }
            return Some(found);
        }
    }
    None
}

/// URLs (scheme://host...), and bare IPv4 addresses, in a line.
fn hosts_in(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while let Some(pos) = line[i..].find("://") {
        let at = i + pos;
        // Scheme: letters, digits, + . - before "://".
        let mut s = at;
        while s > 0 && (bytes[s - 1].is_ascii_alphanumeric() || b"+.-".contains(&bytes[s - 1])) {
            s -= 1;
        }
        let mut e = at + 3;
        while e < bytes.len()
            && !bytes[e].is_ascii_whitespace()
            && !b"\"'<>`)]}|,;".contains(&bytes[e])
        {
            e += 1;
        }
        if s < at && e > at + 3 && bytes[s].is_ascii_alphabetic() {
            out.push(line[s..e].trim_end_matches(['.', ':']).to_string());
        }
        i = e.max(at + 3);
    }
    // IPv4 addresses not inside a URL already reported.
    for token in line.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() == 4
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok())
            && !out.iter().any(|u| u.contains(token))
        {
            out.push(token.to_string());
        }
    }
    out
}

/// Counts per kind, in report order.
pub fn counts(findings: &[Finding]) -> Vec<(FindingKind, usize)> {
    FindingKind::ALL
        .iter()
        .map(|k| (*k, findings.iter().filter(|f| f.kind == *k).count()))
        .collect()
}

/// Text report grouped by kind.
pub fn render_text(bundle: &str, format: &str, entries: u64, findings: &[Finding]) -> String {
    let mut out = format!(
        "inspect: {bundle}: {format}, {entries} entries, {} findings to review\n",
        findings.len()
    );
    for kind in FindingKind::ALL {
        let of_kind: Vec<&Finding> = findings.iter().filter(|f| f.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n{} [{}]: {}\n",
            kind.heading(),
            kind.code(),
            of_kind.len()
        ));
        for f in of_kind {
            match f.line {
                Some(l) => out.push_str(&format!("  {}:{l}  {}\n", f.file, f.detail)),
                None => out.push_str(&format!("  {}  {}\n", f.file, f.detail)),
            }
        }
    }
    out
}

/// One line per kind with counts, for `unpack` (which refuses escaping links, so they
/// have no line).
pub fn render_summary(findings: &[Finding]) -> String {
    let mut out = String::new();
    for (kind, n) in counts(findings) {
        if kind == FindingKind::SymlinkEscape {
            continue;
        }
        out.push_str(&format!("review: {:<19} {n}\n", kind.code()));
    }
    out
}

/// JSON: the same as data.
pub fn render_json(bundle: &str, format: &str, entries: u64, findings: &[Finding]) -> Value {
    json!({
        "bundle": bundle,
        "format": format,
        "entries": entries,
        "counts": counts(findings).into_iter().map(|(k, n)| (k.code().to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "findings": findings.iter().map(|f| json!({
            "kind": f.kind.code(),
            "file": f.file,
            "line": f.line,
            "detail": f.detail,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str, mode: u32, part: Part, owner: Option<(&str, &str)>) -> Meta {
        Meta {
            name: path.as_bytes().to_vec(),
            kind: Kind::File,
            mode,
            size: 0,
            compressed_size: None,
            part,
            owner: owner.map(|(user, group)| crate::archive::walk::Owner {
                user: user.into(),
                group: group.into(),
            }),
        }
    }

    fn check(path: &str, mode: u32, body: &str, want: &[(&str, Option<usize>, &str)]) {
        check_meta(&meta(path, mode, Part::Payload, None), body, want);
    }

    fn check_meta(meta: &Meta, body: &str, want: &[(&str, Option<usize>, &str)]) {
        let path = meta.display_name();
        let mut i = Inspector::new();
        if i.begin(meta) {
            // Feed in small chunks to exercise line joining.
            for c in body.as_bytes().chunks(7) {
                i.data(c);
            }
        }
        let got: Vec<(String, Option<usize>, String)> = i
            .finish()
            .into_iter()
            .map(|f| (f.kind.code().to_string(), f.line, f.detail))
            .collect();
        let want: Vec<(String, Option<usize>, String)> = want
            .iter()
            .map(|(k, l, d)| (k.to_string(), *l, d.to_string()))
            .collect();
        assert_eq!(got, want, "{path}");
    }

    #[test]
    fn package_control_scripts_accounts_conffiles_and_owners() {
        let postinst = "#!/bin/sh\nadduser --system acme\nsystemctl restart acme.service\n";
        check_meta(
            &meta("control/postinst", 0o755, Part::Control, None),
            postinst,
            &[
                (
                    "maintainer-script",
                    None,
                    "the package manager runs it at install, upgrade or removal (postinst)",
                ),
                ("account", Some(2), "adduser: adduser --system acme"),
                (
                    "privileged-command",
                    Some(3),
                    "systemctl: systemctl restart acme.service",
                ),
            ],
        );
        // In a bundle's payload the name alone says "install script", as before.
        check_meta(
            &meta("install/postinst", 0o644, Part::Payload, None),
            "systemctl restart acme.service\n",
            &[
                (
                    "maintainer-script",
                    None,
                    "runs at install or upgrade time (postinst)",
                ),
                (
                    "privileged-command",
                    Some(1),
                    "systemctl: systemctl restart acme.service",
                ),
            ],
        );
        check_meta(
            &meta("%pre", 0o644, Part::Control, None),
            "getent passwd acme || useradd -r acme\n",
            &[
                (
                    "maintainer-script",
                    None,
                    "the package manager runs it at install, upgrade or removal (%pre)",
                ),
                (
                    "account",
                    Some(1),
                    "useradd: getent passwd acme || useradd -r acme",
                ),
            ],
        );
        check_meta(
            &meta("control/conffiles", 0o644, Part::Control, None),
            "/etc/acme/acme.conf\n\n/etc/cron.d/acme\n",
            &[
                ("conffile", Some(1), "/etc/acme/acme.conf"),
                ("conffile", Some(3), "/etc/cron.d/acme"),
            ],
        );
        // A payload file called conffiles is just a file.
        check_meta(
            &meta("opt/acme/conffiles", 0o644, Part::Payload, None),
            "/etc/acme/acme.conf\n",
            &[],
        );
        check_meta(
            &meta("usr/lib/sysusers.d/acme.conf", 0o644, Part::Payload, None),
            "# acme\nu acme - \"Acme daemon\" /var/lib/acme\ng acmeadm -\nx nothing\n",
            &[
                ("account", Some(2), "user acme"),
                ("account", Some(3), "group acmeadm"),
            ],
        );
        check_meta(
            &meta(
                "etc/acme/secret",
                0o640,
                Part::Payload,
                Some(("acme", "acme")),
            ),
            "",
            &[("ownership", None, "owned by acme:acme")],
        );
        check_meta(
            &meta(
                "etc/acme/plain",
                0o644,
                Part::Payload,
                Some(("root", "root")),
            ),
            "",
            &[],
        );
    }

    #[test]
    fn cron_d_entry_with_retired_sftp_host() {
        check(
            "etc/cron.d/import",
            0o644,
            "MAILTO=root\n# nightly\n0 3 * * * dten /opt/import --from sftp://sftp-legacy.example/x\n",
            &[
                ("cron", Some(3), "schedule 0 3 * * *, user dten, command /opt/import --from sftp://sftp-legacy.example/x"),
                ("host", Some(3), "sftp://sftp-legacy.example/x"),
            ],
        );
    }

    #[test]
    fn periodic_cron_script_and_privileges() {
        check(
            "./etc/cron.daily/cleanup",
            0o755,
            "#!/bin/sh\nsudo rm -rf /var/tmp/x\n",
            &[
                ("cron", None, "runs daily (script in cron.daily)"),
                (
                    "privileged-command",
                    Some(2),
                    "sudo: sudo rm -rf /var/tmp/x",
                ),
            ],
        );
    }

    #[test]
    fn systemd_unit_summarised() {
        check(
            "lib/systemd/system/agent.service",
            0o644,
            "[Service]\nUser=dten\nExecStart=/opt/agent --server 10.1.2.3\n[Install]\nWantedBy=multi-user.target\n",
            &[
                ("systemd", None, "User=dten; ExecStart=/opt/agent --server 10.1.2.3; WantedBy=multi-user.target"),
                ("host", Some(3), "10.1.2.3"),
            ],
        );
    }

    #[test]
    fn install_script_setuid_and_escaping() {
        check(
            "install.sh",
            0o4755,
            "systemctl restart x\x1b[2J\n",
            &[
                (
                    "maintainer-script",
                    None,
                    "runs at install or upgrade time (install.sh)",
                ),
                (
                    "privileged-command",
                    Some(1),
                    "systemctl: systemctl restart x\\x1b[2J",
                ),
                ("setuid", None, "setuid, mode 4755"),
            ],
        );
    }

    #[test]
    fn binary_files_are_not_scanned() {
        check(
            "bin/agent",
            0o755,
            "\0\0\0 http://inside.binary.example/\n",
            &[],
        );
    }

    #[test]
    fn version_numbers_are_not_addresses_but_ips_are() {
        assert_eq!(
            hosts_in("version 1.2.3 and 1.2.3.4.5"),
            Vec::<String>::new()
        );
        assert_eq!(hosts_in("connect 192.168.1.10 now"), vec!["192.168.1.10"]);
        assert_eq!(
            hosts_in("see https://a.example/x, ok"),
            vec!["https://a.example/x"]
        );
    }
}
