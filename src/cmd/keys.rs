//! `pin` and `keys`: recording a bundle's SHA-256, pinning a certificate whose
//! fingerprint was checked out of band, and describing and grading pinned certificates
//! (under each vendor's `expired_signer`). Unpinning is `unpin`'s.
//!
//! Both writes go through `setup::write_atomic`, so a crash leaves the old pins or
//! keyring whole. Judging certificate health is `verify::keys`' job.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context as _};
use sequoia_openpgp::policy::StandardPolicy;

use crate::cli::{KeysCommand, PinArgs};
use crate::cmd::outcome::Outcome;
use crate::cmd::setup::{choose_vendor, write_atomic, NO_CONFIG};
use crate::config::{Config, ExpiredSigner};
use crate::text::escape_os;
use crate::text::plural;
use crate::verify::keyring::{self, Keyring};
use crate::verify::{checksums, keys};

pub fn run_pin(config: Option<&Config>, args: &PinArgs) -> anyhow::Result<Outcome> {
    let vendor = choose_vendor(config, Some(&args.vendor), &args.bundle)?
        .expect("an explicit vendor is always chosen");
    let file = std::fs::File::open(&args.bundle)
        .with_context(|| format!("{}: cannot read bundle", escape_os(args.bundle.as_os_str())))?;
    let digests = crate::verify::digest::hash_once(&file, &crate::verify::digest::plan([]))
        .with_context(|| format!("{}: cannot read bundle", escape_os(args.bundle.as_os_str())))?;
    let hex = crate::text::hex(&digests.sha256());
    let name = args
        .bundle
        .file_name()
        .and_then(|n| n.to_str())
        .context("the bundle's file name is not UTF-8; rename it before pinning")?
        .to_string();
    let replaced = write_pin(&vendor.keyring_dir, &name, &hex)?;
    let pin_file = vendor.keyring_dir.join("pinned.sha256");
    match replaced {
        Some(old) if old == hex => println!(
            "already pinned: {hex}  {} in {}",
            crate::text::escape(&name),
            pin_file.display()
        ),
        Some(old) => println!(
            "pinned: {hex}  {} in {} (replaced {old})",
            crate::text::escape(&name),
            pin_file.display()
        ),
        None => println!(
            "pinned: {hex}  {} in {}",
            crate::text::escape(&name),
            pin_file.display()
        ),
    }
    Ok(Outcome::Clean)
}

/// Records `hex` for `name` in `dir/pinned.sha256`, replacing an older line for the same
/// name. Written to a temporary file and renamed, so a crash leaves the old file whole.
/// Returns the hash it replaced.
fn write_pin(dir: &Path, name: &str, hex: &str) -> anyhow::Result<Option<String>> {
    let path = dir.join("pinned.sha256");
    let old_text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    let (entries, bad) = checksums::parse(&old_text, 64);
    if let Some(b) = bad.first() {
        bail!(
            "{}: line {}: {}; fix the file before pinning",
            path.display(),
            b.line,
            b.reason
        );
    }
    let mut replaced = None;
    // Rebuild without the lines for this name, keeping comments and other names.
    let mut kept = String::new();
    let drop_lines: Vec<usize> = entries
        .iter()
        .filter(|e| e.name.strip_prefix("./").unwrap_or(&e.name) == name)
        .map(|e| {
            replaced = Some(e.hex.clone());
            e.line
        })
        .collect();
    for (i, line) in old_text.lines().enumerate() {
        if !drop_lines.contains(&(i + 1)) {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept.push_str(&checksums::format_line(hex, name));
    write_atomic(dir, "pinned.sha256", kept.as_bytes())?;
    Ok(replaced)
}

pub fn run_keys(
    config: Option<&Config>,
    command: KeysCommand,
    now: SystemTime,
) -> anyhow::Result<Outcome> {
    match command {
        KeysCommand::Add {
            file,
            vendor,
            fingerprint,
        } => keys_add(config, &file, &vendor, &fingerprint),
        KeysCommand::Show { file, json } => keys_show(&file, json, now),
        KeysCommand::List { json } => keys_list(config, json, false, now),
        KeysCommand::Check { json } => keys_list(config, json, true, now),
        KeysCommand::Remove {
            vendor,
            fingerprint,
            force,
        } => {
            let want = full_fingerprint("FINGERPRINT", &fingerprint)?;
            let choice =
                choose_vendor(config, Some(&vendor), Path::new(""))?.expect("explicit vendor");
            crate::cmd::unpin::remove_pinned(&choice.name, &choice.keyring_dir, &want, force)
        }
    }
}

/// A full fingerprint in uppercase hex, from what an operator typed (spaces allowed).
pub(super) fn full_fingerprint(what: &str, typed: &str) -> anyhow::Result<String> {
    let hex: String = typed
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if !(hex.len() == 40 || hex.len() == 64) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{what}: expected a full 40 or 64 hex digit fingerprint (a key ID is not enough), got {typed:?}");
    }
    Ok(hex)
}

/// What the vendor's `expired_signer` makes of an expired pinned key, for a message.
pub(super) fn expired_signer_note(
    info: &keys::CertInfo,
    expired_signer: ExpiredSigner,
) -> &'static str {
    match (info.health, expired_signer) {
        (keys::Health::Expired, ExpiredSigner::Warn) => " (expired_signer = \"warn\": what it signed before then still verifies, with a warning; ask the vendor for its renewed key)",
        (keys::Health::Expired, ExpiredSigner::Reject) => " (expired_signer = \"reject\": every signature it made is refused)",
        _ => "",
    }
}

