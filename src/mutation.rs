//! Mutation tests of the verifier, in-process: real bundles, signatures and
//! certificates with random byte flips, insertions, deletions and truncations, run
//! through `verify_bundle` (and archives through the extractor), thousands of cases in
//! seconds. `tests/cli/mutation.rs` runs a few hundred through the real binary.
//!
//! Properties: no case panics or hangs (each has a deadline), none is a could-not-check
//! error (every file is readable), and no changed bundle verifies. For a bundle with a
//! detached signature that last one is exact: verified means the bundle's bytes are
//! the original's and the pinned certificate signed. A signed message carries its
//! signature inside, and OpenPGP leaves parts of a message unsigned by design
//! (unhashed subpackets, one-pass and literal packet headers, the armor checksum,
//! cleartext line endings, trailing blanks and dash escapes), so a changed message may
//! verify only when the change lies in such a part of the original and the signed
//! content, read independently by Sequoia's own verifier, is unchanged; a change at
//! the edges of the file (before it, after it, cutting it) never verifies. An `.rpm`
//! carries its signatures in its signature header, which no signature covers (nor
//! does rpm's): a changed package may verify only when its main header and payload,
//! read again, are byte for byte the original's.
//!
//! The seed is fixed, printed, and replaced by `VENDORGUARD_MUTATION_SEED`; every case
//! derives its own generator from the seed and its number, so a failure names what to
//! replay.

#![cfg(test)]

use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::parse::stream::{MessageLayer, MessageStructure, VerificationHelper, VerifierBuilder};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Armorer, Compressor, LiteralWriter, Message, Signer};
use openpgp::serialize::SerializeInto;
use openpgp::{Cert, Fingerprint};

use crate::verify::judge::Judge;
use crate::verify::keyring::Keyring;
use crate::verify::{self, Verdict};

/// Overrides the seed: decimal or `0x` hex.
pub const SEED_ENV: &str = "VENDORGUARD_MUTATION_SEED";
const DEFAULT_SEED: u64 = 0x7667_6d75_7461_7465;
/// A case that takes longer than this has hung.
const DEADLINE: Duration = Duration::from_secs(30);
const VERIFY_CASES: usize = 3000;
const ARCHIVE_CASES: usize = 600;

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

/// The generator of case `case`.
fn case_rng(seed: u64, case: usize) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed ^ (case as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// One change to a file.
#[derive(Debug, Clone)]
struct Mutation {
    bytes: Vec<u8>,
    /// What was done, for messages.
    what: String,
    /// The bytes of the original that changed (empty at the insertion point).
    region: Range<usize>,
    /// Bytes added (insertions); empty otherwise.
    added: Vec<u8>,
}

/// Bytes that make parsers take a different path when inserted.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b"- ",
    b"=",
    b"\n-----BEGIN PGP SIGNATURE-----\n",
    b"\n-----BEGIN PGP SIGNED MESSAGE-----\n",
    b"\n-----END PGP SIGNATURE-----\n",
    b"Hash: SHA512\n",
    b"Comment: x\n",
    b"\xa3\x01",
    b"\x90\x0d",
    b"\xcb\xe1",
    b"\xff\xff\xff\xff",
    b"\0",
];

fn mutate(rng: &mut fastrand::Rng, orig: &[u8]) -> Mutation {
    let len = orig.len();
    let mut v = orig.to_vec();
    let at = rng.usize(..len.max(1)).min(len);
    let added: Vec<u8> = if rng.u8(..4) == 0 {
        TOKENS[rng.usize(..TOKENS.len())].to_vec()
    } else {
        let n = rng.usize(1..=16);
        (0..n).map(|_| rng.u8(..)).collect()
    };
    let (what, region, added) = match rng.u8(..100) {
        0..=34 if len > 0 => {
            let bits = if rng.bool() {
                1 << rng.u8(..8)
            } else {
                rng.u8(1..=255)
            };
            v[at] ^= bits;
            (format!("xor {bits:#04x} at {at}"), at..at + 1, Vec::new())
        }
        35..=44 if len > 0 => {
            let b = rng.u8(..);
            v[at] = b;
            (format!("set {b:#04x} at {at}"), at..at + 1, Vec::new())
        }
        45..=64 => {
            let at = rng.usize(..=len);
            v.splice(at..at, added.iter().copied());
            (format!("insert {added:?} at {at}"), at..at, added)
        }
        65..=79 if len > 0 => {
            let n = rng.usize(1..=16.min(len - at).max(1)).min(len - at);
            v.drain(at..at + n);
            (format!("delete {n} at {at}"), at..at + n, Vec::new())
        }
        80..=89 => {
            let keep = rng.usize(..len.max(1));
            v.truncate(keep);
            (format!("truncate to {keep}"), keep..len, Vec::new())
        }
        90..=94 if len > 0 => {
            let from = rng.usize(..len);
            let n = rng.usize(1..=64).min(len - from);
            let run = orig[from..from + n].to_vec();
            let at = rng.usize(..=len);
            v.splice(at..at, run.iter().copied());
            (format!("copy {n} from {from} to {at}"), at..at, run)
        }
        _ => {
            v.extend_from_slice(&added);
            (format!("append {added:?}"), len..len, added)
        }
    };
    Mutation {
        bytes: v,
        what,
        region,
        added,
    }
}

