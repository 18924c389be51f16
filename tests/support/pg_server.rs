//! A private PostgreSQL server for the tests: Debian's server binaries, `initdb` into a
//! fresh temporary folder, listening on 127.0.0.1 only, on a free port, with its socket
//! in that folder. One server is shared by the whole test process (started on first use);
//! [`private_server`] gives a test its own, to stop and start.
//!
//! Self-contained (std only) because it is included with `#[path]` by both the
//! integration tests (`tests/cli/pg.rs`) and the PostgreSQL store's unit tests. A test
//! process has no teardown hook, so every server gets a watchdog shell that stops it
//! and removes its folder once the test process has exited, even after a panic or a
//! kill. When no server binaries are installed, or the server does not come up, the
//! caller panics saying so: a PostgreSQL test never passes without PostgreSQL.
//!
//! Authentication: `postgres` (the superuser) is trusted over 127.0.0.1, which is all
//! the bulk of the suite needs; the role [`PASSWORD_ROLE`] must give [`PASSWORD`]
//! (SCRAM-SHA-256), for the tests of the password path.
#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The role whose connections need a password (SCRAM-SHA-256).
pub const PASSWORD_ROLE: &str = "vg_pw";
/// Its password.
pub const PASSWORD: &str = "vg-pw-Secret-7";

/// How long `pg_ctl` waits for the server to accept connections, in seconds.
const START_TIMEOUT_SECS: &str = "60";

static SHARED: OnceLock<PgServer> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);
static NEXT_SERVER: AtomicU32 = AtomicU32::new(0);

/// The server the whole test process shares, started on first use.
pub fn server() -> &'static PgServer {
    SHARED.get_or_init(PgServer::start_new)
}

/// A fresh, empty database on the shared server, owned by `postgres`; its URL
/// (`postgresql://postgres@127.0.0.1:PORT/vg_N?sslmode=disable`).
pub fn database() -> String {
    let server = server();
    let name = server.create_database("postgres");
    server.url(&name)
}

/// A fresh, empty database on the shared server owned by [`PASSWORD_ROLE`]; its URL
/// names that role, so connecting needs [`PASSWORD`].
pub fn password_database() -> String {
    let server = server();
    let name = server.create_database(PASSWORD_ROLE);
    server.url_as(PASSWORD_ROLE, &name)
}

/// The folder of the server binaries in use (`initdb`, `pg_ctl`, `psql`).
pub fn bin_dir() -> PathBuf {
    server_binaries()
}

/// A server of the caller's own, for tests that stop and start it. Dropped: stopped
/// and its folder removed.
pub fn private_server() -> PgServer {
    PgServer::start_new()
}

/// One PostgreSQL server in a temporary folder.
pub struct PgServer {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Run its programs as the `postgres` user (we are root, and initdb refuses root).
    as_postgres: bool,
}

