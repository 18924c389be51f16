//! Delivery: a real SMTP server (aiosmtpd, `tests/smtp_server.py`) and real escalation
//! processes. Every event reaches every channel at least once, never lost.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::http::{HttpServer, Resp};

mod actionable;
mod routing;

/// The SMTP server process; killed on drop.
pub(crate) struct Smtp {
    child: Child,
    spool: PathBuf,
}

impl Smtp {
    fn start(port: u16, spool: &Path) -> Smtp {
        Smtp::start_with(port, spool, &[])
    }

    /// `args`: `--auth` offers AUTH without STARTTLS and logs each attempt.
    fn start_with(port: u16, spool: &Path, args: &[&str]) -> Smtp {
        use std::io::BufRead;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(spool)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("ready"),
            "SMTP server did not start (is aiosmtpd installed? `pip install aiosmtpd`): {line:?}"
        );
        Smtp {
            child,
            spool: spool.to_path_buf(),
        }
    }

    fn mode(&self, m: &str) {
        std::fs::write(self.spool.join("mode"), m).unwrap();
    }

    /// The AUTH commands the server received (`--auth`).
    fn auth_attempts(&self) -> Vec<String> {
        std::fs::read_to_string(self.spool.join("auth.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How many connections carried mail.
    fn connections(&self) -> usize {
        std::fs::read_to_string(self.spool.join("connections.log"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    pub(crate) fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.spool)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// A project with one feed on a test HTTP server, an escalation script written by the
/// test (`esc.sh`), and email to an SMTP port.
pub(crate) struct A {
    pub(crate) p: Project,
    pub(crate) srv: HttpServer,
    pub(crate) state: State,
    port: u16,
}

pub(crate) const ESC_RECORDING: &str =
    "#!/bin/sh\n# Records what it was given, then obeys ./esc-exit (default 0).\n\
n=$(ls calls/*.json 2>/dev/null | wc -l)\nmkdir -p calls\ncat > \"calls/$n.json\"\n\
env | grep '^VENDORGUARD_' | sort > \"calls/$n.env\"\n\
code=$(cat esc-exit 2>/dev/null || echo 0)\nexit \"$code\"\n";

impl A {
    pub(crate) fn new(b: Backend, escalation: Option<&str>, timeout: &str) -> A {
        let srv = HttpServer::start();
        let p = Project::new();
        let port = free_port();
        let state = b.fresh_state();
        let mut cfg = format!(
            "[watch]\nstate = \"{}\"\ntimeout = \"2s\"\n[watch.backoff]\nattempts = 1\ninitial = \"10ms\"\nmax = \"1s\"\n\n[alerts]\n",
            state.value()
        );
        if let Some(script) = escalation {
            let path = p.write("esc.sh", script);
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
            cfg.push_str(&format!(
                "escalation = \"esc.sh\"\nescalation_timeout = \"{timeout}\"\n"
            ));
        }
        cfg.push_str(&format!(
            "[alerts.email]\nurl = \"smtp://127.0.0.1:{port}\"\nfrom = \"vendorguard@example.com\"\nto = [\"oncall@example.com\"]\n\n\
             [[vendor]]\nname = \"acme\"\n[[vendor.feed]]\nurl = \"{}\"\n",
            srv.url("/feed")
        ));
        p.write("feeds.toml", cfg);
        A {
            p,
            srv,
            state,
            port,
        }
    }

    pub(crate) fn smtp(&self) -> Smtp {
        Smtp::start(self.port, &self.p.path("spool"))
    }

    /// First poll of an empty feed (no backlog event), then `items` appear.
    fn feed(&self, items: &[(&str, &str)]) {
        let mut s = String::from("<rss version=\"2.0\"><channel><title>t</title>");
        for (guid, title) in items {
            s.push_str(&format!("<item><title>{title}</title><guid>{guid}</guid><link>https://acme.example/{guid}</link><description>d</description></item>"));
        }
        s.push_str("</channel></rss>");
        self.srv.route("/feed", vec![Resp::ok(s)]);
    }

    /// First poll of an empty feed, then `n` advisories appear (`A000`, "Advisory 000",
    /// ...).
    fn advisories(&self, n: usize) {
        self.feed(&[]);
        self.once().code(0);
        let items: Vec<(String, String)> = (0..n)
            .map(|i| (format!("A{i:03}"), format!("Advisory {i:03}")))
            .collect();
        let refs: Vec<(&str, &str)> = items
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        self.feed(&refs);
    }

    pub(crate) fn once(&self) -> Run {
        self.p.run(&["watch", "--once"])
    }

    /// Makes `acme-1.zip` a bundle of vendor acme, pins a GnuPG key for acme, and signs
    /// the bundle with another key. Returns the pinned key's home and fingerprint, the
    /// stranger's fingerprint, and the bundle.
    fn bundle_signed_by_a_stranger(&self) -> (Gpg, String, String, PathBuf) {
        let cfg = std::fs::read_to_string(self.p.path("feeds.toml")).unwrap();
        self.p.write(
            "feeds.toml",
            cfg.replace(
                "name = \"acme\"",
                "name = \"acme\"\nbundles = [\"acme-*.zip\"]",
            ),
        );
        let gpg = Gpg::new();
        let pinned = gpg.key("Acme <a@acme.example>", "ed25519", "0", None);
        self.p.pin_cert("acme", "acme.asc", &gpg.export(&pinned));
        let stranger = Gpg::new();
        let sfpr = stranger.key("Stranger <s@evil.example>", "ed25519", "0", None);
        let bundle = self.p.write("acme-1.zip", b"bundle");
        stranger.detach_sign(
            &sfpr,
            &bundle,
            &self.p.path("acme-1.zip.asc"),
            "SHA256",
            None,
            true,
        );
        (gpg, pinned, sfpr, bundle)
    }

    /// Runs `watch --once` against a server that stores the mail but answers slowly,
    /// and kills the run once the mail is stored: sent, but not yet recorded as sent.
    fn kill_after_the_server_stored_it(&self, smtp: &Smtp) {
        smtp.mode("slow-ack");
        let mut child = Command::new(env!("CARGO_BIN_EXE_vendorguard"))
            .args(["watch", "--once"])
            .current_dir(self.p.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let received = self.p.path("spool/received");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !received.exists() {
            assert!(Instant::now() < deadline, "the mail never arrived");
            std::thread::yield_now();
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// One new advisory, mailed, but pending on an escalation script that fails
    /// (exit 1 from `./esc-exit`), tried once.
    fn pending_on_a_failing_script(b: Backend) -> (A, Smtp) {
        let a = A::new(b, Some(ESC_RECORDING), "10s");
        let smtp = a.smtp();
        a.feed(&[]);
        a.once().code(0);
        a.feed(&[("A", "a")]);
        a.p.write("esc-exit", "1");
        a.once()
            .code(1)
            .stderr_has("pending: 1 event on escalation");
        assert_eq!(a.calls().len(), 1);
        (a, smtp)
    }

    pub(crate) fn calls(&self) -> Vec<(serde_json::Value, String)> {
        let dir = self.p.path("calls");
        let mut out = Vec::new();
        for n in 0.. {
            let j = dir.join(format!("{n}.json"));
            if !j.exists() {
                break;
            }
            let json = serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
            out.push((
                json,
                std::fs::read_to_string(dir.join(format!("{n}.env"))).unwrap(),
            ));
        }
        out
    }
}

both_backends!(a_new_advisory_reaches_the_script_and_the_mailbox);
fn a_new_advisory_reaches_the_script_and_the_mailbox(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    let smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[("ASA-7", "OpenSSL in agent (high): upgrade to 4.2.2")]);
    a.once().code(0);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert_eq!(
        header(m, "Subject"),
        ["[vendorguard] HIGH acme: OpenSSL in agent (high): upgrade to 4.2.2"]
    );
    let calls = a.calls();
    assert_eq!(calls.len(), 1);
    let (json, env) = &calls[0];
    let id = json["id"].as_str().unwrap();
    assert_eq!(
        header(m, "Message-ID"),
        [format!("<{id}@vendorguard>").as_str()]
    );
    assert!(m.contains("kind:        advisory-new"), "{m}");
    assert!(m.contains("url:         https://acme.example/ASA-7"), "{m}");
    assert!(m.contains("next: read the advisory"), "{m}");
    assert_eq!(json["kind"], "advisory-new");
    assert_eq!(json["vendor"], "acme");
    assert!(env.contains(&format!("VENDORGUARD_EVENT_ID={id}")), "{env}");
    assert!(env.contains("VENDORGUARD_KIND=advisory-new"));
    assert!(env.contains("VENDORGUARD_SEVERITY=high"));
    assert!(env.contains("VENDORGUARD_URL=https://acme.example/ASA-7"));
    // Delivered: nothing more on the next run.
    a.once().code(0);
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(a.calls().len(), 1);
}

both_backends!(smtp_down_keeps_events_pending_until_it_is_up);
fn smtp_down_keeps_events_pending_until_it_is_up(b: Backend) {
    let a = A::new(b, None, "10s");
    a.feed(&[]);
    // No SMTP server yet: the first poll makes no event, so the run is clean only
    // because nothing needed delivering.
    a.once().code(0);
    a.feed(&[("A", "a")]);
    let r = a.once();
    r.code(1).stderr_has("pending: 1 event on email");
    let s = a.p.run(&["status", "--json"]);
    assert_eq!(s.json()["pending"][0]["events"], 1);
    assert_eq!(s.json()["delivery_errors"][0]["kind"], "connection");
    let smtp = a.smtp();
    a.once().code(0);
    assert_eq!(smtp.messages().len(), 1);
    a.once().code(0);
    assert_eq!(smtp.messages().len(), 1, "delivered exactly once");
}

both_backends!(smtp_4xx_and_5xx_are_told_apart_and_stay_pending);
fn smtp_4xx_and_5xx_are_told_apart_and_stay_pending(b: Backend) {
    let a = A::new(b, None, "10s");
    let smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[("A", "a")]);
    smtp.mode("451");
    a.once().code(1);
    let s = a.p.run(&["status", "--json"]);
    assert_eq!(s.json()["delivery_errors"][0]["kind"], "temporary");
    smtp.mode("550");
    a.once().code(1);
    let s = a.p.run(&["status"]);
    s.stdout_has("delivery error: email: permanent:");
    smtp.mode("ok");
    a.once().code(0);
    assert_eq!(smtp.messages().len(), 1);
}

both_backends!(escalation_failures_stay_pending_and_are_retried);
fn escalation_failures_stay_pending_and_are_retried(b: Backend) {
    let (a, _smtp) = A::pending_on_a_failing_script(b);
    a.p.write("esc-exit", "0");
    a.once().code(0);
    assert_eq!(a.calls().len(), 2);
    // Same event both times.
    assert_eq!(a.calls()[0].0["id"], a.calls()[1].0["id"]);
    a.once().code(0);
    assert_eq!(a.calls().len(), 2);
}

both_backends!(a_hanging_script_is_killed_with_its_children);
fn a_hanging_script_is_killed_with_its_children(b: Backend) {
    let script = "#!/bin/sh\nsleep 60 &\necho $! > child.pid\nsleep 60\n";
    let a = A::new(b, Some(script), "1s");
    let _smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[("A", "a")]);
    let start = Instant::now();
    a.once()
        .code(1)
        .stderr_has("pending: 1 event on escalation");
    assert!(start.elapsed() < Duration::from_secs(20));
    let pid = std::fs::read_to_string(a.p.path("child.pid"))
        .unwrap()
        .trim()
        .to_string();
    // The background child was in the killed process group.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            break;
        }
        std::thread::yield_now();
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "child {pid} still running: {stat}"
    );
    let s = a.p.run(&["status", "--json"]);
    assert_eq!(s.json()["delivery_errors"][0]["kind"], "timeout");
}

both_backends!(a_missing_or_non_executable_script_is_a_clear_error_and_pending);
fn a_missing_or_non_executable_script_is_a_clear_error_and_pending(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    let _smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[("A", "a")]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(a.p.path("esc.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
    a.once()
        .code(1)
        .stderr_has("cannot run escalation program")
        .stderr_has("esc.sh");
    std::fs::remove_file(a.p.path("esc.sh")).unwrap();
    a.once().code(1).stderr_has("cannot run escalation program");
    a.p.run(&["check-config"])
        .code(2)
        .stderr_has("alerts.escalation");
}

both_backends!(hostile_event_text_executes_nothing_and_injects_no_header);
fn hostile_event_text_executes_nothing_and_injects_no_header(b: Backend) {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/escalation/escalate"))
            .unwrap();
    let a = A::new(b, Some(&shipped), "10s");
    let smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    let title =
        "Fix $(touch PWNED) and `touch PWNED2`&#10;second line&#13;&#10;Bcc: attacker@evil.example";
    a.feed(&[("X", title)]);
    // A logger(1) on PATH that keeps what the shipped script logs.
    let bin = a.p.path("bin");
    let logged = a.p.path("logged");
    a.p.write(
        "bin/logger",
        format!("#!/bin/sh\ncat >> '{}'\n", logged.display()),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("logger"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let r =
        a.p.run_env(&a.p.path(""), &["watch", "--once"], &[("PATH", &path)]);
    r.code(0);
    // The hostile title is one escaped line in the log: no forged second line.
    let log = std::fs::read_to_string(&logged).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("touch PWNED")).count(),
        1,
        "{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.starts_with("second line") || l.starts_with("Bcc:")),
        "{log}"
    );
    assert!(
        !a.p.path("PWNED").exists() && !a.p.path("PWNED2").exists(),
        "something was executed"
    );
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(
        header(m, "Bcc").is_empty(),
        "a Bcc header was injected: {m}"
    );
    assert_eq!(header(m, "X-Envelope-To"), ["oncall@example.com"]);
    assert_eq!(header(m, "Subject").len(), 1);
    // The shipped script logs through logger(1) and writes nothing beside itself.
    assert!(!a.p.path("escalation.log").exists());
}

both_backends!(killed_between_send_and_record_gives_at_most_one_duplicate_with_the_same_message_id);
fn killed_between_send_and_record_gives_at_most_one_duplicate_with_the_same_message_id(b: Backend) {
    let a = A::new(b, None, "10s");
    let smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[("A", "a")]);
    a.kill_after_the_server_stored_it(&smtp);
    smtp.mode("ok");
    a.once().code(0);
    a.once().code(0);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 2, "one message and at most one duplicate");
    assert_eq!(
        header(&msgs[0], "Message-ID"),
        header(&msgs[1], "Message-ID")
    );
}

both_backends!(five_hundred_events_in_one_run_arrive_in_order);
fn five_hundred_events_in_one_run_arrive_in_order(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    let smtp = a.smtp();
    a.advisories(500);
    a.once().code(0);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 500);
    for (i, m) in msgs.iter().enumerate() {
        let subject = header(m, "Subject")[0];
        assert!(
            subject.ends_with(&format!("Advisory {i:03}")),
            "message {i}: {subject}"
        );
    }
    let calls = a.calls();
    assert_eq!(calls.len(), 500);
    for (i, (json, _)) in calls.iter().enumerate() {
        assert_eq!(json["title"], format!("Advisory {i:03}"));
    }
}

both_backends!(three_hundred_pending_mails_go_over_one_connection_without_stalling);
/// Mail at wire speed: 300 pending events go over one SMTP connection, each message
/// without waiting on Nagle's algorithm and a delayed ACK (about 40 ms a message, 12 s
/// for 300, before `TCP_NODELAY`). The bound is generous for a loaded machine;
/// `bench/alerts.py` measures the ratio to smtplib.
fn three_hundred_pending_mails_go_over_one_connection_without_stalling(b: Backend) {
    let a = A::new(b, None, "10s");
    a.advisories(300);
    // No SMTP server yet: all 300 stay pending.
    a.once().code(1).stderr_has("pending: 300 events on email");
    let smtp = a.smtp();
    let start = Instant::now();
    a.once().code(0);
    let took = start.elapsed();
    assert_eq!(smtp.messages().len(), 300);
    assert_eq!(smtp.connections(), 1, "one SMTP connection for the run");
    assert!(
        took < Duration::from_secs(6),
        "300 mails took {took:?}: stalled on Nagle/delayed ACK?"
    );
}

/// A CA and a certificate for 127.0.0.1 it signed, made with openssl in `dir`:
/// (CA certificate, server certificate, server key), PEM files.
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &str| {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir)
            .output()
            .expect("openssl is missing: apt-get install openssl");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(&format!(
        "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=vendorguard-test-CA"
    ));
    openssl(&format!(
        "req {ec} -keyout server.key -out server.csr -subj /CN=127.0.0.1"
    ));
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
         -days 2 -extfile ext.cnf",
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

both_backends!(smtps_and_required_starttls_deliver_over_one_checked_tls_connection);
/// The connection vendorguard makes itself (for `TCP_NODELAY`) still speaks TLS as
/// lettre does: `smtps://` from the first byte and STARTTLS when required, with the
/// server's certificate checked against the trusted roots (`SSL_CERT_FILE` here). An
/// untrusted certificate is a connection failure and no mail goes out in clear.
fn smtps_and_required_starttls_deliver_over_one_checked_tls_connection(b: Backend) {
    for (scheme, flag, extra) in [
        ("smtps", "--tls", ""),
        ("smtp", "--starttls", "require_tls = true\n"),
    ] {
        let a = A::new(b, None, "10s");
        let cfg = std::fs::read_to_string(a.p.path("feeds.toml")).unwrap();
        a.p.write(
            "feeds.toml",
            cfg.replace(
                "url = \"smtp://127.0.0.1",
                &format!("url = \"{scheme}://127.0.0.1"),
            )
            .replace(
                "to = [\"oncall@example.com\"]\n",
                &format!("to = [\"oncall@example.com\"]\n{extra}"),
            ),
        );
        let pki = a.p.path("pki");
        std::fs::create_dir_all(&pki).unwrap();
        let (ca, cert, key) = test_ca(&pki);
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let smtp = Smtp::start_with(a.port, &a.p.path("spool"), &[flag, &cert, &key]);
        let trusted = [("SSL_CERT_FILE", ca.to_str().unwrap())];
        a.feed(&[]);
        a.p.run_env(a.p.dir.path(), &["watch", "--once"], &trusted)
            .code(0);
        a.feed(&[("A", "a"), ("B", "b"), ("C", "c")]);
        // Untrusted: the system roots do not know the test CA.
        let empty = a.p.write("no-roots.pem", "");
        let r = a.p.run_env(
            a.p.dir.path(),
            &["watch", "--once"],
            &[("SSL_CERT_FILE", empty.to_str().unwrap())],
        );
        r.code(1)
            .stderr_has("pending: 3 events on email")
            .stderr_has("connection: SMTP ")
            .stderr_has("invalid peer certificate: UnknownIssuer");
        assert_eq!(
            smtp.messages().len(),
            0,
            "{scheme}: mail went out unchecked"
        );
        a.p.run_env(a.p.dir.path(), &["watch", "--once"], &trusted)
            .code(0);
        assert_eq!(smtp.messages().len(), 3, "{scheme}");
        assert_eq!(smtp.connections(), 1, "{scheme}");
    }
}

// One backend: `alert test` neither reads nor writes the state.
#[test]
fn alert_test_reports_each_channel() {
    let b = Backend::Sqlite;
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    // SMTP down: the script acknowledges, email fails, exit 1.
    let r = a.p.run(&["alert", "test"]);
    r.code(1)
        .stderr_has("ok: escalation: acknowledged")
        .stderr_has("failed: email: connection");
    let smtp = a.smtp();
    let r = a.p.run(&["alert", "test", "--json"]);
    r.code(0);
    assert_eq!(r.json()["channels"][1]["ok"], true);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1);
    assert!(header(&msgs[0], "Subject")[0]
        .starts_with("[vendorguard] INFO vendorguard: vendorguard fire drill"));
    assert_eq!(a.calls().last().unwrap().0["kind"], "test");
}

both_backends!(verify_raises_unexpected_signer_and_rejected_events);
fn verify_raises_unexpected_signer_and_rejected_events(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    let smtp = a.smtp();
    let (gpg, pinned, sfpr, bundle) = a.bundle_signed_by_a_stranger();
    a.p.run(&["verify", "acme-1.zip"]).code(3);
    let calls = a.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0["kind"], "unexpected-signer");
    assert_eq!(calls[0].0["fingerprint"], sfpr.as_str());
    assert!(calls[0]
        .1
        .contains(&format!("VENDORGUARD_FINGERPRINT={sfpr}")));
    assert_eq!(smtp.messages().len(), 1);
    assert!(smtp.messages()[0].contains("vendorguard keys show"));
    // --no-alert: nothing raised.
    a.p.run(&["verify", "--no-alert", "acme-1.zip"]).code(3);
    assert_eq!(a.calls().len(), 1);
    // A tampered bundle signed by the pinned key: bundle-rejected.
    gpg.detach_sign(
        &pinned,
        &bundle,
        &a.p.path("acme-1.zip.asc"),
        "SHA256",
        None,
        true,
    );
    std::fs::write(&bundle, b"tampered").unwrap();
    a.p.run(&["verify", "acme-1.zip"]).code(1);
    assert_eq!(a.calls().last().unwrap().0["kind"], "bundle-rejected");
}

