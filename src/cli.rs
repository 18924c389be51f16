//! The command line, as clap parses it. Raw flags only: turning them into validated
//! settings (which keyring, which pins) is done by the command modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The version `--version` prints: the package version, and the git commit when the
/// binary was built from a checkout (see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    env!("VENDORGUARD_VERSION_SUFFIX")
);

/// Verify vendor upgrade bundles against pinned OpenPGP keys and hashes, and watch
/// vendor advisory feeds.
#[derive(Debug, Parser)]
#[command(name = "vendorguard", version = VERSION, about, max_term_width = 100)]
pub struct Cli {
    /// The configuration file [default: ./feeds.toml when present].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log output on stderr (repeatable). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// How log lines on stderr look: text, or json (one object a line: timestamp,
    /// level, target, message and fields) for journald or a log shipper.
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify a downloaded bundle before it is unpacked.
    ///
    /// Exit codes: 0 verified; 1 rejected; 2 could not check; 3 unexpected signer (no
    /// pinned certificate signed and a key that is not pinned did).
    Verify(VerifyArgs),
    /// Verify, then extract exactly the verified bytes into a new folder, safely.
    ///
    /// Exit codes as verify; also 1 when the archive holds an unsafe or corrupt entry,
    /// 2 when the target cannot be written. The target is untouched on any failure.
    Unpack(UnpackArgs),
    /// List what the bundle would install that has side effects: cron entries, systemd
    /// units, scripts using sudo or systemctl, hosts it talks to, setuid files.
    Inspect(InspectArgs),
    /// What changes from one bundle to the next: files, cron entries, units,
    /// privileged commands, hosts, setuid files, maintainer scripts and configuration
    /// keys (neither bundle is extracted).
    ///
    /// Exit codes: 0 both bundles were read (differences are information); 2 one could
    /// not be.
    Diff(DiffArgs),
    /// What will break on this host: units the bundle needs that are missing, hosts
    /// that do not resolve, commands that need root, schema changes without a lock;
    /// and the rollback checklist (what a snapshot restore does not undo).
    ///
    /// Exit codes: 0 nothing blocking; 1 a blocking finding (missing-unit,
    /// schema-change-without-lock, unresolvable-host in a cron job or unit); 2 could
    /// not check.
    Preflight(PreflightArgs),
    /// Poll every feed, CSAF provider and key URL: once (for cron) or as a daemon.
    ///
    /// Exit codes (--once): 0 every source polled and every event delivered; 1 some
    /// source failed or some delivery is pending; 2 could not run; 75 another run holds
    /// the lock.
    Watch(WatchArgs),
    /// Per source: last success, last error, failures in a row, entries seen; pending
    /// events per channel.
    ///
    /// --check: a Nagios/Icinga plugin (one line; exit 0 OK, 1 WARNING, 2 CRITICAL,
    /// 3 UNKNOWN, a bad configuration included). --prometheus: the metrics in
    /// Prometheus text format, for node_exporter's textfile collector.
    Status {
        #[arg(long, conflicts_with_all = ["check", "prometheus"])]
        json: bool,
        /// One Nagios/Icinga plugin line with perfdata; exit 0 OK, 1 WARNING,
        /// 2 CRITICAL, 3 UNKNOWN.
        #[arg(long, conflicts_with = "prometheus")]
        check: bool,
        /// Prometheus text exposition format on stdout.
        #[arg(long)]
        prometheus: bool,
    },
    /// The stored events and where each was delivered; acknowledge one to stop its
    /// retries.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// The state itself: copy it between SQLite and PostgreSQL.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Alerting commands.
    Alert {
        #[command(subcommand)]
        command: AlertCommand,
    },
    /// Record a bundle's SHA-256 in keyring/VENDOR/pinned.sha256.
    Pin(PinArgs),
    /// Inspect pinned certificates.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Load and validate feeds.toml and every vendor keyring; report every problem.
    CheckConfig,
    /// Print a shell completion script on stdout.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout: `vendorguard man | man -l -`.
    Man,
    /// Every verdict of verify and unpack, oldest first, from the hash-chained history
    /// in the state database.
    ///
    /// Exit codes: 0 listed (with --check: the chain is intact); 1 with --check, a
    /// record was changed, removed or reordered (the first one is named); 2 could not
    /// read the state.
    History(HistoryArgs),
    /// Per product in feeds.toml: the installed version and where it comes from
    /// (`config`, or `history`: the last successful unpack).
    Inventory {
        /// One JSON array of objects on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Onboard vendors: fetch and pin a key, add the vendor to feeds.toml.
    Vendor {
        #[command(subcommand)]
        command: VendorCommand,
    },
}

/// The format of log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object a line.
    Json,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only records of this vendor.
    #[arg(long, value_name = "NAME")]
    pub vendor: Option<String>,
    /// Only records of this product.
    #[arg(long, value_name = "NAME")]
    pub product: Option<String>,
    /// One JSON array of records on stdout.
    #[arg(long)]
    pub json: bool,
    /// Re-compute the hash chain instead of listing: exit 1 naming the first record
    /// changed, removed or reordered.
    #[arg(long, conflicts_with_all = ["vendor", "product", "json"])]
    pub check: bool,
}

