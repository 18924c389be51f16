//! The state in PostgreSQL: the same tables, columns and migrations as `sqlite`, for
//! several instances on several machines sharing one state.
//!
//! The schema lives in the database's current schema (`public` unless the role's
//! `search_path` says otherwise), beside whatever else the database holds;
//! `vendorguard_schema` holds its version, and [`MIGRATIONS`] bring it forward in one
//! transaction under an advisory lock, so instances starting together do not race. Integer columns are `BIGINT` (unix seconds, 0/1 flags), text is `TEXT`:
//! `state migrate` copies rows cell for cell between the backends.
//!
//! What keeps instances apart is in the rows: a source's lease (`lease_source`, taken
//! under `FOR UPDATE`), a delivery's claim (`claim`, `FOR UPDATE SKIP LOCKED`, until
//! the claimer's lease runs out), each instance's heartbeat, and the history's head row
//! locked while a record is appended. A poll's outcome and the events it causes are one
//! transaction, as in SQLite.
//!
//! The client is the synchronous `postgres` crate, one connection per store, each
//! statement prepared once per connection; its calls run in
//! `tokio::task::block_in_place` when made from inside the runtime, which must be the
//! multi-thread one. A connection the server closed is opened again on the next call.
//! Sessions commit without waiting for the WAL flush (`synchronous_commit=off`), the
//! durability of SQLite's WAL with `synchronous=NORMAL`. TLS always verifies the
//! certificate and the host name; the password comes from the environment and is never
//! part of a message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, Row, Statement, Transaction};

use crate::alert::event::Event;
use crate::alert::{Attempt, DeliveryProblem, Outbox, PendingEvent, UnreadableEvent};
use crate::store::history::{self as chain, Entry, Record};
use crate::store::location::SslMode;
use crate::store::sqlite::{lease_decision, parse_event, LAST_POLL_BY_THE_LIVING};
use crate::store::{
    Cell, DeliveryTotals, EntryRow, EventRow, FailureCommit, History, Instance, InstanceRow, Lease,
    PgState, PollCommit, ProblemRow, Rows, SideFiles, SourceHealth, SourceRef, SourceRow, Store,
    StoreError, TableSpec, UrlValidators, DEFAULT_LEASE, SCHEMA_VERSION,
};
use crate::text::without_nul;
use std::borrow::Cow;

/// Each entry brings the schema from version `i` to `i + 1`: `sqlite`'s migrations,
/// column for column.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE sources (
        id TEXT PRIMARY KEY,
        vendor TEXT NOT NULL,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        initialized BIGINT NOT NULL DEFAULT 0,
        last_success BIGINT,
        last_attempt BIGINT,
        last_error TEXT,
        last_error_code TEXT,
        failures BIGINT NOT NULL DEFAULT 0,
        failing_since BIGINT,
        failing_alerted BIGINT NOT NULL DEFAULT 0,
        first_seen BIGINT NOT NULL
    );
    CREATE TABLE entries (
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        updated TEXT,
        title TEXT,
        url TEXT,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        PRIMARY KEY (source, key)
    );
    CREATE TABLE events (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        vendor TEXT NOT NULL,
        json TEXT NOT NULL,
        detected_at BIGINT NOT NULL
    );
    CREATE TABLE deliveries (
        event_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        delivered_at BIGINT,
        attempts BIGINT NOT NULL DEFAULT 0,
        last_error TEXT,
        last_error_kind TEXT,
        next_attempt_at BIGINT,
        output TEXT,
        PRIMARY KEY (event_id, channel)
    );",
    // 1 -> 2
    "ALTER TABLE deliveries ADD COLUMN message_id TEXT;",
    // 2 -> 3
    "CREATE TABLE advisory_problems (
        source TEXT NOT NULL,
        advisory_url TEXT NOT NULL,
        code TEXT NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        PRIMARY KEY (source, advisory_url, code)
    );",
    // 3 -> 4
    "ALTER TABLE events ADD COLUMN acked_at BIGINT;",
    // 4 -> 5 (`user` is a reserved word in PostgreSQL: quoted wherever it is named)
    "CREATE TABLE history (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        command TEXT NOT NULL,
        bundle TEXT NOT NULL,
        size BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        vendor TEXT,
        product TEXT,
        version TEXT,
        verdict TEXT NOT NULL,
        codes TEXT NOT NULL,
        signers TEXT NOT NULL,
        unexpected TEXT NOT NULL,
        into_dir TEXT,
        \"user\" TEXT NOT NULL,
        host TEXT NOT NULL,
        allowed TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE history_head (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        count BIGINT NOT NULL,
        hash TEXT NOT NULL
    );",
    // 5 -> 6
    "ALTER TABLE deliveries ADD COLUMN filtered BIGINT NOT NULL DEFAULT 0;",
    // 6 -> 7
    "ALTER TABLE advisory_problems ADD COLUMN listed_updated TEXT;
    CREATE TABLE keyring_seen (
        source TEXT PRIMARY KEY,
        fingerprints TEXT NOT NULL,
        seen_at BIGINT NOT NULL
    );",
    // 7 -> 8
    "CREATE TABLE listing_validators (
        source TEXT NOT NULL,
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        PRIMARY KEY (source, url)
    );",
    // 8 -> 9
    "ALTER TABLE sources ADD COLUMN last_poll_ms BIGINT;",
    // 9 -> 10
    "DELETE FROM listing_validators;
    CREATE TABLE csaf_side_files (
        source TEXT NOT NULL,
        advisory_url TEXT NOT NULL,
        hash_url TEXT NOT NULL,
        signature_url TEXT NOT NULL,
        hash_value TEXT NOT NULL,
        signature_sha256 TEXT NOT NULL,
        round BIGINT NOT NULL,
        hash_etag TEXT,
        hash_last_modified TEXT,
        signature_etag TEXT,
        signature_last_modified TEXT,
        PRIMARY KEY (source, advisory_url)
    );",
    // 10 -> 11
    "ALTER TABLE sources ADD COLUMN last_polled_by TEXT;
    ALTER TABLE sources ADD COLUMN lease_holder TEXT;
    ALTER TABLE sources ADD COLUMN lease_until BIGINT;
    ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
    ALTER TABLE deliveries ADD COLUMN claim_until BIGINT;
    CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid BIGINT NOT NULL,
        version TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL,
        lease_secs BIGINT NOT NULL
    );",
];

const _: () = assert!(MIGRATIONS.len() == SCHEMA_VERSION);

/// The advisory lock key migrations run under ("vg-schema").
const SCHEMA_LOCK: i64 = 0x7667_2d73_6368_656d;

/// The advisory lock key history appends run under while the head row may be absent.
const HISTORY_LOCK: i64 = 0x7667_2d68_6973_7421;

/// How long an instance not heard from is still listed: a week.
const FORGET_INSTANCES_SECS: i64 = 7 * 24 * 3600;

/// The events pending on channel `$1` (neither delivered there nor acknowledged),
/// oldest first; the tail of every query that lists them.
const PENDING_ON_CHANNEL: &str = "FROM events e
    LEFT JOIN deliveries d ON d.event_id = e.id AND d.channel = $1
    WHERE d.delivered_at IS NULL AND e.acked_at IS NULL ORDER BY e.seq";

/// A delivery row that only a claim made (SQLite has no row for such an event): left
/// out of the attempt totals so both backends count alike.
const NOT_CLAIM_ONLY: &str =
    "NOT (attempts = 0 AND delivered_at IS NULL AND message_id IS NULL AND last_error IS NULL)";

/// The columns `row_to_source` reads, in its order.
const SOURCE_SELECT: &str = "SELECT id, vendor, kind, url, etag, last_modified, initialized, last_success,
        last_attempt, last_error, last_error_code, failures, failing_since, failing_alerted, first_seen,
        (SELECT COUNT(*) FROM entries e WHERE e.source = s.id), last_poll_ms, last_polled_by
    FROM sources s";

/// The columns `row_to_record` reads, in its order.
const HISTORY_SELECT: &str =
    "SELECT seq, at, command, bundle, size, sha256, vendor, product, version, verdict,
        codes, signers, unexpected, into_dir, \"user\", host, allowed, prev, hash FROM history";

/// Opens the PostgreSQL state `pg` as `instance`, creating its schema when the database
/// has none and bringing it up to date.
///
/// # Errors
///
/// [`StoreError::Open`] naming the database (never the password): it cannot be reached,
/// refuses the login or TLS, or holds a newer schema.
pub fn open(pg: &PgState, instance: &Instance) -> Result<Box<dyn Store>, StoreError> {
    Ok(Box::new(PgStore::open(pg, instance.clone())?))
}

/// Opens the PostgreSQL state `pg` for the history of verdicts.
///
/// # Errors
///
/// As [`open`].
pub fn open_history(pg: &PgState) -> Result<Box<dyn History>, StoreError> {
    let me = Instance::this_process(None, DEFAULT_LEASE, SystemTime::now());
    Ok(Box::new(PgStore::open(pg, me)?))
}

/// Opens the PostgreSQL state `pg` to copy its rows (`state migrate`).
///
/// # Errors
///
/// As [`open`].
pub fn open_rows(pg: &PgState) -> Result<Box<dyn Rows>, StoreError> {
    let me = Instance::this_process(None, DEFAULT_LEASE, SystemTime::now());
    Ok(Box::new(PgStore::open(pg, me)?))
}

/// Whether the database `pg` holds a vendorguard state yet (its version table), read
/// without creating anything: what `store::exists` is for a SQLite file.
///
/// # Errors
///
/// As [`open`], when the database cannot be reached.
pub fn exists(pg: &PgState) -> Result<bool, StoreError> {
    let open_err = |message: String| StoreError::Open {
        path: pg.to_string(),
        message,
    };
    blocking(|| {
        let mut client = connect(pg).map_err(open_err)?;
        let found = schema_version(&mut client)
            .map_err(|e| open_err(format!("cannot read its schema: {}", describe(&e))))?;
        Ok(found.is_some())
    })
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> StoreError {
        StoreError::Backend(describe(&e).into())
    }
}

/// What went wrong, in the server's words when it answered.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            // The cause (refused, timed out, TLS) is the source, not part of the text.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                let more = cause.to_string();
                if !text.contains(&more) {
                    text = format!("{text}: {more}");
                }
                source = cause.source();
            }
            text
        }
    }
}

/// Runs `f`, which blocks on the client's own runtime, out of the async context when
/// called from inside vendorguard's (multi-thread) runtime.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn at(s: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s.max(0).unsigned_abs())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The items of `items`, the last of each key only, in the order of those last ones: what
/// writing them one by one would leave.
fn last_wins<T, K: std::hash::Hash + Eq>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut last: HashMap<K, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        last.insert(key(item), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| &items[i]).collect()
}

/// A connection and the statements prepared on it, by their text: each is parsed and
/// planned once per connection, and later calls take one round trip.
struct Conn {
    client: Client,
    prepared: HashMap<String, Statement>,
}

impl Conn {
    fn new(client: Client) -> Conn {
        Conn {
            client,
            prepared: HashMap::new(),
        }
    }
}

/// A transaction on a [`Conn`], using its prepared statements.
struct Tx<'a> {
    tx: Transaction<'a>,
    prepared: &'a mut HashMap<String, Statement>,
}

/// Runs SQL through the prepared statements of a connection or a transaction.
trait Sql {
    type Client: GenericClient;

    fn parts(&mut self) -> (&mut Self::Client, &mut HashMap<String, Statement>);

    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        let (client, prepared) = self.parts();
        if let Some(s) = prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = client.prepare(sql)?;
        prepared.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, postgres::Error> {
        let s = self.statement(sql)?;
        self.parts().0.query(&s, p)
    }

