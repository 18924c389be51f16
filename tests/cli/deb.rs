//! `.deb` packages: built with the real `dpkg-deb --build`, published in a repository
//! made with the real `dpkg-scanpackages`, its `InRelease` clearsigned (and `Release`
//! detach-signed) by GnuPG; then `verify --release --index`, `inspect` and `unpack`.
//! Packages dpkg-deb will not make (a non-root owner, a `../x` name, a trailing member)
//! are assembled here from tar members the `tar` crate writes, in an ar container
//! written by hand.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Gpg, Project, Run};
use crate::verify::sha256_hex;

const DEB: &str = "pool/acme-agent_1.0_all.deb";

/// Runs a packaging tool in `cwd`, failing loudly when it is not installed.
fn tool(cwd: &Path, program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed for the .deb tests (Debian: apt-get install dpkg-dev xz-utils zstd): {e}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn write_mode(path: &Path, body: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Builds acme-agent `version` with dpkg-deb into `out` (relative to the project).
fn build_deb(p: &Project, version: &str, out: &str) -> PathBuf {
    let root = p.path(&format!("build-{version}"));
    let control = format!(
        "Package: acme-agent\nVersion: {version}\nArchitecture: all\nMaintainer: Acme <ops@acme.example>\nDescription: the Acme agent\n"
    );
    write_mode(&root.join("DEBIAN/control"), &control, 0o644);
    write_mode(
        &root.join("DEBIAN/preinst"),
        "#!/bin/sh\nset -e\nadduser --system --group acme\n",
        0o755,
    );
    write_mode(
        &root.join("DEBIAN/postinst"),
        "#!/bin/sh\nset -e\nsystemctl restart acme.service\n",
        0o755,
    );
    write_mode(
        &root.join("DEBIAN/conffiles"),
        "/etc/acme/agent.conf\n",
        0o644,
    );
    write_mode(
        &root.join("etc/acme/agent.conf"),
        "server = https://updates.acme.example/\n",
        0o644,
    );
    write_mode(
        &root.join("lib/systemd/system/acme.service"),
        "[Service]\nExecStart=/usr/bin/acme-agent\nUser=acme\n",
        0o644,
    );
    write_mode(
        &root.join("etc/cron.d/acme"),
        "*/5 * * * * root /usr/bin/acme-agent --poll\n",
        0o644,
    );
    write_mode(
        &root.join("usr/bin/acme-agent"),
        "#!/bin/sh\necho acme\n",
        0o755,
    );
    let out = p.path(out);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    tool(
        &p.path(""),
        "dpkg-deb",
        &[
            "--root-owner-group",
            "--build",
            root.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    out
}

/// A project with vendor acme's key pinned, acme-agent 1.0 built and published.
struct Repo {
    p: Project,
    gpg: Gpg,
    fpr: String,
}

impl Repo {
    fn new() -> Repo {
        let p = Project::new();
        p.vendors(&[("acme", "*.deb")]);
        let gpg = Gpg::new();
        let fpr = gpg.key("Acme Archive <archive@acme.example>", "ed25519", "0", None);
        p.pin_cert("acme", "acme.asc", &gpg.export(&fpr));
        build_deb(&p, "1.0", DEB);
        let r = Repo { p, gpg, fpr };
        r.publish();
        r
    }

    /// `Packages` from dpkg-scanpackages, its .gz/.xz/.zst, and the release over them.
    fn publish(&self) {
        let packages = tool(
            &self.p.path(""),
            "dpkg-scanpackages",
            &["--multiversion", "pool", "/dev/null"],
        );
        self.p.write("Packages", &packages);
        self.compress();
        self.release();
    }

    fn compress(&self) {
        for (program, args) in [
            ("gzip", ["-9nkf", "Packages"]),
            ("xz", ["-kf", "Packages"]),
            ("zstd", ["-qf", "Packages"]),
        ] {
            tool(&self.p.path(""), program, &args);
        }
    }

    /// Writes Release over the index files as they are now, InRelease (clearsigned)
    /// and Release.gpg (detached), signed by `signer` (the pinned key by default).
    fn release(&self) {
        self.release_by(&self.gpg, &self.fpr, "");
    }

    fn release_by(&self, gpg: &Gpg, fpr: &str, extra_lines: &str) {
        let mut text = String::from("Origin: Acme\nSuite: stable\nCodename: stable\nArchitectures: all\nComponents: main\nDate: Sat, 28 Nov 2026 00:00:00 UTC\nMD5Sum:\n d41d8cd98f00b204e9800998ecf8427e 0 main/binary-all/Release\nSHA256:\n");
        for name in ["Packages", "Packages.gz", "Packages.xz", "Packages.zst"] {
            let data = std::fs::read(self.p.path(name)).unwrap();
            text.push_str(&format!(
                " {} {} main/binary-all/{name}\n",
                sha256_hex(&data),
                data.len()
            ));
        }
        text.push_str(extra_lines);
        let release = self.p.write("Release", text);
        gpg.sign_inline(fpr, &release, &self.p.path("InRelease"), "--clearsign");
        gpg.detach_sign(
            fpr,
            &release,
            &self.p.path("Release.gpg"),
            "SHA256",
            None,
            false,
        );
    }

    fn verify(&self, index: &str) -> Run {
        self.p
            .run(&["verify", DEB, "--release", "InRelease", "--index", index])
    }

    /// The verdict codes of `verify --json` through `index`.
    fn codes(&self, index: &str) -> Vec<String> {
        self.p
            .run(&[
                "verify",
                DEB,
                "--release",
                "InRelease",
                "--index",
                index,
                "--json",
            ])
            .codes()
    }
}

#[test]
fn a_good_chain_verifies_through_every_index_compression_and_both_release_forms() {
    let r = Repo::new();
    for index in ["Packages", "Packages.gz", "Packages.xz", "Packages.zst"] {
        r.verify(index)
            .code(0)
            .stdout_has("verified: pool/acme-agent_1.0_all.deb")
            .stdout_has("source  release InRelease")
            .stdout_has("matches its stanza in the index, the index matches the signed release")
            .stdout_has(&format!("pin-matched  {index} line 1 (Filename)"));
    }
    r.p.run(&[
        "verify",
        DEB,
        "--release",
        "Release",
        "--release-signature",
        "Release.gpg",
        "--index",
        "Packages.xz",
    ])
    .code(0);
    let json =
        r.p.run(&[
            "verify",
            DEB,
            "--release",
            "InRelease",
            "--index",
            "Packages",
            "--json",
        ])
        .json();
    assert_eq!(json["verdict"], "verified");
    assert_eq!(json["source"]["kind"], "release");
}

#[test]
fn a_renamed_package_is_found_by_name_version_and_architecture() {
    let r = Repo::new();
    std::fs::copy(r.p.path(DEB), r.p.path("downloaded.deb")).unwrap();
    r.p.run(&[
        "verify",
        "downloaded.deb",
        "--vendor",
        "acme",
        "--release",
        "InRelease",
        "--index",
        "Packages",
    ])
    .code(0)
    .stdout_has("(acme-agent 1.0 all)");
}

#[test]
fn a_tampered_package_is_a_digest_mismatch() {
    let r = Repo::new();
    let mut bytes = std::fs::read(r.p.path(DEB)).unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 1;
    std::fs::write(r.p.path(DEB), &bytes).unwrap();
    r.verify("Packages.gz")
        .code(1)
        .stdout_has("digest-mismatch");
    assert_eq!(r.codes("Packages.gz"), ["digest-mismatch"]);
    // Same length, other bytes; a package of another length also fails its Size.
    bytes.push(0);
    std::fs::write(r.p.path(DEB), &bytes).unwrap();
    r.verify("Packages").code(1).stdout_has("gives size");
}

#[test]
fn a_package_the_index_does_not_list_is_not_in_index() {
    let r = Repo::new();
    build_deb(&r.p, "2.0", "pool/acme-agent_2.0_all.deb");
    let args = [
        "verify",
        "pool/acme-agent_2.0_all.deb",
        "--release",
        "InRelease",
        "--index",
        "Packages",
    ];
    r.p.run(&args)
        .code(1)
        .stdout_has("next: do not install: the repository's files do not vouch for this package")
        .stdout_has("Packages: lists no package with Filename acme-agent_2.0_all.deb nor package acme-agent 2.0 all");
    assert_eq!(
        r.p.run(&[&args[..], &["--json"]].concat()).codes(),
        ["not-in-index"]
    );
}

#[test]
fn an_index_the_release_does_not_vouch_for_is_index_mismatch() {
    let r = Repo::new();
    let mut packages = std::fs::read_to_string(r.p.path("Packages")).unwrap();
    packages.push_str("\nPackage: extra\nVersion: 1\nArchitecture: all\nFilename: pool/extra.deb\nSize: 1\nSHA256: 00\n");
    r.p.write("Packages", packages);
    r.verify("Packages")
        .code(1)
        .stdout_has("Packages: SHA-256 ")
        .stdout_has("are not what the release vouches for: InRelease lists main/binary-all/Packages with SHA-256 ");
    assert_eq!(r.codes("Packages"), ["index-mismatch"]);
    // An index of a name the release does not list at all.
    std::fs::copy(r.p.path("Packages.gz"), r.p.path("Sources.gz")).unwrap();
    r.verify("Sources.gz")
        .code(1)
        .stdout_has("InRelease lists no index named Sources.gz");
}

#[test]
fn a_release_signed_only_by_an_unpinned_key_is_exit_3() {
    let r = Repo::new();
    let stranger = Gpg::new();
    let sfpr = stranger.key("Mallory <m@evil.example>", "ed25519", "0", None);
    r.release_by(&stranger, &sfpr, "");
    r.verify("Packages").code(3).stdout_has(&sfpr);
    r.p.run(&[
        "verify",
        DEB,
        "--release",
        "Release",
        "--release-signature",
        "Release.gpg",
        "--index",
        "Packages",
    ])
    .code(3);
}

#[test]
fn a_release_that_lists_an_index_twice_with_different_hashes_is_refused() {
    let r = Repo::new();
    let other = format!(" {} 5 main/binary-all/Packages\n", "ab".repeat(32));
    r.release_by(&r.gpg, &r.fpr, &other);
    r.verify("Packages")
        .code(1)
        .stdout_has("lists main/binary-all/Packages twice with different hashes");
    assert_eq!(r.codes("Packages"), ["malformed-release"]);
}

#[test]
fn a_stanza_without_sha256_is_not_enough() {
    let r = Repo::new();
    let packages = std::fs::read_to_string(r.p.path("Packages")).unwrap();
    let weak: String = packages
        .lines()
        .filter(|l| !l.starts_with("SHA256:"))
        .map(|l| format!("{l}\n"))
        .collect();
    r.p.write("Packages", weak);
    r.compress();
    r.release();
    r.verify("Packages")
        .code(1)
        .stdout_has("gives no SHA256 (MD5sum and SHA1 are not enough)");
    assert_eq!(r.codes("Packages"), ["weak-hash"]);
}

#[test]
fn a_compressed_index_with_trailing_bytes_is_refused_even_when_listed() {
    let r = Repo::new();
    let mut gz = std::fs::read(r.p.path("Packages.gz")).unwrap();
    gz.extend_from_slice(b"Package: hidden\n");
    r.p.write("Packages.gz", gz);
    r.release();
    r.verify("Packages.gz")
        .code(1)
        .stdout_has("16 bytes follow the end of the compressed stream");
    assert_eq!(r.codes("Packages.gz"), ["malformed-index"]);
}

#[test]
fn an_inrelease_with_text_after_the_signature_is_unsigned_content() {
    let r = Repo::new();
    let mut inrelease = std::fs::read_to_string(r.p.path("InRelease")).unwrap();
    inrelease.push_str("SHA256:\n 00 0 Packages\n");
    r.p.write("InRelease", inrelease);
    r.verify("Packages").code(1);
    let codes = r.codes("Packages");
    assert!(codes.contains(&"unsigned-content".to_string()), "{codes:?}");
}

#[test]
fn a_plain_deb_without_a_repository_has_no_signature() {
    let r = Repo::new();
    r.p.run(&["verify", DEB])
        .code(1)
        .stdout_has("no signature found")
        .stdout_has("and a _gpgorigin member");
    assert_eq!(
        r.p.run(&["verify", DEB, "--json"]).codes(),
        ["no-signature"]
    );
}

#[test]
fn inspect_reads_the_control_part_and_the_payload() {
    let r = Repo::new();
    let run = r.p.run(&["inspect", DEB, "--json"]);
    run.code(0);
    let json = run.json();
    assert_eq!(json["format"], "deb");
    let findings: Vec<(String, String)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["file"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("maintainer-script", "control/preinst"),
        ("maintainer-script", "control/postinst"),
        ("account", "control/preinst"),
        ("privileged-command", "control/postinst"),
        ("conffile", "control/conffiles"),
        ("systemd", "lib/systemd/system/acme.service"),
        ("cron", "etc/cron.d/acme"),
    ] {
        assert!(
            findings.iter().any(|(k, f)| k == want.0 && f == want.1),
            "{want:?} missing from {findings:?}"
        );
    }
    // dpkg-deb --root-owner-group: every file is root's, so no ownership finding.
    assert!(
        !findings.iter().any(|(k, _)| k == "ownership"),
        "{findings:?}"
    );
    r.p.run(&["inspect", DEB])
        .code(0)
        .stdout_has("conffile")
        .stdout_has("/etc/acme/agent.conf");
}

#[test]
fn unpack_extracts_the_payload_and_never_the_control_part() {
    let r = Repo::new();
    r.p.run(&[
        "unpack",
        DEB,
        "--into",
        "out",
        "--release",
        "InRelease",
        "--index",
        "Packages.xz",
    ])
    .code(0)
    .stdout_has("(deb, ");
    let out = r.p.path("out");
    assert_eq!(
        std::fs::read_to_string(out.join("etc/acme/agent.conf")).unwrap(),
        "server = https://updates.acme.example/\n"
    );
    let mode = std::fs::metadata(out.join("usr/bin/acme-agent"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert!(!out.join("control").exists());
    assert!(!out.join("postinst").exists());
    assert!(!out.join("DEBIAN").exists());
    // Not verified: nothing extracted.
    let mut bytes = std::fs::read(r.p.path(DEB)).unwrap();
    let n = bytes.len() - 40;
    bytes[n] ^= 1;
    std::fs::write(r.p.path(DEB), &bytes).unwrap();
    r.p.run(&[
        "unpack",
        DEB,
        "--into",
        "out2",
        "--release",
        "InRelease",
        "--index",
        "Packages",
    ])
    .code(1);
    assert!(!r.p.path("out2").exists());
}

/// A tar member: `(name, body, uname)`; directories end in `/`.
fn tar_member(entries: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body, user) in entries {
        let mut h = tar::Header::new_gnu();
        if name.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
        } else {
            h.set_mode(0o644);
            h.set_size(body.len() as u64);
        }
        h.set_username(user).unwrap();
        h.set_groupname(user).unwrap();
        // Written raw: the tar crate's own path setter refuses `..`, as it should.
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, body.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// An ar archive of `members`, as dpkg-deb writes one.
fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        out.extend(
            format!(
                "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                0,
                0,
                0,
                "100644",
                data.len()
            )
            .into_bytes(),
        );
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

fn crafted(data: &[(&str, &str, &str)], extra: &[(&str, &[u8])]) -> Vec<u8> {
    let control = tar_member(&[(
        "./control",
        "Package: crafted\nVersion: 1\nArchitecture: all\n",
        "root",
    )]);
    let data = tar_member(data);
    let mut members: Vec<(&str, &[u8])> = vec![
        ("debian-binary", b"2.0\n"),
        ("control.tar", &control),
        ("data.tar", &data),
    ];
    members.extend_from_slice(extra);
    ar(&members)
}

#[test]
fn inspect_reports_files_a_package_gives_to_another_owner() {
    let p = Project::new();
    let deb = crafted(
        &[
            ("./", "", "root"),
            ("./var/lib/acme/", "", "acme"),
            ("./var/lib/acme/state", "x", "acme"),
            ("./usr/bin/tool", "y", "root"),
        ],
        &[],
    );
    p.write("owned.deb", deb);
    let json = p.run(&["inspect", "owned.deb", "--json"]).code(0).json();
    let owned: Vec<&serde_json::Value> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "ownership")
        .collect();
    assert_eq!(owned.len(), 2, "{json}");
    assert_eq!(owned[1]["file"], "var/lib/acme/state");
    assert_eq!(owned[1]["detail"], "owned by acme:acme");
}

#[test]
fn a_payload_that_leaves_the_target_is_refused_and_nothing_is_extracted() {
    let p = Project::new();
    p.vendors(&[("acme", "*.deb")]);
    let gpg = Gpg::new();
    let fpr = gpg.key("Acme <a@acme.example>", "ed25519", "0", None);
    p.pin_cert("acme", "acme.asc", &gpg.export(&fpr));
    let deb = p.write(
        "evil.deb",
        crafted(
            &[("./ok", "fine", "root"), ("../x", "escaped", "root")],
            &[],
        ),
    );
    gpg.detach_sign(&fpr, &deb, &p.path("evil.deb.asc"), "SHA256", None, true);
    p.run(&["unpack", "evil.deb", "--into", "out"])
        .code(1)
        .stderr_has("path-traversal: entry ../x");
    assert!(!p.path("out").exists());
    assert!(!p.path("x").exists());
}

#[test]
fn members_dpkg_would_refuse_are_refused() {
    let p = Project::new();
    let twice = crafted(&[("./a", "a", "root")], &[("data.tar.gz", b"")]);
    p.write("twice.deb", twice);
    p.run(&["inspect", "twice.deb"])
        .code(2)
        .stderr_has("duplicate-entry: entry data.tar.gz");
    let unknown = crafted(&[("./a", "a", "root")], &[("payload.sh", b"rm -rf /")]);
    p.write("unknown.deb", unknown);
    p.run(&["inspect", "unknown.deb"])
        .code(2)
        .stderr_has("bad-member: entry payload.sh");
    let mut cut = crafted(&[("./a", "a", "root")], &[]);
    cut.truncate(cut.len() - 700);
    p.write("cut.deb", cut);
    p.run(&["inspect", "cut.deb"])
        .code(2)
        .stderr_has("archive-corrupt");
}

/// The members of an ar archive, as `(name, data)`.
fn members(deb: &[u8]) -> Vec<(String, Vec<u8>)> {
    assert!(deb.starts_with(b"!<arch>\n"));
    let mut out = Vec::new();
    let mut at = 8;
    while at + 60 <= deb.len() {
        let h = &deb[at..at + 60];
        let name = String::from_utf8_lossy(&h[..16])
            .trim_end()
            .trim_end_matches('/')
            .to_string();
        let size: usize = String::from_utf8_lossy(&h[48..58]).trim().parse().unwrap();
        out.push((name, deb[at + 60..at + 60 + size].to_vec()));
        at += 60 + size + size % 2;
    }
    out
}

/// Signs `deb` as `debsigs --sign=origin` does: a detached signature over the data of
/// debian-binary, control.tar.* and data.tar.*, appended as the member `_gpgorigin`.
fn sign_origin(p: &Project, gpg: &Gpg, fpr: &str, deb: &Path) {
    let bytes = std::fs::read(deb).unwrap();
    let signed: Vec<u8> = members(&bytes)
        .into_iter()
        .take(3)
        .flat_map(|(_, d)| d)
        .collect();
    let data = p.write("origin-data", signed);
    let sig = p.path("origin.sig");
    gpg.detach_sign(fpr, &data, &sig, "SHA256", None, false);
    let sig = std::fs::read(&sig).unwrap();
    let appended = [&bytes[..], &ar(&[("_gpgorigin", &sig)])[8..]].concat();
    std::fs::write(deb, appended).unwrap();
}

#[test]
fn a_debsig_origin_signature_inside_the_package_verifies() {
    let r = Repo::new();
    let deb = r.p.path(DEB);
    sign_origin(&r.p, &r.gpg, &r.fpr, &deb);
    r.p.run(&["verify", DEB])
        .code(0)
        .stdout_has("source  embedded pool/acme-agent_1.0_all.deb/_gpgorigin")
        .stdout_has("good-signature");
    r.p.run(&["unpack", DEB, "--into", "out"]).code(0);
    assert!(r.p.path("out/usr/bin/acme-agent").is_file());
    assert!(!r.p.path("out/_gpgorigin").exists());

    // Signed by a key that is not pinned: exit 3.
    let stranger = Gpg::new();
    let sfpr = stranger.key("Mallory <m@evil.example>", "ed25519", "0", None);
    let other = r.p.path("pool/other.deb");
    build_deb(&r.p, "1.0", "pool/other.deb");
    sign_origin(&r.p, &stranger, &sfpr, &other);
    r.p.run(&["verify", "pool/other.deb", "--vendor", "acme"])
        .code(3)
        .stdout_has(&sfpr);
}

#[test]
fn a_truncated_package_is_malformed_not_unsigned() {
    let r = Repo::new();
    let deb = r.p.path(DEB);
    sign_origin(&r.p, &r.gpg, &r.fpr, &deb);
    let good = std::fs::read(&deb).unwrap();
    let sig = members(&good)[3].1.len();
    let origin = good.len() - sig - sig % 2;
    // Cut inside the data member (before the signature), inside the signature, and
    // inside a member header.
    for (cut, why) in [
        (origin - 200, "bytes of member data.tar"),
        (origin + 10, "bytes of member _gpgorigin"),
        (8 + 30, "inside the member header at offset 8"),
    ] {
        std::fs::write(&deb, &good[..cut]).unwrap();
        let run = r.p.run(&["verify", DEB, "--json"]);
        run.code(1);
        assert_eq!(run.codes(), ["malformed-package"], "cut at {cut}");
        run.stdout_has("deb: truncated: the file ends ")
            .stdout_has(why);
        let text = r.p.run(&["verify", DEB]);
        text.code(1).stdout_has("damaged or truncated");
        let out = &text.stdout;
        assert_eq!(out.matches("deb: truncated").count(), 1, "{out}");
    }
}

#[test]
fn a_changed_member_or_one_after_the_signed_ones_is_rejected() {
    let r = Repo::new();
    let deb = r.p.path(DEB);
    sign_origin(&r.p, &r.gpg, &r.fpr, &deb);
    let good = std::fs::read(&deb).unwrap();

    let mut tampered = good.clone();
    let (_, data) = &members(&good)[2];
    let at = good
        .windows(data.len())
        .position(|w| w == &data[..])
        .unwrap()
        + data.len() / 2;
    tampered[at] ^= 1;
    std::fs::write(&deb, &tampered).unwrap();
    r.p.run(&["verify", DEB])
        .code(1)
        .stdout_has("bad-signature");

    let appended = [&good[..], &ar(&[("data.tar", b"more")])[8..]].concat();
    std::fs::write(&deb, &appended).unwrap();
    let run = r.p.run(&["verify", DEB, "--json"]);
    run.code(1);
    assert_eq!(run.codes(), ["unsigned-content"]);
    run.stdout_has("duplicate-entry: member data.tar");
}

#[test]
fn a_dpkg_sig_builder_signature_alone_is_not_enough() {
    let p = Project::new();
    p.vendors(&[("acme", "*.deb")]);
    let gpg = Gpg::new();
    let fpr = gpg.key("Acme <a@acme.example>", "ed25519", "0", None);
    p.pin_cert("acme", "acme.asc", &gpg.export(&fpr));
    // dpkg-sig's list: per member its MD5, SHA-1, size and name, clearsigned.
    let list = p.write(
        "builder.txt",
        "Version: 4\nSigner: \nRole: builder\nFiles: \n\td41d8cd98f00b204e9800998ecf8427e da39a3ee5e6b4b0d3255bfef95601890afd80709 4 debian-binary\n",
    );
    gpg.sign_inline(&fpr, &list, &p.path("builder.asc"), "--clearsign");
    let signed = std::fs::read(p.path("builder.asc")).unwrap();
    p.write(
        "built.deb",
        crafted(&[("./a", "a", "root")], &[("_gpgbuilder", &signed)]),
    );
    p.run(&["verify", "built.deb"])
        .code(1)
        .stdout_has("only dpkg-sig's _gpgbuilder signs it, and that vouches for the members by MD5 and SHA-1 alone");
    assert_eq!(
        p.run(&["verify", "built.deb", "--json"]).codes(),
        ["weak-hash"]
    );
}

#[test]
fn an_index_listing_the_package_twice_with_different_hashes_rejects_it() {
    let r = Repo::new();
    let packages = std::fs::read_to_string(r.p.path("Packages")).unwrap();
    let sha = packages
        .lines()
        .find_map(|l| l.strip_prefix("SHA256: "))
        .unwrap()
        .to_string();
    let twin = packages.trim_end().replace(&sha, &"0".repeat(64));
    r.p.write("Packages", format!("{packages}\n{twin}\n"));
    r.compress();
    r.release();
    r.verify("Packages")
        .code(1)
        .stdout_has("Packages: lists acme-agent_1.0_all.deb with different hashes on line 1, line ")
        .stdout_has("  pin-matched  Packages line 1 (Filename)")
        .stdout_has("  digest-mismatch  Packages line ");
    assert_eq!(r.codes("Packages"), ["digest-mismatch"]);
}

/// apt refuses a release past its signed `Valid-Until` (an old, genuinely signed copy
/// replayed to hide newer packages); so does a `.deb` checked through it, in both
/// release forms.
#[test]
fn a_release_past_its_valid_until_is_expired_metadata() {
    let r = Repo::new();
    r.release_by(
        &r.gpg,
        &r.fpr,
        "Valid-Until: Sat, 01 Jan 2022 00:00:00 UTC\n",
    );
    r.verify("Packages.gz")
        .code(1)
        .stdout_has("expired-metadata");
    assert_eq!(r.codes("Packages.gz"), ["expired-metadata"]);
    let detached = r.p.run(&[
        "verify",
        DEB,
        "--release",
        "Release",
        "--release-signature",
        "Release.gpg",
        "--index",
        "Packages",
        "--json",
    ]);
    detached.code(1);
    assert_eq!(detached.codes(), ["expired-metadata"]);
    // Valid for another year: verified.
    r.release_by(
        &r.gpg,
        &r.fpr,
        "Valid-Until: Sat, 01 Jan 2100 00:00:00 UTC\n",
    );
    r.verify("Packages.gz").code(0);
}
