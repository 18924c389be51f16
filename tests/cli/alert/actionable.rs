//! Alerts a person can act on: the severity the source gave (or `unknown`), CISA KEV's
//! own fields and the CVE ids a feed names, the vendor's contact, the same key
//! checklist in mail and script, the script's log through logger(1), and why a channel
//! failed.

use std::path::Path;
use std::process::{Command, Stdio};

use super::*;

const CONTACT: &str = "PSIRT psirt@acme.example +1 555 0100";

impl A {
    /// Gives vendor acme a `contact`.
    fn with_contact(&self) {
        let cfg = std::fs::read_to_string(self.p.path("feeds.toml")).unwrap();
        self.p.write(
            "feeds.toml",
            cfg.replace(
                "name = \"acme\"",
                &format!("name = \"acme\"\ncontact = \"{CONTACT}\""),
            ),
        );
    }

    /// Reads the feed as CISA's KEV catalogue.
    fn as_kev(&self) {
        let cfg = std::fs::read_to_string(self.p.path("feeds.toml")).unwrap();
        let url = self.srv.url("/feed");
        self.p.write(
            "feeds.toml",
            cfg.replace(
                &format!("url = \"{url}\"\n"),
                &format!("url = \"{url}\"\nformat = \"cisa-kev\"\n"),
            ),
        );
    }
}

fn kev(cves: &[&str]) -> String {
    let entries: Vec<String> = cves
        .iter()
        .map(|c| {
            format!(
                r#"{{"cveID": "{c}", "vendorProject": "Citrix", "product": "Session Recording",
                "vulnerabilityName": "Citrix Session Recording Improper Privilege Management",
                "dateAdded": "2024-11-18", "shortDescription": "x",
                "requiredAction": "Apply mitigations per vendor instructions.",
                "dueDate": "2024-12-09", "knownRansomwareCampaignUse": "Known", "notes": ""}}"#
            )
        })
        .collect();
    format!(
        r#"{{"title": "CISA Catalog of Known Exploited Vulnerabilities", "vulnerabilities": [{}]}}"#,
        entries.join(",")
    )
}

/// The lines of a mail with its quoted-printable body decoded (soft line breaks
/// joined, `=XX` turned back into bytes), without their CR.
fn body_lines(msg: &str) -> Vec<String> {
    let joined = msg.replace("=\r\n", "").replace("=\n", "");
    let mut bytes = Vec::new();
    let raw = joined.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let hex = raw
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (raw[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'=', Some(b)) => {
                bytes.push(b);
                i += 3;
            }
            (c, _) => {
                bytes.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect()
}

/// The checklist steps (`1. ...`) in `text`, trimmed.
fn steps(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| {
            let mut c = l.chars();
            c.next().is_some_and(|d| d.is_ascii_digit()) && c.as_str().starts_with(". ")
        })
        .map(str::to_string)
        .collect()
}

both_backends!(the_backlog_has_its_own_kind_and_a_silent_feed_says_unknown);
/// Issue 14: the backlog summary was typed `advisory-new`, and an RSS entry with no
/// severity became `medium`.
fn the_backlog_has_its_own_kind_and_a_silent_feed_says_unknown(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    let _smtp = a.smtp();
    a.feed(&[("OLD-1", "Old advisory"), ("OLD-2", "Older advisory")]);
    a.once().code(0);
    a.srv.route(
        "/feed",
        vec![Resp::ok(
            "<rss version=\"2.0\"><channel><title>t</title>\
             <item><title>ASA-9 fixes two holes</title><guid>ASA-9</guid><link>https://acme.example/ASA-9</link>\
             <description>Fixes CVE-2025-0001 and cve-2025-12345; see CVE-2025-0001.</description></item>\
             <item><title>Old advisory</title><guid>OLD-1</guid><link>https://acme.example/OLD-1</link><description>d</description></item>\
             <item><title>Older advisory</title><guid>OLD-2</guid><link>https://acme.example/OLD-2</link><description>d</description></item>\
             </channel></rss>",
        )],
    );
    a.once().code(0);
    let calls = a.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].0["kind"], "backlog-recorded");
    assert_eq!(calls[0].0["severity"], "info");
    assert_eq!(calls[0].0["backlog"], "2");
    let (json, env) = &calls[1];
    assert_eq!(json["kind"], "advisory-new");
    assert_eq!(json["severity"], "unknown");
    assert_eq!(
        json["cves"],
        serde_json::json!(["CVE-2025-0001", "CVE-2025-12345"])
    );
    assert!(
        env.lines()
            .any(|l| l == "VENDORGUARD_CVES=CVE-2025-0001 CVE-2025-12345"),
        "{env}"
    );
    assert!(
        env.lines().any(|l| l == "VENDORGUARD_SEVERITY=unknown"),
        "{env}"
    );
}

