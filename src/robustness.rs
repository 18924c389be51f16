//! Randomised robustness tests for every parser that reads untrusted bytes: random
//! input and bit-flipped, truncated and spliced real input must never panic, only
//! produce values or errors. Deterministic (a fixed-seed xorshift), so a failure
//! reproduces; no extra dependency.

#![cfg(test)]

use std::path::Path;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// A variation of `seed`: flipped bits, a cut, a duplicated run, or random bytes.
    fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        match self.below(5) {
            0 => {
                for _ in 0..=self.below(8) {
                    if !v.is_empty() {
                        let i = self.below(v.len());
                        v[i] ^= 1 << self.below(8);
                    }
                }
            }
            1 => v.truncate(self.below(v.len() + 1)),
            2 => {
                let a = self.below(v.len() + 1);
                let b = (a + self.below(64)).min(v.len());
                let run = v[a..b].to_vec();
                let at = self.below(v.len() + 1);
                v.splice(at..at, run);
            }
            3 => {
                let at = self.below(v.len() + 1);
                let n = self.below(32);
                let junk = self.bytes(n);
                v.splice(at..at, junk);
            }
            _ => {
                let n = self.below(512);
                v = self.bytes(n);
            }
        }
        v
    }
}

const SIG: &[u8] = include_bytes!("../examples/Full-upgrade-package-dten.zip.asc");
const CERT: &[u8] = include_bytes!("../keyring/dten/dten-demo-release.asc");
const ROUNDS: usize = 3000;

fn seeds() -> Vec<Vec<u8>> {
    let mut binary_sig = Vec::new();
    {
        use std::io::Read;
        let mut r = sequoia_openpgp::armor::Reader::from_bytes(SIG, None);
        r.read_to_end(&mut binary_sig).unwrap();
    }
    let clear = b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhello\n- -dash\n-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n".to_vec();
    vec![SIG.to_vec(), binary_sig, CERT.to_vec(), clear]
}

#[test]
fn signature_and_message_parsers_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds = seeds();
    for i in 0..ROUNDS {
        let input = rng.mutate(&seeds[i % seeds.len()]);
        let _ = crate::verify::sigfile::parse_detached(&input);
        let _ = crate::verify::sigfile::sniff(&input);
        let _ = crate::verify::sigfile::parse_signed_message(&input[..], 1024);
        let _ = crate::verify::armor::blocks(&input);
    }
}

#[test]
fn certificate_parser_never_panics() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let seeds = seeds();
    for i in 0..ROUNDS {
        let input = rng.mutate(&seeds[(i % 2) + 1]);
        let _ = crate::verify::keyring::parse_certs(&input);
    }
}

#[test]
fn checksum_and_config_parsers_never_panic() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let sums = b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a.zip\n\\e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a\\nb\n".to_vec();
    let toml = include_bytes!("../feeds.toml").to_vec();
    for _ in 0..ROUNDS {
        let s = rng.mutate(&sums);
        let _ = crate::verify::checksums::parse(&String::from_utf8_lossy(&s), 64);
        let t = rng.mutate(&toml);
        let _ = crate::config::Config::parse(Path::new("feeds.toml"), &String::from_utf8_lossy(&t));
    }
}

#[test]
fn package_parsers_never_panic() {
    use std::io::Read;
    let mut rng = Rng(0x0dec_0ded_5eed_1234);
    let control = crate::package::deb::control_tar(
        b"Package: acme\nVersion: 1.0\nArchitecture: all\nDescription: x\n y\n",
    );
    let deb = crate::package::ar::build(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar", &control),
        ("data.tar", &control),
        ("_gpgorigin", b"sig"),
    ]);
    let release = format!(
        "Origin: x\nSHA256:\n {} 12 main/Packages\n {} 5 main/Packages.gz\n",
        "ab".repeat(32),
        "cd".repeat(32)
    )
    .into_bytes();
    for _ in 0..ROUNDS {
        let d = rng.mutate(&deb);
        if let Ok(mut ar) = crate::package::ar::ArReader::new(&d[..]) {
            while let Ok(Some(_)) = ar.next_member() {
                let _ = std::io::copy(&mut ar.data(), &mut std::io::sink());
            }
        }
        let _ = crate::package::deb::control_fields(&d[..]);
        let _ = crate::package::deb::signature_members(&mut std::io::Cursor::new(&d));
        let mut signed = crate::package::deb::SignedMembers::new(&d[..]);
        let _ = signed.read_to_end(&mut Vec::new());
        let r = rng.mutate(&release);
        if let Ok(ps) = crate::package::deb822::parse(&r) {
            for p in &ps {
                let _ = crate::package::deb822::release_sha256(p);
            }
        }
    }
}