#[derive(Debug, Subcommand)]
pub enum VendorCommand {
    /// Fetch the vendor's key from --key-url, show it, pin it into keyring/NAME/ only
    /// when its primary fingerprint is --fingerprint, add a [[vendor]] block to
    /// feeds.toml (comments and layout kept), then run check-config.
    ///
    /// Exit codes: 0 added and check-config clean; 1 the key's primary fingerprint is
    /// not FPR (nothing written); 2 could not add (vendor exists, bad arguments, key
    /// unreachable, no certificate there), or check-config found problems after adding.
    Add(VendorAddArgs),
}

#[derive(Debug, Args)]
pub struct VendorAddArgs {
    /// The vendor's name (lowercase letters, digits, '-' and '_'): names keyring/NAME/.
    pub name: String,
    /// Where the vendor publishes its OpenPGP certificate (also watched for changes).
    #[arg(long, value_name = "URL")]
    pub key_url: String,
    /// The certificate's primary fingerprint, as the vendor gave it to you out of band
    /// (spaces allowed). A subkey's fingerprint is not accepted.
    #[arg(long, value_name = "FPR")]
    pub fingerprint: String,
    /// A feed to watch: RSS, Atom or JSON Feed, a CSAF provider-metadata.json, or CISA
    /// KEV (see --format).
    #[arg(long, value_name = "URL")]
    pub feed: Option<String>,
    /// What --feed serves [default: feed, detected RSS/Atom/JSON Feed].
    #[arg(long, value_name = "FORMAT", requires = "feed")]
    pub format: Option<FeedKind>,
    /// A file name pattern of the vendor's bundles (`*` and `?`; repeatable).
    #[arg(long, value_name = "GLOB")]
    pub bundles: Vec<String>,
}

