//! PostgreSQL for the CLI tests: the private server of `tests/support/pg_server.rs`
//! (shared by the whole test binary, started on first use, stopped when it exits); tests
//! of that server itself, so that a broken setup fails here by name rather than as a
//! puzzle in a watcher test; and the one connection path the trusted test role never
//! takes, a state behind a password. The watcher and alert tests themselves run on
//! both backends where they are (`both_backends!`).

#[path = "../support/pg_server.rs"]
mod pg_server;

pub use pg_server::{database, password_database, private_server, server, PASSWORD, PASSWORD_ROLE};

use std::process::Command;

use crate::harness::{Backend, State};
use crate::http::Resp;
use crate::watch::{rss, W};

/// psql as `user` over TCP, with `password` in PGPASSWORD when given.
fn psql_as(user: &str, db: &str, password: Option<&str>) -> std::process::Output {
    let psql = std::path::Path::new(&pg_server::bin_dir()).join("psql");
    let mut cmd = Command::new(psql);
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-w",
        "-h",
        "127.0.0.1",
        "-U",
        user,
        "-d",
        db,
    ])
    .arg("-p")
    .arg(server().port().to_string())
    .args(["-c", "select current_user"])
    .env_remove("PGPASSWORD");
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    cmd.output().expect("psql runs")
}

/// No server binaries is a loud failure naming what to install, never a skipped test.
#[test]
fn missing_server_binaries_fail_saying_what_to_install() {
    let empty = tempfile::tempdir().unwrap();
    let found = std::panic::catch_unwind(|| {
        pg_server::find_server_binaries(empty.path(), "no-such-pg_config")
    });
    let panic = found.expect_err("found server binaries in an empty folder");
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert_eq!(
        message,
        "PostgreSQL server binaries not found: install Debian's postgresql package (.ci/run does)"
    );
    // The newest version's folder is the one used.
    for version in ["9", "15", "13"] {
        let bin = empty.path().join(version).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("initdb"), "").unwrap();
    }
    std::fs::create_dir_all(empty.path().join("17/bin")).unwrap();
    assert_eq!(
        pg_server::find_server_binaries(empty.path(), "no-such-pg_config"),
        empty.path().join("15/bin")
    );
}

#[test]
fn a_fresh_database_is_empty_and_ours() {
    let url = database();
    let db = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    assert!(url.starts_with("postgresql://postgres@127.0.0.1:"), "{url}");
    assert!(url.ends_with("?sslmode=disable"), "{url}");
    let tables = server().psql(
        db,
        "select count(*) from pg_tables where schemaname = 'public'",
    );
    assert_eq!(tables.trim(), "0");
    assert_ne!(database(), url, "each call makes a new database");
}

#[test]
fn the_password_role_needs_its_password() {
    let url = password_database();
    let db = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    assert!(
        url.starts_with(&format!("postgresql://{PASSWORD_ROLE}@")),
        "{url}"
    );
    let without = psql_as(PASSWORD_ROLE, db, None);
    assert!(!without.status.success(), "connected without a password");
    let wrong = psql_as(PASSWORD_ROLE, db, Some("not-it"));
    assert!(!wrong.status.success(), "connected with a wrong password");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let with = psql_as(PASSWORD_ROLE, db, Some(PASSWORD));
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&with.stdout).trim(), PASSWORD_ROLE);
}

#[test]
fn a_private_server_stops_and_starts_again() {
    let private = private_server();
    assert_ne!(private.port(), server().port());
    let db = private.create_database("postgres");
    private.psql(&db, "create table t (x int); insert into t values (7)");
    private.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", private.port())).is_err(),
        "still listening after stop"
    );
    private.start();
    assert_eq!(private.psql(&db, "select x from t").trim(), "7");
}

/// The password of a PostgreSQL state comes from PGPASSWORD, or from the variable
/// `[watch] password_env` names (and then only from it); a missing or wrong one is exit
/// 2 naming the state, and no password is ever printed.
#[test]
fn a_state_behind_a_password_opens_with_pgpassword_or_password_env() {
    let mut w = W::new(Backend::Postgres, &[("/f", "")]);
    w.state = State::postgres(password_database());
    w.config(&[("/f", "")], "");
    w.srv.route("/f", vec![Resp::ok(rss(&[("A", "a", "a")]))]);
    let shown = w.state.value().split('?').next().unwrap().to_string();
    let run = |env: &[(&str, &str)]| w.p.run_env(w.p.dir.path(), &["watch", "--once"], env);
    for env in [&[][..], &[("PGPASSWORD", "not-it")][..]] {
        let r = run(env);
        r.code(2).stderr_has(&shown);
        assert!(
            !r.stderr.contains("not-it") && !r.stdout.contains("not-it"),
            "{}",
            r.stderr
        );
    }
    let r = run(&[("PGPASSWORD", PASSWORD)]);
    r.code(0).stdout_has("event backlog-recorded");
    assert!(!r.stderr.contains(PASSWORD) && !r.stdout.contains(PASSWORD));
    let cfg = std::fs::read_to_string(w.p.path("feeds.toml")).unwrap();
    w.p.write(
        "feeds.toml",
        cfg.replacen("[watch]\n", "[watch]\npassword_env = \"VG_STATE_PW\"\n", 1),
    );
    run(&[("PGPASSWORD", PASSWORD)]).code(2).stderr_has(&shown);
    run(&[("VG_STATE_PW", PASSWORD)]).code(0);
}
