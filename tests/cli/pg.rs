//! PostgreSQL for the CLI tests: the private server of `tests/support/pg_server.rs`
//! (shared by the whole test binary, started on first use, stopped when it exits), and
//! tests of that server itself, so that a broken setup fails here by name rather than
//! as a puzzle in a watcher test.

#[path = "../support/pg_server.rs"]
mod pg_server;

pub use pg_server::{database, password_database, private_server, server, PASSWORD, PASSWORD_ROLE};

use std::process::Command;

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