#[test]
fn csaf_product_tree_walk_never_panics() {
    let mut rng = Rng(0x0bad_cafe_1234_5678);
    let seed = br#"{"product_tree": {"full_product_names": [{"name": "A 1"}], "branches": [{"category": "product_name", "name": "A", "branches": [{"product": {"name": "A 2"}}]}]}}"#.to_vec();
    for _ in 0..ROUNDS {
        let input = rng.mutate(&seed);
        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&input) {
            assert!(crate::watch::csaf::csaf_products(&doc).len() <= 50);
        }
    }
}

#[test]
fn csaf_hash_file_reading_never_panics() {
    let mut rng = Rng(0x5eed_f11e_2468_ace0);
    let seed = format!("{}  2026/acme-2026-001.json\n", "0f".repeat(64)).into_bytes();
    for _ in 0..ROUNDS {
        let input = rng.mutate(&seed);
        let v = crate::watch::csaf::hash_value(&input);
        assert!(v.chars().count() <= crate::policy::CSAF_MAX_HASH_VALUE + 1);
    }
}

#[test]
fn csaf_product_matching_never_panics() {
    let mut rng = Rng(0x0afe_c7ed_0000_0001);
    let config = crate::config::Config::parse(
        std::path::Path::new("feeds.toml"),
        "[[vendor]]\nname = \"a\"\nbundles = [\"*\"]\n[[vendor.product]]\nname = \"A\"\ninstalled = \"1.2\"\ncpe = \"cpe:2.3:a:a:a\"\n",
    )
    .unwrap();
    let inventory = crate::inventory::Inventory::build(Some(&config), &[]);
    let seed = br#"{"product_tree": {"full_product_names": [{"product_id": "F", "name": "A 1.2", "product_identification_helper": {"cpe": "cpe:2.3:a:a:a:1.2"}}], "branches": [{"category": "product_name", "name": "A", "branches": [{"category": "product_version_range", "name": "vers:generic/>=1|<2", "product": {"product_id": "R", "name": "A 1"}}]}]}, "vulnerabilities": [{"product_status": {"known_affected": ["R"], "fixed": ["F"], "first_affected": ["F"]}}]}"#.to_vec();
    for _ in 0..ROUNDS {
        let input = rng.mutate(&seed);
        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&input) {
            let claims = crate::watch::affects::csaf_claims(&doc);
            let a = crate::watch::affects::match_csaf(&claims, &config, &inventory);
            assert!(a.is_some_and(|a| a.products.len() <= 1));
        }
    }
}

#[test]
fn rpm_framing_parser_never_panics() {
    use crate::package::rpm::tests::{header, package};
    use crate::package::rpm::{read_package, sigtag, tag};
    let mut rng = Rng(0x0bad_c0de_1357_9bdf);
    let seed = package(
        &header(&[
            (sigtag::RSAHEADER, 7, &[0x88, 0x00, 0x01][..], 3),
            (sigtag::SHA256HEADER, 6, b"00ff\0", 1),
        ]),
        &header(&[
            (crate::package::rpm::tests::NAME, 6, b"acme\0", 1),
            (tag::FILEMODES, 3, &[0x81, 0xa4, 0xa1, 0xff], 2),
            (tag::BASENAMES, 8, b"a\0b\0", 2),
            (tag::FILESIZES, 4, &[0, 0, 0, 1, 0, 0, 0, 2], 2),
            (tag::LONGFILESIZES, 5, &[0; 16], 2),
        ]),
        b"\x1f\x8b payload",
    );
    for _ in 0..ROUNDS {
        let input = rng.mutate(&seed);
        if let Ok(p) = read_package(&mut &input[..]) {
            for h in [&p.signature, &p.header] {
                for t in h.tags().collect::<Vec<_>>() {
                    let _ = (h.get(t), h.strings(t), h.ints(t), h.bin(t));
                }
            }
        }
    }
}

