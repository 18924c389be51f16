//! `.rpm` packages: built by the real `rpmbuild`, signed by the real `rpmsign` with a
//! GnuPG key from the harness, then verified, inspected and unpacked. Every verify
//! case is also put to the anchor, `rpmkeys --checksig`, with the pinned key imported
//! into a temporary rpm database: good and bad must agree.
//!
//! These tests need `rpmbuild`, `rpmsign` and `rpmkeys` (Debian's `rpm` package; `.ci/run`
//! installs it) and fail, naming the missing tool, without them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;
use crate::verify::sha256_hex;

const SPEC: &str = r#"Name: acme-agent
Version: 1.0
Release: 1
Summary: Acme agent
License: MIT
BuildArch: noarch
%description
The Acme agent.
%install
mkdir -p %{buildroot}/opt/acme %{buildroot}/etc/acme %{buildroot}/usr/lib/systemd/system %{buildroot}/etc/cron.d
echo hello > %{buildroot}/opt/acme/hello.txt
printf '#!/bin/sh\necho run\n' > %{buildroot}/opt/acme/run
chmod 0755 %{buildroot}/opt/acme/run
ln -s hello.txt %{buildroot}/opt/acme/greeting
printf '[Service]\nExecStart=/opt/acme/run\n' > %{buildroot}/usr/lib/systemd/system/acme.service
echo '*/5 * * * * root /opt/acme/run' > %{buildroot}/etc/cron.d/acme
echo 'level=1' > %{buildroot}/etc/acme/acme.conf
echo 'token=0' > %{buildroot}/etc/acme/secret
%pre
useradd --system acme || true
%post
systemctl enable acme.service
%files
/opt/acme/hello.txt
/opt/acme/run
/opt/acme/greeting
/usr/lib/systemd/system/acme.service
/etc/cron.d/acme
%config(noreplace) /etc/acme/acme.conf
%attr(0640,acme,acme) /etc/acme/secret
"#;

