//! `feeds.toml`: the one configuration file, parsed once into validated types.
//!
//! Parsing happens in two steps. Serde reads the file into `Raw*` structs with
//! `deny_unknown_fields`, so a misspelt key is reported with its line and the keys that
//! were expected. Then [`Config::from_raw`] turns durations, sizes, URLs and paths into
//! plain domain values and collects *every* semantic problem it finds, so that
//! `check-config` can report them all at once. Relative paths resolve against the folder
//! that holds the file. Nothing here touches the network or the keyring; loading keys is
//! `keyring`'s job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Default per-vendor signature threshold.
pub const DEFAULT_SIGNATURES: usize = 1;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from.
    pub path: PathBuf,
    pub watch: Watch,
    pub alerts: Alerts,
    pub vendors: Vec<Vendor>,
}

/// `[watch]`: polling settings.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Where the state lives: a SQLite file or a PostgreSQL database.
    pub state: crate::store::StateLocation,
    /// This instance's name among those sharing a state (`host:pid` when unset).
    pub instance: Option<String>,
    /// How long a source's poll lease and a delivery's claim hold (`[watch] lease`).
    pub lease: Duration,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_body: u64,
    pub concurrency: usize,
    pub per_host: usize,
    pub user_agent: String,
    pub failures_before_alert: u32,
    pub stale_after: Option<Duration>,
    /// New CSAF advisory problems per source and poll raised one by one; the rest are
    /// folded into one summary event.
    pub problem_events: usize,
    pub backoff: Backoff,
    /// Where the daemon serves `/metrics` (`metrics = "127.0.0.1:9899"`); `None`: not
    /// served.
    pub metrics: Option<std::net::SocketAddr>,
}

/// `[watch.backoff]`: retry policy for transient HTTP failures.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
    pub jitter: Jitter,
}

/// How much randomness goes into each backoff delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Jitter {
    Full,
    Equal,
    None,
}

/// One `[[vendor]]`.
#[derive(Debug, Clone)]
pub struct Vendor {
    /// Also the folder `keyring/<name>/`.
    pub name: String,
    /// File-name patterns (`*`, `?`) of the vendor's bundles.
    pub bundles: Vec<String>,
    /// Whom to call to confirm a fingerprint or report a bad bundle.
    pub contact: Option<String>,
    /// Where it publishes its signing key; watched for changes.
    pub key_url: Option<String>,
    /// Distinct pinned certificates that must sign.
    pub signatures: usize,
    /// The folder of its pinned certificates and `pinned.sha256`.
    pub keyring: PathBuf,
    /// Overrides `[watch] interval` for its sources.
    pub interval: Option<Duration>,
    pub feeds: Vec<Feed>,
    /// What this vendor does with a good signature whose key has expired since.
    pub expired_signer: ExpiredSigner,
    /// Good signatures older than this are refused (`signature-too-old`).
    pub max_signature_age: Option<Duration>,
    /// Its own mail recipients, and whether they join `[alerts.email] to` or replace it.
    pub email_to: Vec<String>,
    pub email_to_mode: EmailToMode,
    /// Its products (`[[vendor.product]]`): what a bundle installs, and which version.
    pub products: Vec<Product>,
}

/// One `[[vendor.product]]`: the name advisories use, the bundles that install it, and
/// how a bundle's file name gives its version.
#[derive(Debug, Clone)]
pub struct Product {
    pub name: String,
    /// File-name patterns; the vendor's `bundles` when not given.
    pub bundles: Vec<String>,
    /// One capture group: the version in a matching file name. `None`: the first dotted
    /// number in the file name.
    pub version_pattern: Option<regex::Regex>,
    /// What is installed, stated by the operator; overrides history.
    pub installed: Option<crate::version::Version>,
    /// Words that tie feed entries to this product (used by advisory matching).
    pub match_words: Vec<String>,
    /// CPE and purl, matched against CSAF product identification helpers.
    pub cpe: Option<String>,
    pub purl: Option<String>,
}

impl Product {
    /// The version a bundle called `file_name` carries: `version_pattern`'s group, or
    /// the first dotted number.
    pub fn version_of(&self, file_name: &str) -> Option<crate::version::Version> {
        match &self.version_pattern {
            Some(re) => re
                .captures(file_name)
                .and_then(|c| c.get(1))
                .and_then(|m| crate::version::Version::parse(m.as_str()).ok()),
            None => crate::version::from_file_name(file_name),
        }
    }
}

/// `email_to_mode` in `[[vendor]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmailToMode {
    /// `email_to` receives the vendor's events besides `[alerts.email] to`.
    #[default]
    Add,
    /// Only `email_to` receives them.
    Replace,
}

/// `expired_signer` in `[[vendor]]`: the same for bundles, CSAF advisories and the
/// pinned-key checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpiredSigner {
    /// Accept, with the warning `key-expired-since-signing` (as GnuPG's `gpgv`).
    #[default]
    Warn,
    /// Refuse (`key-expired-since-signing`), as apt refuses `EXPKEYSIG`.
    Reject,
}

impl Vendor {
    /// What this vendor checks signatures for, in words: the bundles it names, a CSAF
    /// provider, a key URL compared with the pinned key. Empty for a vendor of plain
    /// feeds (RSS, Atom, JSON Feed, CISA KEV), which needs no keyring.
    pub fn signature_uses(&self) -> Vec<&'static str> {
        let mut uses = Vec::new();
        if !self.bundles.is_empty() {
            uses.push("bundles");
        }
        if self.feeds.iter().any(|f| f.format == FeedFormat::Csaf) {
            uses.push("a CSAF feed");
        }
        if self.key_url.is_some() {
            uses.push("key_url");
        }
        uses
    }
}

/// One `[[vendor.feed]]`.
#[derive(Debug, Clone)]
pub struct Feed {
    pub url: String,
    pub format: FeedFormat,
    /// Overrides the vendor's interval for this feed.
    pub interval: Option<Duration>,
}

