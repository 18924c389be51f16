//! Durable state in SQLite: per source its HTTP validators and health, per entry its
//! key and content hash, and the outbox of events with their per-channel deliveries.
//!
//! A poll's outcome (new validators, entries, and the events they cause) is written in
//! one transaction, so a crash leaves either all of it or none: an event is never lost
//! and never recorded without the state that explains it. Deliveries are recorded only
//! after a channel acknowledged (see `alert`). WAL mode; `PRAGMA user_version` holds the
//! schema version and [`MIGRATIONS`] bring older files forward. This file does no
//! network and no delivery.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::event::Event;

/// Each entry brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE sources (
        id TEXT PRIMARY KEY,
        vendor TEXT NOT NULL,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        initialized INTEGER NOT NULL DEFAULT 0,
        last_success INTEGER,
        last_attempt INTEGER,
        last_error TEXT,
        last_error_code TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        failing_since INTEGER,
        failing_alerted INTEGER NOT NULL DEFAULT 0,
        first_seen INTEGER NOT NULL
    );
    CREATE TABLE entries (
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        updated TEXT,
        title TEXT,
        url TEXT,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (source, key)
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        vendor TEXT NOT NULL,
        json TEXT NOT NULL,
        detected_at INTEGER NOT NULL
    );
    CREATE TABLE deliveries (
        event_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        delivered_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_error_kind TEXT,
        next_attempt_at INTEGER,
        output TEXT,
        PRIMARY KEY (event_id, channel)
    );",
];

/// The columns `row_to_source` reads, in its order.
const SOURCE_SELECT: &str = "SELECT id, vendor, kind, url, etag, last_modified, initialized, last_success,
        last_attempt, last_error, last_error_code, failures, failing_since, failing_alerted, first_seen,
        (SELECT COUNT(*) FROM entries e WHERE e.source = s.id)
    FROM sources s";

/// The open state database.
pub struct State {
    conn: Connection,
}

/// Why the state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state {path}: {message}")]
    Open { path: String, message: String },
    #[error("state: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// A source as stored.
#[derive(Debug, Clone, Default)]
pub struct SourceRow {
    pub id: String,
    pub vendor: String,
    pub kind: String,
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub initialized: bool,
    pub last_success: Option<SystemTime>,
    pub last_attempt: Option<SystemTime>,
    pub last_error: Option<String>,
    pub last_error_code: Option<String>,
    pub failures: u32,
    pub failing_since: Option<SystemTime>,
    pub failing_alerted: bool,
    pub first_seen: Option<SystemTime>,
    pub entries: u64,
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
    pub content_hash: String,
    pub updated: Option<String>,
    pub title: String,
    pub url: String,
}

/// One successful poll, written in one transaction.
pub struct PollCommit<'a> {
    pub source_id: &'a str,
    pub vendor: &'a str,
    pub kind: &'a str,
    pub url: &'a str,
    /// `None` keeps the stored validators (a 304).
    pub validators: Option<(Option<String>, Option<String>)>,
    pub entries: &'a [EntryWrite],
    pub events: &'a [Event],
    pub now: SystemTime,
}

/// A delivery attempt that failed.
#[derive(Debug, Clone)]
pub struct DeliveryFailure {
    pub error: String,
    /// `temporary`, `permanent`, `timeout`, `spawn`...
    pub kind: String,
    pub output: Option<String>,
    pub retry_at: SystemTime,
}

/// Failed deliveries still pending on one channel, of one kind.
#[derive(Debug, Clone)]
pub struct DeliveryProblem {
    pub channel: String,
    /// `temporary`, `permanent`, `connection`, `exit`, `timeout`, `spawn`...
    pub kind: String,
    pub events: u64,
    pub error: String,
    /// What the escalation program printed on its latest failed run (bounded).
    pub output: Option<String>,
}

/// An event's delivery state on one channel.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub event: Event,
    pub attempts: u32,
    pub next_attempt_at: Option<SystemTime>,
}

pub fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn from_secs(s: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s.max(0) as u64)
}

