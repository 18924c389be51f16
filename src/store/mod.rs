//! The watcher's durable state: per source its HTTP validators and health (for a CSAF
//! source also each listing document's validators, the pinned fingerprints its last
//! poll checked against and what its verified advisories' side files said), per entry
//! what was seen, the open problems of CSAF advisories, and the outbox of events with
//! their per-channel deliveries (delivered, or filtered: a channel that does not carry
//! the event) and whether an operator acknowledged them (handled: no channel delivers
//! them again).
//!
//! [`Store`] is the interface the watcher and the commands use (with
//! [`alert::Outbox`](crate::alert::Outbox) for delivery). It has two implementations,
//! chosen by the [`StateLocation`] in `[watch] state`: `sqlite` (one file, one run at a
//! time under [`lock`]) and `postgres` (one database shared by several instances,
//! coordinated by per-source leases, per-delivery claims and heartbeats), with the
//! same migrations up to [`SCHEMA_VERSION`]. A backend must keep the same promises: a
//! poll's outcome (new validators, entries, open problems, and the events they cause)
//! is written atomically, so an event is never in the outbox without the state that
//! explains it; and a delivery is recorded only when delivery says so, after the
//! channel acknowledged.
//!
//! [`History`] is the record of verdicts `verify` and `unpack` append to
//! ([`open_history`]), hash-chained as `history` defines; [`Rows`] reads and writes
//! whole tables for `state migrate`.
//!
//! The store must not fetch, decide what is new, or deliver: that is the watcher's and
//! alerting's job.

pub(crate) mod history;
pub mod location;
pub(crate) mod postgres;
pub(crate) mod sqlite;

pub use location::{PgState, StateLocation};

use std::collections::HashMap;
use std::time::SystemTime;

use crate::alert::event::Event;
use crate::alert::Outbox;

/// Opens the state at `location` as `instance`, creating it (SQLite file, PostgreSQL
/// schema) when new and bringing its schema up to date.
///
/// # Errors
///
/// [`StoreError::Open`] naming the file or the database (never a password) and what is
/// wrong: unreachable, refused, not a vendorguard state, newer than this vendorguard.
pub fn open(location: &StateLocation, instance: &Instance) -> Result<Box<dyn Store>, StoreError> {
    match location {
        StateLocation::Sqlite(path) => sqlite::open(path, instance),
        StateLocation::Postgres(pg) => postgres::open(pg, instance),
    }
}

/// Opens the state at `location` for the history of verdicts.
///
/// # Errors
///
/// As [`open`].
pub fn open_history(location: &StateLocation) -> Result<Box<dyn History>, StoreError> {
    match location {
        StateLocation::Sqlite(path) => sqlite::open_history(path),
        StateLocation::Postgres(pg) => postgres::open_history(pg),
    }
}

/// Opens the state at `location` to copy its rows (`state migrate`).
///
/// # Errors
///
/// As [`open`].
pub fn open_rows(location: &StateLocation) -> Result<Box<dyn Rows>, StoreError> {
    match location {
        StateLocation::Sqlite(path) => sqlite::open_rows(path),
        StateLocation::Postgres(pg) => postgres::open_rows(pg),
    }
}

/// Whether the state at `location` exists yet: a SQLite file is created by the first
/// `watch`; a PostgreSQL database is the operator's, and holds a state once a run
/// made vendorguard's schema in it.
///
/// # Errors
///
/// A PostgreSQL server that cannot be reached or read ([`StoreError::Open`]).
pub fn exists(location: &StateLocation) -> Result<bool, StoreError> {
    match location {
        StateLocation::Sqlite(path) => Ok(path.exists()),
        StateLocation::Postgres(pg) => postgres::exists(pg),
    }
}

/// What keeps runs that share a state from stepping on each other: a SQLite state is
/// used by one run at a time (an exclusive lock on `<state>.lock`); a PostgreSQL one by
/// many, coordinated by leases and claims in the database.
#[derive(Debug)]
pub enum RunLock {
    /// Held until dropped.
    File { _held: std::fs::File },
    /// Nothing to hold: the database coordinates.
    Shared,
}

