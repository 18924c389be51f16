//! Mutation runs of the real binary: bundles, signatures and keyrings made by real
//! GnuPG (detached armored and binary, cleartext, inline binary and armored; zip and
//! tar.gz archives for `unpack`), each case one random flip, insertion, deletion or
//! truncation, run under a deadline.
//!
//! Properties: the binary never crashes or hangs; a readable bundle or signature is
//! never "could not check" (exit 2); verified (exit 0) always names the pinned
//! certificate; a changed detached-signed bundle never verifies and a changed archive
//! is never unpacked. A signed message carries unsigned framing by design (see
//! `src/mutation.rs`, which runs thousands of cases in-process with the exact oracle):
//! here a change at its edges never verifies, and a change inside it verifies only when
//! Sequoia's own verifier reads the same signed content.
//!
//! The seed is fixed and printed; `VENDORGUARD_MUTATION_SEED` replaces it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sequoia_openpgp as openpgp;

use openpgp::parse::stream::{MessageLayer, MessageStructure, VerificationHelper, VerifierBuilder};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::Cert;

use crate::harness::*;

const SEED_ENV: &str = "VENDORGUARD_MUTATION_SEED";
const DEFAULT_SEED: u64 = 0x7667_6d75_7461_7465;
const VERIFY_CASES: usize = 400;
const UNPACK_CASES: usize = 100;
const DEADLINE: Duration = Duration::from_secs(60);

fn seed() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(s) if !s.trim().is_empty() => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{SEED_ENV}={s:?} is not a number"))
        }
        _ => DEFAULT_SEED,
    }
}

fn case_rng(seed: u64, case: usize) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed ^ (case as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// One change: the new bytes, what was done, and whether it adds or cuts bytes at
/// either end of the file.
struct Mutation {
    bytes: Vec<u8>,
    what: String,
    edge: bool,
}

fn mutate(rng: &mut fastrand::Rng, orig: &[u8]) -> Mutation {
    let len = orig.len();
    let mut v = orig.to_vec();
    let at = rng.usize(..len.max(1)).min(len);
    let n = rng.usize(1..=16);
    let junk: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
    let (what, edge) = match rng.u8(..10) {
        0..=3 if len > 0 => {
            let bits = 1u8 << rng.u8(..8);
            v[at] ^= bits;
            (format!("xor {bits:#04x} at {at}"), false)
        }
        4..=5 => {
            let at = rng.usize(..=len);
            v.splice(at..at, junk.iter().copied());
            (format!("insert {junk:?} at {at}"), at == 0 || at == len)
        }
        6..=7 if len > 0 => {
            let n = n.min(len - at);
            v.drain(at..at + n);
            (format!("delete {n} at {at}"), at == 0 || at + n == len)
        }
        8 => {
            let keep = rng.usize(..len.max(1));
            v.truncate(keep);
            (format!("truncate to {keep}"), true)
        }
        _ => {
            v.extend_from_slice(&junk);
            (format!("append {junk:?}"), true)
        }
    };
    Mutation {
        bytes: v,
        what,
        edge,
    }
}

/// The content Sequoia's own verifier reads from a signed message when `cert` made a
/// good signature over it.
fn independent_content(bytes: &[u8], cert: &[u8]) -> Option<Vec<u8>> {
    struct Helper(Cert);
    impl VerificationHelper for Helper {
        fn get_certs(&mut self, _: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<Cert>> {
            Ok(vec![self.0.clone()])
        }
        fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
            for layer in structure {
                if let MessageLayer::SignatureGroup { results } = layer {
                    if results.iter().any(Result::is_ok) {
                        return Ok(());
                    }
                }
            }
            Err(anyhow::anyhow!("no good signature"))
        }
    }
    let policy = StandardPolicy::new();
    let mut v = VerifierBuilder::from_bytes(bytes)
        .ok()?
        .with_policy(&policy, None, Helper(Cert::from_bytes(cert).ok()?))
        .ok()?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut v, &mut out).ok()?;
    Some(out)
}