/// `--format` of `vendor add`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeedKind {
    /// RSS 0.9x/1.0/2.0, Atom or JSON Feed, detected.
    Feed,
    /// A CSAF 2.0 provider-metadata.json.
    Csaf,
    /// CISA's Known Exploited Vulnerabilities catalogue.
    CisaKev,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle to verify.
    pub bundle: PathBuf,
    #[command(flatten)]
    pub check: CheckArgs,
    /// Print one JSON object on stdout instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// How a bundle is verified; shared by `verify` and `unpack`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The vendor whose pinned keys and hashes apply [default: the vendor whose
    /// `bundles` patterns match the file name].
    #[arg(long, value_name = "NAME")]
    pub vendor: Option<String>,
    /// A certificate file or folder to use instead of the vendor's keyring (repeatable).
    #[arg(long, value_name = "PATH")]
    pub keyring: Vec<PathBuf>,
    /// The detached signature [default: BUNDLE.asc, .sig, .gpg, a signed SHA256SUMS, or
    /// an inline signature].
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// For a .deb: the apt repository's release file (InRelease, cleartext-signed; or
    /// Release with --release-signature) that vouches for --index.
    #[arg(
        long,
        value_name = "FILE",
        requires = "index",
        conflicts_with = "signature"
    )]
    pub release: Option<PathBuf>,
    /// The detached signature of --release (Release.gpg).
    #[arg(long, value_name = "FILE", requires = "release")]
    pub release_signature: Option<PathBuf>,
    /// For a .deb: the repository's index (Packages, .gz, .xz, .zst, .bz2) listing the
    /// package; the release must list its SHA-256.
    #[arg(long, value_name = "FILE", requires = "release")]
    pub index: Option<PathBuf>,
    /// A SHA-256 the bundle must have (64 hex digits).
    #[arg(long, value_name = "HEX", value_parser = parse_sha256)]
    pub sha256: Option<String>,
    /// Distinct pinned certificates that must sign [default: the vendor's `signatures`,
    /// else 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub signatures: Option<u32>,
    /// Do not raise unexpected-signer / bundle-rejected events even when feeds.toml
    /// configures alerts.
    #[arg(long)]
    pub no_alert: bool,
    /// Accept a product version lower than the installed one (`rollback`) or the
    /// installed version with other bytes (`version-reused`); the history records it.
    #[arg(long)]
    pub allow_downgrade: bool,
}