impl State {
    /// Opens (creating when absent) the state at `path` and brings its schema up to date.
    ///
    /// # Errors
    ///
    /// [`StateError`] naming the file when it cannot be created, is not a database, fails
    /// its integrity check, or was written by a newer vendorguard.
    pub fn open(path: &Path) -> Result<State, StateError> {
        let open_err = |message: String| StateError::Open {
            path: path.display().to_string(),
            message,
        };
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| open_err(format!("cannot create its folder: {e}")))?;
            }
        }
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| open_err(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_err(format!("not a usable SQLite database: {e}")))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| open_err(e.to_string()))?;
        let mut state = State { conn };
        state.migrate().map_err(|e| open_err(e.to_string()))?;
        Ok(state)
    }

    fn migrate(&mut self) -> Result<(), StateError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version as usize > MIGRATIONS.len() {
            return Err(StateError::Open {
                path: String::new(),
                message: format!(
                    "schema version {version} is newer than this vendorguard knows ({}); upgrade vendorguard",
                    MIGRATIONS.len()
                ),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// `PRAGMA integrity_check` says "ok".
    pub fn integrity_ok(&self) -> Result<bool, StateError> {
        let s: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok(s == "ok")
    }

    pub fn source(&self, id: &str) -> Result<Option<SourceRow>, StateError> {
        Ok(self
            .conn
            .query_row(
                &format!("{SOURCE_SELECT} WHERE id = ?1"),
                [id],
                row_to_source,
            )
            .optional()?)
    }

    pub fn sources(&self) -> Result<Vec<SourceRow>, StateError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{SOURCE_SELECT} ORDER BY vendor, url"))?;
        let rows = stmt.query_map([], row_to_source)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored entries of a source.
    pub fn entries(&self, source: &str) -> Result<HashMap<String, EntryRow>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, content_hash, updated FROM entries WHERE source = ?1")?;
        let rows = stmt.query_map([source], |r| {
            Ok((
                r.get::<_, String>(0)?,
                EntryRow {
                    content_hash: r.get(1)?,
                    updated: r.get(2)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a successful poll: validators, entries and events, atomically. A source
    /// that had been reported failing gets its `source-recovered` event from the caller
    /// in `events`.
    pub fn commit_poll(&mut self, c: &PollCommit<'_>) -> Result<usize, StateError> {
        let now = secs(c.now);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO sources (id, vendor, kind, url, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET vendor = excluded.vendor, kind = excluded.kind, url = excluded.url",
            params![c.source_id, c.vendor, c.kind, c.url, now],
        )?;
        if let Some((etag, last_modified)) = &c.validators {
            tx.execute(
                "UPDATE sources SET etag = ?2, last_modified = ?3 WHERE id = ?1",
                params![c.source_id, etag, last_modified],
            )?;
        }
        tx.execute(
            "UPDATE sources SET initialized = 1, last_success = ?2, last_attempt = ?2, last_error = NULL,
                    last_error_code = NULL, failures = 0, failing_since = NULL, failing_alerted = 0
             WHERE id = ?1",
            params![c.source_id, now],
        )?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO entries (source, key, content_hash, updated, title, url, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 ON CONFLICT(source, key) DO UPDATE SET content_hash = excluded.content_hash,
                    updated = excluded.updated, title = excluded.title, url = excluded.url, last_seen = ?7",
            )?;
            for e in c.entries {
                up.execute(params![
                    c.source_id,
                    e.key,
                    e.content_hash,
                    e.updated,
                    e.title,
                    e.url,
                    now
                ])?;
            }
        }
        let inserted = insert_events(&tx, c.events)?;
        tx.commit()?;
        Ok(inserted)
    }

    /// Records a failed poll. Returns the source row after the update, so the caller
    /// can decide on `source-failing`; `event`, when given, is stored in the same
    /// transaction and marks the source as alerted.
    pub fn commit_failure(
        &mut self,
        source: (&str, &str, &str, &str),
        code: &str,
        error: &str,
        now: SystemTime,
        decide: impl FnOnce(&SourceRow) -> Option<Event>,
    ) -> Result<(SourceRow, Option<Event>), StateError> {
        let (id, vendor, kind, url) = source;
        let t = secs(now);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO sources (id, vendor, kind, url, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO NOTHING",
            params![id, vendor, kind, url, t],
        )?;
        tx.execute(
            "UPDATE sources SET failures = failures + 1, last_error = ?2, last_error_code = ?3, last_attempt = ?4,
                    failing_since = COALESCE(failing_since, ?4)
             WHERE id = ?1",
            params![id, error, code, t],
        )?;
        let row = tx.query_row(
            &format!("{SOURCE_SELECT} WHERE id = ?1"),
            [id],
            row_to_source,
        )?;
        let event = if row.failing_alerted {
            None
        } else {
            decide(&row)
        };
        if let Some(e) = &event {
            insert_events(&tx, std::slice::from_ref(e))?;
            tx.execute("UPDATE sources SET failing_alerted = 1 WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok((row, event))
    }

    /// Stores events outside a poll (from `verify`, `alert test`).
    pub fn add_events(&mut self, events: &[Event]) -> Result<usize, StateError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = insert_events(&tx, events)?;
        tx.commit()?;
        Ok(n)
    }

    /// Events not yet delivered on `channel`, oldest first.
    pub fn pending(&self, channel: &str) -> Result<Vec<PendingEvent>, StateError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.json, COALESCE(d.attempts, 0), d.next_attempt_at FROM events e
             LEFT JOIN deliveries d ON d.event_id = e.id AND d.channel = ?1
             WHERE d.delivered_at IS NULL ORDER BY e.seq",
        )?;
        let rows = stmt.query_map([channel], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (json, attempts, next) = row?;
            let Some(event) = serde_json::from_str(&json)
                .ok()
                .and_then(|v| Event::from_json(&v))
            else {
                continue;
            };
            out.push(PendingEvent {
                event,
                attempts,
                next_attempt_at: next.map(from_secs),
            });
        }
        Ok(out)
    }

    /// Counts of undelivered events per channel.
    pub fn pending_count(&self, channel: &str) -> Result<u64, StateError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM events e LEFT JOIN deliveries d ON d.event_id = e.id AND d.channel = ?1
             WHERE d.delivered_at IS NULL",
            [channel],
            |r| r.get(0),
        )?)
    }

    /// Records that `channel` acknowledged `event_id`.
    pub fn mark_delivered(
        &mut self,
        event_id: &str,
        channel: &str,
        now: SystemTime,
        output: Option<&str>,
    ) -> Result<(), StateError> {
        self.conn.execute(
            "INSERT INTO deliveries (event_id, channel, delivered_at, attempts, output) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT(event_id, channel) DO UPDATE SET delivered_at = ?3, attempts = attempts + 1,
                output = COALESCE(?4, output), last_error = NULL, last_error_kind = NULL, next_attempt_at = NULL",
            params![event_id, channel, secs(now), output],
        )?;
        Ok(())
    }

    /// Records a failed delivery attempt; the event stays pending.
    pub fn mark_failed(
        &mut self,
        event_id: &str,
        channel: &str,
        f: &DeliveryFailure,
    ) -> Result<(), StateError> {
        self.conn.execute(
            "INSERT INTO deliveries (event_id, channel, attempts, last_error, last_error_kind, next_attempt_at, output)
             VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6)
             ON CONFLICT(event_id, channel) DO UPDATE SET attempts = attempts + 1, last_error = ?3,
                last_error_kind = ?4, next_attempt_at = ?5, output = COALESCE(?6, output)",
            params![event_id, channel, f.error, f.kind, secs(f.retry_at), f.output],
        )?;
        Ok(())
    }

    /// Failures among pending deliveries, per channel and kind: the count, and the
    /// error and captured program output of the latest one.
    pub fn delivery_problems(&self) -> Result<Vec<DeliveryProblem>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.channel, COALESCE(d.last_error_kind, ''), COUNT(*),
                    (SELECT x.last_error FROM deliveries x WHERE x.channel = d.channel
                       AND x.last_error_kind IS d.last_error_kind AND x.delivered_at IS NULL
                     ORDER BY x.rowid DESC LIMIT 1),
                    (SELECT x.output FROM deliveries x WHERE x.channel = d.channel
                       AND x.last_error_kind IS d.last_error_kind AND x.delivered_at IS NULL
                     ORDER BY x.rowid DESC LIMIT 1)
             FROM deliveries d WHERE d.delivered_at IS NULL AND d.last_error IS NOT NULL
             GROUP BY d.channel, d.last_error_kind ORDER BY d.channel",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DeliveryProblem {
                channel: r.get(0)?,
                kind: r.get(1)?,
                events: r.get(2)?,
                error: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                output: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many events are stored.
    pub fn event_count(&self) -> Result<u64, StateError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
    }

    /// All events, oldest first (for tests and `status --json`).
    pub fn events(&self) -> Result<Vec<Event>, StateError> {
        let mut stmt = self.conn.prepare("SELECT json FROM events ORDER BY seq")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(e) = serde_json::from_str(&r?)
                .ok()
                .and_then(|v| Event::from_json(&v))
            {
                out.push(e);
            }
        }
        Ok(out)
    }
}

