//! `vendorguard diff`: two versions of a vendor bundle that follow the rehearsal's
//! story (a unit renamed, a unit gone, a cron job still pointing at a retired host,
//! sudo added, schema changes, a webhook, configuration keys removed, added and
//! changed in every format), every change and every non-change checked; and hostile
//! configuration (alias bombs, deep nesting, a 100 MB file, terminal escapes).

use std::io::Write as _;
use std::path::Path;

use crate::harness::*;

/// One archive entry: name, mode, bytes.
pub type Spec<'a> = Vec<(&'a str, u32, Vec<u8>)>;

/// Writes a tar.gz (tar crate, GNU headers) or a zip of `spec`, by `path`'s ending.
pub fn bundle(path: &Path, spec: &Spec) {
    let file = std::fs::File::create(path).unwrap();
    if path.to_string_lossy().ends_with(".zip") {
        let mut z = zip::ZipWriter::new(file);
        for (name, mode, data) in spec {
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(*mode);
            z.start_file(*name, opts).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    } else {
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        for (name, mode, data) in spec {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            h.set_mtime(1_767_225_600);
            h.set_entry_type(tar::EntryType::Regular);
            t.append_data(&mut h, name, &data[..]).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap();
    }
}

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Version 1.0 of the vendor's bundle.
pub fn old_spec() -> Spec<'static> {
    vec![
        ("opt/acme/bin/agent", 0o755, b"\x7fELF\0\0v1".to_vec()),
        (
            "etc/systemd/system/acme-import.service",
            0o644,
            text("[Unit]\nAfter=network.target\n[Service]\nUser=acme\nExecStart=/opt/acme/bin/agent import\n[Install]\nWantedBy=multi-user.target\n"),
        ),
        (
            "etc/systemd/system/acme-legacy.service",
            0o644,
            text("[Service]\nUser=acme\nExecStart=/opt/acme/bin/agent legacy\n"),
        ),
        (
            "etc/cron.d/acme-import",
            0o644,
            text("# was: sftp://old-archive.example.com/in\n0 3 * * * acme /opt/acme/bin/agent fetch sftp://sftp-legacy.example.com/in\n"),
        ),
        (
            "install.sh",
            0o755,
            text("#!/bin/sh\nsystemctl restart acme-import\n"),
        ),
        (
            "etc/acme/import.ini",
            0o644,
            text("[import]\nsftp_host = sftp-legacy.example.com\nbatch = 100\n"),
        ),
        (
            "etc/acme/app.toml",
            0o644,
            text("[backoff]\nbase_ms = 250\nmax_ms = 10000\n"),
        ),
        (
            "etc/acme/app.yaml",
            0o644,
            text("db:\n  pool: 5\n  legacy_mode: true\n"),
        ),
        (
            "etc/acme/features.json",
            0o644,
            text("{\"new_ui\": false, \"beta\": {\"reports\": true}}"),
        ),
        (
            "etc/acme/app.properties",
            0o644,
            text("server.port=8080\nserver.timeout=30\n"),
        ),
        ("etc/acme/.env", 0o644, text("TOKEN_TTL=3600\nOLD_FLAG=1\n")),
    ]
}

/// Version 2.0: the import unit renamed, the legacy unit gone, the cron job unchanged
/// (still the retired host), sudo added, schema changes, a webhook, keys changed.
pub fn new_spec() -> Spec<'static> {
    vec![
        ("opt/acme/bin/agent", 0o755, b"\x7fELF\0\0v2!".to_vec()),
        (
            "etc/systemd/system/acme-importer.service",
            0o644,
            text("[Unit]\nAfter=network.target acme-db.service\nWants=postgresql.service\n[Service]\nUser=acme\nExecStart=/opt/acme/bin/agent import --v2\n[Install]\nWantedBy=multi-user.target\n"),
        ),
        (
            "etc/cron.d/acme-import",
            0o644,
            text("# was: sftp://old-archive.example.com/in\n0 3 * * * acme /opt/acme/bin/agent fetch sftp://sftp-legacy.example.com/in\n"),
        ),
        (
            "install.sh",
            0o755,
            text("#!/bin/sh\nsudo -u acme /opt/acme/bin/agent migrate\nsystemctl restart acme-importer\nsystemctl restart acme-worker\nsystemctl enable postgresql\nwget -q https://mirror.gone.example.com/x -O /tmp/x\n"),
        ),
        (
            "post-install.sh",
            0o755,
            text("#!/bin/sh\ncurl -fsS -X POST https://hooks.vendor.example.com/register -d @/etc/acme/id\nsed -i 's/new_ui=false/new_ui=true/' /etc/other-app/flags.conf\nuseradd -r acmeimport\necho done > /etc/acme/installed\n"),
        ),
        (
            "sql/001-add-column.sql",
            0o644,
            text("-- adds the priority\nALTER TABLE jobs ADD COLUMN priority int;\n"),
        ),
        (
            "scripts/migrate.sh",
            0o755,
            text("#!/bin/sh\nflock /var/lock/acme-migrate psql -c 'ALTER TABLE jobs DROP COLUMN legacy'\n"),
        ),
        (
            "etc/acme/import.ini",
            0o644,
            text("[import]\nsftp_host = sftp.example.com\nbatch = 100\nretries = 3\n"),
        ),
        (
            "etc/acme/app.toml",
            0o644,
            text("[backoff]\nbase_ms = 500\njitter = true\n"),
        ),
        (
            "etc/acme/app.yaml",
            0o644,
            text("db:\n  pool: 5\n  replicas: [db2.example.com]\n"),
        ),
        (
            "etc/acme/features.json",
            0o644,
            text("{\"new_ui\": true, \"beta\": {\"reports\": true}}"),
        ),
        (
            "etc/acme/app.properties",
            0o644,
            text("server.port=8080\nserver.timeout=60\n"),
        ),
        ("etc/acme/.env", 0o644, text("TOKEN_TTL=3600\nNEW_FLAG=on\n")),
        (
            "doc/README.txt",
            0o644,
            text("Docs: https://docs.gone.example.com/acme\n"),
        ),
    ]
}