    fn query_one(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Row, postgres::Error> {
        let s = self.statement(sql)?;
        self.parts().0.query_one(&s, p)
    }

    fn query_opt(
        &mut self,
        sql: &str,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let s = self.statement(sql)?;
        self.parts().0.query_opt(&s, p)
    }

    fn execute(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<u64, postgres::Error> {
        let s = self.statement(sql)?;
        self.parts().0.execute(&s, p)
    }
}

impl Sql for Conn {
    type Client = Client;

    fn parts(&mut self) -> (&mut Client, &mut HashMap<String, Statement>) {
        (&mut self.client, &mut self.prepared)
    }
}

impl<'a> Sql for Tx<'a> {
    type Client = Transaction<'a>;

    fn parts(&mut self) -> (&mut Transaction<'a>, &mut HashMap<String, Statement>) {
        (&mut self.tx, self.prepared)
    }
}

/// The state in one PostgreSQL database, as one instance.
pub struct PgStore {
    /// `None` only while being dropped.
    conn: Mutex<Option<Conn>>,
    /// Where to connect again when the server closed the connection.
    pg: PgState,
    instance: Instance,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let conn = self
            .conn
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Closing the connection blocks on the client's runtime.
        blocking(move || drop(conn));
    }
}

impl PgStore {
    /// Connects to `pg` as `instance` and brings the schema up to date.
    ///
    /// # Errors
    ///
    /// As [`open`].
    pub fn open(pg: &PgState, instance: Instance) -> Result<PgStore, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: pg.to_string(),
            message,
        };
        let mut client = blocking(|| connect(pg)).map_err(open_err)?;
        blocking(|| migrate(&mut client)).map_err(open_err)?;
        Ok(PgStore {
            conn: Mutex::new(Some(Conn::new(client))),
            pg: pg.clone(),
            instance,
        })
    }

    /// Runs `f` with the client, out of the async context. A connection the server
    /// closed (a restart, a failover) failed the call that found out; the next call
    /// connects again.
    fn with<R>(&self, f: impl FnOnce(&mut Conn) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = guard
            .as_mut()
            .ok_or_else(|| StoreError::Backend("the connection is closed".into()))?;
        blocking(|| {
            if conn.client.is_closed() {
                let client = connect(&self.pg).map_err(|message| StoreError::Open {
                    path: self.pg.to_string(),
                    message,
                })?;
                *conn = Conn::new(client);
            }
            f(conn)
        })
    }

    /// Runs `f` in one transaction, committed when it returns `Ok`.
    fn in_tx<R>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.with(|c| {
            let mut tx = Tx {
                tx: c.client.transaction()?,
                prepared: &mut c.prepared,
            };
            let r = f(&mut tx)?;
            tx.tx.commit()?;
            Ok(r)
        })
    }
}

/// Connects as `pg` says, TLS verified unless `sslmode=disable`.
fn connect(pg: &PgState) -> Result<Client, String> {
    let mut config = postgres::Config::new();
    config
        .host(&pg.host)
        .port(pg.port)
        .user(&pg.user)
        .dbname(&pg.dbname)
        .connect_timeout(pg.connect_timeout)
        // A server or network that goes away mid-call ends the call within about a
        // minute instead of hanging the watcher.
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(60))
        // The durability of SQLite's WAL with synchronous=NORMAL: a server crash may
        // lose the last commits (a poll is then done again, a delivery sent again),
        // never leave half of one; a commit does not wait for its WAL flush.
        .options("-c synchronous_commit=off")
        .application_name("vendorguard");
    if let Some(password) = pg.password() {
        config.password(password);
    }
    let fail = |e: postgres::Error| format!("cannot connect: {}", describe(&e));
    match pg.sslmode {
        SslMode::Disable => config
            .ssl_mode(postgres::config::SslMode::Disable)
            .connect(postgres::NoTls)
            .map_err(fail),
        SslMode::Require | SslMode::VerifyFull => {
            let tls = tls_config(pg)?;
            config
                .ssl_mode(postgres::config::SslMode::Require)
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                .map_err(fail)
        }
    }
}

/// The bytes of the regular file at `path`, refused when longer than `cap`.
fn read_capped(path: &std::path::Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let f = std::fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(std::io::Error::other(format!("larger than {cap} bytes")));
    }
    Ok(buf)
}

/// TLS that checks the server's certificate against `sslrootcert` (when set) or the
/// system's CAs, and its name against the host connected to.
fn tls_config(pg: &PgState) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match &pg.sslrootcert {
        Some(path) => {
            let shown = path.display();
            // A regular file of at most 1 MiB: not a device or a FIFO that never ends.
            let pem = read_capped(path, 1 << 20)
                .map_err(|e| format!("cannot read sslrootcert {shown}: {e}"))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cannot read sslrootcert {shown}: {e}"))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("sslrootcert {shown} holds no certificate"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "TLS: the system has no CA certificates; set sslrootcert in the URL".into(),
                );
            }
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| format!("TLS: {e}"))
}

/// Creates or brings forward the schema in one transaction under [`SCHEMA_LOCK`]; a
/// database already at [`SCHEMA_VERSION`] is only read.
fn migrate(client: &mut Client) -> Result<(), String> {
    let fail = |e: postgres::Error| format!("cannot bring its schema up to date: {}", describe(&e));
    if schema_version(client).map_err(fail)? == Some(SCHEMA_VERSION as i64) {
        return Ok(());
    }
    let mut tx = client.transaction().map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(fail)?;
    let version = match schema_version(&mut tx).map_err(fail)? {
        Some(v) => v,
        None => {
            tx.batch_execute(
                "CREATE TABLE vendorguard_schema (version BIGINT NOT NULL);
                 INSERT INTO vendorguard_schema (version) VALUES (0);",
            )
            .map_err(fail)?;
            0
        }
    };
    if version < 0 || version as usize > MIGRATIONS.len() {
        return Err(format!(
            "schema version {version} is newer than this vendorguard knows ({}); upgrade vendorguard",
            MIGRATIONS.len()
        ));
    }
    for sql in &MIGRATIONS[version as usize..] {
        tx.batch_execute(sql).map_err(fail)?;
    }
    tx.execute(
        "UPDATE vendorguard_schema SET version = $1",
        &[&(MIGRATIONS.len() as i64)],
    )
    .map_err(fail)?;
    tx.commit().map_err(fail)
}

/// The version `vendorguard_schema` holds, `None` when the table does not exist.
fn schema_version(c: &mut impl GenericClient) -> Result<Option<i64>, postgres::Error> {
    let exists: bool = c
        .query_one(
            // The catalog read as a query (not `to_regclass`, whose cache an advisory
            // lock does not refresh): a table another instance just made is seen.
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables
                            WHERE schemaname = current_schema() AND tablename = 'vendorguard_schema')",
            &[],
        )?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let v: Option<i64> = c
        .query_opt("SELECT MAX(version) FROM vendorguard_schema", &[])?
        .and_then(|r| r.get(0));
    Ok(Some(v.unwrap_or(0)))
}

fn row_to_source(r: &Row) -> SourceRow {
    let t = |i: usize| r.get::<_, Option<i64>>(i).map(at);
    SourceRow {
        id: r.get(0),
        vendor: r.get(1),
        kind: r.get(2),
        url: r.get(3),
        etag: r.get(4),
        last_modified: r.get(5),
        initialized: r.get::<_, i64>(6) != 0,
        health: SourceHealth {
            last_success: t(7),
            last_attempt: t(8),
            last_error: r.get(9),
            last_error_code: r.get(10),
            failures: u32::try_from(r.get::<_, i64>(11)).unwrap_or(u32::MAX),
            failing_since: t(12),
            failing_alerted: r.get::<_, i64>(13) != 0,
            first_seen: t(14),
            last_poll: r
                .get::<_, Option<i64>>(16)
                .map(|ms| Duration::from_millis(ms.max(0).unsigned_abs())),
            last_polled_by: r.get(17),
        },
        entries: r.get::<_, i64>(15).max(0).unsigned_abs(),
    }
}

/// A history row; a list column that is not a JSON array of strings reads as the text
/// it holds, so `history --check` reports the change instead of failing to read.
fn row_to_record(r: &Row) -> Record {
    let list = |i: usize| -> Vec<String> {
        let text: String = r.get(i);
        serde_json::from_str::<Vec<String>>(&text).unwrap_or_else(|_| vec![text])
    };
    let unsigned = |i: usize| r.get::<_, i64>(i).max(0).unsigned_abs();
    Record {
        seq: unsigned(0),
        entry: Entry {
            at: unsigned(1),
            command: r.get(2),
            bundle: r.get(3),
            size: unsigned(4),
            sha256: r.get(5),
            vendor: r.get(6),
            product: r.get(7),
            version: r.get(8),
            verdict: r.get(9),
            codes: list(10),
            signers: list(11),
            unexpected: list(12),
            into: r.get(13),
            user: r.get(14),
            host: r.get(15),
            allowed: list(16),
        },
        prev: r.get(17),
        hash: r.get(18),
    }
}

/// Stores `events` not stored yet, in their order, in one statement; how many were new.
fn insert_events(tx: &mut Tx<'_>, events: &[Event]) -> Result<usize, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    // Only events not stored yet reach the insert, so the sequence has no gaps but
    // those of a race between two instances (which `ON CONFLICT` settles).
    let mut seen = std::collections::HashSet::new();
    let events: Vec<&Event> = events.iter().filter(|e| seen.insert(&e.id)).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.code()).collect();
    let vendors: Vec<&str> = events.iter().map(|e| e.vendor.as_str()).collect();
    let json: Vec<String> = events.iter().map(|e| e.to_json().to_string()).collect();
    let detected: Vec<i64> = events.iter().map(|e| secs(e.detected_at)).collect();
    let n = tx.execute(
        "INSERT INTO events (id, kind, vendor, json, detected_at)
         SELECT id, kind, vendor, json, detected_at
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
              WITH ORDINALITY AS x(id, kind, vendor, json, detected_at, n)
         WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = x.id)
         ORDER BY n
         ON CONFLICT DO NOTHING",
        &[&ids, &kinds, &vendors, &json, &detected],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// The source's row, created when new.
fn ensure_source(tx: &mut Tx<'_>, s: SourceRef<'_>, now: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO sources (id, vendor, kind, url, first_seen) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO NOTHING",
        &[&s.id, &s.vendor, &s.kind, &s.url, &now],
    )?;
    Ok(())
}

