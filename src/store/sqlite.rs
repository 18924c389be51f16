//! The state in SQLite: per source its HTTP validators and health, per CSAF source its
//! listing documents' validators and the keyring it last checked against, per entry
//! its key and content hash, open advisory problems, and the outbox of events with
//! their per-channel deliveries (filtered ones included).
//!
//! A poll's outcome (new validators, entries, open advisory problems, and the events
//! they cause) is written in one transaction (`BEGIN IMMEDIATE`), so a crash leaves
//! either all of it or none. WAL mode; `PRAGMA user_version` holds the schema version
//! and [`MIGRATIONS`] bring older files forward. Only a missing file is a first run: an
//! existing one without vendorguard's schema is refused, untouched. The files (and the
//! watcher's lock beside them) are private to their owner whatever the umask. This
//! file implements `store::Store` and `alert::Outbox`; it does no network and no
//! delivery.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::alert::event::Event;
use crate::alert::{Attempt, DeliveryProblem, Outbox, PendingEvent, UnreadableEvent};
use crate::store::history::{self as chain, Entry, Record};
use crate::store::{
    Cell, DeliveryTotals, EntryRow, EventRow, FailureCommit, History, Instance, InstanceRow, Lease,
    PollCommit, ProblemRow, Rows, SideFiles, SourceHealth, SourceRef, SourceRow, Store, StoreError,
    TableSpec, UrlValidators, DEFAULT_LEASE, SCHEMA_VERSION,
};

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
    // 1 -> 2: the Message-ID a digest was first tried under, on each of its events.
    "ALTER TABLE deliveries ADD COLUMN message_id TEXT;",
    // 2 -> 3: open problems of CSAF advisories, so a persisting one is raised once.
    "CREATE TABLE advisory_problems (
        source TEXT NOT NULL,
        advisory_url TEXT NOT NULL,
        code TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (source, advisory_url, code)
    );",
    // 3 -> 4: when an operator acknowledged an event: handled, never delivered again.
    "ALTER TABLE events ADD COLUMN acked_at INTEGER;",
    // 4 -> 5: the hash-chained history of verdicts and its head (`store/history.rs`).
    "CREATE TABLE history (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        command TEXT NOT NULL,
        bundle TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        vendor TEXT,
        product TEXT,
        version TEXT,
        verdict TEXT NOT NULL,
        codes TEXT NOT NULL,
        signers TEXT NOT NULL,
        unexpected TEXT NOT NULL,
        into_dir TEXT,
        user TEXT NOT NULL,
        host TEXT NOT NULL,
        allowed TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE history_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        count INTEGER NOT NULL,
        hash TEXT NOT NULL
    );",
    // 5 -> 6: a channel that does not carry an event (`[alerts]` routing) is done with it
    // (`delivered_at` set, so it is never pending) without having sent it.
    "ALTER TABLE deliveries ADD COLUMN filtered INTEGER NOT NULL DEFAULT 0;",
    // 6 -> 7: what a CSAF source's last poll saw of the vendor's keyring, and the listing
    // date of each held advisory, so advisories held back for their signer are checked
    // again only when either changes.
    "ALTER TABLE advisory_problems ADD COLUMN listed_updated TEXT;
    CREATE TABLE keyring_seen (
        source TEXT PRIMARY KEY,
        fingerprints TEXT NOT NULL,
        seen_at INTEGER NOT NULL
    );",
    // 7 -> 8: per URL validators of a CSAF provider's listing documents (metadata, ROLIE
    // feeds, changes.csv), so an unchanged listing is a few 304s and no parsing.
    "CREATE TABLE listing_validators (
        source TEXT NOT NULL,
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        PRIMARY KEY (source, url)
    );",
    // 8 -> 9: how long a source's last poll took, in milliseconds, for monitoring.
    "ALTER TABLE sources ADD COLUMN last_poll_ms INTEGER;",
    // 9 -> 10: the side files (hash file, signature) of each verified CSAF advisory and
    // what they said, so a bounded slice of them is fetched again each poll and an
    // advisory changed or re-signed without a new listing date is noticed. The listing
    // validators go: the next poll reads the listing whole and records every advisory's.
    "DELETE FROM listing_validators;
    CREATE TABLE csaf_side_files (
        source TEXT NOT NULL,
        advisory_url TEXT NOT NULL,
        hash_url TEXT NOT NULL,
        signature_url TEXT NOT NULL,
        hash_value TEXT NOT NULL,
        signature_sha256 TEXT NOT NULL,
        round INTEGER NOT NULL,
        hash_etag TEXT,
        hash_last_modified TEXT,
        signature_etag TEXT,
        signature_last_modified TEXT,
        PRIMARY KEY (source, advisory_url)
    );",
    // 10 -> 11: instances sharing one state (a PostgreSQL one; SQLite has one at a time):
    // which instance polled each source last, its lease while it polls, claims on
    // deliveries being sent, and each instance's heartbeat. Kept alike in both backends.
    "ALTER TABLE sources ADD COLUMN last_polled_by TEXT;
    ALTER TABLE sources ADD COLUMN lease_holder TEXT;
    ALTER TABLE sources ADD COLUMN lease_until INTEGER;
    ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
    ALTER TABLE deliveries ADD COLUMN claim_until INTEGER;
    CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        version TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL,
        lease_secs INTEGER NOT NULL
    );",
];

/// The events pending on channel `?1` (neither delivered there nor acknowledged),
/// oldest first; the tail of every query that lists them.
const PENDING_ON_CHANNEL: &str = "FROM events e
    LEFT JOIN deliveries d ON d.event_id = e.id AND d.channel = ?1
    WHERE d.delivered_at IS NULL AND e.acked_at IS NULL ORDER BY e.seq";

/// The columns `row_to_source` reads, in its order.
const SOURCE_SELECT: &str = "SELECT id, vendor, kind, url, etag, last_modified, initialized, last_success,
        last_attempt, last_error, last_error_code, failures, failing_since, failing_alerted, first_seen,
        (SELECT COUNT(*) FROM entries e WHERE e.source = s.id), last_poll_ms, last_polled_by
    FROM sources s";

/// Opens the state at `path` (see [`SqliteStore::open`]).
///
/// # Errors
///
/// [`StoreError`] naming the file when it cannot be created, is empty, is not a
/// vendorguard database, or was written by a newer vendorguard.
pub fn open(path: &Path, instance: &Instance) -> Result<Box<dyn Store>, StoreError> {
    let mut s = SqliteStore::open(path)?;
    s.instance = instance.clone();
    Ok(Box::new(s))
}

/// Opens the state at `path` for `state migrate` (see [`SqliteStore::open`]).
///
/// # Errors
///
/// As [`open`].
pub fn open_rows(path: &Path) -> Result<Box<dyn Rows>, StoreError> {
    Ok(Box::new(SqliteStore::open(path)?))
}

/// Opens the state at `path` for the history of verdicts (see [`SqliteStore::open`]).
///
/// # Errors
///
/// As [`open`].
pub fn open_history(path: &Path) -> Result<Box<dyn History>, StoreError> {
    Ok(Box::new(SqliteStore::open(path)?))
}

/// The lock that keeps two runs from polling or delivering at once: `<state>.lock`,
/// private to the owner, held with an exclusive advisory lock for the life of the
/// returned file.
///
/// # Errors
///
/// `Ok(None)` when another run holds it; `Err` when the file cannot be opened.
pub fn try_lock(state_path: &Path) -> std::io::Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = sidecar(state_path, ".lock");
    if let Some(parent) = state_path.parent() {
        create_private_dir_all(parent)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&p)?;
    make_private(&p);
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The state in one SQLite file.
pub struct SqliteStore {
    conn: Connection,
    instance: Instance,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Backend(Box::new(e))
    }
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn from_secs(s: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s.max(0) as u64)
}

