//! The test harness: a temporary project folder, the real `vendorguard` binary, real
//! GnuPG in a temporary home, and Sequoia-made keys for the timelines GnuPG will not
//! produce (signing after expiry, revocations with chosen reasons and dates).
//!
//! Every fixture is made at test time by the recipe here, so the data and the code that
//! made it are one.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openpgp::cert::prelude::*;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::serialize::{Serialize, SerializeInto};
use openpgp::types::{HashAlgorithm, KeyFlags, ReasonForRevocation, SignatureType};
use openpgp::Cert;
use sequoia_openpgp as openpgp;

pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// A temporary project: feeds.toml, keyring/, bundles.
pub struct Project {
    pub dir: tempfile::TempDir,
}

/// One run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Run {
    fn dump(&self) -> String {
        format!(
            "vendorguard {:?}\nexit {}\n--- stdout\n{}--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the exit code, dumping both streams when it differs.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(self.code, want, "unexpected exit code\n{}", self.dump());
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn stdout_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stdout.contains(needle),
            "stdout has {needle:?}\n{}",
            self.dump()
        );
        self
    }

    /// The first stdout line.
    pub fn first_line(&self) -> &str {
        self.stdout.lines().next().unwrap_or("")
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value: {e}\n{}", self.dump()))
    }

    /// The verdict codes of a `--json` verify run.
    #[track_caller]
    pub fn codes(&self) -> Vec<String> {
        self.json()["codes"]
            .as_array()
            .expect("codes array")
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    }
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Writes a feeds.toml with one vendor per `(name, bundle pattern)`.
    pub fn vendors(&self, vendors: &[(&str, &str)]) {
        let mut s = String::new();
        for (name, pattern) in vendors {
            s.push_str(&format!(
                "[[vendor]]\nname = \"{name}\"\nbundles = [\"{pattern}\"]\n\n"
            ));
        }
        self.write("feeds.toml", s);
    }

    /// Pins `cert` for `vendor` in keyring/<vendor>/<file>.
    pub fn pin_cert(&self, vendor: &str, file: &str, armored: &[u8]) -> PathBuf {
        self.write(&format!("keyring/{vendor}/{file}"), armored)
    }

    /// Runs the binary in the project folder.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(self.dir.path(), args)
    }

    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Run {
        self.run_env(cwd, args, &[])
    }

    /// Runs the binary with extra environment variables, set after the proxy variables
    /// are cleared (so a test may name its own proxy on 127.0.0.1).
    pub fn run_env(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vendorguard"));
        cmd.args(args)
            .current_dir(cwd)
            .env_remove("RUST_LOG")
            // The configuration is the project's, whatever the caller's environment says.
            .env_remove("VENDORGUARD_CONFIG")
            // A PostgreSQL state's password comes from the test, never the caller.
            .env_remove("PGPASSWORD")
            // The tests talk to 127.0.0.1 only: no proxy from the environment.
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .stdin(Stdio::null());
        cmd.envs(env.iter().copied());
        let out = cmd.output().expect("run vendorguard");
        to_run(out, args)
    }
}

fn to_run(out: Output, args: &[&str]) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

/// Real GnuPG in a temporary home.
pub struct Gpg {
    pub home: tempfile::TempDir,
}

impl Gpg {
    pub fn new() -> Gpg {
        let home = tempfile::tempdir().expect("tempdir");
        // Short socket paths and no agent autostart problems under a temp home.
        Gpg { home }
    }

