//! `vendorguard unpack` and `inspect`: archives built with Python's zipfile/tarfile,
//! signed with real GnuPG, every refusal with its entry and code, and the target left
//! untouched on every failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::harness::*;

/// Builds an archive from a JSON list of entries with Python's standard library.
/// Entry: {"name", "type": file|dir|symlink|hardlink|fifo, "data": str, "zeros": n,
/// "target": str, "mode": int}.
const BUILDER: &str = r#"
import io, json, sys, tarfile, zipfile, warnings
warnings.simplefilter("ignore")
fmt, out, spec = sys.argv[1], sys.argv[2], json.load(sys.stdin)
def body(e):
    return b"\0" * e["zeros"] if "zeros" in e else e.get("data", "").encode()
if fmt == "zip":
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for e in spec:
            t = e.get("type", "file")
            info = zipfile.ZipInfo(e["name"], date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            if t == "symlink":
                info.external_attr = (0o120777 << 16)
                z.writestr(info, e["target"])
            elif t == "dir":
                info.external_attr = (0o40755 << 16) | 0x10
                z.writestr(info, b"")
            else:
                info.external_attr = ((0o100000 | e.get("mode", 0o644)) << 16)
                z.writestr(info, body(e))
else:
    mode = {"tar": "w", "tar.gz": "w:gz", "tar.xz": "w:xz"}[fmt]
    with tarfile.open(out, mode, format=tarfile.GNU_FORMAT) as tf:
        for e in spec:
            t = e.get("type", "file")
            ti = tarfile.TarInfo(e["name"])
            ti.mtime = 1767225600
            ti.mode = e.get("mode", 0o755 if t == "dir" else 0o644)
            if t == "file":
                data = body(e)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                       "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE}[t]
            ti.linkname = e.get("target", "")
            tf.addfile(ti)
"#;

fn build(path: &Path, format: &str, spec: serde_json::Value) {
    let (fmt, zst) = if format == "tar.zst" {
        ("tar", true)
    } else {
        (format, false)
    };
    let mut child = Command::new("python3")
        .args(["-c", BUILDER, fmt, path.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(spec.to_string().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "archive builder: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if zst {
        let raw = std::fs::read(path).unwrap();
        std::fs::write(path, zstd::encode_all(&raw[..], 3).unwrap()).unwrap();
    }
}

/// A project with vendor `acme` and a pinned GnuPG key that signs every archive built.
struct Bench {
    p: Project,
    gpg: Gpg,
    fpr: String,
}

impl Bench {
    fn new() -> Bench {
        let p = Project::new();
        p.vendors(&[("acme", "acme-*")]);
        let gpg = Gpg::new();
        let fpr = gpg.key("Acme <a@acme.example>", "ed25519", "0", None);
        p.pin_cert("acme", "acme.asc", &gpg.export(&fpr));
        Bench { p, gpg, fpr }
    }

    /// Builds and signs `acme-NAME`.
    fn archive(&self, name: &str, format: &str, spec: serde_json::Value) -> String {
        let file = format!("acme-{name}");
        let path = self.p.path(&file);
        build(&path, format, spec);
        self.sign(&file);
        file
    }

    fn sign(&self, file: &str) {
        let path = self.p.path(file);
        self.gpg.detach_sign(
            &self.fpr,
            &path,
            &PathBuf::from(format!("{}.asc", path.display())),
            "SHA256",
            None,
            true,
        );
    }

    fn unpack(&self, file: &str, into: &str, extra: &[&str]) -> Run {
        let mut args = vec!["unpack", file, "--into", into];
        args.extend(extra);
        self.p.run(&args)
    }

    /// `inspect` cannot read `file` and `unpack`, once it is signed, refuses it with
    /// `message`, leaving nothing behind.
    #[track_caller]
    fn unreadable(&self, file: &str, message: &str) {
        self.p
            .run(&["inspect", file])
            .code(2)
            .stderr_has(&format!("{file}: cannot read the archive: {message}"));
        self.sign(file);
        self.unpack(file, "out", &[])
            .code(1)
            .stderr_has(&format!("refused: {file}: {message}"));
        self.untouched("out");
    }

    /// The project folder holds no staging leftovers and `into` does not exist.
    #[track_caller]
    fn untouched(&self, into: &str) {
        assert!(!self.p.path(into).exists(), "{into} was created");
        let leftovers: Vec<_> = std::fs::read_dir(self.p.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("staging"))
            .collect();
        assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    }
}

fn payload() -> serde_json::Value {
    json!([
        {"name": "app/", "type": "dir"},
        {"name": "app/VERSION", "data": "2.0\n"},
        {"name": "app/install.sh", "data": "#!/bin/sh\nsudo systemctl restart acme\n", "mode": 0o755},
        {"name": "app/etc/cron.d/acme", "data": "30 2 * * * acme /opt/acme/sync https://old.acme.example/api\n"},
        {"name": "app/lib/acme.service", "data": "[Service]\nUser=acme\nExecStart=/opt/acme/bin/acme\n"},
        {"name": "app/link-to-version", "type": "symlink", "target": "VERSION"},
    ])
}

#[test]
fn every_format_extracts_exactly_and_prints_the_review_summary() {
    let b = Bench::new();
    for format in ["zip", "tar", "tar.gz", "tar.xz", "tar.zst"] {
        // The name says nothing about the format: detection is by content.
        let file = b.archive(
            &format!("bundle-{}", format.replace('.', "-")),
            format,
            payload(),
        );
        let into = format!("out-{format}");
        let r = b.unpack(&file, &into, &[]);
        r.code(0)
            .stdout_has(&format!("unpacked: {file} into {into} ({format},"))
            .stdout_has("review: cron                1")
            .stdout_has("review: systemd             1")
            .stdout_has("review: privileged-command  1")
            .stdout_has("review: host                1");
        let out = b.p.path(&into);
        assert_eq!(
            std::fs::read_to_string(out.join("app/VERSION")).unwrap(),
            "2.0\n"
        );
        assert_eq!(
            std::fs::read_link(out.join("app/link-to-version")).unwrap(),
            Path::new("VERSION")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("app/install.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{format}");
        b.untouched("never");
    }
}

#[test]
fn an_empty_existing_target_is_used_and_a_full_one_refused() {
    let b = Bench::new();
    let file = b.archive("a.zip", "zip", payload());
    std::fs::create_dir(b.p.path("empty")).unwrap();
    b.unpack(&file, "empty", &[]).code(0);
    assert!(b.p.path("empty/app/VERSION").is_file());
    b.p.write("full/keep.txt", "mine");
    b.unpack(&file, "full", &[])
        .code(2)
        .stderr_has("full: target-not-empty");
    assert_eq!(std::fs::read_dir(b.p.path("full")).unwrap().count(), 1);
}

#[test]
fn unverified_bundles_extract_nothing() {
    let b = Bench::new();
    let file = b.archive("a.zip", "zip", payload());
    let mut data = std::fs::read(b.p.path(&file)).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    std::fs::write(b.p.path(&file), data).unwrap();
    b.unpack(&file, "out", &[])
        .code(1)
        .stdout_has("rejected:")
        .stderr_has("nothing was extracted");
    b.untouched("out");

    let stranger = Gpg::new();
    let sfpr = stranger.key("S <s@evil.example>", "ed25519", "0", None);
    let file = "acme-b.zip";
    build(&b.p.path(file), "zip", payload());
    stranger.detach_sign(
        &sfpr,
        &b.p.path(file),
        &b.p.path("acme-b.zip.asc"),
        "SHA256",
        None,
        true,
    );
    b.unpack(file, "out", &[]).code(3).stdout_has(&sfpr);
    b.untouched("out");
}

#[test]
fn unsafe_entries_are_refused_with_their_name_and_code() {
    let b = Bench::new();
    let cases: Vec<(&str, &str, serde_json::Value, &str, &str)> = vec![
        (
            "zip-slip",
            "zip",
            json!([{"name": "ok.txt", "data": "x"}, {"name": "../evil.txt", "data": "x"}]),
            "path-traversal",
            "../evil.txt",
        ),
        (
            "tar-slip",
            "tar",
            json!([{"name": "a/../../evil.txt", "data": "x"}]),
            "path-traversal",
            "a/../../evil.txt",
        ),
        (
            "absolute",
            "tar",
            json!([{"name": "/etc/evil.conf", "data": "x"}]),
            "path-traversal",
            "/etc/evil.conf",
        ),
        (
            "symlink-escape",
            "tar.gz",
            json!([{"name": "etc", "type": "symlink", "target": "../../../etc"}]),
            "symlink-escape",
            "etc",
        ),
        (
            "absolute-symlink",
            "zip",
            json!([{"name": "passwd", "type": "symlink", "target": "/etc/passwd"}]),
            "symlink-escape",
            "passwd",
        ),
        (
            "through-symlink",
            "tar",
            json!([{"name": "d", "type": "dir"}, {"name": "l", "type": "symlink", "target": "d"}, {"name": "l/x", "data": "through"}]),
            "path-through-symlink",
            "l/x",
        ),
        (
            "hardlink-escape",
            "tar",
            json!([{"name": "h", "type": "hardlink", "target": "../../etc/passwd"}]),
            "hardlink-escape",
            "h",
        ),
        (
            "hardlink-absolute",
            "tar",
            json!([{"name": "h", "type": "hardlink", "target": "/etc/shadow"}]),
            "hardlink-escape",
            "h",
        ),
        (
            "duplicate-zip",
            "zip",
            json!([{"name": "AndroidManifest.xml", "data": "good"}, {"name": "AndroidManifest.xml", "data": "evil"}]),
            "duplicate-entry",
            "AndroidManifest.xml",
        ),
        (
            "duplicate-tar",
            "tar.xz",
            json!([{"name": "x", "data": "1"}, {"name": "./x", "data": "2"}]),
            "duplicate-entry",
            "./x",
        ),
        (
            "fifo",
            "tar",
            json!([{"name": "pipe", "type": "fifo"}]),
            "special-file",
            "pipe",
        ),
        (
            "device",
            "tar",
            json!([{"name": "dev/sda", "type": "chr"}]),
            "special-file",
            "dev/sda",
        ),
    ];
    for (name, format, spec, code, entry) in cases {
        let file = b.archive(name, format, spec);
        let into = format!("out-{name}");
        let r = b.unpack(&file, &into, &[]);
        r.code(1).stderr_has(&format!("{code}: entry {entry}"));
        b.untouched(&into);
        let j = b.unpack(&file, &into, &["--json"]);
        j.code(1);
        assert_eq!(j.json()["refused"]["code"], code, "{name}");
    }
    assert!(!b.p.dir.path().parent().unwrap().join("evil.txt").exists());
}

#[test]
fn bombs_and_limits() {
    let b = Bench::new();
    // 64 MiB of zeros deflates about 1000:1, far past the default ratio of 200.
    let zip = b.archive(
        "bomb.zip",
        "zip",
        json!([{"name": "zeros", "zeros": 64 << 20}]),
    );
    assert!(std::fs::metadata(b.p.path(&zip)).unwrap().len() < 200 * 1024);
    b.unpack(&zip, "out", &[])
        .code(1)
        .stderr_has("ratio-exceeded: entry zeros");
    b.untouched("out");
    let tgz = b.archive(
        "bomb.tgz",
        "tar.gz",
        json!([{"name": "zeros", "zeros": 64 << 20}]),
    );
    b.unpack(&tgz, "out", &[])
        .code(1)
        .stderr_has("ratio-exceeded: entry zeros");
    b.untouched("out");
    // The same archive passes with a higher ratio, but not a lower size limit.
    b.unpack(&tgz, "out", &["--max-ratio", "5000", "--max-size", "1MiB"])
        .code(1)
        .stderr_has("too-large: entry zeros");
    b.untouched("out");
    b.unpack(&tgz, "out", &["--max-ratio", "5000"]).code(0);
    // inspect reads every tar entry through to the next: its size limit stops a bomb
    // before the decompression does.
    b.p.run(&["inspect", &tgz, "--max-size", "1MiB"])
        .code(2)
        .stderr_has("too-large: entry zeros")
        .stderr_has("--max-size");
    // So do inspect's, diff's and preflight's ratio limit (200 by default), found by
    // attacking the release binary: diff of a 293 KB package expanded 2 x 8 GiB.
    b.p.run(&["inspect", &tgz])
        .code(2)
        .stderr_has("ratio-exceeded: entry zeros")
        .stderr_has("--max-ratio");
    b.p.run(&["diff", &tgz, &tgz])
        .code(2)
        .stderr_has("ratio-exceeded");
    b.p.run(&["preflight", &tgz, "--hosts", "/dev/null"])
        .code(2)
        .stderr_has("ratio-exceeded");
    b.p.run(&["inspect", &tgz, "--max-ratio", "5000"]).code(0);
    let many = b.archive(
        "many.zip",
        "zip",
        json!((0..20)
            .map(|i| json!({"name": format!("f{i}"), "data": "x"}))
            .collect::<Vec<_>>()),
    );
    b.unpack(&many, "out2", &["--max-entries", "10"])
        .code(1)
        .stderr_has("too-many-entries: entry f10");
    b.untouched("out2");
}

#[test]
fn corpus_gzip_bomb_is_refused_or_rejected_without_expanding() {
    let Some(c) = corpus() else { return };
    let b = Bench::new();
    std::fs::copy(
        c.join("feeds/hostile/bomb-1GiB.gz"),
        b.p.path("acme-bomb.tar.gz"),
    )
    .unwrap();
    b.sign("acme-bomb.tar.gz");
    let r = b.unpack("acme-bomb.tar.gz", "out", &[]);
    // A gzip of zeros reads as a tar whose first block ends the archive: at most an
    // empty folder, and the gigabyte is never expanded onto the disk.
    match r.code {
        0 => assert_eq!(std::fs::read_dir(b.p.path("out")).unwrap().count(), 0),
        1 => b.untouched("out"),
        other => panic!("exit {other}: {}", r.stderr),
    }
}

#[test]
fn corrupt_archives_are_rejected() {
    let b = Bench::new();
    let file = b.archive(
        "t.zip",
        "zip",
        json!([{"name": "a.txt", "data": "hello hello hello hello hello"}]),
    );
    let good = std::fs::read(b.p.path(&file)).unwrap();
    // Bad CRC: change the stored (uncompressed would be easier, so flip inside the data).
    let mut bad_crc = good.clone();
    let pos = bad_crc.windows(5).position(|w| w == b"a.txt").unwrap() + 5 + 2;
    bad_crc[pos] ^= 0x01;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("bad-crc", bad_crc),
        ("not-an-archive", b"just some text, not an archive".to_vec()),
    ];
    for (name, bytes) in cases {
        let f = format!("acme-{name}.zip");
        b.p.write(&f, bytes);
        b.sign(&f);
        let r = b.unpack(&f, "out", &[]);
        r.code(1).stderr_has("archive-corrupt");
        b.untouched("out");
    }
    b.p.write("acme-text.bin", "plain text");
    b.p.run(&["inspect", "acme-text.bin"])
        .code(2)
        .stderr_has("not an archive vendorguard reads");
    b.p.run(&["inspect", "acme-missing.zip"])
        .code(2)
        .stderr_has("acme-missing.zip: cannot read bundle");
}

#[test]
fn setuid_bits_are_dropped_unless_kept() {
    use std::os::unix::fs::PermissionsExt;
    let b = Bench::new();
    let file = b.archive(
        "suid.tar",
        "tar",
        json!([{"name": "bin/tool", "data": "#!/bin/sh\n", "mode": 0o4755}]),
    );
    b.unpack(&file, "a", &[])
        .code(0)
        .stdout_has("review: setuid              1");
    let m = std::fs::metadata(b.p.path("a/bin/tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(m & 0o7777, 0o755);
    b.unpack(&file, "b", &["--keep-setuid"]).code(0);
    let m = std::fs::metadata(b.p.path("b/bin/tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(m & 0o7777, 0o4755);
}

#[test]
fn a_bundle_swapped_on_disk_during_unpack_never_mixes() {
    let b = Bench::new();
    // Large enough that the swap lands while the verifying pass reads.
    let spec = json!([{"name": "payload.bin", "data": "A".repeat(8 << 20)}]);
    let original = b.archive("swap.tar", "tar", spec);
    let evil_spec = json!([{"name": "payload.bin", "data": "B".repeat(8 << 20)}]);
    build(&b.p.path("evil.tar"), "tar", evil_spec);
    let evil = std::fs::read(b.p.path("evil.tar")).unwrap();
    let good = std::fs::read(b.p.path(&original)).unwrap();
    for round in 0..4 {
        std::fs::write(b.p.path(&original), &good).unwrap();
        let into = format!("out{round}");
        let child = Command::new(env!("CARGO_BIN_EXE_vendorguard"))
            .args(["unpack", &original, "--into", &into])
            .current_dir(b.p.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Overwrite in place (same inode: the worst case for a reader) and then
        // replace the name, at a different point of the run each round.
        for _ in 0..round * 50 {
            std::thread::yield_now();
        }
        std::fs::write(b.p.path(&original), &evil).unwrap();
        let tmp = b.p.path("swap.tmp");
        std::fs::write(&tmp, &evil).unwrap();
        std::fs::rename(&tmp, b.p.path(&original)).unwrap();
        let status = child.wait_with_output().unwrap().status;
        let out = b.p.path(&into).join("payload.bin");
        if status.success() {
            let data = std::fs::read(&out).unwrap();
            assert!(
                data.iter().all(|&c| c == b'A'),
                "round {round}: extracted bytes are not the verified ones"
            );
        } else {
            assert_eq!(status.code(), Some(1), "round {round}");
            b.untouched(&into);
        }
    }
}

/// Runs `script` in a private mount namespace where `dir` is a small tmpfs, so the
/// mount disappears with the process. Returns stdout.
fn in_small_tmpfs(dir: &Path, size: &str, script: &str) -> String {
    let full = format!(
        "mount -t tmpfs -o size={size} tmpfs '{}' && {script}",
        dir.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &full])
        .output()
        .expect("unshare from util-linux");
    assert!(
        out.status.success(),
        "namespace setup failed (needs root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn full_and_read_only_targets_leave_nothing_behind() {
    let b = Bench::new();
    // 4 MiB of text compresses well: the copy fits in 1 MiB, the extraction does not.
    let text: String = (0..(4 << 20) / 16)
        .map(|i| format!("line {i:010}\n"))
        .collect();
    let file = b.archive(
        "big.tar.gz",
        "tar.gz",
        json!([{"name": "big.txt", "data": text}]),
    );
    let bin = env!("CARGO_BIN_EXE_vendorguard");
    let mnt = b.p.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let bundle = b.p.path(&file);
    let script = format!(
        "cd '{root}' && '{bin}' unpack '{bundle}' --into '{mnt}/out' --max-ratio 1000; echo rc=$?; ls -A '{mnt}'; echo end",
        root = b.p.dir.path().display(),
        bundle = bundle.display(),
        mnt = mnt.display(),
    );
    let out = in_small_tmpfs(&mnt, "1m", &script);
    assert!(out.contains("rc=2"), "{out}");
    assert!(
        out.trim_end().ends_with("rc=2\nend"),
        "the full disk kept files: {out}"
    );

    let ro = format!(
        "mount -o remount,ro '{mnt}' && cd '{root}' && '{bin}' unpack '{bundle}' --into '{mnt}/out'; echo rc=$?; ls -A '{mnt}'; echo end",
        root = b.p.dir.path().display(),
        bundle = bundle.display(),
        mnt = mnt.display(),
    );
    let out = in_small_tmpfs(&mnt, "16m", &ro);
    assert!(out.trim_end().ends_with("rc=2\nend"), "{out}");
}

#[test]
fn inspect_reports_side_effects_as_text_and_json() {
    let b = Bench::new();
    let file = b.archive("inspect.tar.gz", "tar.gz", payload());
    let r = b.p.run(&["inspect", &file]);
    r.code(0)
        .stdout_has("cron entries (schedule, user, command) [cron]: 1")
        .stdout_has("app/etc/cron.d/acme:1  schedule 30 2 * * *, user acme, command /opt/acme/sync https://old.acme.example/api")
        .stdout_has("app/lib/acme.service  User=acme; ExecStart=/opt/acme/bin/acme")
        .stdout_has("app/install.sh:2  sudo: sudo systemctl restart acme")
        .stdout_has("app/install.sh  runs at install or upgrade time");
    let j = b.p.run(&["inspect", "--json", &file]);
    let v = j.json();
    assert_eq!(v["format"], "tar.gz");
    assert_eq!(v["entries"], 6);
    assert_eq!(v["counts"]["host"], 1);
    assert_eq!(v["findings"][0]["kind"], "cron");
    assert_eq!(v["findings"][0]["line"], 1);
    // Inspect does not need a signature and writes nothing.
    std::fs::remove_file(b.p.path(&format!("{file}.asc"))).unwrap();
    b.p.run(&["inspect", &file]).code(0);
}

#[test]
fn shipped_example_unpacks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new();
    let into = p.path("dten");
    let r = p.run_in(
        root,
        &[
            "unpack",
            "examples/Full-upgrade-package-dten.zip",
            "--into",
            into.to_str().unwrap(),
        ],
    );
    r.code(0).stdout_has("review: cron                1");
    assert!(into.join("dten/etc/cron.d/dten-import").is_file());
}

fn symlink(name: &str, target: &str) -> serde_json::Value {
    json!({"name": name, "type": "symlink", "target": target})
}

/// Each link alone points inside; only followed through one another do they leave DIR.
#[test]
fn links_that_escape_through_the_archives_own_links_are_refused() {
    let b = Bench::new();
    let up = vec![symlink("y", "."), symlink("x", "y/..")];
    let up2 = vec![symlink("a/up", ".."), symlink("b", "a/up/a/up/..")];
    // l0 -> l1 -> ... -> l10 -> y/.. with y -> .: ten links before the escape shows.
    let mut deep: Vec<serde_json::Value> = (0..10)
        .map(|i| symlink(&format!("l{i}"), &format!("l{}", i + 1)))
        .collect();
    deep.push(symlink("l10", "y/.."));
    deep.push(symlink("y", "."));
    let rev = |v: &Vec<serde_json::Value>| v.iter().rev().cloned().collect::<Vec<_>>();
    // (case, format, entries, code, refused entry, part of the message)
    type Case = (
        &'static str,
        &'static str,
        Vec<serde_json::Value>,
        &'static str,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "up-tar",
            "tar",
            up.clone(),
            "symlink-escape",
            "x",
            "points to y/.., which resolves to .. (outside the target)",
        ),
        (
            "up-zip",
            "zip",
            up.clone(),
            "symlink-escape",
            "x",
            "resolves to .. (outside the target)",
        ),
        // The link arrives before the link it goes through.
        (
            "up-rev-tar",
            "tar.gz",
            rev(&up),
            "symlink-escape",
            "x",
            "resolves to ..",
        ),
        (
            "up-rev-zip",
            "zip",
            rev(&up),
            "symlink-escape",
            "x",
            "resolves to ..",
        ),
        (
            "up2-tar",
            "tar",
            up2.clone(),
            "symlink-escape",
            "b",
            "points to a/up/a/up/.., which resolves to ..",
        ),
        (
            "up2-zip",
            "zip",
            up2.clone(),
            "symlink-escape",
            "b",
            "resolves to ..",
        ),
        (
            "up2-rev-tar",
            "tar.xz",
            rev(&up2),
            "symlink-escape",
            "b",
            "resolves to ..",
        ),
        (
            "up2-rev-zip",
            "zip",
            rev(&up2),
            "symlink-escape",
            "b",
            "resolves to ..",
        ),
        (
            "deep-tar",
            "tar",
            deep.clone(),
            "symlink-escape",
            "l0",
            "points to l1, which resolves to ..",
        ),
        (
            "deep-rev-zip",
            "zip",
            rev(&deep),
            "symlink-escape",
            "l10",
            "resolves to ..",
        ),
        (
            "loop",
            "tar",
            vec![symlink("a", "b"), symlink("b", "c/../a")],
            "symlink-loop",
            "a",
            "more than 40 links",
        ),
        (
            "self-loop",
            "zip",
            vec![symlink("s", "./s")],
            "symlink-loop",
            "s",
            "(a loop)",
        ),
        // What comes after the escape is named too.
        (
            "up-etc",
            "tar",
            vec![symlink("y", "."), symlink("etc", "y/../etc")],
            "symlink-escape",
            "etc",
            "resolves to ../etc",
        ),
    ];
    for (name, format, spec, code, entry, message) in cases {
        let file = b.archive(name, format, serde_json::Value::Array(spec));
        let into = format!("out-{name}");
        b.unpack(&file, &into, &[])
            .code(1)
            .stderr_has(&format!("{code}: entry {entry}: "))
            .stderr_has(message);
        b.untouched(&into);
        let j = b.unpack(&file, &into, &["--json"]);
        j.code(1);
        assert_eq!(j.json()["refused"]["code"], code, "{name}");
        // inspect reads the same archive unverified, reports the link and still exits 0.
        let i = b.p.run(&["inspect", "--json", &file]);
        i.code(0);
        let v = i.json();
        assert!(
            v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["kind"] == "symlink-escape" && f["file"] == entry),
            "{name}: {v}"
        );
        assert!(
            v["counts"]["symlink-escape"].as_u64().unwrap() >= 1,
            "{name}"
        );
    }
    b.p.run(&["inspect", "acme-up-tar"])
        .code(0)
        .stdout_has("[symlink-escape]: 1")
        .stdout_has(
            "  x  symlink to y/.., which resolves to .. (outside the folder it unpacks into)",
        );
}

#[test]
fn hard_links_and_files_through_escaping_link_chains_are_refused() {
    let b = Bench::new();
    let cases: Vec<(&str, serde_json::Value, &str, &str)> = vec![
        (
            "hard-through-escape",
            json!([symlink("y", "."), symlink("x", "y/.."), {"name": "h", "type": "hardlink", "target": "x/etc/passwd"}]),
            "hardlink-escape: entry h: links to x/etc/passwd, which resolves to ../etc/passwd (outside the target)",
            "h",
        ),
        (
            "file-through-chain",
            json!([{"name": "d", "type": "dir"}, symlink("l2", "d"), symlink("l1", "l2"), {"name": "l1/f", "data": "x"}]),
            "path-through-symlink: entry l1/f",
            "",
        ),
        // The file comes first and makes x a folder; a link may not replace it later.
        (
            "file-then-chain",
            json!([{"name": "x/f", "data": "x"}, symlink("x", "y/.."), symlink("y", ".")]),
            "duplicate-entry: entry x",
            "",
        ),
    ];
    for (name, spec, message, finding) in cases {
        let file = b.archive(name, "tar", spec);
        let into = format!("out-{name}");
        b.unpack(&file, &into, &[]).code(1).stderr_has(message);
        b.untouched(&into);
        if !finding.is_empty() {
            b.p.run(&["inspect", &file]).code(0).stdout_has(&format!(
                "  {finding}  hard link to x/etc/passwd, which resolves to ../etc/passwd"
            ));
        }
    }
}

/// A shared library's usual chain, a `current` link and a link into it from elsewhere,
/// in archive order and reversed (links before what they point at).
#[test]
fn internal_link_chains_extract_and_resolve_to_their_file() {
    let b = Bench::new();
    let entries = vec![
        json!({"name": "lib/libacme.so.1.2", "data": "\u{7f}ELF acme 1.2"}),
        symlink("lib/libacme.so.1", "libacme.so.1.2"),
        symlink("lib/libacme.so", "libacme.so.1"),
        symlink("current", "lib"),
        symlink("usr/lib/acme", "../../current/libacme.so"),
        // Dangling, but inside.
        symlink("lib/plugins", "../plugins.d/enabled"),
    ];
    let mut with_hardlink = entries.clone();
    // A hard link through a link the archive made earlier reaches the same file.
    with_hardlink.push(json!({"name": "usr/lib/acme.copy", "type": "hardlink", "target": "current/libacme.so.1.2"}));
    let reversed: Vec<_> = entries.iter().rev().cloned().collect();
    for (name, format, spec, hard) in [
        ("chain-tar", "tar", with_hardlink, true),
        ("chain-zip", "zip", entries.clone(), false),
        ("chain-rev-tar", "tar.zst", reversed.clone(), false),
        ("chain-rev-zip", "zip", reversed, false),
    ] {
        let file = b.archive(name, format, serde_json::Value::Array(spec));
        let into = format!("out-{name}");
        b.unpack(&file, &into, &[]).code(0);
        let out = b.p.path(&into);
        let real = std::fs::canonicalize(out.join("lib/libacme.so.1.2")).unwrap();
        for via in ["usr/lib/acme", "lib/libacme.so", "current/libacme.so.1"] {
            assert_eq!(
                std::fs::canonicalize(out.join(via)).unwrap(),
                real,
                "{name}: {via}"
            );
        }
        assert_eq!(
            std::fs::read(out.join("usr/lib/acme")).unwrap(),
            "\u{7f}ELF acme 1.2".as_bytes()
        );
        assert_eq!(
            std::fs::read_link(out.join("lib/plugins")).unwrap(),
            Path::new("../plugins.d/enabled")
        );
        if hard {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                std::fs::metadata(out.join("usr/lib/acme.copy"))
                    .unwrap()
                    .ino(),
                std::fs::metadata(&real).unwrap().ino()
            );
        }
        b.p.run(&["inspect", &file])
            .code(0)
            .stdout_lacks("symlink-escape");
    }
}

fn le(b: &[u8], at: usize, n: usize) -> u64 {
    b[at..at + n]
        .iter()
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | x as u64)
}

/// Appends a zip64 end record claiming `count` entries in `size` bytes at `offset`, its
/// locator, and a classic end record that defers to it.
fn zip64_end(z: &mut Vec<u8>, count: u64, size: u64, offset: u64) {
    let rec = z.len() as u64;
    z.extend(b"PK\x06\x06");
    z.extend(44u64.to_le_bytes());
    z.extend([45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    for v in [count, count, size, offset] {
        z.extend(v.to_le_bytes());
    }
    z.extend(b"PK\x06\x07");
    z.extend(0u32.to_le_bytes());
    z.extend(rec.to_le_bytes());
    z.extend(1u32.to_le_bytes());
    z.extend(b"PK\x05\x06");
    z.extend([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    z.extend([0xff; 8]);
    z.extend([0, 0]);
}

/// A zip of one stored file, "f" holding "x", and `n` directory entries named by `name`
/// that all point at it.
fn one_stream_zip(n: u64, name: impl Fn(u64) -> String) -> Vec<u8> {
    let mut z = Vec::with_capacity(n as usize * 60 + 100);
    z.extend(b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0");
    z.extend(0x8cdc_1683u32.to_le_bytes());
    z.extend([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
    z.extend(b"fx");
    let cd_off = z.len() as u64;
    for i in 0..n {
        let name = name(i);
        z.extend(b"PK\x01\x02\x14\0\x14\0\0\0\0\0\0\0\0\0");
        z.extend(0x8cdc_1683u32.to_le_bytes());
        z.extend([1, 0, 0, 0, 1, 0, 0, 0, name.len() as u8, 0]);
        z.extend([0; 16]);
        z.extend(name.as_bytes());
    }
    let cd_size = z.len() as u64 - cd_off;
    zip64_end(&mut z, n, cd_size, cd_off);
    z
}

/// Peak resident memory of one run of the binary, in KiB, via GNU time.
fn peak_rss_kib(cwd: &Path, args: &[&str]) -> (u64, std::process::Output) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kib=%M", env!("CARGO_BIN_EXE_vendorguard")])
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("GNU time at /usr/bin/time");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kib = stderr
        .rsplit("peak-rss-kib=")
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {stderr}"));
    (kib, out)
}

/// `inspect` reads unverified zips: what the end records claim must fit in the file
/// before anything is read or allocated by it, and two end records are refused.
#[test]
fn zip_directory_claims_are_checked_against_the_file() {
    let b = Bench::new();
    let base_path = b.p.path("base.zip");
    build(
        &base_path,
        "zip",
        json!([{"name": "README", "data": "read me\n"},
               {"name": "install.sh", "data": "#!/bin/sh\nsudo systemctl restart acme\n"}]),
    );
    let base = std::fs::read(&base_path).unwrap();
    let e = base.len() - 22;
    assert_eq!(&base[e..e + 4], b"PK\x05\x06");
    let cd_size = le(&base, e + 12, 4);
    let cd_off = le(&base, e + 16, 4);

    let mut count = base[..e].to_vec();
    zip64_end(&mut count, 50_000_000, cd_size, cd_off);
    let mut size = base[..e].to_vec();
    zip64_end(&mut size, 2, 4 << 30, cd_off);
    let mut count16 = base.clone();
    count16[e + 8..e + 12].copy_from_slice(&[0xfe, 0xff, 0xfe, 0xff]);

    // The real end record's 65535-byte comment hides a second directory listing README
    // alone and an end record pointing at it. Readers that take the last record see
    // README; readers that want the comment to reach the end of the file also see
    // install.sh. Which one the vendor's installer uses is anyone's guess.
    let c = cd_off as usize;
    let first = 46 + (le(&base, c + 28, 2) + le(&base, c + 30, 2) + le(&base, c + 32, 2)) as usize;
    let mut comment = base[..e + 20].to_vec();
    comment.extend(65535u16.to_le_bytes());
    let comment_start = comment.len();
    comment.extend(&base[c..c + first]);
    comment.resize(comment_start + 65535 - 22, b' ');
    comment.extend(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
    comment.extend((first as u32).to_le_bytes());
    comment.extend((comment_start as u32).to_le_bytes());
    comment.extend([0, 0]);
    assert_eq!(comment.len(), comment_start + 65535);

    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "count",
            count,
            format!(
                "the central directory claims 50000000 entries, but its {cd_size} bytes hold at most {}",
                cd_size / 46
            ),
        ),
        (
            "count16",
            count16,
            format!(
                "the central directory claims 65534 entries, but its {cd_size} bytes hold at most {}",
                cd_size / 46
            ),
        ),
        (
            "size",
            size,
            format!("the central directory (4294967296 bytes at offset {cd_off}) lies outside the file"),
        ),
        (
            "comment",
            comment,
            "a second end of central directory record hides in the archive comment".to_string(),
        ),
    ];
    for (name, bytes, message) in cases {
        let file = format!("acme-{name}.zip");
        b.p.write(&file, bytes);
        let started = std::time::Instant::now();
        b.p.run(&["inspect", &file]).code(2).stderr_has(&format!(
            "{file}: cannot read the archive: archive-corrupt: {message}"
        ));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{name}"
        );
        b.sign(&file);
        b.unpack(&file, "out", &[])
            .code(1)
            .stderr_has(&format!("refused: {file}: archive-corrupt: {message}"));
        b.untouched("out");
    }
}

/// A directory that really lists a million entries is read as a stream and refused at
/// the entry limit, without the zip library ever holding it.
#[test]
fn a_zip_directory_past_the_entry_limit_is_refused_in_bounded_memory() {
    let b = Bench::new();
    let z = one_stream_zip(1_000_000, |i| format!("f{i:07}"));
    let file = "acme-million.zip";
    b.p.write(file, z);

    let (kib, out) = peak_rss_kib(b.p.dir.path(), &["inspect", file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("too-many-entries: entry f0200000: the zip central directory lists more than 200000 entries"),
        "{stderr}"
    );
    assert!(kib < 48 * 1024, "inspect peaked at {kib} KiB");

    b.sign(file);
    let (kib, out) = peak_rss_kib(b.p.dir.path(), &["unpack", file, "--into", "out"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("too-many-entries: entry f0200000: the zip central directory lists more than 200000 entries"),
        "{stderr}"
    );
    assert!(kib < 48 * 1024, "unpack peaked at {kib} KiB");
    b.untouched("out");
}

/// One raw tar header block: `name` (at most 100 bytes), type flag and size, checksummed.
fn tar_block(name: &[u8], flag: u8, size: u64) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = flag;
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// An entry `data` long under `flag`, padded to whole blocks.
fn tar_member(name: &[u8], flag: u8, data: &[u8]) -> Vec<u8> {
    let mut m = tar_block(name, flag, data.len() as u64);
    m.extend(data);
    m.resize(m.len().next_multiple_of(512), 0);
    m
}

/// A GNU long name or pax record may claim any length, and is read before the entry it
/// names: names and link targets past 4096 bytes and pax headers past 1 MiB are
/// refused before they are read, in bounded memory. Legit long names still extract.
#[test]
fn tar_long_names_and_pax_headers_are_bounded() {
    let b = Bench::new();
    let file = tar_member(b"f", b'0', b"x");
    let tail = [file.clone(), vec![0u8; 1024]].concat();
    let zst = |parts: Vec<Vec<u8>>| zstd::encode_all(&parts.concat()[..], 3).unwrap();
    let big = vec![b'a'; 96 << 20];
    let pax = |key: &str, value: &[u8]| {
        let rec = [
            format!(" {key}=").into_bytes(),
            value.to_vec(),
            b"\n".to_vec(),
        ]
        .concat();
        let mut len = rec.len() + 1;
        while format!("{len}").len() + rec.len() != len {
            len += 1;
        }
        [format!("{len}").into_bytes(), rec].concat()
    };
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "gnu-name",
            zst(vec![tar_member(b"././@LongLink", b'L', &big), tail.clone()]),
            format!(
                "bad-name: entry #0: a GNU long name claims {} bytes; the limit is 4096",
                96 << 20
            ),
        ),
        (
            "gnu-link",
            zst(vec![
                tar_member(b"././@LongLink", b'K', &big[..100_000]),
                tail.clone(),
            ]),
            "bad-name: entry #0: a GNU long link target claims 100000 bytes; the limit is 4096"
                .into(),
        ),
        (
            "pax-header",
            zst(vec![
                tar_member(b"pax", b'x', &pax("path", &big)),
                tail.clone(),
            ]),
            format!(
                "too-large: entry #0: a pax extended header claims {} bytes; the limit is 1048576",
                pax("path", &big).len()
            ),
        ),
        (
            "pax-path",
            zst(vec![
                tar_member(b"pax", b'x', &pax("path", &big[..5000])),
                tail.clone(),
            ]),
            "bad-name: entry #1: a pax path claims 5000 bytes; the limit is 4096".into(),
        ),
        (
            "pax-linkpath",
            zst(vec![
                tar_member(b"pax", b'x', &pax("linkpath", &big[..5000])),
                tar_block(b"l", b'2', 0),
                vec![0u8; 1024],
            ]),
            "bad-name: entry #1: a pax linkpath claims 5000 bytes; the limit is 4096".into(),
        ),
    ];
    for (name, bytes, message) in cases {
        let file = format!("acme-{name}.tar.zst");
        b.p.write(&file, bytes);
        let (kib, out) = peak_rss_kib(b.p.dir.path(), &["inspect", &file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(&message), "{name}: {stderr}");
        assert!(kib < 48 * 1024, "{name}: inspect peaked at {kib} KiB");
        b.sign(&file);
        b.unpack(&file, "out", &[])
            .code(1)
            .stderr_has(&format!("refused: {file}: {message}"));
        b.untouched("out");
    }

    // Legit: a 3000-byte pax path and a 4000-byte GNU long name extract as named.
    let long = "d/".repeat(1500) + "f";
    let gnu = "e/".repeat(2000) + "g";
    let legit = zst(vec![
        tar_member(b"pax", b'x', &pax("path", long.as_bytes())),
        tar_member(b"ignored", b'0', b"pax\n"),
        tar_member(b"././@LongLink", b'L', format!("{gnu}\0").as_bytes()),
        tar_member(b"ignored2", b'0', b"gnu\n"),
        vec![0u8; 1024],
    ]);
    b.p.write("acme-legit.tar.zst", legit);
    b.sign("acme-legit.tar.zst");
    b.unpack("acme-legit.tar.zst", "out", &[]).code(0);
    assert_eq!(
        std::fs::read(b.p.path("out").join(&long)).unwrap(),
        b"pax\n"
    );
    assert_eq!(std::fs::read(b.p.path("out").join(&gnu)).unwrap(), b"gnu\n");
}

/// Links are judged last, so their names and targets stay in memory to the end: past
/// 64 MiB of names and targets the archive is refused; findings quote at most 200 bytes
/// of a target.
#[test]
fn many_long_link_targets_are_bounded_and_quoted_short() {
    let b = Bench::new();
    let target = "../".repeat(1330) + "etc";
    let mut links = Vec::new();
    for i in 0..17_000 {
        links.push(tar_member(format!("l{i}").as_bytes(), b'2', b"").split_off(0));
        let n = links.len() - 1;
        let mut h = tar_member(b"././@LongLink", b'K', format!("{target}\0").as_bytes());
        h.extend(std::mem::take(&mut links[n]));
        links[n] = h;
    }
    links.push(vec![0u8; 1024]);
    let file = "acme-links.tar.zst";
    b.p.write(file, zstd::encode_all(&links.concat()[..], 3).unwrap());
    let (kib, out) = peak_rss_kib(b.p.dir.path(), &["inspect", file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("too-large: entry l16"), "{stderr}");
    assert!(
        stderr.contains("the archive's names and link targets run past 67108864 bytes here"),
        "{stderr}"
    );
    assert!(kib < 160 * 1024, "inspect peaked at {kib} KiB");

    let one = zstd::encode_all(
        &[
            tar_member(b"././@LongLink", b'K', format!("{target}\0").as_bytes()),
            tar_member(b"l", b'2', b""),
            vec![0u8; 1024],
        ]
        .concat()[..],
        3,
    )
    .unwrap();
    b.p.write("acme-one.tar.zst", one);
    let run = b.p.run(&["inspect", "acme-one.tar.zst"]);
    let shown = format!("{}…", &target[..200]);
    run.stdout_has(&shown).stdout_lacks(&target[..201]);
}

/// Central directory entries whose data overlap expand one stream many times (the
/// overlapping zip bomb): refused as corrupt before anything is inflated.
#[test]
fn overlapping_zip_entries_are_refused() {
    let b = Bench::new();
    let z = one_stream_zip(3, |i| format!("f{i}"));
    let file = "acme-overlap.zip";
    b.p.write(file, z);
    let message = "archive-corrupt: two entries share bytes (local headers at offsets 0 and 0)";
    b.unreadable(file, message);
}

/// When the directory of the last end record does not parse, the zip library falls
/// back to an earlier one; that directory was never checked and other readers never
/// see it.
#[test]
fn a_zip_whose_checked_directory_is_not_the_one_read_is_refused() {
    let b = Bench::new();
    const HIDDEN: &str = r#"
import struct, zlib, sys
def local(name, data):
    return struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 0, 0, 0, zlib.crc32(data), len(data), len(data), len(name), 0) + name + data
def central(name, data, off, extra=b''):
    return struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 0x0314, 20, 0, 0, 0, 0, zlib.crc32(data), len(data), len(data), len(name), len(extra), 0, 0, 0, 0o100644 << 16, off) + name + extra
def eocd(n, cdlen, cdoff):
    return struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, n, n, cdlen, cdoff, 0)
A = b'innocent\n'; B = b'#!/bin/sh\nhidden\n'
la = local(b'innocent.txt', A); body = la + local(b'hidden.sh', B)
cd2 = central(b'hidden.sh', B, len(la)); cd2off = len(body)
body += cd2 + eocd(1, len(cd2), cd2off) + b'\0' * 70000
cd1off = len(body); cd1 = central(b'innocent.txt', A, 0, extra=b'\x01\x99\x01\x00x')
body += cd1 + eocd(1, len(cd1), cd1off)
open(sys.argv[1], 'wb').write(body)
"#;
    let file = "acme-hidden.zip";
    let ok = Command::new("python3")
        .args(["-c", HIDDEN, b.p.path(file).to_str().unwrap()])
        .status()
        .unwrap();
    assert!(ok.success());
    let message = "archive-corrupt: the directory of the last end record (at offset 70184) passed vendorguard's checks but the zip library cannot read it";
    b.unreadable(file, message);
}

/// The same fallback to an earlier directory listing 1,000,000 entries: the zip library
/// never sees that directory, so it is refused without holding it (it took 1.75 GB for
/// 3,000,000 entries while the library parsed it).
#[test]
fn an_earlier_directory_is_never_parsed_in_place_of_the_checked_one() {
    let b = Bench::new();
    const BIG: &str = r#"
import struct, zlib, sys
n = int(sys.argv[2])
def central(name, off, extra=b''):
    return struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 0x0314, 20, 0, 0, 0, 0, 0, 0, 0, len(name), len(extra), 0, 0, 0, 0o100644 << 16, off) + name + extra
def eocd(count, cdlen, cdoff):
    return struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, count, count, cdlen, cdoff, 0)
loc = struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0) + b'a'
with open(sys.argv[1], 'wb') as f:
    f.write(loc)
    start = f.tell()
    one = central(b'a', 0)
    f.write(one * n)
    f.write(struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 0x0314, 20, 0, 0, n, n, len(one) * n, start))
    f.write(struct.pack('<IIQI', 0x07064b50, 0, start + len(one) * n, 1))
    f.write(eocd(0xffff, 0xffffffff, 0xffffffff))
    f.write(b'\0' * 70000)
    cd = central(b'innocent.txt', 0, extra=b'\x01\x99\x01\x00x')
    off = f.tell()
    f.write(cd + eocd(1, len(cd), off))
"#;
    let file = "acme-hidden-big.zip";
    let ok = Command::new("python3")
        .args(["-c", BIG, b.p.path(file).to_str().unwrap(), "1000000"])
        .status()
        .unwrap();
    assert!(ok.success());
    let (kb, out) = peak_rss_kib(&b.p.path(""), &["inspect", file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zip readers disagree on which directory counts"),
        "{err}"
    );
    assert!(
        kb < 48 * 1024,
        "peak RSS {kb} KiB: the earlier directory was parsed"
    );
}