/// Takes the run lock of the state at `location`.
///
/// # Errors
///
/// `Ok(None)` when another run holds a SQLite state's lock; `Err` when the lock file
/// cannot be opened.
pub fn lock(location: &StateLocation) -> std::io::Result<Option<RunLock>> {
    match location {
        StateLocation::Sqlite(path) => {
            Ok(sqlite::try_lock(path)?.map(|f| RunLock::File { _held: f }))
        }
        StateLocation::Postgres(_) => Ok(Some(RunLock::Shared)),
    }
}

/// Why the state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state {path}: {message}")]
    Open { path: String, message: String },
    #[error("state: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// A source as stored.
#[derive(Debug, Clone, Default)]
pub struct SourceRow {
    pub id: String,
    pub vendor: String,
    pub kind: String,
    pub url: String,
    /// Entries seen so far.
    pub entries: u64,
    /// Whether a first poll succeeded (its entries are the baseline, not news).
    pub initialized: bool,
    /// HTTP validators of the last answer, for a conditional request.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub health: SourceHealth,
}

/// How a source's polls have gone: what `status` shows and the failing alert decides on.
#[derive(Debug, Clone, Default)]
pub struct SourceHealth {
    /// Failed polls in a row.
    pub failures: u32,
    /// Whether a `source-failing` event was raised for the current run of failures.
    pub failing_alerted: bool,
    pub failing_since: Option<SystemTime>,
    pub first_seen: Option<SystemTime>,
    pub last_attempt: Option<SystemTime>,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<String>,
    /// The stable code of the last failure.
    pub last_error_code: Option<String>,
    /// How long the last poll took (success or failure), when it was measured.
    pub last_poll: Option<std::time::Duration>,
    /// The instance whose poll (success or failure) was recorded last.
    pub last_polled_by: Option<String>,
}

/// What we knew of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRow {
    pub content_hash: String,
    pub updated: Option<String>,
}

/// An entry to store after a poll.
#[derive(Debug, Clone)]
pub struct EntryWrite {
    pub key: String,
    /// The entry's date or version: a change is an update.
    pub updated: Option<String>,
    pub content_hash: String,
    pub title: String,
    pub url: String,
}

/// An open problem of a CSAF advisory: it could not be fetched or failed a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemRow {
    pub advisory_url: String,
    /// The problem's stable code (`advisory-unreachable`, `digest-mismatch`, ...).
    pub code: String,
    /// The poll that first found it.
    pub first_seen: SystemTime,
    /// The date the provider listed the advisory with when the problem was recorded: a
    /// held advisory listed with another date is checked again.
    pub listed_updated: Option<String>,
}

/// A stored event as `events list` shows it.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Storage order.
    pub seq: i64,
    pub id: String,
    /// The kind's and vendor's columns: shown even when the JSON does not parse.
    pub kind: String,
    pub vendor: String,
    /// The event, or what is wrong with its stored JSON.
    pub event: Result<Event, String>,
    pub detected_at: SystemTime,
    /// When an operator acknowledged it: handled, never delivered again.
    pub acked_at: Option<SystemTime>,
    /// The channels that acknowledged it, by name.
    pub delivered: Vec<String>,
    /// The channels that do not carry it (`[alerts]` routing), by name.
    pub filtered: Vec<String>,
}

/// The source a commit is about.
#[derive(Debug, Clone, Copy)]
pub struct SourceRef<'a> {
    pub id: &'a str,
    pub vendor: &'a str,
    pub kind: &'a str,
    pub url: &'a str,
}

/// One successful poll, written in one transaction.
pub struct PollCommit<'a> {
    pub source: SourceRef<'a>,
    /// `None` keeps the stored validators (a 304).
    pub validators: Option<(Option<String>, Option<String>)>,
    pub entries: &'a [EntryWrite],
    /// `Some` replaces the source's open advisory problems (CSAF); `None` keeps them.
    pub problems: Option<&'a [ProblemRow]>,
    pub events: &'a [Event],
    /// `Some` (CSAF): the validators of the listing documents this poll fetched whole,
    /// replacing the source's; `None` keeps them (a listing that did not change).
    pub listing: Option<&'a [UrlValidators]>,
    /// `Some` (CSAF): the vendor's pinned fingerprints this poll checked against,
    /// recorded so held advisories are checked again only when they change.
    pub keyring: Option<&'a str>,
    /// `Some` (CSAF): the side files of every verified advisory the source lists,
    /// replacing the source's; `None` keeps them.
    pub side_files: Option<&'a [SideFiles]>,
    pub now: SystemTime,
    /// How long the poll took; `None` keeps the stored one.
    pub duration: Option<std::time::Duration>,
}

