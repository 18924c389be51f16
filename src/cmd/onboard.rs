//! `vendor add`: onboarding a vendor in one step. The key is fetched from the vendor's
//! key URL through the watcher's own HTTP client (`watch::fetch`: size cap, refused
//! addresses, timeouts), shown, and pinned only when its *primary* fingerprint is the
//! one the operator got out of band; then a `[[vendor]]` block is appended to
//! `feeds.toml` and `check-config` runs on the result.
//!
//! The block is built with `toml_edit` (values quoted as TOML wants) and appended after
//! the file's last byte, so every comment and line already there stays byte for byte;
//! the whole new file is loaded as a configuration before anything is fetched or
//! written. Nothing is written unless the key matches; the key file and `feeds.toml`
//! are each written whole (`setup::write_atomic`), and a key file this run created is
//! removed again when `feeds.toml` cannot be written. For a CSAF provider the
//! fingerprints in its `provider-metadata.json` are shown, never trusted.

use std::time::SystemTime;

use anyhow::{anyhow, bail, Context as _};
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::serialize::SerializeInto as _;

use crate::cli::{FeedKind, VendorAddArgs};
use crate::cmd::outcome::Outcome;
use crate::cmd::setup::{runtime, write_atomic, NO_CONFIG};
use crate::config::Config;
use crate::verify::{keyring, keys};
use crate::watch::fetch::{Fetched, Fetcher, Validators};

