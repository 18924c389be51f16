//! `vendorguard verify`: exit codes, messages and reason codes for every bad input the
//! verifier must catch, with keys and signatures made by real GnuPG and by Sequoia.

use std::path::PathBuf;

use sequoia_openpgp::types::{HashAlgorithm, ReasonForRevocation};

use crate::harness::*;

const BUNDLE: &str = "acme-upgrade-1.0.zip";

/// A project with vendor `acme` whose bundles match `acme-upgrade-*.zip`, one GnuPG
/// Ed25519 key pinned for it, and a bundle.
struct Acme {
    p: Project,
    gpg: Gpg,
    fpr: String,
    bundle: PathBuf,
}

impl Acme {
    fn new() -> Acme {
        let p = Project::new();
        p.vendors(&[("acme", "acme-upgrade-*.zip")]);
        let gpg = Gpg::new();
        let fpr = gpg.key("Acme Release <release@acme.example>", "ed25519", "0", None);
        p.pin_cert("acme", "acme.asc", &gpg.export(&fpr));
        let bundle = p.write(
            BUNDLE,
            b"PK\x03\x04 pretend this is a zip with the upgrade in it\n",
        );
        Acme {
            p,
            gpg,
            fpr,
            bundle,
        }
    }

    fn sign(&self) {
        let sig = self.p.path(&format!("{BUNDLE}.asc"));
        self.gpg
            .detach_sign(&self.fpr, &self.bundle, &sig, "SHA256", None, true);
    }

    fn verify(&self, extra: &[&str]) -> Run {
        let mut args = vec!["verify", BUNDLE];
        args.extend(extra);
        self.p.run(&args)
    }
}