#[test]
fn shipped_escalate_script_on_each_event_kind() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("escalation/escalate");
    let dir = tempfile::tempdir().unwrap();
    // A logger(1) that records what it is given, first on PATH.
    let log = dir.path().join("esc.log");
    let logger = dir.path().join("logger");
    std::fs::write(&logger, format!("#!/bin/sh\ncat >> '{}'\n", log.display())).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    let fpr = "0123456789ABCDEF0123456789ABCDEF01234567";
    let kinds = [
        (
            "unexpected-signer",
            "1. Compare fingerprint 0123 4567 89AB CDEF",
        ),
        (
            "key-changed",
            &format!("vendorguard keys add CERT.asc --vendor acme --fingerprint {fpr}") as &str,
        ),
        ("key-revoked", "stop installing bundles it signed"),
        ("advisory-new", "link:     https://acme.example/a"),
        ("advisory-updated", "severity: high"),
        ("key-expiring", "vendorguard key-expiring: t (acme, high)"),
        ("bundle-rejected", "vendorguard bundle-rejected"),
        ("source-failing", "vendorguard source-failing"),
        ("source-recovered", "vendorguard source-recovered"),
        ("test", "vendorguard test"),
    ];
    for (kind, want) in kinds {
        let out = Command::new("sh")
            .arg(&script)
            .env("VENDORGUARD_EVENT_ID", "e1")
            .env("VENDORGUARD_KIND", kind)
            .env("VENDORGUARD_VENDOR", "acme")
            .env("VENDORGUARD_SEVERITY", "high")
            .env("VENDORGUARD_TITLE", "t")
            .env("VENDORGUARD_URL", "https://acme.example/a")
            .env("VENDORGUARD_FINGERPRINT", fpr)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{kind}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(want), "{kind}: {text}");
        if matches!(kind, "unexpected-signer" | "key-changed" | "key-revoked") {
            assert!(
                text.contains("read aloud:  0123 4567 89AB CDEF"),
                "{kind}: {text}"
            );
        }
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged.matches("event id: e1").count(), 10, "{logged}");
}

