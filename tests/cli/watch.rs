//! `watch --once`, `status` and the daemon against a real HTTP server on 127.0.0.1 and
//! real state: each test once on SQLite and once on PostgreSQL (`both_backends!`), but
//! for those about SQLite files themselves.

use std::time::Duration;

use crate::harness::*;
use crate::http::{HttpServer, Resp};

/// A project whose feeds.toml points vendor `acme` at the test server, with fast
/// retries, and no alert channel (events go to stdout).
pub(crate) struct W {
    pub(crate) p: Project,
    pub(crate) srv: HttpServer,
    pub(crate) state: State,
}

impl W {
    pub(crate) fn new(b: Backend, feeds: &[(&str, &str)]) -> W {
        let srv = HttpServer::start();
        let p = Project::new();
        let w = W {
            p,
            srv,
            state: b.fresh_state(),
        };
        w.config(feeds, "");
        w
    }

    /// The `[watch]` table: the state, short timeouts and fast retries.
    pub(crate) fn watch_table(&self) -> String {
        format!(
            "[watch]\nstate = \"{}\"\ntimeout = \"2s\"\nmax_body = \"1MiB\"\n\
             [watch.backoff]\nattempts = 3\ninitial = \"10ms\"\nmax = \"2s\"\njitter = \"none\"\n\n",
            self.state.value()
        )
    }

    /// `feeds`: (path, format) pairs; `extra` goes into the vendor table.
    pub(crate) fn config(&self, feeds: &[(&str, &str)], extra: &str) {
        let mut s = self.watch_table();
        s.push_str(&format!("[[vendor]]\nname = \"acme\"\n{extra}\n"));
        for (path, format) in feeds {
            s.push_str(&format!(
                "[[vendor.feed]]\nurl = \"{}\"\n",
                self.srv.url(path)
            ));
            if !format.is_empty() {
                s.push_str(&format!("format = \"{format}\"\n"));
            }
        }
        self.p.write("feeds.toml", s);
    }

    pub(crate) fn once(&self) -> Run {
        self.p.run(&["watch", "--once"])
    }

    /// The first stored event of `kind`; panics when there is none.
    pub(crate) fn event(&self, kind: &str) -> serde_json::Value {
        self.events()
            .into_iter()
            .find(|(k, _)| k == kind)
            .unwrap_or_else(|| panic!("no {kind} event stored"))
            .1
    }

    pub(crate) fn events(&self) -> Vec<(String, serde_json::Value)> {
        self.state
            .query(&self.p, "SELECT kind, json FROM events ORDER BY seq")
            .into_iter()
            .map(|r| {
                let [Some(k), Some(j)] = &r[..] else {
                    panic!("an event without kind or JSON: {r:?}")
                };
                (k.clone(), serde_json::from_str(j).unwrap())
            })
            .collect()
    }
}

pub(crate) fn rss(items: &[(&str, &str, &str)]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Acme security</title>",
    );
    for (guid, title, body) in items {
        s.push_str(&format!(
            "<item><title>{title}</title><link>https://acme.example/{guid}</link><guid>{guid}</guid><description>{body}</description></item>"
        ));
    }
    s.push_str("</channel></rss>");
    s
}

both_backends!(first_poll_records_the_backlog_then_new_entries_alert_once);
fn first_poll_records_the_backlog_then_new_entries_alert_once(b: Backend) {
    let w = W::new(b, &[("/feed.rss", "")]);
    w.srv.route(
        "/feed.rss",
        vec![Resp::ok(rss(&[
            ("ASA-1", "First", "a"),
            ("ASA-2", "Second", "b"),
        ]))],
    );
    let r = w.once();
    r.code(0)
        .stdout_has("event backlog-recorded info acme: 2 advisories already published");
    r.stderr_has("ok: acme feed ");
    assert_eq!(w.events().len(), 1);

    w.srv.route(
        "/feed.rss",
        vec![Resp::ok(rss(&[
            ("ASA-3", "Third (high): fix", "c"),
            ("ASA-1", "First", "a"),
            ("ASA-2", "Second", "b"),
        ]))],
    );
    let r = w.once();
    r.code(0)
        .stdout_has("event advisory-new high acme: Third (high): fix https://acme.example/ASA-3");
    // Same feed again: nothing new, nothing printed.
    let r = w.once();
    r.code(0);
    assert!(!r.stdout.contains("event "), "{}", r.stdout);
    assert_eq!(w.events().len(), 2);
}

both_backends!(a_nul_in_feed_text_alerts_once_and_stops_nothing);
/// A NUL in a feed's text (which PostgreSQL's text cannot hold) is stored as U+FFFD on
/// both backends: the entry alerts once, and the vendor's other feed is recorded too.
fn a_nul_in_feed_text_alerts_once_and_stops_nothing(b: Backend) {
    let w = W::new(b, &[("/a.json", ""), ("/b.rss", "")]);
    let feed = |items: &str| {
        format!(
            "{{\"version\": \"https://jsonfeed.org/version/1.1\", \"title\": \"t\", \"items\": [{items}]}}"
        )
    };
    let base =
        "{\"id\": \"base\", \"url\": \"https://acme.example/base\", \"content_text\": \"x\"}";
    w.srv.route("/a.json", vec![Resp::ok(feed(base))]);
    w.srv
        .route("/b.rss", vec![Resp::ok(rss(&[("B1", "b1", "b")]))]);
    w.once().code(0);
    let evil =
        "{\"id\": \"evil\\u0000id\", \"title\": \"nul \\u0000 title'); DROP TABLE events;--\", \
                \"url\": \"https://acme.example/e\\u0000\", \"content_text\": \"y\\u0000\"}";
    w.srv
        .route("/a.json", vec![Resp::ok(feed(&format!("{evil}, {base}")))]);
    w.srv.route(
        "/b.rss",
        vec![Resp::ok(rss(&[("B2", "b2", "b"), ("B1", "b1", "b")]))],
    );
    let r = w.once();
    r.code(0)
        .stdout_has("event advisory-new unknown acme: nul \u{fffd} title'); DROP TABLE events;--")
        .stdout_has("event advisory-new unknown acme: b2");
    let r = w.once();
    r.code(0);
    assert!(!r.stdout.contains("event "), "alerted again: {}", r.stdout);
    assert_eq!(w.events().len(), 4, "two backlogs and two new entries");
}

both_backends!(title_edits_are_not_new_and_body_edits_are_updates);
fn title_edits_are_not_new_and_body_edits_are_updates(b: Backend) {
    let w = W::new(b, &[("/f", "")]);
    w.srv
        .route("/f", vec![Resp::ok(rss(&[("A", "Title", "body")]))]);
    w.once().code(0);
    w.srv
        .route("/f", vec![Resp::ok(rss(&[("A", "Edited title", "body")]))]);
    let r = w.once();
    r.code(0);
    assert!(!r.stdout.contains("event "), "{}", r.stdout);
    w.srv.route(
        "/f",
        vec![Resp::ok(rss(&[(
            "A",
            "Edited title",
            "new body: fixed version 2.1",
        )]))],
    );
    w.once().code(0).stdout_has("event advisory-updated");
}

both_backends!(entries_without_ids_are_keyed_by_link);
fn entries_without_ids_are_keyed_by_link(b: Backend) {
    let w = W::new(b, &[("/f", "")]);
    let feed = |title: &str| {
        format!(
        "<rss version=\"2.0\"><channel><title>t</title><item><title>{title}</title><link>https://acme.example/a</link></item></channel></rss>"
    )
    };
    w.srv.route("/f", vec![Resp::ok(feed("One"))]);
    w.once().code(0);
    w.srv.route("/f", vec![Resp::ok(feed("One, retitled"))]);
    let r = w.once();
    r.code(0);
    assert!(!r.stdout.contains("event "), "{}", r.stdout);
}

both_backends!(etag_and_last_modified_round_trip_and_304_is_success);
fn etag_and_last_modified_round_trip_and_304_is_success(b: Backend) {
    let w = W::new(b, &[("/e", ""), ("/l", "")]);
    let body = rss(&[("A", "a", "a")]);
    w.srv.route(
        "/e",
        vec![Resp::ok(body.clone()).header("ETag", "W/\"v1-weird \\\" etag\"")],
    );
    w.srv.route(
        "/l",
        vec![Resp::ok(body).header("Last-Modified", "Tue, 01 Sep 2026 10:00:00 GMT")],
    );
    w.once().code(0);
    w.once().code(0).stderr_has("not modified");
    let e = w.srv.requests("/e");
    assert_eq!(e.len(), 2);
    assert_eq!(
        e[1].headers.get("if-none-match").map(String::as_str),
        Some("W/\"v1-weird \\\" etag\"")
    );
    let l = w.srv.requests("/l");
    assert_eq!(
        l[1].headers.get("if-modified-since").map(String::as_str),
        Some("Tue, 01 Sep 2026 10:00:00 GMT")
    );
    assert!(e[0]
        .headers
        .get("user-agent")
        .unwrap()
        .starts_with("vendorguard"));
}

both_backends!(server_errors_are_retried_and_429_honours_retry_after);
fn server_errors_are_retried_and_429_honours_retry_after(b: Backend) {
    let w = W::new(b, &[("/flaky", ""), ("/busy", "")]);
    let ok = Resp::ok(rss(&[("A", "a", "a")]));
    w.srv.route(
        "/flaky",
        vec![Resp::status(500), Resp::status(503), ok.clone()],
    );
    w.srv.route(
        "/busy",
        vec![Resp::status(429).header("Retry-After", "1"), ok],
    );
    let start = std::time::Instant::now();
    w.once().code(0);
    assert_eq!(w.srv.requests("/flaky").len(), 3);
    assert_eq!(w.srv.requests("/busy").len(), 2);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
}