/// `vendor add`.
///
/// # Errors
///
/// No configuration, a vendor of that name already in it, arguments that would not
/// load, a key URL that cannot be fetched or holds no certificate, a file that cannot
/// be written, or problems `check-config` finds after the vendor was added.
pub fn run_vendor_add(
    config: Option<&Config>,
    args: &VendorAddArgs,
    now: SystemTime,
) -> anyhow::Result<Outcome> {
    let config = config.with_context(|| format!("vendor add edits feeds.toml; {NO_CONFIG}"))?;
    if config.vendor(&args.name).is_some() {
        bail!(
            "vendor {:?} is already in {}; nothing was changed (use `keys add` to pin another key for it)",
            args.name,
            config.path.display()
        );
    }
    let want = super::keys::full_fingerprint("--fingerprint", &args.fingerprint)?;
    let original = std::fs::read_to_string(&config.path)
        .with_context(|| format!("{}: cannot read", config.path.display()))?;
    let updated = append_block(&original, &vendor_block(args));
    let new_config = Config::parse(&config.path, &updated)
        .map_err(|e| anyhow!("{e}\nthe vendor as given would not load; nothing was written"))?;
    let keyring_dir = new_config
        .vendor(&args.name)
        .context("the new vendor is missing from the parsed configuration")?
        .keyring
        .clone();

    let fetcher = Fetcher::new(&config.watch)?;
    let rt = runtime()?;
    let key_bytes = rt
        .block_on(fetch(&fetcher, &args.key_url))
        .context("cannot fetch the key; nothing was written")?;
    let (certs, problems) = keyring::parse_certs(&key_bytes);
    if certs.is_empty() {
        bail!(
            "{}: not an OpenPGP certificate ({}); nothing was written",
            crate::text::escape(&args.key_url),
            problems
                .first()
                .map(|p| crate::text::escape(p))
                .unwrap_or_else(|| "no certificate in it".into())
        );
    }
    let policy = StandardPolicy::new();
    let origin = crate::text::escape(&args.key_url);
    for c in &certs {
        print!(
            "{}",
            keys::render_text(&keys::describe(c, &policy, now), Some(&origin))
        );
    }
    if args.format == Some(FeedKind::Csaf) {
        if let Some(feed) = &args.feed {
            show_provider_fingerprints(&rt, &fetcher, feed, &want);
        }
    }

    let Some(cert) = certs.iter().find(|c| c.fingerprint().to_hex() == want) else {
        let subkey_of = certs.iter().find(|c| {
            c.keys()
                .subkeys()
                .any(|k| k.key().fingerprint().to_hex() == want)
        });
        match subkey_of {
            Some(c) => eprintln!(
                "refused: {want} is a subkey of certificate {}; a vendor is pinned by its \
                 primary fingerprint: confirm that one with the vendor; nothing was written",
                c.fingerprint().to_hex()
            ),
            None => eprintln!(
                "refused: the key at {origin} has primary fingerprint {}, not {want}; \
                 nothing was written: do not pin it until the vendor confirms the fingerprint \
                 out of band",
                certs
                    .iter()
                    .map(|c| c.fingerprint().to_hex())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        return Ok(Outcome::Findings);
    };

    let armored = cert
        .clone()
        .strip_secret_key_material()
        .armored()
        .to_vec()?;
    let key_name = format!("{want}.asc");
    let key_path = keyring_dir.join(&key_name);
    let key_existed = key_path.exists();
    write_atomic(&keyring_dir, &key_name, &armored)?;
    if let Err(e) = write_config(&config.path, &updated) {
        if !key_existed {
            let _ = std::fs::remove_file(&key_path);
        }
        return Err(e.context("feeds.toml was left as it was; the key was not pinned"));
    }
    println!(
        "pinned: {want} for vendor {} in {}",
        args.name,
        key_path.display()
    );
    println!("added: vendor {} to {}", args.name, config.path.display());
    super::check_config::run_check_config(Some(&new_config), now)
}

async fn fetch(fetcher: &Fetcher, url: &str) -> anyhow::Result<Vec<u8>> {
    match fetcher.get(url, &Validators::default()).await? {
        Fetched::Body { bytes, .. } => Ok(bytes),
        Fetched::NotModified => bail!("{url}: answered 304 to a request without validators"),
    }
}

/// Writes the new `feeds.toml` whole, keeping the old file's permissions.
fn write_config(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("the configuration's file name is not UTF-8")?;
    let mode = std::fs::metadata(path)?.permissions();
    let written = write_atomic(dir, name, text.as_bytes())?;
    std::fs::set_permissions(&written, mode)?;
    Ok(())
}

/// The `[[vendor]]` block for `args`, as TOML.
fn vendor_block(args: &VendorAddArgs) -> String {
    use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};
    let mut vendor = Table::new();
    vendor["name"] = value(args.name.as_str());
    if !args.bundles.is_empty() {
        vendor["bundles"] = value(args.bundles.iter().map(String::as_str).collect::<Array>());
    }
    vendor["key_url"] = value(args.key_url.as_str());
    if let Some(url) = &args.feed {
        let mut feed = Table::new();
        feed["url"] = value(url.as_str());
        match args.format {
            Some(FeedKind::Csaf) => feed["format"] = value("csaf"),
            Some(FeedKind::CisaKev) => feed["format"] = value("cisa-kev"),
            Some(FeedKind::Feed) | None => {}
        }
        let mut feeds = ArrayOfTables::new();
        feeds.push(feed);
        vendor.insert("feed", Item::ArrayOfTables(feeds));
    }
    let mut vendors = ArrayOfTables::new();
    vendors.push(vendor);
    let mut doc = DocumentMut::new();
    doc.insert("vendor", Item::ArrayOfTables(vendors));
    doc.to_string()
}

/// `original` with `block` after its last byte, one blank line between.
fn append_block(original: &str, block: &str) -> String {
    let mut out = original.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(block);
    out
}

/// The fingerprints a CSAF `provider-metadata.json` lists (`public_openpgp_keys`), in
/// uppercase hex, at most 16 of them.
pub(crate) fn provider_fingerprints(bytes: &[u8]) -> Vec<String> {
    let Ok(meta) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Vec::new();
    };
    meta.get("public_openpgp_keys")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|k| k.get("fingerprint")?.as_str())
        .map(|f| {
            f.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_uppercase()
        })
        .filter(|f| (f.len() == 40 || f.len() == 64) && f.bytes().all(|b| b.is_ascii_hexdigit()))
        .take(16)
        .collect()
}