#[test]
fn shipped_escalate_script_is_posix_and_shellcheck_clean() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("escalation/escalate");
    let out = Command::new("shellcheck")
        .args(["--shell=sh"])
        .arg(&script)
        .output()
        .expect("shellcheck is installed by .ci/run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

both_backends!(digest_groups_advisories_into_one_mail_but_never_key_events);
fn digest_groups_advisories_into_one_mail_but_never_key_events(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    let cfg = std::fs::read_to_string(a.p.path("feeds.toml")).unwrap();
    a.p.write(
        "feeds.toml",
        cfg.replace(
            "to = [\"oncall@example.com\"]",
            "to = [\"oncall@example.com\"]\ndigest = true",
        ),
    );
    let smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[("A1", "First"), ("A2", "Second"), ("A3", "Third")]);
    a.once().code(0);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1, "one digest mail");
    assert_eq!(
        header(&msgs[0], "Subject"),
        ["[vendorguard] UNKNOWN 3 advisories"]
    );
    assert!(header(&msgs[0], "Message-ID")[0].starts_with("<digest-"));
    for t in ["First", "Second", "Third"] {
        assert!(msgs[0].contains(t), "{t} missing from the digest");
    }
    // The script still gets one call per event.
    assert_eq!(a.calls().len(), 3);
    // A key event is sent on its own, at once.
    let gpg = Gpg::new();
    let pinned = gpg.key("Acme <a@acme.example>", "ed25519", "0", None);
    a.p.pin_cert("acme", "acme.asc", &gpg.export(&pinned));
    let other = Gpg::new();
    let ofpr = other.key("New <n@acme.example>", "ed25519", "0", None);
    let cfg = std::fs::read_to_string(a.p.path("feeds.toml")).unwrap();
    a.p.write(
        "feeds.toml",
        cfg.replace(
            "name = \"acme\"",
            &format!("name = \"acme\"\nkey_url = \"{}\"", a.srv.url("/key.asc")),
        ),
    );
    a.srv.route("/key.asc", vec![Resp::ok(other.export(&ofpr))]);
    a.once().code(0);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 2);
    assert!(header(&msgs[1], "Subject")[0]
        .starts_with("[vendorguard] HIGH acme: acme publishes a new key"));
}