both_backends!(each_failure_is_named_and_degrades_without_stopping_others);
fn each_failure_is_named_and_degrades_without_stopping_others(b: Backend) {
    let w = W::new(
        b,
        &[
            ("/good", ""),
            ("/slow", ""),
            ("/loop", ""),
            ("/big", ""),
            ("/bad-xml", ""),
            ("/html", ""),
            ("/gone", ""),
        ],
    );
    w.srv
        .route("/good", vec![Resp::ok(rss(&[("A", "a", "a")]))]);
    w.srv.route(
        "/slow",
        vec![Resp::ok(rss(&[])).delay(Duration::from_secs(3))],
    );
    w.srv
        .route("/loop", vec![Resp::status(302).header("Location", "/loop")]);
    w.srv.route("/big", vec![Resp::ok(vec![b'x'; 2 << 20])]);
    w.srv.route(
        "/bad-xml",
        vec![Resp::ok(
            "<rss version=\"2.0\"><channel><item><title>unclosed",
        )],
    );
    w.srv.route(
        "/html",
        vec![Resp::ok(
            "<!DOCTYPE html><html><body>Please log in</body></html>",
        )],
    );
    w.srv.route("/gone", vec![Resp::status(404)]);
    let r = w.once();
    r.code(1)
        .stderr_has("ok: acme feed http://127.0.0.1")
        .stderr_has("/slow: feed-timeout:")
        .stderr_has("redirect-refused:")
        .stderr_has("body-too-large:")
        .stderr_has("feed-malformed: not RSS, Atom or JSON Feed")
        .stderr_has("feed-malformed: the server sent an HTML page")
        .stderr_has("http-error:");
    // 404 is final: asked once. The slow one was retried to the attempt limit.
    assert_eq!(w.srv.requests("/gone").len(), 1);
    assert_eq!(w.srv.requests("/slow").len(), 3);
    let s = w.p.run(&["status", "--json"]);
    let v = s.json();
    let src = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["url"].as_str().unwrap().ends_with("/gone"))
        .unwrap()
        .clone();
    assert_eq!(src["failures_in_a_row"], 1);
    assert_eq!(src["last_error_code"], "http-error");
    assert_eq!(src["insecure_http"], true);
}

both_backends!(connection_refused_and_the_failing_then_recovered_cycle);
fn connection_refused_and_the_failing_then_recovered_cycle(b: Backend) {
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let w = W::new(b, &[]);
    let url = format!("http://127.0.0.1:{port}/feed");
    let write = |u: &str| {
        w.p.write(
            "feeds.toml",
            format!(
                "{}[[vendor]]\nname = \"acme\"\n[[vendor.feed]]\nurl = \"{u}\"\n",
                w.watch_table()
            ),
        )
    };
    write(&url);
    w.once().code(1).stderr_has("feed-unreachable:");
    w.once().code(1);
    let r = w.once();
    r.code(1)
        .stdout_has("event source-failing medium acme: acme feed has failed 3 polls in a row");
    // A fourth failure does not raise it again.
    let r = w.once();
    assert!(!r.stdout.contains("source-failing"), "{}", r.stdout);
    let _ = &w.srv;
}

both_backends!(source_recovered_follows_source_failing);
fn source_recovered_follows_source_failing(b: Backend) {
    let w = W::new(b, &[("/f", "")]);
    w.srv.route("/f", vec![Resp::status(500)]);
    for _ in 0..3 {
        w.once().code(1);
    }
    assert!(w.events().iter().any(|(k, _)| k == "source-failing"));
    w.srv.route("/f", vec![Resp::ok(rss(&[("A", "a", "a")]))]);
    w.once()
        .code(0)
        .stdout_has("event source-recovered info acme");
}

both_backends!(gzip_bomb_stops_at_max_body);
fn gzip_bomb_stops_at_max_body(b: Backend) {
    let Some(c) = corpus() else { return };
    let w = W::new(b, &[("/bomb", "")]);
    let bomb = std::fs::read(c.join("feeds/hostile/bomb-1GiB.gz")).unwrap();
    w.srv.route(
        "/bomb",
        vec![Resp::ok(bomb)
            .header("Content-Encoding", "gzip")
            .header("Content-Type", "application/rss+xml")],
    );
    let start = std::time::Instant::now();
    w.once().code(1).stderr_has("body-too-large");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the bomb was expanded far past the cap"
    );
}

both_backends!(cisa_kev_snapshots_yield_exactly_the_three_new_cves);
fn cisa_kev_snapshots_yield_exactly_the_three_new_cves(b: Backend) {
    let Some(c) = corpus() else { return };
    let dir = c.join("feeds/vendor/cisa-kev");
    let prev_gz = dir.join("known_exploited_vulnerabilities.PREVIOUS-c955f9c.json.gz");
    let current = dir.join("known_exploited_vulnerabilities.json");
    let previous = {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&prev_gz).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    let w = W::new(b, &[("/kev.json", "cisa-kev")]);
    w.p.write(
        "feeds.toml",
        std::fs::read_to_string(w.p.path("feeds.toml"))
            .unwrap()
            .replace("max_body = \"1MiB\"", "max_body = \"20MiB\""),
    );
    w.srv.route("/kev.json", vec![Resp::ok(previous)]);
    w.once().code(0).stdout_has("advisories already published");
    w.srv.route(
        "/kev.json",
        vec![Resp::ok(std::fs::read(&current).unwrap())],
    );
    let r = w.once();
    r.code(0);
    let mut cves: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("event advisory-new"))
        .filter_map(|l| l.split_whitespace().nth(4))
        .collect();
    cves.sort();
    assert_eq!(cves, ["CVE-2024-8068", "CVE-2024-8069", "CVE-2025-48384"]);
}