/// What a feed URL serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedFormat {
    /// RSS 0.9x/1.0/2.0, Atom or JSON Feed, sniffed from the body.
    Auto,
    /// A CSAF 2.0 `provider-metadata.json`.
    Csaf,
    /// CISA's Known Exploited Vulnerabilities JSON catalogue.
    CisaKev,
}

/// `[alerts.email]`.
#[derive(Debug, Clone)]
pub struct Email {
    pub from: String,
    pub to: Vec<String>,
    /// `smtp://HOST[:PORT]`, `smtps://HOST[:PORT]`, `sendmail` or `sendmail:PATH`.
    pub url: String,
    /// Names of the environment variables holding the credentials (never the file).
    pub user_env: Option<String>,
    pub password_env: Option<String>,
    /// Refuse to send over `smtp://` without STARTTLS.
    pub require_tls: bool,
    /// Lets credentials go over `smtp://` without TLS (the default refuses).
    pub insecure_auth: bool,
    /// One message per run for advisory events.
    pub digest: bool,
    /// Advisory events below this severity are not mailed (`min_severity`).
    pub min_severity: Option<SeverityFloor>,
    /// The recipients of each vendor with its own `email_to`: `to` plus its list
    /// (`email_to_mode = "add"`) or its list alone (`"replace"`).
    pub vendor_to: std::collections::BTreeMap<String, Vec<String>>,
}

impl Email {
    /// Who receives `vendor`'s events.
    pub fn recipients(&self, vendor: &str) -> &[String] {
        self.vendor_to.get(vendor).unwrap_or(&self.to)
    }
}

/// `[alerts]`: where events go.
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    /// The program run for every event, and how long it may take.
    pub escalation: Option<PathBuf>,
    pub escalation_timeout: Duration,
    /// Advisory events below this severity are not given to the program.
    pub escalation_min_severity: Option<SeverityFloor>,
    pub email: Option<Email>,
    /// How long an event may stay undelivered on every channel before
    /// `status --check` says CRITICAL.
    pub pending_critical: Duration,
    /// `[[alerts.include]]`: when any, an advisory event must match one to be sent.
    pub include: Vec<Rule>,
    /// Variables holding the state's PostgreSQL password (`PGPASSWORD` and
    /// `[watch] password_env`): never passed on to the escalation program.
    pub secret_env: Vec<String>,
    /// `[[alerts.exclude]]`: an advisory event matching one is sent nowhere.
    pub exclude: Vec<Rule>,
}

/// One `[[alerts.include]]` or `[[alerts.exclude]]` rule: every field it sets must
/// match (at least one is set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// A vendor's `name` in this file.
    pub vendor: Option<String>,
    /// A product name the advisory gives (CISA KEV's `product`, a CSAF advisory's
    /// product names), case-insensitive.
    pub product: Option<String>,
    /// CISA KEV's `vendorProject`, case-insensitive.
    pub vendor_project: Option<String>,
    /// A case-insensitive substring of the title, summary or a CVE id.
    pub keyword: Option<String>,
}

/// The lowest severity a channel carries (`min_severity`). `unknown` is not on this
/// scale: an event whose source states no severity passes every floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SeverityFloor {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl SeverityFloor {
    const WORDS: [(&'static str, SeverityFloor); 5] = [
        ("info", SeverityFloor::Info),
        ("low", SeverityFloor::Low),
        ("medium", SeverityFloor::Medium),
        ("high", SeverityFloor::High),
        ("critical", SeverityFloor::Critical),
    ];
}

/// A configuration problem: where it is and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the key, such as `vendor[0].feed[1].url`.
    pub key: String,
    pub message: String,
}

/// Everything wrong with one configuration file.
#[derive(Debug, thiserror::Error)]
#[error("{}", render_problems(path, problems))]
pub struct ConfigError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if p.key.is_empty() {
            out.push_str(&format!("{}: {}", path.display(), p.message));
        } else {
            out.push_str(&format!("{}: {}: {}", path.display(), p.key, p.message));
        }
    }
    out
}

impl Config {
    /// Reads and validates `path`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing every problem: unreadable file, TOML syntax, unknown
    /// keys, bad durations, sizes, URLs or names.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            problems: vec![Problem {
                key: String::new(),
                message: format!("cannot read: {e}"),
            }],
        })?;
        Config::parse(path, &text)
    }

    /// Parses `text` as if read from `path` (which decides the base folder).
    ///
    /// # Errors
    ///
    /// As [`Config::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            problems: vec![Problem {
                key: String::new(),
                message: e.to_string().trim_end().to_string(),
            }],
        })?;
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Config::from_raw(path, &base, raw)
    }

    fn from_raw(path: &Path, base: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
        let mut v = Validator::default();
        let watch = v.watch(base, raw.watch.unwrap_or_default());
        let mut alerts = v.alerts(base, raw.alerts.unwrap_or_default());
        alerts.secret_env = vec!["PGPASSWORD".to_string()];
        if let crate::store::StateLocation::Postgres(pg) = &watch.state {
            if pg.password_env != "PGPASSWORD" {
                alerts.secret_env.push(pg.password_env.clone());
            }
        }
        // A delivery's claim must outlive its attempt, or a second instance sharing the
        // state could take it over and send the event again while the first still runs.
        if alerts.escalation.is_some() && watch.lease <= alerts.escalation_timeout {
            v.problem(
                "watch.lease",
                format!(
                    "must be longer than alerts.escalation_timeout ({}s), so a delivery's claim outlives its attempt",
                    alerts.escalation_timeout.as_secs()
                ),
            );
        }
        let mut vendors = Vec::new();
        for (i, rv) in raw.vendor.into_iter().enumerate() {
            if let Some(vendor) = v.vendor(base, i, rv) {
                if vendors.iter().any(|o: &Vendor| o.name == vendor.name) {
                    v.problem(
                        format!("vendor[{i}].name"),
                        format!("vendor {:?} is defined twice", vendor.name),
                    );
                }
                vendors.push(vendor);
            }
        }
        v.vendor_recipients(&mut alerts, &vendors);
        v.rule_vendors(&alerts, &vendors);
        if v.problems.is_empty() {
            Ok(Config {
                path: path.to_path_buf(),
                watch,
                alerts,
                vendors,
            })
        } else {
            Err(ConfigError {
                path: path.to_path_buf(),
                problems: v.problems,
            })
        }
    }

    /// The vendor called `name`.
    pub fn vendor(&self, name: &str) -> Option<&Vendor> {
        self.vendors.iter().find(|v| v.name == name)
    }

    /// The product of `vendor` whose `bundles` patterns match `file_name` (the first
    /// one, in the file's order).
    pub fn product_for_bundle(&self, vendor: &str, file_name: &str) -> Option<&Product> {
        self.vendor(vendor)?
            .products
            .iter()
            .find(|p| p.bundles.iter().any(|b| wildcard_match(b, file_name)))
    }

    /// The vendors whose `bundles` patterns match `file_name`.
    pub fn vendors_for_bundle(&self, file_name: &str) -> Vec<&Vendor> {
        self.vendors
            .iter()
            .filter(|v| v.bundles.iter().any(|p| wildcard_match(p, file_name)))
            .collect()
    }
}