    /// Runs gpg with `args`, asserting success.
    pub fn gpg(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args([
                "--batch",
                "--quiet",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("gpg is installed");
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Makes a key; `algo` is `ed25519`, `rsa2048`, `rsa3072`; `expire` as gpg takes it
    /// (`0`, `1y`, `2d`). `faked` is a GnuPG time such as `20240101T000000`.
    pub fn key(&self, uid: &str, algo: &str, expire: &str, faked: Option<&str>) -> String {
        let mut args = Vec::new();
        let t;
        if let Some(f) = faked {
            t = format!("{f}!");
            args.extend(["--faked-system-time", t.as_str(), "--ignore-time-conflict"]);
        }
        args.extend(["--quick-generate-key", uid, algo, "sign", expire]);
        self.gpg(&args);
        self.fingerprint(uid)
    }

    pub fn fingerprint(&self, uid: &str) -> String {
        let out = String::from_utf8(self.gpg(&["--with-colons", "--list-keys", uid])).unwrap();
        out.lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .expect("fingerprint")
            .to_string()
    }

    pub fn export(&self, fpr: &str) -> Vec<u8> {
        self.gpg(&["--armor", "--export", fpr])
    }

    pub fn export_binary(&self, fprs: &[&str]) -> Vec<u8> {
        let mut args = vec!["--export"];
        args.extend(fprs);
        self.gpg(&args)
    }

    /// A detached signature (armored when `armor`), written to `out`.
    pub fn detach_sign(
        &self,
        fpr: &str,
        file: &Path,
        out: &Path,
        digest: &str,
        faked: Option<&str>,
        armor: bool,
    ) {
        let _ = std::fs::remove_file(out);
        let mut args: Vec<String> = Vec::new();
        if let Some(f) = faked {
            args.extend([
                "--faked-system-time".into(),
                format!("{f}!"),
                "--ignore-time-conflict".into(),
            ]);
        }
        if armor {
            args.push("--armor".into());
        }
        args.extend([
            "--digest-algo".into(),
            digest.into(),
            "--local-user".into(),
            format!("{fpr}!"),
            "--output".into(),
            out.display().to_string(),
            "--detach-sign".into(),
            file.display().to_string(),
        ]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.gpg(&refs);
    }

    /// A cleartext-signed (`--clearsign`) or inline-signed (`--sign`) copy of `file`.
    pub fn sign_inline(&self, fpr: &str, file: &Path, out: &Path, mode: &str) {
        let _ = std::fs::remove_file(out);
        let user = format!("{fpr}!");
        let out_s = out.display().to_string();
        let file_s = file.display().to_string();
        self.gpg(&[
            "--digest-algo",
            "SHA256",
            "--local-user",
            &user,
            "--output",
            &out_s,
            mode,
            &file_s,
        ]);
    }
}

/// A Sequoia-made Ed25519 certificate whose primary key certifies and signs, created at
/// `created`, valid for `validity`.
pub fn sq_cert(uid: &str, created: SystemTime, validity: Option<Duration>) -> Cert {
    let (cert, _rev) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(created)
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .set_validity_period(validity)
        .add_userid(uid)
        .generate()
        .expect("generate");
    cert
}

/// A detached armored signature over `data` by `cert`'s primary key at `at`.
pub fn sq_sign(cert: &Cert, data: &[u8], at: SystemTime, hash: HashAlgorithm) -> Vec<u8> {
    let mut signer = cert
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .set_signature_creation_time(at)
        .unwrap()
        .set_hash_algo(hash)
        .sign_message(&mut signer, data)
        .expect("sign");
    let mut out = Vec::new();
    {
        let mut w = openpgp::armor::Writer::new(&mut out, openpgp::armor::Kind::Signature).unwrap();
        openpgp::Packet::from(sig).serialize(&mut w).unwrap();
        w.finalize().unwrap();
    }
    out
}

/// `cert` with a revocation for `reason` dated `at`.
pub fn sq_revoke(cert: &Cert, reason: ReasonForRevocation, at: SystemTime) -> Cert {
    let mut signer = cert
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let rev = CertRevocationBuilder::new()
        .set_signature_creation_time(at)
        .unwrap()
        .set_reason_for_revocation(reason, b"test revocation")
        .unwrap()
        .build(&mut signer, cert, None)
        .unwrap();
    cert.clone().insert_packets(rev).unwrap().0
}

/// The public certificate, armored.
pub fn armored(cert: &Cert) -> Vec<u8> {
    cert.armored().to_vec().unwrap()
}

pub fn days_ago(n: u64) -> SystemTime {
    SystemTime::now() - DAY * n as u32
}

pub fn days_ahead(n: u64) -> SystemTime {
    SystemTime::now() + DAY * n as u32
}

/// GnuPG's faked-time format for `t`.
pub fn gpg_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    // Format via the date command-free path: convert with humantime to RFC 3339.
    let s = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
    // 2024-01-01T00:00:00Z -> 20240101T000000
    s.replace(['-', ':'], "").trim_end_matches('Z').to_string()
}

/// The corpus folder shipped beside the repository, when present.
pub fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "NOTE: corpus folder {} is absent: this corpus test checked nothing",
            p.display()
        );
        None
    }
}

/// Which store a watcher or alert test runs against. Those tests run once per backend
/// ([`both_backends!`]); the few about SQLite files themselves stay SQLite-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One project's state: `state/vg.sqlite` in the project folder, or a database of its
/// own on the tests' PostgreSQL server (`tests/cli/pg.rs`).
pub enum State {
    Sqlite,
    Postgres(Box<PgDb>),
}