// SQLite only: the lock file beside an SQLite state (PostgreSQL states are shared by design).
#[test]
fn overlapping_runs_the_second_exits_75() {
    let b = Backend::Sqlite;
    let w = W::new(b, &[("/slow", "")]);
    w.srv.route(
        "/slow",
        vec![Resp::ok(rss(&[])).delay(Duration::from_millis(1500))],
    );
    let first = std::process::Command::new(env!("CARGO_BIN_EXE_vendorguard"))
        .args(["watch", "--once"])
        .current_dir(w.p.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run has reached the server (it holds the lock by then).
    while w.srv.requests("/slow").is_empty() {
        std::thread::yield_now();
    }
    w.once().code(75).stderr_has("another run holds the lock");
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

// SQLite only: a file that is not an SQLite database.
#[test]
fn bad_config_and_unreadable_state_exit_2() {
    let p = Project::new();
    p.write(
        "feeds.toml",
        "[watch]\nstate = \"s.sqlite\"\ninterval = \"sometimes\"\n",
    );
    p.run(&["watch", "--once"])
        .code(2)
        .stderr_has("watch.interval");
    p.write("feeds.toml", "[watch]\nstate = \"s.sqlite\"\n");
    p.write(
        "s.sqlite",
        "not a database at all, just some text that is long enough to look like a header",
    );
    p.run(&["watch", "--once"]).code(2).stderr_has("s.sqlite");
}

both_backends!(killed_at_random_points_loses_nothing_and_the_database_stays_sound);
fn killed_at_random_points_loses_nothing_and_the_database_stays_sound(b: Backend) {
    let w = W::new(b, &[("/a", ""), ("/b", "")]);
    // Each round adds one entry to each feed; SIGKILL lands at a different point.
    let mut items_a: Vec<(String, String, String)> = vec![("a0".into(), "a0".into(), "x".into())];
    let mut items_b: Vec<(String, String, String)> = vec![("b0".into(), "b0".into(), "x".into())];
    let feed = |items: &[(String, String, String)]| {
        let v: Vec<(&str, &str, &str)> = items
            .iter()
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
            .collect();
        rss(&v)
    };
    w.srv.route("/a", vec![Resp::ok(feed(&items_a))]);
    w.srv.route("/b", vec![Resp::ok(feed(&items_b))]);
    w.once().code(0);
    for round in 1..=12u64 {
        items_a.insert(0, (format!("a{round}"), format!("a{round}"), "x".into()));
        items_b.insert(0, (format!("b{round}"), format!("b{round}"), "x".into()));
        w.srv.route(
            "/a",
            vec![Resp::ok(feed(&items_a)).delay(Duration::from_millis(round * 3))],
        );
        w.srv.route("/b", vec![Resp::ok(feed(&items_b))]);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vendorguard"))
            .args(["watch", "--once"])
            .current_dir(w.p.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let spin = (round * 7919) % 40;
        for _ in 0..spin * 1000 {
            std::hint::spin_loop();
        }
        for _ in 0..round * 4 {
            std::thread::yield_now();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    // A clean run afterwards catches up on whatever the killed runs did not commit.
    w.once().code(0);
    let events = w.events();
    let mut keys: Vec<String> = events
        .iter()
        .filter(|(k, e)| k == "advisory-new" && e.get("backlog").is_none())
        .map(|(_, e)| e["entry_key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    let mut want: Vec<String> = (1..=12)
        .flat_map(|r| [format!("id:a{r}"), format!("id:b{r}")])
        .collect();
    want.sort();
    assert_eq!(keys, want, "every new entry is exactly one event");
    if w.state.is_sqlite() {
        assert_eq!(w.state.query_one(&w.p, "PRAGMA integrity_check"), "ok");
    }
}

both_backends!(json_summary_and_event_lines);
fn json_summary_and_event_lines(b: Backend) {
    let w = W::new(b, &[("/f", "")]);
    w.srv.route("/f", vec![Resp::ok(rss(&[("A", "a", "a")]))]);
    let r = w.p.run(&["watch", "--once", "--json"]);
    r.code(0);
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["kind"], "backlog-recorded");
    assert_eq!(lines[0]["vendor"], "acme");
    assert_eq!(
        lines.last().unwrap()["summary"]["sources"][0]["status"],
        "ok"
    );
    assert_eq!(lines.last().unwrap()["summary"]["pending_events"], 0);
}

/// Serves every file under `dir` at `prefix` + relative path, after `render`.
fn serve_tree(
    srv: &HttpServer,
    prefix: &str,
    dir: &std::path::Path,
    render: &dyn Fn(Vec<u8>) -> Vec<u8>,
) {
    fn walk(
        srv: &HttpServer,
        prefix: &str,
        root: &std::path::Path,
        d: &std::path::Path,
        render: &dyn Fn(Vec<u8>) -> Vec<u8>,
    ) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(srv, prefix, root, &p, render);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                srv.route(
                    &format!("{prefix}{rel}"),
                    vec![Resp::ok(render(std::fs::read(&p).unwrap()))],
                );
            }
        }
    }
    walk(srv, prefix, dir, dir, render);
}

/// gocsaf's template: `{{.URL}}` and the `{{if}}`/`{{end}}` lines for both hashes.
fn render_gocsaf(base: &str) -> impl Fn(Vec<u8>) -> Vec<u8> + '_ {
    move |b| {
        let t = String::from_utf8_lossy(&b).into_owned();
        if !t.contains("{{") {
            return b;
        }
        t.replace("{{.URL}}", base)
            .lines()
            .filter(|l| !l.trim_start().starts_with("{{"))
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    }
}

struct Csaf {
    w: W,
}

impl Csaf {
    /// The gocsaf `simple-rolie-provider` (or directory provider) served at /p/, its
    /// key pinned for vendor acme.
    fn new(b: Backend, provider: &str, pin_provider_key: bool) -> Option<Csaf> {
        let c = corpus()?;
        let dir = c.join("csaf/gocsaf-testdata").join(provider);
        let w = W::new(b, &[("/p/provider-metadata.json", "csaf")]);
        let base = w.srv.url("/p");
        serve_tree(&w.srv, "/p/", &dir, &render_gocsaf(&base));
        if pin_provider_key {
            w.p.pin_cert(
                "acme",
                "provider.asc",
                &std::fs::read(dir.join("openpgp/pubkey.asc")).unwrap(),
            );
        } else {
            let other = sq_cert("Someone else <x@example.org>", days_ago(10), None);
            w.p.pin_cert("acme", "other.asc", &armored(&other));
        }
        Some(Csaf { w })
    }
}

both_backends!(csaf_rolie_provider_good_advisory_is_verified_and_recorded);
fn csaf_rolie_provider_good_advisory_is_verified_and_recorded(b: Backend) {
    let Some(c) = Csaf::new(b, "simple-rolie-provider", true) else {
        return;
    };
    let r = c.w.once();
    r.code(0)
        .stdout_has("event backlog-recorded info acme: 1 advisories already published");
    assert!(
        !r.stdout.contains("rejected") && !r.stdout.contains("unexpected-signer"),
        "{}",
        r.stdout
    );
    // Nothing changed: nothing downloaded again, nothing new.
    let before =
        c.w.srv
            .requests("/p/white/avendor-advisory-0004.json")
            .len();
    c.w.once().code(0);
    assert_eq!(
        c.w.srv
            .requests("/p/white/avendor-advisory-0004.json")
            .len(),
        before
    );
}

both_backends!(csaf_directory_provider_with_changes_csv);
fn csaf_directory_provider_with_changes_csv(b: Backend) {
    let Some(c) = Csaf::new(b, "simple-directory-provider", true) else {
        return;
    };
    c.w.once()
        .code(0)
        .stdout_has("1 advisories already published");
    // Only what changes.csv lists is fetched.
    assert!(c
        .w
        .srv
        .requests("/p/white/avendor-advisory-0004-not-listed.json")
        .is_empty());
}

both_backends!(csaf_bad_hash_and_bad_signature_are_rejected_by_name);
fn csaf_bad_hash_and_bad_signature_are_rejected_by_name(b: Backend) {
    let Some(c) = Csaf::new(b, "simple-rolie-provider", true) else {
        return;
    };
    c.w.srv.route(
        "/p/white/avendor-advisory-0004.json.sha256",
        vec![Resp::ok(format!(
            "{}  avendor-advisory-0004.json\n",
            "0".repeat(64)
        ))],
    );
    // A rejected advisory degrades the run (exit 1) until it verifies.
    c.w.once().code(1).stdout_has("event bundle-rejected high acme: acme CSAF advisory avendor-advisory-0004.json rejected: avendor-advisory-0004.json.sha256 does not match");

    let Some(c) = Csaf::new(b, "simple-rolie-provider", true) else {
        return;
    };
    // Change the document and fix up its hashes: only the signature can tell.
    let corpus = corpus()
        .unwrap()
        .join("csaf/gocsaf-testdata/simple-rolie-provider/white/avendor-advisory-0004.json");
    let doc = std::fs::read_to_string(corpus)
        .unwrap()
        .replace("Test CSAF document", "Tampered CSAF document");
    use sha2::Digest as _;
    let h256: String = sha2::Sha256::digest(doc.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let h512: String = sha2::Sha512::digest(doc.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    c.w.srv
        .route("/p/white/avendor-advisory-0004.json", vec![Resp::ok(doc)]);
    c.w.srv.route(
        "/p/white/avendor-advisory-0004.json.sha256",
        vec![Resp::ok(format!("{h256}  avendor-advisory-0004.json"))],
    );
    c.w.srv.route(
        "/p/white/avendor-advisory-0004.json.sha512",
        vec![Resp::ok(format!("{h512}  avendor-advisory-0004.json"))],
    );
    c.w.once()
        .code(1)
        .stdout_has("rejected: signature bad-signature");

    let Some(c) = Csaf::new(b, "simple-rolie-provider", true) else {
        return;
    };
    c.w.srv.route(
        "/p/white/avendor-advisory-0004.json.asc",
        vec![Resp::status(404)],
    );
    c.w.once().code(1).stdout_has("rejected: no signature");
}

both_backends!(csaf_unpinned_provider_key_and_its_advisory_are_one_key_changed_incident);
/// Issue 14: the provider's unpinned key and the advisory it signed were two events;
/// now one `key-changed` incident names the key and the advisory held back.
fn csaf_unpinned_provider_key_and_its_advisory_are_one_key_changed_incident(b: Backend) {
    let Some(c) = Csaf::new(b, "simple-rolie-provider", false) else {
        return;
    };
    let r = c.w.once();
    r.code(1)
        .stdout_has("event key-changed high acme: acme's CSAF provider uses a new key A891 4CA2 F111 39C6 A69A  0018 FB3C D9B1 5DE6 1596 that is not pinned (no pinned key vouches for it); 1 advisory signed by it is held back until it is pinned: avendor-advisory-0004.json")
        .stdout_lacks("event unexpected-signer")
        .stderr_has("1 advisories with open problems (unpinned-signer 1)");
    assert_eq!(event_lines(&r, "key-changed").len(), 1, "{}", r.stdout);
}

both_backends!(csaf_without_any_pinned_key_is_a_failure_not_a_silent_skip);
fn csaf_without_any_pinned_key_is_a_failure_not_a_silent_skip(b: Backend) {
    let Some(c) = Csaf::new(b, "simple-rolie-provider", true) else {
        return;
    };
    std::fs::remove_dir_all(c.w.p.path("keyring")).unwrap();
    c.w.once().code(1).stderr_has("csaf-no-pinned-key");
}

both_backends!(csaf_cisa_ref_quirk_and_unknown_signer);
fn csaf_cisa_ref_quirk_and_unknown_signer(b: Backend) {
    let Some(corp) = corpus() else { return };
    let w = W::new(b, &[("/cisa/provider-metadata.json", "csaf")]);
    let it = corp.join("csaf/cisagov-CSAF/IT/white");
    let real = "https://raw.githubusercontent.com/cisagov/CSAF/develop/csaf_files/IT/white/";
    let local = w.srv.url("/cisa/it/");
    // Only the feed names the real host; the signed documents are served untouched.
    serve_tree(&w.srv, "/cisa/it/", &it, &|b| b);
    let feed = std::fs::read_to_string(it.join("cisa-csaf-it-feed-tlp-white.json"))
        .unwrap()
        .replace(real, &local);
    w.srv.route(
        "/cisa/it/cisa-csaf-it-feed-tlp-white.json",
        vec![Resp::ok(feed)],
    );
    w.srv.route(
        "/cisa/provider-metadata.json",
        vec![Resp::ok(format!(
            r#"{{"canonical_url": "{0}", "distributions": [{{"rolie": {{"feeds": [{{"url": "{1}", "tlp_label": "WHITE"}}]}}}}],
               "publisher": {{"namespace": "https://www.cisa.gov", "name": "CISA", "category": "coordinator"}},
               "public_openpgp_keys": [], "role": "csaf_trusted_provider", "metadata_version": "2.0"}}"#,
            w.srv.url("/cisa/provider-metadata.json"),
            w.srv.url("/cisa/it/cisa-csaf-it-feed-tlp-white.json")
        ))],
    );
    let other = sq_cert("Not CISA <x@example.org>", days_ago(10), None);
    w.p.pin_cert("acme", "other.asc", &armored(&other));
    let r = w.once();
    r.code(1);
    // Four advisories by one unknown key: one incident naming the four (issue 14: it
    // was three events one by one and a summary).
    assert_eq!(event_lines(&r, "key-changed").len(), 1, "{}", r.stdout);
    r.stdout_lacks("event unexpected-signer")
        .stdout_has("acme's CSAF provider uses a new key 144A ED0A 57BE 7D4A E835  D9D8 CAC5 AC4F 7416 4B17 that is not pinned (no pinned key vouches for it); 4 advisories signed by it are held back until it is pinned");
    let ev = w.event("key-changed");
    assert_eq!(
        ev["fingerprint"],
        "144AED0A57BE7D4AE835D9D8CAC5AC4F74164B17"
    );
    assert_eq!(ev["count"], "4");
    assert_eq!(ev["vouched"], "no");
}

both_backends!(key_url_changes_revocations_and_expiry);
fn key_url_changes_revocations_and_expiry(b: Backend) {
    let w = W::new(b, &[]);
    let pinned = sq_cert("Acme Release <r@acme.example>", days_ago(100), None);
    w.p.pin_cert("acme", "acme.asc", &armored(&pinned));
    w.config(&[], &format!("key_url = \"{}\"", w.srv.url("/key.asc")));
    w.srv.route("/key.asc", vec![Resp::ok(armored(&pinned))]);
    let r = w.once();
    r.code(0);
    assert!(!r.stdout.contains("event "), "{}", r.stdout);

    let stranger = sq_cert("Acme Release 2027 <r@acme.example>", days_ago(1), None);
    w.srv.route("/key.asc", vec![Resp::ok(armored(&stranger))]);
    let fpr = stranger.fingerprint().to_hex();
    w.once()
        .code(0)
        .stdout_has("event key-changed high acme:")
        .stdout_has(&format!("fingerprint {fpr}"));
    // Seen once, alerted once.
    let r = w.once();
    assert!(!r.stdout.contains("key-changed"), "{}", r.stdout);

    let revoked = sq_revoke(
        &pinned,
        sequoia_openpgp::types::ReasonForRevocation::KeyCompromised,
        days_ago(1),
    );
    w.srv.route("/key.asc", vec![Resp::ok(armored(&revoked))]);
    w.once()
        .code(0)
        .stdout_has("event key-revoked critical acme: acme revoked its pinned key");

    let expiring = sq_cert("Short <s@acme.example>", days_ago(5), Some(DAY * 25));
    w.p.pin_cert("acme", "short.asc", &armored(&expiring));
    w.srv.route("/key.asc", vec![Resp::ok(armored(&expiring))]);
    w.once()
        .code(0)
        .stdout_has("event key-expiring medium acme:");
    let r = w.once();
    assert!(
        !r.stdout.contains("key-expiring"),
        "once per key and threshold: {}",
        r.stdout
    );
}

both_backends!(daemon_polls_each_source_on_its_interval_and_stops_cleanly_on_sigterm);
fn daemon_polls_each_source_on_its_interval_and_stops_cleanly_on_sigterm(b: Backend) {
    let w = W::new(b, &[]);
    w.p.write(
        "feeds.toml",
        format!(
            "{}[[vendor]]\nname = \"acme\"\n[[vendor.feed]]\nurl = \"{}\"\ninterval = \"1s\"\n",
            w.watch_table(),
            w.srv.url("/f")
        ),
    );
    w.srv.route("/f", vec![Resp::ok(rss(&[("A", "a", "a")]))]);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_vendorguard"))
        .args(["watch"])
        .current_dir(w.p.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::yield_now();
        }
    };
    wait_for("the first poll", &|| !w.srv.requests("/f").is_empty());
    w.srv.route(
        "/f",
        vec![Resp::ok(rss(&[("B", "b", "b"), ("A", "a", "a")]))],
    );
    wait_for("the new entry's event", &|| {
        w.state.exists(&w.p)
            && w.events()
                .iter()
                .any(|(k, e)| k == "advisory-new" && e["entry_key"] == "id:B")
    });
    // A second run cannot start while the daemon holds the lock (SQLite's lock file:
    // runs share a PostgreSQL state by design).
    if w.state.is_sqlite() {
        w.once().code(75);
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("vendorguard: stopping"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("event advisory-new unknown acme: b"));
    if w.state.is_sqlite() {
        assert_eq!(w.state.query_one(&w.p, "PRAGMA integrity_check"), "ok");
    }
}

/// A CSAF directory provider made by the test: documents signed with real GnuPG.
pub(crate) struct OwnProvider {
    pub(crate) w: W,
    gpg: Gpg,
    fpr: String,
    rows: std::cell::RefCell<Vec<(String, String)>>,
    /// Who signs what `publish` publishes: one armored signature each, concatenated
    /// into the `.asc` (the provider's key alone unless a test says otherwise).
    signers: std::cell::RefCell<Vec<String>>,
    /// The metadata, and whether it and changes.csv carry an ETag (`tag_listing`).
    meta: String,
    tagged: std::cell::Cell<bool>,
}

impl OwnProvider {
    pub(crate) fn new(b: Backend) -> OwnProvider {
        OwnProvider::with_key_expiry(b, "0")
    }

    /// `expire` as GnuPG takes it: `0` for never, `20d`.
    fn with_key_expiry(b: Backend, expire: &str) -> OwnProvider {
        let w = W::new(b, &[("/prov/provider-metadata.json", "csaf")]);
        let gpg = Gpg::new();
        let fpr = gpg.key("Acme PSIRT <psirt@acme.example>", "ed25519", expire, None);
        w.p.pin_cert("acme", "psirt.asc", &gpg.export(&fpr));
        let meta = format!(
            r#"{{"canonical_url": "{0}", "distributions": [{{"directory_url": "{1}"}}],
               "publisher": {{"namespace": "https://acme.example", "name": "Acme", "category": "vendor"}},
               "public_openpgp_keys": [{{"fingerprint": "{fpr}", "url": "{0}"}}], "role": "csaf_trusted_provider"}}"#,
            w.srv.url("/prov/provider-metadata.json"),
            w.srv.url("/prov/white")
        );
        w.srv
            .route("/prov/provider-metadata.json", vec![Resp::ok(meta.clone())]);
        let p = OwnProvider {
            w,
            gpg,
            signers: std::cell::RefCell::new(vec![fpr.clone()]),
            fpr,
            rows: Default::default(),
            meta,
            tagged: Default::default(),
        };
        p.publish_changes();
        p
    }

    /// Publishes (or republishes) advisory `id` at `version` with a CVSS score.
    fn publish(&self, id: &str, version: &str, score: f64, date: &str) {
        let none = serde_json::Value::Null;
        self.publish_with(id, version, score, date, &none, &none);
    }

    /// `publish` with a `product_tree` and the vulnerability's `product_status` (each
    /// left out when null).
    pub(crate) fn publish_with(
        &self,
        id: &str,
        version: &str,
        score: f64,
        date: &str,
        product_tree: &serde_json::Value,
        product_status: &serde_json::Value,
    ) {
        let mut doc = serde_json::json!({
            "document": {
                "category": "csaf_security_advisory", "csaf_version": "2.0", "title": format!("{id} in acme agent"),
                "publisher": {"namespace": "https://acme.example", "name": "Acme", "category": "vendor"},
                "tracking": {"id": id, "version": version, "status": "final", "current_release_date": date},
            },
            "vulnerabilities": [{"scores": [{"cvss_v3": {"baseScore": score}}]}],
        });
        if !product_tree.is_null() {
            doc["product_tree"] = product_tree.clone();
        }
        if !product_status.is_null() {
            doc["vulnerabilities"][0]["product_status"] = product_status.clone();
        }
        let doc = doc.to_string();
        let name = format!("2026/{}.json", id.to_lowercase());
        let file = self.w.p.write(&format!("prov/{name}"), &doc);
        let mut asc = Vec::new();
        for signer in self.signers.borrow().iter() {
            let one = std::path::PathBuf::from(format!("{}.{signer}.asc", file.display()));
            self.gpg
                .detach_sign(signer, &file, &one, "SHA512", None, true);
            asc.extend(std::fs::read(&one).unwrap());
        }
        std::fs::write(format!("{}.asc", file.display()), asc).unwrap();
        use sha2::Digest as _;
        let h: String = sha2::Sha512::digest(doc.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.w
            .srv
            .route(&format!("/prov/white/{name}"), vec![Resp::ok(doc)]);
        let line = format!("{h}  {name}");
        self.w.srv.route(
            &format!("/prov/white/{name}.sha512"),
            vec![self.tag(Resp::ok(line.clone()), &line)],
        );
        let asc = std::fs::read_to_string(format!("{}.asc", file.display())).unwrap();
        self.w.srv.route(
            &format!("/prov/white/{name}.asc"),
            vec![self.tag(Resp::ok(asc.clone()), &asc)],
        );
        let mut rows = self.rows.borrow_mut();
        rows.retain(|(n, _)| *n != name);
        rows.push((name, date.to_string()));
        drop(rows);
        self.publish_changes();
    }

    fn publish_changes(&self) {
        let csv: String = self
            .rows
            .borrow()
            .iter()
            .rev()
            .map(|(n, d)| format!("\"{n}\",\"{d}\"\n"))
            .collect();
        let resp = self.tag(Resp::ok(csv.clone()), &csv);
        self.w.srv.route("/prov/white/changes.csv", vec![resp]);
    }

    /// From now on the metadata, changes.csv and the side files published carry an
    /// ETag (the metadata also a Last-Modified), so the server answers a conditional
    /// GET with 304.
    fn tag_listing(&self) {
        self.tagged.set(true);
        let meta = self
            .tag(Resp::ok(self.meta.clone()), &self.meta)
            .header("Last-Modified", "Sun, 01 Nov 2026 00:00:00 GMT");
        self.w.srv.route("/prov/provider-metadata.json", vec![meta]);
        self.publish_changes();
    }

    fn tag(&self, resp: Resp, body: &str) -> Resp {
        if !self.tagged.get() {
            return resp;
        }
        use sha2::Digest as _;
        let h = sha2::Sha256::digest(body.as_bytes());
        resp.header(
            "ETag",
            &format!("\"{:02x}{:02x}{:02x}{:02x}\"", h[0], h[1], h[2], h[3]),
        )
    }
}

both_backends!(csaf_new_advisories_and_tracking_version_updates);
fn csaf_new_advisories_and_tracking_version_updates(b: Backend) {
    let p = OwnProvider::new(b);
    p.publish("ACME-2026-001", "1", 5.3, "2026-11-01T00:00:00Z");
    p.w.once()
        .code(0)
        .stdout_has("1 advisories already published");
    p.publish("ACME-2026-002", "1", 9.8, "2026-11-20T00:00:00Z");
    let r = p.w.once();
    r.code(0)
        .stdout_has("event advisory-new critical acme: ACME-2026-002: ACME-2026-002 in acme agent");
    assert!(!r.stdout.contains("ACME-2026-001"), "{}", r.stdout);
    p.publish("ACME-2026-001", "2", 7.5, "2026-11-25T00:00:00Z");
    let r = p.w.once();
    r.code(0)
        .stdout_has("event advisory-updated high acme: ACME-2026-001");
    let ev = p.w.event("advisory-updated");
    assert_eq!(ev["advisory_id"], "https://acme.example#ACME-2026-001");
    assert_eq!(ev["tracking_version"], "2");
    // Nothing changed: nothing downloaded, nothing new.
    let before =
        p.w.srv
            .requests("/prov/white/2026/acme-2026-001.json")
            .len();
    let r = p.w.once();
    assert!(!r.stdout.contains("event "), "{}", r.stdout);
    assert_eq!(
        p.w.srv
            .requests("/prov/white/2026/acme-2026-001.json")
            .len(),
        before
    );
}

both_backends!(csaf_listing_is_fetched_conditionally_and_a_304_costs_nothing_more);
/// Issue 14: the provider's metadata and changes.csv are fetched with the validators
/// they were last sent with; when both answer 304 nothing else is fetched or parsed,
/// and a changed changes.csv is fetched whole again.
fn csaf_listing_is_fetched_conditionally_and_a_304_costs_nothing_more(b: Backend) {
    let p = OwnProvider::new(b);
    p.tag_listing();
    p.publish("ACME-2026-001", "1", 5.3, "2026-11-01T00:00:00Z");
    p.w.once().code(0);
    let meta = "/prov/provider-metadata.json";
    let csv = "/prov/white/changes.csv";
    let first = p.w.srv.requests(meta);
    assert!(!first[0].headers.contains_key("if-none-match"), "{first:?}");

    // Polled hourly, each poll also fetches the side files (hash file, signature) of
    // 1/24th of the verified advisories, at least one: here 2 more requests.
    let before = p.w.srv.request_count();
    p.w.once().code(0).stderr_has("not modified");
    assert_eq!(
        p.w.srv.request_count() - before,
        2 + 2,
        "one conditional GET each, and one advisory's side files"
    );
    let m = p.w.srv.requests(meta).pop().unwrap();
    assert!(m.headers["if-none-match"].starts_with('"'), "{m:?}");
    assert_eq!(
        m.headers["if-modified-since"],
        "Sun, 01 Nov 2026 00:00:00 GMT"
    );
    let c = p.w.srv.requests(csv).pop().unwrap();
    assert!(c.headers.contains_key("if-none-match"), "{c:?}");

    // A new advisory changes changes.csv: fetched whole, the advisory announced.
    p.publish("ACME-2026-002", "1", 9.8, "2026-11-20T00:00:00Z");
    p.w.once()
        .code(0)
        .stdout_has("event advisory-new critical acme: ACME-2026-002");
    let c = p.w.srv.requests(csv).pop().unwrap();
    assert!(
        !c.headers.contains_key("if-none-match"),
        "the whole listing: {c:?}"
    );
    // Unchanged again: two 304s and one advisory's side files.
    let before = p.w.srv.request_count();
    p.w.once().code(0).stdout_lacks("event ");
    assert_eq!(p.w.srv.request_count() - before, 2 + 2);

    // An advisory held back for its signer waits for the keyring, not the listing: the
    // unchanged listing is still two 304s (and a verified advisory's side files), and
    // the held advisory still counts (exit 1).
    let stranger = p.gpg.key("Other <o@acme.example>", "ed25519", "0", None);
    *p.signers.borrow_mut() = vec![stranger];
    p.publish("ACME-2026-003", "1", 5.0, "2026-11-21T00:00:00Z");
    p.w.once().code(1).stdout_has("event key-changed");
    let before = p.w.srv.request_count();
    p.w.once()
        .code(1)
        .stdout_lacks("event ")
        .stderr_has("not modified; 1 advisories with open problems (unpinned-signer 1)");
    assert_eq!(p.w.srv.request_count() - before, 2 + 2);
}

both_backends!(csaf_advisory_unreachable_once_is_checked_again_next_poll);
fn csaf_advisory_unreachable_once_is_checked_again_next_poll(b: Backend) {
    let p = OwnProvider::new(b);
    p.publish("ACME-2026-001", "1", 5.3, "2026-11-01T00:00:00Z");
    p.w.once().code(0);
    p.publish("ACME-2026-002", "1", 6.1, "2026-11-20T00:00:00Z");
    let good =
        p.w.srv
            .requests("/prov/white/2026/acme-2026-002.json")
            .len();
    assert_eq!(good, 0);
    p.w.srv.route(
        "/prov/white/2026/acme-2026-002.json",
        vec![Resp::status(503)],
    );
    p.w.once()
        .code(1)
        .stdout_has("acme-2026-002.json rejected: could not be downloaded");
    // Back again: downloaded, checked and announced.
    p.publish("ACME-2026-002", "1", 6.1, "2026-11-20T00:00:00Z");
    p.w.once()
        .code(0)
        .stdout_has("event advisory-new medium acme: ACME-2026-002");
}

fn event_lines<'a>(r: &'a Run, kind: &str) -> Vec<&'a str> {
    let prefix = format!("event {kind} ");
    r.stdout
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .collect()
}

