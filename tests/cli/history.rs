//! The history of verdicts, the inventory, and rollback and freeze refusals: real
//! GnuPG-signed bundles, the real binary, and the state database changed behind its
//! back with Python's sqlite3 module.

use std::path::PathBuf;
use std::process::Command;
use std::time::SystemTime;

use serde_json::Value;

use crate::harness::*;
use crate::verify::sha256_hex;

const CONFIG: &str = r#"
[[vendor]]
name = "acme"
bundles = ["acme-*"]

[[vendor.product]]
name = "acme-app"
bundles = ["acme-app-*.zip"]

[[vendor.product]]
name = "acme-agent"
bundles = ["acme-agent_*.zip"]
version_pattern = 'acme-agent_v([0-9][0-9.]*)_'
"#;

/// A project with vendor `acme`, its products, and a pinned GnuPG key.
struct Bench {
    p: Project,
    gpg: Gpg,
    fpr: String,
}

impl Bench {
    fn new(extra: &str) -> Bench {
        let p = Project::new();
        p.write("feeds.toml", format!("{CONFIG}{extra}"));
        let gpg = Gpg::new();
        let fpr = gpg.key("Acme <a@acme.example>", "ed25519", "0", None);
        p.pin_cert("acme", "acme.asc", &gpg.export(&fpr));
        Bench { p, gpg, fpr }
    }

    /// A signed zip `name` holding one file with `content`.
    fn bundle(&self, name: &str, content: &str) -> String {
        let path = self.p.path(name);
        let out = Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n    z.writestr('app/VERSION', sys.argv[2])\n",
                path.to_str().unwrap(),
                content,
            ])
            .output()
            .expect("python3 is installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.sign(name);
        name.to_string()
    }

    fn sign(&self, name: &str) {
        let path = self.p.path(name);
        let sig = PathBuf::from(format!("{}.asc", path.display()));
        self.gpg
            .detach_sign(&self.fpr, &path, &sig, "SHA256", None, true);
    }

    fn history(&self) -> Vec<Value> {
        let r = self.p.run(&["history", "--json"]);
        r.code(0);
        r.json().as_array().expect("an array").clone()
    }

    /// Runs `sql` against the state with Python's sqlite3 module.
    fn sql(&self, script: &str) {
        let db = self.p.path("state/vendorguard.sqlite");
        let out = Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()\nc.close()\n",
                db.to_str().unwrap(),
                script,
            ])
            .output()
            .expect("python3 is installed");
        assert!(
            out.status.success(),
            "sqlite3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_verify_and_unpack_is_recorded_with_its_fields() {
    let b = Bench::new("");
    let ok = b.bundle("acme-app-1.0.zip", "1.0");
    b.p.run(&["verify", &ok]).code(0);
    b.p.run(&["unpack", &ok, "--into", "out"]).code(0);
    let bad = b.bundle("acme-agent_v2.3_linux.zip", "2.3");
    std::fs::write(b.p.path(&bad), b"tampered").unwrap();
    b.p.run(&["verify", &bad]).code(1);

    let h = b.history();
    assert_eq!(h.len(), 3, "{h:#?}");
    let bytes = std::fs::read(b.p.path(&ok)).unwrap();
    let first = &h[0];
    assert_eq!(first["seq"], 1);
    assert_eq!(first["command"], "verify");
    assert_eq!(first["verdict"], "verified");
    assert_eq!(first["vendor"], "acme");
    assert_eq!(first["product"], "acme-app");
    assert_eq!(first["version"], "1.0");
    assert_eq!(first["sha256"], sha256_hex(&bytes));
    assert_eq!(first["size"], bytes.len());
    assert_eq!(first["signers"], serde_json::json!([b.fpr]));
    assert_eq!(first["unexpected_signers"], serde_json::json!([]));
    assert_eq!(first["into"], Value::Null);
    assert!(first["bundle"]
        .as_str()
        .unwrap()
        .ends_with("/acme-app-1.0.zip"));
    assert!(!first["user"].as_str().unwrap().is_empty());
    assert!(!first["host"].as_str().unwrap().is_empty());
    assert_eq!(first["prev"], "0".repeat(64));
    assert!(first["time"].as_str().unwrap().ends_with('Z'));

    let second = &h[1];
    assert_eq!(second["command"], "unpack");
    assert_eq!(second["verdict"], "verified");
    assert!(second["into"].as_str().unwrap().ends_with("/out"));
    assert_eq!(second["prev"], first["hash"]);

    let third = &h[2];
    assert_eq!(third["verdict"], "rejected");
    assert_eq!(third["product"], "acme-agent");
    assert_eq!(third["version"], "2.3", "from version_pattern");
    assert_eq!(third["codes"], serde_json::json!(["bad-signature"]));
    assert_eq!(third["signers"], serde_json::json!([]));

    let r = b.p.run(&["history"]);
    r.code(0)
        .stdout_has("#2 ")
        .stdout_has(" unpack verified ")
        .stdout_has("product acme-app version 1.0")
        .stdout_has(" codes bad-signature ");
    let only = b.p.run(&["history", "--product", "acme-agent", "--json"]);
    assert_eq!(only.code(0).json().as_array().unwrap().len(), 1);
    let none = b.p.run(&["history", "--vendor", "other", "--json"]);
    assert_eq!(none.code(0).json(), serde_json::json!([]));
    b.p.run(&["history", "--check"])
        .code(0)
        .stdout_has("history intact: 3 records");

    // An archive unpack refuses is recorded as rejected, with the archive's code.
    let evil = b.p.path("acme-app-1.1.zip");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n    z.writestr('../evil', 'x')\n",
            evil.to_str().unwrap(),
        ])
        .output()
        .expect("python3 is installed");
    assert!(out.status.success());
    b.sign("acme-app-1.1.zip");
    b.p.run(&["unpack", "acme-app-1.1.zip", "--into", "evil"])
        .code(1)
        .stderr_has("path-traversal");
    let last = b.history().pop().unwrap();
    assert_eq!(last["command"], "unpack");
    assert_eq!(last["verdict"], "rejected");
    assert_eq!(last["codes"], serde_json::json!(["path-traversal"]));
    assert_eq!(last["into"], Value::Null);
    assert_eq!(last["signers"], serde_json::json!([b.fpr]));
    let inv = b.p.run(&["inventory", "--json"]).code(0).json();
    assert_eq!(
        inv[0]["installed"], "1.0",
        "a refused unpack installs nothing"
    );
}