/// Where a vendor's keyring lives when no configuration names it: `keyring/<vendor>/`
/// under `base`.
pub fn default_keyring_dir(base: &Path, vendor: &str) -> PathBuf {
    base.join("keyring").join(vendor)
}

/// Shell-style wildcard match of a whole file name: `*` is any run of characters, `?`
/// one character, everything else literal.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Classic greedy matcher with one backtrack point for the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == n[ni])) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Parses a duration such as `30s`, `1h`, `2m 30s`.
///
/// # Errors
///
/// A message saying what was expected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("expected a duration such as \"30s\", \"5m\" or \"1h\", got {s:?} ({e})")
    })?;
    if d.is_zero() {
        return Err(format!("expected a duration greater than zero, got {s:?}"));
    }
    Ok(d)
}

/// Parses the address the daemon's metrics endpoint listens on: an IP address and a
/// port (`127.0.0.1:9899`, `[::1]:9899`; port 0 lets the system choose). Names are
/// refused: which interface a name means is not something to guess.
///
/// # Errors
///
/// A message saying what was expected.
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("expected an IP address and port such as \"127.0.0.1:9899\" or \"[::1]:9899\", got {s:?}")
    })
}

/// Parses a size such as `20MiB`, `512KiB`, `1GB` or a plain byte count.
///
/// # Errors
///
/// A message saying what was expected.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let expected =
        || format!("expected a size such as \"20MiB\", \"512KiB\" or \"1GB\", got {s:?}");
    let n: u64 = num.parse().map_err(|_| expected())?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(expected()),
    };
    n.checked_mul(mult).filter(|&v| v > 0).ok_or_else(expected)
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// `value` parsed as a duration, or `default_secs` when absent or wrong (a problem).
    fn duration(&mut self, key: &str, value: Option<&str>, default_secs: u64) -> Duration {
        self.opt_duration(key, value)
            .unwrap_or(Duration::from_secs(default_secs))
    }

    fn opt_duration(&mut self, key: &str, value: Option<&str>) -> Option<Duration> {
        value.and_then(|s| match parse_duration(s) {
            Ok(d) => Some(d),
            Err(m) => {
                self.problem(key, m);
                None
            }
        })
    }

    fn watch(&mut self, base: &Path, raw: RawWatch) -> Watch {
        let max_body = match raw.max_body.as_deref() {
            None => 20 << 20,
            Some(s) => parse_size(s).unwrap_or_else(|m| {
                self.problem("watch.max_body", m);
                20 << 20
            }),
        };
        let concurrency = raw.concurrency.unwrap_or(8);
        if concurrency == 0 {
            self.problem("watch.concurrency", "expected at least 1");
        }
        let per_host = raw.per_host.unwrap_or(2);
        if per_host == 0 {
            self.problem("watch.per_host", "expected at least 1");
        }
        let failures_before_alert = raw.failures_before_alert.unwrap_or(3);
        if failures_before_alert == 0 {
            self.problem("watch.failures_before_alert", "expected at least 1");
        }
        let problem_events = raw.problem_events.unwrap_or(3);
        if problem_events > 1000 {
            self.problem(
                "watch.problem_events",
                format!("expected at most 1000 (the rest of a poll's problems go into one summary event), got {problem_events}"),
            );
        }
        let user_agent = raw
            .user_agent
            .unwrap_or_else(|| format!("vendorguard/{}", env!("CARGO_PKG_VERSION")));
        if user_agent.chars().any(char::is_control) {
            self.problem("watch.user_agent", "must not contain control characters");
        }
        let rb = raw.backoff.unwrap_or_default();
        let backoff = Backoff {
            attempts: rb.attempts.unwrap_or(4),
            initial: self.duration("watch.backoff.initial", rb.initial.as_deref(), 1),
            max: self.duration("watch.backoff.max", rb.max.as_deref(), 120),
            jitter: rb.jitter.unwrap_or(Jitter::Full),
        };
        if backoff.attempts == 0 {
            self.problem(
                "watch.backoff.attempts",
                "expected at least 1 (1 means no retry)",
            );
        }
        if backoff.initial > backoff.max {
            self.problem(
                "watch.backoff.initial",
                "must not be greater than watch.backoff.max",
            );
        }
        let state = match crate::store::StateLocation::parse(
            raw.state.as_deref().unwrap_or("state/vendorguard.sqlite"),
            base,
            raw.password_env.as_deref(),
        ) {
            Ok(s) => s,
            Err(e) => {
                let key = match raw.state.is_some() {
                    true => "watch.state",
                    false => "watch.password_env",
                };
                self.problem(key, e);
                crate::store::StateLocation::Sqlite(base.join("state/vendorguard.sqlite"))
            }
        };
        if let Some(id) = &raw.instance {
            if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control()) {
                self.problem(
                    "watch.instance",
                    "expected 1 to 128 characters without control characters",
                );
            }
        }
        let lease = self.duration("watch.lease", raw.lease.as_deref(), 300);
        if lease < Duration::from_secs(2) || lease > Duration::from_secs(24 * 3600) {
            self.problem("watch.lease", "expected from 2s to 24h");
        }
        Watch {
            state,
            instance: raw.instance,
            lease,
            interval: self.duration("watch.interval", raw.interval.as_deref(), 3600),
            timeout: self.duration("watch.timeout", raw.timeout.as_deref(), 30),
            max_body,
            concurrency: concurrency.max(1),
            per_host: per_host.max(1),
            user_agent,
            failures_before_alert,
            stale_after: self.opt_duration("watch.stale_after", raw.stale_after.as_deref()),
            problem_events,
            backoff,
            metrics: raw.metrics.as_deref().and_then(|m| match parse_listen(m) {
                Ok(a) => Some(a),
                Err(e) => {
                    self.problem("watch.metrics", e);
                    None
                }
            }),
        }
    }

    fn alerts(&mut self, base: &Path, raw: RawAlerts) -> Alerts {
        let email = raw.email.map(|e| {
            let url_ok = e.url == "sendmail"
                || e.url.starts_with("sendmail:")
                || url::Url::parse(&e.url)
                    .ok()
                    .is_some_and(|u| matches!(u.scheme(), "smtp" | "smtps") && u.host().is_some());
            if !url_ok {
                self.problem(
                    "alerts.email.url",
                    format!(
                        "expected smtp://HOST[:PORT], smtps://HOST[:PORT] or sendmail, got {:?}",
                        e.url
                    ),
                );
            }
            if !is_plain_address(&e.from) {
                self.problem(
                    "alerts.email.from",
                    format!("expected one email address, got {:?}", e.from),
                );
            }
            if e.to.is_empty() {
                self.problem("alerts.email.to", "expected at least one address");
            }
            for (i, to) in e.to.iter().enumerate() {
                if !is_plain_address(to) {
                    self.problem(
                        format!("alerts.email.to[{i}]"),
                        format!("expected one email address, got {to:?}"),
                    );
                }
            }
            Email {
                url: e.url,
                from: e.from,
                to: e.to,
                user_env: e.user_env,
                password_env: e.password_env,
                require_tls: e.require_tls.unwrap_or(false),
                insecure_auth: e.insecure_auth.unwrap_or(false),
                digest: e.digest.unwrap_or(false),
                min_severity: self.severity_floor("alerts.email.min_severity", e.min_severity),
                vendor_to: Default::default(),
            }
        });
        let escalation_min_severity = self.severity_floor(
            "alerts.escalation_min_severity",
            raw.escalation_min_severity,
        );
        if escalation_min_severity.is_some() && raw.escalation.is_none() {
            self.problem(
                "alerts.escalation_min_severity",
                "set without alerts.escalation (the program it limits)",
            );
        }
        Alerts {
            secret_env: Vec::new(),
            escalation: raw.escalation.map(|p| base.join(p)),
            escalation_timeout: self.duration(
                "alerts.escalation_timeout",
                raw.escalation_timeout.as_deref(),
                60,
            ),
            escalation_min_severity,
            email,
            pending_critical: self.duration(
                "alerts.pending_critical",
                raw.pending_critical.as_deref(),
                3600,
            ),
            include: self.rules("alerts.include", raw.include),
            exclude: self.rules("alerts.exclude", raw.exclude),
        }
    }

    fn severity_floor(&mut self, key: &str, value: Option<String>) -> Option<SeverityFloor> {
        let word = value?;
        let found = SeverityFloor::WORDS
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, f)| *f);
        if found.is_none() {
            self.problem(
                key,
                format!(
                    "expected one of info, low, medium, high, critical, got {word:?} \
                     (an event of unknown severity passes every min_severity)"
                ),
            );
        }
        found
    }

    fn rules(&mut self, key: &str, raw: Vec<RawRule>) -> Vec<Rule> {
        let mut out = Vec::new();
        for (i, r) in raw.into_iter().enumerate() {
            let fields = [
                ("vendor", &r.vendor),
                ("product", &r.product),
                ("vendor_project", &r.vendor_project),
                ("keyword", &r.keyword),
            ];
            if fields.iter().all(|(_, v)| v.is_none()) {
                self.problem(
                    format!("{key}[{i}]"),
                    "expected at least one of vendor, product, vendor_project, keyword",
                );
            }
            for (name, v) in fields {
                if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    self.problem(format!("{key}[{i}].{name}"), "must not be empty");
                }
            }
            out.push(Rule {
                vendor: r.vendor,
                product: r.product,
                vendor_project: r.vendor_project,
                keyword: r.keyword,
            });
        }
        out
    }

    /// Every `vendor` a routing rule names must be a vendor of this file: a misspelt
    /// one would silently match nothing.
    fn rule_vendors(&mut self, alerts: &Alerts, vendors: &[Vendor]) {
        for (key, rules) in [
            ("alerts.include", &alerts.include),
            ("alerts.exclude", &alerts.exclude),
        ] {
            for (i, r) in rules.iter().enumerate() {
                let Some(name) = r.vendor.as_deref().filter(|n| !n.trim().is_empty()) else {
                    continue;
                };
                if !vendors.iter().any(|v| v.name == name) {
                    self.problem(
                        format!("{key}[{i}].vendor"),
                        format!("no [[vendor]] is named {name:?}"),
                    );
                }
            }
        }
    }

    fn vendor(&mut self, base: &Path, i: usize, raw: RawVendor) -> Option<Vendor> {
        let key = format!("vendor[{i}]");
        if !is_vendor_name(&raw.name) {
            self.problem(
                format!("{key}.name"),
                format!(
                    "expected a name of lowercase letters, digits, '-' and '_' (it names the folder keyring/<name>/), got {:?}",
                    raw.name
                ),
            );
            return None;
        }
        let key = format!("vendor[{i}] ({})", raw.name);
        let signatures = raw.signatures.unwrap_or(DEFAULT_SIGNATURES);
        if signatures == 0 {
            self.problem(format!("{key}.signatures"), "expected at least 1");
        }
        for (j, p) in raw.bundles.iter().enumerate() {
            if p.is_empty() || p.contains('/') {
                self.problem(
                    format!("{key}.bundles[{j}]"),
                    format!("expected a file-name pattern such as \"Full-upgrade-package-*.zip\" (no folders), got {p:?}"),
                );
            }
        }
        if let Some(u) = &raw.key_url {
            if let Err(m) = check_url(u, true) {
                self.problem(format!("{key}.key_url"), m);
            }
        }
        let mut feeds = Vec::new();
        for (j, f) in raw.feed.into_iter().enumerate() {
            let format = f.format.unwrap_or(FeedFormat::Auto);
            let strict = format == FeedFormat::Csaf;
            if let Err(m) = check_url(&f.url, strict) {
                self.problem(format!("{key}.feed[{j}].url"), m);
            }
            feeds.push(Feed {
                url: f.url,
                format,
                interval: self
                    .opt_duration(&format!("{key}.feed[{j}].interval"), f.interval.as_deref()),
            });
        }
        let keyring = match raw.keyring {
            Some(p) => base.join(p),
            None => default_keyring_dir(base, &raw.name),
        };
        let expired_signer = match raw.expired_signer.as_deref() {
            None | Some("warn") => ExpiredSigner::Warn,
            Some("reject") => ExpiredSigner::Reject,
            Some(other) => {
                self.problem(
                    format!("{key}.expired_signer"),
                    format!("expected \"warn\" or \"reject\", got {other:?}"),
                );
                ExpiredSigner::Warn
            }
        };
        let max_signature_age = self.opt_duration(
            &format!("{key}.max_signature_age"),
            raw.max_signature_age.as_deref(),
        );
        for (j, to) in raw.email_to.iter().enumerate() {
            if !is_plain_address(to) || to.parse::<lettre::message::Mailbox>().is_err() {
                self.problem(
                    format!("{key}.email_to[{j}]"),
                    format!("expected one email address, got {to:?}"),
                );
            }
        }
        let email_to_mode = match raw.email_to_mode.as_deref() {
            None | Some("add") => EmailToMode::Add,
            Some("replace") => {
                if raw.email_to.is_empty() {
                    self.problem(
                        format!("{key}.email_to"),
                        "email_to_mode = \"replace\" needs at least one address",
                    );
                }
                EmailToMode::Replace
            }
            Some(other) => {
                self.problem(
                    format!("{key}.email_to_mode"),
                    format!("expected \"add\" or \"replace\", got {other:?}"),
                );
                EmailToMode::Add
            }
        };
        let products = self.products(&key, &raw.bundles, raw.product);
        Some(Vendor {
            products,
            email_to: raw.email_to,
            email_to_mode,
            interval: self.opt_duration(&format!("{key}.interval"), raw.interval.as_deref()),
            name: raw.name,
            bundles: raw.bundles,
            signatures: signatures.max(1),
            keyring,
            key_url: raw.key_url,
            contact: raw.contact,
            feeds,
            expired_signer,
            max_signature_age,
        })
    }
}