/// The ETag and Last-Modified one URL was last fetched with (a CSAF provider's
/// metadata, ROLIE feeds and `changes.csv`), exactly as the server sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlValidators {
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// What a verified CSAF advisory's side files said when last fetched: the first word
/// of its hash file (the SHA-256/512 value) and the SHA-256 of its signature file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideFiles {
    pub advisory_url: String,
    pub hash_url: String,
    pub signature_url: String,
    /// Empty when not known yet (an advisory verified before they were recorded).
    pub hash_value: String,
    pub signature_sha256: String,
    /// The poll round that last fetched them: the lowest are fetched again first.
    pub round: i64,
    /// The ETag and Last-Modified each was last fetched with, sent back next time.
    pub hash_validators: (Option<String>, Option<String>),
    pub signature_validators: (Option<String>, Option<String>),
}

/// One failed poll.
pub struct FailureCommit<'a> {
    pub source: SourceRef<'a>,
    /// The failure's stable code.
    pub code: &'a str,
    /// The whole message, shown by `status`.
    pub error: &'a str,
    pub now: SystemTime,
    /// How long the poll took; `None` keeps the stored one.
    pub duration: Option<std::time::Duration>,
}

/// Who this process is among the instances that share one state, and how long its
/// leases (a source being polled, a delivery being sent) last unless renewed or released.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `NAME:pid`, NAME from `[watch] instance`, else the host name.
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// vendorguard's version.
    pub version: String,
    pub started_at: SystemTime,
    /// How long a lease holds; an instance's heartbeat older than this means it is gone.
    pub lease: std::time::Duration,
}

impl Instance {
    /// This process, with `lease`, named by the configuration (else by its host).
    pub fn this_process(id: Option<&str>, lease: std::time::Duration, now: SystemTime) -> Instance {
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let pid = std::process::id();
        Instance {
            // The process id always: two processes under one configured name (a daemon
            // and a cron run, one feeds.toml copied to two machines) must never take
            // each other's claims for their own.
            id: format!("{}:{pid}", id.unwrap_or(&host)),
            host,
            pid,
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: now,
            lease,
        }
    }
}

/// An instance as its heartbeats left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub started_at: SystemTime,
    pub heartbeat_at: SystemTime,
    /// When its heartbeat stops counting: `heartbeat_at` plus the instance's lease.
    pub alive_until: SystemTime,
}

/// What [`Store::lease_source`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// This instance holds the source until its poll is committed or the lease runs out.
    Taken,
    /// Another instance is polling it now.
    Held { by: String, until: SystemTime },
    /// Another instance polled it at `at`, within the `fresh_within` asked for.
    Fresh { by: String, at: SystemTime },
}

/// One table as `state migrate` copies it: every column, in order.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    pub name: &'static str,
    pub columns: &'static [&'static str],
}