#[test]
fn good_gpg_ed25519_signature_verifies() {
    let a = Acme::new();
    a.sign();
    let r = a.verify(&[]);
    r.code(0)
        .stdout_has(
            "verified: acme-upgrade-1.0.zip: 1 pinned certificate signed, 1 required (vendor acme)",
        )
        .stdout_has(&format!("good-signature  issuer {}", a.fpr));
    assert!(r.first_line().starts_with("verified:"));

    let j = a.verify(&["--json"]);
    j.code(0);
    let v = j.json();
    assert_eq!(v["verdict"], "verified");
    assert_eq!(v["vendor"], "acme");
    assert_eq!(v["bundle"]["path"], BUNDLE);
    let data = std::fs::read(&a.bundle).unwrap();
    assert_eq!(v["bundle"]["size"], data.len());
    assert_eq!(v["bundle"]["sha256"], sha256_hex(&data));
    assert_eq!(v["signatures"][0]["status"], "good-signature");
    assert_eq!(v["signatures"][0]["issuer"], a.fpr.as_str());
    assert_eq!(v["signatures"][0]["certificate"], a.fpr.as_str());
    assert_eq!(v["signatures"][0]["hash_algorithm"], "SHA256");
    assert!(v["signatures"][0]["created"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn gpg_rsa_sha512_binary_signature_and_each_extension() {
    let a = Acme::new();
    let rsa = a
        .gpg
        .key("Acme RSA <rsa@acme.example>", "rsa2048", "0", None);
    a.p.pin_cert("acme", "acme-rsa.gpg", &a.gpg.export_binary(&[&rsa]));
    for ext in ["sig", "gpg"] {
        let sig = a.p.path(&format!("{BUNDLE}.{ext}"));
        a.gpg
            .detach_sign(&rsa, &a.bundle, &sig, "SHA512", None, false);
        let v = a.verify(&["--json"]);
        v.code(0);
        assert_eq!(v.json()["signatures"][0]["hash_algorithm"], "SHA512");
        assert_eq!(v.json()["source"]["path"], format!("{BUNDLE}.{ext}"));
        std::fs::remove_file(sig).unwrap();
    }
}

#[test]
fn binary_keyring_with_several_certificates_given_by_flag() {
    let a = Acme::new();
    let other = a.gpg.key("Other <o@example.org>", "ed25519", "0", None);
    let ring =
        a.p.write("ring.gpg", a.gpg.export_binary(&[&other, &a.fpr]));
    a.sign();
    a.verify(&["--keyring", ring.to_str().unwrap()]).code(0);
    // The same keyring as a folder holding it.
    a.verify(&["--keyring", a.p.path("keyring/acme").to_str().unwrap()])
        .code(0);
}

#[test]
fn missing_bundle_is_could_not_check() {
    let a = Acme::new();
    let r = a.p.run(&["verify", "acme-upgrade-9.9.zip"]);
    r.code(2)
        .stderr_has("acme-upgrade-9.9.zip: cannot read bundle");
    let j = a.p.run(&["verify", "--json", "acme-upgrade-9.9.zip"]);
    j.code(2);
    assert_eq!(j.json()["verdict"], "error");
}

#[test]
fn keyring_problems_are_could_not_check() {
    let a = Acme::new();
    a.sign();
    a.verify(&["--keyring", "no/such/keyring.asc"])
        .code(2)
        .stderr_has("keyring no/such/keyring.asc: cannot read");
    std::fs::create_dir_all(a.p.path("empty")).unwrap();
    a.verify(&["--keyring", "empty"])
        .code(2)
        .stderr_has("keyring empty: no certificate files");
    a.p.write("notpgp.asc", "this is not a key\n");
    a.verify(&["--keyring", "notpgp.asc"])
        .code(2)
        .stderr_has("keyring notpgp.asc: not an OpenPGP certificate file");
    // A signature where a certificate belongs.
    let sig = std::fs::read(a.p.path(&format!("{BUNDLE}.asc"))).unwrap();
    a.p.write("sig-as-key.asc", sig);
    a.verify(&["--keyring", "sig-as-key.asc"])
        .code(2)
        .stderr_has("expected \"PGP PUBLIC KEY BLOCK\"");
}

#[test]
fn no_keyring_found_hints_and_never_falls_back() {
    let p = Project::new();
    p.write("other.zip", b"data");
    p.run(&["verify", "other.zip"])
        .code(2)
        .stderr_has("no keyring to check against: pass --keyring PATH or --vendor NAME")
        .stderr_has("no fallback to any system keyring");
    p.run(&["verify", "--vendor", "ghost", "other.zip"])
        .code(2)
        .stderr_has("no keyring for vendor \"ghost\"");
}

#[test]
fn malformed_signature_files_are_rejected_with_the_file_named() {
    let a = Acme::new();
    a.sign();
    let good = std::fs::read(a.p.path(&format!("{BUNDLE}.asc"))).unwrap();
    let cert = a.gpg.export(&a.fpr);
    let truncated = good[..good.len() / 2].to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage",
            b"\x99\x01garbage that is not OpenPGP at all".to_vec(),
            "malformed-signature",
        ),
        ("empty", Vec::new(), "the signature file is empty"),
        ("truncated", truncated, "malformed-signature"),
        (
            "wrong label",
            cert,
            "armored block labelled \"PGP PUBLIC KEY BLOCK\", expected \"PGP SIGNATURE\"",
        ),
        ("text", b"hello\n".to_vec(), "malformed-signature"),
    ];
    for (what, bytes, needle) in cases {
        a.p.write("bad.asc", &bytes);
        let r = a.verify(&["--signature", "bad.asc"]);
        r.code(1).stdout_has("bad.asc").stdout_has(needle);
        assert!(r.first_line().starts_with("rejected:"), "{what}");
        let j = a.verify(&["--signature", "bad.asc", "--json"]);
        assert_eq!(j.codes(), ["malformed-signature"], "{what}");
    }
}

#[test]
fn missing_signature_file_given_by_flag_is_could_not_check() {
    let a = Acme::new();
    a.verify(&["--signature", "nope.asc"])
        .code(2)
        .stderr_has("nope.asc: cannot read signature");
}

#[test]
fn no_signature_at_all_is_rejected() {
    let a = Acme::new();
    let r = a.verify(&["--json"]);
    r.code(1);
    assert_eq!(r.codes(), ["no-signature"]);
    a.verify(&[])
        .code(1)
        .stdout_has("no signature found: looked for acme-upgrade-1.0.zip.asc");
}

#[test]
fn tampered_bundle_and_signature_over_another_file() {
    let a = Acme::new();
    a.sign();
    let mut data = std::fs::read(&a.bundle).unwrap();
    data[5] ^= 1;
    std::fs::write(&a.bundle, &data).unwrap();
    let r = a.verify(&["--json"]);
    r.code(1);
    assert_eq!(r.codes(), ["bad-signature"]);
    a.verify(&[])
        .code(1)
        .stdout_has("bad-signature")
        .stdout_has("do not install");

    let other = a.p.write("other.txt", b"another file");
    let sig = a.p.path("other.asc");
    a.gpg
        .detach_sign(&a.fpr, &other, &sig, "SHA256", None, true);
    let r = a.verify(&["--signature", "other.asc", "--json"]);
    r.code(1);
    assert_eq!(r.codes(), ["bad-signature"]);
}

#[test]
fn unpinned_signer_only_is_exit_3_with_fingerprint_and_next_step() {
    let a = Acme::new();
    let stranger = Gpg::new();
    let sfpr = stranger.key("Stranger <x@evil.example>", "ed25519", "0", None);
    stranger.detach_sign(
        &sfpr,
        &a.bundle,
        &a.p.path(&format!("{BUNDLE}.asc")),
        "SHA256",
        None,
        true,
    );
    let r = a.verify(&[]);
    r.code(3)
        .stdout_has("unexpected-signer: acme-upgrade-1.0.zip: signed by a key that is not pinned for vendor acme")
        .stdout_has(&format!("unpinned signer fingerprint: {sfpr}"))
        .stdout_has("checked against the pinned certificates of vendor \"acme\"")
        .stdout_has("vendorguard keys show")
        .stdout_has("keyring/acme/");
    let grouped: Vec<String> = sfpr
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    r.stdout_has(&format!("read aloud: {}", grouped[..5].join(" ")));
    let j = a.verify(&["--json"]);
    j.code(3);
    assert_eq!(j.json()["verdict"], "unexpected-signer");
    assert_eq!(j.json()["signatures"][0]["status"], "unpinned-signer");
    assert_eq!(j.json()["signatures"][0]["issuer"], sfpr.as_str());
    assert!(j.json()["signatures"][0]["certificate"].is_null());
}

/// Issue: `contact` was read from feeds.toml but never shown, while the next step told
/// operators to call "the vendor contact in feeds.toml".
#[test]
fn the_vendor_contact_is_in_the_report_and_the_next_step() {
    let a = Acme::new();
    let cfg = std::fs::read_to_string(a.p.path("feeds.toml")).unwrap();
    a.p.write(
        "feeds.toml",
        cfg.replace(
            "name = \"acme\"",
            "name = \"acme\"\ncontact = \"Acme PSIRT, +1 555 0199\"",
        ),
    );
    let stranger = Gpg::new();
    let sfpr = stranger.key("Stranger <x@evil.example>", "ed25519", "0", None);
    let sig = a.p.path(&format!("{BUNDLE}.asc"));
    stranger.detach_sign(&sfpr, &a.bundle, &sig, "SHA256", None, true);
    a.verify(&[])
        .code(3)
        .stdout_has("  contact  Acme PSIRT, +1 555 0199\n")
        .stdout_has("or a call to the vendor contact (Acme PSIRT, +1 555 0199)");
    let j = a.verify(&["--json"]);
    assert_eq!(j.json()["contact"], "Acme PSIRT, +1 555 0199");
    // Rejected: the advice says whom to tell.
    a.sign();
    std::fs::write(&a.bundle, b"tampered").unwrap();
    a.verify(&[])
        .code(1)
        .stdout_has("vendor contact: Acme PSIRT, +1 555 0199");
}

/// Concatenates armored signatures into one file, as multi-signer releases ship them.
fn two_signatures(a: &Acme, other: &Gpg, ofpr: &str, other_signs: &std::path::Path) -> PathBuf {
    let s1 = a.p.path("s1.asc");
    let s2 = a.p.path("s2.asc");
    a.gpg
        .detach_sign(&a.fpr, &a.bundle, &s1, "SHA256", None, true);
    other.detach_sign(ofpr, other_signs, &s2, "SHA256", None, true);
    let mut both = std::fs::read(&s1).unwrap();
    both.extend(std::fs::read(&s2).unwrap());
    a.p.write("both.asc", both)
}

#[test]
fn pinned_good_plus_unpinned_verifies_with_a_warning() {
    let a = Acme::new();
    let other = Gpg::new();
    let ofpr = other.key("Unpinned <u@example.org>", "ed25519", "0", None);
    two_signatures(&a, &other, &ofpr, &a.bundle);
    let r = a.verify(&["--signature", "both.asc"]);
    r.code(0).stdout_has("warning: unpinned-signer");
}

#[test]
fn pinned_good_plus_pinned_bad_is_rejected() {
    let a = Acme::new();
    let other = Gpg::new();
    let ofpr = other.key("Second Pinned <p2@acme.example>", "ed25519", "0", None);
    a.p.pin_cert("acme", "second.asc", &other.export(&ofpr));
    let elsewhere = a.p.write("elsewhere.bin", b"different bytes");
    two_signatures(&a, &other, &ofpr, &elsewhere);
    let r = a.verify(&["--signature", "both.asc", "--json"]);
    r.code(1);
    assert_eq!(r.codes(), ["bad-signature"]);
    // Both signing the bundle: two distinct pinned certificates meet a threshold of 2.
    two_signatures(&a, &other, &ofpr, &a.bundle);
    a.verify(&["--signature", "both.asc", "--signatures", "2"])
        .code(0);
}

#[test]
fn threshold_two_is_not_met_by_one_certificate_signing_twice() {
    let a = Acme::new();
    let s1 = a.p.path("s1.asc");
    a.gpg
        .detach_sign(&a.fpr, &a.bundle, &s1, "SHA256", None, true);
    let s2 = a.p.path("s2.asc");
    a.gpg
        .detach_sign(&a.fpr, &a.bundle, &s2, "SHA512", None, true);
    let mut both = std::fs::read(&s1).unwrap();
    both.extend(std::fs::read(&s2).unwrap());
    a.p.write("twice.asc", both);
    let r = a.verify(&["--signature", "twice.asc", "--signatures", "2", "--json"]);
    r.code(1);
    assert_eq!(r.codes(), ["below-threshold"]);
    assert_eq!(r.json()["signatures"].as_array().unwrap().len(), 2);
    assert_eq!(r.json()["good_certificates"].as_array().unwrap().len(), 1);
}

#[test]
fn sha1_signature_is_rejected_as_weak() {
    let a = Acme::new();
    let rsa = a
        .gpg
        .key("Acme Legacy <legacy@acme.example>", "rsa2048", "0", None);
    a.p.pin_cert("acme", "legacy.asc", &a.gpg.export(&rsa));
    a.gpg.detach_sign(
        &rsa,
        &a.bundle,
        &a.p.path(&format!("{BUNDLE}.asc")),
        "SHA1",
        None,
        true,
    );
    let r = a.verify(&["--json"]);
    r.code(1);
    assert_eq!(r.codes(), ["weak-hash"]);
    assert_eq!(r.json()["signatures"][0]["hash_algorithm"], "SHA1");
}

#[test]
fn future_dated_signature_is_rejected() {
    let a = Acme::new();
    let future = gpg_time(days_ahead(730));
    a.gpg.detach_sign(
        &a.fpr,
        &a.bundle,
        &a.p.path(&format!("{BUNDLE}.asc")),
        "SHA256",
        Some(&future),
        true,
    );
    let r = a.verify(&["--json"]);
    r.code(1);
    assert_eq!(r.codes(), ["future-signature"]);
    a.verify(&[]).code(1).stdout_has("in the future");
}

#[test]
fn gpg_key_expired_since_signing_is_accepted_with_a_warning() {
    let p = Project::new();
    p.vendors(&[("acme", "acme-upgrade-*.zip")]);
    let gpg = Gpg::new();
    let made = gpg_time(days_ago(400));
    let fpr = gpg.key(
        "Acme 2025 <old@acme.example>",
        "ed25519",
        "365d",
        Some(&made),
    );
    p.pin_cert("acme", "acme.asc", &gpg.export(&fpr));
    let bundle = p.write(BUNDLE, b"old release");
    let signed = gpg_time(days_ago(300));
    gpg.detach_sign(
        &fpr,
        &bundle,
        &p.path(&format!("{BUNDLE}.asc")),
        "SHA256",
        Some(&signed),
        true,
    );
    let r = p.run(&["verify", BUNDLE]);
    r.code(0).stdout_has("warning: key-expired-since-signing");
}

/// Sequoia timelines. Key made at t0 = 100 days ago.
///
/// ```text
///   t0 (-100d)      t1 (-60d)        t2 (-40d)        t3 (-20d)       now
///   key made        signature A      revocation       signature B
/// ```
struct Timeline {
    p: Project,
    cert: sequoia_openpgp::Cert,
    bundle: PathBuf,
}

impl Timeline {
    fn new(validity: Option<std::time::Duration>) -> Timeline {
        let p = Project::new();
        p.vendors(&[("acme", "acme-upgrade-*.zip")]);
        let cert = sq_cert("Acme Sequoia <sq@acme.example>", days_ago(100), validity);
        let bundle = p.write(BUNDLE, b"timeline bundle");
        Timeline { p, cert, bundle }
    }

    fn sign_at(&self, at: std::time::SystemTime) -> Vec<u8> {
        sq_sign(
            &self.cert,
            &std::fs::read(&self.bundle).unwrap(),
            at,
            HashAlgorithm::SHA256,
        )
    }

    fn check(&self, pinned: &sequoia_openpgp::Cert, sig: &[u8]) -> Run {
        self.p.pin_cert("acme", "acme.asc", &armored(pinned));
        self.p.write(&format!("{BUNDLE}.asc"), sig);
        self.p.run(&["verify", BUNDLE, "--json"])
    }
}

#[test]
fn revocations_hard_are_retroactive_soft_are_not() {
    let t = Timeline::new(None);
    let sig_a = t.sign_at(days_ago(60));
    let sig_b = t.sign_at(days_ago(20));
    let compromised = sq_revoke(&t.cert, ReasonForRevocation::KeyCompromised, days_ago(40));
    let superseded = sq_revoke(&t.cert, ReasonForRevocation::KeySuperseded, days_ago(40));
    let unspecified = sq_revoke(&t.cert, ReasonForRevocation::Unspecified, days_ago(40));
    for (what, cert, sig, want_code, want_codes) in [
        (
            "compromised, signed before",
            &compromised,
            &sig_a,
            1,
            vec!["key-revoked"],
        ),
        (
            "compromised, signed after",
            &compromised,
            &sig_b,
            1,
            vec!["key-revoked"],
        ),
        (
            "unspecified, signed before",
            &unspecified,
            &sig_a,
            1,
            vec!["key-revoked"],
        ),
        ("superseded, signed before", &superseded, &sig_a, 0, vec![]),
        (
            "superseded, signed after",
            &superseded,
            &sig_b,
            1,
            vec!["key-revoked"],
        ),
        ("not revoked", &t.cert, &sig_b, 0, vec![]),
    ] {
        let r = t.check(cert, sig);
        r.code(want_code);
        assert_eq!(r.codes(), want_codes, "{what}");
        if what == "superseded, signed before" {
            let warns: Vec<String> = r.json()["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["code"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(warns, ["key-revoked-since-signing"], "{what}");
        }
    }
    // The human report names the reason.
    t.check(&compromised, &sig_a);
    t.p.run(&["verify", BUNDLE])
        .code(1)
        .stdout_has("reason: Key material has been compromised");
}

#[test]
fn key_expired_before_signing_is_rejected() {
    // Valid for 30 days from t0 (-100d): expired at -70d; signed at -60d.
    let t = Timeline::new(Some(DAY * 30));
    let r = t.check(&t.cert, &t.sign_at(days_ago(60)));
    r.code(1);
    assert_eq!(r.codes(), ["key-expired"]);
    // Signed at -80d while valid: accepted, with the expired-since warning.
    let r = t.check(&t.cert, &t.sign_at(days_ago(80)));
    r.code(0);
    assert_eq!(r.json()["warnings"][0]["code"], "key-expired-since-signing");
}

#[test]
fn signature_before_the_key_existed_is_rejected() {
    let t = Timeline::new(None);
    let r = t.check(&t.cert, &t.sign_at(days_ago(200)));
    r.code(1);
    assert_eq!(r.codes(), ["key-invalid"]);
}

#[test]
fn signer_expiring_within_30_days_is_warned() {
    let t = Timeline::new(Some(DAY * 110));
    let r = t.check(&t.cert, &t.sign_at(days_ago(5)));
    r.code(0);
    assert_eq!(r.json()["warnings"][0]["code"], "key-expiring");
}

#[test]
fn vendor_isolation_a_key_pinned_for_one_vendor_never_verifies_another() {
    let p = Project::new();
    p.vendors(&[("acme", "acme-*.zip"), ("globex", "globex-*.zip")]);
    let gpg = Gpg::new();
    let acme = gpg.key("Acme <a@acme.example>", "ed25519", "0", None);
    let globex = gpg.key("Globex <g@globex.example>", "ed25519", "0", None);
    p.pin_cert("acme", "acme.asc", &gpg.export(&acme));
    p.pin_cert("globex", "globex.asc", &gpg.export(&globex));
    let bundle = p.write("globex-2.0.zip", b"globex bundle");
    gpg.detach_sign(
        &acme,
        &bundle,
        &p.path("globex-2.0.zip.asc"),
        "SHA256",
        None,
        true,
    );
    p.run(&["verify", "globex-2.0.zip"])
        .code(3)
        .stdout_has("not pinned for vendor globex");
    // Naming the other vendor explicitly is the operator's choice, and works.
    p.run(&["verify", "--vendor", "acme", "globex-2.0.zip"])
        .code(0);
}

#[test]
fn ambiguous_vendor_patterns_need_vendor_flag() {
    let p = Project::new();
    p.vendors(&[("acme", "*.zip"), ("globex", "globex-*.zip")]);
    p.write("globex-2.0.zip", b"x");
    p.run(&["verify", "globex-2.0.zip"])
        .code(2)
        .stderr_has("several vendors match (acme, globex); pass --vendor");
}

#[test]
fn sha256_pins_from_flag_and_pinned_file_must_all_match() {
    let a = Acme::new();
    a.sign();
    let data = std::fs::read(&a.bundle).unwrap();
    let good = sha256_hex(&data);
    let bad = "0".repeat(64);
    a.verify(&["--sha256", &good])
        .code(0)
        .stdout_has("pin-matched  --sha256");
    let r = a.verify(&["--sha256", &bad, "--json"]);
    r.code(1);
    assert_eq!(r.codes(), ["digest-mismatch"]);
    a.verify(&["--sha256", "xyz"])
        .code(2)
        .stderr_has("expected 64 hex digits");

    // `pin` records the hash; a later swap of the bundle fails against it.
    a.p.run(&["pin", BUNDLE, "--vendor", "acme"])
        .code(0)
        .stdout_has(&format!("pinned: {good}"));
    let pins = std::fs::read_to_string(a.p.path("keyring/acme/pinned.sha256")).unwrap();
    assert_eq!(pins, format!("{good}  {BUNDLE}\n"));
    a.verify(&[])
        .code(0)
        .stdout_has("pin-matched  ./keyring/acme/pinned.sha256 line 1");
    a.p.write("keyring/acme/pinned.sha256", format!("{bad}  {BUNDLE}\n"));
    let r = a.verify(&["--json"]);
    r.code(1);
    assert_eq!(r.codes(), ["digest-mismatch"]);
    // Pinning again replaces the old line instead of adding a conflicting one.
    a.p.run(&["pin", BUNDLE, "--vendor", "acme"])
        .code(0)
        .stdout_has(&format!("(replaced {bad})"));
    let pins = std::fs::read_to_string(a.p.path("keyring/acme/pinned.sha256")).unwrap();
    assert_eq!(pins, format!("{good}  {BUNDLE}\n"));
    a.p.write("keyring/acme/pinned.sha256", "not a pin line\n");
    a.verify(&[]).code(2).stderr_has("pinned.sha256: line 1");
}

/// A `SHA256SUMS` manifest listing `lines`, detached-signed (or cleartext-signed).
fn manifest(a: &Acme, lines: &str, clearsign: bool) {
    let sums = a.p.write("SHA256SUMS", lines);
    if clearsign {
        a.gpg
            .sign_inline(&a.fpr, &sums, &a.p.path("SHA256SUMS.tmp"), "--clearsign");
        std::fs::rename(a.p.path("SHA256SUMS.tmp"), &sums).unwrap();
    } else {
        a.gpg.detach_sign(
            &a.fpr,
            &sums,
            &a.p.path("SHA256SUMS.asc"),
            "SHA256",
            None,
            true,
        );
    }
}

#[test]
fn signed_manifests_detached_and_cleartext() {
    let a = Acme::new();
    let good = sha256_hex(&std::fs::read(&a.bundle).unwrap());
    for clearsign in [false, true] {
        let _ = std::fs::remove_file(a.p.path("SHA256SUMS.asc"));
        manifest(
            &a,
            &format!("{}  other.zip\n{good}  {BUNDLE}\n", "1".repeat(64)),
            clearsign,
        );
        let r = a.verify(&["--json"]);
        r.code(0);
        assert_eq!(r.json()["source"]["kind"], "manifest");
        assert_eq!(r.json()["pins"][0]["matched"], true);

        manifest(&a, &format!("{}  {BUNDLE}\n", "2".repeat(64)), clearsign);
        let r = a.verify(&["--json"]);
        r.code(1);
        assert_eq!(r.codes(), ["digest-mismatch"], "clearsign={clearsign}");

        manifest(
            &a,
            &format!("{good}  {BUNDLE}\n{}  ./{BUNDLE}\n", "3".repeat(64)),
            clearsign,
        );
        let r = a.verify(&["--json"]);
        r.code(1);
        assert!(
            r.codes().contains(&"manifest-conflict".to_string()),
            "{:?}",
            r.codes()
        );
        a.verify(&[])
            .code(1)
            .stdout_has("with different hashes on line");

        manifest(&a, &format!("{good}  other.zip\n"), clearsign);
        let r = a.verify(&["--json"]);
        r.code(1);
        assert_eq!(
            r.codes(),
            ["no-signature", "not-in-manifest"],
            "clearsign={clearsign}"
        );
        a.verify(&[])
            .code(1)
            .stdout_has("SHA256SUMS does not list acme-upgrade-1.0.zip");
    }
}

#[test]
fn manifest_with_tampered_text_is_rejected() {
    let a = Acme::new();
    let good = sha256_hex(&std::fs::read(&a.bundle).unwrap());
    manifest(&a, &format!("{good}  {BUNDLE}\n"), false);
    let text = std::fs::read_to_string(a.p.path("SHA256SUMS")).unwrap();
    std::fs::write(
        a.p.path("SHA256SUMS"),
        text.replace(BUNDLE, &format!("{BUNDLE} ")),
    )
    .unwrap();
    let mut more = std::fs::read_to_string(a.p.path("SHA256SUMS")).unwrap();
    more.push_str(&format!("{good}  {BUNDLE}\n"));
    std::fs::write(a.p.path("SHA256SUMS"), more).unwrap();
    let r = a.verify(&["--json"]);
    r.code(1);
    assert_eq!(r.codes(), ["bad-signature"]);
}

#[test]
fn inline_and_cleartext_signed_bundles() {
    let a = Acme::new();
    let release =
        a.p.write("Release", "Origin: Acme\nSuite: stable\n-dash line\n");
    a.gpg
        .sign_inline(&a.fpr, &release, &a.p.path("InRelease"), "--clearsign");
    a.p.run(&["verify", "--vendor", "acme", "InRelease"])
        .code(0)
        .stdout_has("source  inline InRelease");
    a.gpg
        .sign_inline(&a.fpr, &release, &a.p.path("Release.gpg-inline"), "--sign");
    a.p.run(&["verify", "--vendor", "acme", "Release.gpg-inline"])
        .code(0);

    let text = std::fs::read_to_string(a.p.path("InRelease")).unwrap();
    a.p.write("Tampered", text.replace("Suite: stable", "Suite: evil"));
    let r =
        a.p.run(&["verify", "--vendor", "acme", "Tampered", "--json"]);
    r.code(1);
    assert_eq!(r.codes(), ["bad-signature"]);
}

#[test]
fn hostile_bundle_names_are_escaped() {
    let a = Acme::new();
    let name = "acme-upgrade-\n\u{1b}[2Jverified: x.zip";
    let bundle = a.p.write(name, b"bytes");
    a.gpg.detach_sign(
        &a.fpr,
        &bundle,
        &a.p.path(&format!("{name}.asc")),
        "SHA256",
        None,
        true,
    );
    let r = a.p.run(&["verify", "--vendor", "acme", name]);
    r.code(0)
        .stdout_has("acme-upgrade-\\n\\x1b[2Jverified: x.zip");
    assert!(!r.stdout.contains('\u{1b}'));
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("verified"))
            .count(),
        1
    );
    // Missing hostile name: the error is escaped too.
    let r = a.p.run(&["verify", "--vendor", "acme", "no\nsuch\u{1b}"]);
    r.code(2).stderr_has("no\\nsuch\\x1b");
}