#[test]
fn history_check_names_the_record_changed_removed_or_reordered() {
    let b = Bench::new("");
    for v in ["1.0", "1.1", "1.2"] {
        let name = b.bundle(&format!("acme-app-{v}.zip"), v);
        b.p.run(&["verify", &name]).code(0);
    }
    b.p.run(&["history", "--check"]).code(0);
    b.sql("CREATE TABLE pristine AS SELECT * FROM history;");
    let restore = "DELETE FROM history; INSERT INTO history SELECT * FROM pristine;";
    for (tamper, want) in [
        (
            "UPDATE history SET verdict = 'rejected' WHERE seq = 2;",
            "history broken at record 2: record 2 was changed",
        ),
        (
            "DELETE FROM history WHERE seq = 2;",
            "history broken at record 2: record 2 was removed",
        ),
        (
            "UPDATE history SET seq = 100 WHERE seq = 1; UPDATE history SET seq = 1 WHERE seq = 2;
             UPDATE history SET seq = 2 WHERE seq = 100;",
            "history broken at record 1: record 1 was changed or reordered",
        ),
        (
            "DELETE FROM history WHERE seq = 3;",
            "history broken at record 3: record 3 was removed",
        ),
        (
            "UPDATE history SET host = 'elsewhere' WHERE seq = 3;",
            "history broken at record 3: record 3 was changed",
        ),
    ] {
        b.sql(tamper);
        b.p.run(&["history", "--check"]).code(1).stdout_has(want);
        b.sql(restore);
        b.p.run(&["history", "--check"]).code(0);
    }
}

