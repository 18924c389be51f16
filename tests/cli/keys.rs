//! `keys list`, `keys show`, `keys check` and `check-config`.

use sequoia_openpgp::types::ReasonForRevocation;

use crate::harness::*;

#[test]
fn keys_show_lists_keys_flags_user_ids_and_expiry() {
    let p = Project::new();
    let gpg = Gpg::new();
    let fpr = gpg.key("Acme Release <release@acme.example>", "ed25519", "2y", None);
    gpg.gpg(&["--quick-add-key", &fpr, "cv25519", "encr", "1y"]);
    let f = p.write("acme.asc", gpg.export(&fpr));
    let r = p.run(&["keys", "show", "acme.asc"]);
    r.code(0)
        .stdout_has(&format!("certificate {fpr}"))
        .stdout_has("user ID     Acme Release <release@acme.example>")
        .stdout_has("[certify,sign]")
        .stdout_has("[encrypt]")
        .stdout_has("status      key-ok: valid until");
    let j = p.run(&["keys", "show", "--json", f.to_str().unwrap()]);
    let v = j.json();
    assert_eq!(v[0]["fingerprint"], fpr.as_str());
    assert_eq!(v[0]["keys"].as_array().unwrap().len(), 2);
    assert_eq!(v[0]["keys"][1]["flags"][0], "encrypt");
    p.write("junk.asc", "junk");
    p.run(&["keys", "show", "junk.asc"])
        .code(2)
        .stderr_has("junk.asc: not an OpenPGP certificate file");
}

#[test]
fn keys_check_warns_for_expiring_and_fails_for_revoked_or_expired() {
    let p = Project::new();
    p.vendors(&[("acme", "acme-*.zip"), ("globex", "globex-*.zip")]);
    let soon = sq_cert("Soon <soon@acme.example>", days_ago(10), Some(DAY * 20));
    p.pin_cert("acme", "soon.asc", &armored(&soon));
    // A vendor without a keyring folder fails the check.
    p.run(&["keys", "check"])
        .code(1)
        .stderr_has("vendor globex: keyring ./keyring/globex: cannot read");
    let fine = sq_cert("Fine <fine@globex.example>", days_ago(10), None);
    p.pin_cert("globex", "fine.asc", &armored(&fine));
    p.run(&["keys", "check"])
        .code(0)
        .stdout_has("warning: key-expiring")
        .stdout_has("ok: key-ok");
    std::fs::remove_file(p.path("keyring/globex/fine.asc")).unwrap();

    let revoked = sq_revoke(
        &sq_cert("Old <old@globex.example>", days_ago(10), None),
        ReasonForRevocation::KeyCompromised,
        days_ago(1),
    );
    p.pin_cert("globex", "old.asc", &armored(&revoked));
    p.run(&["keys", "check"])
        .code(1)
        .stdout_has("error: key-revoked")
        .stdout_has("Key material has been compromised");

    std::fs::remove_file(p.path("keyring/globex/old.asc")).unwrap();
    let expired = sq_cert("Gone <gone@globex.example>", days_ago(100), Some(DAY * 10));
    p.pin_cert("globex", "gone.asc", &armored(&expired));
    let r = p.run(&["keys", "check", "--json"]);
    r.code(1);
    assert_eq!(r.json()[1]["certificates"][0]["status"], "key-expired");

    let l = p.run(&["keys", "list"]);
    l.code(0)
        .stdout_has("vendor acme (1 certificate")
        .stdout_has("vendor globex (1 certificate");
}

#[test]
fn check_config_accepts_the_shipped_example_shape_and_reports_every_problem() {
    let p = Project::new();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/feeds.toml")).unwrap();
    p.write("feeds.toml", &shipped);
    // The shipped example names a keyring and an escalation script relative to itself.
    let gpg = Gpg::new();
    let fpr = gpg.key("Dten <s@dten.example>", "ed25519", "0", None);
    let r = p.run(&["check-config"]);
    r.code(2)
        .stderr_has("vendor dten: keyring folder ./keyring/dten does not exist")
        .stderr_has("alerts.escalation: ./escalation/escalate");
    p.pin_cert("dten", "dten.asc", &gpg.export(&fpr));
    let script = p.write("escalation/escalate", "#!/bin/sh\nexit 0\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.run(&["check-config"])
        .code(0)
        .stdout_has("ok: feeds.toml: 1 vendor, 2 feeds, 1 pinned certificate");

    p.write("bad.toml", "[watch]\ninterval = \"often\"\nmax_body = \"huge\"\n[[vendor]]\nname = \"x\"\nkey_url = \"http://x.example/k\"\n");
    p.run(&["--config", "bad.toml", "check-config"])
        .code(2)
        .stderr_has("bad.toml: watch.interval: expected a duration")
        .stderr_has("bad.toml: watch.max_body: expected a size")
        .stderr_has("bad.toml: vendor[0] (x).key_url: must be https://");
    p.write(
        "typo.toml",
        "[[vendor]]\nname = \"x\"\nbundle = [\"*.zip\"]\n",
    );
    p.run(&["--config", "typo.toml", "check-config"])
        .code(2)
        .stderr_has("unknown field `bundle`");
    // A bad config stops verify too, with the same message.
    p.run(&["--config", "typo.toml", "verify", "x.zip"])
        .code(2)
        .stderr_has("typo.toml");
}