// SQLite only: another process holds SQLite's lock file (runs share a PostgreSQL state by design).
#[test]
fn verify_while_a_watcher_runs_stores_the_alert_for_the_watcher_to_deliver() {
    let b = Backend::Sqlite;
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    let _smtp = a.smtp();
    a.bundle_signed_by_a_stranger();
    // Hold the watcher's lock as a running `watch` would.
    std::fs::create_dir_all(a.p.path("state")).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(a.p.path("state/vg.sqlite.lock"))
        .unwrap();
    lock.lock().unwrap();
    a.p.run(&["verify", "acme-1.zip"])
        .code(3)
        .stderr_has("the running watcher will deliver it");
    assert!(a.calls().is_empty());
    drop(lock);
    a.feed(&[]);
    a.once().code(0);
    let calls = a.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0["kind"], "unexpected-signer");
}

both_backends!(verify_delivers_its_own_event_and_leaves_the_watchers_pending_ones);
/// Issue: `verify` delivered the whole outbox, the watcher's backlog included, before
/// printing its verdict. It now sends only the events it raised; the watcher's events
/// wait for the watcher.
fn verify_delivers_its_own_event_and_leaves_the_watchers_pending_ones(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    a.feed(&[]);
    a.once().code(0);
    // An advisory the watcher could deliver nowhere: the script fails, SMTP is down.
    a.feed(&[("A1", "Advisory one")]);
    a.p.write("esc-exit", "1");
    a.once().code(1);
    assert_eq!(a.calls().len(), 1);
    a.p.write("esc-exit", "0");
    let smtp = a.smtp();
    a.bundle_signed_by_a_stranger();
    a.p.run(&["verify", "acme-1.zip"]).code(3);
    let kinds = |a: &A| -> Vec<String> {
        a.calls()
            .iter()
            .map(|c| c.0["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kinds(&a), ["advisory-new", "unexpected-signer"]);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(
        msgs[0].contains("kind:        unexpected-signer"),
        "{}",
        msgs[0]
    );
    // The watcher's next run delivers its own event, once.
    a.once().code(0);
    assert_eq!(
        kinds(&a),
        ["advisory-new", "unexpected-signer", "advisory-new"]
    );
    assert_eq!(smtp.messages().len(), 2);
}

both_backends!(escalation_environment_is_one_line_per_value_and_stdin_is_exact);
/// Issue: a feed title with a newline or an escape reached the script's environment
/// as is, so a script logging `$VENDORGUARD_TITLE` wrote a forged second line.
fn escalation_environment_is_one_line_per_value_and_stdin_is_exact(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    let _smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[("E", "Fix&#10;forged: line&#27;[31m red")]);
    a.once().code(0);
    let calls = a.calls();
    assert_eq!(calls.len(), 1);
    let (json, env) = &calls[0];
    assert_eq!(json["title"], "Fix\nforged: line\u{1b}[31m red");
    let title: Vec<&str> = env
        .lines()
        .filter(|l| l.starts_with("VENDORGUARD_TITLE="))
        .collect();
    assert_eq!(title, ["VENDORGUARD_TITLE=Fix\\nforged: line\\x1b[31m red"]);
    assert!(!env.contains('\u{1b}'), "{env}");
    assert!(!env.lines().any(|l| l.starts_with("forged")), "{env}");
}

both_backends!(mail_body_and_environment_carry_outside_text_on_one_escaped_line);
/// A feed title with a newline forged a line of the mail body ("next: ..." reads like
/// our advice), and a right-to-left override reversed what the reader saw. Every value
/// from outside is one escaped line in the body and the script's environment.
fn mail_body_and_environment_carry_outside_text_on_one_escaped_line(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    let smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[(
        "F",
        "Fix&#10;next: vendorguard keys add evil.asc&#8232;x&#8238;cod.exe",
    )]);
    a.once().code(0);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1);
    let body = &msgs[0];
    assert!(
        !body
            .lines()
            .any(|l| l.starts_with("next: vendorguard keys add")),
        "a body line was forged: {body}"
    );
    assert!(
        !body.contains('\u{202e}') && !body.contains('\u{2028}'),
        "{body}"
    );
    assert!(
        body.contains("Fix\\nnext: vendorguard keys add evil.asc\\u{2028}x\\u{202e}cod.exe"),
        "{body}"
    );
    let calls = a.calls();
    let (json, env) = &calls[0];
    assert_eq!(
        json["title"],
        "Fix\nnext: vendorguard keys add evil.asc\u{2028}x\u{202e}cod.exe"
    );
    assert!(
        !env.contains('\u{202e}') && !env.contains('\u{2028}'),
        "{env}"
    );
}