/// Fails the test, naming the tool, when it is not installed.
fn require(tool: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{tool}` is not installed: these tests need Debian's `rpm` package (apt-get install rpm)")
    })
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A project with vendor `acme` (bundles `acme-*.rpm`), a pinned GnuPG key, a
/// stranger's key, and the package built unsigned.
struct Acme {
    p: Project,
    gpg: Gpg,
    fpr: String,
    stranger: String,
    unsigned: PathBuf,
}

impl Acme {
    fn new() -> Acme {
        Acme::with_spec(SPEC)
    }

    /// As [`Acme::new`], built from `spec`.
    fn with_spec(spec: &str) -> Acme {
        let p = Project::new();
        p.vendors(&[("acme", "acme-*.rpm")]);
        let gpg = Gpg::new();
        let fpr = gpg.key("Acme Release <release@acme.example>", "ed25519", "0", None);
        let stranger = gpg.key("Stranger <x@stranger.example>", "ed25519", "0", None);
        p.pin_cert("acme", "acme.asc", &gpg.export(&fpr));
        let top = p.path("rpmbuild");
        p.write("rpmbuild/SPECS/acme.spec", spec);
        run_ok(
            Command::new(require("rpmbuild"))
                .arg("--define")
                .arg(format!("_topdir {}", top.display()))
                .args(["--quiet", "-bb"])
                .arg(top.join("SPECS/acme.spec")),
        );
        let unsigned = p.path("acme-unsigned.rpm");
        let built = std::fs::read_dir(top.join("RPMS/noarch"))
            .unwrap()
            .next()
            .expect("rpmbuild made a package")
            .unwrap()
            .path();
        std::fs::copy(built, &unsigned).unwrap();
        Acme {
            p,
            gpg,
            fpr,
            stranger,
            unsigned,
        }
    }

    /// A copy of the package signed by `fpr` with `rpmsign --addsign`.
    fn signed(&self, name: &str, fpr: &str) -> PathBuf {
        self.signed_with(name, fpr, &[])
    }

    /// As [`Acme::signed`], with more `rpmsign` options (`--rpmv3`).
    fn signed_with(&self, name: &str, fpr: &str, extra: &[&str]) -> PathBuf {
        let out = self.p.path(name);
        std::fs::copy(&self.unsigned, &out).unwrap();
        run_ok(
            Command::new(require("rpmsign"))
                .arg("--define")
                .arg(format!("_gpg_name {fpr}"))
                .arg("--define")
                .arg(format!("_gpg_path {}", self.gpg.home.path().display()))
                .arg("--define")
                .arg(format!("__gpg {}", require("gpg").display()))
                .args(extra)
                .arg("--addsign")
                .arg(&out),
        );
        out
    }

    fn verify(&self, file: &Path) -> Run {
        let name = file.file_name().unwrap().to_str().unwrap();
        self.p.run(&["verify", "--json", name])
    }

    /// What `rpmkeys --checksig` says with the pinned key imported: whether a
    /// signature checked OK and nothing was bad or missing.
    fn anchor_good(&self, file: &Path) -> bool {
        let db = self.p.path("rpmdb");
        std::fs::create_dir_all(&db).unwrap();
        let key = self.p.path("keyring/acme/acme.asc");
        let rpmkeys = require("rpmkeys");
        run_ok(
            Command::new(&rpmkeys)
                .arg("--dbpath")
                .arg(&db)
                .arg("--import")
                .arg(&key),
        );
        let out = Command::new(&rpmkeys)
            .arg("--dbpath")
            .arg(&db)
            .args(["--checksig", "-v"])
            .arg(file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        out.status.success()
            && text.contains("Signature, key ID")
            && !text.contains("NOKEY")
            && !text.contains("BAD")
    }

    /// Verifies `file`, checks exit code and codes, and that the anchor agrees.
    fn expect(&self, file: &Path, code: i32, codes: &[&str]) -> serde_json::Value {
        let r = self.verify(file);
        r.code(code);
        let got = r.codes();
        for c in codes {
            assert!(got.iter().any(|g| g == c), "{got:?} lacks {c}");
        }
        assert_eq!(
            self.anchor_good(file),
            code == 0,
            "rpmkeys --checksig disagrees about {}",
            file.display()
        );
        r.json()
    }
}

/// Where the main header starts, read from the signature header's counts.
fn main_header_offset(bytes: &[u8]) -> usize {
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let sig = 16 + be(96 + 8) * 16 + be(96 + 12);
    96 + sig + (8 - sig % 8) % 8
}

fn payload_offset(bytes: &[u8]) -> usize {
    let h = main_header_offset(bytes);
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    h + 16 + be(h + 8) * 16 + be(h + 12)
}

#[test]
fn a_package_signed_by_the_pinned_key_verifies_and_says_what_it_checked() {
    let a = Acme::new();
    let pkg = a.signed("acme-agent.rpm", &a.fpr);
    let v = a.expect(&pkg, 0, &[]);
    assert_eq!(v["verdict"], "verified");
    assert_eq!(v["source"]["kind"], "rpm");
    assert_eq!(v["signatures"][0]["status"], "good-signature");
    assert_eq!(v["signatures"][0]["certificate"], a.fpr.as_str());
    let checked: Vec<String> = v["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["what"].as_str().unwrap(),
                c["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        checked
            .iter()
            .any(|c| c.ends_with("signature over the header: good-signature")),
        "{checked:?}"
    );
    assert!(checked.contains(&"SHA256HEADER of the header: matched".to_string()));
    assert!(
        checked.contains(&"PAYLOADDIGEST (SHA256) of the compressed payload: matched".to_string())
    );
    let data = std::fs::read(&pkg).unwrap();
    assert_eq!(v["bundle"]["sha256"], sha256_hex(&data));

    a.p.run(&["verify", "acme-agent.rpm"])
        .code(0)
        .stdout_has(
            "verified: acme-agent.rpm: 1 pinned certificate signed, 1 required (vendor acme)",
        )
        .stdout_has("  source  rpm acme-agent.rpm")
        .stdout_has("  checked  PAYLOADDIGEST (SHA256) of the compressed payload: matched");
    // A stray detached signature beside the package does not replace its own.
    a.p.write("acme-agent.rpm.asc", b"not a signature");
    a.p.run(&["verify", "acme-agent.rpm"]).code(0);
    // Detection is by content: the same bytes under any name.
    std::fs::copy(&pkg, a.p.path("acme-agent.bin")).unwrap();
    a.p.run(&["verify", "--vendor", "acme", "acme-agent.bin"])
        .code(0)
        .stdout_has("source  rpm");
}

#[test]
fn an_unsigned_package_is_no_signature() {
    let a = Acme::new();
    let v = a.expect(&a.unsigned.clone(), 1, &["no-signature"]);
    assert_eq!(v["verdict"], "rejected");
    a.p.run(&["verify", "acme-unsigned.rpm"])
        .code(1)
        .stdout_has("the rpm signature header holds no OpenPGP signature")
        .stdout_has("next: do not install: the package is not signed.");
}

#[test]
fn a_package_signed_by_a_stranger_exits_3_naming_the_fingerprint() {
    let a = Acme::new();
    let pkg = a.signed("acme-stranger.rpm", &a.stranger);
    let v = a.expect(&pkg, 3, &["unpinned-signer"]);
    assert_eq!(v["verdict"], "unexpected-signer");
    a.p.run(&["verify", "acme-stranger.rpm"])
        .code(3)
        .stdout_has(&format!("unpinned signer fingerprint: {}", a.stranger));
}

#[test]
fn a_changed_payload_is_digest_mismatch_although_the_header_signature_is_good() {
    let a = Acme::new();
    let pkg = a.signed("acme-payload.rpm", &a.fpr);
    let mut bytes = std::fs::read(&pkg).unwrap();
    let at = payload_offset(&bytes) + 20;
    bytes[at] ^= 0x01;
    std::fs::write(&pkg, &bytes).unwrap();
    let v = a.expect(&pkg, 1, &["digest-mismatch"]);
    assert_eq!(v["signatures"][0]["status"], "good-signature");
    // Bytes appended after the payload are in the payload digest's range too.
    let pkg2 = a.signed("acme-appended.rpm", &a.fpr);
    let mut bytes = std::fs::read(&pkg2).unwrap();
    bytes.extend_from_slice(b"trailing bytes nobody signed");
    std::fs::write(&pkg2, &bytes).unwrap();
    a.expect(&pkg2, 1, &["digest-mismatch"]);
    a.p.run(&["verify", "acme-appended.rpm"])
        .code(1)
        .stdout_has("rpm PAYLOADDIGEST (SHA256) of the compressed payload does not match");
}

#[test]
fn legacy_header_and_payload_signatures_are_judged_over_the_payload_too() {
    let a = Acme::new();
    let pkg = a.signed_with("acme-v3.rpm", &a.fpr, &["--rpmv3"]);
    let v = a.expect(&pkg, 0, &[]);
    let checked = v["checked"].to_string();
    assert!(
        checked.contains("signature over the header and payload")
            && checked.contains("good-signature"),
        "{checked}"
    );
    assert_eq!(v["signatures"].as_array().unwrap().len(), 2);
    let mut bytes = std::fs::read(&pkg).unwrap();
    let at = payload_offset(&bytes) + 20;
    bytes[at] ^= 0x01;
    std::fs::write(&pkg, &bytes).unwrap();
    let v = a.expect(&pkg, 1, &["digest-mismatch", "bad-signature"]);
    let statuses: Vec<&str> = v["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["good-signature", "bad-signature"]);
}

#[test]
fn a_changed_header_is_rejected() {
    let a = Acme::new();
    let pkg = a.signed("acme-header.rpm", &a.fpr);
    let mut bytes = std::fs::read(&pkg).unwrap();
    let h = main_header_offset(&bytes);
    let end = payload_offset(&bytes);
    let at = h + bytes[h..end]
        .windows(14)
        .position(|w| w == b"The Acme agent")
        .expect("the description is in the header");
    bytes[at + 4] = b'a';
    std::fs::write(&pkg, &bytes).unwrap();
    a.expect(&pkg, 1, &["bad-signature", "digest-mismatch"]);
}

#[test]
fn a_truncated_package_is_rejected_with_a_clear_message() {
    let a = Acme::new();
    let pkg = a.signed("acme-trunc.rpm", &a.fpr);
    let bytes = std::fs::read(&pkg).unwrap();
    let h = main_header_offset(&bytes);
    std::fs::write(&pkg, &bytes[..h + 100]).unwrap();
    a.expect(&pkg, 1, &["malformed-package"]);
    a.p.run(&["verify", "acme-trunc.rpm"])
        .code(1)
        .stdout_has("acme-trunc.rpm: rpm: truncated: the file ends inside the header")
        .stdout_has("next: do not install: the package is damaged or truncated");
    let pkg2 = a.signed("acme-trunc2.rpm", &a.fpr);
    std::fs::write(&pkg2, &bytes[..payload_offset(&bytes) + 10]).unwrap();
    a.expect(&pkg2, 1, &["digest-mismatch"]);
}

#[test]
fn an_explicit_signature_still_means_a_detached_signature_over_the_whole_file() {
    let a = Acme::new();
    let sig = a.p.path("acme-unsigned.rpm.sig");
    a.gpg
        .detach_sign(&a.fpr, &a.unsigned, &sig, "SHA256", None, false);
    let r = a.p.run(&[
        "verify",
        "--json",
        "acme-unsigned.rpm",
        "--signature",
        "acme-unsigned.rpm.sig",
    ]);
    r.code(0);
    assert_eq!(r.json()["source"]["kind"], "detached");
}

/// `(kind, file)` of every inspect finding, and the detail, as `kind file: detail`.
fn findings(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}: {}",
                f["kind"].as_str().unwrap(),
                f["file"].as_str().unwrap(),
                f["detail"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[track_caller]
fn has(found: &[String], prefix: &str, needle: &str) {
    assert!(
        found
            .iter()
            .any(|f| f.starts_with(prefix) && f.contains(needle)),
        "no finding {prefix} .. {needle} in {found:#?}"
    );
}

#[test]
fn inspect_reports_scriptlets_accounts_owners_conffiles_units_and_cron() {
    let a = Acme::new();
    let pkg = a.signed("acme-agent.rpm", &a.fpr);
    let name = pkg.file_name().unwrap().to_str().unwrap();
    let j = a.p.run(&["inspect", "--json", name]);
    j.code(0);
    let v = j.json();
    assert_eq!(v["format"], "rpm");
    let f = findings(&v);
    has(&f, "maintainer-script %pre:", "(%pre)");
    has(&f, "maintainer-script %post:", "(%post)");
    has(&f, "account %pre", "useradd");
    has(
        &f,
        "privileged-command %post",
        "systemctl enable acme.service",
    );
    has(&f, "ownership etc/acme/secret:", "owned by acme:acme");
    has(&f, "conffile conffiles", "/etc/acme/acme.conf");
    has(
        &f,
        "systemd usr/lib/systemd/system/acme.service",
        "ExecStart=/opt/acme/run",
    );
    has(&f, "cron etc/cron.d/acme", "user root");
    assert!(
        !f.iter().any(|x| x.starts_with("ownership opt/")),
        "root-owned files are not ownership findings: {f:#?}"
    );
    a.p.run(&["inspect", name])
        .code(0)
        .stdout_has("inspect: acme-agent.rpm: rpm,")
        .stdout_has("%post:2  systemctl: systemctl enable acme.service");
}

#[test]
fn unpack_extracts_the_verified_payload_with_modes_and_links() {
    use std::os::unix::fs::PermissionsExt as _;
    let a = Acme::new();
    a.signed("acme-agent.rpm", &a.fpr);
    a.p.run(&["unpack", "acme-agent.rpm", "--into", "out"])
        .code(0)
        .stdout_has("unpacked: acme-agent.rpm into out (rpm,");
    let out = a.p.path("out");
    assert_eq!(
        std::fs::read(out.join("opt/acme/hello.txt")).unwrap(),
        b"hello\n"
    );
    let mode = |p: &str| std::fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("opt/acme/run"), 0o755);
    assert_eq!(mode("etc/acme/secret"), 0o640);
    assert_eq!(
        std::fs::read_link(out.join("opt/acme/greeting")).unwrap(),
        Path::new("hello.txt")
    );
    // Scriptlets are reviewed, never written.
    let names: Vec<String> = walk(&out);
    assert!(
        !names
            .iter()
            .any(|n| n.contains('%') || n.ends_with("conffiles")),
        "{names:?}"
    );
    assert_eq!(names.len(), 16, "{names:?}");

    // Unsigned, stranger-signed and tampered packages extract nothing.
    std::fs::copy(&a.unsigned, a.p.path("acme-u.rpm")).unwrap();
    a.p.run(&["unpack", "acme-u.rpm", "--into", "u"]).code(1);
    assert!(!a.p.path("u").exists());
    a.signed("acme-s.rpm", &a.stranger);
    a.p.run(&["unpack", "acme-s.rpm", "--into", "s"]).code(3);
    assert!(!a.p.path("s").exists());
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

/// A header from `(tag, type, data, count)` entries, laid out in order.
fn header(entries: &[(u32, u32, &[u8], u32)]) -> Vec<u8> {
    let mut index = Vec::new();
    let mut data = Vec::new();
    for (tag, typ, bytes, count) in entries {
        for v in [*tag, *typ, data.len() as u32, *count] {
            index.extend_from_slice(&v.to_be_bytes());
        }
        data.extend_from_slice(bytes);
    }
    let mut out = vec![0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend(index);
    out.extend(data);
    out
}

/// One newc cpio member.
fn cpio(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
    let name = format!("{name}\0");
    let mut h =
        format!(
        "070701{:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
        1, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, name.len(), 0
    )
        .into_bytes();
    h.extend_from_slice(name.as_bytes());
    while h.len() % 4 != 0 {
        h.push(0);
    }
    h.extend_from_slice(data);
    while h.len() % 4 != 0 {
        h.push(0);
    }
    h
}

/// A package signed by `fpr` whose header and payload both list `dir` + `base`: the
/// name checks are the extractor's, as for any archive.
fn crafted(a: &Acme, file: &str, dir: &str, base: &str) -> PathBuf {
    let payload = [
        cpio(&format!(".{dir}{base}"), 0o100644, b"evil\n"),
        cpio("TRAILER!!!", 0, b""),
    ]
    .concat();
    let z = |s: &str| format!("{s}\0").into_bytes();
    let payload_digest = z(&sha256_hex(&payload));
    let main = header(&[
        (1000, 6, &z("evil"), 1),
        (1030, 3, &0o100644u16.to_be_bytes(), 1),
        (1039, 8, &z("root"), 1),
        (1040, 8, &z("root"), 1),
        (1028, 4, &5u32.to_be_bytes(), 1),
        (1116, 4, &0u32.to_be_bytes(), 1),
        (1117, 8, &z(base), 1),
        (1118, 8, &z(dir), 1),
        (5092, 8, &payload_digest, 1),
        (5093, 4, &8u32.to_be_bytes(), 1),
    ]);
    let main_path = a.p.write(&format!("{file}.header"), &main);
    let sig_path = a.p.path(&format!("{file}.header.sig"));
    a.gpg
        .detach_sign(&a.fpr, &main_path, &sig_path, "SHA256", None, false);
    let sig = std::fs::read(&sig_path).unwrap();
    let sig_header = header(&[
        (268, 7, &sig, sig.len() as u32),
        (273, 6, &z(&sha256_hex(&main)), 1),
    ]);
    let mut pkg = vec![0xed, 0xab, 0xee, 0xdb, 3, 0];
    pkg.resize(96, 0);
    pkg.extend_from_slice(&sig_header);
    pkg.resize(pkg.len() + (8 - sig_header.len() % 8) % 8, 0);
    pkg.extend_from_slice(&main);
    pkg.extend_from_slice(&payload);
    a.p.write(file, &pkg)
}

#[test]
fn unpack_refuses_a_package_whose_names_climb_out() {
    let a = Acme::new();
    crafted(&a, "acme-slip.rpm", "/../../", "evil.txt");
    // The crafted package is genuinely signed: verify accepts it, unpack refuses it.
    a.p.run(&["verify", "acme-slip.rpm"]).code(0);
    let r = a.p.run(&["unpack", "acme-slip.rpm", "--into", "out"]);
    r.code(1).stderr_has("path-traversal: entry ../../evil.txt");
    assert!(!a.p.path("out").exists());
    assert!(!a.p.dir.path().parent().unwrap().join("evil.txt").exists());

    // A cpio name the header does not list is the archive's corruption.
    let a2 = Acme::new();
    let file = crafted(&a2, "acme-odd.rpm", "/opt/", "ok.txt");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.windows(9).rposition(|w| w == b"./opt/ok.").unwrap();
    bytes[at + 6..at + 8].copy_from_slice(b"OK");
    std::fs::write(&file, &bytes).unwrap();
    a2.p.run(&["inspect", "acme-odd.rpm"])
        .code(2)
        .stderr_has("a cpio entry that is not in the package header's file list");
}

#[test]
fn diff_and_preflight_read_packages_through_the_same_walker() {
    let old = Acme::new();
    let next = SPEC
        .replace("Version: 1.0", "Version: 1.1")
        .replace(
            "systemctl enable acme.service",
            "systemctl enable acme.service\nsystemctl restart acme-db.service",
        )
        .replace("echo hello >", "echo hello again >");
    let new = Acme::with_spec(&next);
    std::fs::copy(&new.unsigned, old.p.path("acme-1.1.rpm")).unwrap();
    old.p
        .run(&["diff", "acme-unsigned.rpm", "acme-1.1.rpm"])
        .code(0)
        .stdout_has("changed control:%post")
        .stdout_has("changed opt/acme/hello.txt")
        .stdout_has("added   %post  systemctl: systemctl restart acme-db.service");
    old.p
        .run(&["preflight", "acme-1.1.rpm"])
        .code(1)
        .stdout_has("blocking missing-unit: control:%post:3  unit acme-db.service");
}

#[test]
fn a_signature_tag_that_does_not_parse_is_malformed_not_absent() {
    let a = Acme::new();
    let file = crafted(&a, "acme-garbled.rpm", "/opt/", "ok.txt");
    a.p.run(&["verify", "acme-garbled.rpm"]).code(0);
    let mut bytes = std::fs::read(&file).unwrap();
    // The crafted signature header lays RSAHEADER's packet first in its data.
    bytes[96 + 16 + 2 * 16] = 0x00;
    std::fs::write(&file, &bytes).unwrap();
    let r = a.p.run(&["verify", "--json", "acme-garbled.rpm"]);
    r.code(1);
    let codes = r.codes();
    assert!(
        codes.contains(&"malformed-signature".to_string()),
        "{codes:?}"
    );
    assert!(!codes.contains(&"no-signature".to_string()), "{codes:?}");
    a.p.run(&["verify", "acme-garbled.rpm"])
        .code(1)
        .stdout_has("problem: acme-garbled.rpm: rpm RSAHEADER: ");
}

/// A package as rpm before 4.14 signed it: a header with no payload digest, signed by
/// `header_by` (RSAHEADER), and when `legacy` says so a header+payload (PGP) signature
/// by that key over the main header and `signed_payload`; the file carries `payload`.
fn old_style(
    a: &Acme,
    file: &str,
    header_by: &str,
    legacy: Option<(&str, &[u8])>,
    payload: &[u8],
) -> PathBuf {
    let z = |s: &str| format!("{s}\0").into_bytes();
    let main = header(&[
        (1000, 6, &z("acme-old"), 1),
        (1030, 3, &0o100644u16.to_be_bytes(), 1),
        (1039, 8, &z("root"), 1),
        (1040, 8, &z("root"), 1),
        (1028, 4, &5u32.to_be_bytes(), 1),
        (1116, 4, &0u32.to_be_bytes(), 1),
        (1117, 8, &z("tool"), 1),
        (1118, 8, &z("/opt/"), 1),
    ]);
    let sign = |by: &str, bytes: &[u8], what: &str| {
        let data = a.p.write(&format!("{file}.{what}"), bytes);
        let sig = a.p.path(&format!("{file}.{what}.sig"));
        a.gpg.detach_sign(by, &data, &sig, "SHA256", None, false);
        std::fs::read(&sig).unwrap()
    };
    let header_sig = sign(header_by, &main, "header");
    let mut entries: Vec<(u32, u32, Vec<u8>, u32)> = vec![
        (268, 7, header_sig.clone(), header_sig.len() as u32),
        (273, 6, z(&sha256_hex(&main)), 1),
    ];
    if let Some((by, signed_payload)) = legacy {
        let sig = sign(by, &[&main[..], signed_payload].concat(), "whole");
        entries.push((1002, 7, sig.clone(), sig.len() as u32));
    }
    let entries: Vec<(u32, u32, &[u8], u32)> = entries
        .iter()
        .map(|(t, ty, d, c)| (*t, *ty, &d[..], *c))
        .collect();
    let sig_header = header(&entries);
    let mut pkg = vec![0xed, 0xab, 0xee, 0xdb, 3, 0];
    pkg.resize(96, 0);
    pkg.extend_from_slice(&sig_header);
    pkg.resize(pkg.len() + (8 - sig_header.len() % 8) % 8, 0);
    pkg.extend_from_slice(&main);
    pkg.extend_from_slice(payload);
    a.p.write(file, &pkg)
}

/// Found by attacking the release binary: a vendor's header-only signature on a header
/// with no payload digest (rpm before 4.14), a swapped payload, and a header+payload
/// signature by anybody in the unsigned signature header verified, and `unpack`
/// extracted the attacker's files. A header-only signature now counts only when the
/// header pins the payload by its digest.
#[test]
fn without_a_payload_digest_only_header_and_payload_signatures_count() {
    let a = Acme::new();
    let genuine = [
        cpio("./opt/tool", 0o100644, b"good\n"),
        cpio("TRAILER!!!", 0, b""),
    ]
    .concat();
    let evil = [
        cpio("./opt/tool", 0o100644, b"evil\n"),
        cpio("TRAILER!!!", 0, b""),
    ]
    .concat();
    let run = |file: &str| {
        let r = a.p.run(&["verify", "--json", file]);
        (Some(r.code), r.codes(), r.json())
    };
    // The vendor signed header and payload: verified.
    old_style(
        &a,
        "acme-old.rpm",
        &a.fpr,
        Some((&a.fpr, &genuine)),
        &genuine,
    );
    let (code, codes, v) = run("acme-old.rpm");
    assert_eq!(code, Some(0), "{codes:?}");
    assert!(v["checked"].to_string().contains("not-counted"), "{v}");
    // The attack: the vendor's header, another payload, a stranger's header+payload
    // signature. Only an unpinned key vouches for the payload: exit 3, never 0.
    old_style(
        &a,
        "acme-swap.rpm",
        &a.fpr,
        Some((&a.stranger, &evil)),
        &evil,
    );
    let (code, codes, _) = run("acme-swap.rpm");
    assert_eq!(code, Some(3), "{codes:?}");
    a.p.run(&["unpack", "acme-swap.rpm", "--into", "out"])
        .code(3);
    assert!(!a.p.path("out").exists(), "nothing is extracted");
    // No header+payload signature at all: nothing covers the payload.
    old_style(&a, "acme-bare.rpm", &a.fpr, None, &evil);
    let (code, codes, _) = run("acme-bare.rpm");
    assert_eq!(code, Some(1));
    assert!(codes.iter().any(|c| c == "unsigned-content"), "{codes:?}");
    // The vendor's header+payload signature over the genuine payload, evil carried.
    old_style(
        &a,
        "acme-moved.rpm",
        &a.fpr,
        Some((&a.fpr, &genuine)),
        &evil,
    );
    let (code, codes, _) = run("acme-moved.rpm");
    assert_eq!(code, Some(1));
    assert!(codes.iter().any(|c| c == "bad-signature"), "{codes:?}");
}