#[test]
fn signing_subkey_verifies_and_reports_its_certificate() {
    let a = Acme::new();
    let sub = Gpg::new();
    let primary = sub.key("Acme Subkeys <sub@acme.example>", "ed25519", "0", None);
    sub.gpg(&["--quick-add-key", &primary, "ed25519", "sign", "0"]);
    let listing = String::from_utf8(sub.gpg(&["--with-colons", "--list-keys", &primary])).unwrap();
    let subkey_fpr = listing
        .lines()
        .filter(|l| l.starts_with("fpr:"))
        .nth(1)
        .unwrap()
        .split(':')
        .nth(9)
        .unwrap()
        .to_string();
    a.p.pin_cert("acme", "sub.asc", &sub.export(&primary));
    sub.detach_sign(
        &subkey_fpr,
        &a.bundle,
        &a.p.path(&format!("{BUNDLE}.asc")),
        "SHA256",
        None,
        true,
    );
    let r = a.verify(&["--json"]);
    r.code(0);
    assert_eq!(r.json()["signatures"][0]["certificate"], primary.as_str());
    assert_eq!(
        r.json()["signatures"][0]["signing_key"],
        subkey_fpr.as_str()
    );
}

#[test]
fn shipped_example_verifies_from_the_repository_root() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new();
    let r = p.run_in(root, &["verify", "examples/Full-upgrade-package-dten.zip"]);
    r.code(0)
        .stdout_has("verified: examples/Full-upgrade-package-dten.zip")
        .stdout_has("pin-matched");
}