both_backends!(a_killed_watcher_leaves_no_escalation_program_running);
/// Issue: a watcher killed with SIGKILL left its escalation program running. The
/// kernel now kills the program with the watcher; the event stays pending.
fn a_killed_watcher_leaves_no_escalation_program_running(b: Backend) {
    let script = "#!/bin/sh\necho $$ > esc.pid.tmp\nmv esc.pid.tmp esc.pid\nsleep 60\n";
    let a = A::new(b, Some(script), "120s");
    let _smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[("K", "k")]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_vendorguard"))
        .args(["watch", "--once"])
        .current_dir(a.p.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pidfile = a.p.path("esc.pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pidfile.exists() {
        assert!(
            Instant::now() < deadline,
            "the escalation program never started"
        );
        std::thread::yield_now();
    }
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = |pid: &str| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty() || stat.contains(") Z ")
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(&pid) && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let alive = !gone(&pid);
    // Clean up the program's own children (its `sleep`) either way.
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{pid}")])
        .status();
    assert!(
        !alive,
        "escalation program {pid} outlived the killed watcher"
    );
    // Nothing was lost: the event is still pending for the next run.
    let s = a.p.run(&["status", "--json"]).json();
    let pending = s["pending"].as_array().unwrap();
    assert!(
        pending
            .iter()
            .any(|p| p["channel"] == "escalation" && p["events"] == 1),
        "{s:#}"
    );
}

both_backends!(credentials_never_travel_without_tls_unless_insecure_auth_is_set);
/// Issue: with `password_env` set and `smtp://` to a server that offers no STARTTLS,
/// the password went out as `AUTH PLAIN` in clear.
fn credentials_never_travel_without_tls_unless_insecure_auth_is_set(b: Backend) {
    let a = A::new(b, None, "10s");
    let cfg = std::fs::read_to_string(a.p.path("feeds.toml")).unwrap();
    let with_creds = cfg.replace(
        "to = [\"oncall@example.com\"]",
        "to = [\"oncall@example.com\"]\nuser_env = \"VG_TEST_SMTP_USER\"\npassword_env = \"VG_TEST_SMTP_PASSWORD\"",
    );
    a.p.write("feeds.toml", &with_creds);
    let smtp = Smtp::start_with(a.port, &a.p.path("spool"), &["--auth"]);
    let env = [
        ("VG_TEST_SMTP_USER", "alerts"),
        ("VG_TEST_SMTP_PASSWORD", "hunter2"),
    ];
    let run = |args: &[&str]| a.p.run_env(a.p.dir.path(), args, &env);
    a.feed(&[]);
    run(&["watch", "--once"]).code(0);
    a.feed(&[("A", "a")]);
    let reason = "offers no STARTTLS";
    run(&["watch", "--once"])
        .code(1)
        .stderr_has("pending: 1 event on email")
        .stderr_has("tls-unavailable");
    assert_eq!(
        smtp.auth_attempts(),
        Vec::<String>::new(),
        "AUTH sent in clear"
    );
    assert!(smtp.messages().is_empty());
    let s = run(&["status"]);
    s.code(0)
        .stdout_has("pending: 1 event on email")
        .stdout_has("delivery error: email: tls-unavailable:")
        .stdout_has(reason)
        .stdout_has("insecure_auth = true");
    let s = run(&["status", "--json"]);
    assert_eq!(s.json()["delivery_errors"][0]["kind"], "tls-unavailable");
    run(&["alert", "test"])
        .code(1)
        .stderr_has("failed: email: tls-unavailable:")
        .stderr_has(reason);
    assert_eq!(
        smtp.auth_attempts(),
        Vec::<String>::new(),
        "AUTH sent in clear"
    );
    assert!(smtp.messages().is_empty());
    // The operator accepts the risk explicitly: now the mail goes out, with AUTH.
    a.p.write(
        "feeds.toml",
        with_creds.replace(
            "password_env = \"VG_TEST_SMTP_PASSWORD\"",
            "password_env = \"VG_TEST_SMTP_PASSWORD\"\ninsecure_auth = true",
        ),
    );
    run(&["watch", "--once"]).code(0);
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(smtp.auth_attempts(), ["AUTH PLAIN"]);
}

both_backends!(an_unreadable_event_row_is_reported_and_the_others_are_delivered);
/// Issue: an event row whose JSON could not be parsed was skipped by delivery yet
/// counted as pending forever: every run exited 1 with nothing saying why.
fn an_unreadable_event_row_is_reported_and_the_others_are_delivered(b: Backend) {
    let a = A::new(b, None, "10s");
    a.feed(&[]);
    a.once().code(0);
    // SMTP down: both events stay pending.
    a.feed(&[("A", "first"), ("B", "second")]);
    a.once().code(1).stderr_has("pending: 2 events on email");
    let id = a
        .state
        .query_one(&a.p, "SELECT id FROM events WHERE json LIKE '%\"first\"%'");
    a.state.execute(
        &a.p,
        &format!("UPDATE events SET json = '{{\"id\": \"truncated' WHERE id = '{id}'"),
    );
    let smtp = a.smtp();
    let r = a.once();
    r.code(1)
        .stderr_has(&format!("unreadable event {id}"))
        .stderr_has("cannot be delivered");
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1);
    assert!(header(&msgs[0], "Subject")[0].ends_with("second"));
    let r = a.p.run(&["watch", "--once", "--json"]);
    r.code(1);
    let summary: serde_json::Value =
        serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        summary["summary"]["unreadable_events"][0]["id"],
        id.as_str()
    );
    let s = a.p.run(&["status"]);
    s.code(0)
        .stdout_has("unreadable: 1 event cannot be parsed and will never be delivered")
        .stdout_has(&id);
    let s = a.p.run(&["status", "--json"]).json();
    assert_eq!(s["unreadable_events"][0]["id"], id.as_str());
    assert_eq!(s["unreadable_events"].as_array().unwrap().len(), 1);
}

