//! Routing: `[[alerts.include]]`/`[[alerts.exclude]]` and each channel's
//! `min_severity`. An event a channel does not carry is still stored, and shows as
//! `filtered` on that channel; key and signer events are never routed away.

use super::*;

impl A {
    /// Adds `text` to `[alerts]` (before `[alerts.email]`).
    fn alerts_extra(&self, text: &str) {
        let cfg = std::fs::read_to_string(self.p.path("feeds.toml")).unwrap();
        self.p.write(
            "feeds.toml",
            cfg.replacen("[alerts.email]\n", &format!("{text}\n[alerts.email]\n"), 1),
        );
    }

    /// Adds `text` to `[alerts.email]`.
    fn email_extra(&self, text: &str) {
        let cfg = std::fs::read_to_string(self.p.path("feeds.toml")).unwrap();
        self.p.write(
            "feeds.toml",
            cfg.replacen(
                "to = [\"oncall@example.com\"]\n",
                &format!("to = [\"oncall@example.com\"]\n{text}\n"),
                1,
            ),
        );
    }

    /// A second vendor, `beta`, with its own feed at `/feed-beta`.
    fn with_beta(&self) {
        let cfg = std::fs::read_to_string(self.p.path("feeds.toml")).unwrap();
        self.p.write(
            "feeds.toml",
            format!(
                "{cfg}\n[[vendor]]\nname = \"beta\"\n[[vendor.feed]]\nurl = \"{}\"\n",
                self.srv.url("/feed-beta")
            ),
        );
    }

    /// The channel states `events list --json` gives the event with this title.
    fn states_of(&self, title: &str) -> serde_json::Value {
        let list = self.p.run(&["events", "list", "--json"]).code(0).json();
        list.as_array()
            .unwrap()
            .iter()
            .find(|e| e["title"] == title)
            .unwrap_or_else(|| panic!("no stored event titled {title:?}: {list}"))["channels"]
            .clone()
    }
}

const EMPTY: &str = "<rss version=\"2.0\"><channel><title>t</title></channel></rss>";

both_backends!(an_excluded_vendors_advisory_is_stored_as_filtered_and_sent_nowhere);
/// An excluded vendor's advisory runs no script and sends no mail, yet is stored and
/// listed as filtered; the other vendor's advisory goes out as before.
fn an_excluded_vendors_advisory_is_stored_as_filtered_and_sent_nowhere(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    a.with_beta();
    a.alerts_extra("[[alerts.exclude]]\nvendor = \"beta\"\n");
    let smtp = a.smtp();
    a.feed(&[]);
    a.srv.route("/feed-beta", vec![Resp::ok(EMPTY)]);
    a.once().code(0);
    a.feed(&[("A1", "Acme advisory")]);
    a.srv
        .route("/feed-beta", vec![Resp::ok(rss("B1", "Beta advisory"))]);
    a.once().code(0);
    let calls = a.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0["title"], "Acme advisory");
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].contains("Acme advisory"));
    assert_eq!(
        a.states_of("Beta advisory"),
        serde_json::json!({"escalation": "filtered", "email": "filtered"})
    );
    assert_eq!(
        a.states_of("Acme advisory"),
        serde_json::json!({"escalation": "delivered", "email": "delivered"})
    );
    a.p.run(&["events", "list"])
        .code(0)
        .stdout_has("Beta advisory  [escalation=filtered email=filtered]");
    a.p.run(&["events", "list", "--pending"])
        .code(0)
        .stdout_lacks("Beta advisory");
    // Never retried, never pending.
    a.once().code(0);
    assert_eq!(a.calls().len(), 1);
    assert_eq!(smtp.messages().len(), 1);
    a.p.run(&["status"])
        .code(0)
        .stdout_has("filtered: 1 event not sent on escalation")
        .stdout_has("filtered: 1 event not sent on email")
        .stdout_has("pending: 0 events on escalation");
    let status = a.p.run(&["status", "--json"]).json();
    assert_eq!(
        status["filtered"],
        serde_json::json!([{"channel": "escalation", "events": 1}, {"channel": "email", "events": 1}])
    );
}