#[test]
fn escaping_never_lets_a_control_character_through() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..ROUNDS {
        let b = rng.bytes(64);
        let s = String::from_utf8_lossy(&b);
        let e = crate::text::escape(&s);
        assert!(!e.chars().any(|c| c.is_control()), "{e:?}");
    }
}

#[test]
fn version_range_and_release_parsers_never_panic() {
    use crate::version::{from_file_name, Range, Version};
    let mut rng = Rng(0x0bad_5eed_1234_abcd);
    let versions = b"1.2.0-rc1+build.7".to_vec();
    let range = b"vers:generic/>=1.0.0|!=1.2.0|<1.4.2|>=2.0|<2.0.5%2Brc".to_vec();
    let release = b"Origin: Acme\nSuite: stable\nDate: Sat, 28 Nov 2026 06:00:00 UTC\nValid-Until: Sat, 05 Dec 2026 06:00:00 +0200\n\nSHA256:\n".to_vec();
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
    let one = Version::parse("1").unwrap();
    for _ in 0..ROUNDS {
        let v = String::from_utf8_lossy(&rng.mutate(&versions)).into_owned();
        if let Ok(parsed) = Version::parse(&v) {
            assert_eq!(parsed.cmp(&parsed), std::cmp::Ordering::Equal, "{v:?}");
            let _ = parsed.cmp(&one);
        }
        let _ = from_file_name(&v);
        let r = String::from_utf8_lossy(&rng.mutate(&range)).into_owned();
        if let Ok(parsed) = Range::parse(&r) {
            let _ = parsed.contains(&one);
        }
        let text = rng.mutate(&release);
        let _ = crate::verify::release::is_release("InRelease", &text);
        let _ = crate::verify::release::check(&text, now);
    }
}

#[test]
fn configuration_flattening_and_line_signals_never_panic() {
    use crate::archive::config_keys::{flatten, format_of};
    use crate::archive::signals::{Signals, Source};
    let mut rng = Rng(0x0bad_c0de_1357_9bdf);
    let seeds: [(&str, &[u8]); 6] = [
        ("a.ini", b"[s]\nk = v\n; c\n[t]\nx: 'y'\n"),
        (
            "a.toml",
            b"[a]\nb = 1\nc = [\"x\", {d = 2}]\n[[e]]\nf = true\n",
        ),
        (
            "a.yaml",
            b"a: &x {b: [1, 2]}\nc: *x\n? [k]\n: v\n---\n- d\n",
        ),
        (
            "a.json",
            b"{\"a\": {\"b\": [1, {\"c\": null}]}, \"d\": \"e\"}",
        ),
        ("a.properties", b"a.b=c\nd: e \\\n  f\n! g\n"),
        ("a.env", b"export A='b'\nC=\"d\"\n#E=f\n"),
    ];
    for i in 0..ROUNDS {
        let (name, seed) = seeds[i % seeds.len()];
        let input = rng.mutate(seed);
        let room = rng.below(20);
        let flat = flatten(format_of(name).unwrap(), &input, i % 7 == 0, room);
        assert!(flat.keys.len() <= room);
        let mut signals = Signals::default();
        for (n, line) in String::from_utf8_lossy(&input).lines().enumerate() {
            for source in [Source::Unit, Source::Sql, Source::Other] {
                signals.line(name, source, n, line);
            }
        }
    }
}