fn digest_on(a: &A) {
    let cfg = std::fs::read_to_string(a.p.path("feeds.toml")).unwrap();
    a.p.write(
        "feeds.toml",
        cfg.replace(
            "to = [\"oncall@example.com\"]",
            "to = [\"oncall@example.com\"]\ndigest = true",
        ),
    );
}

both_backends!(a_digest_resent_after_a_crash_keeps_its_message_id_and_its_events);
/// Issue: a digest's Message-ID was derived from the events pending at the time, so a
/// digest resent after a crash, once a new advisory had arrived, carried another
/// Message-ID (and more events): the mail client could not fold the duplicate.
fn a_digest_resent_after_a_crash_keeps_its_message_id_and_its_events(b: Backend) {
    let a = A::new(b, None, "10s");
    digest_on(&a);
    let smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[("A1", "First"), ("A2", "Second")]);
    a.kill_after_the_server_stored_it(&smtp);
    // The retry is refused (451) and a new advisory arrives in the same run: the
    // digest is tried again before the poll and after it.
    smtp.mode("451");
    a.feed(&[("A3", "Third"), ("A1", "First"), ("A2", "Second")]);
    a.once().code(1);
    smtp.mode("ok");
    a.once().code(0);
    a.once().code(0);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 3, "the digest, its duplicate, then the new one");
    let id0 = header(&msgs[0], "Message-ID");
    assert_eq!(
        header(&msgs[1], "Message-ID"),
        id0,
        "the resend keeps its id"
    );
    for m in &msgs[..2] {
        assert!(m.contains("First") && m.contains("Second"), "{m}");
        assert!(!m.contains("Third"), "the resend gained an event: {m}");
    }
    assert!(msgs[2].contains("Third") && !msgs[2].contains("First"));
    assert_ne!(header(&msgs[2], "Message-ID"), id0);
}