fn open_problems(w: &W) -> serde_json::Value {
    let s = w.p.run(&["status", "--json"]);
    s.code(0);
    s.json()["sources"][0]["open_problems"].clone()
}

both_backends!(csaf_failing_advisories_are_folded_remembered_and_cleared_when_fixed);
/// Regression: a provider whose advisories could not be fetched raised one high event
/// per advisory (2,000 mails and script runs for one broken provider) and the run
/// exited 0. Now: three one by one, the rest in one summary; remembered, so the next
/// poll raises nothing; exit 1 until the files are fixed; then announced as usual.
fn csaf_failing_advisories_are_folded_remembered_and_cleared_when_fixed(b: Backend) {
    let p = OwnProvider::new(b);
    let ids: Vec<String> = (1..=10).map(|i| format!("ACME-2026-{i:03}")).collect();
    let doc_path = |id: &str| format!("/prov/white/2026/{}.json", id.to_lowercase());
    for id in &ids {
        p.publish(id, "1", 5.0, "2026-11-01T00:00:00Z");
        p.w.srv.route(&doc_path(id), vec![Resp::status(404)]);
    }
    let r = p.w.once();
    r.code(1)
        .stderr_has("10 advisories with open problems (advisory-unreachable 10)")
        .stdout_lacks("event advisory-new");
    let rejected = event_lines(&r, "bundle-rejected");
    assert_eq!(rejected.len(), 4, "{}", r.stdout);
    for id in &ids[..3] {
        let name = format!(
            "{}.json rejected: could not be downloaded",
            id.to_lowercase()
        );
        assert!(
            rejected.iter().any(|l| l.contains(&name)),
            "{name}\n{}",
            r.stdout
        );
    }
    let summary: Vec<serde_json::Value> =
        p.w.events()
            .into_iter()
            .filter(|(_, e)| e["code"] == "advisories-failing")
            .map(|(_, e)| e)
            .collect();
    assert_eq!(summary.len(), 1, "{:?}", p.w.events());
    assert_eq!(summary[0]["kind"], "bundle-rejected");
    assert_eq!(summary[0]["count"], "7");
    assert!(summary[0]["advisories"]
        .as_str()
        .unwrap()
        .starts_with("acme-2026-004.json, acme-2026-005.json"));
    r.stdout_has("acme CSAF provider: 7 more advisories failed their checks (advisory-unreachable 7): acme-2026-004.json");
    assert_eq!(open_problems(&p.w), 10);
    p.w.p
        .run(&["status"])
        .code(0)
        .stdout_has("open problems 10 (advisory-unreachable 10): 0 held back for their signer, 10 rejected or unreachable");
    let status = p.w.p.run(&["status", "--json"]).json();
    assert_eq!(status["sources"][0]["rejected"], 10);
    assert_eq!(status["sources"][0]["held_back"], 0);

    // Still broken: remembered, nothing raised again, still exit 1.
    let before = p.w.events().len();
    let r = p.w.once();
    r.code(1).stdout_lacks("event ");
    assert_eq!(p.w.events().len(), before);

    // One advisory now fails differently: that is a new problem, raised once.
    p.publish(&ids[0], "1", 5.0, "2026-11-01T00:00:00Z");
    p.w.srv.route(
        &format!("{}.sha512", doc_path(&ids[0])),
        vec![Resp::ok(format!("{}  x.json", "0".repeat(128)))],
    );
    let r = p.w.once();
    r.code(1);
    let rejected = event_lines(&r, "bundle-rejected");
    assert_eq!(rejected.len(), 1, "{}", r.stdout);
    assert!(rejected[0]
        .contains("acme-2026-001.json rejected: acme-2026-001.json.sha512 does not match"));
    assert_eq!(open_problems(&p.w), 10);

    // Fixed, on the same listing dates: checked again, announced, problems cleared.
    for id in &ids {
        p.publish(id, "1", 5.0, "2026-11-01T00:00:00Z");
    }
    let r = p.w.once();
    r.code(0);
    assert_eq!(event_lines(&r, "advisory-new").len(), 10, "{}", r.stdout);
    r.stdout_lacks("event bundle-rejected");
    assert_eq!(open_problems(&p.w), 0);
    let resolved: Vec<String> =
        p.w.events()
            .into_iter()
            .filter(|(k, _)| k == "advisory-new")
            .filter_map(|(_, e)| e["resolved"].as_str().map(str::to_string))
            .collect();
    assert_eq!(resolved.len(), 10, "{resolved:?}");
    assert!(resolved.iter().any(|c| c == "digest-mismatch"));
    p.w.once().code(0).stdout_lacks("event ");
}