/// How a bundle is signed, and the parts of the original a change may touch and still
/// verify (see the file header).
#[derive(Debug, Clone)]
enum Kind {
    /// A detached signature beside the bundle: nothing may change.
    Detached,
    /// Cleartext: the signature block, and the header and text if their canonical
    /// form is kept.
    Cleartext { signature: Range<usize> },
    /// Binary packets, uncompressed: anything but the literal body, inside the message.
    Binary { body: Range<usize> },
    /// Compressed or armored: anything inside the message, if the content is kept.
    Opaque { armored: bool },
    /// A `.deb` with its signature inside: only the unsigned `framing`, in place.
    Embedded { framing: Vec<Range<usize>> },
    /// An `.rpm`: the lead and the signature header (where the signatures live) may
    /// change, the main header and the payload may not.
    Rpm,
}

struct Fixture {
    name: &'static str,
    /// File name of the bundle; a detached signature goes beside it with `sig_ext`.
    file: &'static str,
    bundle: Vec<u8>,
    signature: Option<(Vec<u8>, &'static str)>,
    cert: Vec<u8>,
    cert_file: &'static str,
    pinned: Fingerprint,
    /// The signed content, for signed messages.
    content: Vec<u8>,
    kind: Kind,
}

fn sequoia_cert() -> Cert {
    let (cert, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_creation_time(SystemTime::now() - Duration::from_secs(86_400))
        .add_userid("Mutation Release <release@mutation.example>")
        .add_signing_subkey()
        .generate()
        .expect("generate a certificate");
    cert
}

fn signer(cert: &Cert) -> openpgp::crypto::KeyPair {
    let p = StandardPolicy::new();
    cert.keys()
        .with_policy(&p, None)
        .secret()
        .for_signing()
        .next()
        .expect("a signing key")
        .key()
        .clone()
        .into_keypair()
        .expect("a key pair")
}

fn tar_gz() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, body) in [
        ("pkg/VERSION", &b"1.2.3\n"[..]),
        (
            "pkg/install.sh",
            b"#!/bin/sh\nsudo systemctl restart agent\n",
        ),
        ("pkg/etc/cron.d/job", b"0 3 * * * root /opt/pkg/run\n"),
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

/// A `.deb` signed as debsigs signs one: a `_gpgorigin` member holding a detached
/// signature over the other members' data. Returns it and the parts a change may touch
/// and still verify: each member header's date, owner and mode fields, which nobody
/// signs and dpkg ignores, and the signature member's data.
fn deb_with_origin(cert: &Cert) -> (Vec<u8>, Vec<Range<usize>>) {
    let tgz = tar_gz();
    let members: [(&str, &[u8]); 3] = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", &tgz),
        ("data.tar.gz", &tgz),
    ];
    let signed: Vec<u8> = members
        .iter()
        .flat_map(|(_, d)| d.iter().copied())
        .collect();
    let sig = sign_detached(cert, &signed);
    let all = [members[0], members[1], members[2], ("_gpgorigin", &sig[..])];
    let deb = crate::package::ar::build(&all);
    let mut framing = Vec::new();
    let mut at = 8;
    for (name, data) in all {
        framing.push(at + 16..at + 48);
        if name == "_gpgorigin" {
            framing.push(at + 60..at + 60 + data.len());
        }
        at += 60 + data.len() + data.len() % 2;
    }
    (deb, framing)
}

fn sign_detached(cert: &Cert, data: &[u8]) -> Vec<u8> {
    sign_outside(cert, data, false)
}

/// A detached signature, or (`cleartext`) the cleartext-signed `data`.
fn sign_outside(cert: &Cert, data: &[u8], cleartext: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let s = Signer::new(Message::new(&mut out), signer(cert)).unwrap();
    let s = if cleartext {
        s.cleartext()
    } else {
        s.detached()
    };
    let mut s = s.build().unwrap();
    s.write_all(data).unwrap();
    s.finalize().unwrap();
    out
}

fn sign_inline(cert: &Cert, data: &[u8], compress: bool, armor: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut m = Message::new(&mut out);
    if armor {
        m = Armorer::new(m).build().unwrap();
    }
    if compress {
        m = Compressor::new(m).build().unwrap();
    }
    let m = Signer::new(m, signer(cert)).unwrap().build().unwrap();
    let mut w = LiteralWriter::new(m).build().unwrap();
    w.write_all(data).unwrap();
    w.finalize().unwrap();
    out
}

fn clearsign(cert: &Cert, text: &[u8]) -> Vec<u8> {
    sign_outside(cert, text, true)
}

/// A small package laid out as `rpmsign` writes it: a header-only signature and the
/// header's SHA-256 in the signature header, over a main header that holds the
/// payload's digest.
fn rpm_package(cert: &Cert, payload: &[u8]) -> Vec<u8> {
    use crate::package::rpm::tests::{header, package};
    use crate::package::rpm::{sigtag, tag};
    use sha2::Digest as _;
    let hex0 = |bytes: &[u8]| format!("{}\0", crate::text::hex(&sha2::Sha256::digest(bytes)));
    let payload_digest = hex0(payload);
    let main = header(&[
        (crate::package::rpm::tests::NAME, 6, b"acme\0", 1),
        (tag::PAYLOADDIGEST, 8, payload_digest.as_bytes(), 1),
        (tag::PAYLOADDIGESTALGO, 4, &8u32.to_be_bytes(), 1),
    ]);
    let sig = sign_detached(cert, &main);
    let header_digest = hex0(&main);
    let sig_header = header(&[
        (sigtag::RSAHEADER, 7, &sig, sig.len() as u32),
        (sigtag::SHA256HEADER, 6, header_digest.as_bytes(), 1),
    ]);
    package(&sig_header, &main, payload)
}

/// One newc cpio member.
fn cpio_member(name: &str, mode: u32, ino: u32, nlink: u32, data: &[u8]) -> Vec<u8> {
    let name = format!("{name}\0");
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32,
        0,
    ];
    let mut out = b"070701".to_vec();
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

/// An unsigned package for the archive walker: scriptlets, a `%config` file, an owner,
/// a symlink and a hard-link pair in a gzip cpio payload that its header lists.
fn rpm_archive() -> Vec<u8> {
    rpm_archive_with(&rpm_cpio())
}

fn rpm_cpio() -> Vec<Vec<u8>> {
    vec![
        cpio_member("./opt/acme", 0o040755, 1, 2, b""),
        cpio_member(
            "./opt/acme/run",
            0o100755,
            2,
            1,
            b"#!/bin/sh\nsystemctl restart acme\n",
        ),
        cpio_member("./opt/acme/link", 0o120777, 3, 1, b"run"),
        cpio_member("./opt/acme/a", 0o100644, 4, 2, b""),
        cpio_member("./opt/acme/b", 0o100644, 4, 2, b"shared\n"),
        cpio_member(
            "./etc/acme.conf",
            0o100640,
            5,
            1,
            b"url=https://acme.example\n",
        ),
        cpio_member("TRAILER!!!", 0, 0, 1, b""),
    ]
}

/// The package of [`rpm_archive`] with `members` as its cpio payload.
fn rpm_archive_with(members: &[Vec<u8>]) -> Vec<u8> {
    use crate::package::rpm::tag;
    use crate::package::rpm::tests::{header, package};
    let cpio = members.concat();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&cpio).unwrap();
    let payload = gz.finish().unwrap();
    let be16 = |v: &[u16]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
    let be32 = |v: &[u32]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
    let main = header(&[
        (tag::PREIN, 6, b"useradd acme\0", 1),
        (tag::FILESIZES, 4, &be32(&[4096, 34, 3, 7, 7, 25]), 6),
        (
            tag::FILEMODES,
            3,
            &be16(&[0o040755, 0o100755, 0o120777, 0o100644, 0o100644, 0o100640]),
            6,
        ),
        (tag::FILELINKTOS, 8, b"\0\0run\0\0\0\0", 6),
        (tag::FILEFLAGS, 4, &be32(&[0, 0, 0, 0, 0, 1]), 6),
        (
            tag::FILEUSERNAME,
            8,
            b"root\0root\0root\0root\0root\0acme\0",
            6,
        ),
        (
            tag::FILEGROUPNAME,
            8,
            b"root\0root\0root\0root\0root\0acme\0",
            6,
        ),
        (tag::DIRINDEXES, 4, &be32(&[0, 1, 1, 1, 1, 2]), 6),
        (tag::BASENAMES, 8, b"acme\0run\0link\0a\0b\0acme.conf\0", 6),
        (tag::DIRNAMES, 8, b"/opt/\0/opt/acme/\0/etc/\0", 3),
    ]);
    package(
        &header(&[(crate::package::rpm::tests::NAME, 6, b"x\0", 1)]),
        &main,
        &payload,
    )
}