both_backends!(a_digest_retried_after_the_server_was_down_keeps_its_events_together);
/// A digest that could not be sent at all keeps its events together: what arrives in
/// the meantime goes into the next digest.
fn a_digest_retried_after_the_server_was_down_keeps_its_events_together(b: Backend) {
    let a = A::new(b, None, "10s");
    digest_on(&a);
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[("A1", "First"), ("A2", "Second")]);
    a.once().code(1).stderr_has("pending: 2 events on email");
    // Still down when the next advisory arrives: the retry and the new event meet.
    a.feed(&[("A3", "Third"), ("A1", "First"), ("A2", "Second")]);
    a.once().code(1).stderr_has("pending: 3 events on email");
    let smtp = a.smtp();
    a.once().code(0);
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(
        header(&msgs[0], "Subject"),
        ["[vendorguard] UNKNOWN 2 advisories"]
    );
    assert!(msgs[0].contains("First") && msgs[0].contains("Second") && !msgs[0].contains("Third"));
    assert!(msgs[1].contains("Third"));
    assert_ne!(
        header(&msgs[0], "Message-ID"),
        header(&msgs[1], "Message-ID")
    );
}

/// Two more vendors with their own feeds: `beta` adds its recipient to the global list,
/// `gamma` replaces it.
fn routed(a: &A) {
    let cfg = std::fs::read_to_string(a.p.path("feeds.toml")).unwrap();
    a.p.write(
        "feeds.toml",
        format!(
            "{cfg}\n[[vendor]]\nname = \"beta\"\nemail_to = [\"beta-team@example.com\"]\n\
             [[vendor.feed]]\nurl = \"{}\"\n\n\
             [[vendor]]\nname = \"gamma\"\nemail_to = [\"gamma-team@example.com\"]\n\
             email_to_mode = \"replace\"\n[[vendor.feed]]\nurl = \"{}\"\n",
            a.srv.url("/feed-beta"),
            a.srv.url("/feed-gamma"),
        ),
    );
}