#[test]
fn inventory_from_config_and_from_history() {
    let b = Bench::new(
        "\n[[vendor.product]]\nname = \"acme-tool\"\nbundles = [\"acme-tool-*.zip\"]\ninstalled = \"7.1\"\n",
    );
    let r = b.p.run(&["inventory", "--json"]);
    let inv = r.code(0).json();
    assert_eq!(inv.as_array().unwrap().len(), 3, "{inv:#}");
    assert_eq!(inv[0]["product"], "acme-app");
    assert_eq!(inv[0]["installed"], Value::Null);
    assert_eq!(inv[0]["source"], Value::Null);
    assert_eq!(inv[2]["vendor"], "acme");
    assert_eq!(inv[2]["product"], "acme-tool");
    assert_eq!(inv[2]["installed"], "7.1");
    assert_eq!(inv[2]["source"], "config");

    let name = b.bundle("acme-app-1.5.zip", "1.5");
    b.p.run(&["verify", &name]).code(0);
    let inv = b.p.run(&["inventory", "--json"]).code(0).json();
    assert_eq!(inv[0]["installed"], Value::Null, "verify installs nothing");
    b.p.run(&["unpack", &name, "--into", "out"]).code(0);
    let inv = b.p.run(&["inventory", "--json"]).code(0).json();
    assert_eq!(inv[0]["installed"], "1.5");
    assert_eq!(inv[0]["source"], "history");
    assert_eq!(
        inv[0]["sha256"],
        sha256_hex(&std::fs::read(b.p.path(&name)).unwrap())
    );
    assert!(inv[0]["since"].as_str().unwrap().ends_with('Z'));
    b.p.run(&["inventory"])
        .code(0)
        .stdout_has("acme acme-app 1.5 source history since ")
        .stdout_has("acme acme-tool 7.1 source config")
        .stdout_has("acme acme-agent not installed");
}

#[test]
fn a_lower_version_is_a_rollback_unless_allowed() {
    let b = Bench::new("");
    let v19 = b.bundle("acme-app-1.9.zip", "1.9");
    b.p.run(&["unpack", &v19, "--into", "a"]).code(0);
    // 1.10 is newer than 1.9.
    let v110 = b.bundle("acme-app-1.10.zip", "1.10");
    b.p.run(&["unpack", &v110, "--into", "b"]).code(0);

    let r = b.p.run(&["verify", &v19]);
    r.code(1)
        .stdout_has("rejected: acme-app-1.9.zip: rollback")
        .stdout_has(
            "rollback: version 1.9 of acme-app is lower than the installed version 1.10 (unpacked ",
        )
        .stdout_has("--allow-downgrade");
    assert_eq!(
        b.p.run(&["verify", &v19, "--json"]).json()["codes"],
        serde_json::json!(["rollback"])
    );
    b.p.run(&["unpack", &v19, "--into", "c"])
        .code(1)
        .stderr_has("nothing was extracted");
    assert!(!b.p.path("c").exists());

    let r =
        b.p.run(&["unpack", &v19, "--into", "c", "--allow-downgrade"]);
    r.code(0)
        .stdout_has("warning: rollback: ")
        .stdout_has("accepted by --allow-downgrade");
    let h = b.history();
    let last = h.last().unwrap();
    assert_eq!(last["allowed"], serde_json::json!(["rollback"]));
    assert_eq!(last["verdict"], "verified");
    assert_eq!(h[h.len() - 2]["codes"], serde_json::json!(["rollback"]));
    // Now 1.9 is installed again: 1.10 is an upgrade.
    b.p.run(&["verify", &v110]).code(0);
}

#[test]
fn installed_in_the_config_wins_and_refuses_older_bundles() {
    let b = Bench::new("");
    let toml = std::fs::read_to_string(b.p.path("feeds.toml"))
        .unwrap()
        .replace(
            "bundles = [\"acme-app-*.zip\"]",
            "bundles = [\"acme-app-*.zip\"]\ninstalled = \"3.0\"",
        );
    b.p.write("feeds.toml", toml);
    let old = b.bundle("acme-app-2.5.zip", "2.5");
    b.p.run(&["verify", &old])
        .code(1)
        .stdout_has("version 2.5 of acme-app is lower than the installed version 3.0 (installed = in feeds.toml)");
    let pre = b.bundle("acme-app-3.0-rc1.zip", "3.0-rc1");
    b.p.run(&["verify", &pre]).code(1).stdout_has("rollback");
    let same = b.bundle("acme-app-3.0.0.zip", "3.0.0");
    b.p.run(&["verify", &same]).code(0);
}

#[test]
fn the_installed_version_with_other_bytes_is_version_reused() {
    let b = Bench::new("");
    let name = b.bundle("acme-app-2.0.zip", "2.0 genuine");
    let first = sha256_hex(&std::fs::read(b.p.path(&name)).unwrap());
    b.p.run(&["unpack", &name, "--into", "a"]).code(0);
    b.p.run(&["verify", &name]).code(0);

    b.bundle("acme-app-2.0.zip", "2.0 other bytes");
    let second = sha256_hex(&std::fs::read(b.p.path(&name)).unwrap());
    let r = b.p.run(&["verify", &name]);
    r.code(1)
        .stdout_has("rejected: acme-app-2.0.zip: version-reused")
        .stdout_has(&format!("installed from a bundle with SHA-256 {first}"))
        .stdout_has(&format!("has SHA-256 {second}"));
    b.p.run(&["verify", &name, "--allow-downgrade"])
        .code(0)
        .stdout_has("warning: version-reused: ");
    assert_eq!(
        b.history().last().unwrap()["allowed"],
        serde_json::json!(["version-reused"])
    );
}

