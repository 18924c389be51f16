//! The watcher's durable state: per source its HTTP validators and health (for a CSAF
//! source also each listing document's validators, the pinned fingerprints its last
//! poll checked against and what its verified advisories' side files said), per entry
//! what was seen, the open problems of CSAF advisories, and the outbox of events with
//! their per-channel deliveries (delivered, or filtered: a channel that does not carry
//! the event) and whether an operator acknowledged them (handled: no channel delivers
//! them again).
//!
//! [`Store`] is the interface the watcher and the commands use (with
//! [`alert::Outbox`](crate::alert::Outbox) for delivery); `sqlite` is the one
//! implementation today (`sqlite::open`, and `sqlite::try_lock` for the watcher's
//! lock). A backend must keep two promises: a poll's outcome (new validators, entries,
//! open problems, and the events they cause) is written atomically, so an event is
//! never in the outbox without the state that explains it; and a delivery is recorded
//! only when delivery says so, after the channel acknowledged.
//!
//! [`History`] is the record of verdicts `verify` and `unpack` append to
//! (`sqlite::open_history`), hash-chained as `history` defines.
//!
//! The store must not fetch, decide what is new, or deliver: that is the watcher's and
//! alerting's job.

pub(crate) mod history;
pub(crate) mod sqlite;

use std::collections::HashMap;
use std::time::SystemTime;

use crate::alert::event::Event;
use crate::alert::Outbox;

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
