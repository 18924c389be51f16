//! `vendor add`: a real GnuPG key served by a test HTTP server on 127.0.0.1, pinned only
//! when its primary fingerprint is the one given, and the `[[vendor]]` block appended
//! to a commented feeds.toml that must stay byte for byte.

use crate::harness::*;
use crate::http::{HttpServer, Resp};

const FEEDS: &str = "# Our vendors. Keep this comment!\n\
[watch]\n\
state = \"state/vg.sqlite\"   # beside the config\n\
timeout = \"2s\"\n\
\n\
[watch.backoff]\n\
attempts = 1\n\
initial = \"10ms\"\n\
max = \"1s\"\n\
\n\
[[vendor]]\n\
name = \"other\"              # a vendor of plain feeds\n\
[[vendor.feed]]\n\
url = \"https://other.example/feed.rss\"\n\
# trailing comment, no final newline";

struct O {
    p: Project,
    srv: HttpServer,
    gpg: Gpg,
    fpr: String,
}

impl O {
    /// A project with [`FEEDS`], and a GnuPG key with a signing subkey at `/key.asc`.
    fn new() -> O {
        let p = Project::new();
        p.write("feeds.toml", FEEDS);
        let srv = HttpServer::start();
        let gpg = Gpg::new();
        let fpr = gpg.key(
            "Acme Releases <security@acme.example>",
            "ed25519",
            "2y",
            None,
        );
        gpg.gpg(&["--quick-add-key", &fpr, "ed25519", "sign", "1y"]);
        srv.route("/key.asc", vec![Resp::ok(gpg.export(&fpr))]);
        O { p, srv, gpg, fpr }
    }

    fn subkey(&self) -> String {
        let out =
            String::from_utf8(self.gpg.gpg(&["--with-colons", "--list-keys", &self.fpr])).unwrap();
        out.lines()
            .filter(|l| l.starts_with("fpr:"))
            .filter_map(|l| l.split(':').nth(9))
            .find(|f| *f != self.fpr)
            .expect("a subkey")
            .to_string()
    }

    fn add(&self, extra: &[&str]) -> Run {
        let url = self.srv.url("/key.asc");
        let mut args = vec!["vendor", "add", "acme", "--key-url", url.as_str()];
        args.extend(extra);
        self.p.run(&args)
    }