// The signed-region rule: "verified" means every byte of the file, except armor framing
// and trailing whitespace, is what the signer signed. Each case below starts from a
// message real GnuPG made (and checks that it verifies), then adds bytes no signature
// covers.

/// `text` signed by GnuPG with `args` (`--clearsign`, `--sign`, `--armor --sign`, ...).
fn gpg_message(gpg: &Gpg, fpr: &str, dir: &Project, text: &[u8], args: &[&str]) -> Vec<u8> {
    let src = dir.write("to-sign.txt", text);
    let out = dir.path("signed.out");
    let _ = std::fs::remove_file(&out);
    let user = format!("{fpr}!");
    let (src, out_s) = (src.display().to_string(), out.display().to_string());
    let mut full = vec![
        "--digest-algo",
        "SHA256",
        "--local-user",
        &user,
        "--output",
        &out_s,
    ];
    full.extend(args);
    full.push(&src);
    gpg.gpg(&full);
    std::fs::read(&out).unwrap()
}

const RELEASE: &[u8] =
    b"Origin: Acme\nSuite: stable\n-dash line\nSHA256:\n 0af8 100 main/binary-amd64/Packages\n";

impl Acme {
    fn message(&self, text: &[u8], args: &[&str]) -> Vec<u8> {
        gpg_message(&self.gpg, &self.fpr, &self.p, text, args)
    }