impl SqliteStore {
    /// Opens the state at `path`, creating it when absent, and brings its schema up to
    /// date.
    ///
    /// A missing file is a first run: the database is built under a temporary name,
    /// private to the owner (0600, in a 0700 folder when the folder is new), and moved
    /// into place only with its schema, so no crash can leave an empty file behind. An
    /// existing file that is empty, not SQLite, or SQLite without vendorguard's schema is
    /// refused and left as it was: taking it for a first run would file every advisory
    /// already published as backlog. Existing files readable by others are made
    /// private, with a warning.
    ///
    /// # Errors
    ///
    /// [`StoreError`] naming the file when it cannot be created, is empty, is not a
    /// vendorguard database, or was written by a newer vendorguard.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: path.display().to_string(),
            message,
        };
        match std::fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create(path).map_err(open_err)?;
            }
            Err(e) => return Err(open_err(format!("cannot read it: {e}"))),
        }
        check_existing(path).map_err(open_err)?;
        make_private(path);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_err(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| open_err(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_err(format!("not a usable SQLite database: {e}")))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| open_err(e.to_string()))?;
        // Left behind, readable, by an older vendorguard: SQLite keeps their mode.
        make_private(&sidecar(path, "-wal"));
        make_private(&sidecar(path, "-shm"));
        let instance = Instance::this_process(None, DEFAULT_LEASE, SystemTime::now());
        let mut state = SqliteStore { conn, instance };
        state.migrate().map_err(|e| match e {
            StoreError::Open { message, .. } => open_err(message),
            e => open_err(e.to_string()),
        })?;
        Ok(state)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version as usize > MIGRATIONS.len() {
            return Err(StoreError::Open {
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
}

impl Store for SqliteStore {
    fn source(&self, id: &str) -> Result<Option<SourceRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("{SOURCE_SELECT} WHERE id = ?1"),
                [id],
                row_to_source,
            )
            .optional()?)
    }

    fn sources(&self) -> Result<Vec<SourceRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{SOURCE_SELECT} ORDER BY vendor, url"))?;
        let rows = stmt.query_map([], row_to_source)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn entries(&self, source: &str) -> Result<HashMap<String, EntryRow>, StoreError> {
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

    fn problems(&self, source: &str) -> Result<Vec<ProblemRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT advisory_url, code, first_seen, listed_updated FROM advisory_problems WHERE source = ?1
             ORDER BY advisory_url, code",
        )?;
        let rows = stmt.query_map([source], |r| {
            Ok(ProblemRow {
                advisory_url: r.get(0)?,
                code: r.get(1)?,
                first_seen: from_secs(r.get(2)?),
                listed_updated: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn listing_validators(&self, source: &str) -> Result<Vec<UrlValidators>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT url, etag, last_modified FROM listing_validators WHERE source = ?1 ORDER BY url",
        )?;
        let rows = stmt.query_map([source], |r| {
            Ok(UrlValidators {
                url: r.get(0)?,
                etag: r.get(1)?,
                last_modified: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn side_files(&self, source: &str) -> Result<Vec<SideFiles>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT advisory_url, hash_url, signature_url, hash_value, signature_sha256, round,
                    hash_etag, hash_last_modified, signature_etag, signature_last_modified
             FROM csaf_side_files WHERE source = ?1 ORDER BY advisory_url",
        )?;
        let rows = stmt.query_map([source], |r| {
            Ok(SideFiles {
                advisory_url: r.get(0)?,
                hash_url: r.get(1)?,
                signature_url: r.get(2)?,
                hash_value: r.get(3)?,
                signature_sha256: r.get(4)?,
                round: r.get(5)?,
                hash_validators: (r.get(6)?, r.get(7)?),
                signature_validators: (r.get(8)?, r.get(9)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn keyring_seen(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT fingerprints FROM keyring_seen WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn open_problems(&self) -> Result<HashMap<String, Vec<(String, u64)>>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT source, code, COUNT(*) FROM advisory_problems GROUP BY source, code
             ORDER BY source, code",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u64>(2)?,
            ))
        })?;
        let mut out: HashMap<String, Vec<(String, u64)>> = HashMap::new();
        for row in rows {
            let (source, code, n) = row?;
            out.entry(source).or_default().push((code, n));
        }
        Ok(out)
    }

    fn commit_poll(&mut self, c: &PollCommit<'_>) -> Result<usize, StoreError> {
        let now = secs(c.now);
        let me = &self.instance;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO sources (id, vendor, kind, url, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET vendor = excluded.vendor, kind = excluded.kind, url = excluded.url",
            params![c.source.id, c.source.vendor, c.source.kind, c.source.url, now],
        )?;
        if let Some((etag, last_modified)) = &c.validators {
            tx.execute(
                "UPDATE sources SET etag = ?2, last_modified = ?3 WHERE id = ?1",
                params![c.source.id, etag, last_modified],
            )?;
        }
        tx.execute(
            "UPDATE sources SET initialized = 1, last_success = ?2, last_attempt = ?2, last_error = NULL,
                    last_error_code = NULL, failures = 0, failing_since = NULL, failing_alerted = 0,
                    last_poll_ms = COALESCE(?3, last_poll_ms), last_polled_by = ?4,
                    lease_until = CASE WHEN lease_holder = ?4 THEN NULL ELSE lease_until END,
                    lease_holder = CASE WHEN lease_holder = ?4 THEN NULL ELSE lease_holder END
             WHERE id = ?1",
            params![c.source.id, now, c.duration.map(millis), me.id],
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
                    c.source.id,
                    e.key,
                    e.content_hash,
                    e.updated,
                    e.title,
                    e.url,
                    now
                ])?;
            }
        }
        if let Some(problems) = c.problems {
            tx.execute(
                "DELETE FROM advisory_problems WHERE source = ?1",
                [c.source.id],
            )?;
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO advisory_problems (source, advisory_url, code, first_seen, last_seen, listed_updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for p in problems {
                ins.execute(params![
                    c.source.id,
                    p.advisory_url,
                    p.code,
                    secs(p.first_seen),
                    now,
                    p.listed_updated
                ])?;
            }
        }
        if let Some(listing) = c.listing {
            tx.execute(
                "DELETE FROM listing_validators WHERE source = ?1",
                [c.source.id],
            )?;
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO listing_validators (source, url, etag, last_modified)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for v in listing {
                ins.execute(params![c.source.id, v.url, v.etag, v.last_modified])?;
            }
        }
        if let Some(side_files) = c.side_files {
            tx.execute(
                "DELETE FROM csaf_side_files WHERE source = ?1",
                [c.source.id],
            )?;
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO csaf_side_files
                    (source, advisory_url, hash_url, signature_url, hash_value, signature_sha256, round,
                     hash_etag, hash_last_modified, signature_etag, signature_last_modified)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for f in side_files {
                ins.execute(params![
                    c.source.id,
                    f.advisory_url,
                    f.hash_url,
                    f.signature_url,
                    f.hash_value,
                    f.signature_sha256,
                    f.round,
                    f.hash_validators.0,
                    f.hash_validators.1,
                    f.signature_validators.0,
                    f.signature_validators.1
                ])?;
            }
        }
        if let Some(fingerprints) = c.keyring {
            tx.execute(
                "INSERT OR REPLACE INTO keyring_seen (source, fingerprints, seen_at) VALUES (?1, ?2, ?3)",
                params![c.source.id, fingerprints, now],
            )?;
        }
        let inserted = insert_events(&tx, c.events)?;
        tx.commit()?;
        Ok(inserted)
    }

    fn commit_failure(
        &mut self,
        f: &FailureCommit<'_>,
        decide: &dyn Fn(&SourceRow) -> Option<Event>,
    ) -> Result<(SourceRow, Option<Event>), StoreError> {
        let (id, vendor, kind, url) = (f.source.id, f.source.vendor, f.source.kind, f.source.url);
        let (code, error, now) = (f.code, f.error, f.now);
        let t = secs(now);
        let me = &self.instance;
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
                    failing_since = COALESCE(failing_since, ?4), last_poll_ms = COALESCE(?5, last_poll_ms),
                    last_polled_by = ?6,
                    lease_until = CASE WHEN lease_holder = ?6 THEN NULL ELSE lease_until END,
                    lease_holder = CASE WHEN lease_holder = ?6 THEN NULL ELSE lease_holder END
             WHERE id = ?1",
            params![id, error, code, t, f.duration.map(millis), me.id],
        )?;
        let row = tx.query_row(
            &format!("{SOURCE_SELECT} WHERE id = ?1"),
            [id],
            row_to_source,
        )?;
        let event = if row.health.failing_alerted {
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

    fn events(&self, since: Option<SystemTime>) -> Result<Vec<EventRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, id, kind, vendor, json, detected_at, acked_at FROM events
             WHERE detected_at >= ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([since.map_or(i64::MIN, secs)], |r| {
            Ok(EventRow {
                seq: r.get(0)?,
                id: r.get(1)?,
                kind: r.get(2)?,
                vendor: r.get(3)?,
                event: parse_event(&r.get::<_, String>(4)?),
                detected_at: from_secs(r.get(5)?),
                acked_at: r.get::<_, Option<i64>>(6)?.map(from_secs),
                delivered: Vec::new(),
                filtered: Vec::new(),
            })
        })?;
        let mut out = rows.collect::<Result<Vec<_>, _>>()?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT channel, filtered FROM deliveries WHERE event_id = ?1 AND delivered_at IS NOT NULL
             ORDER BY channel",
        )?;
        for e in &mut out {
            let channels = stmt.query_map([&e.id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?))
            })?;
            for row in channels {
                let (channel, filtered) = row?;
                match filtered {
                    true => e.filtered.push(channel),
                    false => e.delivered.push(channel),
                }
            }
        }
        Ok(out)
    }

    fn ack_event(&mut self, id: &str, now: SystemTime) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE events SET acked_at = COALESCE(acked_at, ?2) WHERE id = ?1",
            params![id, secs(now)],
        )?;
        Ok(n > 0)
    }

    fn filtered_count(&self, channel: &str) -> Result<u64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM deliveries WHERE channel = ?1 AND filtered = 1",
            [channel],
            |r| r.get(0),
        )?)
    }

    fn handled_count(&self, channels: &[&str]) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.id FROM events e LEFT JOIN deliveries d ON d.event_id = e.id AND d.channel = ?1
             WHERE d.delivered_at IS NULL AND e.acked_at IS NOT NULL",
        )?;
        let mut ids = std::collections::BTreeSet::new();
        for channel in channels {
            let rows = stmt.query_map([channel], |r| r.get::<_, String>(0))?;
            for id in rows {
                ids.insert(id?);
            }
        }
        Ok(ids.len() as u64)
    }

    fn pending_detected(&self, channel: &str) -> Result<Vec<(String, SystemTime)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT e.id, e.detected_at {PENDING_ON_CHANNEL}"))?;
        let rows = stmt.query_map([channel], |r| {
            Ok((r.get::<_, String>(0)?, from_secs(r.get(1)?)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delivery_totals(&self) -> Result<Vec<DeliveryTotals>, StoreError> {
        // A delivered row's last attempt succeeded; every other attempt failed.
        let mut stmt = self.conn.prepare(
            "SELECT channel, COUNT(delivered_at), SUM(attempts) - COUNT(delivered_at)
             FROM deliveries GROUP BY channel ORDER BY channel",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DeliveryTotals {
                channel: r.get(0)?,
                delivered: r.get::<_, i64>(1)?.max(0) as u64,
                failed: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn event_totals(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, COUNT(*) FROM events GROUP BY kind ORDER BY kind")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn heartbeat(&mut self, now: SystemTime) -> Result<(), StoreError> {
        let i = &self.instance;
        let t = secs(now);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO instances (id, host, pid, version, started_at, heartbeat_at, lease_secs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET host = ?2, pid = ?3, version = ?4, started_at = ?5,
                heartbeat_at = ?6, lease_secs = ?7",
            params![
                i.id,
                i.host,
                i.pid,
                i.version,
                secs(i.started_at),
                t,
                i.lease.as_secs().max(1) as i64
            ],
        )?;
        tx.execute(
            "DELETE FROM instances WHERE heartbeat_at < ?1",
            [t - FORGET_INSTANCES_SECS],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, host, pid, version, started_at, heartbeat_at, lease_secs FROM instances ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let heartbeat: i64 = r.get(5)?;
            Ok(InstanceRow {
                id: r.get(0)?,
                host: r.get(1)?,
                pid: r.get(2)?,
                version: r.get(3)?,
                started_at: from_secs(r.get(4)?),
                heartbeat_at: from_secs(heartbeat),
                alive_until: from_secs(heartbeat.saturating_add(r.get(6)?)),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn lease_sources(
        &mut self,
        sources: &[(SourceRef<'_>, Option<Duration>)],
        now: SystemTime,
    ) -> Result<Vec<Lease>, StoreError> {
        let t = secs(now);
        let me = &self.instance;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(sources.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO sources (id, vendor, kind, url, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO NOTHING",
            )?;
            let mut read = tx.prepare_cached(&format!(
                "SELECT lease_holder, lease_until, last_polled_by, {LAST_POLL_BY_THE_LIVING}
                 FROM sources s WHERE id = ?1"
            ))?;
            let mut take = tx.prepare_cached(
                "UPDATE sources SET lease_holder = ?2, lease_until = ?3 WHERE id = ?1",
            )?;
            for (source, fresh_within) in sources {
                insert.execute(params![
                    source.id,
                    source.vendor,
                    source.kind,
                    source.url,
                    t
                ])?;
                let (holder, until, by, at) = read.query_row(params![source.id, t], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
                let found = lease_decision(&me.id, t, *fresh_within, holder, until, by, at);
                if found == Lease::Taken {
                    take.execute(params![
                        source.id,
                        me.id,
                        t.saturating_add(me.lease.as_secs() as i64)
                    ])?;
                }
                out.push(found);
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn release_source(&mut self, id: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE sources SET lease_holder = NULL, lease_until = NULL WHERE id = ?1 AND lease_holder = ?2",
            params![id, self.instance.id],
        )?;
        Ok(())
    }

    fn forget_instance(&mut self, id: &str) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE sources SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = ?1",
            [id],
        )?;
        tx.execute(
            "UPDATE deliveries SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = ?1",
            [id],
        )?;
        tx.execute("DELETE FROM instances WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }
}

/// A source's last attempt when the instance that made it is alive at `?2` (its
/// heartbeat younger than its lease), else NULL: a poll by an instance that is gone does
/// not keep a daemon from polling the source. The same in both backends.
pub(crate) const LAST_POLL_BY_THE_LIVING: &str = "CASE WHEN EXISTS (SELECT 1 FROM instances i
    WHERE i.id = s.last_polled_by AND i.heartbeat_at + i.lease_secs > ?2) THEN s.last_attempt END";

/// How long an instance not heard from is still listed: a week.
const FORGET_INSTANCES_SECS: i64 = 7 * 24 * 3600;

/// Whether this instance (`me`) may poll a source whose lease and last poll are as
/// stored, at `now` (seconds): the rule both backends apply.
pub(crate) fn lease_decision(
    me: &str,
    now: i64,
    fresh_within: Option<Duration>,
    holder: Option<String>,
    until: Option<i64>,
    last_by: Option<String>,
    last_at: Option<i64>,
) -> Lease {
    if let (Some(by), Some(until)) = (holder, until) {
        if by != me && until > now {
            return Lease::Held {
                by,
                until: from_secs(until),
            };
        }
    }
    if let (Some(fresh), Some(by), Some(at)) = (fresh_within, last_by, last_at) {
        if by != me && now.saturating_sub(at) < fresh.as_secs() as i64 {
            return Lease::Fresh {
                by,
                at: from_secs(at),
            };
        }
    }
    Lease::Taken
}

impl Outbox for SqliteStore {
    type Error = StoreError;

    fn add_events(&mut self, events: &[Event]) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = insert_events(&tx, events)?;
        tx.commit()?;
        Ok(n)
    }

    fn claim(&mut self, channel: &str, _now: SystemTime) -> Result<Vec<PendingEvent>, StoreError> {
        // One run at a time holds the state's lock: everything pending is this run's.
        self.pending(channel)
    }

    fn release_claims(&mut self, _channel: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn renew_claims(
        &mut self,
        event_ids: &[&str],
        _channel: &str,
        _now: SystemTime,
    ) -> Result<Vec<String>, StoreError> {
        Ok(event_ids.iter().map(|id| id.to_string()).collect())
    }

    fn pending(&self, channel: &str) -> Result<Vec<PendingEvent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT e.json, d.message_id {PENDING_ON_CHANNEL}"))?;
        let rows = stmt.query_map([channel], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (json, message_id) = row?;
            // Reported by `unreadable_pending`; the others go on.
            let Ok(event) = parse_event(&json) else {
                continue;
            };
            out.push(PendingEvent { event, message_id });
        }
        Ok(out)
    }

    fn unreadable_pending(&self, channels: &[&str]) -> Result<Vec<UnreadableEvent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT e.seq, e.id, e.json {PENDING_ON_CHANNEL}"))?;
        let mut out: std::collections::BTreeMap<i64, UnreadableEvent> = Default::default();
        for channel in channels {
            let rows = stmt.query_map([channel], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (seq, id, json) = row?;
                if let Err(error) = parse_event(&json) {
                    out.insert(seq, UnreadableEvent { seq, id, error });
                }
            }
        }
        Ok(out.into_values().collect())
    }

    fn pending_count(&self, channel: &str) -> Result<u64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM events e LEFT JOIN deliveries d ON d.event_id = e.id AND d.channel = ?1
             WHERE d.delivered_at IS NULL AND e.acked_at IS NULL",
            [channel],
            |r| r.get(0),
        )?)
    }

    fn fix_message_id(
        &mut self,
        event_ids: &[&str],
        channel: &str,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO deliveries (event_id, channel, attempts, message_id) VALUES (?1, ?2, 0, ?3)
                 ON CONFLICT(event_id, channel) DO UPDATE SET message_id = ?3",
            )?;
            for id in event_ids {
                stmt.execute(params![id, channel, message_id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn record(&mut self, event: &str, channel: &str, a: Attempt<'_>) -> Result<(), StoreError> {
        match a {
            Attempt::Delivered { at, output } => self.conn.execute(
                "INSERT INTO deliveries (event_id, channel, delivered_at, attempts, output) VALUES (?1, ?2, ?3, 1, ?4)
                 ON CONFLICT(event_id, channel) DO UPDATE SET delivered_at = ?3, attempts = attempts + 1,
                    output = COALESCE(?4, output), last_error = NULL, last_error_kind = NULL, next_attempt_at = NULL",
                params![event, channel, secs(at), output],
            )?,
            Attempt::Filtered { at } => self.conn.execute(
                "INSERT INTO deliveries (event_id, channel, delivered_at, attempts, filtered) VALUES (?1, ?2, ?3, 0, 1)
                 ON CONFLICT(event_id, channel) DO UPDATE SET delivered_at = ?3, filtered = 1,
                    last_error = NULL, last_error_kind = NULL, next_attempt_at = NULL",
                params![event, channel, secs(at)],
            )?,
            Attempt::Failed(f) => self.conn.execute(
                "INSERT INTO deliveries (event_id, channel, attempts, last_error, last_error_kind, next_attempt_at, output)
                 VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6)
                 ON CONFLICT(event_id, channel) DO UPDATE SET attempts = attempts + 1, last_error = ?3,
                    last_error_kind = ?4, next_attempt_at = ?5, output = COALESCE(?6, output)",
                params![event, channel, f.error, f.kind, secs(f.retry_at), f.output],
            )?,
        };
        Ok(())
    }

    fn delivery_problems(&self) -> Result<Vec<DeliveryProblem>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.channel, COALESCE(d.last_error_kind, ''), COUNT(*),
                    (SELECT x.last_error FROM deliveries x WHERE x.channel = d.channel
                       AND x.last_error_kind IS d.last_error_kind AND x.delivered_at IS NULL
                       AND x.event_id NOT IN (SELECT id FROM events WHERE acked_at IS NOT NULL)
                     ORDER BY x.rowid DESC LIMIT 1),
                    (SELECT x.output FROM deliveries x WHERE x.channel = d.channel
                       AND x.last_error_kind IS d.last_error_kind AND x.delivered_at IS NULL
                       AND x.event_id NOT IN (SELECT id FROM events WHERE acked_at IS NOT NULL)
                     ORDER BY x.rowid DESC LIMIT 1)
             FROM deliveries d WHERE d.delivered_at IS NULL AND d.last_error IS NOT NULL
               AND d.event_id NOT IN (SELECT id FROM events WHERE acked_at IS NOT NULL)
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
}

const _: () = assert!(MIGRATIONS.len() == SCHEMA_VERSION);

impl Rows for SqliteStore {
    fn read_rows(&self, table: &TableSpec) -> Result<Vec<Vec<Cell>>, StoreError> {
        // Names from `store::TABLES`, never from input.
        let cols = table.columns.join(", ");
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {cols} FROM {} ORDER BY {cols}",
            table.name
        ))?;
        let n = table.columns.len();
        let rows = stmt.query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Cell::Null,
                        rusqlite::types::ValueRef::Integer(v) => Cell::Int(v),
                        rusqlite::types::ValueRef::Text(t) => {
                            Cell::Text(String::from_utf8_lossy(t).into_owned())
                        }
                        rusqlite::types::ValueRef::Real(v) => Cell::Int(v as i64),
                        rusqlite::types::ValueRef::Blob(b) => {
                            Cell::Text(String::from_utf8_lossy(b).into_owned())
                        }
                    })
                })
                .collect::<rusqlite::Result<Vec<Cell>>>()
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM sources) AND NOT EXISTS (SELECT 1 FROM events)
                AND NOT EXISTS (SELECT 1 FROM history)",
            [],
            |r| r.get(0),
        )?)
    }

    fn write_rows(&mut self, tables: &[(TableSpec, Vec<Vec<Cell>>)]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (table, rows) in tables {
            let marks: Vec<String> = (1..=table.columns.len()).map(|i| format!("?{i}")).collect();
            let mut stmt = tx.prepare(&format!(
                "INSERT INTO {} ({}) VALUES ({})",
                table.name,
                table.columns.join(", "),
                marks.join(", ")
            ))?;
            for row in rows {
                let values: Vec<rusqlite::types::Value> = row
                    .iter()
                    .map(|c| match c {
                        Cell::Null => rusqlite::types::Value::Null,
                        Cell::Int(v) => rusqlite::types::Value::Integer(*v),
                        Cell::Text(t) => rusqlite::types::Value::Text(t.clone()),
                    })
                    .collect();
                stmt.execute(rusqlite::params_from_iter(values))?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// The tail of every refusal: what to do instead.
const REFUSED: &str = "vendorguard will not take it for a first run (that would file every \
advisory already published as backlog): restore it from a backup, or move it aside to start fresh";

/// The columns `row_to_record` reads, in its order.
const HISTORY_SELECT: &str =
    "SELECT seq, at, command, bundle, size, sha256, vendor, product, version, verdict,
        codes, signers, unexpected, into_dir, user, host, allowed, prev, hash FROM history";

impl History for SqliteStore {
    fn append(&mut self, e: &Entry) -> Result<Record, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (count, prev): (u64, String) = tx
            .query_row(
                "SELECT count, hash FROM history_head WHERE id = 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, chain::GENESIS.to_string()));
        let seq = count + 1;
        let hash = chain::hash(seq, e, &prev);
        let list = |v: &[String]| serde_json::Value::from(v.to_vec()).to_string();
        tx.execute(
            "INSERT INTO history (seq, at, command, bundle, size, sha256, vendor, product, version, verdict,
                codes, signers, unexpected, into_dir, user, host, allowed, prev, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            params![
                seq as i64,
                e.at as i64,
                e.command,
                e.bundle,
                e.size as i64,
                e.sha256,
                e.vendor,
                e.product,
                e.version,
                e.verdict,
                list(&e.codes),
                list(&e.signers),
                list(&e.unexpected),
                e.into,
                e.user,
                e.host,
                list(&e.allowed),
                prev,
                hash
            ],
        )?;
        tx.execute(
            "INSERT INTO history_head (id, count, hash) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET count = excluded.count, hash = excluded.hash",
            params![seq as i64, hash],
        )?;
        tx.commit()?;
        Ok(Record {
            seq,
            entry: e.clone(),
            prev,
            hash,
        })
    }

    fn records(
        &self,
        vendor: Option<&str>,
        product: Option<&str>,
    ) -> Result<Vec<Record>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT * FROM ({HISTORY_SELECT}
               WHERE (?1 IS NULL OR vendor = ?1) AND (?2 IS NULL OR product = ?2)
               ORDER BY seq DESC LIMIT ?3) ORDER BY seq"
        ))?;
        let rows = stmt.query_map(
            params![vendor, product, crate::policy::MAX_HISTORY_RECORDS as i64],
            row_to_record,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn check(&self) -> Result<Result<u64, chain::Break>, StoreError> {
        let mut checker = chain::Checker::default();
        let mut stmt = self
            .conn
            .prepare(&format!("{HISTORY_SELECT} ORDER BY seq"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let r = row_to_record(row)?;
            if let Err(b) = checker.step(&r) {
                return Ok(Err(b));
            }
        }
        let head: Option<(u64, String)> = self
            .conn
            .query_row(
                "SELECT count, hash FROM history_head WHERE id = 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?;
        Ok(checker.finish(head))
    }

    fn installed(&self) -> Result<Vec<Record>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "{HISTORY_SELECT} WHERE seq IN (
                SELECT MAX(seq) FROM history
                WHERE command = 'unpack' AND verdict = 'verified' AND product IS NOT NULL
                GROUP BY vendor, product)
             ORDER BY vendor, product"
        ))?;
        let rows = stmt.query_map([], row_to_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A history row; a list column that is not a JSON array of strings reads as the
/// text it holds, so `history --check` reports the change instead of failing to read.
fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        let text: String = r.get(i)?;
        Ok(serde_json::from_str::<Vec<String>>(&text).unwrap_or_else(|_| vec![text]))
    };
    Ok(Record {
        seq: r.get::<_, i64>(0)? as u64,
        entry: Entry {
            at: r.get::<_, i64>(1)?.max(0) as u64,
            command: r.get(2)?,
            bundle: r.get(3)?,
            size: r.get::<_, i64>(4)?.max(0) as u64,
            sha256: r.get(5)?,
            vendor: r.get(6)?,
            product: r.get(7)?,
            version: r.get(8)?,
            verdict: r.get(9)?,
            codes: list(10)?,
            signers: list(11)?,
            unexpected: list(12)?,
            into: r.get(13)?,
            user: r.get(14)?,
            host: r.get(15)?,
            allowed: list(16)?,
        },
        prev: r.get(17)?,
        hash: r.get(18)?,
    })
}

/// The tables every vendorguard schema has.
const TABLES: [&str; 4] = ["sources", "entries", "events", "deliveries"];

/// `path` with `suffix` appended (`-wal`, `-shm`, `.lock`).
fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}

/// Creates the folders up to `dir` that are missing, private to the owner (0700);
/// existing folders are left alone.
///
/// # Errors
///
/// The I/O error of the folder that cannot be created.
fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Takes the group and other bits off `path` when it has any, and says so; a file
/// that is not ours to change gets a warning. A missing file is nothing.
fn make_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return;
    }
    let private = mode & 0o700;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(private)) {
        Ok(()) => tracing::warn!(
            "{} was accessible to other users (mode {mode:o}); made it private ({private:o})",
            path.display()
        ),
        Err(e) => tracing::warn!(
            "{} is accessible to other users (mode {mode:o}) and could not be made private: {e}",
            path.display()
        ),
    }
}