both_backends!(csaf_problem_events_per_poll_are_configurable);
fn csaf_problem_events_per_poll_are_configurable(b: Backend) {
    let p = OwnProvider::new(b);
    p.w.p.write(
        "feeds.toml",
        std::fs::read_to_string(p.w.p.path("feeds.toml"))
            .unwrap()
            .replace("[watch]\n", "[watch]\nproblem_events = 1\n"),
    );
    for i in 1..=3 {
        let id = format!("ACME-2026-{i:03}");
        p.publish(&id, "1", 5.0, "2026-11-01T00:00:00Z");
        p.w.srv.route(
            &format!("/prov/white/2026/{}.json.asc", id.to_lowercase()),
            vec![Resp::status(404)],
        );
    }
    let r = p.w.once();
    r.code(1)
        .stdout_has("acme-2026-001.json rejected: no signature")
        .stdout_has("2 more advisories failed their checks (no-signature 2)");
    assert_eq!(event_lines(&r, "bundle-rejected").len(), 2, "{}", r.stdout);
}

both_backends!(csaf_advisories_need_the_vendors_signature_threshold);
/// Regression: CSAF advisories were verified with a threshold of 1 whatever the
/// vendor's `signatures` said.
fn csaf_advisories_need_the_vendors_signature_threshold(b: Backend) {
    let p = OwnProvider::new(b);
    let second = p
        .gpg
        .key("Acme Release <release@acme.example>", "ed25519", "0", None);
    p.w.p
        .pin_cert("acme", "release.asc", &p.gpg.export(&second));
    p.w.config(
        &[("/prov/provider-metadata.json", "csaf")],
        "signatures = 2",
    );
    p.publish("ACME-2026-001", "1", 5.3, "2026-11-01T00:00:00Z");
    let r = p.w.once();
    r.code(1)
        .stdout_has("event bundle-rejected high acme: acme CSAF advisory acme-2026-001.json rejected: signed by 1 pinned certificate, 2 required")
        .stdout_lacks("advisories already published");
    assert_eq!(open_problems(&p.w), 1);
    // Co-signed by the second pinned key, same listing date: verified and announced.
    p.signers.borrow_mut().push(second);
    p.publish("ACME-2026-001", "1", 5.3, "2026-11-01T00:00:00Z");
    p.w.once()
        .code(0)
        .stdout_has("event advisory-new medium acme: ACME-2026-001");
    assert_eq!(open_problems(&p.w), 0);
}

