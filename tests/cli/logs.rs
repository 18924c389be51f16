//! `--log-format`: text for people, JSON lines for journald and log shippers.

use crate::harness::Project;

/// A state file others can read: the run makes it private and logs a warning, which
/// is the log line these tests look at.
fn project_with_a_readable_state() -> Project {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    p.write("feeds.toml", "[watch]\nstate = \"state/vg.sqlite\"\n");
    p.run(&["watch", "--once"]).code(0);
    let state = p.path("state/vg.sqlite");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).unwrap();
    p
}

#[test]
fn json_logs_are_one_object_a_line_with_timestamp_level_target_and_message() {
    let p = project_with_a_readable_state();
    let r = p.run(&["--log-format", "json", "watch", "--once"]);
    r.code(0);
    let logs: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let w = logs
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("was accessible to other users"))
        })
        .unwrap_or_else(|| panic!("no JSON warning in\n{}", r.stderr));
    assert_eq!(w["level"], "WARN", "{w}");
    assert_eq!(w["target"], "vendorguard::store::sqlite", "{w}");
    let ts = w["timestamp"].as_str().expect("timestamp");
    humantime::parse_rfc3339_weak(ts).unwrap_or_else(|e| panic!("{ts}: {e}"));
    assert!(
        w["message"].as_str().unwrap().contains("vg.sqlite"),
        "the message names the file: {w}"
    );
    // No terminal escapes in a machine format.
    assert!(!r.stderr.contains('\u{1b}'), "{}", r.stderr);
}

#[test]
fn text_logs_stay_the_default_and_bad_formats_are_usage_errors() {
    let p = project_with_a_readable_state();
    let r = p.run(&["watch", "--once"]);
    r.code(0)
        .stderr_has("WARN")
        .stderr_has("was accessible to other users");
    assert!(
        !r.stderr.lines().any(|l| l.starts_with('{')),
        "{}",
        r.stderr
    );
    p.run(&["--log-format", "xml", "status"])
        .code(2)
        .stderr_has("invalid value 'xml' for '--log-format <FORMAT>'");
}