fn rss(guid: &str, title: &str) -> String {
    format!("<rss version=\"2.0\"><channel><title>t</title><item><title>{title}</title><guid>{guid}</guid><link>https://x.example/{guid}</link><description>d</description></item></channel></rss>")
}

/// The envelope recipients of each message whose Subject contains `needle`.
fn envelopes(msgs: &[String], needle: &str) -> Vec<String> {
    msgs.iter()
        .filter(|m| header(m, "Subject")[0].contains(needle) || m.contains(needle))
        .map(|m| header(m, "X-Envelope-To")[0].to_string())
        .collect()
}

both_backends!(vendor_email_to_adds_to_or_replaces_the_global_recipients);
fn vendor_email_to_adds_to_or_replaces_the_global_recipients(b: Backend) {
    for digest in [false, true] {
        let a = A::new(b, None, "10s");
        routed(&a);
        if digest {
            digest_on(&a);
        }
        let smtp = a.smtp();
        let empty = "<rss version=\"2.0\"><channel><title>t</title></channel></rss>";
        a.feed(&[]);
        a.srv.route("/feed-beta", vec![Resp::ok(empty)]);
        a.srv.route("/feed-gamma", vec![Resp::ok(empty)]);
        a.once().code(0);
        a.feed(&[("A1", "Acme advisory")]);
        a.srv
            .route("/feed-beta", vec![Resp::ok(rss("B1", "Beta advisory"))]);
        a.srv
            .route("/feed-gamma", vec![Resp::ok(rss("G1", "Gamma advisory"))]);
        a.once().code(0);
        let msgs = smtp.messages();
        assert_eq!(msgs.len(), 3, "digest={digest}: one mail per recipient set");
        assert_eq!(envelopes(&msgs, "Acme advisory"), ["oncall@example.com"]);
        assert_eq!(
            envelopes(&msgs, "Beta advisory"),
            ["oncall@example.com,beta-team@example.com"]
        );
        assert_eq!(
            envelopes(&msgs, "Gamma advisory"),
            ["gamma-team@example.com"]
        );
    }
}

// One backend: a configuration error stops the command before any state is opened.
#[test]
fn bad_vendor_email_to_is_a_config_error_naming_the_key() {
    let b = Backend::Sqlite;
    for (from, to, key) in [
        (
            "email_to_mode = \"replace\"",
            "email_to_mode = \"only\"",
            "vendor[2] (gamma).email_to_mode",
        ),
        (
            "[\"beta-team@example.com\"]",
            "[\"not an address\"]",
            "vendor[1] (beta).email_to[0]",
        ),
    ] {
        let a = A::new(b, None, "10s");
        routed(&a);
        let cfg = std::fs::read_to_string(a.p.path("feeds.toml")).unwrap();
        a.p.write("feeds.toml", cfg.replace(from, to));
        a.once().code(2).stderr_has(key);
    }
}

both_backends!(an_acknowledged_event_is_never_retried_and_status_shows_it_handled);
/// Issue: an event the operator has dealt with was retried on a failing channel
/// forever. `events ack` marks it handled: no channel retries it, `status` says so.
fn an_acknowledged_event_is_never_retried_and_status_shows_it_handled(b: Backend) {
    let (a, _smtp) = A::pending_on_a_failing_script(b);
    let id = a.calls()[0].0["id"].as_str().unwrap().to_string();

    let list = a.p.run(&["events", "list", "--pending"]);
    list.code(0)
        .stdout_has(&id)
        .stdout_has("advisory-new")
        .stdout_has("escalation=pending")
        .stdout_has("email=delivered");
    let json = a.p.run(&["events", "list", "--json"]).code(0).json();
    let only = json.as_array().unwrap();
    assert!(only.iter().any(|e| e["id"] == id
        && e["channels"]["escalation"] == "pending"
        && e["channels"]["email"] == "delivered"));
    let since = |t: &str| a.p.run(&["events", "list", "--json", "--since", t]).json();
    assert!(since("2000-01-01T00:00:00Z")
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == id));
    assert_eq!(since("2999-01-01T00:00:00Z"), serde_json::json!([]));

    a.p.run(&["events", "ack", "no-such-event"])
        .code(1)
        .stderr_has("no event with id no-such-event");
    a.p.run(&["events", "ack", &id]).code(0);

    // Still failing, but nothing is left to deliver.
    a.once().code(0);
    assert_eq!(a.calls().len(), 1);
    a.p.run(&["events", "list", "--pending"])
        .code(0)
        .stdout_lacks(&id);
    a.p.run(&["events", "list"])
        .code(0)
        .stdout_has("escalation=acked");
    a.p.run(&["status"])
        .code(0)
        .stdout_has("handled: 1 event acknowledged")
        .stdout_lacks("pending: 1 event on escalation")
        .stdout_lacks("delivery error");
    assert_eq!(a.p.run(&["status", "--json"]).json()["handled_events"], 1);
}