/// Builds a new state with the current schema under a temporary name beside `path`,
/// then links it into place, never over a file that appeared meanwhile.
fn create(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    create_private_dir_all(dir).map_err(|e| format!("cannot create its folder: {e}"))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| format!("cannot create it: {e}"))?;
    {
        let conn = Connection::open_with_flags(
            tmp.path(),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("cannot create it: {e}"))?;
        let instance = Instance::this_process(None, DEFAULT_LEASE, SystemTime::now());
        let mut fresh = SqliteStore { conn, instance };
        fresh
            .migrate()
            .map_err(|e| format!("cannot create it: {e}"))?;
        fresh
            .conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| format!("cannot create it: {e}"))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| format!("cannot create it: {e}"))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(()),
        // Another run created it first: use theirs.
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create it: {}", e.error)),
    }
}

/// Whether the existing file at `path` is a vendorguard state, read without changing
/// it: its size, its header, then its schema through an immutable read-only
/// connection (which creates no -wal or -shm file). Only when the file is in use, or
/// was left with a -wal that may hold its latest commits, is a plain read-only
/// connection used.
fn check_existing(path: &Path) -> Result<(), String> {
    match schema_problem(path)? {
        Some(damage) => Err(format!("{damage}; {REFUSED}")),
        None => Ok(()),
    }
}