/// Writes a poll's CSAF parts that are `Some`: problems, listing validators, side
/// files, keyring.
fn commit_csaf(tx: &mut Tx<'_>, c: &PollCommit<'_>, now: i64) -> Result<(), StoreError> {
    let id = c.source.id;
    if let Some(problems) = c.problems {
        tx.execute("DELETE FROM advisory_problems WHERE source = $1", &[&id])?;
        let p = last_wins(problems, |p| (p.advisory_url.clone(), p.code.clone()));
        let urls: Vec<Cow<str>> = p.iter().map(|p| without_nul(&p.advisory_url)).collect();
        let codes: Vec<&str> = p.iter().map(|p| p.code.as_str()).collect();
        let first: Vec<i64> = p.iter().map(|p| secs(p.first_seen)).collect();
        let listed: Vec<Option<Cow<str>>> = p
            .iter()
            .map(|p| p.listed_updated.as_deref().map(without_nul))
            .collect();
        tx.execute(
            "INSERT INTO advisory_problems (source, advisory_url, code, first_seen, last_seen, listed_updated)
             SELECT $1, u, c, f, $2, l FROM UNNEST($3::text[], $4::text[], $5::bigint[], $6::text[]) AS x(u, c, f, l)",
            &[&id, &now, &urls, &codes, &first, &listed],
        )?;
    }
    if let Some(listing) = c.listing {
        tx.execute("DELETE FROM listing_validators WHERE source = $1", &[&id])?;
        let v = last_wins(listing, |v| v.url.clone());
        let urls: Vec<&str> = v.iter().map(|v| v.url.as_str()).collect();
        let etags: Vec<Option<&str>> = v.iter().map(|v| v.etag.as_deref()).collect();
        let lms: Vec<Option<&str>> = v.iter().map(|v| v.last_modified.as_deref()).collect();
        tx.execute(
            "INSERT INTO listing_validators (source, url, etag, last_modified)
             SELECT $1, u, e, l FROM UNNEST($2::text[], $3::text[], $4::text[]) AS x(u, e, l)",
            &[&id, &urls, &etags, &lms],
        )?;
    }
    if let Some(side_files) = c.side_files {
        tx.execute("DELETE FROM csaf_side_files WHERE source = $1", &[&id])?;
        let f = last_wins(side_files, |f| f.advisory_url.clone());
        let text = |g: fn(&SideFiles) -> &str| {
            f.iter()
                .map(|f| without_nul(g(f)))
                .collect::<Vec<Cow<str>>>()
        };
        let opt = |g: fn(&SideFiles) -> Option<&str>| f.iter().map(|f| g(f)).collect::<Vec<_>>();
        let rounds: Vec<i64> = f.iter().map(|f| f.round).collect();
        tx.execute(
            "INSERT INTO csaf_side_files
                (source, advisory_url, hash_url, signature_url, hash_value, signature_sha256, round,
                 hash_etag, hash_last_modified, signature_etag, signature_last_modified)
             SELECT $1, a, hu, su, hv, ss, r, he, hl, se, sl
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                         $8::text[], $9::text[], $10::text[], $11::text[])
                  AS x(a, hu, su, hv, ss, r, he, hl, se, sl)",
            &[
                &id,
                &text(|f| &f.advisory_url),
                &text(|f| &f.hash_url),
                &text(|f| &f.signature_url),
                &text(|f| &f.hash_value),
                &text(|f| &f.signature_sha256),
                &rounds,
                &opt(|f| f.hash_validators.0.as_deref()),
                &opt(|f| f.hash_validators.1.as_deref()),
                &opt(|f| f.signature_validators.0.as_deref()),
                &opt(|f| f.signature_validators.1.as_deref()),
            ],
        )?;
    }
    if let Some(fingerprints) = c.keyring {
        tx.execute(
            "INSERT INTO keyring_seen (source, fingerprints, seen_at) VALUES ($1, $2, $3)
             ON CONFLICT (source) DO UPDATE SET fingerprints = excluded.fingerprints, seen_at = excluded.seen_at",
            &[&id, &fingerprints, &now],
        )?;
    }
    Ok(())
}

impl Store for PgStore {
    fn source(&self, id: &str) -> Result<Option<SourceRow>, StoreError> {
        self.with(|c| {
            let row = c.query_opt(&format!("{SOURCE_SELECT} WHERE id = $1"), &[&id])?;
            Ok(row.as_ref().map(row_to_source))
        })
    }

    fn sources(&self) -> Result<Vec<SourceRow>, StoreError> {
        self.with(|c| {
            let rows = c.query(&format!("{SOURCE_SELECT} ORDER BY vendor, url, id"), &[])?;
            Ok(rows.iter().map(row_to_source).collect())
        })
    }

    fn entries(&self, source: &str) -> Result<HashMap<String, EntryRow>, StoreError> {
        self.with(|c| {
            let rows = c.query(
                "SELECT key, content_hash, updated FROM entries WHERE source = $1",
                &[&source],
            )?;
            Ok(rows
                .iter()
                .map(|r| {
                    let row = EntryRow {
                        content_hash: r.get(1),
                        updated: r.get(2),
                    };
                    (r.get(0), row)
                })
                .collect())
        })
    }

    fn problems(&self, source: &str) -> Result<Vec<ProblemRow>, StoreError> {
        self.with(|c| {
            let rows = c.query(
                "SELECT advisory_url, code, first_seen, listed_updated FROM advisory_problems
                 WHERE source = $1 ORDER BY advisory_url, code",
                &[&source],
            )?;
            Ok(rows
                .iter()
                .map(|r| ProblemRow {
                    advisory_url: r.get(0),
                    code: r.get(1),
                    first_seen: at(r.get(2)),
                    listed_updated: r.get(3),
                })
                .collect())
        })
    }

    fn listing_validators(&self, source: &str) -> Result<Vec<UrlValidators>, StoreError> {
        self.with(|c| {
            let rows = c.query(
                "SELECT url, etag, last_modified FROM listing_validators WHERE source = $1 ORDER BY url",
                &[&source],
            )?;
            Ok(rows
                .iter()
                .map(|r| UrlValidators {
                    url: r.get(0),
                    etag: r.get(1),
                    last_modified: r.get(2),
                })
                .collect())
        })
    }

    fn side_files(&self, source: &str) -> Result<Vec<SideFiles>, StoreError> {
        self.with(|c| {
            let rows = c.query(
                "SELECT advisory_url, hash_url, signature_url, hash_value, signature_sha256, round,
                        hash_etag, hash_last_modified, signature_etag, signature_last_modified
                 FROM csaf_side_files WHERE source = $1 ORDER BY advisory_url",
                &[&source],
            )?;
            Ok(rows
                .iter()
                .map(|r| SideFiles {
                    advisory_url: r.get(0),
                    hash_url: r.get(1),
                    signature_url: r.get(2),
                    hash_value: r.get(3),
                    signature_sha256: r.get(4),
                    round: r.get(5),
                    hash_validators: (r.get(6), r.get(7)),
                    signature_validators: (r.get(8), r.get(9)),
                })
                .collect())
        })
    }