both_backends!(a_keyword_include_lets_only_matching_advisories_through);
/// `include` is an allow-list: only advisories naming the keyword (any case, in the
/// title or a CVE id) go out.
fn a_keyword_include_lets_only_matching_advisories_through(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    a.alerts_extra("[[alerts.include]]\nkeyword = \"openssl\"\n");
    let smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[
        ("A1", "OpenSSL in agent: upgrade"),
        ("A2", "Kernel fix CVE-2024-1086"),
    ]);
    a.once().code(0);
    let calls = a.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0["title"], "OpenSSL in agent: upgrade");
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(
        a.states_of("Kernel fix CVE-2024-1086"),
        serde_json::json!({"escalation": "filtered", "email": "filtered"})
    );
}

both_backends!(min_severity_on_the_escalation_channel_leaves_mail_alone);
/// `escalation_min_severity` limits the program only: mail still gets the medium
/// advisory, and an advisory of unknown severity passes every floor.
fn min_severity_on_the_escalation_channel_leaves_mail_alone(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    a.alerts_extra("escalation_min_severity = \"high\"\n");
    let smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[
        ("A1", "Agent fix (medium): upgrade"),
        ("A2", "Agent fix (critical): upgrade"),
        ("A3", "Agent fix: upgrade"),
    ]);
    a.once().code(0);
    let titles: Vec<String> = a
        .calls()
        .iter()
        .map(|(j, _)| j["title"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        titles,
        ["Agent fix (critical): upgrade", "Agent fix: upgrade"]
    );
    assert_eq!(smtp.messages().len(), 3, "mail has no floor");
    assert_eq!(
        a.states_of("Agent fix (medium): upgrade"),
        serde_json::json!({"escalation": "filtered", "email": "delivered"})
    );
}

both_backends!(min_severity_on_email_leaves_the_script_alone);
/// `[alerts.email] min_severity` limits mail only.
fn min_severity_on_email_leaves_the_script_alone(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    a.email_extra("min_severity = \"critical\"");
    let smtp = a.smtp();
    a.feed(&[]);
    a.once().code(0);
    a.feed(&[("A1", "Agent fix (high): upgrade")]);
    a.once().code(0);
    assert_eq!(a.calls().len(), 1);
    assert!(smtp.messages().is_empty());
    assert_eq!(
        a.states_of("Agent fix (high): upgrade"),
        serde_json::json!({"escalation": "delivered", "email": "filtered"})
    );
}

both_backends!(a_signer_event_passes_an_exclude_for_its_vendor);
/// A rule that quietens a vendor's advisories never hides that a stranger signed its
/// bundle.
fn a_signer_event_passes_an_exclude_for_its_vendor(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    a.alerts_extra(
        "escalation_min_severity = \"critical\"\n[[alerts.exclude]]\nvendor = \"acme\"\n",
    );
    a.email_extra("min_severity = \"critical\"");
    let smtp = a.smtp();
    let (_gpg, _pinned, sfpr, _bundle) = a.bundle_signed_by_a_stranger();
    a.p.run(&["verify", "acme-1.zip"]).code(3);
    let calls = a.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0["kind"], "unexpected-signer");
    assert_eq!(calls[0].0["fingerprint"], sfpr.as_str());
    assert_eq!(smtp.messages().len(), 1);
}

// One backend: a configuration error stops the command before any state is opened.
/// Routing keys are checked like every other: exit 2 naming the file and the key.
#[test]
fn bad_routing_config_is_an_error_naming_the_key() {
    let b = Backend::Sqlite;
    for (extra, key) in [
        (
            "[[alerts.exclude]]\nvendr = \"acme\"\n",
            "unknown field `vendr`",
        ),
        (
            "escalation_min_severity = \"urgent\"\n",
            "alerts.escalation_min_severity: expected one of info, low, medium, high, critical, got \"urgent\"",
        ),
        (
            "[[alerts.include]]\nvendor = \"acne\"\n",
            "alerts.include[0].vendor: no [[vendor]] is named \"acne\"",
        ),
        ("[[alerts.exclude]]\n", "alerts.exclude[0]: expected at least one of"),
    ] {
        let a = A::new(b, Some(ESC_RECORDING), "10s");
        a.alerts_extra(extra);
        let run = a.once();
        run.code(2).stderr_has(key).stderr_has("feeds.toml");
        a.p.run(&["check-config"]).code(2).stderr_has(key);
    }
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    a.email_extra("min_severity = \"unknown\"");
    a.once()
        .code(2)
        .stderr_has("alerts.email.min_severity: expected one of");
}