/// What makes the file at `path` no vendorguard state (`Ok(Some)`), or why it cannot be
/// used at all (`Err`, a newer schema).
fn schema_problem(path: &Path) -> Result<Option<String>, String> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Ok(Some("is not a regular file".into()));
    }
    if meta.len() == 0 {
        return Ok(Some(
            "is empty (0 bytes), so it holds no vendorguard state".into(),
        ));
    }
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(|e| format!("cannot read it: {e}"))?;
    if head != b"SQLite format 3\0" {
        return Ok(Some("is not an SQLite database".into()));
    }
    let in_use = sidecar(path, "-wal").exists() || sidecar(path, "-shm").exists();
    let (version, tables) = match read_schema(path, !in_use) {
        Ok(v) => v,
        Err(e) => return Ok(Some(format!("cannot be read as an SQLite database: {e}"))),
    };
    if version == 0 {
        let found = if tables.is_empty() {
            "no tables".to_string()
        } else {
            let shown: Vec<String> = tables
                .iter()
                .take(5)
                .map(|t| crate::text::escape(t))
                .collect();
            let more = if tables.len() > 5 { ", ..." } else { "" };
            format!("tables: {}{more}", shown.join(", "))
        };
        return Ok(Some(format!("has no vendorguard schema ({found})")));
    }
    if version as usize > MIGRATIONS.len() {
        return Err(format!(
            "schema version {version} is newer than this vendorguard knows ({}); upgrade vendorguard",
            MIGRATIONS.len()
        ));
    }
    let missing: Vec<&str> = TABLES
        .into_iter()
        .filter(|t| !tables.iter().any(|have| have == t))
        .collect();
    if !missing.is_empty() {
        return Ok(Some(format!(
            "has vendorguard schema version {version} but lacks the table(s) {}",
            missing.join(", ")
        )));
    }
    Ok(None)
}