/// One value of a copied row: the schema's columns are integers or text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// The tables `state migrate` copies, parents first, with every column of the current
/// schema (version [`SCHEMA_VERSION`]); the leases and heartbeats of the instances of
/// the source state are not copied.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "sources",
        columns: &[
            "id",
            "vendor",
            "kind",
            "url",
            "etag",
            "last_modified",
            "initialized",
            "last_success",
            "last_attempt",
            "last_error",
            "last_error_code",
            "failures",
            "failing_since",
            "failing_alerted",
            "first_seen",
            "last_poll_ms",
            "last_polled_by",
        ],
    },
    TableSpec {
        name: "entries",
        columns: &[
            "source",
            "key",
            "content_hash",
            "updated",
            "title",
            "url",
            "first_seen",
            "last_seen",
        ],
    },
    TableSpec {
        name: "events",
        columns: &[
            "seq",
            "id",
            "kind",
            "vendor",
            "json",
            "detected_at",
            "acked_at",
        ],
    },
    TableSpec {
        name: "deliveries",
        columns: &[
            "event_id",
            "channel",
            "delivered_at",
            "attempts",
            "last_error",
            "last_error_kind",
            "next_attempt_at",
            "output",
            "message_id",
            "filtered",
        ],
    },
    TableSpec {
        name: "advisory_problems",
        columns: &[
            "source",
            "advisory_url",
            "code",
            "first_seen",
            "last_seen",
            "listed_updated",
        ],
    },
    TableSpec {
        name: "history",
        columns: &[
            "seq",
            "at",
            "command",
            "bundle",
            "size",
            "sha256",
            "vendor",
            "product",
            "version",
            "verdict",
            "codes",
            "signers",
            "unexpected",
            "into_dir",
            "user",
            "host",
            "allowed",
            "prev",
            "hash",
        ],
    },
    TableSpec {
        name: "history_head",
        columns: &["id", "count", "hash"],
    },
    TableSpec {
        name: "keyring_seen",
        columns: &["source", "fingerprints", "seen_at"],
    },
    TableSpec {
        name: "listing_validators",
        columns: &["source", "url", "etag", "last_modified"],
    },
    TableSpec {
        name: "csaf_side_files",
        columns: &[
            "source",
            "advisory_url",
            "hash_url",
            "signature_url",
            "hash_value",
            "signature_sha256",
            "round",
            "hash_etag",
            "hash_last_modified",
            "signature_etag",
            "signature_last_modified",
        ],
    },
];

/// The schema version both backends' migrations end at.
pub const SCHEMA_VERSION: usize = 11;

/// How long a lease holds when `[watch] lease` does not say.
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(300);

/// Raw rows, for `state migrate`: every table of [`TABLES`] read and written whole.
pub trait Rows {
    /// The rows of `table`, its columns in the spec's order, ordered by those columns.
    fn read_rows(&self, table: &TableSpec) -> Result<Vec<Vec<Cell>>, StoreError>;

    /// Whether the state holds no source, event or history record.
    fn is_empty(&self) -> Result<bool, StoreError>;

    /// Writes every table's rows in one transaction (all or nothing), onto an empty
    /// state.
    fn write_rows(&mut self, tables: &[(TableSpec, Vec<Vec<Cell>>)]) -> Result<(), StoreError>;
}

/// The state the watcher and the commands read and write.
pub trait Store: Outbox<Error = StoreError> {
    fn source(&self, id: &str) -> Result<Option<SourceRow>, StoreError>;

    /// Every source, by vendor and URL.
    fn sources(&self) -> Result<Vec<SourceRow>, StoreError>;

    /// The stored entries of a source, by key.
    fn entries(&self, source: &str) -> Result<HashMap<String, EntryRow>, StoreError>;

    /// The open advisory problems of a source.
    fn problems(&self, source: &str) -> Result<Vec<ProblemRow>, StoreError>;

    /// The validators of the listing documents of a CSAF source's last full poll.
    fn listing_validators(&self, source: &str) -> Result<Vec<UrlValidators>, StoreError>;

    /// The side files of a CSAF source's verified advisories, by advisory URL.
    fn side_files(&self, source: &str) -> Result<Vec<SideFiles>, StoreError>;

    /// The vendor's pinned fingerprints the source's last successful CSAF poll checked
    /// against (`PollCommit::keyring`), if any was recorded.
    fn keyring_seen(&self, source: &str) -> Result<Option<String>, StoreError>;

    /// How many advisory problems are open, per source id and code.
    fn open_problems(&self) -> Result<HashMap<String, Vec<(String, u64)>>, StoreError>;