    /// Verifies `bytes` as the inline-signed bundle `name` (JSON).
    fn verify_message(&self, name: &str, bytes: &[u8]) -> Run {
        self.p.write(name, bytes);
        self.p.run(&["verify", "--vendor", "acme", name, "--json"])
    }
}

/// Asserts a rejection for unsigned content only, with `needle` in the problem.
#[track_caller]
fn unsigned(r: &Run, needle: &str) {
    r.code(1);
    assert_eq!(r.codes(), ["unsigned-content"], "{}", r.stdout);
    let problems: Vec<String> = r.json()["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let problems = problems.join("\n");
    assert!(
        problems.contains(needle),
        "problems lack {needle:?}: {problems}"
    );
}

fn lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The armored signature block at the end of a cleartext-signed message.
fn signature_block(clear: &[u8]) -> &[u8] {
    let at = clear
        .windows(29)
        .position(|w| w == b"-----BEGIN PGP SIGNATURE-----")
        .unwrap();
    &clear[at..]
}

#[test]
fn cleartext_with_unsigned_text_after_the_signature_is_rejected() {
    let a = Acme::new();
    let clear = a.message(RELEASE, &["--clearsign"]);
    a.verify_message("InRelease", &clear).code(0);
    // Trailing blank lines and spaces are not content.
    a.verify_message("InRelease", &cat(&[&clear, b"\n\n  \t\n"]))
        .code(0);

    let evil = cat(&[&clear, b"\nSuite: evil\n"]);
    let r = a.verify_message("InRelease", &evil);
    let at = format!(
        "unsigned content at line {} (offset {}): text after the end of the signature",
        lines(&clear) + 2,
        clear.len() + 1
    );
    unsigned(&r, &at);
    // The good signature is still shown, so the operator sees what was appended to.
    assert_eq!(r.json()["signatures"][0]["status"], "good-signature");
    a.p.run(&["verify", "--vendor", "acme", "InRelease"])
        .code(1)
        .stdout_has("rejected: InRelease: unsigned-content (vendor acme)")
        .stdout_has(&format!("problem: InRelease: {at}"))
        .stdout_has("next: do not install");
}

#[test]
fn cleartext_holding_a_second_signed_message_is_rejected() {
    let a = Acme::new();
    let clear = a.message(RELEASE, &["--clearsign"]);
    let second = a.message(b"Suite: evil\n", &["--clearsign"]);
    let stranger = Gpg::new();
    let sfpr = stranger.key("Stranger <x@evil.example>", "ed25519", "0", None);
    let unpinned = gpg_message(&stranger, &sfpr, &a.p, b"Suite: evil\n", &["--clearsign"]);
    // A second message that reuses the first one's signature block.
    let reused = cat(&[
        b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: evil\n",
        signature_block(&clear),
    ]);
    let at = format!(
        "line {} (offset {}): a second signed message",
        lines(&clear) + 1,
        clear.len()
    );
    for (what, extra) in [
        ("signed by the pinned key", &second),
        ("signed by an unpinned key", &unpinned),
        ("reusing the first signature", &reused),
    ] {
        let r = a.verify_message("InRelease", &cat(&[&clear, extra]));
        assert_eq!(r.codes(), ["unsigned-content"], "{what}");
        unsigned(&r, &at);
    }
    // A second signature block after the first.
    let r = a.verify_message("InRelease", &cat(&[&clear, signature_block(&second)]));
    unsigned(&r, "a second signature block");
}

#[test]
fn cleartext_with_bytes_before_the_armor_is_rejected() {
    let a = Acme::new();
    let clear = a.message(RELEASE, &["--clearsign"]);
    unsigned(
        &a.verify_message("InRelease", &cat(&[b"\n", &clear])),
        "line 1 (offset 0): bytes before the -----BEGIN PGP SIGNED MESSAGE----- line",
    );
    unsigned(
        &a.verify_message("InRelease", &cat(&[b"Suite: evil\n", &clear])),
        "line 1 (offset 0): bytes before the -----BEGIN PGP SIGNED MESSAGE----- line",
    );
    // Far more than discovery looks at is still refused, as no signature at all.
    let r = a.verify_message("InRelease", &cat(&[&[b'x'; 4096], b"\n", &clear]));
    r.code(1);
    assert_eq!(r.codes(), ["no-signature"]);
}

#[test]
fn cleartext_armor_headers_and_dash_escapes_are_strict() {
    let a = Acme::new();
    // GnuPG dash-escapes text lines that look like armor: they are signed text.
    let tricky = b"Origin: Acme\n-----BEGIN PGP SIGNED MESSAGE-----\n-----END PGP SIGNATURE-----\n";
    let clear = a.message(tricky, &["--clearsign"]);
    a.verify_message("InRelease", &clear).code(0);
    let text = String::from_utf8(clear.clone()).unwrap();
    assert!(text.contains("\n- -----BEGIN PGP SIGNED MESSAGE-----\n"));

    // Undoing an escape keeps the signature good (the text is the same), but another
    // reader could now take the line for armor.
    let line = lines(text.split("\n- -----BEGIN").next().unwrap().as_bytes()) + 2;
    unsigned(
        &a.verify_message(
            "InRelease",
            text.replacen("\n- -----BEGIN", "\n-----BEGIN", 1)
                .as_bytes(),
        ),
        &format!("line {line} "),
    );
    unsigned(
        &a.verify_message(
            "InRelease",
            text.replacen("\n- -----BEGIN", "\n-----BEGIN", 1)
                .as_bytes(),
        ),
        "is not dash-escaped",
    );

    // Only Hash: headers, naming hash algorithms, belong in the cleartext header.
    unsigned(
        &a.verify_message(
            "InRelease",
            text.replacen("Hash: SHA256\n", "Hash: SHA256\nComment: evil\n", 1)
                .as_bytes(),
        ),
        "line 3 (offset 48): armor header \"Comment: evil\" is not allowed",
    );
    unsigned(
        &a.verify_message(
            "InRelease",
            text.replacen("Hash: SHA256", "Hash: SHA256, EVIL", 1)
                .as_bytes(),
        ),
        "line 2 (offset 35): unknown hash algorithm \"EVIL\"",
    );
}

#[test]
fn cleartext_with_crlf_line_endings_verifies_and_is_held_to_the_same_rule() {
    let a = Acme::new();
    // GnuPG signing a CRLF text keeps the CRs in the text lines.
    let crlf_text = String::from_utf8(RELEASE.to_vec())
        .unwrap()
        .replace('\n', "\r\n");
    let clear = a.message(crlf_text.as_bytes(), &["--clearsign"]);
    a.verify_message("InRelease", &clear).code(0);
    // The whole file converted to CRLF still verifies: the signature is over
    // canonical text.
    let plain = a.message(RELEASE, &["--clearsign"]);
    let converted = String::from_utf8(plain)
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes();
    a.verify_message("InRelease", &converted).code(0);
    a.verify_message("InRelease", &cat(&[&converted, b"\r\n\r\n"]))
        .code(0);
    unsigned(
        &a.verify_message("InRelease", &cat(&[&converted, b"evil\r\n"])),
        "text after the end of the signature",
    );
}

#[test]
fn inline_signed_binary_with_trailing_data_is_rejected() {
    let a = Acme::new();
    // GnuPG compresses by default: one compressed packet running to the end of the file.
    let compressed = a.message(RELEASE, &["--sign"]);
    let plain = a.message(RELEASE, &["-z", "0", "--sign"]);
    let other = a.message(b"Suite: evil\n", &["-z", "0", "--sign"]);
    a.verify_message("Release.gpg", &compressed).code(0);
    a.verify_message("Release.gpg", &plain).code(0);

    unsigned(
        &a.verify_message("Release.gpg", &cat(&[&compressed, b"Suite: evil\n"])),
        "data after the end of the compressed stream",
    );
    unsigned(
        &a.verify_message("Release.gpg", &cat(&[&compressed, &other])),
        "data after the end of the compressed stream",
    );
    unsigned(
        &a.verify_message("Release.gpg", &cat(&[&plain, b"Suite: evil\n"])),
        &format!(
            "offset {}: bytes that are not an OpenPGP packet",
            plain.len()
        ),
    );
    // A packet header cut short: the parser took it for nothing at all.
    unsigned(
        &a.verify_message("Release.gpg", &cat(&[&plain, b"\xff\xff\xff\xff"])),
        &format!(
            "offset {}: bytes that are not a complete OpenPGP packet",
            plain.len()
        ),
    );
    unsigned(
        &a.verify_message("Release.gpg", &cat(&[&plain, &other])),
        &format!(
            "offset {}: a One-Pass Signature packet after the end of the signed message",
            plain.len()
        ),
    );
}

#[test]
fn inline_signed_binary_with_a_second_literal_or_wrapped_messages_is_rejected() {
    use sequoia_openpgp::parse::Parse;
    use sequoia_openpgp::serialize::stream::{Compressor, Message};
    use sequoia_openpgp::serialize::Serialize;
    use std::io::Write;

    let a = Acme::new();
    let plain = a.message(RELEASE, &["-z", "0", "--sign"]);
    let packets: Vec<sequoia_openpgp::Packet> = sequoia_openpgp::PacketPile::from_bytes(&plain)
        .unwrap()
        .into_children()
        .collect();
    assert_eq!(packets.len(), 3, "one-pass signature, literal, signature");
    let mut two_literals = Vec::new();
    for i in [0, 1, 1, 2] {
        packets[i].serialize(&mut two_literals).unwrap();
    }
    unsigned(
        &a.verify_message("Release.gpg", &two_literals),
        "a second literal data packet",
    );

    // A compressed packet is fine around one message, not around two.
    let wrap = |inner: &[u8]| {
        let mut out = Vec::new();
        let m = Message::new(&mut out);
        let mut w = Compressor::new(m).build().unwrap();
        w.write_all(inner).unwrap();
        w.finalize().unwrap();
        out
    };
    a.verify_message("Release.gpg", &wrap(&plain)).code(0);
    let other = a.message(b"Suite: evil\n", &["-z", "0", "--sign"]);
    unsigned(
        &a.verify_message("Release.gpg", &wrap(&cat(&[&plain, &other]))),
        "packet 4 of the compressed data: a One-Pass Signature packet after the end of the signed message",
    );
}

#[test]
fn armored_inline_signed_with_trailing_text_is_rejected() {
    let a = Acme::new();
    let armored = a.message(RELEASE, &["--armor", "--sign"]);
    a.verify_message("Release.asc-inline", &armored).code(0);
    a.verify_message("Release.asc-inline", &cat(&[&armored, b"\n\n"]))
        .code(0);
    unsigned(
        &a.verify_message("Release.asc-inline", &cat(&[&armored, b"Suite: evil\n"])),
        &format!(
            "line {} (offset {}): text after the end of the armored message",
            lines(&armored) + 1,
            armored.len()
        ),
    );
    unsigned(
        &a.verify_message("Release.asc-inline", &cat(&[&armored, &armored])),
        "a second OpenPGP message",
    );
    // Armor that breaks off is a malformed message, not a file that cannot be read.
    let text = String::from_utf8(armored).unwrap();
    let r = a.verify_message(
        "Release.asc-inline",
        text.replace("-----END PGP MESSAGE-----", "-----END PGP MESSAGX-----")
            .as_bytes(),
    );
    r.code(1);
    assert_eq!(r.codes(), ["malformed-signature"]);
}

#[test]
fn cleartext_signed_manifest_with_unsigned_lines_is_rejected() {
    let a = Acme::new();
    let good = sha256_hex(&std::fs::read(&a.bundle).unwrap());
    manifest(&a, &format!("{good}  {BUNDLE}\n"), true);
    a.verify(&[]).code(0);
    let mut sums = std::fs::read(a.p.path("SHA256SUMS")).unwrap();
    sums.extend_from_slice(format!("{}  other.zip\n", "1".repeat(64)).as_bytes());
    std::fs::write(a.p.path("SHA256SUMS"), &sums).unwrap();
    let r = a.verify(&["--json"]);
    unsigned(&r, "SHA256SUMS: unsigned content at line");
}

#[test]
fn each_signature_names_its_signer_and_a_threshold_failure_counts_signers() {
    let a = Acme::new();
    let other = Gpg::new();
    let ofpr = other.key("Unpinned <u@example.org>", "ed25519", "0", None);
    two_signatures(&a, &other, &ofpr, &a.bundle);
    a.verify(&["--signature", "both.asc", "--signatures", "2"])
        .code(1)
        .stdout_has(&format!(
            "rejected: {BUNDLE}: 1 of 2 required pinned certificates signed: below-threshold (vendor acme)"
        ))
        .stdout_has(&format!(
            "certificate {} (Acme Release <release@acme.example>)",
            a.fpr
        ))
        .stdout_has("warning: unpinned-signer");
    let r = a.verify(&["--signature", "both.asc", "--signatures", "2", "--json"]);
    // The unpinned co-signer is a warning, not a reason.
    assert_eq!(r.codes(), ["below-threshold"]);
    assert_eq!(r.json()["warnings"][0]["code"], "unpinned-signer");
    assert_eq!(
        r.json()["signatures"][0]["user_id"],
        "Acme Release <release@acme.example>"
    );

    // A user ID is outside text: escaped, it cannot forge a line.
    let p = Project::new();
    p.vendors(&[("acme", "acme-*.zip")]);
    let c = sq_cert("Acme\n\x1b[2Jverified: <x@acme.example>", days_ago(1), None);
    p.pin_cert("acme", "c.asc", &armored(&c));
    p.write("acme-1.zip", b"data");
    p.write(
        "acme-1.zip.asc",
        sq_sign(&c, b"data", days_ago(0), HashAlgorithm::SHA256),
    );
    let r = p.run(&["verify", "acme-1.zip"]);
    r.code(0)
        .stdout_has("(Acme\\n\\x1b[2Jverified: <x@acme.example>)");
    assert!(!r.stdout.contains('\x1b'), "{:?}", r.stdout);
}

#[test]
fn next_advice_fits_what_was_verified() {
    let a = Acme::new();
    a.sign();
    a.verify(&[]).code(0).stdout_has(&format!(
        "next: the bytes are the vendor's and match every pin; extract this same file with `vendorguard unpack {BUNDLE} --into DIR`"
    ));

    // A file listed in a signed checksum manifest, not an archive.
    let tool = a.p.write("tool.bin", b"a tool");
    let hex = sha256_hex(&std::fs::read(&tool).unwrap());
    manifest(&a, &format!("{hex}  tool.bin\n"), false);
    a.p.run(&["verify", "--vendor", "acme", "tool.bin"])
        .code(0)
        .stdout_has("next: tool.bin matches its line in the signed checksum manifest")
        .stdout_has("use this same file now")
        .stdout_lacks("unpack");

    // An apt InRelease: cleartext-signed, used for its text.
    let release = a.p.write("Release", "Origin: Acme\nSuite: stable\n");
    a.gpg
        .sign_inline(&a.fpr, &release, &a.p.path("InRelease"), "--clearsign");
    a.p.run(&["verify", "--vendor", "acme", "InRelease"])
        .code(0)
        .stdout_has("next: the signed text in InRelease is the vendor's (an apt InRelease")
        .stdout_lacks("unpack");
}
