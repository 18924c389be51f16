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
    // An expired pinned key is graded by the vendor's expired_signer: a warning under
    // the default "warn" (what it signed before still verifies), an error under
    // "reject" (every signature it made is refused).
    let r = p.run(&["keys", "check", "--json"]);
    r.code(0);
    assert_eq!(r.json()[1]["certificates"][0]["status"], "key-expired");
    assert_eq!(r.json()[1]["certificates"][0]["level"], "warning");
    p.write(
        "feeds.toml",
        "[[vendor]]\nname = \"acme\"\nbundles = [\"acme-*.zip\"]\n\n\
         [[vendor]]\nname = \"globex\"\nbundles = [\"globex-*.zip\"]\nexpired_signer = \"reject\"\n",
    );
    let r = p.run(&["keys", "check", "--json"]);
    r.code(1);
    assert_eq!(r.json()[1]["certificates"][0]["status"], "key-expired");
    assert_eq!(r.json()[1]["certificates"][0]["level"], "error");

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

#[test]
fn keys_remove_unpins_exactly_that_certificate_and_keeps_the_last_unless_forced() {
    let p = Project::new();
    p.vendors(&[("acme", "acme-*.zip")]);
    let old = sq_cert("Old <old@acme.example>", days_ago(10), None);
    let new = sq_cert("New <new@acme.example>", days_ago(1), None);
    let other = sq_cert("Other <other@acme.example>", days_ago(1), None);
    let [old_fpr, new_fpr, other_fpr] = [&old, &new, &other].map(|c| c.fingerprint().to_hex());
    p.pin_cert("acme", "old.asc", &armored(&old));
    // One file holding two certificates: only the one named goes.
    let mut both = armored(&new);
    both.extend(armored(&other));
    p.pin_cert("acme", "both.asc", &both);

    let stranger = sq_cert("Stranger <s@evil.example>", days_ago(1), None).fingerprint();
    p.run(&["keys", "remove", "acme", &stranger.to_hex()])
        .code(1)
        .stderr_has(&format!(
            "{} is not pinned for vendor acme",
            stranger.to_hex()
        ))
        .stderr_has("nothing was removed");
    p.run(&["keys", "remove", "acme", "0123ABCD"])
        .code(2)
        .stderr_has("a key ID is not enough");

    p.run(&["keys", "remove", "acme", &old_fpr])
        .code(0)
        .stdout_has(&format!(
            "removed: {old_fpr} from vendor acme (removed the file"
        ));
    assert!(!p.path("keyring/acme/old.asc").exists());

    // Spaces as read aloud are fine.
    let spaced: String = new_fpr
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    p.run(&["keys", "remove", "acme", &spaced])
        .code(0)
        .stdout_has("rewrote the file without it");
    p.run(&["keys", "list"])
        .code(0)
        .stdout_has("vendor acme (1 certificate")
        .stdout_has(&other_fpr)
        .stdout_lacks(&new_fpr);

    p.run(&["keys", "remove", "acme", &other_fpr])
        .code(1)
        .stderr_has(&format!(
            "refused: {other_fpr} is the last pinned certificate of vendor acme"
        ))
        .stderr_has("--force");
    assert!(p.path("keyring/acme/both.asc").exists());
    p.run(&["keys", "remove", "acme", &other_fpr, "--force"])
        .code(0)
        .stdout_has("warning: vendor acme has no pinned certificate left");
    assert!(!p.path("keyring/acme/both.asc").exists());
    let left: Vec<_> = std::fs::read_dir(p.path("keyring/acme")).unwrap().collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