both_backends!(csaf_advisory_cosigned_by_an_unpinned_key_raises_unexpected_signer);
/// Regression: the verifier's warning about a co-signer that is not pinned was
/// dropped for CSAF advisories. Raised once per provider and key, not per advisory.
fn csaf_advisory_cosigned_by_an_unpinned_key_raises_unexpected_signer(b: Backend) {
    let p = OwnProvider::new(b);
    let stranger = p.gpg.key("Someone <x@example.org>", "ed25519", "0", None);
    p.signers.borrow_mut().push(stranger.clone());
    p.publish("ACME-2026-001", "1", 5.3, "2026-11-01T00:00:00Z");
    p.publish("ACME-2026-002", "1", 5.3, "2026-11-02T00:00:00Z");
    let r = p.w.once();
    r.code(0)
        .stdout_has("2 advisories already published")
        .stdout_has("event unexpected-signer high acme: acme CSAF advisory acme-2026-001.json is also signed by key ")
        .stdout_has(&format!("fingerprint {stranger}"));
    assert_eq!(
        event_lines(&r, "unexpected-signer").len(),
        1,
        "{}",
        r.stdout
    );
    p.publish("ACME-2026-003", "1", 5.3, "2026-11-03T00:00:00Z");
    p.w.once()
        .code(0)
        .stdout_has("event advisory-new medium acme: ACME-2026-003")
        .stdout_lacks("unexpected-signer");
}

both_backends!(csaf_signing_key_expiring_soon_raises_key_expiring);
/// Regression: a CSAF signing key about to expire was noticed by the verifier and
/// then dropped.
fn csaf_signing_key_expiring_soon_raises_key_expiring(b: Backend) {
    let p = OwnProvider::with_key_expiry(b, "20d");
    p.publish("ACME-2026-001", "1", 5.3, "2026-11-01T00:00:00Z");
    let r = p.w.once();
    r.code(0)
        .stdout_has("1 advisories already published")
        .stdout_has("event key-expiring medium acme: acme's signing key ")
        .stdout_has(&format!("fingerprint {}", p.fpr));
    p.publish("ACME-2026-002", "1", 5.3, "2026-11-02T00:00:00Z");
    p.w.once().code(0).stdout_lacks("key-expiring");
}

both_backends!(csaf_stackable_key_rotation);
/// Stackable's real provider, which rotated its signing key in 2025 (the new key is
/// not certified by the old one). Pinning the new key verifies every advisory
/// (including the 2026 hash files that name `2026/<file>` and end without a newline).
/// Issue 14: with the old key pinned the rotation was 23 separate high events; now it
/// is one `key-changed` incident naming the new key and the advisories it signed, which
/// are held back, not marked seen: once the operator pins the new key with `keys add`
/// they are announced (the first three one by one, the rest in one summary), and
/// `--recheck` downloads and checks them all again.
fn csaf_stackable_key_rotation(b: Backend) {
    let Some(c) = corpus() else { return };
    let dir = c.join("csaf/stackabletech-advisories/csaf/v2");
    let new_key = std::fs::read(dir.join("openpgp/4005788070EAA8A5.txt")).unwrap();
    let provider = |pinned: &[u8]| {
        let w = W::new(b, &[("/stk/provider-metadata.json", "csaf")]);
        serve_tree(&w.srv, "/stk/", &dir, &|b| b);
        let meta = std::fs::read_to_string(dir.join("provider-metadata.json"))
            .unwrap()
            .replace(
                "https://advisories.stackable.tech/csaf/v2/",
                &w.srv.url("/stk/"),
            );
        w.srv
            .route("/stk/provider-metadata.json", vec![Resp::ok(meta)]);
        w.p.pin_cert("acme", "stackable.asc", pinned);
        w
    };

    let w = provider(&new_key);
    let r = w.once();
    r.code(0)
        .stdout_lacks("event unexpected-signer")
        .stdout_lacks("event key-changed")
        .stdout_has("event backlog-recorded info acme: 23 advisories already published");

    let w = provider(&std::fs::read(dir.join("openpgp/A2A781A51BC3B8C6.txt")).unwrap());
    let r = w.once();
    r.code(1)
        .stderr_has("23 advisories with open problems (unpinned-signer 23)")
        .stdout_has("event key-changed high acme: acme's CSAF provider uses a new key 218E 0347 9FE8 0022 3105  FEA6 3190 5DED 3EFD 610A that is not pinned (no pinned key vouches for it); 23 advisories signed by it are held back until it is pinned: ")
        .stdout_has(" and 13 more");
    assert_eq!(all_events(&r), 1, "one incident: {}", r.stdout);
    let incident = w.event("key-changed");
    assert_eq!(
        incident["fingerprint"],
        "218E03479FE800223105FEA631905DED3EFD610A"
    );
    assert_eq!(incident["vouched"], "no");
    assert_eq!(incident["count"], "23");
    assert_eq!(incident["severity"], "high");
    // Held back, not seen: checked again, nothing raised twice.
    w.once().code(1).stdout_lacks("event ");

    // The operator compares the fingerprint and pins the new key: the next poll
    // announces what was held back.
    w.p.write("new.asc", &new_key);
    w.p.run(&[
        "keys",
        "add",
        "new.asc",
        "--vendor",
        "acme",
        "--fingerprint",
        "218E 0347 9FE8 0022 3105  FEA6 3190 5DED 3EFD 610A",
    ])
    .code(0);
    let r = w.once();
    r.code(0).stdout_has(
        "acme CSAF provider: 20 more advisories held back for their signer verify now: ",
    );
    assert_eq!(event_lines(&r, "advisory-new").len(), 4, "{}", r.stdout);
    assert_eq!(all_events(&r), 4, "{}", r.stdout);
    let released: Vec<serde_json::Value> = w
        .events()
        .into_iter()
        .filter(|(_, e)| e["code"] == "advisories-released")
        .map(|(_, e)| e)
        .collect();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0]["count"], "20");
    assert_eq!(open_problems(&w), 0);
    w.once().code(0).stdout_lacks("event ");

    // --recheck downloads and checks every advisory again; nothing is new.
    let before = w.srv.request_count();
    w.p.run(&["watch", "--once", "--recheck", "acme"])
        .code(0)
        .stdout_lacks("event ");
    assert!(
        w.srv.request_count() - before >= 3 * 23,
        "{} requests",
        w.srv.request_count() - before
    );
}

both_backends!(csaf_key_rotation_is_one_incident_and_the_gap_is_announced_once_pinned);
/// Issue 14, a rotation made with GnuPG: the provider signs with key A (pinned), then
/// rotates to key B, certified by A or not. One `key-changed` incident names B, says
/// whether A vouches for it and counts the advisories B signed; after `keys add` the
/// advisories published in the gap are announced.
fn csaf_key_rotation_is_one_incident_and_the_gap_is_announced_once_pinned(b: Backend) {
    for certified in [true, false] {
        let p = OwnProvider::new(b);
        p.publish("ACME-2026-001", "1", 5.3, "2026-11-01T00:00:00Z");
        p.w.once()
            .code(0)
            .stdout_has("1 advisories already published");
        let b = p.gpg.key(
            "Acme PSIRT 2027 <psirt2027@acme.example>",
            "ed25519",
            "0",
            None,
        );
        if certified {
            p.gpg
                .gpg(&["--default-key", &p.fpr, "--quick-sign-key", &b]);
        }
        p.w.srv
            .route("/prov/keys/b.asc", vec![Resp::ok(p.gpg.export(&b))]);
        if certified {
            // The vendor's key URL shows the rotation too: still one incident.
            p.w.config(
                &[("/prov/provider-metadata.json", "csaf")],
                &format!("key_url = \"{}\"", p.w.srv.url("/prov/keys/b.asc")),
            );
        }
        p.w.srv.route(
            "/prov/provider-metadata.json",
            vec![Resp::ok(format!(
                r#"{{"canonical_url": "{0}", "distributions": [{{"directory_url": "{1}"}}],
                   "publisher": {{"namespace": "https://acme.example", "name": "Acme", "category": "vendor"}},
                   "public_openpgp_keys": [{{"fingerprint": "{a}", "url": "{0}"}}, {{"fingerprint": "{b}", "url": "{2}"}}],
                   "role": "csaf_trusted_provider"}}"#,
                p.w.srv.url("/prov/provider-metadata.json"),
                p.w.srv.url("/prov/white"),
                p.w.srv.url("/prov/keys/b.asc"),
                a = p.fpr,
            ))],
        );
        *p.signers.borrow_mut() = vec![b.clone()];
        for i in 2..=6 {
            p.publish(
                &format!("ACME-2026-{i:03}"),
                "1",
                5.3,
                &format!("2026-11-{:02}T00:00:00Z", i + 10),
            );
        }
        let r = p.w.once();
        r.code(1);
        assert_eq!(all_events(&r), 1, "{}", r.stdout);
        let how = if certified {
            format!(
                "medium acme: acme's CSAF provider uses a new key {} that is not pinned (certified by pinned key ",
                group(&b)
            )
        } else {
            format!(
                "high acme: acme's CSAF provider uses a new key {} that is not pinned (no pinned key vouches for it)",
                group(&b)
            )
        };
        r.stdout_has(&format!("event key-changed {how}"))
            .stdout_has("5 advisories signed by it are held back until it is pinned: acme-2026-002.json, acme-2026-003.json");
        let incident = p.w.event("key-changed");
        assert_eq!(incident["fingerprint"], b.as_str());
        assert_eq!(incident["vouched"], if certified { "yes" } else { "no" });
        assert_eq!(incident["count"], "5");
        let stored =
            p.w.events()
                .iter()
                .filter(|(k, _)| k == "key-changed")
                .count();
        assert_eq!(stored, 1, "{:?}", p.w.events());
        if certified {
            // Fetched by the CSAF check and by the key URL watcher.
            assert_eq!(p.w.srv.requests("/prov/keys/b.asc").len(), 2);
        }
        // The keyring is unchanged: the held advisories are not fetched again.
        let held = |n: u32| {
            p.w.srv
                .requests(&format!("/prov/white/2026/acme-2026-{n:03}.json"))
                .len()
        };
        let before: Vec<usize> = (2..=6).map(held).collect();
        p.w.once().code(1).stdout_lacks("event ");
        assert_eq!(
            (2..=6).map(held).collect::<Vec<_>>(),
            before,
            "held advisories fetched again on an unchanged keyring"
        );
        p.w.p.run(&["status"]).code(0).stdout_has(
            "open problems 5 (unpinned-signer 5): 5 held back for their signer, 0 rejected or unreachable",
        );
        // Listed with a new date: that one is checked again (still held, nothing raised).
        p.publish("ACME-2026-003", "2", 5.3, "2026-11-20T00:00:00Z");
        p.w.once().code(1).stdout_lacks("event ");
        assert_eq!(
            held(3),
            before[1] + 1,
            "a held advisory listed with a new date is checked again"
        );
        assert_eq!(held(2), before[0]);

        let file = p.w.p.write("b.asc", p.gpg.export(&b));
        p.w.p
            .run(&[
                "keys",
                "add",
                file.to_str().unwrap(),
                "--vendor",
                "acme",
                "--fingerprint",
                &b,
            ])
            .code(0);
        let r = p.w.once();
        assert_eq!(held(2), before[0] + 1, "the keyring changed: checked again");
        r.code(0)
            .stdout_has("event advisory-new medium acme: ACME-2026-002: ACME-2026-002 in acme agent")
            .stdout_has("acme CSAF provider: 2 more advisories held back for their signer verify now: acme-2026-005.json, acme-2026-006.json");
        assert_eq!(event_lines(&r, "advisory-new").len(), 4, "{}", r.stdout);
        assert_eq!(open_problems(&p.w), 0);
        p.w.once().code(0).stdout_lacks("event ");
    }
}