/// `PRAGMA user_version` and the table names of the database at `path`, read-only.
fn read_schema(path: &Path, immutable: bool) -> Result<(i64, Vec<String>), String> {
    let conn = if immutable {
        let abs = std::path::absolute(path).map_err(|e| e.to_string())?;
        let mut uri = url::Url::from_file_path(&abs)
            .map_err(|()| format!("{} cannot be written as a URI", abs.display()))?;
        uri.set_query(Some("mode=ro&immutable=1"));
        Connection::open_with_flags(
            uri.as_str(),
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    } else {
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    }
    .map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             ORDER BY name",
        )
        .map_err(|e| e.to_string())?;
    let tables = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())?;
    Ok((version, tables))
}

/// A stored event, or what is wrong with its JSON.
/// A stored event's JSON, or what is wrong with it (both backends).
pub(crate) fn parse_event(json: &str) -> Result<Event, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("is not valid JSON ({e})"))?;
    Event::from_json(&v).ok_or_else(|| {
        "is not a vendorguard event (a field is missing or has an unknown value)".into()
    })
}

fn insert_events(tx: &rusqlite::Transaction<'_>, events: &[Event]) -> Result<usize, StoreError> {
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
        health: SourceHealth {
            last_success: t(r.get(7)?),
            last_attempt: t(r.get(8)?),
            last_error: r.get(9)?,
            last_error_code: r.get(10)?,
            failures: r.get(11)?,
            failing_since: t(r.get(12)?),
            failing_alerted: r.get::<_, i64>(13)? != 0,
            first_seen: t(r.get(14)?),
            last_poll: r
                .get::<_, Option<i64>>(16)?
                .map(|ms| Duration::from_millis(ms.max(0) as u64)),
            last_polled_by: r.get(17)?,
        },
        entries: r.get::<_, i64>(15)? as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::event::{Kind, Severity};
    use crate::alert::outbox::DeliveryFailure;
    use crate::store::{EntryWrite, SourceRef};

    #[test]
    fn a_lease_is_taken_unless_another_instance_holds_it_or_just_polled() {
        let t = 1_000_000i64;
        let half_hour = Some(Duration::from_secs(1800));
        let check = |holder: Option<&str>,
                     until: Option<i64>,
                     by: Option<&str>,
                     at: Option<i64>,
                     fresh,
                     want: &str| {
            let got = lease_decision(
                "me",
                t,
                fresh,
                holder.map(Into::into),
                until,
                by.map(Into::into),
                at,
            );
            let got = match got {
                Lease::Taken => "taken".to_string(),
                Lease::Held { by, .. } => format!("held {by}"),
                Lease::Fresh { by, .. } => format!("fresh {by}"),
            };
            assert_eq!(got, want, "{holder:?} {until:?} {by:?} {at:?} {fresh:?}");
        };
        check(None, None, None, None, half_hour, "taken");
        check(Some("b"), Some(t + 1), None, None, None, "held b");
        check(Some("b"), Some(t), None, None, None, "taken");
        check(Some("me"), Some(t + 100), None, None, None, "taken");
        check(None, None, Some("b"), Some(t - 60), half_hour, "fresh b");
        check(None, None, Some("b"), Some(t - 60), None, "taken");
        check(None, None, Some("b"), Some(t - 1800), half_hour, "taken");
        check(None, None, Some("me"), Some(t - 60), half_hour, "taken");
        check(
            Some("b"),
            Some(t + 5),
            Some("c"),
            Some(t - 60),
            half_hour,
            "held b",
        );
    }

    #[test]
    fn an_instance_id_always_carries_the_process_id() {
        let pid = std::process::id();
        let named = Instance::this_process(Some("watch-a"), DEFAULT_LEASE, UNIX_EPOCH);
        assert_eq!(named.id, format!("watch-a:{pid}"));
        let unnamed = Instance::this_process(None, DEFAULT_LEASE, UNIX_EPOCH);
        assert_eq!(unnamed.id, format!("{}:{pid}", unnamed.host));
    }

    #[test]
    fn leases_heartbeats_and_the_copy_of_every_table() {
        let dir = tempfile::tempdir().unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let lease = Duration::from_secs(60);
        let a = Instance {
            id: "a".into(),
            host: "h".into(),
            pid: 1,
            version: "0".into(),
            started_at: now,
            lease,
        };
        let b = Instance {
            id: "b".into(),
            ..a.clone()
        };
        let path = dir.path().join("s.sqlite");
        let mut sa = SqliteStore::open(&path).unwrap();
        sa.instance = a;
        let src = SourceRef {
            id: "acme feed u",
            vendor: "acme",
            kind: "feed",
            url: "u",
        };
        assert_eq!(sa.lease_source(src, None, now).unwrap(), Lease::Taken);
        sa.heartbeat(now).unwrap();
        drop(sa);
        let mut sb = SqliteStore::open(&path).unwrap();
        sb.instance = b;
        assert!(
            matches!(sb.lease_source(src, None, now).unwrap(), Lease::Held { by, .. } if by == "a")
        );
        let later = now + lease;
        assert_eq!(
            sb.lease_source(src, None, later).unwrap(),
            Lease::Taken,
            "expired"
        );
        sb.commit_poll(&PollCommit {
            source: src,
            validators: None,
            entries: &[],
            problems: None,
            events: &[ev(1)],
            listing: None,
            keyring: None,
            side_files: None,
            now: later,
            duration: None,
        })
        .unwrap();
        assert_eq!(
            sb.source(src.id)
                .unwrap()
                .unwrap()
                .health
                .last_polled_by
                .as_deref(),
            Some("b")
        );
        sb.heartbeat(later).unwrap();
        let inst = sb.instances().unwrap();
        assert_eq!(
            inst.iter()
                .map(|i| (i.id.as_str(), i.alive_until > later))
                .collect::<Vec<_>>(),
            [("a", false), ("b", true)]
        );
        // Every table copies into an empty state and reads back the same.
        let copy = dir.path().join("c.sqlite");
        let mut dst = SqliteStore::open(&copy).unwrap();
        assert!(dst.is_empty().unwrap());
        assert!(!sb.is_empty().unwrap());
        let tables: Vec<_> = crate::store::TABLES
            .iter()
            .map(|t| (*t, sb.read_rows(t).unwrap()))
            .collect();
        dst.write_rows(&tables).unwrap();
        for (t, rows) in &tables {
            assert_eq!(&dst.read_rows(t).unwrap(), rows, "{}", t.name);
        }
        assert_eq!(dst.pending("stdout").unwrap().len(), 1);
    }

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
        let mut s = SqliteStore::open(&dir.path().join("s/state.sqlite")).unwrap();
        let entries = vec![EntryWrite {
            key: "k1".into(),
            content_hash: "h".into(),
            updated: None,
            title: "t".into(),
            url: "u".into(),
        }];
        let events = vec![ev(1), ev(2)];
        let c = PollCommit {
            source: SourceRef {
                id: "src",
                vendor: "acme",
                kind: "feed",
                url: "http://x",
            },
            validators: Some((Some("\"etag\"".into()), None)),
            entries: &entries,
            problems: None,
            events: &events,
            listing: None,
            keyring: None,
            side_files: None,
            now: from_secs(1_700_000_000),
            duration: Some(Duration::from_millis(1500)),
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
        let delivered = Attempt::Delivered {
            at: from_secs(1),
            output: None,
        };
        s.record(&p[0].event.id, "email", delivered).unwrap();
        assert_eq!(s.pending("email").unwrap().len(), 1);
        assert_eq!(s.pending("escalation").unwrap().len(), 2);
        let row = s.source("src").unwrap().unwrap();
        assert_eq!(row.etag.as_deref(), Some("\"etag\""));
        assert_eq!(row.entries, 1);
        let integrity: String = s
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
        drop(s);
        // Reopening keeps everything and does not re-run migrations.
        let s = SqliteStore::open(&dir.path().join("s/state.sqlite")).unwrap();
        let events: u64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(events, 2);
    }

    /// A successful poll of CSAF source `src` that writes only `problems` and
    /// `side_files`.
    fn csaf_commit<'a>(
        problems: Option<&'a [ProblemRow]>,
        side_files: Option<&'a [SideFiles]>,
    ) -> PollCommit<'a> {
        PollCommit {
            source: SourceRef {
                id: "src",
                vendor: "acme",
                kind: "csaf",
                url: "http://x",
            },
            validators: None,
            entries: &[],
            problems,
            events: &[],
            listing: None,
            keyring: None,
            side_files,
            now: from_secs(1_700_000_000),
            duration: None,
        }
    }

    #[test]
    fn csaf_side_files_are_replaced_by_a_poll_that_names_them_and_kept_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("state.sqlite")).unwrap();
        let row = |u: &str, round: i64| SideFiles {
            advisory_url: u.into(),
            hash_url: format!("{u}.sha512"),
            signature_url: format!("{u}.asc"),
            hash_value: "ab".into(),
            signature_sha256: "cd".into(),
            round,
            hash_validators: (Some("\"h\"".into()), None),
            signature_validators: (None, Some("Sun, 01 Nov 2026 00:00:00 GMT".into())),
        };
        let commit = |s: &mut SqliteStore, side_files: Option<&[SideFiles]>| {
            s.commit_poll(&csaf_commit(None, side_files)).unwrap();
        };
        commit(&mut s, Some(&[row("b", 1), row("a", 2)]));
        commit(&mut s, None);
        assert_eq!(s.side_files("src").unwrap(), [row("a", 2), row("b", 1)]);
        commit(&mut s, Some(&[row("b", 3)]));
        assert_eq!(s.side_files("src").unwrap(), [row("b", 3)]);
        assert!(s.side_files("other").unwrap().is_empty());
    }

    #[test]
    fn an_unreadable_event_is_reported_not_delivered_and_the_others_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("state.sqlite")).unwrap();
        s.add_events(&[ev(1), ev(2), ev(3)]).unwrap();
        s.conn
            .execute(
                "UPDATE events SET json = '{\"id\": \"trunc' WHERE id = ?1",
                [&ev(2).id],
            )
            .unwrap();
        s.conn
            .execute(
                "UPDATE events SET json = '{\"kind\": \"nonsense\"}' WHERE id = ?1",
                [&ev(3).id],
            )
            .unwrap();
        let pending = s.pending("email").unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].event.id, ev(1).id);
        let bad = s.unreadable_pending(&["email", "escalation"]).unwrap();
        assert_eq!(
            bad.iter().map(|b| b.id.clone()).collect::<Vec<_>>(),
            [ev(2).id, ev(3).id]
        );
        assert!(
            bad[0].error.starts_with("is not valid JSON"),
            "{:?}",
            bad[0]
        );
        assert!(
            bad[1].error.starts_with("is not a vendorguard event"),
            "{:?}",
            bad[1]
        );
        let delivered = Attempt::Delivered {
            at: from_secs(1),
            output: None,
        };
        s.record(&ev(2).id, "email", delivered).unwrap();
        assert_eq!(s.unreadable_pending(&["email"]).unwrap().len(), 1);
        assert_eq!(s.unreadable_pending(&["escalation"]).unwrap().len(), 2);
    }

    /// A state file as vendorguard's first schema left it.
    fn version_1(p: &Path) -> Connection {
        let conn = Connection::open(p).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn
    }

    #[test]
    fn a_version_1_state_is_brought_forward_and_digest_ids_stick() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.sqlite");
        drop(version_1(&p));
        let mut s = SqliteStore::open(&p).unwrap();
        s.add_events(&[ev(1), ev(2), ev(3)]).unwrap();
        s.fix_message_id(&[&ev(1).id, &ev(2).id], "email", "<digest-x@vendorguard>")
            .unwrap();
        let failure = DeliveryFailure {
            error: "down".into(),
            kind: "connection".into(),
            output: None,
            retry_at: from_secs(1),
        };
        s.record(&ev(1).id, "email", Attempt::Failed(&failure))
            .unwrap();
        drop(s);
        let s = SqliteStore::open(&p).unwrap();
        let p = s.pending("email").unwrap();
        let ids: Vec<Option<&str>> = p.iter().map(|e| e.message_id.as_deref()).collect();
        assert_eq!(
            ids,
            [
                Some("<digest-x@vendorguard>"),
                Some("<digest-x@vendorguard>"),
                None
            ]
        );
        let attempts: u32 = s
            .conn
            .query_row(
                "SELECT attempts FROM deliveries WHERE event_id = ?1 AND channel = 'email'",
                [&ev(1).id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(attempts, 1, "fixing the id is not an attempt");
        assert_eq!(s.pending("escalation").unwrap()[0].message_id, None);
    }

    /// Opens a state file that `setup` made; it must be refused with `want` and be left
    /// byte for byte as it was, without -wal or -shm beside it.
    fn check_refused(setup: &str, want: &str) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.sqlite");
        if setup.is_empty() {
            std::fs::write(&p, "").unwrap();
        } else {
            let c = Connection::open(&p).unwrap();
            c.execute_batch(setup).unwrap();
        }
        let before = std::fs::read(&p).unwrap();
        let e = SqliteStore::open(&p).err().expect("refused").to_string();
        assert!(e.contains(want), "{setup:?}: {e}");
        assert_eq!(
            std::fs::read(&p).unwrap(),
            before,
            "{setup:?} changed the file"
        );
        for s in ["-wal", "-shm", "-journal"] {
            assert!(!sidecar(&p, s).exists(), "{setup:?} left {s}");
        }
    }

    #[test]
    fn empty_foreign_and_partial_databases_are_refused_untouched() {
        check_refused("", "is empty (0 bytes)");
        check_refused("CREATE TABLE notes (x);", "move it aside to start fresh");
        check_refused(
            "PRAGMA user_version = 0;",
            "has no vendorguard schema (no tables)",
        );
        check_refused(
            "CREATE TABLE a (x); CREATE TABLE b (x INTEGER PRIMARY KEY AUTOINCREMENT);",
            "has no vendorguard schema (tables: a, b)",
        );
        check_refused(
            "PRAGMA journal_mode = WAL; CREATE TABLE notes (x);",
            "has no vendorguard schema (tables: notes)",
        );
        check_refused(
            "CREATE TABLE sources (id); CREATE TABLE entries (id); CREATE TABLE events (id);
             PRAGMA user_version = 1;",
            "has vendorguard schema version 1 but lacks the table(s) deliveries",
        );
        check_refused("PRAGMA user_version = 99;", "newer than this vendorguard");
    }

    #[test]
    fn a_new_state_is_private_and_complete_and_leaves_no_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new/folder/state.sqlite");
        let s = SqliteStore::open(&p).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        assert_eq!(mode(&dir.path().join("new/folder")), 0o700);
        drop(s);
        let names: Vec<String> = std::fs::read_dir(dir.path().join("new/folder"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["state.sqlite"]);
        let (version, tables) = read_schema(&p, true).unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
        for t in TABLES {
            assert!(tables.iter().any(|have| have == t), "{t} missing");
        }
    }

    #[test]
    fn a_version_4_state_gains_poll_durations_and_monitoring_counts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.sqlite");
        {
            let conn = Connection::open(&p).unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 4).unwrap();
            conn.execute(
                "INSERT INTO sources (id, vendor, kind, url, first_seen, failures) VALUES ('src', 'acme', 'feed', 'http://x', 1, 2)",
                [],
            )
            .unwrap();
        }
        let mut s = SqliteStore::open(&p).unwrap();
        let row = s.source("src").unwrap().unwrap();
        assert_eq!((row.health.failures, row.health.last_poll), (2, None));
        let src = SourceRef {
            id: "src",
            vendor: "acme",
            kind: "feed",
            url: "http://x",
        };
        let fail = |s: &mut SqliteStore, duration| {
            s.commit_failure(
                &FailureCommit {
                    source: src,
                    code: "http-error",
                    error: "HTTP 500",
                    now: from_secs(1_700_000_000),
                    duration,
                },
                &|_| None,
            )
            .unwrap();
        };
        fail(&mut s, Some(Duration::from_millis(2500)));
        let last_poll = |s: &SqliteStore| s.source("src").unwrap().unwrap().health.last_poll;
        assert_eq!(last_poll(&s), Some(Duration::from_millis(2500)));
        // A poll that was not timed (a panicked task) keeps the last measured one.
        fail(&mut s, None);
        assert_eq!(last_poll(&s), Some(Duration::from_millis(2500)));
        // Totals: e1 failed once then was delivered, e2 failed twice; an ack keeps
        // the counts but ends the pending.
        s.add_events(&[ev(1), ev(2)]).unwrap();
        let failure = DeliveryFailure {
            error: "down".into(),
            kind: "connection".into(),
            output: None,
            retry_at: from_secs(1),
        };
        for id in [&ev(1).id, &ev(2).id, &ev(2).id] {
            s.record(id, "email", Attempt::Failed(&failure)).unwrap();
        }
        let at = from_secs(1_700_000_100);
        s.record(&ev(1).id, "email", Attempt::Delivered { at, output: None })
            .unwrap();
        assert_eq!(
            s.delivery_totals().unwrap(),
            [DeliveryTotals {
                channel: "email".into(),
                delivered: 1,
                failed: 3
            }]
        );
        assert_eq!(
            s.pending_detected("email").unwrap(),
            [(ev(2).id, from_secs(1_700_000_000))]
        );
        assert_eq!(s.pending_detected("escalation").unwrap().len(), 2);
        s.ack_event(&ev(2).id, at).unwrap();
        assert!(s.pending_detected("email").unwrap().is_empty());
        assert_eq!(s.event_totals().unwrap(), [("advisory-new".to_string(), 2)]);
    }

    #[test]
    fn a_version_1_state_gains_the_problem_table_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.sqlite");
        {
            let conn = version_1(&p);
            conn.execute(
                "INSERT INTO entries (source, key, content_hash, first_seen, last_seen) VALUES ('src', 'k', 'h', 1, 1)",
                [],
            )
            .unwrap();
        }
        let mut s = SqliteStore::open(&p).unwrap();
        assert_eq!(s.entries("src").unwrap().len(), 1);
        let problem = |url: &str, code: &str, at: i64| ProblemRow {
            advisory_url: url.into(),
            code: code.into(),
            first_seen: from_secs(at),
            listed_updated: None,
        };
        let commit = |s: &mut SqliteStore, problems: Option<&[ProblemRow]>| {
            s.commit_poll(&csaf_commit(problems, None)).unwrap();
        };
        let open = [
            problem("u1", "digest-mismatch", 10),
            problem("u2", "no-signature", 20),
        ];
        commit(&mut s, Some(&open));
        assert_eq!(s.problems("src").unwrap(), open);
        // A feed's poll (None) leaves them; a CSAF poll replaces the whole set.
        commit(&mut s, None);
        assert_eq!(s.problems("src").unwrap().len(), 2);
        commit(&mut s, Some(&open[1..]));
        assert_eq!(s.problems("src").unwrap(), &open[1..]);
        assert_eq!(
            s.open_problems().unwrap()["src"],
            [("no-signature".to_string(), 1)]
        );
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
        let e = SqliteStore::open(&p).err().unwrap().to_string();
        assert!(e.contains("state.sqlite"), "{e}");
    }
}