/// Shows what the provider's metadata says its keys are: information only, since the
/// metadata comes from the same server as the key.
fn show_provider_fingerprints(
    rt: &tokio::runtime::Runtime,
    fetcher: &Fetcher,
    feed: &str,
    want: &str,
) {
    let shown = crate::text::escape(feed);
    match rt.block_on(fetch(fetcher, feed)) {
        Err(e) => println!(
            "provider metadata {shown}: cannot read it ({}); continuing",
            crate::text::escape(&format!("{e:#}"))
        ),
        Ok(bytes) => {
            let listed = provider_fingerprints(&bytes);
            if listed.is_empty() {
                println!("provider metadata {shown}: lists no OpenPGP key fingerprint");
            }
            for f in listed {
                let note = if f == want {
                    "the one you gave"
                } else {
                    "NOT the one you gave"
                };
                println!(
                    "provider metadata lists key {f} ({note}; shown only: it comes from the same server as the key, so only --fingerprint decides)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(feed: Option<(&str, FeedKind)>, bundles: &[&str]) -> VendorAddArgs {
        VendorAddArgs {
            name: "acme".into(),
            key_url: "https://acme.example/key.asc".into(),
            fingerprint: "AB".repeat(20),
            feed: feed.map(|f| f.0.to_string()),
            format: feed.map(|f| f.1),
            bundles: bundles.iter().map(|b| b.to_string()).collect(),
        }
    }

    fn check(original: &str, a: &VendorAddArgs, want_tail: &str) {
        let out = append_block(original, &vendor_block(a));
        assert!(out.starts_with(original), "{out}");
        assert!(out.ends_with(want_tail), "{out}");
        let c = Config::parse(std::path::Path::new("feeds.toml"), &out).expect("loads");
        assert!(c.vendor("acme").is_some());
    }

    #[test]
    fn blocks_are_appended_and_load() {
        check(
            "",
            &args(None, &[]),
            "[[vendor]]\nname = \"acme\"\nkey_url = \"https://acme.example/key.asc\"\n",
        );
        check(
            "# comment\n[watch]\ninterval = \"1h\" # why\n",
            &args(Some(("https://acme.example/pm.json", FeedKind::Csaf)), &["acme-*.zip", "a\"b"]),
            "\n[[vendor]]\nname = \"acme\"\nbundles = [\"acme-*.zip\", 'a\"b']\nkey_url = \"https://acme.example/key.asc\"\n\n[[vendor.feed]]\nurl = \"https://acme.example/pm.json\"\nformat = \"csaf\"\n",
        );
        // No final newline, a vendor with feeds last: the new block is its own vendor.
        check(
            "[[vendor]]\nname = \"other\"\n[[vendor.feed]]\nurl = \"https://o.example/f\"",
            &args(Some(("https://acme.example/f", FeedKind::Feed)), &[]),
            "\n\n[[vendor]]\nname = \"acme\"\nkey_url = \"https://acme.example/key.asc\"\n\n[[vendor.feed]]\nurl = \"https://acme.example/f\"\n",
        );
    }

    #[test]
    fn provider_fingerprints_are_read_leniently_and_bounded() {
        let f = "AB".repeat(20);
        let meta = format!(
            r#"{{"public_openpgp_keys": [{{"fingerprint": "{}", "url": "x"}}, {{"fingerprint": "zz"}}, {{}}, 7]}}"#,
            f.to_lowercase()
        );
        assert_eq!(
            provider_fingerprints(meta.as_bytes()),
            std::slice::from_ref(&f)
        );
        assert!(provider_fingerprints(b"{").is_empty());
        assert!(provider_fingerprints(b"[]").is_empty());
        let many = format!(
            r#"{{"public_openpgp_keys": [{}]}}"#,
            vec![format!(r#"{{"fingerprint": "{f}"}}"#); 100].join(",")
        );
        assert_eq!(provider_fingerprints(many.as_bytes()).len(), 16);
    }
}