    fn keyring_seen(&self, source: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            let row = c.query_opt(
                "SELECT fingerprints FROM keyring_seen WHERE source = $1",
                &[&source],
            )?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn open_problems(&self) -> Result<HashMap<String, Vec<(String, u64)>>, StoreError> {
        let rows = self.with(|c| {
            Ok(c.query(
                "SELECT source, code, COUNT(*) FROM advisory_problems GROUP BY source, code
                 ORDER BY source, code",
                &[],
            )?)
        })?;
        let mut out: HashMap<String, Vec<(String, u64)>> = HashMap::new();
        for r in &rows {
            let n: i64 = r.get(2);
            out.entry(r.get(0))
                .or_default()
                .push((r.get(1), n.max(0).unsigned_abs()));
        }
        Ok(out)
    }

    fn commit_poll(&mut self, c: &PollCommit<'_>) -> Result<usize, StoreError> {
        let now = secs(c.now);
        let me = self.instance.id.clone();
        self.in_tx(|tx| {
            let s = c.source;
            tx.execute(
                "INSERT INTO sources (id, vendor, kind, url, first_seen) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET vendor = excluded.vendor, kind = excluded.kind, url = excluded.url",
                &[&s.id, &s.vendor, &s.kind, &s.url, &now],
            )?;
            if let Some((etag, last_modified)) = &c.validators {
                tx.execute(
                    "UPDATE sources SET etag = $2, last_modified = $3 WHERE id = $1",
                    &[&s.id, etag, last_modified],
                )?;
            }
            tx.execute(
                "UPDATE sources SET initialized = 1, last_success = $2, last_attempt = $2, last_error = NULL,
                        last_error_code = NULL, failures = 0, failing_since = NULL, failing_alerted = 0,
                        last_poll_ms = COALESCE($3, last_poll_ms), last_polled_by = $4,
                        lease_until = CASE WHEN lease_holder = $4 THEN NULL ELSE lease_until END,
                        lease_holder = CASE WHEN lease_holder = $4 THEN NULL ELSE lease_holder END
                 WHERE id = $1",
                &[&s.id, &now, &c.duration.map(millis), &me],
            )?;
            if !c.entries.is_empty() {
                let e = last_wins(c.entries, |e| e.key.clone());
                // Outside text: a NUL (which PostgreSQL's text cannot hold) becomes U+FFFD.
                let keys: Vec<Cow<str>> = e.iter().map(|e| without_nul(&e.key)).collect();
                let hashes: Vec<&str> = e.iter().map(|e| e.content_hash.as_str()).collect();
                let updated: Vec<Option<Cow<str>>> =
                    e.iter().map(|e| e.updated.as_deref().map(without_nul)).collect();
                let titles: Vec<Cow<str>> = e.iter().map(|e| without_nul(&e.title)).collect();
                let urls: Vec<Cow<str>> = e.iter().map(|e| without_nul(&e.url)).collect();
                tx.execute(
                    "INSERT INTO entries (source, key, content_hash, updated, title, url, first_seen, last_seen)
                     SELECT $1, k, h, u, t, l, $2, $2
                     FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS x(k, h, u, t, l)
                     ON CONFLICT (source, key) DO UPDATE SET content_hash = excluded.content_hash,
                        updated = excluded.updated, title = excluded.title, url = excluded.url,
                        last_seen = excluded.last_seen",
                    &[&s.id, &now, &keys, &hashes, &updated, &titles, &urls],
                )?;
            }
            commit_csaf(tx, c, now)?;
            insert_events(tx, c.events)
        })
    }

    fn commit_failure(
        &mut self,
        f: &FailureCommit<'_>,
        decide: &dyn Fn(&SourceRow) -> Option<Event>,
    ) -> Result<(SourceRow, Option<Event>), StoreError> {
        let t = secs(f.now);
        let me = self.instance.id.clone();
        self.in_tx(|tx| {
            let id = f.source.id;
            ensure_source(tx, f.source, t)?;
            tx.execute(
                "UPDATE sources SET failures = failures + 1, last_error = $2, last_error_code = $3,
                        last_attempt = $4, failing_since = COALESCE(failing_since, $4),
                        last_poll_ms = COALESCE($5, last_poll_ms), last_polled_by = $6,
                        lease_until = CASE WHEN lease_holder = $6 THEN NULL ELSE lease_until END,
                        lease_holder = CASE WHEN lease_holder = $6 THEN NULL ELSE lease_holder END
                 WHERE id = $1",
                &[
                    &id,
                    &without_nul(f.error),
                    &f.code,
                    &t,
                    &f.duration.map(millis),
                    &me,
                ],
            )?;
            let row =
                row_to_source(&tx.query_one(&format!("{SOURCE_SELECT} WHERE id = $1"), &[&id])?);
            let event = if row.health.failing_alerted {
                None
            } else {
                decide(&row)
            };
            if let Some(e) = &event {
                insert_events(tx, std::slice::from_ref(e))?;
                tx.execute(
                    "UPDATE sources SET failing_alerted = 1 WHERE id = $1",
                    &[&id],
                )?;
            }
            Ok((row, event))
        })
    }

    fn events(&self, since: Option<SystemTime>) -> Result<Vec<EventRow>, StoreError> {
        let since = since.map_or(i64::MIN, secs);
        let (rows, channels) = self.with(|c| {
            let rows = c.query(
                "SELECT seq, id, kind, vendor, json, detected_at, acked_at FROM events
                 WHERE detected_at >= $1 ORDER BY seq",
                &[&since],
            )?;
            let channels = c.query(
                "SELECT d.event_id, d.channel, d.filtered FROM deliveries d
                 JOIN events e ON e.id = d.event_id
                 WHERE e.detected_at >= $1 AND d.delivered_at IS NOT NULL ORDER BY d.channel",
                &[&since],
            )?;
            Ok((rows, channels))
        })?;
        let mut done: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
        for r in &channels {
            let (delivered, filtered) = done.entry(r.get(0)).or_default();
            match r.get::<_, i64>(2) != 0 {
                true => filtered.push(r.get(1)),
                false => delivered.push(r.get(1)),
            }
        }
        Ok(rows
            .iter()
            .map(|r| {
                let id: String = r.get(1);
                let (delivered, filtered) = done.remove(&id).unwrap_or_default();
                EventRow {
                    seq: r.get(0),
                    id,
                    kind: r.get(2),
                    vendor: r.get(3),
                    event: parse_event(r.get(4)),
                    detected_at: at(r.get(5)),
                    acked_at: r.get::<_, Option<i64>>(6).map(at),
                    delivered,
                    filtered,
                }
            })
            .collect())
    }

    fn ack_event(&mut self, id: &str, now: SystemTime) -> Result<bool, StoreError> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE events SET acked_at = COALESCE(acked_at, $2) WHERE id = $1",
                &[&id, &secs(now)],
            )?;
            Ok(n > 0)
        })
    }

    fn filtered_count(&self, channel: &str) -> Result<u64, StoreError> {
        self.with(|c| {
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM deliveries WHERE channel = $1 AND filtered = 1",
                    &[&channel],
                )?
                .get(0);
            Ok(n.max(0).unsigned_abs())
        })
    }

    fn handled_count(&self, channels: &[&str]) -> Result<u64, StoreError> {
        self.with(|c| {
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM events e WHERE e.acked_at IS NOT NULL AND EXISTS (
                        SELECT 1 FROM UNNEST($1::text[]) AS ch(name)
                        WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id
                            AND d.channel = ch.name AND d.delivered_at IS NOT NULL))",
                    &[&channels],
                )?
                .get(0);
            Ok(n.max(0).unsigned_abs())
        })
    }

    fn pending_detected(&self, channel: &str) -> Result<Vec<(String, SystemTime)>, StoreError> {
        self.with(|c| {
            let rows = c.query(
                &format!("SELECT e.id, e.detected_at {PENDING_ON_CHANNEL}"),
                &[&channel],
            )?;
            Ok(rows.iter().map(|r| (r.get(0), at(r.get(1)))).collect())
        })
    }

    fn delivery_totals(&self) -> Result<Vec<DeliveryTotals>, StoreError> {
        // A delivered row's last attempt succeeded; every other attempt failed.
        self.with(|c| {
            let rows = c.query(
                &format!(
                    "SELECT channel, COUNT(delivered_at), (SUM(attempts) - COUNT(delivered_at))::bigint
                     FROM deliveries WHERE {NOT_CLAIM_ONLY} GROUP BY channel ORDER BY channel"
                ),
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| DeliveryTotals {
                    channel: r.get(0),
                    delivered: r.get::<_, i64>(1).max(0).unsigned_abs(),
                    failed: r.get::<_, i64>(2).max(0).unsigned_abs(),
                })
                .collect())
        })
    }

    fn event_totals(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.with(|c| {
            let rows = c.query(
                "SELECT kind, COUNT(*) FROM events GROUP BY kind ORDER BY kind",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get::<_, i64>(1).max(0).unsigned_abs()))
                .collect())
        })
    }

    fn heartbeat(&mut self, now: SystemTime) -> Result<(), StoreError> {
        let i = self.instance.clone();
        let t = secs(now);
        self.in_tx(|tx| {
            tx.execute(
                "INSERT INTO instances (id, host, pid, version, started_at, heartbeat_at, lease_secs)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO UPDATE SET host = $2, pid = $3, version = $4, started_at = $5,
                    heartbeat_at = $6, lease_secs = $7",
                &[
                    &i.id,
                    &i.host,
                    &i64::from(i.pid),
                    &i.version,
                    &secs(i.started_at),
                    &t,
                    &i64::try_from(i.lease.as_secs().max(1)).unwrap_or(i64::MAX),
                ],
            )?;
            tx.execute(
                "DELETE FROM instances WHERE heartbeat_at < $1",
                &[&(t - FORGET_INSTANCES_SECS)],
            )?;
            Ok(())
        })
    }

    fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        self.with(|c| {
            let rows = c.query(
                "SELECT id, host, pid, version, started_at, heartbeat_at, lease_secs FROM instances ORDER BY id",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| {
                    let heartbeat: i64 = r.get(5);
                    InstanceRow {
                        id: r.get(0),
                        host: r.get(1),
                        pid: u32::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                        version: r.get(3),
                        started_at: at(r.get(4)),
                        heartbeat_at: at(heartbeat),
                        alive_until: at(heartbeat.saturating_add(r.get(6))),
                    }
                })
                .collect())
        })
    }

    fn lease_sources(
        &mut self,
        sources: &[(SourceRef<'_>, Option<Duration>)],
        now: SystemTime,
    ) -> Result<Vec<Lease>, StoreError> {
        let t = secs(now);
        let me = self.instance.id.clone();
        let lease = i64::try_from(self.instance.lease.as_secs()).unwrap_or(i64::MAX);
        // Rows are made and locked in id order, so instances leasing overlapping sets
        // at once wait for each other rather than deadlock.
        let mut order: Vec<usize> = (0..sources.len()).collect();
        order.sort_by(|&x, &y| sources[x].0.id.cmp(sources[y].0.id));
        order.dedup_by(|x, y| sources[*x].0.id == sources[*y].0.id);
        let in_order = order.iter().map(|&i| sources[i].0);
        let ids: Vec<&str> = in_order.clone().map(|s| s.id).collect();
        let vendors: Vec<&str> = in_order.clone().map(|s| s.vendor).collect();
        let kinds: Vec<&str> = in_order.clone().map(|s| s.kind).collect();
        let urls: Vec<&str> = in_order.map(|s| s.url).collect();
        self.in_tx(|tx| {
            tx.execute(
                "INSERT INTO sources (id, vendor, kind, url, first_seen)
                 SELECT id, vendor, kind, url, $5
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS n(id, vendor, kind, url)
                 ORDER BY id
                 ON CONFLICT (id) DO NOTHING",
                &[&ids, &vendors, &kinds, &urls, &t],
            )?;
            let rows = tx.query(
                &format!(
                    "SELECT id, lease_holder, lease_until, last_polled_by, {} FROM sources s
                     WHERE id = ANY($1) ORDER BY id FOR UPDATE OF s",
                    LAST_POLL_BY_THE_LIVING.replace("?2", "$2")
                ),
                &[&ids, &t],
            )?;
            let fresh_of: HashMap<&str, Option<Duration>> =
                sources.iter().map(|(s, f)| (s.id, *f)).collect();
            let mut found: HashMap<String, Lease> = HashMap::with_capacity(rows.len());
            for r in &rows {
                let id: String = r.get(0);
                let fresh = fresh_of.get(id.as_str()).copied().flatten();
                let l = lease_decision(&me, t, fresh, r.get(1), r.get(2), r.get(3), r.get(4));
                found.insert(id, l);
            }
            let taken: Vec<&str> = found
                .iter()
                .filter(|(_, l)| **l == Lease::Taken)
                .map(|(id, _)| id.as_str())
                .collect();
            tx.execute(
                "UPDATE sources SET lease_holder = $2, lease_until = $3 WHERE id = ANY($1)",
                &[&taken, &me, &t.saturating_add(lease)],
            )?;
            sources
                .iter()
                .map(|(s, _)| {
                    found
                        .get(s.id)
                        .cloned()
                        .ok_or_else(|| StoreError::Backend(format!("source {} vanished", s.id).into()))
                })
                .collect()
        })
    }

    fn forget_instance(&mut self, id: &str) -> Result<(), StoreError> {
        self.in_tx(|tx| {
            tx.execute(
                "UPDATE sources SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = $1",
                &[&id],
            )?;
            tx.execute(
                "UPDATE deliveries SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = $1",
                &[&id],
            )?;
            tx.execute("DELETE FROM instances WHERE id = $1", &[&id])?;
            Ok(())
        })
    }

    fn release_source(&mut self, id: &str) -> Result<(), StoreError> {
        let me = self.instance.id.clone();
        self.with(|c| {
            c.execute(
                "UPDATE sources SET lease_holder = NULL, lease_until = NULL WHERE id = $1 AND lease_holder = $2",
                &[&id, &me],
            )?;
            Ok(())
        })
    }
}

impl Outbox for PgStore {
    type Error = StoreError;

    fn add_events(&mut self, events: &[Event]) -> Result<usize, StoreError> {
        self.in_tx(|tx| insert_events(tx, events))
    }

    fn pending(&self, channel: &str) -> Result<Vec<PendingEvent>, StoreError> {
        let rows = self.with(|c| {
            Ok(c.query(
                &format!("SELECT e.json, d.message_id {PENDING_ON_CHANNEL}"),
                &[&channel],
            )?)
        })?;
        // One whose JSON does not parse is reported by `unreadable_pending`.
        Ok(rows
            .iter()
            .filter_map(|r| {
                let event = parse_event(r.get(0)).ok()?;
                Some(PendingEvent {
                    event,
                    message_id: r.get(1),
                })
            })
            .collect())
    }

    fn claim(&mut self, channel: &str, now: SystemTime) -> Result<Vec<PendingEvent>, StoreError> {
        let t = secs(now);
        let me = self.instance.id.clone();
        let until =
            t.saturating_add(i64::try_from(self.instance.lease.as_secs()).unwrap_or(i64::MAX));
        self.in_tx(|tx| {
            // A row to lock for each pending event that has none yet, in one order so two
            // instances inserting at once cannot deadlock.
            tx.execute(
                "INSERT INTO deliveries (event_id, channel, attempts)
                 SELECT e.id, $1, 0 FROM events e
                 WHERE e.acked_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.channel = $1)
                 ORDER BY e.seq
                 ON CONFLICT DO NOTHING",
                &[&channel],
            )?;
            let rows = tx.query(
                "SELECT d.event_id, e.json, d.message_id FROM deliveries d JOIN events e ON e.id = d.event_id
                 WHERE d.channel = $1 AND d.delivered_at IS NULL AND e.acked_at IS NULL
                   AND (d.claim_until IS NULL OR d.claim_until <= $2 OR d.claimed_by = $3)
                 ORDER BY e.seq FOR UPDATE OF d SKIP LOCKED",
                &[&channel, &t, &me],
            )?;
            let mut ids: Vec<String> = Vec::new();
            let mut out = Vec::new();
            for r in &rows {
                // Left unclaimed: `unreadable_pending` reports it.
                let Ok(event) = parse_event(r.get(1)) else {
                    continue;
                };
                ids.push(r.get(0));
                out.push(PendingEvent {
                    event,
                    message_id: r.get(2),
                });
            }
            tx.execute(
                "UPDATE deliveries SET claimed_by = $2, claim_until = $3
                 WHERE channel = $1 AND event_id = ANY($4)",
                &[&channel, &me, &until, &ids],
            )?;
            Ok(out)
        })
    }

    fn release_claims(&mut self, channel: &str) -> Result<(), StoreError> {
        let me = self.instance.id.clone();
        self.with(|c| {
            c.execute(
                "UPDATE deliveries SET claimed_by = NULL, claim_until = NULL
                 WHERE channel = $1 AND claimed_by = $2 AND delivered_at IS NULL",
                &[&channel, &me],
            )?;
            Ok(())
        })
    }

    fn renew_claims(
        &mut self,
        event_ids: &[&str],
        channel: &str,
        now: SystemTime,
    ) -> Result<Vec<String>, StoreError> {
        let me = self.instance.id.clone();
        let lease = i64::try_from(self.instance.lease.as_secs()).unwrap_or(i64::MAX);
        let until = secs(now).saturating_add(lease);
        self.with(|c| {
            let rows = c.query(
                "UPDATE deliveries SET claim_until = $4
                 WHERE channel = $1 AND event_id = ANY($2) AND claimed_by = $3
                 RETURNING event_id",
                &[&channel, &event_ids, &me, &until],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn unreadable_pending(&self, channels: &[&str]) -> Result<Vec<UnreadableEvent>, StoreError> {
        let rows = self.with(|c| {
            Ok(c.query(
                "SELECT e.seq, e.id, e.json FROM events e WHERE e.acked_at IS NULL AND EXISTS (
                    SELECT 1 FROM UNNEST($1::text[]) AS ch(name)
                    WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id
                        AND d.channel = ch.name AND d.delivered_at IS NOT NULL))
                 ORDER BY e.seq",
                &[&channels],
            )?)
        })?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let error = parse_event(r.get(2)).err()?;
                Some(UnreadableEvent {
                    seq: r.get(0),
                    id: r.get(1),
                    error,
                })
            })
            .collect())
    }

    fn pending_count(&self, channel: &str) -> Result<u64, StoreError> {
        self.with(|c| {
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM events e LEFT JOIN deliveries d ON d.event_id = e.id AND d.channel = $1
                     WHERE d.delivered_at IS NULL AND e.acked_at IS NULL",
                    &[&channel],
                )?
                .get(0);
            Ok(n.max(0).unsigned_abs())
        })
    }

    fn fix_message_id(
        &mut self,
        event_ids: &[&str],
        channel: &str,
        message_id: &str,
    ) -> Result<(), StoreError> {
        self.in_tx(|tx| {
            tx.execute(
                "INSERT INTO deliveries (event_id, channel, attempts, message_id)
                 SELECT DISTINCT id, $2, 0, $3 FROM UNNEST($1::text[]) AS x(id)
                 ON CONFLICT (event_id, channel) DO UPDATE SET message_id = excluded.message_id",
                &[&event_ids, &channel, &message_id],
            )?;
            Ok(())
        })
    }

    fn record(&mut self, event: &str, channel: &str, a: Attempt<'_>) -> Result<(), StoreError> {
        self.with(|c| {
            match a {
                Attempt::Delivered { at, output } => c.execute(
                    "INSERT INTO deliveries (event_id, channel, delivered_at, attempts, output) VALUES ($1, $2, $3, 1, $4)
                     ON CONFLICT (event_id, channel) DO UPDATE SET delivered_at = $3,
                        attempts = deliveries.attempts + 1, output = COALESCE($4, deliveries.output),
                        last_error = NULL, last_error_kind = NULL, next_attempt_at = NULL,
                        claimed_by = NULL, claim_until = NULL",
                    &[&event, &channel, &secs(at), &output],
                )?,
                Attempt::Filtered { at } => c.execute(
                    "INSERT INTO deliveries (event_id, channel, delivered_at, attempts, filtered) VALUES ($1, $2, $3, 0, 1)
                     ON CONFLICT (event_id, channel) DO UPDATE SET delivered_at = $3, filtered = 1,
                        last_error = NULL, last_error_kind = NULL, next_attempt_at = NULL,
                        claimed_by = NULL, claim_until = NULL",
                    &[&event, &channel, &secs(at)],
                )?,
                Attempt::Failed(f) => c.execute(
                    "INSERT INTO deliveries (event_id, channel, attempts, last_error, last_error_kind, next_attempt_at, output)
                     VALUES ($1, $2, 1, $3, $4, $5, $6)
                     ON CONFLICT (event_id, channel) DO UPDATE SET attempts = deliveries.attempts + 1,
                        last_error = $3, last_error_kind = $4, next_attempt_at = $5,
                        output = COALESCE($6, deliveries.output), claimed_by = NULL, claim_until = NULL",
                    &[&event, &channel, &f.error, &f.kind, &secs(f.retry_at), &f.output],
                )?,
            };
            Ok(())
        })
    }

    fn delivery_problems(&self) -> Result<Vec<DeliveryProblem>, StoreError> {
        // "Latest" is the failed delivery of the newest event.
        self.with(|c| {
            let rows = c.query(
                "WITH failed AS (
                    SELECT d.channel, d.last_error_kind, d.last_error, d.output, e.seq
                    FROM deliveries d JOIN events e ON e.id = d.event_id
                    WHERE d.delivered_at IS NULL AND d.last_error IS NOT NULL AND e.acked_at IS NULL)
                 SELECT f.channel, COALESCE(f.last_error_kind, ''), COUNT(*),
                    (SELECT x.last_error FROM failed x WHERE x.channel = f.channel
                       AND x.last_error_kind IS NOT DISTINCT FROM f.last_error_kind ORDER BY x.seq DESC LIMIT 1),
                    (SELECT x.output FROM failed x WHERE x.channel = f.channel
                       AND x.last_error_kind IS NOT DISTINCT FROM f.last_error_kind ORDER BY x.seq DESC LIMIT 1)
                 FROM failed f GROUP BY f.channel, f.last_error_kind ORDER BY f.channel, 2",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| DeliveryProblem {
                    channel: r.get(0),
                    kind: r.get(1),
                    events: r.get::<_, i64>(2).max(0).unsigned_abs(),
                    error: r.get::<_, Option<String>>(3).unwrap_or_default(),
                    output: r.get(4),
                })
                .collect())
        })
    }
}