both_backends!(kev_alerts_carry_the_catalogue_fields_the_cves_and_the_contact);
/// Issue 14: CISA KEV alerts dropped the catalogue's due date, required action,
/// ransomware use, vendor and product, called every entry `high`, and no alert named
/// the vendor's contact.
fn kev_alerts_carry_the_catalogue_fields_the_cves_and_the_contact(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    a.with_contact();
    a.as_kev();
    let smtp = a.smtp();
    a.srv
        .route("/feed", vec![Resp::ok(kev(&["CVE-2024-8069"]))]);
    a.once().code(0);
    a.srv.route(
        "/feed",
        vec![Resp::ok(kev(&["CVE-2024-8068", "CVE-2024-8069"]))],
    );
    a.once().code(0);
    let calls = a.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].0["contact"], CONTACT, "the backlog names it too");
    let (json, env) = &calls[1];
    assert_eq!(json["kind"], "advisory-new");
    assert_eq!(json["severity"], "unknown", "KEV has no severity field");
    assert_eq!(json["cves"], serde_json::json!(["CVE-2024-8068"]));
    assert_eq!(json["dueDate"], "2024-12-09");
    assert_eq!(
        json["requiredAction"],
        "Apply mitigations per vendor instructions."
    );
    assert_eq!(json["knownRansomwareCampaignUse"], "Known");
    assert_eq!(json["vendorProject"], "Citrix");
    assert_eq!(json["product"], "Session Recording");
    assert_eq!(json["contact"], CONTACT);
    for want in [
        format!("VENDORGUARD_CONTACT={CONTACT}"),
        "VENDORGUARD_CVES=CVE-2024-8068".into(),
        "VENDORGUARD_DUE_DATE=2024-12-09".into(),
        "VENDORGUARD_REQUIRED_ACTION=Apply mitigations per vendor instructions.".into(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} in {env}");
    }
    let msgs = smtp.messages();
    let mail = msgs
        .iter()
        .find(|m| m.contains("CVE-2024-8068 Citrix"))
        .expect("the KEV mail");
    let body = body_lines(mail);
    for want in [
        "severity:    unknown",
        "cves:        CVE-2024-8068",
        "dueDate:     2024-12-09",
        "requiredAction: Apply mitigations per vendor instructions.",
        "knownRansomwareCampaignUse: Known",
        "vendorProject: Citrix",
        "product:     Session Recording",
        &format!("contact:     {CONTACT}"),
    ] {
        assert!(body.iter().any(|l| l == want), "{want:?} in {mail}");
    }
}

both_backends!(mail_and_shipped_script_give_the_same_key_checklist);
/// Issue 14: the mail for a signer event said to copy the certificate into the
/// keyring, skipping the fingerprint check the shipped script asked for. Both now give
/// one checklist, ending with the exact `keys add ... --fingerprint` command.
fn mail_and_shipped_script_give_the_same_key_checklist(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    a.with_contact();
    let smtp = a.smtp();
    let (_gpg, _pinned, sfpr, _bundle) = a.bundle_signed_by_a_stranger();
    a.p.run(&["verify", "acme-1.zip"]).code(3);
    let calls = a.calls();
    assert_eq!(calls[0].0["kind"], "unexpected-signer");
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1);
    assert!(!msgs[0].contains("copy the certificate"), "{}", msgs[0]);
    let mail_steps = steps(&body_lines(&msgs[0]));
    assert_eq!(mail_steps.len(), 4, "{}", msgs[0]);
    assert!(mail_steps[1].contains(CONTACT), "{mail_steps:?}");
    assert_eq!(
        mail_steps[3],
        format!(
            "4. If, and only if, it is genuine, pin it: vendorguard keys add CERT.asc --vendor acme --fingerprint {sfpr}"
        )
    );

    // The shipped script, given the environment vendorguard gave the recording one.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("escalation/escalate");
    let mut cmd = Command::new("sh");
    cmd.arg(&script).env_clear().env("PATH", "/usr/bin:/bin");
    for l in calls[0].1.lines() {
        let (k, v) = l.split_once('=').unwrap();
        cmd.env(k, v);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success());
    let text: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(steps(&text), mail_steps);
}

