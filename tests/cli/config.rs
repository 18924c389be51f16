//! Where the configuration comes from, what `check-config` demands of a vendor, the
//! vendor's signer policy as every command applies it, and what the logs look like
//! when nobody is watching a terminal.

use openpgp::serialize::SerializeInto;
use openpgp::types::HashAlgorithm;
use sequoia_openpgp as openpgp;

use crate::harness::*;

/// A vendor of plain feeds (CISA KEV, RSS) and one that verifies nothing else either.
const FEEDS_ONLY: &str = r#"
[[vendor]]
name = "cisa"

[[vendor.feed]]
url = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"
format = "cisa-kev"

[[vendor]]
name = "news"

[[vendor.feed]]
url = "https://news.example/security.rss"
"#;

#[test]
fn check_config_passes_a_feed_only_vendor_without_a_keyring() {
    let p = Project::new();
    p.write("feeds.toml", FEEDS_ONLY);
    p.run(&["check-config"])
        .code(0)
        .stdout_has("ok: feeds.toml: 2 vendors, 2 feeds, 0 pinned certificates");
    p.run(&["keys", "check"])
        .code(0)
        .stdout_has("vendor cisa (no keyring: feeds only)");

    // What verifies signatures still needs its keyring, and the message says for what.
    let csaf = format!(
        "{FEEDS_ONLY}\n[[vendor]]\nname = \"acme\"\nbundles = [\"acme-*.zip\"]\n\n[[vendor.feed]]\nurl = \"https://acme.example/.well-known/csaf/provider-metadata.json\"\nformat = \"csaf\"\n"
    );
    p.write("feeds.toml", &csaf);
    p.run(&["check-config"])
        .code(2)
        .stderr_has("vendor acme: keyring folder ./keyring/acme does not exist; it is needed for bundles, a CSAF feed")
        .stderr_has("1 problem");
}

/// Issue 14: with no configuration, the state and alert commands said only "pass
/// --config FILE"; they name the whole search order, as `check-config` does.
#[test]
fn without_a_configuration_every_command_names_the_search_order() {
    assert!(
        !std::path::Path::new("/etc/vendorguard/feeds.toml").exists(),
        "this test needs a machine without /etc/vendorguard/feeds.toml"
    );
    let p = Project::new();
    for args in [
        &["watch", "--once"][..],
        &["status"],
        &["events", "list"],
        &["alert", "test"],
        &["check-config"],
    ] {
        p.run(args)
            .code(2)
            .stderr_has("pass --config FILE, set $VENDORGUARD_CONFIG, or put feeds.toml in the current folder or at /etc/vendorguard/feeds.toml");
    }
}

#[test]
fn configuration_search_order_is_flag_then_environment_then_current_folder() {
    let p = Project::new();
    let one = "[[vendor]]\nname = \"one\"\n";
    let two = "[[vendor]]\nname = \"two\"\n\n[[vendor]]\nname = \"three\"\n";
    p.write("feeds.toml", one);
    p.write("elsewhere/two.toml", two);
    let cwd = p.dir.path();
    let env_path = p.path("elsewhere/two.toml");
    let env = [("VENDORGUARD_CONFIG", env_path.to_str().unwrap())];

    // ./feeds.toml when nothing names a file.
    p.run(&["check-config"]).code(0).stdout_has("1 vendor,");
    // $VENDORGUARD_CONFIG before ./feeds.toml.
    p.run_env(cwd, &["check-config"], &env)
        .code(0)
        .stdout_has("two.toml: 2 vendors,");
    // --config before both.
    p.run_env(cwd, &["--config", "feeds.toml", "check-config"], &env)
        .code(0)
        .stdout_has("ok: feeds.toml: 1 vendor,");
    // A named file that is missing is an error naming it and who named it.
    p.run_env(
        cwd,
        &["check-config"],
        &[("VENDORGUARD_CONFIG", "gone.toml")],
    )
    .code(2)
    .stderr_has("gone.toml: no such configuration file (named by $VENDORGUARD_CONFIG)");
    p.run(&["--config", "gone.toml", "check-config"])
        .code(2)
        .stderr_has("gone.toml: no such configuration file (named by --config)");
    // Set but empty is as if unset.
    p.run_env(cwd, &["check-config"], &[("VENDORGUARD_CONFIG", "")])
        .code(0)
        .stdout_has("1 vendor,");
}

#[test]
fn logs_off_a_terminal_have_no_colour_and_a_timestamp_and_level_on_every_line() {
    let p = Project::new();
    // A keyring holding secret key material is used with a warning.
    let cert = sq_cert("Acme <release@acme.example>", days_ago(1), None);
    p.write("tsk.asc", cert.as_tsk().armored().to_vec().unwrap());
    p.write("bundle.zip", "bytes");
    let r = p.run(&["verify", "--keyring", "tsk.asc", "bundle.zip"]);
    r.code(1).stderr_has("holds secret key material");
    let logs: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| !l.starts_with("vendorguard: "))
        .collect();
    assert!(!logs.is_empty(), "no log line\n{}", r.stderr);
    assert!(
        !r.stderr.contains('\x1b'),
        "ANSI escapes in\n{:?}",
        r.stderr
    );
    for line in logs {
        let (stamp, rest) = line.split_once(' ').unwrap_or((line, ""));
        assert!(
            stamp.len() >= 20
                && stamp.as_bytes()[4] == b'-'
                && stamp.contains('T')
                && stamp.ends_with('Z'),
            "no timestamp on {line:?}"
        );
        assert!(
            rest.trim_start().starts_with("WARN "),
            "no level on {line:?}"
        );
    }
}