impl Validator {
    /// A vendor's `[[vendor.product]]` tables, every problem named by its key.
    fn products(
        &mut self,
        vkey: &str,
        vendor_bundles: &[String],
        raw: Vec<RawProduct>,
    ) -> Vec<Product> {
        let mut out: Vec<Product> = Vec::new();
        for (j, rp) in raw.into_iter().enumerate() {
            let key = format!("{vkey}.product[{j}]");
            if rp.name.trim().is_empty() || rp.name.chars().any(char::is_control) {
                self.problem(
                    format!("{key}.name"),
                    format!("expected a product name, got {:?}", rp.name),
                );
            }
            if out.iter().any(|p| p.name == rp.name) {
                self.problem(
                    format!("{key}.name"),
                    format!("product {:?} is defined twice", rp.name),
                );
            }
            let bundles = rp.bundles.unwrap_or_else(|| vendor_bundles.to_vec());
            if bundles.is_empty() {
                self.problem(format!("{key}.bundles"), "expected at least one file-name pattern (the vendor has no `bundles` to default to)");
            }
            for (k, p) in bundles.iter().enumerate() {
                if p.is_empty() || p.contains('/') {
                    self.problem(format!("{key}.bundles[{k}]"), format!("expected a file-name pattern such as \"dten-api-*.zip\" (no folders), got {p:?}"));
                }
            }
            let version_pattern = rp.version_pattern.and_then(|pat| {
                match regex::RegexBuilder::new(&pat).size_limit(1 << 20).build() {
                    Ok(re) if re.captures_len() == 2 => Some(re),
                    Ok(re) => {
                        self.problem(format!("{key}.version_pattern"), format!("expected exactly one capture group (the version), got {} in {pat:?}", re.captures_len() - 1));
                        None
                    }
                    Err(e) => {
                        let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                        self.problem(format!("{key}.version_pattern"), format!("not a valid regular expression: {pat:?} ({first})"));
                        None
                    }
                }
            });
            let installed = rp
                .installed
                .and_then(|v| match crate::version::Version::parse(&v) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        self.problem(
                            format!("{key}.installed"),
                            format!("expected a version such as \"4.2.1\", got {v:?} ({e})"),
                        );
                        None
                    }
                });
            if let Some(c) = &rp.cpe {
                if !(c.starts_with("cpe:2.3:") || c.starts_with("cpe:/")) {
                    self.problem(
                        format!("{key}.cpe"),
                        format!("expected a CPE such as \"cpe:2.3:a:dten:api\", got {c:?}"),
                    );
                }
            }
            if let Some(p) = &rp.purl {
                if !p.starts_with("pkg:") {
                    self.problem(
                        format!("{key}.purl"),
                        format!("expected a purl such as \"pkg:generic/dten/api\", got {p:?}"),
                    );
                }
            }
            for (k, w) in rp.match_words.iter().enumerate() {
                if w.trim().is_empty() {
                    self.problem(
                        format!("{key}.match[{k}]"),
                        "expected a word, got an empty string",
                    );
                }
            }
            out.push(Product {
                name: rp.name,
                bundles,
                version_pattern,
                installed,
                match_words: rp.match_words,
                cpe: rp.cpe,
                purl: rp.purl,
            });
        }
        out
    }

    /// Resolves each vendor's `email_to` into `[alerts.email]`'s recipient table.
    fn vendor_recipients(&mut self, alerts: &mut Alerts, vendors: &[Vendor]) {
        for (i, vendor) in vendors.iter().enumerate() {
            if vendor.email_to.is_empty() {
                continue;
            }
            let Some(email) = alerts.email.as_mut() else {
                self.problem(
                    format!("vendor[{i}] ({}).email_to", vendor.name),
                    "needs [alerts.email] to send through",
                );
                continue;
            };
            let mut to = match vendor.email_to_mode {
                EmailToMode::Add => email.to.clone(),
                EmailToMode::Replace => Vec::new(),
            };
            for a in &vendor.email_to {
                if !to.contains(a) {
                    to.push(a.clone());
                }
            }
            email.vendor_to.insert(vendor.name.clone(), to);
        }
    }
}