/// The changes of `run`'s JSON as (change, kind, path, key, old, new) tuples.
fn changes(run: &Run) -> Vec<(String, String, String, String, String, String)> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    run.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                s(&c["change"]),
                s(&c["kind"]),
                s(&c["path"]),
                s(&c["key"]),
                s(&c["old"]),
                s(&c["new"]),
            )
        })
        .collect()
}

fn has(all: &[(String, String, String, String, String, String)], want: [&str; 6]) -> bool {
    all.iter().any(|c| {
        [&c.0, &c.1, &c.2, &c.3, &c.4, &c.5]
            .iter()
            .zip(want)
            .all(|(got, w)| w == "*" || got.as_str() == w)
    })
}

#[test]
fn diff_reports_what_the_upgrade_changes_and_nothing_else() {
    let p = Project::new();
    bundle(&p.path("acme-1.0.tar.gz"), &old_spec());
    bundle(&p.path("acme-2.0.zip"), &new_spec());
    let run = p.run(&["diff", "acme-1.0.tar.gz", "acme-2.0.zip", "--json"]);
    run.code(0);
    let json = run.json();
    let sha = |f: &str| {
        use sha2::Digest as _;
        format!(
            "{:x}",
            sha2::Sha256::digest(std::fs::read(p.path(f)).unwrap())
        )
    };
    assert_eq!(json["old"]["path"], "acme-1.0.tar.gz");
    assert_eq!(json["old"]["sha256"], sha("acme-1.0.tar.gz"));
    assert_eq!(json["new"]["sha256"], sha("acme-2.0.zip"));
    let all = changes(&run);
    let dump = format!("{all:#?}");
    for want in [
        // Files.
        ["changed", "file", "opt/acme/bin/agent", "-", "*", "*"],
        [
            "removed",
            "file",
            "etc/systemd/system/acme-legacy.service",
            "-",
            "*",
            "-",
        ],
        ["added", "file", "sql/001-add-column.sql", "-", "-", "*"],
        // The rename is a removal plus an addition, by unit name; the legacy unit is gone.
        [
            "removed",
            "systemd",
            "etc/systemd/system/acme-import.service",
            "acme-import.service",
            "User=acme; ExecStart=/opt/acme/bin/agent import; WantedBy=multi-user.target",
            "-",
        ],
        [
            "added",
            "systemd",
            "etc/systemd/system/acme-importer.service",
            "acme-importer.service",
            "-",
            "User=acme; ExecStart=/opt/acme/bin/agent import --v2; WantedBy=multi-user.target",
        ],
        [
            "removed",
            "systemd",
            "etc/systemd/system/acme-legacy.service",
            "acme-legacy.service",
            "*",
            "-",
        ],
        // Sudo added, a new install script.
        [
            "added",
            "privileged-command",
            "install.sh",
            "-",
            "-",
            "sudo: sudo -u acme /opt/acme/bin/agent migrate",
        ],
        [
            "added",
            "maintainer-script",
            "post-install.sh",
            "-",
            "-",
            "*",
        ],
        [
            "added",
            "account",
            "post-install.sh",
            "-",
            "-",
            "useradd: useradd -r acmeimport",
        ],
        [
            "added",
            "host",
            "post-install.sh",
            "-",
            "-",
            "https://hooks.vendor.example.com/register",
        ],
        // Keys in every format.
        [
            "changed",
            "config-key",
            "etc/acme/import.ini",
            "import.sftp_host",
            "sftp-legacy.example.com",
            "sftp.example.com",
        ],
        [
            "added",
            "config-key",
            "etc/acme/import.ini",
            "import.retries",
            "-",
            "3",
        ],
        [
            "changed",
            "config-key",
            "etc/acme/app.toml",
            "backoff.base_ms",
            "250",
            "500",
        ],
        [
            "removed",
            "config-key",
            "etc/acme/app.toml",
            "backoff.max_ms",
            "10000",
            "-",
        ],
        [
            "added",
            "config-key",
            "etc/acme/app.toml",
            "backoff.jitter",
            "-",
            "true",
        ],
        [
            "removed",
            "config-key",
            "etc/acme/app.yaml",
            "db.legacy_mode",
            "true",
            "-",
        ],
        [
            "added",
            "config-key",
            "etc/acme/app.yaml",
            "db.replicas.0",
            "-",
            "db2.example.com",
        ],
        [
            "changed",
            "config-key",
            "etc/acme/features.json",
            "new_ui",
            "false",
            "true",
        ],
        [
            "changed",
            "config-key",
            "etc/acme/app.properties",
            "server.timeout",
            "30",
            "60",
        ],
        [
            "removed",
            "config-key",
            "etc/acme/.env",
            "OLD_FLAG",
            "1",
            "-",
        ],
        [
            "added",
            "config-key",
            "etc/acme/.env",
            "NEW_FLAG",
            "-",
            "on",
        ],
    ] {
        assert!(has(&all, want), "missing {want:?} in {dump}");
    }
    // Nothing that did not change: unchanged keys, the unchanged cron job and its
    // host, an unchanged file.
    for key in [
        "import.batch",
        "db.pool",
        "beta.reports",
        "server.port",
        "TOKEN_TTL",
    ] {
        assert!(
            !has(&all, ["*", "config-key", "*", key, "*", "*"]),
            "{key}: {dump}"
        );
    }
    for path in ["etc/cron.d/acme-import", "install.sh"] {
        assert!(
            !has(&all, ["*", "cron", path, "*", "*", "*"]),
            "{path}: {dump}"
        );
    }
    assert!(
        !has(&all, ["*", "file", "etc/cron.d/acme-import", "*", "*", "*"]),
        "{dump}"
    );
    assert!(
        !has(&all, ["*", "host", "etc/cron.d/acme-import", "*", "*", "*"]),
        "{dump}"
    );
    assert!(
        !has(
            &all,
            ["*", "systemd", "*", "acme-importer.service", "*", "-"]
        ),
        "{dump}"
    );

    // Text: grouped by kind, removals first, one grep finds a key.
    let run = p.run(&["diff", "acme-1.0.tar.gz", "acme-2.0.zip"]);
    run.code(0)
        .stdout_has("diff: acme-1.0.tar.gz → acme-2.0.zip:")
        .stdout_has("  changed etc/acme/import.ini import.sftp_host  sftp-legacy.example.com → sftp.example.com\n")
        .stdout_has("  removed etc/acme/app.toml backoff.max_ms  was 10000\n")
        .stdout_lacks("import.batch");
    let out = &run.stdout;
    let at = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s} not in {out}"));
    assert!(at("[file]") < at("[systemd]") && at("[systemd]") < at("[config-key]"));
    assert!(at("  removed etc/acme/app.toml backoff") < at("  changed etc/acme/app.toml backoff"));
    assert!(at("  changed etc/acme/app.toml backoff") < at("  added   etc/acme/app.toml backoff"));
    assert!(at("  removed etc/systemd") < at("  changed opt/acme/bin/agent"));
}