/// The main header and payload of a package, when it still parses as one.
fn rpm_signed_part(bytes: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut r = bytes;
    let p = crate::package::rpm::read_package(&mut r).ok()?;
    Some((p.header.bytes().to_vec(), r.to_vec()))
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("marker present")
}

/// apt release metadata, with signed dates so that the freshness check
/// (`verify/release.rs`) reads every mutated copy too.
const RELEASE: &[u8] = b"Origin: Mutation\nSuite: stable\nDate: Sat, 01 Nov 2025 00:00:00 UTC\nValid-Until: Fri, 01 Jan 2100 00:00:00 UTC\n-dash line\nSHA256:\n 0af8fef8b939640ec81af2ca28559945ba410cb5350b3a1af176a606a9690e75 1002 main/Packages\n";

fn fixtures() -> Vec<Fixture> {
    let dten_cert = include_bytes!("../keyring/dten/dten-demo-release.asc").to_vec();
    let dten_fpr = Cert::from_bytes(&dten_cert).unwrap().fingerprint();
    let cert = sequoia_cert();
    let armored = cert.armored().to_vec().unwrap();
    let binary = cert.to_vec().unwrap();
    let fpr = cert.fingerprint();

    let tgz = tar_gz();
    let tgz_sig = sign_detached(&cert, &tgz);

    let clear = clearsign(&cert, RELEASE);
    let sig_start = find(&clear, b"-----BEGIN PGP SIGNATURE-----");
    let sig_end = find(&clear, b"-----END PGP SIGNATURE-----") + 27;

    let plain = sign_inline(&cert, RELEASE, false, false);
    let body_start = find(&plain, RELEASE);

    let (deb, deb_framing) = deb_with_origin(&cert);

    let with = |name, file, bundle: Vec<u8>, kind| Fixture {
        name,
        file,
        content: independent_content(&bundle, &armored).expect("Sequoia reads its message"),
        bundle,
        signature: None,
        cert: armored.clone(),
        cert_file: "cert.asc",
        pinned: fpr.clone(),
        kind,
    };
    vec![
        Fixture {
            name: "zip, GnuPG armored detached signature",
            file: "dten.zip",
            bundle: include_bytes!("../examples/Full-upgrade-package-dten.zip").to_vec(),
            signature: Some((
                include_bytes!("../examples/Full-upgrade-package-dten.zip.asc").to_vec(),
                "asc",
            )),
            cert: dten_cert,
            cert_file: "dten.asc",
            pinned: dten_fpr,
            content: Vec::new(),
            kind: Kind::Detached,
        },
        Fixture {
            name: "tar.gz, binary detached signature",
            file: "pkg.tar.gz",
            bundle: tgz,
            signature: Some((tgz_sig, "sig")),
            cert: binary,
            cert_file: "cert.gpg",
            pinned: fpr.clone(),
            content: Vec::new(),
            kind: Kind::Detached,
        },
        Fixture {
            name: "deb, debsigs _gpgorigin member",
            file: "pkg.deb",
            bundle: deb,
            signature: None,
            cert: armored.clone(),
            cert_file: "cert.asc",
            pinned: fpr.clone(),
            content: Vec::new(),
            kind: Kind::Embedded {
                framing: deb_framing,
            },
        },
        with(
            "cleartext-signed",
            "InRelease",
            clear,
            Kind::Cleartext {
                signature: sig_start..sig_end,
            },
        ),
        with(
            "inline-signed, binary",
            "Release.gpg",
            plain,
            Kind::Binary {
                body: body_start..body_start + RELEASE.len(),
            },
        ),
        with(
            "inline-signed, compressed",
            "Release.gpg",
            sign_inline(&cert, RELEASE, true, false),
            Kind::Opaque { armored: false },
        ),
        Fixture {
            name: "rpm, header signature and payload digest",
            file: "acme.rpm",
            bundle: rpm_package(&cert, &tar_gz()),
            signature: None,
            cert: armored.clone(),
            cert_file: "cert.asc",
            pinned: fpr.clone(),
            content: Vec::new(),
            kind: Kind::Rpm,
        },
        with(
            "inline-signed, armored",
            "Release.asc",
            sign_inline(&cert, RELEASE, true, true),
            Kind::Opaque { armored: true },
        ),
    ]
}