impl PgServer {
    fn start_new() -> PgServer {
        let bin = server_binaries();
        let as_postgres = running_as_root();
        let root = std::env::temp_dir().join(format!(
            "vg-pg-{}-{}-{}",
            std::process::id(),
            NEXT_SERVER.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        fs::create_dir(&root).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL test server: cannot create {}: {e}",
                root.display()
            )
        });
        let mut server = PgServer {
            root,
            bin,
            port: 0,
            as_postgres,
        };
        server.spawn_watchdog();
        if as_postgres {
            let out = Command::new("chown")
                .arg("postgres:")
                .arg(&server.root)
                .output()
                .expect("chown runs");
            assert!(
                out.status.success(),
                "PostgreSQL test server: cannot give {} to the postgres user: {}",
                server.root.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        server.initdb();
        server.start_on_free_port();
        server.psql(
            "postgres",
            &format!("CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'"),
        );
        server
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` for `postgres`.
    pub fn url(&self, db: &str) -> String {
        self.url_as("postgres", db)
    }

    /// The URL of database `db` for `user`.
    pub fn url_as(&self, user: &str, db: &str) -> String {
        format!(
            "postgresql://{user}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Creates a fresh database owned by `owner`; its name.
    pub fn create_database(&self, owner: &str) -> String {
        let name = format!("vg_{}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {owner}"));
        name
    }

    /// Runs `sql` as `postgres` on database `db` over TCP; its output (unaligned, tuples
    /// only, fields separated by `|`). Panics, with psql's message, when it fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql on {db} failed for {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server (fast shutdown: sessions are ended, nothing is lost) and waits
    /// until it is down.
    pub fn stop(&self) {
        let out = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", START_TIMEOUT_SECS]);
        assert!(
            out.status.success(),
            "PostgreSQL test server: pg_ctl stop failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server again on its port and waits until it accepts connections.
    pub fn start(&self) {
        if let Err(log) = self.try_start() {
            panic!(
                "PostgreSQL test server did not start again on 127.0.0.1:{}; its log:\n{log}",
                self.port
            );
        }
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// A command running `program` from the server binaries, as `postgres` when we are
    /// root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(args)
            .output()
            .expect("pg_ctl runs")
    }

    fn initdb(&self) {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"])
            .arg("--no-sync")
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "PostgreSQL test server: initdb failed in {}: {}{}",
            self.data().display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // First match wins: the password role needs SCRAM, everyone else is trusted,
        // and only over 127.0.0.1 (and the socket in our own folder).
        let hba = format!(
            "local all all trust\n\
             host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 trust\n"
        );
        let conf = format!(
            "\n# vendorguard's tests\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             password_encryption = 'scram-sha-256'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 200\n",
            self.root.display()
        );
        let data = self.data();
        let mut postgresql_conf =
            fs::read_to_string(data.join("postgresql.conf")).expect("initdb wrote postgresql.conf");
        postgresql_conf.push_str(&conf);
        // Root writes the files; the server reads them as `postgres` (they are 0600
        // from initdb and keep their owner when rewritten in place).
        fs::write(data.join("postgresql.conf"), postgresql_conf).expect("postgresql.conf written");
        fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf written");
    }

    /// Starts on a free port: one picked by binding 127.0.0.1:0, another when something
    /// took it in between.
    fn start_on_free_port(&mut self) {
        let mut last = String::new();
        for _ in 0..5 {
            self.port = free_port();
            match self.try_start() {
                Ok(()) => return,
                Err(log) if log.contains("could not bind") || log.contains("already in use") => {
                    last = log;
                }
                Err(log) => panic!(
                    "PostgreSQL test server did not start in {}; its log:\n{log}",
                    self.root.display()
                ),
            }
        }
        panic!("PostgreSQL test server found no free port in five tries; its log:\n{last}");
    }

    /// `pg_ctl start -w`: returns once the server accepts connections (pg_ctl polls it,
    /// up to [`START_TIMEOUT_SECS`]), then checks that it answers over TCP; else the
    /// server's log since this attempt.
    fn try_start(&self) -> Result<(), String> {
        let log = self.log();
        let before = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", START_TIMEOUT_SECS])
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .arg("start")
            .output()
            .expect("pg_ctl runs");
        let since = || {
            let all = fs::read(&log).unwrap_or_default();
            let from = usize::try_from(before).unwrap_or(0).min(all.len());
            format!(
                "{}\n(pg_ctl: {}{})",
                String::from_utf8_lossy(&all[from..]),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        if !out.status.success() {
            return Err(since());
        }
        let ready = Command::new(self.bin.join("pg_isready"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-t",
                "10",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .output()
            .expect("pg_isready runs");
        if !ready.status.success() {
            return Err(since());
        }
        Ok(())
    }

    /// A detached shell that waits for the test process to exit, then stops the server
    /// at once and removes its folder. Started before `initdb`, so that nothing of ours
    /// outlives the tests whatever happens after this point. Never waited for: it ends
    /// only after the test process has, so it cannot become a zombie of ours.
    #[allow(clippy::zombie_processes)]
    fn spawn_watchdog(&self) {
        let stop = if self.as_postgres {
            "runuser -u postgres -- \"$3/pg_ctl\" -D \"$2/data\" stop -m immediate"
        } else {
            "\"$3/pg_ctl\" -D \"$2/data\" stop -m immediate"
        };
        let script = format!(
            "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; \
             if [ -f \"$2/data/postmaster.pid\" ]; then {stop}; fi; \
             for _ in 1 2 3 4 5; do rm -rf \"$2\" 2>/dev/null && break; sleep 1; done"
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("vg-pg-watchdog")
            .arg(std::process::id().to_string())
            .arg(&self.root)
            .arg(&self.bin)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the PostgreSQL test server's watchdog starts");
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        }
        // The server's last files may still be going away: a few tries.
        for _ in 0..5 {
            if fs::remove_dir_all(&self.root).is_ok() || !self.root.exists() {
                break;
            }
        }
    }
}

/// The newest `/usr/lib/postgresql/*/bin`, else `pg_config --bindir`; it must hold
/// `initdb`.
fn server_binaries() -> PathBuf {
    find_server_binaries(std::path::Path::new("/usr/lib/postgresql"), "pg_config")
}

/// The newest `<versions>/*/bin`, else `<pg_config> --bindir`, holding `initdb`; panics
/// saying what to install when there is none.
pub fn find_server_binaries(versions: &std::path::Path, pg_config: &str) -> PathBuf {
    let newest = fs::read_dir(versions)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin);
    let from_pg_config = || {
        let out = Command::new(pg_config).arg("--bindir").output().ok()?;
        let bin = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
        bin.join("initdb").is_file().then_some(bin)
    };
    newest.or_else(from_pg_config).unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found: install Debian's postgresql package \
             (.ci/run does)"
        )
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}