#[test]
fn diff_of_an_unreadable_bundle_exits_2_naming_it() {
    let p = Project::new();
    bundle(&p.path("acme-1.0.tar.gz"), &old_spec());
    p.write("acme-2.0.zip", "not an archive at all");
    p.run(&["diff", "acme-1.0.tar.gz", "acme-2.0.zip"])
        .code(2)
        .stderr_has("acme-2.0.zip: cannot read the archive: archive-corrupt");
    p.run(&["diff", "acme-1.0.tar.gz", "missing.zip"])
        .code(2)
        .stderr_has("missing.zip: cannot read bundle");
}

#[test]
fn hostile_configuration_is_bounded_and_escaped() {
    let p = Project::new();
    // Billion laughs: nine levels of nine aliases each.
    let mut bomb = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let prev = if i == 1 {
            "a".to_string()
        } else {
            format!("l{}", i - 1)
        };
        let refs = vec![format!("*{prev}"); 9].join(", ");
        bomb.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    let deep_json = format!("{{\"a\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let filler = "v".repeat(40);
    let big_env: Vec<u8> = (0..2_200_000)
        .map(|i| format!("KEY_{i}={filler}\n"))
        .collect::<String>()
        .into_bytes();
    assert!(big_env.len() > 100 << 20);
    let mut big_json = b"{\"a\": \"".to_vec();
    big_json.resize(100 << 20, b'x');
    big_json.extend_from_slice(b"\"}");
    let evil = "EVIL\x1b[2J=\x1b]0;pwned\x07\n";
    let old: Spec = vec![("etc/x/evil.env", 0o644, text("EVIL\x1b[2J=old\n"))];
    let new: Spec = vec![
        ("etc/x/bomb.yaml", 0o644, text(&bomb)),
        ("etc/x/deep.json", 0o644, text(&deep_json)),
        ("etc/x/big.env", 0o644, big_env),
        ("etc/x/big.json", 0o644, big_json),
        ("etc/x/evil.env", 0o644, text(evil)),
    ];
    bundle(&p.path("old.tar.gz"), &old);
    bundle(&p.path("new.tar.gz"), &new);
    let run = p.run(&["diff", "old.tar.gz", "new.tar.gz", "--json"]);
    run.code(0)
        .stderr_has("note: new.tar.gz: etc/x/deep.json: not valid JSON")
        .stderr_has("note: new.tar.gz: etc/x/big.json: larger than 1 MiB: not read for keys")
        .stderr_has("note: new.tar.gz: etc/x/big.env: only the first 1 MiB were read for keys");
    let all = changes(&run);
    // The bomb is flattened without expanding an alias: 10 × 9 keys.
    let bomb_keys = all
        .iter()
        .filter(|c| c.2 == "etc/x/bomb.yaml" && c.1 == "config-key")
        .count();
    assert_eq!(bomb_keys, 90);
    assert!(has(
        &all,
        [
            "added",
            "config-key",
            "etc/x/bomb.yaml",
            "l9.8",
            "-",
            "*alias"
        ]
    ));
    // Only the first MiB of the big .env: far fewer keys than it holds.
    let env_keys = all.iter().filter(|c| c.2 == "etc/x/big.env").count();
    assert!(env_keys > 10_000 && env_keys < 30_000, "{env_keys}");
    // Escapes never reach the terminal raw.
    assert!(has(
        &all,
        [
            "changed",
            "config-key",
            "etc/x/evil.env",
            "EVIL\\x1b[2J",
            "old",
            "\\x1b]0;pwned\\x07"
        ]
    ));
    let text = p.run(&["diff", "old.tar.gz", "new.tar.gz"]);
    text.code(0)
        .stdout_has("EVIL\\x1b[2J  old → \\x1b]0;pwned\\x07");
    assert!(!text.stdout.contains('\x1b') && !text.stdout.contains('\x07'));
}