    /// Records a successful poll: validators, entries, open problems and events,
    /// atomically; returns how many events were new. A source that had been reported
    /// failing gets its `source-recovered` event from the caller in `events`.
    fn commit_poll(&mut self, c: &PollCommit<'_>) -> Result<usize, StoreError>;

    /// Records a failed poll and returns the source row after the update. `decide`
    /// sees that row (unless `source-failing` was already raised) and may return the
    /// event, which is stored in the same transaction and marks the source alerted.
    fn commit_failure(
        &mut self,
        f: &FailureCommit<'_>,
        decide: &dyn Fn(&SourceRow) -> Option<Event>,
    ) -> Result<(SourceRow, Option<Event>), StoreError>;

    /// Every stored event detected at or after `since`, oldest first, with the
    /// channels that delivered it.
    fn events(&self, since: Option<SystemTime>) -> Result<Vec<EventRow>, StoreError>;

    /// Marks the event `id` acknowledged at `now` (a second time keeps the first time):
    /// it is never delivered again on any channel. `false` when there is no such event.
    fn ack_event(&mut self, id: &str, now: SystemTime) -> Result<bool, StoreError>;

    /// How many events `channel` does not carry (`[alerts]` routing): filtered.
    fn filtered_count(&self, channel: &str) -> Result<u64, StoreError>;

    /// How many acknowledged events are undelivered on any of `channels`: handled.
    fn handled_count(&self, channels: &[&str]) -> Result<u64, StoreError>;

    /// The events pending on `channel` (not delivered, not acknowledged), each id with
    /// when it was detected, oldest first: what monitoring ages.
    fn pending_detected(&self, channel: &str) -> Result<Vec<(String, SystemTime)>, StoreError>;

    /// Delivery attempts so far, per channel: how many were acknowledged and how many
    /// failed.
    fn delivery_totals(&self) -> Result<Vec<DeliveryTotals>, StoreError>;

    /// How many events are stored, per kind code, by kind.
    fn event_totals(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// Records that this instance is alive at `now` (and forgets instances not heard
    /// from for a week).
    fn heartbeat(&mut self, now: SystemTime) -> Result<(), StoreError>;

    /// Every instance heard from in the last week, by id.
    fn instances(&self) -> Result<Vec<InstanceRow>, StoreError>;

    /// Takes `source`'s lease for this instance until `now` plus the lease (creating the
    /// source's row when new), unless another instance holds an unexpired lease
    /// (`Held`) or, with `fresh_within`, another instance still alive had its poll
    /// recorded less than that long ago (`Fresh`). A committed poll or failure gives the
    /// lease back. (The watcher leases a pass's sources at once with
    /// [`Store::lease_sources`]; this one-source form is for tests.)
    #[cfg(test)]
    fn lease_source(
        &mut self,
        source: SourceRef<'_>,
        fresh_within: Option<std::time::Duration>,
        now: SystemTime,
    ) -> Result<Lease, StoreError> {
        let mut found = self.lease_sources(&[(source, fresh_within)], now)?;
        found
            .pop()
            .ok_or_else(|| StoreError::Backend("no lease answer".into()))
    }

    /// Takes each of `sources`' lease for this instance until `now` plus the lease
    /// (creating the source's row when new), in one transaction, unless another
    /// instance holds an unexpired lease (`Held`) or, with its `fresh_within`, another
    /// instance still alive had its poll recorded less than that long ago (`Fresh`):
    /// one answer per source, in order. A committed poll or failure gives the lease
    /// back.
    fn lease_sources(
        &mut self,
        sources: &[(SourceRef<'_>, Option<std::time::Duration>)],
        now: SystemTime,
    ) -> Result<Vec<Lease>, StoreError>;

    /// Gives back this instance's lease on source `id` without recording a poll (a
    /// poll that could not start).
    fn release_source(&mut self, id: &str) -> Result<(), StoreError>;

    /// Ends the leases and delivery claims of instance `id`, known to be gone (a process
    /// of this host that no longer runs), and forgets its heartbeat: its work passes at
    /// once instead of when its leases run out.
    fn forget_instance(&mut self, id: &str) -> Result<(), StoreError>;
}

/// Delivery attempts on one channel, for monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryTotals {
    pub channel: String,
    pub delivered: u64,
    pub failed: u64,
}

/// The history of verdicts, hash-chained (see `history`).
pub trait History {
    /// Appends `entry` as the next record, chained to the last one, and returns it.
    /// The record and the chain's head are written in one transaction.
    fn append(&mut self, entry: &history::Entry) -> Result<history::Record, StoreError>;

    /// The records, oldest first, of `vendor` and `product` when given; at most
    /// `policy::MAX_HISTORY_RECORDS` of the newest.
    fn records(
        &self,
        vendor: Option<&str>,
        product: Option<&str>,
    ) -> Result<Vec<history::Record>, StoreError>;

    /// Re-computes the chain, one record at a time: the number of records when intact,
    /// else the first break.
    fn check(&self) -> Result<Result<u64, history::Break>, StoreError>;

    /// Per vendor and product, the last record of a successful `unpack`.
    fn installed(&self) -> Result<Vec<history::Record>, StoreError>;
}