/// What was mutated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Bundle,
    Signature,
    Certificate,
}

/// What a case ended as.
#[derive(Debug)]
enum Outcome {
    /// The mutated certificate file was refused (exit 2 in the binary).
    KeyringRefused,
    Report {
        verdict: Verdict,
        names_pinned: bool,
    },
}

struct Case {
    fixture: usize,
    target: Target,
    mutation: Mutation,
}

fn plan(seed: u64, case: usize, fixtures: &[Fixture]) -> Case {
    let mut rng = case_rng(seed, case);
    let fixture = rng.usize(..fixtures.len());
    let f = &fixtures[fixture];
    let target = match (rng.u8(..10), &f.signature) {
        (0..=5, _) => Target::Bundle,
        (6..=7, Some(_)) => Target::Signature,
        (6..=7, None) => Target::Bundle,
        _ => Target::Certificate,
    };
    let orig = match target {
        Target::Bundle => &f.bundle,
        Target::Signature => &f.signature.as_ref().unwrap().0,
        Target::Certificate => &f.cert,
    };
    Case {
        fixture,
        target,
        mutation: mutate(&mut rng, orig),
    }
}

fn run(dir: &Path, f: &Fixture, case: &Case) -> Result<Outcome, String> {
    let dir = dir.join(f.name.replace([' ', ','], "_"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let pick = |t: Target, orig: &[u8]| -> Vec<u8> {
        if case.target == t {
            case.mutation.bytes.clone()
        } else {
            orig.to_vec()
        }
    };
    let bundle = dir.join(f.file);
    std::fs::write(&bundle, pick(Target::Bundle, &f.bundle)).map_err(|e| e.to_string())?;
    if let Some((sig, ext)) = &f.signature {
        let path = crate::verify::discover::append_extension(&bundle, ext);
        std::fs::write(path, pick(Target::Signature, sig)).map_err(|e| e.to_string())?;
    }
    let cert = dir.join(f.cert_file);
    std::fs::write(&cert, pick(Target::Certificate, &f.cert)).map_err(|e| e.to_string())?;
    let Ok(keyring) = Keyring::load(&[cert]) else {
        return Ok(Outcome::KeyringRefused);
    };
    let policy = StandardPolicy::new();
    let req = verify::Request {
        repository: None,
        bundle: &bundle,
        judge: Judge {
            keyring: &keyring,
            vendor: None,
            policy: &policy,
            signers: crate::verify::SignerPolicy::default(),
            now: SystemTime::now(),
        },
        contact: None,
        threshold: 1,
        pins: Vec::new(),
        signature: None,
        copy: None,
    };
    match verify::verify_bundle(&req) {
        Ok(r) => Ok(Outcome::Report {
            verdict: r.verdict,
            names_pinned: r.good_certificates.contains(&f.pinned),
        }),
        Err(e) => Err(format!("could not check a readable bundle: {e}")),
    }
}

/// The content of a signed message as Sequoia's own verifier reads it, when a good
/// signature by `cert` covers it.
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
    let cert = Cert::from_bytes(cert).ok()?;
    let policy = StandardPolicy::new();
    let mut v = VerifierBuilder::from_bytes(bytes)
        .ok()?
        .with_policy(&policy, None, Helper(cert))
        .ok()?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut v, &mut out).ok()?;
    Some(out)
}

