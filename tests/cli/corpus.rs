//! Real vendor material from `../shared/corpus` (read in place, never copied): Puppet's
//! apt `InRelease` signed by a key that expired later, Bitcoin Core's multi-signer
//! `SHA256SUMS`, the Sequoia interop suite's revoked-key timeline and SHA-1 collision.
//! Each test says so on stderr and checks nothing when the corpus is absent.

use std::path::{Path, PathBuf};

use crate::harness::*;

#[test]
fn puppet_inrelease_signed_before_its_key_expired() {
    let Some(c) = corpus() else { return };
    let dir = c.join("signed/puppet-apt-InRelease");
    let key = dir.join("DEB-GPG-KEY-puppet-20250406");
    let p = Project::new();
    let r = p.run(&[
        "verify",
        "--json",
        "--keyring",
        key.to_str().unwrap(),
        dir.join("InRelease").to_str().unwrap(),
    ]);
    r.code(0);
    let v = r.json();
    assert_eq!(v["source"]["kind"], "inline");
    assert_eq!(
        v["signatures"][0]["issuer"],
        "D6811ED3ADEEB8441AF5AA8F4528B6CD9E61EF26"
    );
    assert_eq!(v["signatures"][0]["created"], "2024-10-22T20:39:14Z");
    assert_eq!(v["warnings"][0]["code"], "key-expired-since-signing");
    assert!(v["warnings"][0]["message"]
        .as_str()
        .unwrap()
        .contains("2025-04-06"));
}

/// One Bitcoin Core release's Guix attestations: every builder's `all.SHA256SUMS.asc`
/// concatenated into one signature file, checked against all builder keys.
struct Guix {
    p: Project,
    builders: Vec<PathBuf>,
    sigs: PathBuf,
    keys: PathBuf,
}

impl Guix {
    fn new(c: &Path, version: &str) -> Guix {
        let base = c.join("signed/bitcoin-core-guix-sigs");
        let p = Project::new();
        let mut builders: Vec<PathBuf> = std::fs::read_dir(base.join(version))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        builders.sort();
        let mut all = Vec::new();
        for b in &builders {
            all.extend(std::fs::read(b.join("all.SHA256SUMS.asc")).unwrap());
        }
        let sigs = p.write("all.asc", all);
        Guix {
            p,
            builders,
            sigs,
            keys: base.join("builder-keys"),
        }
    }

    /// Verifies the first builder's `all.SHA256SUMS` (they are identical).
    fn verify(&self, keyring: &Path, signature: &Path, threshold: &str) -> Run {
        let sums = self.builders[0].join("all.SHA256SUMS");
        self.p.run(&[
            "verify",
            "--json",
            "--keyring",
            keyring.to_str().unwrap(),
            "--signature",
            signature.to_str().unwrap(),
            "--signatures",
            threshold,
            sums.to_str().unwrap(),
        ])
    }
}

#[test]
fn bitcoin_core_31_1_fifteen_distinct_builders() {
    let Some(c) = corpus() else { return };
    let g = Guix::new(&c, "31.1");
    let r = g.verify(&g.keys, &g.sigs, "15");
    r.code(0);
    assert_eq!(r.json()["good_certificates"].as_array().unwrap().len(), 15);
    // GnuPG reports EXPKEYSIG for two builders: accepted here with the warning.
    let expired = r.json()["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["code"] == "key-expired-since-signing")
        .count();
    assert_eq!(expired, 2);
    let r = g.verify(&g.keys, &g.sigs, "16");
    r.code(1);
    assert_eq!(r.codes(), ["below-threshold"]);

    // Only one builder pinned, another builder's signature alone: an unexpected signer.
    let one = g.builders.iter().find(|b| b.ends_with("achow101")).unwrap();
    g.verify(
        &g.keys.join("fanquake.gpg"),
        &one.join("all.SHA256SUMS.asc"),
        "1",
    )
    .code(3);
}

#[test]
fn bitcoin_core_22_0_keys_whose_old_bindings_are_gone_reject() {
    // Two builders' certificates no longer carry a binding signature from 2021: GnuPG
    // still says GOODSIG/EXPKEYSIG; the contract requires validity at signing time.
    let Some(c) = corpus() else { return };
    let g = Guix::new(&c, "22.0");
    let r = g.verify(&g.keys, &g.sigs, "1");
    r.code(1);
    assert_eq!(r.codes(), ["key-invalid"]);
    let sigs = r.json()["signatures"].as_array().unwrap().clone();
    let count = |s: &str| sigs.iter().filter(|x| x["status"] == s).count();
    assert_eq!(
        (
            count("good-signature"),
            count("key-invalid"),
            count("unpinned-signer")
        ),
        (11, 2, 5)
    );
}

#[test]
fn sequoia_suite_revoked_key_timeline() {
    // t0: before the key; t1-t2: before the revocation; t2-t3: after it; t3-now: after
    // the key was re-validated. Hard revocations invalidate everything; soft ones only
    // t2-t3.
    let Some(c) = corpus() else { return };
    let d = c.join("openpgp-vectors/sequoia-interop-suite/data/revoked-key");
    let msg = d.join("MESSAGE-hello-comma-world.txt");
    let p = Project::new();
    let hard = [
        "compromised",
        "no_subpacket",
        "private",
        "unknown",
        "unspecified",
    ];
    let soft = ["key_retired", "superseded", "uid_retired"];
    let mut table = vec![("not-revoked".to_string(), [1, 0, 0, 0])];
    table.extend(hard.iter().map(|h| (format!("revoked-{h}"), [1, 1, 1, 1])));
    table.extend(soft.iter().map(|s| (format!("revoked-{s}"), [1, 0, 1, 0])));
    for (cert, want) in table {
        for (i, t) in ["t0", "t1-t2", "t2-t3", "t3-now"].iter().enumerate() {
            let r = p.run(&[
                "verify",
                "--keyring",
                d.join(format!("revoked-key-cert-{cert}.pgp"))
                    .to_str()
                    .unwrap(),
                "--signature",
                d.join(format!("revoked-key-sig-{t}.pgp")).to_str().unwrap(),
                msg.to_str().unwrap(),
            ]);
            assert_eq!(r.code, want[i], "{cert} {t}: {}", r.stdout);
        }
    }
    // Signing-subkey flavour: hard revocations reject at every time too.
    for h in hard {
        for t in ["t2-t3", "t3-now"] {
            let r = p.run(&[
                "verify",
                "--json",
                "--keyring",
                d.join(format!("revoked-key-cert-revoked-{h}.sk.pgp"))
                    .to_str()
                    .unwrap(),
                "--signature",
                d.join(format!("revoked-key-sig-{t}.sk.pgp"))
                    .to_str()
                    .unwrap(),
                msg.to_str().unwrap(),
            ]);
            r.code(1);
            assert_eq!(r.codes(), ["key-revoked"], "{h} {t}");
        }
    }
}

#[test]
fn shattered_sha1_collision_pdfs_are_rejected() {
    let Some(c) = corpus() else { return };
    let d = c.join("openpgp-vectors/sequoia-interop-suite/data");
    let p = Project::new();
    for pdf in ["shattered-1.pdf", "shattered-2.pdf"] {
        let r = p.run(&[
            "verify",
            "--json",
            "--keyring",
            d.join("certificates/bob.pgp").to_str().unwrap(),
            d.join("messages").join(pdf).to_str().unwrap(),
        ]);
        r.code(1);
        assert_eq!(r.json()["signatures"][0]["hash_algorithm"], "SHA1");
    }
}