#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// The bundle (zip, tar, tar.gz, tar.xz, tar.zst, deb) to verify and extract.
    pub bundle: PathBuf,
    /// The folder to create (it must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub into: PathBuf,
    #[command(flatten)]
    pub check: CheckArgs,
    /// Refuse archives that expand past this size.
    #[arg(long, value_name = "SIZE", default_value = "8GiB", value_parser = parse_size_arg)]
    pub max_size: u64,
    /// Refuse archives (or zip entries) that expand more than this many times their size.
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_ratio: u64,
    /// Refuse archives with more entries than this.
    #[arg(long, value_name = "N", default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_entries: u64,
    /// Keep setuid/setgid bits (dropped by default).
    #[arg(long)]
    pub keep_setuid: bool,
    /// Where the `preflight:` lines look up installed units.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Check host names for the `preflight:` lines against this hosts-format file
    /// (without it unpack checks no host names; `preflight` does).
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// How much a command that extracts nothing (`inspect`, `diff`, `preflight`) reads.
#[derive(Debug, Clone, Copy, Args)]
pub struct ReadLimitArgs {
    /// Refuse archives whose entries declare more than this size in total (reading a
    /// tar means decompressing every entry, scanned or not).
    #[arg(long, value_name = "SIZE", default_value = "8GiB", value_parser = parse_size_arg)]
    pub max_size: u64,
    /// Refuse archives whose entries declare more than this many times the archive's
    /// size (past the first MiB).
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_ratio: u64,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The bundle to read (it is not extracted).
    pub bundle: PathBuf,
    #[command(flatten)]
    pub limits: ReadLimitArgs,
    /// Print the findings as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The bundle installed now.
    pub old: PathBuf,
    /// The bundle to upgrade to.
    pub new: PathBuf,
    #[command(flatten)]
    pub limits: ReadLimitArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PreflightArgs {
    /// The bundle to check (it is not extracted).
    pub bundle: PathBuf,
    /// Where installed units are looked up (etc, lib and usr/lib systemd folders).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Resolve host names from this hosts-format file only, with no DNS query
    /// [default: the system resolver, 2 seconds per name].
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    #[command(flatten)]
    pub limits: ReadLimitArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// One pass over every source, then exit (for cron).
    #[arg(long)]
    pub once: bool,
    /// With --once: download and check every CSAF advisory of VENDOR again, changed
    /// or not, and announce those that verify and were never announced (after pinning
    /// a vendor's new key).
    #[arg(long, value_name = "VENDOR", requires = "once")]
    pub recheck: Option<String>,
    /// Events as JSON lines and a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Fire drill: send a `test` event through every configured channel.
    Test {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy a whole state (sources, validators, entries, problems, events, deliveries,
    /// history) from FROM to TO, each a SQLite file or a postgresql:// URL, so the
    /// watchers that use TO next re-alert nothing. TO must be empty (a new file, or a
    /// database without vendorguard's tables or with none of their rows).
    ///
    /// Exit codes: 0 copied and checked; 2 nothing copied (FROM missing or unreadable,
    /// TO not empty or unreachable); 75 a watcher holds FROM's or TO's lock (SQLite).
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The state to copy: a SQLite file or postgresql://USER@HOST:PORT/DB.
    #[arg(long, value_name = "STATE")]
    pub from: String,
    /// Where to copy it: a SQLite file (created) or postgresql://USER@HOST:PORT/DB.
    #[arg(long, value_name = "STATE")]
    pub to: String,
    /// The environment variable holding FROM's PostgreSQL password.
    #[arg(long, value_name = "VAR", default_value = "PGPASSWORD")]
    pub from_password_env: String,
    /// The environment variable holding TO's PostgreSQL password.
    #[arg(long, value_name = "VAR", default_value = "PGPASSWORD")]
    pub to_password_env: String,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// One line per stored event, oldest first: time, id, kind, severity, vendor,
    /// title, and per channel delivered, pending or acked.
    List {
        /// Only events still pending on some channel (not acknowledged).
        #[arg(long)]
        pending: bool,
        /// Only events detected at or after this time (RFC 3339, e.g.
        /// 2026-01-31T00:00:00Z).
        #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
        since: Option<std::time::SystemTime>,
        /// One JSON array of objects on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Mark the event ID handled: no channel delivers or retries it again.
    ///
    /// Exit codes: 0 acknowledged; 1 no such event; 2 could not read the state.
    Ack { id: String },
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// The bundle whose SHA-256 to record.
    pub bundle: PathBuf,
    /// The vendor whose pinned.sha256 to write.
    #[arg(long, value_name = "NAME")]
    pub vendor: String,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Pinned certificates per vendor.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Everything about the certificates in FILE: keys, flags, user IDs, expiry,
    /// revocation.
    Show {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Warn for pinned keys expiring within 30 days; fail (exit 1) for revoked or expired
    /// pinned keys.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Pin the certificate in FILE for VENDOR, after you validated its fingerprint out
    /// of band: the certificate with exactly that fingerprint (primary or subkey) is
    /// written, public part only, to keyring/VENDOR/FINGERPRINT.asc.
    Add {
        file: PathBuf,
        #[arg(long, value_name = "NAME")]
        vendor: String,
        /// The fingerprint you validated (spaces allowed).
        #[arg(long, value_name = "HEX")]
        fingerprint: String,
    },
    /// Unpin the certificate with exactly this primary fingerprint from
    /// keyring/VENDOR/: a file holding only it is removed, a file holding others too is
    /// rewritten without it.
    ///
    /// Exit codes: 0 removed; 1 not pinned, or the vendor's last pinned certificate
    /// (nothing is removed unless --force); 2 could not read or write the keyring.
    Remove {
        vendor: String,
        /// The certificate's primary fingerprint (spaces allowed).
        fingerprint: String,
        /// Remove it even when it is the vendor's last pinned certificate.
        #[arg(long)]
        force: bool,
    },
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    crate::config::parse_size(s)
}

fn parse_rfc3339(s: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim())
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-01-31T00:00:00Z ({e})"))
}

fn parse_sha256(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t.to_ascii_lowercase())
    } else {
        Err("expected 64 hex digits (a SHA-256)".into())
    }
}