fn is_vendor_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !s.starts_with(['-', '_'])
}

fn is_plain_address(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
}

/// Checks a source URL: http or https with a host. `https_only` sources (key URLs and
/// CSAF providers) may use plain http only on a loopback address.
fn check_url(s: &str, https_only: bool) -> Result<(), String> {
    let u = url::Url::parse(s).map_err(|e| format!("expected an http(s) URL, got {s:?} ({e})"))?;
    let host = u
        .host()
        .ok_or_else(|| format!("expected an http(s) URL with a host, got {s:?}"))?;
    match u.scheme() {
        "https" => Ok(()),
        "http" if !https_only || is_loopback(&host) => Ok(()),
        "http" => Err(format!(
            "must be https:// (a key or CSAF provider fetched over plain http can be swapped in transit), got {s:?}"
        )),
        other => Err(format!("expected an http(s) URL, got scheme {other:?} in {s:?}")),
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => *d == "localhost",
        url::Host::Ipv4(a) => a.is_loopback(),
        url::Host::Ipv6(a) => a.is_loopback(),
    }
}

// ---- serde at the edge -------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    watch: Option<RawWatch>,
    alerts: Option<RawAlerts>,
    #[serde(default)]
    vendor: Vec<RawVendor>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    state: Option<String>,
    password_env: Option<String>,
    instance: Option<String>,
    lease: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
    max_body: Option<String>,
    concurrency: Option<usize>,
    per_host: Option<usize>,
    user_agent: Option<String>,
    failures_before_alert: Option<u32>,
    stale_after: Option<String>,
    problem_events: Option<usize>,
    backoff: Option<RawBackoff>,
    metrics: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackoff {
    attempts: Option<u32>,
    initial: Option<String>,
    max: Option<String>,
    jitter: Option<Jitter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    escalation: Option<PathBuf>,
    escalation_timeout: Option<String>,
    escalation_min_severity: Option<String>,
    email: Option<RawEmail>,
    pending_critical: Option<String>,
    #[serde(default)]
    include: Vec<RawRule>,
    #[serde(default)]
    exclude: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    vendor: Option<String>,
    product: Option<String>,
    vendor_project: Option<String>,
    keyword: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    url: String,
    from: String,
    to: Vec<String>,
    user_env: Option<String>,
    password_env: Option<String>,
    require_tls: Option<bool>,
    insecure_auth: Option<bool>,
    digest: Option<bool>,
    min_severity: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVendor {
    name: String,
    #[serde(default)]
    bundles: Vec<String>,
    signatures: Option<usize>,
    keyring: Option<PathBuf>,
    key_url: Option<String>,
    contact: Option<String>,
    interval: Option<String>,
    expired_signer: Option<String>,
    max_signature_age: Option<String>,
    #[serde(default)]
    email_to: Vec<String>,
    email_to_mode: Option<String>,
    #[serde(default)]
    feed: Vec<RawFeed>,
    #[serde(default)]
    product: Vec<RawProduct>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProduct {
    name: String,
    bundles: Option<Vec<String>>,
    version_pattern: Option<String>,
    installed: Option<String>,
    #[serde(default, rename = "match")]
    match_words: Vec<String>,
    cpe: Option<String>,
    purl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    url: String,
    format: Option<FeedFormat>,
    interval: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, Vec<String>> {
        Config::parse(Path::new("/etc/vg/feeds.toml"), text).map_err(|e| {
            e.problems
                .into_iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect()
        })
    }

    #[test]
    fn shipped_example_loads() {
        let text = include_str!("../feeds.toml");
        let c = check(text).expect("shipped feeds.toml must load");
        assert_eq!(c.vendors[0].name, "dten");
        assert_eq!(
            c.watch.state,
            crate::store::StateLocation::Sqlite("/etc/vg/state/vendorguard.sqlite".into())
        );
        assert_eq!(c.vendors[0].keyring, Path::new("/etc/vg/keyring/dten"));
        assert_eq!(c.watch.max_body, 20 << 20);
        assert!(!c.alerts.email.as_ref().unwrap().insecure_auth);
        assert_eq!(c.watch.problem_events, 3);
    }

    #[test]
    fn state_lease_and_instance() {
        let c = check(
            "[watch]\nstate = \"postgresql://vg@db.example/vg\"\npassword_env = \"VG_PW\"\n\
             instance = \"watch-a\"\nlease = \"30s\"\n",
        )
        .unwrap();
        let crate::store::StateLocation::Postgres(pg) = &c.watch.state else {
            panic!("{:?}", c.watch.state)
        };
        assert_eq!(pg.password_env, "VG_PW");
        assert_eq!(c.watch.instance.as_deref(), Some("watch-a"));
        assert_eq!(c.watch.lease, Duration::from_secs(30));
        for (toml, want) in [
            (
                "[watch]\nstate = \"postgresql://vg:pw@db/vg\"\n",
                "watch.state: the URL holds a password",
            ),
            (
                "[watch]\npassword_env = \"X\"\n",
                "watch.password_env: password_env is for a postgresql:// state only",
            ),
            ("[watch]\nlease = \"1s\"\n", "watch.lease: expected from 2s to 24h"),
            ("[watch]\ninstance = \"\"\n", "watch.instance: expected 1 to 128"),
            (
                "[watch]\nlease = \"30s\"\n[alerts]\nescalation = \"e\"\nescalation_timeout = \"30s\"\n",
                "watch.lease: must be longer than alerts.escalation_timeout (30s)",
            ),
        ] {
            let err = check(toml).unwrap_err();
            assert!(err.iter().any(|e| e.starts_with(want)), "{toml}: {err:?}");
        }
    }

    #[test]
    fn problem_events() {
        let c = check("[watch]\nproblem_events = 0\n").unwrap();
        assert_eq!(c.watch.problem_events, 0, "0: only the summary");
        let err = check("[watch]\nproblem_events = 5000\n").unwrap_err();
        assert!(
            err[0].starts_with("watch.problem_events: expected at most 1000"),
            "{err:?}"
        );
        let err = check("[watch]\nproblem_events = -1\n").unwrap_err();
        assert!(err[0].contains("problem_events"), "{err:?}");
    }

    #[test]
    fn monitoring_keys_are_parsed_strictly() {
        let c = check("").unwrap();
        assert_eq!(c.alerts.pending_critical, Duration::from_secs(3600));
        assert_eq!(c.watch.metrics, None);
        let c = check("[watch]\nmetrics = \"127.0.0.1:0\"\n[alerts]\npending_critical = \"15m\"\n")
            .unwrap();
        assert_eq!(c.alerts.pending_critical, Duration::from_secs(900));
        assert_eq!(c.watch.metrics, Some("127.0.0.1:0".parse().unwrap()));
        let c = check("[watch]\nmetrics = \"[::1]:9899\"\n").unwrap();
        assert_eq!(c.watch.metrics, Some("[::1]:9899".parse().unwrap()));
        for bad in [
            "localhost:9899",
            "127.0.0.1",
            ":9899",
            "127.0.0.1:99999",
            " 127.0.0.1:1",
        ] {
            let err = check(&format!("[watch]\nmetrics = {bad:?}\n")).unwrap_err();
            assert!(
                err[0].starts_with("watch.metrics: expected an IP address and port"),
                "{bad}: {err:?}"
            );
        }
        let err = check("[alerts]\npending_critical = \"0s\"\n").unwrap_err();
        assert!(
            err[0].starts_with("alerts.pending_critical: expected a duration greater than zero"),
            "{err:?}"
        );
        let err = check("[alerts]\npending_critical = 3600\n").unwrap_err();
        assert!(err[0].contains("pending_critical"), "{err:?}");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = check("[watch]\nintervall = \"1h\"\n").unwrap_err();
        assert!(err[0].contains("unknown field `intervall`"), "{err:?}");
        assert!(err[0].contains("line 2"), "{err:?}");
    }

    #[test]
    fn every_semantic_problem_is_reported() {
        let err = check(
            r#"
[watch]
timeout = "soon"
max_body = "lots"
[[vendor]]
name = "acme"
key_url = "http://acme.example/key.asc"
[[vendor.feed]]
url = "ftp://acme.example/feed"
[[vendor]]
name = "Bad Name"
"#,
        )
        .unwrap_err();
        assert_eq!(err.len(), 5, "{err:?}");
        for want in [
            "watch.timeout: expected a duration",
            "watch.max_body: expected a size",
            "vendor[0] (acme).key_url: must be https://",
            "vendor[0] (acme).feed[0].url: expected an http(s) URL",
            "vendor[1].name: expected a name of lowercase letters",
        ] {
            assert!(
                err.iter().any(|e| e.starts_with(want)),
                "{want} missing in {err:?}"
            );
        }
    }

    #[test]
    fn vendor_email_to_adds_or_replaces() {
        let base = "[alerts.email]\nurl = \"sendmail\"\nfrom = \"vg@x.example\"\nto = [\"all@x.example\"]\n";
        let c = check(&format!(
            "{base}[[vendor]]\nname = \"a\"\nemail_to = [\"a@x.example\"]\n\
             [[vendor]]\nname = \"b\"\nemail_to = [\"b@x.example\"]\nemail_to_mode = \"replace\"\n\
             [[vendor]]\nname = \"c\"\n"
        ))
        .unwrap();
        let e = c.alerts.email.as_ref().unwrap();
        assert_eq!(e.recipients("a"), ["all@x.example", "a@x.example"]);
        assert_eq!(e.recipients("b"), ["b@x.example"]);
        assert_eq!(e.recipients("c"), ["all@x.example"]);
        let bad = |vendor: &str, with_email: bool| {
            let head = if with_email { base } else { "" };
            check(&format!("{head}[[vendor]]\nname = \"v\"\n{vendor}")).unwrap_err()
        };
        assert_eq!(
            bad(
                "email_to = [\"a@x.example\"]\nemail_to_mode = \"only\"\n",
                true
            ),
            ["vendor[0] (v).email_to_mode: expected \"add\" or \"replace\", got \"only\""]
        );
        assert_eq!(
            bad("email_to = [\"Bob <b@x\"]\n", true),
            ["vendor[0] (v).email_to[0]: expected one email address, got \"Bob <b@x\""]
        );
        assert_eq!(
            bad("email_to_mode = \"replace\"\n", true),
            ["vendor[0] (v).email_to: email_to_mode = \"replace\" needs at least one address"]
        );
        assert_eq!(
            bad("email_to = [\"a@x.example\"]\n", false),
            ["vendor[0] (v).email_to: needs [alerts.email] to send through"]
        );
    }

    #[test]
    fn products() {
        let c = check(
            "[[vendor]]\nname = \"dten\"\nbundles = [\"dten-api-*.zip\"]\n\
             [[vendor.product]]\nname = \"dten-api\"\ninstalled = \"4.2.1\"\nmatch = [\"DTEN API\"]\n\
             cpe = \"cpe:2.3:a:dten:api\"\npurl = \"pkg:generic/dten/api\"\n\
             [[vendor.product]]\nname = \"fw\"\nbundles = [\"fw_*.bin\"]\nversion_pattern = 'fw_v([0-9.]+)_'\n",
        )
        .unwrap();
        let p = &c.vendors[0].products;
        assert_eq!(
            p[0].bundles,
            ["dten-api-*.zip"],
            "the vendor's bundles by default"
        );
        assert_eq!(p[0].installed.as_ref().unwrap().as_str(), "4.2.1");
        assert_eq!(p[0].version_of("dten-api-4.3.zip").unwrap().as_str(), "4.3");
        assert_eq!(
            p[1].version_of("fw_v2.10_2026.bin").unwrap().as_str(),
            "2.10"
        );
        assert!(p[1].version_of("fw_2026.bin").is_none());
        assert_eq!(
            c.product_for_bundle("dten", "fw_v1_.bin").unwrap().name,
            "fw"
        );
        assert!(c.product_for_bundle("dten", "other.zip").is_none());
        let bad = |product: &str| {
            check(&format!(
                "[[vendor]]\nname = \"v\"\nbundles = [\"v-*.zip\"]\n[[vendor.product]]\n{product}"
            ))
            .unwrap_err()
        };
        assert_eq!(
            bad("name = \"p\"\nversion_pattern = 'v-(.*'\n")[0],
            "vendor[0] (v).product[0].version_pattern: not a valid regular expression: \"v-(.*\" (error: unclosed group)"
        );
        assert_eq!(
            bad("name = \"p\"\nversion_pattern = 'v-.*'\n"),
            ["vendor[0] (v).product[0].version_pattern: expected exactly one capture group (the version), got 0 in \"v-.*\""]
        );
        assert!(bad("name = \"p\"\ninstalled = \"latest\"\n")[0]
            .starts_with("vendor[0] (v).product[0].installed: expected a version"));
        assert!(bad("name = \"p\"\ncpe = \"dten\"\n")[0]
            .starts_with("vendor[0] (v).product[0].cpe: expected a CPE"));
        let unknown = bad("name = \"p\"\nversion = \"1\"\n");
        assert!(
            unknown[0].contains("unknown field `version`"),
            "{unknown:?}"
        );
        assert!(
            bad("name = \"p\"\n[[vendor.product]]\nname = \"p\"\n")[0].contains("defined twice")
        );
        let none =
            check("[[vendor]]\nname = \"v\"\n[[vendor.product]]\nname = \"p\"\n").unwrap_err();
        assert!(
            none[0].starts_with("vendor[0] (v).product[0].bundles: expected at least one"),
            "{none:?}"
        );
    }

    #[test]
    fn loopback_may_use_http_for_keys() {
        let c = check("[[vendor]]\nname = \"a\"\nkey_url = \"http://127.0.0.1:8080/k.asc\"\n");
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn wildcards() {
        for (p, n, want) in [
            (
                "Full-upgrade-package-dten*.zip",
                "Full-upgrade-package-dten.zip",
                true,
            ),
            (
                "Full-upgrade-package-dten*.zip",
                "Full-upgrade-package-dten-2.1.zip",
                true,
            ),
            (
                "Full-upgrade-package-dten*.zip",
                "Full-upgrade-package-dten.zip.asc",
                false,
            ),
            ("*.tar.?z", "a.tar.gz", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("exact", "exact", true),
        ] {
            assert_eq!(wildcard_match(p, n), want, "{p} vs {n}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20MiB"), Ok(20 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("0").is_err());
        assert!(parse_size("20 parsecs").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn routing_rules_and_severity_floors() {
        let base = "[alerts]\nescalation = \"esc\"\n";
        let vendor = "\n[[vendor]]\nname = \"acme\"\n";
        let ok = check(&format!(
            "{base}escalation_min_severity = \"high\"\n[[alerts.exclude]]\nvendor = \"acme\"\nkeyword = \"Chrome\"\n[[alerts.include]]\nvendor_project = \"Microsoft\"\n{vendor}"
        ))
        .unwrap();
        assert_eq!(ok.alerts.escalation_min_severity, Some(SeverityFloor::High));
        assert_eq!(ok.alerts.exclude[0].keyword.as_deref(), Some("Chrome"));
        assert_eq!(
            ok.alerts.include[0].vendor_project.as_deref(),
            Some("Microsoft")
        );
        for (extra, want) in [
            ("escalation_min_severity = \"urgent\"\n", "alerts.escalation_min_severity: expected one of info, low, medium, high, critical, got \"urgent\""),
            ("escalation_min_severity = \"unknown\"\n", "alerts.escalation_min_severity: expected one of"),
            ("[[alerts.exclude]]\n", "alerts.exclude[0]: expected at least one of vendor"),
            ("[[alerts.exclude]]\nkeyword = \" \"\n", "alerts.exclude[0].keyword: must not be empty"),
            ("[[alerts.include]]\nvendor = \"acmee\"\n", "alerts.include[0].vendor: no [[vendor]] is named \"acmee\""),
        ] {
            let err = check(&format!("{base}{extra}{vendor}")).unwrap_err();
            assert!(err.iter().any(|e| e.starts_with(want)), "{extra}: {err:?}");
        }
        let err = check(&format!(
            "{base}[[alerts.exclude]]\nvendr = \"acme\"\n{vendor}"
        ))
        .unwrap_err();
        assert!(err[0].contains("unknown field `vendr`"), "{err:?}");
        let err = check("[alerts]\nescalation_min_severity = \"low\"\n").unwrap_err();
        assert!(err[0].contains("set without alerts.escalation"), "{err:?}");
    }
}