fn all_events(r: &Run) -> usize {
    r.stdout.lines().filter(|l| l.starts_with("event ")).count()
}

/// `B2B1 ...`: a fingerprint as titles show it.
fn group(fpr: &str) -> String {
    let quads: Vec<&str> = (0..fpr.len() / 4).map(|i| &fpr[i * 4..i * 4 + 4]).collect();
    format!("{}  {}", quads[..5].join(" "), quads[5..].join(" "))
}

both_backends!(csaf_recheck_downloads_every_advisory_again);
/// Issue 14: `--recheck VENDOR` downloads every advisory again, so one changed in place
/// without a new date in changes.csv is noticed; a vendor that is not configured is a
/// usage error.
fn csaf_recheck_downloads_every_advisory_again(b: Backend) {
    let p = OwnProvider::new(b);
    p.publish("ACME-2026-001", "1", 5.3, "2026-11-01T00:00:00Z");
    p.publish("ACME-2026-002", "1", 5.3, "2026-11-01T00:00:00Z");
    p.w.once().code(0);
    // Changed in place, same listing date: a normal poll does not download it (polled
    // hourly, this poll's slice of side files is 001's).
    p.publish("ACME-2026-002", "2", 7.5, "2026-11-01T00:00:00Z");
    p.w.once().code(0).stdout_lacks("event ");
    p.w.p
        .run(&["watch", "--once", "--recheck", "acme"])
        .code(0)
        .stdout_has("event advisory-updated high acme: ACME-2026-002");
    p.w.p
        .run(&["watch", "--once", "--recheck", "nosuch"])
        .code(2)
        .stderr_has("--recheck \"nosuch\": no such vendor in ")
        .stderr_has("known vendors: acme");
    p.w.p.run(&["watch", "--recheck", "acme"]).code(2);
}

impl OwnProvider {
    /// From now on the vendor's sources are polled every `interval`: each poll fetches
    /// again the side files of interval/24h of the verified advisories.
    fn polled_every(&self, interval: &str) {
        self.w.config(
            &[("/prov/provider-metadata.json", "csaf")],
            &format!("interval = \"{interval}\""),
        );
    }

    /// Two advisories listed on one date, polled every 12 hours (one a poll has its
    /// side files fetched again), the listing with validators, and the first poll done.
    fn two_advisories_every_12h(b: Backend) -> (OwnProvider, &'static str) {
        let p = OwnProvider::new(b);
        p.polled_every("12h");
        p.tag_listing();
        let date = "2026-11-01T00:00:00Z";
        p.publish("ACME-2026-001", "1", 5.3, date);
        p.publish("ACME-2026-002", "1", 5.3, date);
        p.w.once()
            .code(0)
            .stdout_has("2 advisories already published");
        (p, date)
    }

    /// How many requests the next poll makes, and its output.
    fn poll_counted(&self) -> (usize, Run) {
        let before = self.w.srv.request_count();
        let r = self.w.once();
        (self.w.srv.request_count() - before, r)
    }

    /// How often advisory `name` (`2026/acme-2026-001.json`) and its hash file were
    /// requested.
    fn fetched(&self, name: &str) -> (usize, usize) {
        let path = format!("/prov/white/{name}");
        (
            self.w.srv.requests(&path).len(),
            self.w.srv.requests(&format!("{path}.sha512")).len(),
        )
    }
}

both_backends!(csaf_advisory_changed_in_place_is_announced_within_the_window);
/// Issue 14: an advisory changed in place (same `changes.csv` date, same
/// `tracking.version`) is noticed through its hash file, fetched again in a bounded
/// slice even when the listing answers 304; each change is its own `advisory-updated`.
fn csaf_advisory_changed_in_place_is_announced_within_the_window(b: Backend) {
    let (p, date) = OwnProvider::two_advisories_every_12h(b);
    p.publish("ACME-2026-002", "1", 9.8, date);
    // Polled every 12h, half of the advisories a poll: 001 first (its side files say
    // the same: not downloaded), then 002.
    let (n, r) = p.poll_counted();
    r.code(0).stdout_lacks("event ").stderr_has("not modified");
    assert_eq!(n, 2 + 2, "two 304s and 001's hash file and signature");
    assert_eq!(p.fetched("2026/acme-2026-001.json"), (1, 2));
    assert_eq!(p.fetched("2026/acme-2026-002.json"), (1, 1));
    p.w.once().code(0).stdout_has(
        "event advisory-updated critical acme: ACME-2026-002: ACME-2026-002 in acme agent",
    );
    let ev = p.w.event("advisory-updated");
    assert_eq!(ev["tracking_version"], "1");
    assert_eq!(p.fetched("2026/acme-2026-002.json").0, 2);
    // Nothing more to say about it, however often it is fetched again.
    p.w.once().code(0).stdout_lacks("event ");
    p.w.once().code(0).stdout_lacks("event ");
    // Changed again, still version 1: a second event, with its own id.
    p.publish("ACME-2026-002", "1", 7.5, date);
    let r1 = p.w.once();
    let r2 = p.w.once();
    r1.code(0);
    r2.code(0);
    let both = format!("{}{}", r1.stdout, r2.stdout);
    assert!(
        both.contains("event advisory-updated high acme: ACME-2026-002"),
        "{both}"
    );
    let updated: Vec<_> =
        p.w.events()
            .into_iter()
            .filter(|(k, _)| k == "advisory-updated")
            .collect();
    assert_eq!(updated.len(), 2, "{updated:?}");
    assert_ne!(updated[0].1["id"], updated[1].1["id"]);
}

both_backends!(csaf_advisory_resigned_by_a_stranger_is_held_for_its_signer);
/// Issue 14: the same document re-signed by a key that is not pinned, its hash file
/// unchanged, is noticed through its signature and held back for its signer.
fn csaf_advisory_resigned_by_a_stranger_is_held_for_its_signer(b: Backend) {
    let p = OwnProvider::new(b);
    p.polled_every("24h");
    p.tag_listing();
    let date = "2026-11-01T00:00:00Z";
    p.publish("ACME-2026-001", "1", 5.3, date);
    p.w.once().code(0);
    let sha =
        p.w.srv
            .requests("/prov/white/2026/acme-2026-001.json.sha512");
    let stranger = p.gpg.key("Other <o@acme.example>", "ed25519", "0", None);
    *p.signers.borrow_mut() = vec![stranger];
    p.publish("ACME-2026-001", "1", 5.3, date);
    let r = p.w.once();
    r.code(1)
        .stdout_has("event key-changed high acme: ")
        .stdout_has("1 advisory signed by it is held back until it is pinned: acme-2026-001.json");
    assert_eq!(sha.len(), 1);
    let v = p.w.p.run(&["status", "--json"]).json();
    assert!(v.to_string().contains("unpinned-signer"), "{v:#}");
    // Held: not fetched again until the keyring or its listing date changes.
    let (n, r) = p.poll_counted();
    r.code(1).stdout_lacks("event ");
    assert_eq!(n, 2, "two 304s, nothing verified left to re-check");
}

both_backends!(csaf_unchanged_side_files_cost_no_advisory_download);
/// Issue 14: side files that say what they said cost no advisory download; they are
/// asked with the validators they last answered with, so unchanged they are 304s.
fn csaf_unchanged_side_files_cost_no_advisory_download(b: Backend) {
    let p = OwnProvider::new(b);
    p.polled_every("24h");
    p.tag_listing();
    p.publish("ACME-2026-001", "1", 5.3, "2026-11-01T00:00:00Z");
    p.w.once().code(0);
    for _ in 0..2 {
        let (n, r) = p.poll_counted();
        r.code(0).stdout_lacks("event ").stderr_has("not modified");
        assert_eq!(n, 4, "two 304s, the hash file and the signature");
        for side in ["sha512", "asc"] {
            let path = format!("/prov/white/2026/acme-2026-001.json.{side}");
            let asked = p.w.srv.requests(&path).pop().unwrap();
            assert!(asked.headers["if-none-match"].starts_with('"'), "{asked:?}");
        }
    }
    assert_eq!(p.fetched("2026/acme-2026-001.json"), (1, 3));
    assert_eq!(
        p.w.srv
            .requests("/prov/white/2026/acme-2026-001.json.asc")
            .len(),
        3
    );
}

both_backends!(csaf_advisories_verified_before_side_files_were_recorded_are_checked_once_quietly);
/// Issue 14: a state from before side files were recorded (the migration drops the
/// listing validators too): the next poll reads the listing whole, and each advisory is
/// checked whole once in its turn, with nothing to announce.
fn csaf_advisories_verified_before_side_files_were_recorded_are_checked_once_quietly(b: Backend) {
    let (p, _) = OwnProvider::two_advisories_every_12h(b);
    p.w.state.execute(
        &p.w.p,
        "DELETE FROM csaf_side_files; DELETE FROM listing_validators;",
    );
    let csv = "/prov/white/changes.csv";
    for _ in 0..3 {
        p.w.once().code(0).stdout_lacks("event ");
    }
    let c = p.w.srv.requests(csv);
    assert!(!c[1].headers.contains_key("if-none-match"), "{c:?}");
    assert!(c[2].headers.contains_key("if-none-match"), "{c:?}");
    assert_eq!(p.fetched("2026/acme-2026-001.json").0, 2);
    assert_eq!(p.fetched("2026/acme-2026-002.json").0, 2);
    // Recorded now: their side files only.
    let (n, r) = p.poll_counted();
    r.code(0).stdout_lacks("event ").stderr_has("not modified");
    assert_eq!(n, 2 + 2);
}