#[test]
fn summaries_and_preflight_of_mangled_archives_never_panic() {
    use crate::archive::preflight::{check, HostView};
    use crate::archive::summary::summarize;
    use std::io::{Seek as _, Write as _};
    struct Nothing;
    impl HostView for Nothing {
        fn unit_installed(&self, _: &str) -> bool {
            false
        }
        fn resolves(&self, _: &str) -> bool {
            false
        }
        fn can_sudo(&self) -> bool {
            false
        }
    }
    let mut tar = tar::Builder::new(Vec::new());
    for (name, body) in [
        (
            "etc/a.yaml",
            &b"a: &x [1, 2]\nb: *x\nhost: db.example.com\n"[..],
        ),
        (
            "etc/a.json",
            b"{\"a\": [1, 2, {\"b\": \"sftp://x.example.com/\"}]}",
        ),
        (
            "etc/cron.d/a",
            b"0 3 * * * root curl -X POST https://h.example.com/ -d x\n",
        ),
        (
            "x.service",
            b"[Unit]\nAfter=a.service\n[Service]\nExecStart=/bin/a\n",
        ),
        ("m.sql", b"ALTER TABLE t ADD c int;\n"),
        (
            "install.sh",
            b"systemctl restart b\nsed -i s/a/b/ /etc/o.conf\n",
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o755);
        tar.append_data(&mut h, name, body).unwrap();
    }
    let seed = tar.into_inner().unwrap();
    let mut rng = Rng(0x5eed_f00d_dead_0001);
    let mut file = tempfile::tempfile().unwrap();
    for i in 0..ROUNDS / 10 {
        let input = rng.mutate(&seed);
        file.set_len(0).unwrap();
        file.rewind().unwrap();
        file.write_all(&input).unwrap();
        if let Ok(summary) = summarize(
            &mut file,
            crate::archive::inspect::ReadLimits {
                max_size: 1 << 30,
                max_ratio: 200,
                archive_size: input.len() as u64,
            },
            i % 2 == 0,
        ) {
            let _ = check(&summary, &Nothing);
        }
    }
}

#[test]
fn metrics_request_parser_never_panics() {
    let mut rng = Rng(0x0bad_cafe_1234_5678);
    let seed = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n".to_vec();
    for _ in 0..ROUNDS {
        let _ = crate::cmd::serve::parse_request(&rng.mutate(&seed));
    }
}

#[test]
fn provider_metadata_fingerprint_reader_never_panics() {
    let mut rng = Rng(0x5eed_f00d_0123_4567);
    let seed = br#"{"public_openpgp_keys": [{"fingerprint": "ABABABABABABABABABABABABABABABABABABABAB", "url": "https://x.example/k.asc"}]}"#.to_vec();
    for _ in 0..ROUNDS {
        let got = crate::cmd::onboard::provider_fingerprints(&rng.mutate(&seed));
        assert!(got.len() <= 16);
    }
}

#[test]
fn state_location_parser_never_panics_nor_takes_a_url_for_a_file() {
    use crate::store::StateLocation;
    let mut rng = Rng(0x5a17_e10c_a7e5_0013);
    let seed = b"postgresql://vg%40x@[::1]:6543/vg&db?sslmode=verify-full&sslrootcert=ca.pem&connect_timeout=5"
        .to_vec();
    for _ in 0..ROUNDS {
        let v = String::from_utf8_lossy(&rng.mutate(&seed)).into_owned();
        match StateLocation::parse(&v, Path::new("/etc/vg"), None) {
            // Shown without a password: the user part holds no ':'.
            Ok(StateLocation::Postgres(pg)) => {
                let shown = pg.to_string();
                let user = shown["postgresql://".len()..].rsplit_once('@').unwrap().0;
                assert!(!user.contains(':'), "{shown}");
            }
            Ok(StateLocation::Sqlite(_)) => {
                let lower = v.trim_start().to_ascii_lowercase();
                assert!(
                    !(lower.starts_with("postgres")
                        && (lower.contains('@') || lower.contains("//"))),
                    "{v:?} taken for a file"
                );
            }
            Err(e) => assert!(!e.is_empty()),
        }
    }
}
