//! Monitoring: `status --check` in each state and `status --prometheus` read by the
//! Prometheus project's own Python parser, with state made by running the real watcher
//! against a test HTTP server on 127.0.0.1; and a real scrape of the daemon's
//! `/metrics`.

use std::io::{BufRead as _, Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;
use crate::http::{HttpServer, Resp};

/// A project with vendor `acme` watching `/ok` and `/bad` (routes the test sets) on a
/// test server; `extra` is appended to `[watch]`, `alerts` is the `[alerts]` body (an
/// escalation program that exits 1 when it says `fail`).
struct M {
    p: Project,
    srv: HttpServer,
    state: State,
}

const FEED: &str = "<rss version=\"2.0\"><channel><title>t</title><item><title>a</title><guid>A</guid><link>https://acme.example/A</link><description>d</description></item></channel></rss>";

impl M {
    fn new(b: Backend, watch_extra: &str, escalation: Option<i32>) -> M {
        let srv = HttpServer::start();
        let p = Project::new();
        let state = b.fresh_state();
        let mut cfg = format!(
            "[watch]\nstate = \"{}\"\ntimeout = \"2s\"\nfailures_before_alert = 2\n{watch_extra}\n\
             [watch.backoff]\nattempts = 1\ninitial = \"10ms\"\nmax = \"1s\"\n\n",
            state.value()
        );
        if let Some(code) = escalation {
            let path = p.write(
                "esc.sh",
                format!("#!/bin/sh\ncat >/dev/null\nexit {code}\n"),
            );
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
            cfg.push_str("[alerts]\nescalation = \"esc.sh\"\n\n");
        }
        cfg.push_str(&format!(
            "[[vendor]]\nname = \"acme\"\n[[vendor.feed]]\nurl = \"{}\"\n[[vendor.feed]]\nurl = \"{}\"\n",
            srv.url("/ok"),
            srv.url("/bad")
        ));
        p.write("feeds.toml", cfg);
        srv.route("/ok", vec![Resp::ok(FEED)]);
        srv.route("/bad", vec![Resp::ok(FEED)]);
        M { p, srv, state }
    }

    fn check(&self) -> Run {
        self.p.run(&["status", "--check"])
    }

    /// Moves every stored event's detection time `secs` into the past, as if the
    /// watcher had raised them that long ago.
    fn age_events(&self, secs: i64) {
        self.state.execute(
            &self.p,
            &format!("UPDATE events SET detected_at = detected_at - {secs}"),
        );
    }
}

/// The one plugin line, checked for shape: `VENDORGUARD LEVEL - text | perfdata`.
#[track_caller]
fn plugin_line<'a>(r: &'a Run, level: &str) -> &'a str {
    assert_eq!(r.stdout.lines().count(), 1, "one line\n{}", r.stdout);
    let line = r.first_line();
    assert!(
        line.starts_with(&format!("VENDORGUARD {level} - ")),
        "{line:?} is not {level}"
    );
    line
}

both_backends!(check_ok_then_warning_then_critical_as_a_source_keeps_failing);
fn check_ok_then_warning_then_critical_as_a_source_keeps_failing(b: Backend) {
    let m = M::new(b, "", None);
    m.p.run(&["watch", "--once"]).code(0);
    let r = m.check();
    r.code(0);
    let line = plugin_line(&r, "OK");
    assert!(
        line.ends_with("| sources=2 failing=0 pending=0 oldest_pending_s=0"),
        "{line}"
    );
    // One failed poll: WARNING, naming the source and its code.
    m.srv.route("/bad", vec![Resp::status(404)]);
    m.p.run(&["watch", "--once"]).code(1);
    let r = m.check();
    r.code(1);
    let line = plugin_line(&r, "WARNING");
    assert!(line.contains(&m.srv.url("/bad")), "{line}");
    assert!(
        line.contains("1 failed poll in a row, http-error"),
        "{line}"
    );
    assert!(
        line.ends_with("| sources=2 failing=1 pending=0 oldest_pending_s=0"),
        "{line}"
    );
    // failures_before_alert = 2: the second failure in a row is CRITICAL.
    m.p.run(&["watch", "--once"]).code(1);
    let r = m.check();
    r.code(2);
    let line = plugin_line(&r, "CRITICAL");
    assert!(line.contains("2 failed polls in a row"), "{line}");
    assert!(line.contains("failing=1 "), "{line}");
    // It answers again: OK.
    m.srv.route("/bad", vec![Resp::ok(FEED)]);
    m.p.run(&["watch", "--once"]).code(0);
    plugin_line(m.check().code(0), "OK");
}