impl History for PgStore {
    fn append(&mut self, e: &Entry) -> Result<Record, StoreError> {
        self.in_tx(|tx| {
            // Appends from every instance take turns: the lock covers a history whose head
            // row does not exist yet, the row lock the rest.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&HISTORY_LOCK])?;
            let head = tx.query_opt(
                "SELECT count, hash FROM history_head WHERE id = 1 FOR UPDATE",
                &[],
            )?;
            let (count, prev): (i64, String) = match head {
                Some(r) => (r.get(0), r.get(1)),
                None => (0, chain::GENESIS.to_string()),
            };
            let seq = count.max(0).unsigned_abs() + 1;
            let hash = chain::hash(seq, e, &prev);
            let list = |v: &[String]| serde_json::Value::from(v.to_vec()).to_string();
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            tx.execute(
                "INSERT INTO history (seq, at, command, bundle, size, sha256, vendor, product, version, verdict,
                    codes, signers, unexpected, into_dir, \"user\", host, allowed, prev, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
                &[
                    &n(seq),
                    &n(e.at),
                    &e.command,
                    &e.bundle,
                    &n(e.size),
                    &e.sha256,
                    &e.vendor,
                    &e.product,
                    &e.version,
                    &e.verdict,
                    &list(&e.codes),
                    &list(&e.signers),
                    &list(&e.unexpected),
                    &e.into,
                    &e.user,
                    &e.host,
                    &list(&e.allowed),
                    &prev,
                    &hash,
                ],
            )?;
            tx.execute(
                "INSERT INTO history_head (id, count, hash) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET count = excluded.count, hash = excluded.hash",
                &[&n(seq), &hash],
            )?;
            Ok(Record {
                seq,
                entry: e.clone(),
                prev,
                hash,
            })
        })
    }

    fn records(
        &self,
        vendor: Option<&str>,
        product: Option<&str>,
    ) -> Result<Vec<Record>, StoreError> {
        let limit = i64::try_from(crate::policy::MAX_HISTORY_RECORDS).unwrap_or(i64::MAX);
        self.with(|c| {
            let rows = c.query(
                &format!(
                    "SELECT * FROM ({HISTORY_SELECT}
                       WHERE ($1::text IS NULL OR vendor = $1) AND ($2::text IS NULL OR product = $2)
                       ORDER BY seq DESC LIMIT $3) AS newest ORDER BY seq"
                ),
                &[&vendor, &product, &limit],
            )?;
            Ok(rows.iter().map(row_to_record).collect())
        })
    }

    fn check(&self) -> Result<Result<u64, chain::Break>, StoreError> {
        self.with(|c| {
            // One consistent snapshot of the records and the head, read in portions.
            let mut tx = c
                .client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut checker = chain::Checker::default();
            let portal = tx.bind(&format!("{HISTORY_SELECT} ORDER BY seq"), &[])?;
            loop {
                let rows = tx.query_portal(&portal, 1000)?;
                if rows.is_empty() {
                    break;
                }
                for r in &rows {
                    if let Err(b) = checker.step(&row_to_record(r)) {
                        return Ok(Err(b));
                    }
                }
            }
            let head = tx
                .query_opt("SELECT count, hash FROM history_head WHERE id = 1", &[])?
                .map(|r| (r.get::<_, i64>(0).max(0).unsigned_abs(), r.get(1)));
            tx.commit()?;
            Ok(checker.finish(head))
        })
    }

    fn installed(&self) -> Result<Vec<Record>, StoreError> {
        self.with(|c| {
            let rows = c.query(
                &format!(
                    "{HISTORY_SELECT} WHERE seq IN (
                        SELECT MAX(seq) FROM history
                        WHERE command = 'unpack' AND verdict = 'verified' AND product IS NOT NULL
                        GROUP BY vendor, product)
                     ORDER BY vendor, product"
                ),
                &[],
            )?;
            Ok(rows.iter().map(row_to_record).collect())
        })
    }
}

/// A column name as PostgreSQL reads it (`user` is reserved). Names come from
/// `store::TABLES`, never from input.
fn quoted(columns: &[&str]) -> String {
    let q: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    q.join(", ")
}

/// One cell as a parameter of a column of type `ty`: BIGINT or TEXT.
fn to_param(cell: &Cell, ty: &Type, table: &str) -> Result<Box<dyn ToSql + Sync>, StoreError> {
    let int = *ty == Type::INT8;
    Ok(match cell {
        Cell::Null if int => Box::new(None::<i64>),
        Cell::Null => Box::new(None::<String>),
        Cell::Int(v) if int => Box::new(*v),
        Cell::Int(v) => Box::new(v.to_string()),
        Cell::Text(t) if !int => Box::new(without_nul(t).into_owned()),
        Cell::Text(t) => Box::new(t.parse::<i64>().map_err(|_| {
            StoreError::Backend(format!("table {table}: {t:?} is not an integer").into())
        })?),
    })
}

impl Rows for PgStore {
    fn read_rows(&self, table: &TableSpec) -> Result<Vec<Vec<Cell>>, StoreError> {
        let cols = quoted(table.columns);
        self.with(|c| {
            let select = format!("SELECT {cols} FROM {}", table.name);
            let ints: Vec<bool> = c
                .client
                .prepare(&select)?
                .columns()
                .iter()
                .map(|c| matches!(*c.type_(), Type::INT8 | Type::INT4 | Type::INT2))
                .collect();
            // SQLite's order: text by bytes, NULL before any value.
            let order: Vec<String> = table
                .columns
                .iter()
                .zip(&ints)
                .map(|(name, int)| match int {
                    true => format!("\"{name}\" NULLS FIRST"),
                    false => format!("\"{name}\" COLLATE \"C\" NULLS FIRST"),
                })
                .collect();
            let stmt = c
                .client
                .prepare(&format!("{select} ORDER BY {}", order.join(", ")))?;
            let rows = c.client.query(&stmt, &[])?;
            let cell = |r: &Row, i: usize, int: bool| -> Result<Cell, postgres::Error> {
                Ok(if int {
                    let v: Option<i64> = match *r.columns()[i].type_() {
                        Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(i64::from),
                        Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(i64::from),
                        _ => r.try_get(i)?,
                    };
                    v.map_or(Cell::Null, Cell::Int)
                } else {
                    r.try_get::<_, Option<String>>(i)?
                        .map_or(Cell::Null, Cell::Text)
                })
            };
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let row = ints
                    .iter()
                    .enumerate()
                    .map(|(i, int)| cell(r, i, *int))
                    .collect::<Result<Vec<Cell>, _>>()?;
                out.push(row);
            }
            Ok(out)
        })
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM sources) AND NOT EXISTS (SELECT 1 FROM events)
                    AND NOT EXISTS (SELECT 1 FROM history)",
                &[],
            )?
            .get(0))
        })
    }

    fn write_rows(&mut self, tables: &[(TableSpec, Vec<Vec<Cell>>)]) -> Result<(), StoreError> {
        self.in_tx(|tx| {
            for (table, rows) in tables {
                let marks: Vec<String> =
                    (1..=table.columns.len()).map(|i| format!("${i}")).collect();
                let stmt = tx.tx.prepare(&format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    table.name,
                    quoted(table.columns),
                    marks.join(", ")
                ))?;
                for row in rows {
                    let params = row
                        .iter()
                        .zip(stmt.params())
                        .map(|(cell, ty)| to_param(cell, ty, table.name))
                        .collect::<Result<Vec<_>, _>>()?;
                    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p).collect();
                    tx.tx.execute(&stmt, &refs)?;
                }
            }
            // Events copied with their seq: new ones continue after the highest.
            tx.execute(
                "SELECT setval(pg_get_serial_sequence('events', 'seq'),
                               COALESCE((SELECT MAX(seq) FROM events), 1),
                               (SELECT MAX(seq) FROM events) IS NOT NULL)",
                &[],
            )?;
            Ok(())
        })
    }
}