both_backends!(csaf_side_file_slice_is_bounded_and_rotates);
/// Issue 14: polled hourly, a poll fetches the side files of 1/24th of the advisories
/// (rounded up), the longest unchecked first, so each is fetched again within 24 polls.
fn csaf_side_file_slice_is_bounded_and_rotates(b: Backend) {
    let p = OwnProvider::new(b);
    p.tag_listing();
    let names: Vec<String> = (1..=30)
        .map(|i| format!("2026/acme-2026-{i:03}.json"))
        .collect();
    for i in 1..=30 {
        p.publish(
            &format!("ACME-2026-{i:03}"),
            "1",
            5.0,
            "2026-11-01T00:00:00Z",
        );
    }
    p.w.once()
        .code(0)
        .stdout_has("30 advisories already published");
    for poll in 0..15 {
        let (n, r) = p.poll_counted();
        r.code(0).stdout_lacks("event ");
        assert_eq!(
            n,
            2 + 2 * 2,
            "poll {poll}: two 304s and two advisories' side files"
        );
    }
    for name in &names {
        assert_eq!(p.fetched(name), (1, 2), "{name}");
    }
}

both_backends!(link_local_and_metadata_addresses_are_refused_before_any_request);
/// Issue: redirects and feed URLs could aim the watcher at the cloud metadata service.
/// No address here is ever contacted: a proxy on 127.0.0.1 stands where a regression
/// would send the request, and it must see nothing.
fn link_local_and_metadata_addresses_are_refused_before_any_request(b: Backend) {
    let proxy = HttpServer::start();
    let w = W::new(b, &[]);
    w.srv.route(
        "/hop",
        vec![Resp::status(302).header("Location", "http://169.254.169.254/latest/meta-data/")],
    );
    let mut s = w.watch_table();
    s.push_str("[[vendor]]\nname = \"acme\"\n\n");
    for url in [
        w.srv.url("/hop"),
        "http://[fd00:ec2::254]/feed".to_string(),
        "http://100.100.100.200/feed".to_string(),
        "http://[::ffff:169.254.169.254]/feed".to_string(),
    ] {
        s.push_str(&format!("[[vendor.feed]]\nurl = \"{url}\"\n"));
    }
    w.p.write("feeds.toml", s);
    let proxy_url = proxy.url("");
    let r = w.p.run_env(
        &w.p.path(""),
        &["watch", "--once"],
        &[("HTTP_PROXY", &proxy_url), ("NO_PROXY", "127.0.0.1")],
    );
    r.code(1)
        .stderr_has("/hop: address-refused: 169.254.169.254 is 169.254.169.254, a link-local address; vendorguard never fetches from link-local or cloud metadata addresses")
        .stderr_has("address-refused: [fd00:ec2::254] is fd00:ec2::254, a cloud metadata address")
        .stderr_has("address-refused: 100.100.100.200 is 100.100.100.200, a cloud metadata address")
        .stderr_has("address-refused: [::ffff:a9fe:a9fe] is ::ffff:169.254.169.254, a link-local address");
    // The refusal is final: the hop was asked once, not retried.
    assert_eq!(w.srv.requests("/hop").len(), 1);
    assert_eq!(
        proxy.request_count(),
        0,
        "a refused address reached the proxy"
    );
    let v = w.p.run(&["status", "--json"]).json();
    let failing: Vec<_> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["last_error_code"] == "address-refused")
        .collect();
    assert_eq!(failing.len(), 4, "{v:#}");
}

// SQLite only: empty, foreign and non-SQLite files in the state's place.
/// Issue: an empty state file, or an SQLite database holding something else, was taken
/// for a first run: vendorguard wrote its schema into it, and every advisory the feeds
/// already listed (real new ones included) vanished into the backlog summary.
#[test]
fn damaged_state_is_refused_by_every_command_and_left_as_it_was() {
    let b = Backend::Sqlite;
    let w = W::new(b, &[]);
    w.config(&[("/f", "")], "bundles = [\"acme-*.zip\"]");
    let cfg = std::fs::read_to_string(w.p.path("feeds.toml")).unwrap();
    w.p.write(
        "feeds.toml",
        format!("{cfg}\n[alerts]\nescalation = \"esc.sh\"\n"),
    );
    let esc =
        w.p.write("esc.sh", "#!/bin/sh\ncat >> escalated.log\nexit 0\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(esc, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.srv.route("/f", vec![Resp::ok(rss(&[("A", "a", "a")]))]);
    // An unsigned bundle of acme: `verify` rejects it and raises bundle-rejected.
    w.p.pin_cert(
        "acme",
        "acme.asc",
        &armored(&sq_cert("Acme <a@acme.example>", days_ago(10), None)),
    );
    w.p.write("acme-1.zip", b"bundle");

    let foreign = tempfile::tempdir().unwrap();
    let foreign_db = foreign.path().join("other.sqlite");
    {
        let c = rusqlite::Connection::open(&foreign_db).unwrap();
        c.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');")
            .unwrap();
    }
    let damages: [(&str, Vec<u8>, &str); 3] = [
        ("empty", Vec::new(), "is empty (0 bytes)"),
        (
            "foreign",
            std::fs::read(&foreign_db).unwrap(),
            "has no vendorguard schema (tables: notes)",
        ),
        (
            "text",
            b"not a database at all, just some text that is long enough".to_vec(),
            "is not an SQLite database",
        ),
    ];
    let state = w.p.path("state/vg.sqlite");
    for (name, bytes, what) in &damages {
        w.p.write("state/vg.sqlite", bytes);
        let check = |r: &Run| {
            r.stderr_has("state/vg.sqlite")
                .stderr_has(what)
                .stderr_has("move it aside");
            assert_eq!(
                &std::fs::read(&state).unwrap(),
                bytes,
                "{name}: the state file was changed"
            );
            for side in ["state/vg.sqlite-wal", "state/vg.sqlite-shm"] {
                assert!(!w.p.path(side).exists(), "{name}: {side} was created");
            }
        };
        let r = w.once();
        r.code(2);
        check(&r);
        let r = w.p.run(&["status"]);
        r.code(2);
        check(&r);
        // A failed alert never changes the verdict: still exit 1, and the reason shown.
        let r = w.p.run(&["verify", "acme-1.zip"]);
        r.code(1).stderr_has("could not raise the alert");
        check(&r);
        assert!(
            !w.p.path("escalated.log").exists(),
            "{name}: an alert went out through a state that is not ours"
        );
    }
    // A missing file is a first run.
    std::fs::remove_file(&state).unwrap();
    w.once().code(0);
    let log = std::fs::read_to_string(w.p.path("escalated.log")).unwrap();
    assert!(log.contains("1 advisories already published"), "{log}");
}

// SQLite only: the modes of the SQLite file, its -wal/-shm and lock files.
/// Issue: the state database, its -wal/-shm files, the lock file and the state folder
/// were created with the process umask: under `umask 000` anyone on the host could
/// read and rewrite the outbox and the sources' validators.
#[test]
fn state_files_are_private_whatever_the_umask() {
    let b = Backend::Sqlite;
    use std::os::unix::fs::PermissionsExt;
    let w = W::new(b, &[("/f", "")]);
    w.srv.route("/f", vec![Resp::ok(rss(&[("A", "a", "a")]))]);
    let mode = |rel: &str| {
        std::fs::metadata(w.p.path(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    // The daemon keeps the database open, so its -wal and -shm files exist meanwhile.
    let child = std::process::Command::new("sh")
        .args([
            "-c",
            "umask 000; exec \"$0\" watch",
            env!("CARGO_BIN_EXE_vendorguard"),
        ])
        .current_dir(w.p.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(w.p.path("state/vg.sqlite-shm").exists()
        && w.p.path("state/vg.sqlite-wal").exists()
        && !w.srv.requests("/f").is_empty())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never opened its state"
        );
        std::thread::yield_now();
    }
    let modes: Vec<(&str, u32)> = [
        "state",
        "state/vg.sqlite",
        "state/vg.sqlite-wal",
        "state/vg.sqlite-shm",
        "state/vg.sqlite.lock",
    ]
    .into_iter()
    .map(|f| (f, mode(f)))
    .collect();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        modes,
        [
            ("state", 0o700),
            ("state/vg.sqlite", 0o600),
            ("state/vg.sqlite-wal", 0o600),
            ("state/vg.sqlite-shm", 0o600),
            ("state/vg.sqlite.lock", 0o600),
        ]
    );
    // Files left readable by an older run are made private, and the run says so.
    for f in ["state/vg.sqlite", "state/vg.sqlite.lock"] {
        std::fs::set_permissions(w.p.path(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    w.once()
        .code(0)
        .stderr_has("was accessible to other users (mode 644); made it private (600)");
    assert_eq!(mode("state/vg.sqlite"), 0o600);
    assert_eq!(mode("state/vg.sqlite.lock"), 0o600);
}

both_backends!(csaf_max_signature_age_refuses_an_old_advisory_signature);
fn csaf_max_signature_age_refuses_an_old_advisory_signature(b: Backend) {
    // Days before now:  900 a second provider key is made   500 it signs the advisory
    let p = OwnProvider::new(b);
    let old = p.gpg.key(
        "Acme PSIRT 2024 <psirt-2024@acme.example>",
        "ed25519",
        "0",
        Some(&gpg_time(days_ago(900))),
    );
    p.w.p
        .pin_cert("acme", "psirt-2024.asc", &p.gpg.export(&old));
    p.publish("ACME-2026-001", "1", 5.3, "2026-11-01T00:00:00Z");
    let doc = p.w.p.path("prov/2026/acme-2026-001.json");
    let asc = p.w.p.path("old-signature.asc");
    p.gpg.detach_sign(
        &old,
        &doc,
        &asc,
        "SHA512",
        Some(&gpg_time(days_ago(500))),
        true,
    );
    p.w.srv.route(
        "/prov/white/2026/acme-2026-001.json.asc",
        vec![Resp::ok(std::fs::read(&asc).unwrap())],
    );
    p.w.config(
        &[("/prov/provider-metadata.json", "csaf")],
        "max_signature_age = \"400d\"",
    );
    p.w.once()
        .code(1)
        .stdout_has("acme-2026-001.json rejected")
        .stdout_has("signature-too-old")
        .stdout_lacks("event advisory-new");
    p.w.p
        .run(&["status"])
        .code(0)
        .stdout_has("open problems 1 (signature-too-old 1)");

    // Without the limit the same signature verifies on the next poll.
    p.w.config(&[("/prov/provider-metadata.json", "csaf")], "");
    p.w.once()
        .code(0)
        .stdout_has("event advisory-new medium acme: ACME-2026-001");
}