    #[track_caller]
    fn nothing_written(&self) {
        assert_eq!(
            std::fs::read_to_string(self.p.path("feeds.toml")).unwrap(),
            FEEDS,
            "feeds.toml changed"
        );
        assert!(
            !self.p.path("keyring/acme").exists(),
            "a keyring was written"
        );
        let leftovers: Vec<_> = std::fs::read_dir(self.p.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// The fingerprint as a person types it from a vendor's letter: lowercase, in groups.
fn typed(fpr: &str) -> String {
    fpr.to_lowercase()
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_right_fingerprint_pins_the_key_and_appends_the_vendor() {
    let o = O::new();
    let fpr = typed(&o.fpr);
    let feed = o.srv.url("/feed.rss");
    let r = o.add(&[
        "--fingerprint",
        &fpr,
        "--feed",
        &feed,
        "--bundles",
        "acme-*.zip",
    ]);
    r.code(0)
        .stdout_has(&format!("certificate {}", o.fpr))
        .stdout_has("user ID     Acme Releases <security@acme.example>")
        .stdout_has(&format!("primary  {}", o.fpr))
        .stdout_has(&format!("subkey   {}", o.subkey()))
        .stdout_has("expires ")
        .stdout_has(&format!("pinned: {} for vendor acme", o.fpr))
        .stdout_has("added: vendor acme to")
        .stdout_has("ok: ")
        .stdout_has("2 vendors, 2 feeds, 1 pinned certificate");
    let text = std::fs::read_to_string(o.p.path("feeds.toml")).unwrap();
    assert!(
        text.starts_with(FEEDS),
        "the old text is kept byte for byte:\n{text}"
    );
    assert_eq!(
        &text[FEEDS.len()..],
        format!(
            "\n\n[[vendor]]\nname = \"acme\"\nbundles = [\"acme-*.zip\"]\nkey_url = \"{}\"\n\n[[vendor.feed]]\nurl = \"{feed}\"\n",
            o.srv.url("/key.asc")
        )
    );
    // The pinned file is the public certificate, and the vendor is usable as written.
    let pinned = o.p.path(&format!("keyring/acme/{}.asc", o.fpr));
    o.p.run(&["keys", "show", pinned.to_str().unwrap()])
        .code(0)
        .stdout_has(&o.fpr);
    o.p.run(&["keys", "list"]).code(0).stdout_has(&o.fpr);
    o.p.run(&["check-config"]).code(0);
    // Adding the same vendor again is refused: exit 2, nothing changed.
    let r = o.add(&["--fingerprint", &o.fpr]);
    r.code(2).stderr_has("vendor \"acme\" is already in");
    assert_eq!(
        std::fs::read_to_string(o.p.path("feeds.toml")).unwrap(),
        text
    );
}

#[test]
fn a_wrong_fingerprint_writes_nothing() {
    let o = O::new();
    let other = Gpg::new().key("Mallory <m@evil.example>", "ed25519", "1y", None);
    let r = o.add(&["--fingerprint", &other]);
    r.code(1)
        .stdout_has(&format!("certificate {}", o.fpr))
        .stderr_has(&format!(
            "refused: the key at {} has primary fingerprint {}, not {other}",
            o.srv.url("/key.asc"),
            o.fpr
        ))
        .stderr_has("nothing was written");
    o.nothing_written();
}

#[test]
fn a_subkey_fingerprint_is_not_accepted() {
    let o = O::new();
    let sub = o.subkey();
    let r = o.add(&["--fingerprint", &sub]);
    r.code(1).stderr_has(&format!(
        "refused: {sub} is a subkey of certificate {}",
        o.fpr
    ));
    o.nothing_written();
}

#[test]
fn an_unreachable_or_refused_key_url_is_exit_2_and_writes_nothing() {
    let o = O::new();
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gone = format!("http://127.0.0.1:{port}/key.asc");
    let r = o.p.run(&[
        "vendor",
        "add",
        "acme",
        "--key-url",
        &gone,
        "--fingerprint",
        &o.fpr,
    ]);
    r.code(2)
        .stderr_has("cannot fetch the key; nothing was written")
        .stderr_has("feed-unreachable");
    o.nothing_written();
    o.srv.route("/missing.asc", vec![Resp::status(404)]);
    let missing = o.srv.url("/missing.asc");
    let r = o.p.run(&[
        "vendor",
        "add",
        "acme",
        "--key-url",
        &missing,
        "--fingerprint",
        &o.fpr,
    ]);
    r.code(2).stderr_has("HTTP 404");
    o.nothing_written();
    // The watcher's address rules apply: no request to a cloud metadata address.
    let r = o.p.run(&[
        "vendor",
        "add",
        "acme",
        "--key-url",
        "https://169.254.169.254/latest/key.asc",
        "--fingerprint",
        &o.fpr,
    ]);
    r.code(2).stderr_has("address-refused");
    o.nothing_written();
    // Not a certificate.
    o.srv
        .route("/junk.asc", vec![Resp::ok("<html>not a key</html>")]);
    let junk = o.srv.url("/junk.asc");
    let r = o.p.run(&[
        "vendor",
        "add",
        "acme",
        "--key-url",
        &junk,
        "--fingerprint",
        &o.fpr,
    ]);
    r.code(2).stderr_has("not an OpenPGP certificate");
    o.nothing_written();
}

#[test]
fn bad_arguments_are_refused_before_any_request() {
    let o = O::new();
    let url = o.srv.url("/key.asc");
    for (args, want) in [
        (
            vec![
                "vendor",
                "add",
                "Acme",
                "--key-url",
                &url,
                "--fingerprint",
                &o.fpr,
            ],
            "expected a name of lowercase letters",
        ),
        (
            vec![
                "vendor",
                "add",
                "acme",
                "--key-url",
                "ftp://x.example/k",
                "--fingerprint",
                &o.fpr,
            ],
            "key_url",
        ),
        (
            vec![
                "vendor",
                "add",
                "acme",
                "--key-url",
                &url,
                "--fingerprint",
                "ABCD1234",
            ],
            "a key ID is not enough",
        ),
    ] {
        o.p.run(&args).code(2).stderr_has(want);
    }
    o.p.run(&[
        "vendor",
        "add",
        "acme",
        "--key-url",
        &url,
        "--fingerprint",
        &o.fpr,
        "--format",
        "csaf",
    ])
    .code(2)
    .stderr_has("--feed");
    assert_eq!(o.srv.requests("/key.asc").len(), 0, "no request was made");
    o.nothing_written();
}

#[test]
fn csaf_provider_metadata_fingerprints_are_shown_never_trusted() {
    let o = O::new();
    let mallory = Gpg::new().key("Mallory <m@evil.example>", "ed25519", "1y", None);
    // The provider's metadata names another key than the one served at the key URL.
    let meta = serde_json::json!({
        "canonical_url": o.srv.url("/.well-known/csaf/provider-metadata.json"),
        "public_openpgp_keys": [{"fingerprint": typed(&mallory), "url": o.srv.url("/key.asc")}],
    });
    o.srv.route(
        "/.well-known/csaf/provider-metadata.json",
        vec![Resp::ok(meta.to_string())],
    );
    let feed = o.srv.url("/.well-known/csaf/provider-metadata.json");
    // Taking the metadata's word would pin nothing here: its key is not the one served.
    let r = o.add(&[
        "--fingerprint",
        &mallory,
        "--feed",
        &feed,
        "--format",
        "csaf",
    ]);
    r.code(1)
        .stdout_has(&format!(
            "provider metadata lists key {mallory} (the one you gave;"
        ))
        .stderr_has("refused:");
    o.nothing_written();
    // The operator's fingerprint decides; the metadata's disagreement is shown.
    let r = o.add(&["--fingerprint", &o.fpr, "--feed", &feed, "--format", "csaf"]);
    r.code(0)
        .stdout_has(&format!(
            "provider metadata lists key {mallory} (NOT the one you gave;"
        ))
        .stdout_has(&format!("pinned: {} for vendor acme", o.fpr));
    let text = std::fs::read_to_string(o.p.path("feeds.toml")).unwrap();
    assert!(
        text.ends_with(&format!(
            "[[vendor.feed]]\nurl = \"{feed}\"\nformat = \"csaf\"\n"
        )),
        "{text}"
    );
}
