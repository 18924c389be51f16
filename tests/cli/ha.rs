//! Instances sharing one PostgreSQL state (README "Two machines"): two daemons on one
//! feed deliver each event once and survive each other's SIGKILL; `state migrate`
//! moves a SQLite state with history to PostgreSQL without re-alerting; PostgreSQL down
//! at the start or in the middle of a run loses nothing. The server is the suite's
//! private one (`pg.rs`).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::http::{HttpServer, Resp};
use crate::watch::rss;

/// Waits up to 60 s for `cond`, polling every 50 ms; panics naming `what`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A project whose two daemons share the PostgreSQL state `url` and alert through an
/// escalation program that logs `EVENT_ID DAEMON_PID` per delivery.
struct Pair {
    p: Project,
    srv: HttpServer,
}

impl Pair {
    fn new(url: &str) -> Pair {
        Pair::with_escalation(url, "")
    }

    /// `slow`: shell run by the escalation program before it logs (a `sleep`).
    fn with_escalation(url: &str, slow: &str) -> Pair {
        let srv = HttpServer::start();
        let p = Project::new();
        // One line per delivery: the delivering daemon's pid, then the title.
        let esc = p.write(
            "esc.sh",
            format!("#!/bin/sh\n{slow}\nexec 9>>deliveries.log\nflock 9\necho \"$PPID $VENDORGUARD_TITLE\" >&9\n"),
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(esc, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.write(
            "feeds.toml",
            format!(
                "[watch]\nstate = \"{url}\"\ninterval = \"1s\"\ntimeout = \"2s\"\nlease = \"4s\"\n\
                 [watch.backoff]\nattempts = 1\ninitial = \"10ms\"\nmax = \"1s\"\n\n\
                 [alerts]\nescalation = \"esc.sh\"\nescalation_timeout = \"3s\"\n\n\
                 [[vendor]]\nname = \"acme\"\n[[vendor.feed]]\nurl = \"{}\"\n",
                srv.url("/f")
            ),
        );
        Pair { p, srv }
    }

    fn daemon(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_vendorguard"))
            .args(["watch"])
            .current_dir(self.p.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// The feed listing `n` entries named `prefix1..prefixN` after the baseline.
    fn publish(&self, batches: &[&str]) {
        let mut items = vec![("BASE".to_string(), "baseline".to_string())];
        for prefix in batches {
            for i in 1..=10 {
                items.push((format!("{prefix}{i}"), format!("{prefix} advisory {i}")));
            }
        }
        let items: Vec<(&str, &str, &str)> = items
            .iter()
            .map(|(g, t)| (g.as_str(), t.as_str(), "body"))
            .collect();
        self.srv.route("/f", vec![Resp::ok(rss(&items))]);
    }

    /// Per event title delivered, the daemon pids that delivered it, in order.
    fn deliveries(&self) -> HashMap<String, Vec<u32>> {
        let log = std::fs::read_to_string(self.p.path("deliveries.log")).unwrap_or_default();
        let mut out: HashMap<String, Vec<u32>> = HashMap::new();
        for line in log.lines() {
            let (pid, title) = line.split_once(' ').unwrap();
            out.entry(title.to_string())
                .or_default()
                .push(pid.parse().unwrap());
        }
        out
    }

    /// The deliveries of the advisory-new events of `prefix1..prefix10`, by entry.
    fn batch(&self, prefix: &str) -> Vec<Vec<u32>> {
        let all = self.deliveries();
        (1..=10)
            .map(|i| {
                all.get(&format!("{prefix} advisory {i}"))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Polls of the feed so far.
    fn polls(&self) -> usize {
        self.srv.requests("/f").len()
    }

    /// Waits until every daemon alive has polled twice more: any duplicate delivery
    /// would have happened by then.
    fn settle(&self) {
        let now = self.polls();
        wait_for("two more passes", || self.polls() >= now + 4);
    }
}

/// A watcher project (`watch::W`, feed `/f`) on the PostgreSQL database `url`.
fn on_private(url: &str) -> crate::watch::W {
    let mut w = crate::watch::W::new(crate::harness::Backend::Sqlite, &[("/f", "")]);
    w.state = crate::harness::State::postgres(url.to_string());
    w.config(&[("/f", "")], "");
    w
}

/// A zip `name` holding `app/VERSION`, signed by `fpr` beside it (`name.asc`).
fn signed_zip(p: &Project, gpg: &Gpg, fpr: &str, name: &str) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n    z.writestr('app/VERSION', '1.0')\n",
            p.path(name).to_str().unwrap(),
        ])
        .output()
        .expect("python3 is installed");
    assert!(out.status.success());
    let asc = p.path(&format!("{name}.asc"));
    gpg.detach_sign(fpr, &p.path(name), &asc, "SHA256", None, true);
}

fn kill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn duplicates(batch: &[Vec<u32>]) -> usize {
    batch.iter().map(|d| d.len().saturating_sub(1)).sum()
}

#[test]
fn two_daemons_deliver_each_event_once_and_take_over_when_one_is_killed() {
    let pair = Pair::new(&crate::pg::database());
    pair.publish(&[]);
    let mut a = pair.daemon();
    let mut b = pair.daemon();
    let (a_pid, b_pid) = (a.id(), b.id());
    wait_for("the backlog event delivered", || {
        !pair.deliveries().is_empty()
    });

    // Both alive: ten new entries, each delivered exactly once.
    pair.publish(&["N"]);
    wait_for("ten deliveries", || {
        pair.batch("N").iter().all(|d| !d.is_empty())
    });
    pair.settle();
    let n = pair.batch("N");
    assert!(
        n.iter().all(|d| d.len() == 1),
        "each event exactly once with both alive: {n:?}"
    );
    assert!(n.iter().flatten().all(|pid| [a_pid, b_pid].contains(pid)));
    let status = pair.p.run(&["status"]);
    status.code(0);
    status.stdout_has("  last polled by ");
    assert_eq!(
        status.stdout.matches(" alive: last heartbeat ").count(),
        2,
        "{}",
        status.stdout
    );

    // SIGKILL A: B delivers the next ten, with at most one duplicate.
    kill(&mut a);
    pair.publish(&["N", "M"]);
    wait_for("B delivering the next ten", || {
        pair.batch("M").iter().all(|d| !d.is_empty())
    });
    pair.settle();
    let m = pair.batch("M");
    assert!(duplicates(&m) <= 1, "at most one duplicate: {m:?}");
    assert!(
        m.iter().all(|d| d.contains(&b_pid)),
        "B delivered every one: {m:?}"
    );
    assert_eq!(pair.batch("N"), n, "nothing earlier sent again");

    // Roles swapped: A comes back, B is killed, A delivers the next ten.
    let mut a2 = pair.daemon();
    let a2_pid = a2.id();
    wait_for("A back and polling", || {
        let r = pair.p.run(&["status", "--json"]);
        r.json()["instances"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["pid"] == a2_pid && i["alive"] == true)
    });
    kill(&mut b);
    pair.publish(&["N", "M", "K"]);
    wait_for("A delivering the last ten", || {
        pair.batch("K").iter().all(|d| !d.is_empty())
    });
    pair.settle();
    let k = pair.batch("K");
    assert!(duplicates(&k) <= 1, "at most one duplicate: {k:?}");
    assert!(k.iter().all(|d| d.contains(&a2_pid)), "{k:?}");
    assert_eq!(pair.batch("M"), m, "nothing earlier sent again");

    // status: the killed instances are gone (forgotten at once by a live instance of
    // the same host, which sees their processes are gone), A alive.
    wait_for("the killed instances no longer alive", || {
        let r = pair.p.run(&["status", "--json"]);
        let list = r.json()["instances"].as_array().unwrap().clone();
        let alive = |pid: u32| {
            list.iter()
                .find(|i| i["pid"] == pid)
                .map(|i| i["alive"] == true)
        };
        alive(a_pid) != Some(true) && alive(b_pid) != Some(true) && alive(a2_pid) == Some(true)
    });
    kill(&mut a2);
}

/// A SQLite state with events, deliveries and history, copied to PostgreSQL: the next
/// poll there raises and sends nothing, the history is intact; and copied back.
#[test]
fn state_migrate_moves_a_state_with_history_and_the_next_poll_raises_nothing() {
    let srv = HttpServer::start();
    let p = Project::new();
    let gpg = Gpg::new();
    let fpr = gpg.key("Acme <a@acme.example>", "ed25519", "0", None);
    p.pin_cert("acme", "acme.asc", &gpg.export(&fpr));
    let config = |state: &str| {
        format!(
            "[watch]\nstate = \"{state}\"\ntimeout = \"2s\"\n\n[[vendor]]\nname = \"acme\"\n\
             bundles = [\"acme-*\"]\n[[vendor.feed]]\nurl = \"{}\"\n",
            srv.url("/f")
        )
    };
    p.write("feeds.toml", config("state/vg.sqlite"));
    srv.route("/f", vec![Resp::ok(rss(&[("A", "a", "a")]))]);
    p.run(&["watch", "--once"]).code(0);
    srv.route(
        "/f",
        vec![Resp::ok(rss(&[("B", "b (high)", "b"), ("A", "a", "a")]))],
    );
    p.run(&["watch", "--once"])
        .code(0)
        .stdout_has("event advisory-new");
    // Two verdicts in the history.
    signed_zip(&p, &gpg, &fpr, "acme-1.0.zip");
    p.run(&["verify", "acme-1.0.zip"]).code(0);
    p.write("acme-1.1.zip", "unsigned");
    p.run(&["verify", "acme-1.1.zip"]).code(1);
    let before_events = p.run(&["events", "list", "--json"]).json();
    let before_history = p.run(&["history", "--json"]).json();
    assert_eq!(before_history.as_array().unwrap().len(), 2);

    let url = crate::pg::database();
    let r = p.run(&[
        "state",
        "migrate",
        "--from",
        "state/vg.sqlite",
        "--to",
        &url,
    ]);
    r.code(0).stderr_has(&format!(
        "to {}: 1 sources, 2 entries, 2 events, 2 deliveries, 2 history records (chain intact)",
        url.split('?').next().unwrap()
    ));
    // Into a state that is not empty: refused, nothing written.
    p.run(&[
        "state",
        "migrate",
        "--from",
        "state/vg.sqlite",
        "--to",
        &url,
    ])
    .code(2)
    .stderr_has("already holds a state");

    p.write("feeds.toml", config(&url));
    let r = p.run(&["watch", "--once"]);
    r.code(0).stderr_has("ok: acme feed ");
    assert!(!r.stdout.contains("event "), "re-alerted: {}", r.stdout);
    assert_eq!(p.run(&["events", "list", "--json"]).json(), before_events);
    p.run(&["history", "--check"]).code(0);
    assert_eq!(p.run(&["history", "--json"]).json(), before_history);

    // And back to a new SQLite file, equal again.
    p.run(&["state", "migrate", "--from", &url, "--to", "back.sqlite"])
        .code(0);
    p.write("feeds.toml", config("back.sqlite"));
    assert_eq!(p.run(&["events", "list", "--json"]).json(), before_events);
    assert_eq!(p.run(&["history", "--json"]).json(), before_history);
    let r = p.run(&["watch", "--once"]);
    r.code(0);
    assert!(!r.stdout.contains("event "), "re-alerted: {}", r.stdout);
}

#[test]
fn state_migrate_refuses_what_it_cannot_copy_whole() {
    let p = Project::new();
    p.run(&[
        "state",
        "migrate",
        "--from",
        "none.sqlite",
        "--to",
        "b.sqlite",
    ])
    .code(2)
    .stderr_has("--from none.sqlite: no such state");
    assert!(!p.path("b.sqlite").exists());
    p.run(&["state", "migrate", "--from", "a.sqlite", "--to", "a.sqlite"])
        .code(2)
        .stderr_has("name the same state");
    let r = p.run(&[
        "state",
        "migrate",
        "--from",
        "a.sqlite",
        "--to",
        "postgresql://vg:hunter2@127.0.0.1/db",
    ]);
    r.code(2).stderr_has("holds a password");
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    // Not quite a URL: refused, never taken for a file name, never repeated.
    for bad in [
        "postgresq://u:hunter2@127.0.0.1/db",
        " postgresql://u:hunter2@127.0.0.1/db",
        "postgresql:/u:hunter2@127.0.0.1/db",
    ] {
        let r = p.run(&["state", "migrate", "--from", bad, "--to", "x.sqlite"]);
        r.code(2).stderr_has("--from: neither a path nor a URL");
        assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    }
}

/// PostgreSQL down when a run starts: exit 2 naming the database, never the password.
#[test]
fn postgresql_down_at_the_start_is_exit_2_with_a_clear_message() {
    let server = crate::pg::private_server();
    let url = server.url(&server.create_database("postgres"));
    server.stop();
    let w = on_private(&url);
    let r = w.p.run_env(
        w.p.dir.path(),
        &["watch", "--once"],
        &[("PGPASSWORD", "hunter2")],
    );
    r.code(2)
        .stderr_has(url.split('?').next().unwrap())
        .stderr_has("cannot connect");
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    w.p.run(&["status"]).code(2).stderr_has("cannot connect");
}

/// PostgreSQL gone in the middle of a run: the run exits 1 and says so, nothing is
/// lost, and the next run completes the work (the new entry alerted exactly once).
#[test]
fn postgresql_down_mid_run_loses_nothing_and_the_next_run_completes() {
    let server = crate::pg::private_server();
    let url = server.url(&server.create_database("postgres"));
    let w = on_private(&url);
    w.srv.route("/f", vec![Resp::ok(rss(&[("A", "a", "a")]))]);
    w.once().code(0).stdout_has("event backlog-recorded");
    // The next answer is slow: the server goes away while the run waits for it.
    w.srv.route(
        "/f",
        vec![Resp::ok(rss(&[("B", "b", "b"), ("A", "a", "a")])).delay(Duration::from_secs(2))],
    );
    let asked = w.srv.requests("/f").len();
    let run = Command::new(env!("CARGO_BIN_EXE_vendorguard"))
        .args(["watch", "--once"])
        .current_dir(w.p.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the run's request", || w.srv.requests("/f").len() > asked);
    server.stop();
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the state failed during the run"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("advisory-new"));
    server.start();
    w.srv.route(
        "/f",
        vec![Resp::ok(rss(&[("B", "b", "b"), ("A", "a", "a")]))],
    );
    let r = w.once();
    r.code(0).stdout_has("event advisory-new unknown acme: b");
    let r = w.once();
    r.code(0);
    assert!(!r.stdout.contains("event "), "{}", r.stdout);
}

/// The daemon outlives a PostgreSQL restart: it says the state failed, connects again at
/// a later pass, and delivers what arrived meanwhile.
#[test]
fn the_daemon_reconnects_after_postgresql_restarts() {
    let server = crate::pg::private_server();
    let pair = Pair::new(&server.url(&server.create_database("postgres")));
    pair.publish(&[]);
    let log = pair.p.path("daemon.err");
    let d = Command::new(env!("CARGO_BIN_EXE_vendorguard"))
        .args(["watch"])
        .current_dir(pair.p.dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let told = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the backlog delivered", || !pair.deliveries().is_empty());
    server.stop();
    wait_for("the daemon telling the state failed", || {
        told().contains("the state failed during the run")
    });
    server.start();
    pair.publish(&["R"]);
    wait_for("the new entries delivered after the restart", || {
        pair.batch("R").iter().all(|d| !d.is_empty())
    });
    assert!(pair.batch("R").iter().all(|d| d.len() == 1));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(d.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let out = d.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", told());
    assert!(told().contains("vendorguard: stopping"), "{}", told());
}

/// `verify` and `unpack` on a PostgreSQL state: their verdicts chained in its history,
/// a rejected bundle's alert in its outbox.
#[test]
fn verify_and_unpack_record_history_and_alerts_in_postgresql() {
    let p = Project::new();
    let gpg = Gpg::new();
    let fpr = gpg.key("Acme <a@acme.example>", "ed25519", "0", None);
    p.pin_cert("acme", "acme.asc", &gpg.export(&fpr));
    let url = crate::pg::database();
    p.write(
        "feeds.toml",
        format!(
            "[watch]\nstate = \"{url}\"\n\n[alerts]\nescalation = \"esc.sh\"\n\n\
             [[vendor]]\nname = \"acme\"\nbundles = [\"acme-*\"]\n"
        ),
    );
    let esc = p.write(
        "esc.sh",
        "#!/bin/sh\necho \"$VENDORGUARD_KIND\" >> alerts.log\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(esc, std::fs::Permissions::from_mode(0o755)).unwrap();
    signed_zip(&p, &gpg, &fpr, "acme-1.0.zip");
    p.run(&["verify", "acme-1.0.zip"]).code(0);
    p.run(&["unpack", "acme-1.0.zip", "--into", "out"]).code(0);
    assert!(p.path("out/app/VERSION").exists());
    p.write("acme-1.1.zip", "unsigned");
    p.run(&["verify", "acme-1.1.zip"]).code(1);
    let history = p.run(&["history", "--json"]).json();
    let commands: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let bundle = r["bundle"].as_str().unwrap();
            (
                r["command"].as_str().unwrap(),
                bundle.rsplit('/').next().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        commands,
        [
            ("verify", "acme-1.0.zip"),
            ("unpack", "acme-1.0.zip"),
            ("verify", "acme-1.1.zip")
        ]
    );
    p.run(&["history", "--check"]).code(0);
    let events = p.run(&["events", "list", "--json"]).json();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "bundle-rejected" && e["vendor"] == "acme"),
        "{events}"
    );
    // Delivered under its claim, without a lock file: the database coordinates.
    assert_eq!(
        std::fs::read_to_string(p.path("alerts.log")).unwrap(),
        "bundle-rejected\n"
    );
}

/// A backlog that takes longer to send than a lease: each delivery renews its claim
/// when it is sent, so a second run started meanwhile takes only what the first has
/// not reached, and no event goes out twice.
#[test]
fn a_backlog_longer_than_the_lease_is_never_sent_twice() {
    let pair = Pair::with_escalation(&crate::pg::database(), "sleep 0.5");
    pair.publish(&[]);
    pair.p.run(&["watch", "--once"]).code(0);
    pair.publish(&["N", "M"]);
    let first = Command::new(env!("CARGO_BIN_EXE_vendorguard"))
        .args(["watch", "--once"])
        .current_dir(pair.p.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Past the first run's lease (4 s) while it is still sending.
    wait_for("nine deliveries by the first run", || {
        pair.deliveries().values().map(Vec::len).sum::<usize>() >= 10
    });
    pair.p.run(&["watch", "--once"]).code(0);
    let out = first.wait_with_output().unwrap();
    // 1 when it ended while the second run still sent what it had taken over.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pair.p.run(&["watch", "--once"]).code(0);
    let all: Vec<Vec<u32>> = [pair.batch("N"), pair.batch("M")].concat();
    assert!(
        all.iter().all(|d| d.len() == 1),
        "each of the 20 events exactly once: {all:?}"
    );
}

/// The state's password never reaches the escalation program: neither `PGPASSWORD` nor
/// the variable `password_env` names is passed on.
#[test]
fn the_escalation_program_does_not_inherit_the_state_password() {
    let p = Project::new();
    let url = crate::pg::database();
    p.write(
        "feeds.toml",
        format!(
            "[watch]\nstate = \"{url}\"\npassword_env = \"VG_STATE_PW\"\n\n\
             [alerts]\nescalation = \"esc.sh\"\n"
        ),
    );
    let esc = p.write("esc.sh", "#!/bin/sh\nenv > env.txt\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(esc, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.run_env(
        p.dir.path(),
        &["alert", "test"],
        &[("PGPASSWORD", "Secr3tPW"), ("VG_STATE_PW", "0therPW")],
    )
    .code(0);
    let env = std::fs::read_to_string(p.path("env.txt")).unwrap();
    assert!(env.contains("VENDORGUARD_KIND=test"), "{env}");
    assert!(
        !env.contains("Secr3tPW") && !env.contains("0therPW"),
        "{env}"
    );
}