/// The tests' private PostgreSQL server (shared with the integration tests).
#[cfg(test)]
#[allow(clippy::zombie_processes)] // its watchdog outlives the tests on purpose
#[path = "../../tests/support/pg_server.rs"]
mod pg_server;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::event::{Kind, Severity};
    use crate::alert::outbox::DeliveryFailure;
    use crate::store::{EntryWrite, StateLocation, TABLES};
    use std::collections::BTreeMap;

    use super::pg_server;

    const T: i64 = 1_700_000_000;

    fn parse(url: &str) -> PgState {
        match StateLocation::parse(url, std::path::Path::new("/"), None).unwrap() {
            StateLocation::Postgres(pg) => pg,
            StateLocation::Sqlite(p) => panic!("{url} read as {}", p.display()),
        }
    }

    /// A fresh database on the test server.
    fn database() -> PgState {
        parse(&pg_server::database())
    }

    /// This process under the id `id` exactly (several "instances" in one test).
    fn instance(id: &str) -> Instance {
        Instance {
            id: id.to_string(),
            ..Instance::this_process(None, Duration::from_secs(60), at(T))
        }
    }

    fn store(pg: &PgState, id: &str) -> PgStore {
        PgStore::open(pg, instance(id)).unwrap()
    }

    fn sql(s: &PgStore, q: &str) {
        s.with(|c| Ok(c.client.batch_execute(q)?)).unwrap();
    }

    fn count(s: &PgStore, q: &str) -> i64 {
        s.with(|c| Ok(c.query_one(q, &[])?.get(0))).unwrap()
    }

    fn ev(n: u32) -> Event {
        Event::new(
            Kind::AdvisoryNew,
            "acme",
            &format!("e{n}"),
            Severity::High,
            format!("t{n}"),
            "u",
            at(T + i64::from(n)),
        )
    }

    fn src(id: &str) -> SourceRef<'_> {
        SourceRef {
            id,
            vendor: "acme",
            kind: "csaf",
            url: id,
        }
    }

    /// A successful poll of `id` that changes nothing but its health.
    fn quiet_poll(id: &str, now: SystemTime) -> PollCommit<'_> {
        PollCommit {
            source: src(id),
            validators: None,
            entries: &[],
            problems: None,
            events: &[],
            listing: None,
            keyring: None,
            side_files: None,
            now,
            duration: None,
        }
    }

    fn ids(p: &[PendingEvent]) -> Vec<String> {
        p.iter().map(|e| e.event.id.clone()).collect()
    }

    fn failure(kind: &str, error: &str) -> DeliveryFailure {
        DeliveryFailure {
            error: error.into(),
            kind: kind.into(),
            output: Some(format!("out of {error}")),
            retry_at: at(T + 600),
        }
    }

    #[test]
    fn a_fresh_database_gets_the_schema_once_even_when_two_instances_start_together() {
        let pg = database();
        assert!(!exists(&pg).unwrap(), "nothing yet");
        assert!(!exists(&pg).unwrap(), "and asking made nothing");
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            let opens: Vec<_> = ["a", "b"]
                .map(|id| {
                    let (pg, barrier) = (&pg, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        PgStore::open(pg, instance(id)).map(drop)
                    })
                })
                .into_iter()
                .collect();
            for o in opens {
                o.join().unwrap().unwrap();
            }
        });
        assert!(exists(&pg).unwrap());
        let s = store(&pg, "c");
        let version = "SELECT MAX(version) FROM vendorguard_schema";
        assert_eq!(count(&s, version), SCHEMA_VERSION as i64);
        assert_eq!(count(&s, "SELECT COUNT(*) FROM vendorguard_schema"), 1);
        for table in TABLES {
            assert!(s.read_rows(table).unwrap().is_empty(), "{}", table.name);
        }
        assert!(s.is_empty().unwrap());
        let durability: String = s
            .with(|c| Ok(c.query_one("SHOW synchronous_commit", &[])?.get(0)))
            .unwrap();
        assert_eq!(
            durability, "off",
            "SQLite's WAL durability, no flush per commit"
        );
        let prepared = || s.with(|c| Ok(c.prepared.len())).unwrap();
        s.pending_count("email").unwrap();
        let n = prepared();
        s.pending_count("email").unwrap();
        s.pending_count("other").unwrap();
        assert_eq!(prepared(), n, "prepared once per connection");
        let again = store(&pg, "d");
        assert_eq!(count(&again, "SELECT COUNT(*) FROM vendorguard_schema"), 1);
        assert_eq!(count(&again, version), SCHEMA_VERSION as i64);
    }

    #[test]
    fn a_shared_database_is_used_and_a_newer_schema_is_refused() {
        let pg = database();
        {
            let first = store(&pg, "a");
            sql(&first, "DROP TABLE vendorguard_schema CASCADE");
            sql(&first, "CREATE TABLE notes (x BIGINT)");
        }
        // Someone else's tables beside ours are normal; ours are there already, though.
        let pg2 = database();
        {
            let other = store(&pg2, "a");
            sql(
                &other,
                "CREATE TABLE notes (x BIGINT); INSERT INTO notes VALUES (7)",
            );
        }
        let s = store(&pg2, "b");
        assert_eq!(count(&s, "SELECT x FROM notes"), 7);
        sql(&s, "UPDATE vendorguard_schema SET version = 12");
        let e = PgStore::open(&pg2, instance("c")).err().expect("refused");
        let StoreError::Open { path, message } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(path, &pg2.to_string());
        assert_eq!(
            message,
            "schema version 12 is newer than this vendorguard knows (11); upgrade vendorguard"
        );
        // A database whose tables exist without the version table is not taken over.
        let e = PgStore::open(&pg, instance("c")).err().expect("refused");
        assert!(
            e.to_string()
                .contains("relation \"sources\" already exists"),
            "{e}"
        );
    }

    /// A CSAF poll, a failing one and a recovered one, read back whole: what both
    /// backends must agree on.
    fn poll_scenario(s: &mut dyn Store) -> Vec<String> {
        let entry = |key: &str, hash: &str| EntryWrite {
            key: key.into(),
            updated: Some("2026-01-01".into()),
            content_hash: hash.into(),
            title: format!("title {key}"),
            url: format!("http://x/{key}"),
        };
        let problem = |u: &str, code: &str, t: i64| ProblemRow {
            advisory_url: u.into(),
            code: code.into(),
            first_seen: at(t),
            listed_updated: Some("2026-02-02".into()),
        };
        let side = |u: &str, round: i64| SideFiles {
            advisory_url: u.into(),
            hash_url: format!("{u}.sha512"),
            signature_url: format!("{u}.asc"),
            hash_value: "ab".into(),
            signature_sha256: "cd".into(),
            round,
            hash_validators: (Some("\"h\"".into()), None),
            signature_validators: (None, Some("Sun, 01 Nov 2026 00:00:00 GMT".into())),
        };
        let validators = |u: &str| UrlValidators {
            url: u.into(),
            etag: Some(format!("\"{u}\"")),
            last_modified: None,
        };
        // A key, a problem and a side file twice in one poll: the last one counts.
        let entries = [entry("k1", "old"), entry("k2", "h2"), entry("k1", "h1")];
        let problems = [
            problem("u1", "digest-mismatch", T),
            problem("u2", "no-signature", T + 5),
            problem("u1", "digest-mismatch", T + 9),
        ];
        let side_files = [side("a", 1), side("b", 2), side("a", 3)];
        let listing = [validators("m"), validators("r")];
        let events = [ev(1), ev(2), ev(1)];
        let mut out = Vec::new();
        let commit = PollCommit {
            source: src("s1"),
            validators: Some((Some("\"etag\"".into()), Some("Mon".into()))),
            entries: &entries,
            problems: Some(&problems),
            events: &events,
            listing: Some(&listing),
            keyring: Some("FPR1 FPR2"),
            side_files: Some(&side_files),
            now: at(T + 10),
            duration: Some(Duration::from_millis(1500)),
        };
        out.push(format!("new events {}", s.commit_poll(&commit).unwrap()));
        out.push(format!("again {}", s.commit_poll(&commit).unwrap()));
        let fail = FailureCommit {
            source: src("s2"),
            code: "http-error",
            error: "HTTP 500",
            now: at(T + 20),
            duration: None,
        };
        let raise = |row: &SourceRow| {
            (row.health.failures >= 2).then(|| {
                Event::new(
                    Kind::SourceFailing,
                    "acme",
                    &row.id,
                    Severity::High,
                    "failing",
                    &row.url,
                    at(T + 20),
                )
            })
        };
        for _ in 0..3 {
            out.push(format!("{:?}", s.commit_failure(&fail, &raise).unwrap()));
        }
        let keep = quiet_poll("s1", at(T + 30));
        s.commit_poll(&keep).unwrap();
        out.push(format!("{:?}", s.sources().unwrap()));
        out.push(format!("{:?}", s.source("s1").unwrap()));
        out.push(format!("{:?}", s.source("none").unwrap()));
        let sorted: BTreeMap<_, _> = s.entries("s1").unwrap().into_iter().collect();
        out.push(format!("{sorted:?}"));
        out.push(format!("{:?}", s.problems("s1").unwrap()));
        let sorted: BTreeMap<_, _> = s.open_problems().unwrap().into_iter().collect();
        out.push(format!("{sorted:?}"));
        out.push(format!("{:?}", s.listing_validators("s1").unwrap()));
        out.push(format!("{:?}", s.side_files("s1").unwrap()));
        out.push(format!("{:?}", s.keyring_seen("s1").unwrap()));
        out.push(format!("{:?}", s.keyring_seen("s2").unwrap()));
        out.push(listed(s, None));
        out.push(format!("{:?}", s.event_totals().unwrap()));
        out
    }

    /// `events` without the storage order's numbers (both backends may skip some).
    fn listed(s: &dyn Store, since: Option<SystemTime>) -> String {
        let rows = s.events(since).unwrap();
        let seqs: Vec<i64> = rows.iter().map(|e| e.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        let shown: Vec<String> = rows
            .into_iter()
            .map(|e| format!("{:?}", EventRow { seq: 0, ..e }))
            .collect();
        shown.join("\n")
    }

    /// Deliveries of every kind on two channels, read back through every count.
    fn outbox_scenario(s: &mut dyn Store, now: SystemTime) -> Vec<String> {
        let events: Vec<Event> = (1..=6).map(ev).collect();
        let mut out = vec![format!("added {}", s.add_events(&events).unwrap())];
        out.push(format!("again {}", s.add_events(&events[..2]).unwrap()));
        let id = |n: usize| events[n - 1].id.clone();
        out.push(format!("{:?}", ids(&s.claim("email", now).unwrap())));
        out.push(format!("{:?}", ids(&s.claim("other", now).unwrap())));
        s.fix_message_id(&[&id(1), &id(2)], "email", "<digest@vg>")
            .unwrap();
        s.record(
            &id(1),
            "email",
            Attempt::Failed(&failure("connection", "down")),
        )
        .unwrap();
        s.record(
            &id(2),
            "email",
            Attempt::Failed(&failure("connection", "still down")),
        )
        .unwrap();
        s.record(
            &id(3),
            "email",
            Attempt::Failed(&failure("permanent", "550")),
        )
        .unwrap();
        s.record(
            &id(3),
            "email",
            Attempt::Delivered {
                at: at(T + 50),
                output: Some("250"),
            },
        )
        .unwrap();
        s.record(&id(4), "escalation", Attempt::Filtered { at: at(T + 51) })
            .unwrap();
        s.record(
            &id(5),
            "escalation",
            Attempt::Failed(&failure("exit", "exit 3")),
        )
        .unwrap();
        s.release_claims("email").unwrap();
        out.push(format!(
            "acked {}",
            s.ack_event(&id(6), at(T + 60)).unwrap()
        ));
        out.push(format!(
            "acked {}",
            s.ack_event(&id(6), at(T + 99)).unwrap()
        ));
        out.push(format!(
            "acked {}",
            s.ack_event("nope", at(T + 99)).unwrap()
        ));
        for channel in ["email", "escalation", "other"] {
            let p = s.pending(channel).unwrap();
            let ids: Vec<(String, Option<String>)> =
                p.into_iter().map(|p| (p.event.id, p.message_id)).collect();
            out.push(format!("{channel} pending {ids:?}"));
            out.push(format!(
                "{channel} count {}",
                s.pending_count(channel).unwrap()
            ));
            out.push(format!("{:?}", s.pending_detected(channel).unwrap()));
            out.push(format!("filtered {}", s.filtered_count(channel).unwrap()));
        }
        out.push(format!(
            "handled {}",
            s.handled_count(&["email", "escalation"]).unwrap()
        ));
        out.push(format!("handled {}", s.handled_count(&[]).unwrap()));
        out.push(format!("{:?}", s.delivery_problems().unwrap()));
        out.push(format!("{:?}", s.delivery_totals().unwrap()));
        out.push(format!("{:?}", s.unreadable_pending(&["email"]).unwrap()));
        out.push(listed(s, Some(at(T + 3))));
        out
    }

    #[test]
    fn polls_and_deliveries_read_back_as_in_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let me = instance("a");
        let mut lite = crate::store::sqlite::open(&dir.path().join("s.sqlite"), &me).unwrap();
        let pg = database();
        let mut pg_store: Box<dyn Store> = Box::new(PgStore::open(&pg, me.clone()).unwrap());
        let want = poll_scenario(&mut *lite);
        assert_eq!(poll_scenario(&mut *pg_store), want);
        assert!(
            want[0] == "new events 2" && want[1] == "again 0",
            "{want:?}"
        );
        let now = at(T + 40);
        let want = outbox_scenario(&mut *lite, now);
        let got = outbox_scenario(&mut *pg_store, now);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w);
        }
        assert_eq!(got.len(), want.len());
    }

    #[test]
    fn two_instances_claim_disjoint_deliveries_and_take_over_expired_ones() {
        let pg = database();
        let (mut a, mut b) = (store(&pg, "a"), store(&pg, "b"));
        let events: Vec<Event> = (1..=4).map(ev).collect();
        let id = |n: usize| events[n - 1].id.clone();
        a.add_events(&events).unwrap();
        let now = at(T);
        assert_eq!(
            ids(&a.claim("email", now).unwrap()),
            [id(1), id(2), id(3), id(4)]
        );
        assert!(
            b.claim("email", now).unwrap().is_empty(),
            "a holds them all"
        );
        assert_eq!(
            ids(&b.claim("escalation", now).unwrap()).len(),
            4,
            "per channel"
        );
        // A recorded attempt ends the claim; so does giving the rest back.
        a.record(
            &id(1),
            "email",
            Attempt::Failed(&failure("connection", "down")),
        )
        .unwrap();
        assert_eq!(ids(&b.claim("email", now).unwrap()), [id(1)]);
        a.release_claims("email").unwrap();
        assert_eq!(
            ids(&b.claim("email", now).unwrap()),
            [id(1), id(2), id(3), id(4)],
            "its own claim and the released ones"
        );
        assert!(a.claim("email", at(T + 59)).unwrap().is_empty());
        // b's lease (60 s) ran out: a takes over.
        assert_eq!(ids(&a.claim("email", at(T + 60)).unwrap()).len(), 4);
        a.record(
            &id(2),
            "email",
            Attempt::Delivered {
                at: at(T + 61),
                output: None,
            },
        )
        .unwrap();
        assert_eq!(
            ids(&b.claim("email", at(T + 200)).unwrap()),
            [id(1), id(3), id(4)]
        );
        assert_eq!(a.pending_count("email").unwrap(), 3);
        // A released claim of b's is not a's to release.
        a.release_claims("email").unwrap();
        assert!(a.claim("email", at(T + 201)).unwrap().is_empty());
        assert_eq!(
            count(
                &a,
                "SELECT COUNT(*) FROM deliveries WHERE claimed_by = 'b' AND channel = 'email'"
            ),
            3
        );

        // At the same moment, from two threads: every event exactly once.
        let pg = database();
        let events: Vec<Event> = (1..=200).map(ev).collect();
        store(&pg, "x").add_events(&events).unwrap();
        let barrier = std::sync::Barrier::new(2);
        let claimed: Vec<Vec<String>> = std::thread::scope(|s| {
            let runs: Vec<_> = ["a", "b"]
                .map(|who| {
                    let (pg, barrier) = (&pg, &barrier);
                    s.spawn(move || {
                        let mut st = store(pg, who);
                        barrier.wait();
                        let mut mine = Vec::new();
                        for round in 0..4 {
                            mine.extend(ids(&st.claim("email", at(T + round)).unwrap()));
                        }
                        mine
                    })
                })
                .into_iter()
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        // Each instance's later rounds return its own claims again.
        let sets: Vec<std::collections::BTreeSet<&String>> =
            claimed.iter().map(|c| c.iter().collect()).collect();
        assert_eq!(sets[0].intersection(&sets[1]).count(), 0, "claimed twice");
        assert_eq!(sets[0].len() + sets[1].len(), 200);
    }

    #[test]
    fn a_source_lease_is_held_fresh_taken_over_and_released() {
        let pg = database();
        let (mut a, mut b) = (store(&pg, "a"), store(&pg, "b"));
        let fresh = Some(Duration::from_secs(300));
        assert_eq!(
            a.lease_source(src("s"), fresh, at(T)).unwrap(),
            Lease::Taken
        );
        assert!(a.source("s").unwrap().is_some(), "the row is made");
        assert_eq!(
            b.lease_source(src("s"), None, at(T + 10)).unwrap(),
            Lease::Held {
                by: "a".into(),
                until: at(T + 60)
            }
        );
        assert_eq!(
            a.lease_source(src("s"), None, at(T + 10)).unwrap(),
            Lease::Taken
        );
        // a died: its lease (renewed at T + 10) runs out at T + 70.
        assert!(matches!(
            b.lease_source(src("s"), None, at(T + 69)).unwrap(),
            Lease::Held { .. }
        ));
        assert_eq!(
            b.lease_source(src("s"), None, at(T + 70)).unwrap(),
            Lease::Taken
        );
        let poll = quiet_poll("s", at(T + 80));
        b.commit_poll(&poll).unwrap();
        b.heartbeat(at(T + 80)).unwrap();
        let row = a.source("s").unwrap().unwrap();
        assert_eq!(row.health.last_polled_by.as_deref(), Some("b"));
        assert_eq!(
            a.lease_source(src("s"), fresh, at(T + 90)).unwrap(),
            Lease::Fresh {
                by: "b".into(),
                at: at(T + 80)
            },
            "the commit gave the lease back; the poll is fresh"
        );
        // b's heartbeat is older than its lease: its poll no longer holds a daemon back.
        let mut c = store(&pg, "c");
        assert_eq!(
            c.lease_source(src("s"), fresh, at(T + 140)).unwrap(),
            Lease::Taken,
            "a poll by an instance that is gone is not fresh"
        );
        c.release_source("s").unwrap();
        assert_eq!(
            a.lease_source(src("s"), None, at(T + 90)).unwrap(),
            Lease::Taken
        );
        b.release_source("s").unwrap();
        assert!(
            matches!(
                b.lease_source(src("s"), None, at(T + 91)).unwrap(),
                Lease::Held { .. }
            ),
            "b cannot release a's lease"
        );
        a.release_source("s").unwrap();
        assert_eq!(
            b.lease_source(src("s"), None, at(T + 92)).unwrap(),
            Lease::Taken
        );
        let fail = FailureCommit {
            source: src("s"),
            code: "http-error",
            error: "HTTP 500",
            now: at(T + 93),
            duration: None,
        };
        b.commit_failure(&fail, &|_| None).unwrap();
        assert_eq!(
            a.lease_source(src("s"), None, at(T + 94)).unwrap(),
            Lease::Taken
        );
    }

    #[test]
    fn of_two_instances_leasing_a_source_at_once_one_takes_it() {
        let pg = database();
        let mut first = store(&pg, "x");
        for round in 0..5 {
            let id = format!("s{round}");
            // An existing source: no insert to queue them up, only the row lock.
            first.lease_source(src(&id), None, at(T)).unwrap();
            first.release_source(&id).unwrap();
            let barrier = std::sync::Barrier::new(2);
            let found: Vec<Lease> = std::thread::scope(|s| {
                let runs: Vec<_> = ["a", "b"]
                    .map(|who| {
                        let (pg, barrier, id) = (&pg, &barrier, &id);
                        s.spawn(move || {
                            let mut st = store(pg, who);
                            barrier.wait();
                            st.lease_source(src(id), None, at(T)).unwrap()
                        })
                    })
                    .into_iter()
                    .collect();
                runs.into_iter().map(|r| r.join().unwrap()).collect()
            });
            let taken = found.iter().filter(|l| **l == Lease::Taken).count();
            assert_eq!(taken, 1, "{found:?}");
        }
    }

    #[test]
    fn heartbeats_list_the_instances_and_forget_silent_ones_after_a_week() {
        let pg = database();
        let (mut a, mut b) = (store(&pg, "a"), store(&pg, "b"));
        a.heartbeat(at(T)).unwrap();
        b.heartbeat(at(T + 5)).unwrap();
        a.heartbeat(at(T + 10)).unwrap();
        let rows = b.instances().unwrap();
        let me = instance("a");
        assert_eq!(
            rows[0],
            InstanceRow {
                id: "a".into(),
                host: me.host.clone(),
                pid: me.pid,
                version: me.version.clone(),
                started_at: at(T),
                heartbeat_at: at(T + 10),
                alive_until: at(T + 70),
            }
        );
        assert_eq!(
            rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        a.heartbeat(at(T + 5 + FORGET_INSTANCES_SECS + 1)).unwrap();
        assert_eq!(b.instances().unwrap().len(), 1, "b is forgotten");
    }

    fn entry(n: u32, who: &str) -> Entry {
        Entry {
            at: 1_795_000_000 + u64::from(n),
            command: "unpack".into(),
            bundle: format!("/b/app-{n}.zip"),
            sha256: format!("{n:0>64}"),
            vendor: Some("acme".into()),
            product: Some(format!("app-{who}")),
            version: Some(format!("{n}.0")),
            verdict: "verified".into(),
            codes: vec!["x\"y".into()],
            user: "root".into(),
            host: who.into(),
            ..Entry::default()
        }
    }

    #[test]
    fn history_appended_from_two_instances_is_one_intact_chain() {
        let pg = database();
        let (mut a, mut b) = (store(&pg, "a"), store(&pg, "b"));
        assert_eq!(a.check().unwrap(), Ok(0), "an empty history is intact");
        // Two instances appending at once onto a history that has no head row yet.
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for who in ["c", "d"] {
                let (pg, barrier) = (&pg, &barrier);
                s.spawn(move || {
                    let mut st = store(pg, who);
                    barrier.wait();
                    for n in 0..15 {
                        st.append(&entry(n, who)).unwrap();
                    }
                });
            }
        });
        for n in 0..3 {
            a.append(&entry(n, "a")).unwrap();
            b.append(&entry(n, "b")).unwrap();
        }
        assert_eq!(b.check().unwrap(), Ok(36));
        let all = a.records(None, None).unwrap();
        assert_eq!(all.len(), 36);
        assert_eq!(all[0].prev, chain::GENESIS);
        assert!(all.windows(2).all(|w| w[1].prev == w[0].hash));
        assert_eq!(all[30].entry, entry(0, "a"), "read back as written");
        assert_eq!(a.records(Some("acme"), Some("app-b")).unwrap().len(), 3);
        assert!(a.records(Some("other"), None).unwrap().is_empty());
        let installed: Vec<(Option<String>, Option<String>)> = a
            .installed()
            .unwrap()
            .into_iter()
            .map(|r| (r.entry.product, r.entry.version))
            .collect();
        assert_eq!(installed.len(), 4);
        assert_eq!(installed[0], (Some("app-a".into()), Some("2.0".into())));
        sql(&a, "UPDATE history SET codes = 'not json' WHERE seq = 4");
        assert_eq!(a.check().unwrap().unwrap_err().seq, 4);
    }

    #[test]
    fn rows_copy_sqlite_to_postgresql_and_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let me = instance("a");
        let from = dir.path().join("from.sqlite");
        {
            let mut lite = crate::store::sqlite::open(&from, &me).unwrap();
            poll_scenario(&mut *lite);
            outbox_scenario(&mut *lite, at(T + 40));
            let mut h = crate::store::sqlite::open_history(&from).unwrap();
            for n in 0..3 {
                h.append(&entry(n, "a")).unwrap();
            }
        }
        let read = |r: &dyn Rows| -> Vec<(TableSpec, Vec<Vec<Cell>>)> {
            TABLES
                .iter()
                .map(|t| (*t, r.read_rows(t).unwrap()))
                .collect()
        };
        let cells = |t: &[(TableSpec, Vec<Vec<Cell>>)]| -> Vec<Vec<Vec<Cell>>> {
            t.iter().map(|(_, rows)| rows.clone()).collect()
        };
        {
            // Sources whose order differs by bytes (SQLite) and by language (ICU).
            let mut lite = crate::store::sqlite::open(&from, &me).unwrap();
            for id in ["b", "B", "a", "é"] {
                lite.commit_poll(&quiet_poll(id, at(T))).unwrap();
            }
        }
        let lite = crate::store::sqlite::open_rows(&from).unwrap();
        let tables = read(&*lite);
        assert!(
            tables.iter().all(|(_, rows)| !rows.is_empty()),
            "every table has rows"
        );
        // A database that sorts text by language, not by bytes.
        let server = pg_server::server();
        let name = format!("vg_icu_{}", std::process::id());
        server.psql(
            "postgres",
            &format!(
                "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
                 LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C'"
            ),
        );
        let pg = parse(&server.url(&name));
        let mut to = open_rows(&pg).unwrap();
        assert!(to.is_empty().unwrap());
        to.write_rows(&tables).unwrap();
        assert!(!to.is_empty().unwrap());
        let copied = read(&*to);
        assert_eq!(cells(&copied), cells(&tables));
        let mut back = crate::store::sqlite::open_rows(&dir.path().join("back.sqlite")).unwrap();
        back.write_rows(&copied).unwrap();
        assert_eq!(cells(&read(&*back)), cells(&tables));
        // New events go after the copied ones; the copied history goes on.
        let mut s = store(&pg, "a");
        assert_eq!(s.add_events(&[ev(99)]).unwrap(), 1);
        let seqs: Vec<i64> = s.events(None).unwrap().iter().map(|e| e.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        s.append(&entry(7, "a")).unwrap();
        assert_eq!(s.check().unwrap(), Ok(4));
        // A copy is all or nothing.
        let e = to.write_rows(&tables).unwrap_err();
        assert!(e.to_string().contains("duplicate key"), "{e}");
        assert_eq!(s.events(None).unwrap().len(), seqs.len());
    }

    #[test]
    fn an_unreadable_event_is_reported_not_claimed_and_the_others_go_on() {
        let pg = database();
        let mut s = store(&pg, "a");
        s.add_events(&[ev(1), ev(2), ev(3)]).unwrap();
        sql(
            &s,
            &format!(
                "UPDATE events SET json = '{{\"id\": \"trunc' WHERE id = '{}'",
                ev(2).id
            ),
        );
        assert_eq!(ids(&s.pending("email").unwrap()), [ev(1).id, ev(3).id]);
        assert_eq!(ids(&s.claim("email", at(T)).unwrap()), [ev(1).id, ev(3).id]);
        let bad = s.unreadable_pending(&["email", "escalation"]).unwrap();
        assert_eq!(bad.len(), 1);
        assert_eq!((bad[0].seq, &*bad[0].id), (2, &*ev(2).id));
        assert!(bad[0].error.starts_with("is not valid JSON"), "{bad:?}");
        assert_eq!(s.pending_count("email").unwrap(), 3);
    }

    #[test]
    fn every_call_works_inside_the_runtime_and_drops_there() {
        let pg = database();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let pending = rt.block_on(async {
            let mut s = open(&pg, &instance("a")).unwrap();
            s.heartbeat(at(T)).unwrap();
            s.add_events(&[ev(1)]).unwrap();
            let claimed = s.claim("email", at(T)).unwrap().len();
            let task = tokio::spawn(async { 7 });
            assert_eq!(task.await.unwrap(), 7, "the runtime still runs tasks");
            let mut h = open_history(&pg).unwrap();
            h.append(&entry(1, "a")).unwrap();
            drop(h);
            let rows = open_rows(&pg).unwrap();
            assert!(!rows.is_empty().unwrap());
            drop(rows);
            let n = s.pending_count("email").unwrap();
            drop(s);
            (claimed, n)
        });
        assert_eq!(pending, (1, 1));
    }

    #[test]
    fn a_server_restart_fails_the_call_in_flight_and_the_next_connects_again() {
        let server = pg_server::private_server();
        let pg = parse(&server.url(&server.create_database("postgres")));
        let mut s = store(&pg, "a");
        s.add_events(&[ev(1)]).unwrap();
        server.stop();
        let e = s.add_events(&[ev(2)]).unwrap_err();
        assert!(matches!(e, StoreError::Backend(_)), "{e:?}");
        let e = s.pending_count("email").unwrap_err();
        let StoreError::Open { path, message } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(path, &pg.to_string());
        assert!(message.starts_with("cannot connect: "), "{message}");
        server.start();
        assert_eq!(s.add_events(&[ev(2)]).unwrap(), 1);
        assert_eq!(s.pending_count("email").unwrap(), 2, "nothing was lost");
    }

    /// A variable name no other test sets.
    fn password_env(name: &str, value: &str) -> String {
        let var = format!("VG_PG_TEST_{name}_{}", std::process::id());
        std::env::set_var(&var, value);
        var
    }

    fn open_err(pg: &PgState) -> (String, String) {
        match PgStore::open(pg, instance("a")).err().expect("refused") {
            StoreError::Open { path, message } => (path, message),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_wrong_password_or_a_closed_port_is_an_open_error_without_the_password() {
        let secret = "Wrong-Secret-5150";
        let mut pg = parse(&pg_server::password_database());
        pg.password_env = password_env("WRONG", secret);
        let (path, message) = open_err(&pg);
        assert_eq!(path, pg.to_string());
        assert!(
            message.starts_with("cannot connect: password authentication failed"),
            "{message}"
        );
        assert!(!message.contains(secret) && !path.contains(secret));
        pg.password_env = password_env("RIGHT", pg_server::PASSWORD);
        PgStore::open(&pg, instance("a")).unwrap();

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut closed = database();
        closed.port = port;
        closed.password_env = password_env("CLOSED", secret);
        let (path, message) = open_err(&closed);
        assert!(matches!(exists(&closed), Err(StoreError::Open { .. })));
        assert_eq!(path, closed.to_string());
        assert!(message.starts_with("cannot connect: "), "{message}");
        assert!(message.contains("refused"), "{message}");
        assert!(!message.contains(secret));

        let mut missing = database();
        missing.dbname = "no_such_db".into();
        let (_, message) = open_err(&missing);
        assert_eq!(
            message,
            "cannot connect: database \"no_such_db\" does not exist"
        );
    }

    /// Runs `openssl` with `args` in `dir`; a missing or failing openssl fails the test.
    fn openssl(dir: &std::path::Path, args: &[&str]) {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (Debian's openssl package) is needed to make the test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A CA named `name` in `dir` (`NAME.pem`, `NAME.key`).
    fn make_ca(dir: &std::path::Path, name: &str) {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }

    #[test]
    fn tls_checks_the_certificate_and_the_host_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_ca(d, "ca");
        make_ca(d, "other-ca");
        std::fs::write(
            d.join("ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext",
                "-out",
                "server.pem",
            ],
        );
        use std::os::unix::fs::PermissionsExt as _;
        for f in ["", "server.pem", "server.key"] {
            let p = d.join(f);
            let mode = if f.is_empty() { 0o755 } else { 0o600 };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let out = std::process::Command::new("chown")
                .arg("postgres:")
                .arg(&p)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let server = pg_server::private_server();
        let db = server.create_database("postgres");
        server.psql(
            "postgres",
            &format!(
                "ALTER SYSTEM SET ssl_cert_file = '{}'",
                d.join("server.pem").display()
            ),
        );
        server.psql(
            "postgres",
            &format!(
                "ALTER SYSTEM SET ssl_key_file = '{}'",
                d.join("server.key").display()
            ),
        );
        server.psql("postgres", "ALTER SYSTEM SET ssl = on");
        server.stop();
        server.start();
        let url = |host: &str, mode: &str, ca: &str| {
            let ca = d.join(ca);
            let port = server.port();
            parse(&format!(
                "postgresql://postgres@{host}:{port}/{db}?sslmode={mode}&sslrootcert={}",
                ca.display()
            ))
        };
        for mode in ["verify-full", "require"] {
            let mut s = store(&url("localhost", mode, "ca.pem"), "a");
            let tls: bool = s
                .with(|c| {
                    let q = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
                    Ok(c.query_one(q, &[])?.get(0))
                })
                .unwrap();
            assert!(tls, "{mode}: connected without TLS");
            s.heartbeat(at(T)).unwrap();
            let (_, message) = open_err(&url("localhost", mode, "other-ca.pem"));
            assert!(message.contains("UnknownIssuer"), "{mode}: {message}");
            // The certificate names localhost, not 127.0.0.1.
            let (_, message) = open_err(&url("127.0.0.1", mode, "ca.pem"));
            assert!(message.contains("not valid for name"), "{mode}: {message}");
        }
    }

    #[test]
    fn tls_is_never_skipped() {
        // The test server speaks no TLS: require and verify-full refuse to go on in clear.
        for mode in [SslMode::Require, SslMode::VerifyFull] {
            let mut pg = database();
            pg.sslmode = mode;
            pg.sslrootcert = None;
            let (_, message) = open_err(&pg);
            assert!(message.starts_with("cannot connect: "), "{message}");
            assert!(message.contains("TLS"), "{mode:?}: {message}");
        }
        let mut pg = database();
        pg.sslmode = SslMode::Require;
        pg.sslrootcert = Some("/dev/zero".into());
        let (_, message) = open_err(&pg);
        assert!(message.contains("not a regular file"), "{message}");
        pg.sslrootcert = Some("/nonexistent/ca.pem".into());
        let (_, message) = open_err(&pg);
        assert!(
            message.starts_with("cannot read sslrootcert /nonexistent/ca.pem"),
            "{message}"
        );
    }
}