/// `keys add`: pins the certificate in `file` that has the fingerprint the operator
/// validated out of band, public part only.
fn keys_add(
    config: Option<&Config>,
    file: &Path,
    vendor: &str,
    fingerprint: &str,
) -> anyhow::Result<Outcome> {
    use sequoia_openpgp::serialize::SerializeInto;
    let want = full_fingerprint("--fingerprint", fingerprint)?;
    let choice = choose_vendor(config, Some(vendor), file)?.expect("explicit vendor");
    let bytes = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let (certs, _) = keyring::parse_certs(&bytes);
    let cert = certs
        .into_iter()
        .find(|c| c.keys().any(|k| k.key().fingerprint().to_hex() == want))
        .with_context(|| format!("{}: holds no certificate with fingerprint {want}; nothing was pinned (compare the fingerprint again)", file.display()))?;
    let fpr = cert.fingerprint().to_hex();
    let armored = cert.strip_secret_key_material().armored().to_vec()?;
    let dest = write_atomic(&choice.keyring_dir, &format!("{fpr}.asc"), &armored)?;
    println!(
        "pinned: {fpr} for vendor {} in {}",
        choice.name,
        dest.display()
    );
    Ok(Outcome::Clean)
}

/// `keys show`: everything about the certificates in `file`.
fn keys_show(file: &Path, json: bool, now: SystemTime) -> anyhow::Result<Outcome> {
    let policy = StandardPolicy::new();
    let bytes = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let (certs, problems) = keyring::parse_certs(&bytes);
    if certs.is_empty() {
        bail!(
            "{}: not an OpenPGP certificate file: {}",
            file.display(),
            problems
                .first()
                .map(String::as_str)
                .unwrap_or("no certificate in it")
        );
    }
    for p in problems {
        tracing::warn!(
            "{}: skipped a certificate that does not parse: {p}",
            file.display()
        );
    }
    let origin = file.display().to_string();
    let infos: Vec<_> = certs
        .iter()
        .map(|c| keys::describe(c, &policy, now))
        .collect();
    if json {
        let v: Vec<_> = infos
            .iter()
            .map(|i| keys::render_json(i, Some(&origin)))
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for i in &infos {
            print!("{}", keys::render_text(i, Some(&origin)));
        }
    }
    Ok(Outcome::Clean)
}

/// `keys list`, and with `check` `keys check`: the pinned certificates per vendor.
fn keys_list(
    config: Option<&Config>,
    json: bool,
    check: bool,
    now: SystemTime,
) -> anyhow::Result<Outcome> {
    let policy = StandardPolicy::new();
    let config = config.context(NO_CONFIG)?;
    let mut failed = false;
    let mut out_json = Vec::new();
    for v in &config.vendors {
        if v.signature_uses().is_empty() && !v.keyring.exists() {
            // Plain feeds only: nothing is verified, so no keyring is missing.
            if !json {
                println!("vendor {} (no keyring: feeds only)", v.name);
            }
            out_json
                .push(serde_json::json!({"vendor": v.name, "keyring": null, "certificates": []}));
            continue;
        }
        let kr = match Keyring::load(std::slice::from_ref(&v.keyring)) {
            Ok(k) => k,
            Err(e) => {
                // One vendor's broken keyring degrades the listing; it fails check.
                failed = true;
                eprintln!("vendor {}: {e}", v.name);
                out_json.push(serde_json::json!({"vendor": v.name, "error": e.to_string()}));
                continue;
            }
        };
        if !json {
            println!(
                "vendor {} ({} certificate{}, {})",
                v.name,
                kr.certs().len(),
                plural(kr.certs().len() as u64),
                v.keyring.display()
            );
        }
        let mut certs_json = Vec::new();
        for cert in kr.certs() {
            let info = keys::describe(cert, &policy, now);
            let origin = kr
                .origin(&cert.fingerprint())
                .map(|p| p.display().to_string());
            let level = info.health.level(v.expired_signer == ExpiredSigner::Reject);
            if level == keys::Level::Error {
                failed = true;
            }
            if json {
                let mut j = keys::render_json(&info, origin.as_deref());
                j["level"] = level.word().into();
                certs_json.push(j);
            } else if check {
                println!(
                    "  {}: {}: {} {}{}",
                    level.word(),
                    info.health.code(),
                    info.fingerprint,
                    info.health_detail,
                    expired_signer_note(&info, v.expired_signer)
                );
            } else {
                for line in keys::render_text(&info, origin.as_deref()).lines() {
                    println!("  {line}");
                }
            }
        }
        out_json.push(serde_json::json!({"vendor": v.name, "keyring": v.keyring.display().to_string(), "certificates": certs_json}));
    }
    if json {
        println!("{}", serde_json::Value::Array(out_json));
    }
    Ok(if check && failed {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}