/// A cleartext message as its signature and any reader see it: the header lines without
/// trailing blanks, and the text with dash escapes undone and trailing blanks and CRs
/// dropped (the Cleartext Signature Framework, RFC 9580 section 7). The signature
/// block is left out.
fn canonical_cleartext(file: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let trim = |line: &[u8]| line.trim_ascii_end().to_vec();
    let mut lines = file.split(|&b| b == b'\n');
    let mut header = Vec::new();
    for line in lines.by_ref() {
        if line.trim_ascii().is_empty() {
            break;
        }
        header.push(trim(line));
    }
    let mut text = Vec::new();
    for line in lines {
        if line.trim_ascii_end() == b"-----BEGIN PGP SIGNATURE-----" {
            break;
        }
        let line = line.strip_prefix(b"- ").unwrap_or(line);
        let mut line = line.to_vec();
        while matches!(line.last(), Some(b' ' | b'\t' | b'\r')) {
            line.pop();
        }
        text.push(line);
    }
    (header, text)
}

fn within(region: &Range<usize>, allowed: &Range<usize>) -> bool {
    allowed.start <= region.start && region.end <= allowed.end
}

/// Why a verified changed bundle must not have verified, if it must not.
fn verified_change_is_wrong(f: &Fixture, m: &Mutation) -> Option<String> {
    let len = f.bundle.len();
    let whitespace_tail = |armored: bool| {
        armored
            && m.region.start >= len.saturating_sub(1)
            && m.added.iter().all(u8::is_ascii_whitespace)
            && f.bundle[m.region.clone()]
                .iter()
                .all(u8::is_ascii_whitespace)
    };
    // Adding or cutting bytes at either end; a changed first or last byte is inside
    // (a deflate stream's last byte holds padding bits that change nothing).
    let edge = (m.region.is_empty() && (m.region.start == 0 || m.region.start == len))
        || (m.bytes.len() != len && (m.region.start == 0 || m.region.end == len));
    let inside = !edge;
    let content_kept = || independent_content(&m.bytes, &f.cert).as_deref() == Some(&f.content[..]);
    match &f.kind {
        Kind::Detached => Some("a detached-signed bundle changed and verified".into()),
        Kind::Cleartext { signature } => {
            if whitespace_tail(true) {
                return None;
            }
            if m.region.start > signature.start && within(&m.region, signature) {
                return None;
            }
            if m.region.start > 0
                && m.region.end <= signature.start
                && canonical_cleartext(&m.bytes) == canonical_cleartext(&f.bundle)
            {
                return None;
            }
            Some("the cleartext changed outside its signature block and verified".into())
        }
        Kind::Binary { body } => {
            let touches_body = m.region.start < body.end && body.start < m.region.end
                || (m.region.is_empty()
                    && body.start < m.region.start
                    && m.region.start < body.end);
            if inside && !touches_body && content_kept() {
                return None;
            }
            Some("the binary message changed outside its signature framing and verified".into())
        }
        Kind::Opaque { armored } => {
            if whitespace_tail(*armored) || (inside && content_kept()) {
                return None;
            }
            Some("the message changed at its edges or in its content and verified".into())
        }
        Kind::Embedded { framing } => {
            if m.bytes.len() == len && framing.iter().any(|r| within(&m.region, r)) {
                return None;
            }
            Some("the .deb changed outside its ar header dates, owners and modes and its signature member, and verified".into())
        }
        Kind::Rpm => {
            if rpm_signed_part(&m.bytes).is_some()
                && rpm_signed_part(&m.bytes) == rpm_signed_part(&f.bundle)
            {
                return None;
            }
            Some("the package changed in its header or payload and verified".into())
        }
    }
}