/// Runs the binary in `dir`, killing it and failing past [`DEADLINE`].
fn run_within_deadline(dir: &Path, args: &[&str], label: &str) -> Run {
    let child = Command::new(env!("CARGO_BIN_EXE_vendorguard"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vendorguard");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a child's pid");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("wait for vendorguard"),
        Err(_) => {
            // Our own child's pid, not yet reaped by the waiting thread.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            panic!("{label}: vendorguard {args:?} ran past {DEADLINE:?}");
        }
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

/// A bundle as GnuPG signed it.
struct Signed {
    name: &'static str,
    file: &'static str,
    bundle: Vec<u8>,
    /// A detached signature and its extension.
    signature: Option<(Vec<u8>, &'static str)>,
    /// The signed content, for signed messages.
    content: Vec<u8>,
}

const RELEASE: &[u8] =
    b"Origin: Acme\nSuite: stable\n-dash line\nSHA256:\n 0af8fef8b939640ec81af2ca28559945ba410cb5350b3a1af176a606a9690e75 1002 main/Packages\n";

fn tar_gz() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, body) in [
        ("pkg/VERSION", &b"1.2.3\n"[..]),
        (
            "pkg/install.sh",
            b"#!/bin/sh\nsudo systemctl restart agent\n",
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(1_767_225_600);
        h.set_cksum();
        tar.append_data(&mut h, name, body).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Real GnuPG makes the key and every signature.
struct Scene {
    gpg: Gpg,
    fpr: String,
    cert: Vec<u8>,
    scratch: Project,
}

impl Scene {
    fn new() -> Scene {
        let gpg = Gpg::new();
        let fpr = gpg.key("Acme Release <release@acme.example>", "ed25519", "0", None);
        let cert = gpg.export(&fpr);
        Scene {
            gpg,
            fpr,
            cert,
            scratch: Project::new(),
        }
    }

    fn detached(&self, data: &[u8], armor: bool) -> Vec<u8> {
        let file = self.scratch.write("data", data);
        let out = self.scratch.path("data.sig");
        self.gpg
            .detach_sign(&self.fpr, &file, &out, "SHA256", None, armor);
        std::fs::read(out).unwrap()
    }

    fn message(&self, mode: &[&str]) -> Vec<u8> {
        let file = self.scratch.write("Release", RELEASE);
        let out = self.scratch.path("Release.out");
        let _ = std::fs::remove_file(&out);
        let user = format!("{}!", self.fpr);
        let (file, out_s) = (file.display().to_string(), out.display().to_string());
        let mut args = vec!["--local-user", &user, "--output", &out_s];
        args.extend(mode);
        args.push(&file);
        self.gpg.gpg(&args);
        std::fs::read(out).unwrap()
    }

    fn fixtures(&self) -> Vec<Signed> {
        let zip = include_bytes!("../../examples/Full-upgrade-package-dten.zip").to_vec();
        let tgz = tar_gz();
        let message = |name, file, mode: &[&str]| {
            let bundle = self.message(mode);
            Signed {
                name,
                file,
                content: independent_content(&bundle, &self.cert)
                    .expect("Sequoia reads GnuPG's message"),
                bundle,
                signature: None,
            }
        };
        vec![
            Signed {
                name: "zip, armored detached signature",
                file: "acme-1.zip",
                signature: Some((self.detached(&zip, true), "asc")),
                bundle: zip,
                content: Vec::new(),
            },
            Signed {
                name: "tar.gz, binary detached signature",
                file: "acme-2.tar.gz",
                signature: Some((self.detached(&tgz, false), "sig")),
                bundle: tgz,
                content: Vec::new(),
            },
            message("cleartext", "InRelease", &["--clearsign"]),
            message("inline, compressed", "Release.gpg", &["--sign"]),
            message(
                "inline, uncompressed",
                "Release.gpg",
                &["-z", "0", "--sign"],
            ),
            message("inline, armored", "Release.asc", &["--armor", "--sign"]),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Bundle,
    Signature,
    Keyring,
}

#[test]
fn mutated_inputs_through_the_binary_never_crash_hang_or_verify_falsely() {
    let seed = seed();
    let started = Instant::now();
    let scene = Scene::new();
    let fixtures = scene.fixtures();
    let p = Project::new();
    let keyring = p.write("acme.asc", &scene.cert);
    let keyring = keyring.to_str().unwrap();
    // Each fixture verifies unchanged, or the mutations prove nothing.
    for f in &fixtures {
        let dir = p.path(&f.name.replace([' ', ','], "_"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(f.file), &f.bundle).unwrap();
        if let Some((sig, ext)) = &f.signature {
            std::fs::write(dir.join(format!("{}.{ext}", f.file)), sig).unwrap();
        }
        run_within_deadline(&dir, &["verify", "--keyring", keyring, f.file], f.name).code(0);
    }

    let mut failures = Vec::new();
    let mut tally = std::collections::BTreeMap::new();
    for i in 0..VERIFY_CASES {
        let mut rng = case_rng(seed, i);
        let f = &fixtures[rng.usize(..fixtures.len())];
        let target = match (rng.u8(..10), &f.signature) {
            (0..=5, _) | (6..=7, None) => Target::Bundle,
            (6..=7, Some(_)) => Target::Signature,
            _ => Target::Keyring,
        };
        let orig = match target {
            Target::Bundle => &f.bundle,
            Target::Signature => &f.signature.as_ref().unwrap().0,
            Target::Keyring => &scene.cert,
        };
        let m = mutate(&mut rng, orig);
        let dir = p.path(&f.name.replace([' ', ','], "_"));
        let pick = |t, orig: &[u8]| {
            if target == t {
                m.bytes.clone()
            } else {
                orig.to_vec()
            }
        };
        std::fs::write(dir.join(f.file), pick(Target::Bundle, &f.bundle)).unwrap();
        if let Some((sig, ext)) = &f.signature {
            std::fs::write(
                dir.join(format!("{}.{ext}", f.file)),
                pick(Target::Signature, sig),
            )
            .unwrap();
        }
        let ring = dir.join("ring.asc");
        std::fs::write(&ring, pick(Target::Keyring, &scene.cert)).unwrap();
        let label = format!("case {i} ({}, {target:?}: {})", f.name, m.what);
        let r = run_within_deadline(
            &dir,
            &["verify", "--keyring", "ring.asc", "--json", f.file],
            &label,
        );
        *tally.entry((target, r.code)).or_insert(0) += 1;
        if !(0..=3).contains(&r.code) {
            failures.push(format!("{label}: exit {}: {}", r.code, r.stderr));
            continue;
        }
        if r.code == 2 && target != Target::Keyring {
            failures.push(format!(
                "{label}: could not check readable files: {}",
                r.stderr
            ));
        }
        if r.code != 0 {
            continue;
        }
        let names_pinned = r.json()["good_certificates"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c == scene.fpr.as_str()));
        if !names_pinned {
            failures.push(format!(
                "{label}: verified without naming the pinned certificate"
            ));
        }
        if target == Target::Bundle && m.bytes != f.bundle {
            // Whitespace after armor is no content; binary messages have no armor.
            let blank_tail = f.bundle.starts_with(b"-----BEGIN ")
                && m.bytes.trim_ascii_end() == f.bundle.trim_ascii_end();
            let wrong = if f.signature.is_some() {
                Some("a changed detached-signed bundle verified")
            } else if blank_tail {
                None
            } else if m.edge {
                Some("a signed message changed at its edges verified")
            } else if independent_content(&m.bytes, &scene.cert).as_deref() != Some(&f.content[..])
            {
                Some("a signed message with changed content verified")
            } else {
                None
            };
            if let Some(why) = wrong {
                failures.push(format!("{label}: {why}"));
            }
        }
    }
    eprintln!(
        "mutation: seed {seed:#x} ({SEED_ENV} to replay); {VERIFY_CASES} runs of verify in \
         {:.1?}; (target, exit) counts: {tally:?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {VERIFY_CASES} runs failed (seed {seed:#x}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn mutated_archives_are_never_unpacked() {
    let base = seed();
    let seed = base ^ 0x0a0a;
    let started = Instant::now();
    let scene = Scene::new();
    let p = Project::new();
    p.write("acme.asc", &scene.cert);
    let archives = [
        (
            "acme-1.zip",
            include_bytes!("../../examples/Full-upgrade-package-dten.zip").to_vec(),
        ),
        ("acme-2.tar.gz", tar_gz()),
    ];
    for (file, data) in &archives {
        p.write(&format!("{file}.asc"), scene.detached(data, true));
        p.write(file, data);
        run_within_deadline(
            p.dir.path(),
            &["unpack", file, "--into", "good", "--keyring", "acme.asc"],
            file,
        )
        .code(0);
        std::fs::remove_dir_all(p.path("good")).unwrap();
    }
    let mut failures = Vec::new();
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..UNPACK_CASES {
        let mut rng = case_rng(seed, i);
        let (file, data) = &archives[i % archives.len()];
        let m = mutate(&mut rng, data);
        p.write(file, &m.bytes);
        let label = format!("unpack case {i} ({file}: {})", m.what);
        let r = run_within_deadline(
            p.dir.path(),
            &["unpack", file, "--into", "out", "--keyring", "acme.asc"],
            &label,
        );
        *codes.entry(r.code).or_insert(0) += 1;
        let unchanged = m.bytes == *data;
        if r.code == 0 && !unchanged {
            failures.push(format!("{label}: a changed archive was unpacked"));
        }
        if ![0, 1].contains(&r.code) {
            failures.push(format!("{label}: exit {}: {}", r.code, r.stderr));
        }
        if !unchanged && p.path("out").exists() {
            failures.push(format!("{label}: the target was created"));
        }
        let _ = std::fs::remove_dir_all(p.path("out"));
        let leftovers: Vec<String> = std::fs::read_dir(p.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".vendorguard-staging-"))
            .collect();
        if !leftovers.is_empty() {
            failures.push(format!(
                "{label}: staging folders left behind: {leftovers:?}"
            ));
        }
    }
    eprintln!(
        "mutation: seed {base:#x} ({SEED_ENV} to replay); {UNPACK_CASES} runs of unpack in \
         {:.1?}; exit counts: {codes:?}",
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