#[test]
fn a_state_that_cannot_be_written_never_passes_silently() {
    let b = Bench::new("");
    let name = b.bundle("acme-app-1.0.zip", "1.0");
    b.p.write("state/vendorguard.sqlite", b"not a database at all");
    b.p.run(&["verify", &name])
        .code(0)
        .stdout_has("verified: ")
        .stderr_has("state/vendorguard.sqlite")
        .stderr_has("this verdict is not in the history");
    b.p.run(&["unpack", &name, "--into", "out"])
        .code(2)
        .stderr_has("the history cannot record this unpack, so nothing was extracted");
    assert!(!b.p.path("out").exists());
    assert_eq!(
        std::fs::read(b.p.path("state/vendorguard.sqlite")).unwrap(),
        b"not a database at all"
    );
    b.p.run(&["history", "--check"])
        .code(2)
        .stderr_has("not an SQLite database");
}

/// An apt `InRelease` clearsigned by GnuPG with `Date:` and `Valid-Until:` set
/// relative to now (in days; the binary reads the real clock).
fn in_release(b: &Bench, name: &str, date: SystemTime, valid_until: SystemTime) {
    let text = format!(
        "Origin: Acme\nSuite: stable\nDate: {}\nValid-Until: {}\nSHA256:\n 0af8 100 main/binary-amd64/Packages\n",
        httpdate::fmt_http_date(date),
        httpdate::fmt_http_date(valid_until).replace("GMT", "UTC"),
    );
    let plain = b.p.write(&format!("{name}.txt"), text);
    b.gpg
        .sign_inline(&b.fpr, &plain, &b.p.path(name), "--clearsign");
}

#[test]
fn stale_and_future_release_metadata_is_refused() {
    let b = Bench::new("");
    in_release(&b, "InRelease", days_ago(1), days_ahead(6));
    b.p.run(&["verify", "--vendor", "acme", "InRelease"])
        .code(0);

    in_release(&b, "InRelease", days_ago(10), days_ago(3));
    let r = b.p.run(&["verify", "--vendor", "acme", "InRelease"]);
    r.code(1)
        .stdout_has("rejected: InRelease: expired-metadata (vendor acme)")
        .stdout_has("problem: InRelease: expired-metadata: the signed Valid-Until: ")
        .stdout_has("is past")
        .stdout_has("a freeze");
    // The signatures themselves are good: the refusal is the metadata's age.
    let v =
        b.p.run(&["verify", "--vendor", "acme", "InRelease", "--json"])
            .json();
    assert_eq!(v["codes"], serde_json::json!(["expired-metadata"]));
    assert_eq!(v["signatures"][0]["status"], "good-signature");
    // --allow-downgrade is about product versions; it does not revive stale metadata.
    b.p.run(&[
        "verify",
        "--vendor",
        "acme",
        "InRelease",
        "--allow-downgrade",
    ])
    .code(1);

    // apt's lists name it host_path_InRelease; the same rule applies.
    in_release(
        &b,
        "deb.acme.example_dists_stable_InRelease",
        days_ahead(1),
        days_ahead(8),
    );
    let r = b.p.run(&[
        "verify",
        "--vendor",
        "acme",
        "deb.acme.example_dists_stable_InRelease",
    ]);
    r.code(1)
        .stdout_has("future-metadata: the signed Date: ")
        .stdout_has("allowed clock skew of 300 seconds");

    // A cleartext-signed file that is no release metadata may carry any Date.
    let plain = b.p.write(
        "notes.txt",
        format!("Date: {}\n", httpdate::fmt_http_date(days_ahead(30))),
    );
    b.gpg
        .sign_inline(&b.fpr, &plain, &b.p.path("notes.asc"), "--clearsign");
    b.p.run(&["verify", "--vendor", "acme", "notes.asc"])
        .code(0);
    assert_eq!(b.history().last().unwrap()["verdict"], "verified");
}