type Running = Option<(usize, Instant)>;

/// Runs `cases` on two worker threads, each case under [`DEADLINE`]; returns what
/// each case produced, in order.
fn run_all<T: Send + 'static>(
    cases: usize,
    work: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<std::thread::Result<T>> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(2));
    let work = Arc::new(work);
    // Per worker: the case it runs and since when.
    let started: Arc<Mutex<Vec<Running>>> = Arc::new(Mutex::new(vec![None; workers]));
    let (tx, rx) = mpsc::channel();
    for w in 0..workers {
        let (tx, work, started) = (tx.clone(), work.clone(), started.clone());
        std::thread::spawn(move || {
            for i in (w..cases).step_by(workers) {
                started.lock().unwrap()[w] = Some((i, Instant::now()));
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(i)));
                if tx.send((i, r)).is_err() {
                    return;
                }
            }
            started.lock().unwrap()[w] = None;
        });
    }
    drop(tx);
    let mut results: Vec<Option<std::thread::Result<T>>> = (0..cases).map(|_| None).collect();
    for _ in 0..cases {
        match rx.recv_timeout(DEADLINE) {
            Ok((i, r)) => results[i] = Some(r),
            Err(_) => {
                let hung: Vec<usize> = started
                    .lock()
                    .unwrap()
                    .iter()
                    .flatten()
                    .map(|s| s.0)
                    .collect();
                panic!(
                    "no case finished within {DEADLINE:?}: cases {hung:?} hang (seed {:#x})",
                    seed()
                );
            }
        }
        let late: Vec<usize> = started
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .filter(|s| s.1.elapsed() > DEADLINE)
            .map(|s| s.0)
            .collect();
        assert!(
            late.is_empty(),
            "cases {late:?} ran past {DEADLINE:?} (seed {:#x})",
            seed()
        );
    }
    results.into_iter().map(Option::unwrap).collect()
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}