both_backends!(check_is_critical_when_no_success_for_stale_after);
fn check_is_critical_when_no_success_for_stale_after(b: Backend) {
    let m = M::new(b, "stale_after = \"1h\"", None);
    m.p.run(&["watch", "--once"]).code(0);
    plugin_line(m.check().code(0), "OK");
    // The watcher stopped two hours ago: nothing failed, but nothing succeeded either.
    m.state.execute(
        &m.p,
        "UPDATE sources SET last_success = last_success - 7200, first_seen = first_seen - 7200",
    );
    let r = m.check();
    r.code(2);
    let line = plugin_line(&r, "CRITICAL");
    assert!(line.contains("no success for 720"), "{line}");
    assert!(line.contains("failing=2 "), "{line}");
}

both_backends!(check_pending_events_warn_then_go_critical_after_pending_critical);
fn check_pending_events_warn_then_go_critical_after_pending_critical(b: Backend) {
    // The escalation program fails: the backlog event stays pending on every channel.
    let m = M::new(b, "", Some(1));
    m.p.run(&["watch", "--once"])
        .code(1)
        .stderr_has("pending: 2 events on escalation");
    let r = m.check();
    r.code(1);
    let line = plugin_line(&r, "WARNING");
    assert!(line.contains("2 events pending"), "{line}");
    assert!(
        line.contains("| sources=2 failing=0 pending=2 oldest_pending_s="),
        "{line}"
    );
    // Older than the default pending_critical (1h): CRITICAL, with the age.
    m.age_events(3700);
    let r = m.check();
    r.code(2);
    let line = plugin_line(&r, "CRITICAL");
    assert!(
        line.contains("an event has been undeliverable on every channel for 370"),
        "{line}"
    );
    assert!(line.contains("pending_critical 3600s"), "{line}");
    let oldest: u64 = line
        .rsplit("oldest_pending_s=")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3700..3800).contains(&oldest), "{line}");
    // A longer pending_critical in [alerts] makes the same state a WARNING again.
    let cfg = std::fs::read_to_string(m.p.path("feeds.toml")).unwrap();
    m.p.write(
        "feeds.toml",
        cfg.replace("[alerts]\n", "[alerts]\npending_critical = \"2h\"\n"),
    );
    plugin_line(m.check().code(1), "WARNING");
    // Acknowledged events are handled: nothing pending.
    let ids: Vec<String> = m
        .state
        .query(&m.p, "SELECT id FROM events")
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    for id in &ids {
        m.p.run(&["events", "ack", id]).code(0);
    }
    plugin_line(m.check().code(0), "OK");
}

both_backends!(check_is_unknown_when_the_state_or_config_cannot_be_read);
fn check_is_unknown_when_the_state_or_config_cannot_be_read(b: Backend) {
    let m = M::new(b, "", None);
    // No state yet.
    let r = m.check();
    r.code(3);
    let line = plugin_line(&r, "UNKNOWN");
    assert!(line.contains("no state yet"), "{line}");
    assert!(!line.contains('|'), "{line}");
    // A foreign file where the state should be: refused, left alone, UNKNOWN (a
    // file: SQLite only).
    if m.state.is_sqlite() {
        m.p.write("state/vg.sqlite", "not a database at all, just text\n");
        let r = m.check();
        r.code(3);
        plugin_line(&r, "UNKNOWN");
        assert_eq!(
            std::fs::read(m.p.path("state/vg.sqlite")).unwrap(),
            b"not a database at all, just text\n"
        );
    }
    // A bad configuration: exit 2 for `status`, 3 (UNKNOWN) for the plugin.
    m.p.write("feeds.toml", "[watch]\nintervall = \"1h\"\n");
    m.p.run(&["status"]).code(2);
    let r = m.check();
    r.code(3);
    let line = plugin_line(&r, "UNKNOWN");
    assert!(line.contains("unknown field `intervall`"), "{line}");
    let r = m.p.run(&["--config", "nowhere.toml", "status", "--check"]);
    r.code(3);
    assert!(plugin_line(&r, "UNKNOWN").contains("nowhere.toml: no such configuration file"));
    // The flags exclude each other.
    m.p.run(&["status", "--check", "--json"]).code(2);
    m.p.run(&["status", "--check", "--prometheus"]).code(2);
}