/// feeds.toml with vendor acme (bundles `acme-*.zip`) and `extra` lines of policy.
fn acme_with(p: &Project, extra: &str) {
    p.write(
        "feeds.toml",
        format!("[[vendor]]\nname = \"acme\"\nbundles = [\"acme-*.zip\"]\n{extra}\n"),
    );
}

#[test]
fn expired_signer_reject_is_seen_the_same_by_verify_unpack_keys_check_and_check_config() {
    // Days before now:  100 key made (valid 30 days)   80 it signs   70 it expires
    let p = Project::new();
    let cert = sq_cert(
        "Acme Release <release@acme.example>",
        days_ago(100),
        Some(DAY * 30),
    );
    let fpr = cert.fingerprint().to_hex();
    p.pin_cert("acme", "acme.asc", &armored(&cert));
    let data = b"bundle bytes";
    p.write("acme-1.zip", data);
    p.write(
        "acme-1.zip.asc",
        sq_sign(&cert, data, days_ago(80), HashAlgorithm::SHA256),
    );

    // The default, warn: accepted with a warning; the pinned key is a warning too.
    acme_with(&p, "");
    p.run(&["verify", "acme-1.zip"])
        .code(0)
        .stdout_has("warning: key-expired-since-signing");
    p.run(&["keys", "check"])
        .code(0)
        .stdout_has("warning: key-expired")
        .stdout_has("expired_signer = \"warn\"");
    p.run(&["check-config"])
        .code(0)
        .stdout_has(&format!(
            "warning: vendor acme: pinned certificate {fpr}: key-expired"
        ))
        .stdout_has("ok: feeds.toml");

    // reject, as apt does: refused everywhere, and the key is an error everywhere.
    acme_with(&p, "expired_signer = \"reject\"");
    let r = p.run(&["verify", "--json", "acme-1.zip"]);
    r.code(1);
    assert_eq!(r.codes(), ["key-expired-since-signing"]);
    assert_eq!(
        r.json()["signatures"][0]["status"],
        "key-expired-since-signing"
    );
    p.run(&["unpack", "acme-1.zip", "--into", "out"])
        .code(1)
        .stdout_has("rejected: acme-1.zip: key-expired-since-signing");
    assert!(!p.path("out").exists());
    p.run(&["keys", "check"])
        .code(1)
        .stdout_has("error: key-expired")
        .stdout_has("expired_signer = \"reject\"");
    p.run(&["check-config"])
        .code(2)
        .stderr_has(&format!(
            "vendor acme: pinned certificate {fpr}: key-expired"
        ))
        .stderr_has("expired_signer = \"reject\"");

    acme_with(
        &p,
        "expired_signer = \"sometimes\"\nmax_signature_age = \"old\"",
    );
    p.run(&["check-config"])
        .code(2)
        .stderr_has(
            "vendor[0] (acme).expired_signer: expected \"warn\" or \"reject\", got \"sometimes\"",
        )
        .stderr_has("vendor[0] (acme).max_signature_age: expected a duration");
}

#[test]
fn max_signature_age_refuses_an_old_signature_which_then_does_not_count() {
    // Days before now:  900 both keys made   500 A signs   10 B signs
    let p = Project::new();
    let a = sq_cert("Builder A <a@acme.example>", days_ago(900), None);
    let b = sq_cert("Builder B <b@acme.example>", days_ago(900), None);
    p.pin_cert("acme", "a.asc", &armored(&a));
    p.pin_cert("acme", "b.asc", &armored(&b));
    let data = b"bundle bytes";
    p.write("acme-1.zip", data);
    let mut sigs = sq_sign(&a, data, days_ago(500), HashAlgorithm::SHA256);
    sigs.extend(sq_sign(&b, data, days_ago(10), HashAlgorithm::SHA256));
    p.write("acme-1.zip.asc", sigs);

    acme_with(&p, "signatures = 2");
    p.run(&["verify", "acme-1.zip"]).code(0);

    acme_with(&p, "signatures = 2\nmax_signature_age = \"400d\"");
    let r = p.run(&["verify", "--json", "acme-1.zip"]);
    r.code(1);
    assert_eq!(r.codes(), ["below-threshold", "signature-too-old"]);
    let statuses: Vec<_> = r.json()["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["signature-too-old", "good-signature"]);

    // One required: B's signature is enough, and A's refusal is a warning.
    acme_with(&p, "signatures = 1\nmax_signature_age = \"400d\"");
    p.run(&["verify", "acme-1.zip"])
        .code(0)
        .stdout_has("warning: signature-too-old")
        .stdout_has("longer than the vendor's max_signature_age of 400 days");
}