#[cfg(test)]
mod history_tests {
    use super::*;

    fn entry(command: &str, product: &str, version: &str, verdict: &str) -> Entry {
        Entry {
            at: 1_795_000_000,
            command: command.into(),
            bundle: format!("/b/{product}-{version}.zip"),
            sha256: format!("{version:0>64}"),
            vendor: Some("acme".into()),
            product: Some(product.into()),
            version: Some(version.into()),
            verdict: verdict.into(),
            codes: vec!["x\"y".into()],
            ..Entry::default()
        }
    }

    #[test]
    fn appended_records_chain_filter_and_give_the_installed_versions() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
        assert_eq!(s.check().unwrap(), Ok(0), "an empty history is intact");
        for e in [
            entry("unpack", "app", "1.0", "verified"),
            entry("unpack", "app", "2.0", "verified"),
            entry("unpack", "app", "3.0", "rejected"),
            entry("verify", "app", "4.0", "verified"),
            entry("unpack", "agent", "0.9", "verified"),
        ] {
            s.append(&e).unwrap();
        }
        let all = s.records(None, None).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].prev, chain::GENESIS);
        assert_eq!(all[1].prev, all[0].hash);
        assert_eq!(
            all[0].entry,
            entry("unpack", "app", "1.0", "verified"),
            "read back as written"
        );
        assert_eq!(s.records(Some("acme"), Some("agent")).unwrap().len(), 1);
        assert!(s.records(Some("other"), None).unwrap().is_empty());
        assert_eq!(s.check().unwrap(), Ok(5));
        let installed: Vec<(Option<String>, Option<String>)> = s
            .installed()
            .unwrap()
            .into_iter()
            .map(|r| (r.entry.product, r.entry.version))
            .collect();
        assert_eq!(
            installed,
            [
                (Some("agent".into()), Some("0.9".into())),
                (Some("app".into()), Some("2.0".into())),
            ],
            "the last unpack that verified, per product"
        );
        s.conn
            .execute("UPDATE history SET codes = 'not json' WHERE seq = 4", [])
            .unwrap();
        let broken = s.check().unwrap().unwrap_err();
        assert_eq!(broken.seq, 4, "{broken:?}");
    }
}