/// Issue 14: the shipped script's checklist reached nobody, and its log sat beside it
/// (under /etc). It logs through logger(1), or to stderr without one, and writes no
/// file.
#[test]
fn shipped_script_logs_through_logger_or_stderr_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("escalate");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("escalation/escalate"),
        &script,
    )
    .unwrap();
    let bin = tempfile::tempdir().unwrap();
    let logged = bin.path().join("logged");
    std::fs::write(
        bin.path().join("logger"),
        format!(
            "#!/bin/sh\nprintf 'args: %s\\n' \"$*\" >> '{0}'\ncat >> '{0}'\n",
            logged.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        bin.path().join("logger"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let fpr = "0123456789ABCDEF0123456789ABCDEF01234567";
    let run = |path: &str| {
        Command::new("/bin/sh")
            .arg(&script)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", path)
            .env("VENDORGUARD_EVENT_ID", "e1")
            .env("VENDORGUARD_KIND", "key-changed")
            .env("VENDORGUARD_VENDOR", "acme")
            .env("VENDORGUARD_SEVERITY", "high")
            .env("VENDORGUARD_TITLE", "t")
            .env("VENDORGUARD_FINGERPRINT", fpr)
            .env("VENDORGUARD_CONTACT", CONTACT)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let pin = format!("vendorguard keys add CERT.asc --vendor acme --fingerprint {fpr}");
    let out = run(&format!("{}:/usr/bin:/bin", bin.path().display()));
    assert!(out.status.success());
    let log = std::fs::read_to_string(&logged).unwrap();
    assert!(log.starts_with("args: -t vendorguard-escalate"), "{log}");
    assert!(log.contains(&pin), "{log}");
    assert!(log.contains(CONTACT), "{log}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // No logger on PATH: the same text on stderr.
    let tools = tempfile::tempdir().unwrap();
    for t in ["cat", "tr", "sed"] {
        let real = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(t))
            .find(|p| p.exists())
            .unwrap();
        std::os::unix::fs::symlink(real, tools.path().join(t)).unwrap();
    }
    let out = run(&tools.path().display().to_string());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&pin));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&pin));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["escalate"], "the script wrote beside itself");
}

// One backend: `alert test` neither reads nor writes the state.
/// Issue 14: `alert test` hid why the script failed, and the SMTP error repeated its
/// cause (`Connection refused (os error 111): Connection refused (os error 111)`).
#[test]
fn alert_test_shows_the_scripts_stderr_and_status_and_each_cause_once() {
    let b = Backend::Sqlite;
    let a = A::new(
        b,
        Some("#!/bin/sh\necho 'paging service said: 401 bad token' >&2\nexit 7\n"),
        "10s",
    );
    let r = a.p.run(&["alert", "test"]);
    r.code(1)
        .stderr_has("failed: escalation: exit: escalation program ./esc.sh exited with status 7")
        .stderr_has("escalation output: paging service said: 401 bad token")
        .stderr_has("failed: email: ");
    let refused = "Connection refused (os error 111)";
    assert_eq!(r.stderr.matches(refused).count(), 1, "{}", r.stderr);
    let r = a.p.run(&["alert", "test", "--json"]);
    r.code(1);
    let esc = &r.json()["channels"][0];
    assert_eq!(esc["channel"], "escalation");
    assert_eq!(esc["output"], "paging service said: 401 bad token\n");
}