/// Parses Prometheus text with `prometheus_client`'s parser; every sample as
/// `(family, type, name, labels, value)`.
fn parse_prometheus(text: &str) -> Vec<serde_json::Value> {
    const SCRIPT: &str = r#"
import sys, json
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("prometheus_client is missing: pip install -r tests/requirements.txt")
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        out.append({"family": f.name, "type": f.type, "help": f.documentation,
                    "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to parse Prometheus text");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the text: {}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The value of the sample `name` whose labels include `labels`.
#[track_caller]
fn sample(samples: &[serde_json::Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&serde_json::Value> = samples
        .iter()
        .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][k] == *v))
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?} in {samples:#?}");
    found[0]["value"].as_f64().unwrap()
}

#[track_caller]
fn family_type(samples: &[serde_json::Value], family: &str) -> String {
    samples
        .iter()
        .find(|s| s["family"] == family)
        .unwrap_or_else(|| panic!("no family {family}"))["type"]
        .as_str()
        .unwrap()
        .to_string()
}

/// What the state of `M::new(b, "", Some(1))` after one good pass and then one pass with
/// `/bad` failing must show.
fn assert_metrics(m: &M, samples: &[serde_json::Value]) {
    let ok = m.srv.url("/ok");
    let bad = m.srv.url("/bad");
    let v = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(samples, "vendorguard_build_info", &[("version", v)]),
        1.0
    );
    let lo = [
        ("source", ok.as_str()),
        ("vendor", "acme"),
        ("kind", "feed"),
    ];
    let lb = [
        ("source", bad.as_str()),
        ("vendor", "acme"),
        ("kind", "feed"),
    ];
    assert_eq!(sample(samples, "vendorguard_source_up", &lo), 1.0);
    assert_eq!(sample(samples, "vendorguard_source_up", &lb), 0.0);
    assert_eq!(
        sample(samples, "vendorguard_source_consecutive_failures", &lb),
        1.0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for l in [&lo[..], &lb[..]] {
        let t = sample(
            samples,
            "vendorguard_source_last_success_timestamp_seconds",
            l,
        );
        assert!(now - t < 600.0 && t <= now + 1.0, "{t} vs {now}");
        let d = sample(samples, "vendorguard_source_poll_duration_seconds", l);
        assert!((0.0..10.0).contains(&d), "{d}");
    }
    // Two events (one backlog per source), never delivered by the failing program:
    // three attempts each so far (first pass: before and after polling; second pass:
    // before polling, after; the program is not tried again in a pass once it failed).
    assert_eq!(
        sample(
            samples,
            "vendorguard_events_pending",
            &[("channel", "escalation")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            samples,
            "vendorguard_deliveries_total",
            &[("channel", "escalation"), ("result", "delivered")]
        ),
        0.0
    );
    assert!(
        sample(
            samples,
            "vendorguard_deliveries_total",
            &[("channel", "escalation"), ("result", "failed")]
        ) >= 2.0
    );
    assert_eq!(
        sample(
            samples,
            "vendorguard_events_total",
            &[("kind", "backlog-recorded")]
        ),
        2.0
    );
    assert_eq!(family_type(samples, "vendorguard_source_up"), "gauge");
    assert_eq!(family_type(samples, "vendorguard_deliveries"), "counter");
    assert_eq!(family_type(samples, "vendorguard_events"), "counter");
    assert!(samples
        .iter()
        .all(|s| !s["help"].as_str().unwrap().is_empty()));
}

fn two_passes(b: Backend) -> M {
    let m = M::new(b, "", Some(1));
    m.p.run(&["watch", "--once"]).code(1);
    m.srv.route("/bad", vec![Resp::status(500)]);
    m.p.run(&["watch", "--once"]).code(1);
    m
}

both_backends!(prometheus_text_is_read_by_the_prometheus_parser);
fn prometheus_text_is_read_by_the_prometheus_parser(b: Backend) {
    let m = two_passes(b);
    let r = m.p.run(&["status", "--prometheus"]);
    r.code(0);
    assert!(
        r.stdout.contains("# TYPE vendorguard_source_up gauge\n"),
        "{}",
        r.stdout
    );
    let samples = parse_prometheus(&r.stdout);
    assert_metrics(&m, &samples);
    // No state: an error (exit 2), nothing half-printed on stdout.
    let fresh = M::new(b, "", None);
    let r = fresh.p.run(&["status", "--prometheus"]);
    r.code(2).stderr_has("no state yet");
    assert_eq!(r.stdout, "");
}

both_backends!(prometheus_label_values_are_escaped);
fn prometheus_label_values_are_escaped(b: Backend) {
    // Label values come from the state; one damaged by hand must still give text the
    // parser reads, with the value intact.
    let m = M::new(b, "", None);
    m.p.run(&["watch", "--once"]).code(0);
    // A newline inside the literal: SQLite's char(10) is PostgreSQL's chr(10).
    m.state.execute(
        &m.p,
        "UPDATE events SET kind = 'x\"y\\n\nw} 9' WHERE seq = 1",
    );
    let r = m.p.run(&["status", "--prometheus"]);
    r.code(0);
    let samples = parse_prometheus(&r.stdout);
    assert_eq!(
        sample(
            &samples,
            "vendorguard_events_total",
            &[("kind", "x\"y\\n\nw} 9")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "vendorguard_events_total",
            &[("kind", "backlog-recorded")]
        ),
        1.0
    );
}

/// `GET path` on `addr`; the status line and the body.
fn http_get(addr: &str, request: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

both_backends!(daemon_serves_metrics_on_the_configured_address);
fn daemon_serves_metrics_on_the_configured_address(b: Backend) {
    let m = two_passes(b);
    let cfg = std::fs::read_to_string(m.p.path("feeds.toml")).unwrap();
    m.p.write(
        "feeds.toml",
        cfg.replace(
            "[watch]\n",
            "[watch]\nmetrics = \"127.0.0.1:0\"\ninterval = \"1h\"\n",
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_vendorguard"))
        .args(["watch"])
        .current_dir(m.p.dir.path())
        .env_remove("RUST_LOG")
        .env_remove("VENDORGUARD_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the daemon ended before telling its metrics address")
            .unwrap();
        if let Some(rest) = line.strip_prefix("vendorguard: metrics at http://") {
            break rest.strip_suffix("/metrics").unwrap().to_string();
        }
    };
    // Keep reading stderr so the daemon never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let (status, _) = http_get(&addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http_get(&addr, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http_get(
        &addr,
        &format!(
            "GET /metrics HTTP/1.1\r\n{}\r\n\r\n",
            "X: y\r\n".repeat(3000)
        ),
    );
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
    // A hundred connections that never finish their request neither hold up a scrape
    // nor stay open past the 2 s allowed for a request head.
    let start = std::time::Instant::now();
    let idle: Vec<std::net::TcpStream> = (0..100)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.write_all(b"G").unwrap();
            s
        })
        .collect();
    let (status, _) = http_get(&addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "a request behind idle connections took {:?}",
        start.elapsed()
    );
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    }
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "idle connections were closed only after {:?}",
        start.elapsed()
    );
    // The daemon's first pass runs beside the endpoint: scrape until it is recorded
    // (the source that failed before fails again, so its failures go to 2).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let samples = loop {
        let (status, body) = http_get(&addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        let samples = parse_prometheus(&body);
        let bad = m.srv.url("/bad");
        let failures = samples.iter().find(|s| {
            s["name"] == "vendorguard_source_consecutive_failures"
                && s["labels"]["source"] == bad.as_str()
        });
        if failures.is_some_and(|s| s["value"] == 2.0) {
            break samples;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon's pass never showed in /metrics"
        );
        std::thread::yield_now();
    };
    assert_eq!(
        sample(
            &samples,
            "vendorguard_source_up",
            &[("source", m.srv.url("/ok").as_str())]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "vendorguard_events_total",
            &[("kind", "backlog-recorded")]
        ),
        2.0
    );
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let rest = drain.join().unwrap();
    assert!(
        rest.iter().any(|l| l.contains("vendorguard: stopping")),
        "{rest:?}"
    );
}

// One backend: a configuration error stops the command before any state is opened.
#[test]
fn a_bad_metrics_address_is_a_config_error() {
    let b = Backend::Sqlite;
    let m = M::new(b, "metrics = \"localhost:9899\"", None);
    m.p.run(&["check-config"])
        .code(2)
        .stderr_has("watch.metrics: expected an IP address and port such as \"127.0.0.1:9899\"");
}

both_backends!(a_metrics_address_in_use_stops_the_daemon_with_exit_2);
fn a_metrics_address_in_use_stops_the_daemon_with_exit_2(b: Backend) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let m = M::new(b, &format!("metrics = \"{addr}\""), None);
    m.p.run(&["watch"])
        .code(2)
        .stderr_has(&format!("watch.metrics: cannot listen on {addr}"));
}
