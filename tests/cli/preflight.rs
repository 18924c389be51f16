//! `vendorguard preflight` against a host tree (`--root` with systemd units) and a
//! hosts file (`--hosts`: no DNS query is ever made): every finding and every
//! non-finding of the story's version 2.0, the rollback checklist, the exit codes; and
//! `unpack`'s `preflight:` lines.

use std::path::PathBuf;

use crate::diff::{bundle, new_spec, Spec};
use crate::harness::*;

/// A project with version 2.0, a host tree that has postgresql installed, and a hosts
/// file that knows the new SFTP server and the webhook's host.
fn host() -> Project {
    let p = Project::new();
    bundle(&p.path("acme-2.0.zip"), &new_spec());
    p.write("root/lib/systemd/system/postgresql.service", "[Service]\n");
    p.write("root/etc/systemd/system/multi-user.target.wants/.keep", "");
    p.write(
        "hosts",
        "# test resolver\n127.0.0.1 localhost\n10.0.0.5 sftp.example.com hooks.vendor.example.com db2.example.com\n",
    );
    p
}

fn preflight(p: &Project, bundle: &str, extra: &[&str], sudo: &str) -> Run {
    let mut args = vec!["preflight", bundle, "--root", "root", "--hosts", "hosts"];
    args.extend(extra);
    p.run_env(p.dir.path(), &args, &[("VENDORGUARD_CAN_SUDO", sudo)])
}

type Row = (String, String, String, Option<u64>, String);