fn insert_events(tx: &rusqlite::Transaction<'_>, events: &[Event]) -> Result<usize, StateError> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO events (id, kind, vendor, json, detected_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut n = 0;
    for e in events {
        n += stmt.execute(params![
            e.id,
            e.kind.code(),
            e.vendor,
            e.to_json().to_string(),
            secs(e.detected_at)
        ])?;
    }
    Ok(n)
}

fn row_to_source(r: &rusqlite::Row<'_>) -> rusqlite::Result<SourceRow> {
    let t = |v: Option<i64>| v.map(from_secs);
    Ok(SourceRow {
        id: r.get(0)?,
        vendor: r.get(1)?,
        kind: r.get(2)?,
        url: r.get(3)?,
        etag: r.get(4)?,
        last_modified: r.get(5)?,
        initialized: r.get::<_, i64>(6)? != 0,
        last_success: t(r.get(7)?),
        last_attempt: t(r.get(8)?),
        last_error: r.get(9)?,
        last_error_code: r.get(10)?,
        failures: r.get(11)?,
        failing_since: t(r.get(12)?),
        failing_alerted: r.get::<_, i64>(13)? != 0,
        first_seen: t(r.get(14)?),
        entries: r.get::<_, i64>(15)? as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Kind, Severity};

    fn ev(n: u32) -> Event {
        Event::new(
            Kind::AdvisoryNew,
            "acme",
            &format!("e{n}"),
            Severity::High,
            format!("t{n}"),
            "u",
            from_secs(1_700_000_000),
        )
    }

    #[test]
    fn poll_commit_is_idempotent_and_pending_is_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(&dir.path().join("s/state.sqlite")).unwrap();
        let entries = vec![EntryWrite {
            key: "k1".into(),
            content_hash: "h".into(),
            updated: None,
            title: "t".into(),
            url: "u".into(),
        }];
        let events = vec![ev(1), ev(2)];
        let c = PollCommit {
            source_id: "src",
            vendor: "acme",
            kind: "feed",
            url: "http://x",
            validators: Some((Some("\"etag\"".into()), None)),
            entries: &entries,
            events: &events,
            now: from_secs(1_700_000_000),
        };
        assert_eq!(s.commit_poll(&c).unwrap(), 2);
        assert_eq!(
            s.commit_poll(&c).unwrap(),
            0,
            "the same events twice are stored once"
        );
        let p = s.pending("email").unwrap();
        assert_eq!(
            p.iter().map(|e| e.event.title.as_str()).collect::<Vec<_>>(),
            ["t1", "t2"]
        );
        s.mark_delivered(&p[0].event.id, "email", from_secs(1), None)
            .unwrap();
        assert_eq!(s.pending("email").unwrap().len(), 1);
        assert_eq!(s.pending("escalation").unwrap().len(), 2);
        let row = s.source("src").unwrap().unwrap();
        assert_eq!(row.etag.as_deref(), Some("\"etag\""));
        assert_eq!(row.entries, 1);
        assert!(s.integrity_ok().unwrap());
        drop(s);
        // Reopening keeps everything and does not re-run migrations.
        let s = State::open(&dir.path().join("s/state.sqlite")).unwrap();
        assert_eq!(s.event_count().unwrap(), 2);
    }

    #[test]
    fn not_a_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.sqlite");
        std::fs::write(
            &p,
            "this is not sqlite, it is a text file of some length .......................",
        )
        .unwrap();
        let e = State::open(&p).err().unwrap().to_string();
        assert!(e.contains("state.sqlite"), "{e}");
    }
}