/// A test's PostgreSQL database: its URL, and one connection kept for the test's
/// direct reads (a test that polls the state must not cost the server a backend per
/// look).
pub struct PgDb {
    url: String,
    client: std::cell::RefCell<Option<postgres::Client>>,
}

impl Backend {
    /// A fresh state for one project (a new database for PostgreSQL, so that two
    /// projects in one test never share one).
    pub fn fresh_state(self) -> State {
        match self {
            Backend::Sqlite => State::Sqlite,
            Backend::Postgres => State::postgres(crate::pg::database()),
        }
    }
}

/// One test per backend: `both_backends!(name);` beside `fn name(b: Backend)` makes the
/// tests `name::sqlite` and `name::postgres`.
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::harness::Backend::Sqlite)
            }

            #[test]
            fn postgres() {
                super::$name($crate::harness::Backend::Postgres)
            }
        }
    };
}
pub(crate) use both_backends;

/// One row of [`State::query`]: each column as text (integers in decimal), NULL as
/// `None`.
pub type Row = Vec<Option<String>>;

impl State {
    /// The PostgreSQL database at `url`.
    pub fn postgres(url: String) -> State {
        State::Postgres(Box::new(PgDb {
            url,
            client: Default::default(),
        }))
    }

    /// What `[watch] state` says for it.
    pub fn value(&self) -> &str {
        match self {
            State::Sqlite => "state/vg.sqlite",
            State::Postgres(db) => &db.url,
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, State::Sqlite)
    }

    /// Whether a watcher has made the state yet (the SQLite file; PostgreSQL's
    /// `events` table), without making it.
    pub fn exists(&self, p: &Project) -> bool {
        match self {
            State::Sqlite => p.path(self.value()).exists(),
            State::Postgres(_) => {
                self.query(p, "SELECT to_regclass('public.events') IS NOT NULL")[0][0].as_deref()
                    == Some("t")
            }
        }
    }

    /// The rows `sql` returns, read directly from the state (SQLite: the file must
    /// exist; it is never created here).
    pub fn query(&self, p: &Project, sql: &str) -> Vec<Row> {
        match self {
            State::Sqlite => {
                let conn = self.sqlite(p);
                let mut st = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let n = st.column_count();
                st.query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => None,
                                rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                                rusqlite::types::ValueRef::Real(v) => Some(v.to_string()),
                                rusqlite::types::ValueRef::Text(t)
                                | rusqlite::types::ValueRef::Blob(t) => {
                                    Some(String::from_utf8_lossy(t).into_owned())
                                }
                            })
                        })
                        .collect()
                })
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .map(|r| r.unwrap_or_else(|e| panic!("{sql}: {e}")))
                .collect()
            }
            State::Postgres(db) => db
                .with(|c| c.simple_query(sql))
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .into_iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(String::from)).collect())
                    }
                    _ => None,
                })
                .collect(),
        }
    }

    /// The one text value `sql` returns.
    #[track_caller]
    pub fn query_one(&self, p: &Project, sql: &str) -> String {
        let rows = self.query(p, sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0][0].clone().unwrap_or_else(|| panic!("{sql}: NULL"))
    }

    /// Runs `sql` (one or more statements) on the state, in one transaction.
    pub fn execute(&self, p: &Project, sql: &str) {
        match self {
            State::Sqlite => self
                .sqlite(p)
                .execute_batch(&format!("BEGIN; {sql}; COMMIT;"))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            State::Postgres(db) => db
                .with(|c| c.batch_execute(&format!("BEGIN; {sql}; COMMIT;")))
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    fn sqlite(&self, p: &Project) -> rusqlite::Connection {
        let path = p.path(self.value());
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

impl PgDb {
    /// `f` on the kept connection, made on first use and made again once when it has
    /// gone bad.
    fn with<T>(
        &self,
        f: impl Fn(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        let connect = || {
            postgres::Client::connect(&self.url, postgres::NoTls)
                .unwrap_or_else(|e| panic!("{}: {e}", self.url))
        };
        let mut kept = self.client.borrow_mut();
        let client = kept.get_or_insert_with(connect);
        match f(client) {
            Err(_) if client.is_closed() => {
                *client = connect();
                f(client)
            }
            done => done,
        }
    }
}