fn rows(run: &Run, member: &str, code: &str) -> Vec<Row> {
    run.json()[member]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f[code].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap_or("-").to_string(),
                f["path"].as_str().unwrap().to_string(),
                f["line"].as_u64(),
                f["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn preflight_finds_what_breaks_on_this_host() {
    let p = host();
    let run = preflight(&p, "acme-2.0.zip", &["--json"], "no");
    run.code(1);
    let findings = rows(&run, "findings", "code");
    let row = |c: &str, s: &str, path: &str, line: u64, d: &str| {
        (
            c.to_string(),
            s.to_string(),
            path.to_string(),
            Some(line),
            d.to_string(),
        )
    };
    let want = [
        row("missing-unit", "blocking", "install.sh", 4,
            "unit acme-worker.service is neither installed under the root nor shipped in the bundle"),
        row("missing-unit", "blocking", "etc/systemd/system/acme-importer.service", 2,
            "unit acme-db.service is neither installed under the root nor shipped in the bundle"),
        row("unresolvable-host", "blocking", "etc/cron.d/acme-import", 2,
            "sftp-legacy.example.com does not resolve (cron job)"),
        row("schema-change-without-lock", "blocking", "sql/001-add-column.sql", 2,
            "ALTER TABLE jobs ADD COLUMN priority int; (no lock or migration tool in this file)"),
        row("unresolvable-host", "warning", "install.sh", 6,
            "mirror.gone.example.com does not resolve (not in a cron job or unit)"),
        row("needs-root", "warning", "install.sh", 2,
            "sudo: sudo -u acme /opt/acme/bin/agent migrate (the user cannot sudo -n)"),
        row("needs-root", "warning", "post-install.sh", 3,
            "writes /etc/other-app/flags.conf as a user who cannot sudo -n"),
    ];
    for w in &want {
        assert!(findings.contains(w), "missing {w:?} in {findings:#?}");
    }
    // Non-findings: a shipped unit, an installed unit, a target, hosts the file
    // resolves, a host only in a comment, DDL behind a lock.
    let all = format!("{findings:?}");
    for absent in [
        "acme-importer.service is neither",
        "postgresql.service",
        "network.target",
        "sftp.example.com does",
        "hooks.vendor.example.com",
        "db2.example.com",
        "old-archive.example.com",
        "docs.gone.example.com",
        "scripts/migrate.sh",
    ] {
        assert!(!all.contains(absent), "{absent} reported: {findings:#?}");
    }

    let rollback = rows(&run, "rollback", "kind");
    let item = |k: &str, path: &str, line: Option<u64>, d: &str| {
        (
            k.to_string(),
            "-".to_string(),
            path.to_string(),
            line,
            d.to_string(),
        )
    };
    for w in [
        item("outbound-registration", "post-install.sh", Some(2),
             "curl -fsS -X POST https://hooks.vendor.example.com/register -d @/etc/acme/id"),
        item("outside-write", "post-install.sh", Some(3),
             "writes /etc/other-app/flags.conf, outside the bundle's own paths"),
        item("database-change", "sql/001-add-column.sql", Some(2), "ALTER TABLE jobs ADD COLUMN priority int;"),
        item("database-change", "scripts/migrate.sh", Some(2),
             "flock /var/lock/acme-migrate psql -c 'ALTER TABLE jobs DROP COLUMN legacy'"),
        item("account", "post-install.sh", Some(4), "useradd: useradd -r acmeimport"),
        item("cron", "etc/cron.d/acme-import", Some(2),
             "schedule 0 3 * * *, user acme, command /opt/acme/bin/agent fetch sftp://sftp-legacy.example.com/in"),
        item("systemd", "etc/systemd/system/acme-importer.service", None,
             "User=acme; ExecStart=/opt/acme/bin/agent import --v2; WantedBy=multi-user.target"),
    ] {
        assert!(rollback.contains(&w), "missing {w:?} in {rollback:#?}");
    }
    // The bundle's own folder is no outside write.
    assert!(!format!("{rollback:?}").contains("/etc/acme/installed"));

    // Text: blocking first, then warnings, then the checklist with file and line.
    let text = preflight(&p, "acme-2.0.zip", &[], "no");
    text.code(1)
        .stdout_has("preflight: acme-2.0.zip: 4 blocking, ")
        .stdout_has("blocking missing-unit: install.sh:4  unit acme-worker.service")
        .stdout_has("rollback checklist (a snapshot restore does not undo these):")
        .stdout_has("  [ ] outbound-registration: post-install.sh:2  curl -fsS -X POST");
    let out = &text.stdout;
    assert!(out.find("blocking").unwrap() < out.find("warning ").unwrap());
}

#[test]
fn a_user_who_can_sudo_needs_no_root_and_a_clean_bundle_exits_0() {
    let p = host();
    let run = preflight(&p, "acme-2.0.zip", &["--json"], "yes");
    run.code(1);
    assert!(!run.stdout.contains("needs-root"), "{}", run.stdout);

    // Everything it names exists: exit 0 with nothing blocking.
    let clean: Spec = vec![
        (
            "etc/systemd/system/acme.service",
            0o644,
            b"[Unit]\nRequires=postgresql.service\n[Service]\nExecStart=/opt/acme --to https://sftp.example.com/\n".to_vec(),
        ),
        ("install.sh", 0o755, b"systemctl restart acme\n".to_vec()),
    ];
    bundle(&p.path("acme-3.0.tar.gz"), &clean);
    let run = preflight(&p, "acme-3.0.tar.gz", &["--json"], "yes");
    run.code(0);
    assert_eq!(run.json()["findings"], serde_json::json!([]));
    // The same unit no longer installed nor shipped blocks.
    std::fs::remove_file(p.path("root/lib/systemd/system/postgresql.service")).unwrap();
    preflight(&p, "acme-3.0.tar.gz", &[], "yes")
        .code(1)
        .stdout_has("missing-unit: etc/systemd/system/acme.service:2  unit postgresql.service");
}

#[test]
fn preflight_that_cannot_check_exits_2() {
    let p = host();
    p.write("junk.zip", "junk");
    preflight(&p, "junk.zip", &[], "yes")
        .code(2)
        .stderr_has("junk.zip: cannot read the archive");
    p.run_env(
        p.dir.path(),
        &["preflight", "acme-2.0.zip", "--hosts", "no-such-hosts"],
        &[("VENDORGUARD_CAN_SUDO", "yes")],
    )
    .code(2)
    .stderr_has("no-such-hosts: cannot read the hosts file");
    preflight(&p, "acme-2.0.zip", &[], "maybe")
        .code(2)
        .stderr_has("VENDORGUARD_CAN_SUDO is \"maybe\": expected yes or no");
}

#[test]
fn unpack_prints_one_preflight_line_per_blocking_finding() {
    let p = host();
    p.vendors(&[("acme", "acme-*")]);
    let gpg = Gpg::new();
    let fpr = gpg.key("Acme <a@acme.example>", "ed25519", "0", None);
    p.pin_cert("acme", "acme.asc", &gpg.export(&fpr));
    let path = p.path("acme-2.0.zip");
    let sig = PathBuf::from(format!("{}.asc", path.display()));
    gpg.detach_sign(&fpr, &path, &sig, "SHA256", None, true);
    let run = p.run_env(
        p.dir.path(),
        &[
            "unpack",
            "acme-2.0.zip",
            "--into",
            "out",
            "--root",
            "root",
            "--hosts",
            "hosts",
        ],
        &[("VENDORGUARD_CAN_SUDO", "no")],
    );
    run.code(0)
        .stdout_has("unpacked: acme-2.0.zip into out")
        .stdout_has("preflight: missing-unit: install.sh:4  unit acme-worker.service")
        .stdout_has("preflight: missing-unit: etc/systemd/system/acme-importer.service:2  unit acme-db.service")
        .stdout_has("preflight: unresolvable-host: etc/cron.d/acme-import:2  sftp-legacy.example.com")
        .stdout_has("preflight: schema-change-without-lock: sql/001-add-column.sql:2");
    let lines = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("preflight:"))
        .count();
    assert_eq!(lines, 4, "{}", run.stdout);
    assert!(p.path("out/install.sh").exists());
}

#[test]
fn hostile_names_are_escaped_in_preflight_output() {
    let p = host();
    let evil: Spec = vec![
        (
            "etc/cron.d/evil\x1b[2J",
            0o644,
            b"0 1 * * * root /opt/x --title \x1b]0;t\x07 --to https://gone.example.com/\n".to_vec(),
        ),
        (
            "etc/x/app\x1b[31m.ini",
            0o644,
            b"[db\x1b[2J]\nhost = gone-db.example.com\n".to_vec(),
        ),
    ];
    bundle(&p.path("evil.tar.gz"), &evil);
    let run = preflight(&p, "evil.tar.gz", &[], "yes");
    run.code(1)
        .stdout_has(
            "blocking unresolvable-host: etc/cron.d/evil\\x1b[2J:1  gone.example.com does not resolve (cron job)",
        )
        .stdout_has("--title \\x1b]0;t\\x07 --to")
        .stdout_has(
            "warning  unresolvable-host: etc/x/app\\x1b[31m.ini  gone-db.example.com does not resolve (configuration key db\\x1b[2J.host)",
        );
    assert!(
        !run.stdout.contains('\x1b') && !run.stdout.contains('\x07'),
        "{}",
        run.stdout
    );
}