#[test]
fn mutated_bundles_signatures_and_certificates_never_verify_falsely() {
    let seed = seed();
    let started = Instant::now();
    let fixtures = Arc::new(fixtures());
    // Every fixture verifies unchanged, or the mutations prove nothing.
    let root = tempfile::tempdir().unwrap();
    for (i, f) in fixtures.iter().enumerate() {
        let case = Case {
            fixture: i,
            target: Target::Bundle,
            mutation: Mutation {
                bytes: f.bundle.clone(),
                what: "none".into(),
                region: 0..0,
                added: Vec::new(),
            },
        };
        match run(root.path(), f, &case) {
            Ok(Outcome::Report {
                verdict: Verdict::Verified,
                names_pinned: true,
            }) => {}
            other => panic!(
                "{}: the unchanged fixture does not verify: {other:?}",
                f.name
            ),
        }
    }

    let dir: PathBuf = root.path().to_path_buf();
    let shared = fixtures.clone();
    let results = run_all(VERIFY_CASES, move |i| {
        let case = plan(seed, i, &shared);
        let worker_dir = dir.join(format!("w{}", i % 2));
        let outcome = run(&worker_dir, &shared[case.fixture], &case);
        (case, outcome)
    });

    let mut failures = Vec::new();
    let mut counts = [0usize; 3];
    let (mut verified, mut verified_changed, mut refused_keyrings) = (0, 0, 0);
    let mut samples = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        let (case, outcome) = match r {
            Ok(x) => x,
            Err(p) => {
                let case = plan(seed, i, &fixtures);
                failures.push(format!(
                    "case {i} ({}, {:?}: {}) panicked: {}",
                    fixtures[case.fixture].name,
                    case.target,
                    case.mutation.what,
                    panic_text(&*p)
                ));
                continue;
            }
        };
        let f = &fixtures[case.fixture];
        counts[case.target as usize] += 1;
        let label = format!(
            "case {i} ({}, {:?}: {})",
            f.name, case.target, case.mutation.what
        );
        match outcome {
            Err(e) => failures.push(format!("{label}: {e}")),
            Ok(Outcome::KeyringRefused) => refused_keyrings += 1,
            Ok(Outcome::Report {
                verdict,
                names_pinned,
            }) => {
                if verdict != Verdict::Verified {
                    continue;
                }
                verified += 1;
                if !names_pinned {
                    failures.push(format!(
                        "{label}: verified without naming the pinned certificate"
                    ));
                }
                let bundle_changed =
                    case.target == Target::Bundle && case.mutation.bytes != f.bundle;
                if bundle_changed {
                    verified_changed += 1;
                    match verified_change_is_wrong(f, &case.mutation) {
                        Some(why) => failures.push(format!("{label}: {why}")),
                        None if samples.len() < 5 => samples.push(label),
                        None => {}
                    }
                }
            }
        }
    }
    eprintln!(
        "mutation: seed {seed:#x} ({SEED_ENV} to replay); {VERIFY_CASES} verify cases in {:.1?}: \
         {} bundle, {} signature, {} certificate mutations; {verified} verified, \
         {verified_changed} of them with a changed signed message (signature or framing \
         bytes, content kept: {samples:?}); {refused_keyrings} mutated keyrings refused",
        started.elapsed(),
        counts[0],
        counts[1],
        counts[2],
    );
    assert!(
        failures.is_empty(),
        "{} of {VERIFY_CASES} cases failed (seed {seed:#x}):\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

/// Walks `bytes` with the inspector: its findings as `kind file: detail`, or the error.
fn inspect_rpm(bytes: &[u8]) -> Result<Vec<String>, String> {
    use crate::archive::inspect::Inspector;
    let mut tmp = tempfile::tempfile().unwrap();
    tmp.write_all(bytes).unwrap();
    let mut inspector = Inspector::new();
    crate::archive::walk::walk(&mut tmp, &mut inspector).map_err(|e| e.to_string())?;
    Ok(inspector
        .finish()
        .iter()
        .map(|f| format!("{} {}: {}", f.kind.code(), f.file, f.detail))
        .collect())
}

#[test]
fn rpm_payloads_are_walked_as_their_header_lists_them() {
    let found = inspect_rpm(&rpm_archive()).unwrap();
    for want in [
        "maintainer-script %pre:",
        "account %pre:",
        "conffile conffiles: /etc/acme.conf",
        "ownership etc/acme.conf: owned by acme:acme",
        "privileged-command opt/acme/run:",
        "host etc/acme.conf:",
    ] {
        assert!(
            found.iter().any(|f| f.starts_with(want)),
            "{want} not in {found:#?}"
        );
    }
    let mut m = rpm_cpio();
    let check = |members: &[Vec<u8>], want: &str| {
        let got = inspect_rpm(&rpm_archive_with(members)).unwrap_err();
        assert!(got.contains(want), "{got:?} lacks {want:?}");
    };
    // A name the header does not list, a second entry for one file, another type,
    // another link target.
    let member = |at: usize, name: &str, mode: u32, data: &[u8]| {
        let mut v = rpm_cpio();
        v[at] = cpio_member(name, mode, 9, 1, data);
        v
    };
    for (members, want) in [
        (
            member(5, "./etc/other.conf", 0o100640, b"x"),
            "a cpio entry that is not in the package header's file list",
        ),
        (
            [&m[..2], &m[1..]].concat(),
            "a second cpio entry for the same file",
        ),
        (
            member(1, "./opt/acme/run", 0o120777, b"x"),
            "the cpio entry's file type is not the one",
        ),
        (
            member(2, "./opt/acme/link", 0o120777, b"../../etc"),
            "symlink's target in the payload is not the one",
        ),
    ] {
        check(&members, want);
    }
    // A name length that would allocate gigabytes, a truncated payload, no trailer.
    let mut huge = m[1].clone();
    huge[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"ffffffff");
    check(
        &[m[0].clone(), huge],
        "a cpio name of 4294967295 bytes; the limit is 4096",
    );
    let cut = m[1][..m[1].len() - 10].to_vec();
    check(&[m[0].clone(), cut], "truncated");
    m.pop();
    check(&m, "truncated");
    let mut not_hex = rpm_cpio();
    not_hex[1][6] = b'z';
    check(&not_hex, "not hex");
}

#[test]
fn mutated_archives_never_panic_hang_or_write_outside_the_staging_folder() {
    use crate::archive::extract::{Extractor, Limits};
    use crate::archive::inspect::Inspector;
    use crate::archive::walk as archive;

    let base = seed();
    let seed = base ^ 0xa5a5;
    let started = Instant::now();
    let originals = Arc::new([
        include_bytes!("../examples/Full-upgrade-package-dten.zip").to_vec(),
        tar_gz(),
        deb_with_origin(&sequoia_cert()).0,
        rpm_archive(),
    ]);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_path_buf();
    let results = run_all(ARCHIVE_CASES, move |i| {
        let mut rng = case_rng(seed, i);
        let orig = &originals[i % originals.len()];
        let m = mutate(&mut rng, orig);
        // Each case gets its own folder: the extractor must stay inside `stage`.
        let outer = dir.join(format!("c{i}"));
        let stage = outer.join("stage");
        std::fs::create_dir_all(&stage).unwrap();
        let path = outer.join("bundle");
        std::fs::write(&path, &m.bytes).unwrap();
        let mut file = std::fs::File::open(&path).unwrap();
        let limits = Limits {
            max_size: 64 << 20,
            max_entries: 10_000,
            ..Limits::default()
        };
        let mut inspector = Inspector::new();
        let walked = {
            let mut extractor =
                Extractor::new(&stage, limits, m.bytes.len() as u64, &mut inspector);
            archive::walk(&mut file, &mut extractor).map(|_| ())
        };
        let _ = inspector.finish();
        let mut names: Vec<String> = std::fs::read_dir(&outer)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let _ = std::fs::remove_dir_all(&outer);
        (m.what, walked.map_err(|e| e.code()), names)
    });
    let mut failures = Vec::new();
    let mut refused = 0;
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Err(p) => failures.push(format!("archive case {i} panicked: {}", panic_text(&*p))),
            Ok((what, walked, names)) => {
                if walked.is_err() {
                    refused += 1;
                }
                if names != ["bundle", "stage"] {
                    failures.push(format!(
                        "archive case {i} ({what}) wrote outside the staging folder: {names:?}"
                    ));
                }
            }
        }
    }
    eprintln!(
        "mutation: seed {base:#x} ({SEED_ENV} to replay); {ARCHIVE_CASES} archive cases in {:.1?}, {refused} refused",
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
