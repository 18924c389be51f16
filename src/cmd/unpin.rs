//! `keys remove`: unpinning one certificate from a vendor's keyring folder.
//!
//! It touches only `keyring/VENDOR/`, and there only the files that hold the
//! certificate named by its primary fingerprint: a file holding nothing else is
//! removed, a file holding other certificates too is rewritten without it. Every
//! rewritten file is complete under a temporary name before any file is renamed or
//! removed, so a failure while writing leaves the keyring as it was, and each file is
//! replaced by a rename, never left half-written.
//!
//! The vendor's last pinned certificate is kept unless `--force`: with an empty keyring
//! every `verify` of the vendor's bundles and every check of its CSAF advisories fails,
//! so a rotation pins the successor first (`keys add`) and removes the old key second.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sequoia_openpgp::serialize::SerializeInto as _;
use sequoia_openpgp::Cert;

use crate::cmd::outcome::Outcome;
use crate::verify::keyring;

/// A certificate file that holds the certificate being removed, and what it keeps.
struct Holder {
    path: PathBuf,
    /// The file's other certificates; empty means the file goes.
    rest: Vec<Cert>,
    /// Whether the file is ASCII-armored (a rewrite keeps its form).
    armored: bool,
}

/// Removes the certificate whose primary fingerprint is `want` (uppercase hex) from
/// `dir`, the keyring folder of `vendor`. Not pinned, or the last certificate without
/// `force`: [`Outcome::Findings`], with the reason on stderr and nothing touched.
///
/// # Errors
///
/// A certificate file that cannot be read, or the folder cannot be written.
pub(crate) fn remove_pinned(
    vendor: &str,
    dir: &Path,
    want: &str,
    force: bool,
) -> anyhow::Result<Outcome> {
    let files = if dir.is_dir() {
        keyring::cert_files(dir)?
    } else {
        Vec::new()
    };
    let mut holders = Vec::new();
    let mut staying = BTreeSet::new();
    let mut subkey_of = None;
    for path in files {
        let bytes =
            std::fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        let (certs, _) = keyring::parse_certs(&bytes);
        let (hit, rest): (Vec<Cert>, Vec<Cert>) = certs
            .into_iter()
            .partition(|c| c.fingerprint().to_hex() == want);
        for c in &rest {
            if c.keys()
                .subkeys()
                .any(|k| k.key().fingerprint().to_hex() == want)
            {
                subkey_of = Some(c.fingerprint().to_hex());
            }
            staying.insert(c.fingerprint());
        }
        if !hit.is_empty() {
            holders.push(Holder {
                path,
                rest,
                armored: bytes.trim_ascii_start().starts_with(b"-----BEGIN"),
            });
        }
    }
    if holders.is_empty() {
        let hint = match subkey_of {
            Some(primary) => format!(
                "it is a subkey of pinned certificate {primary}; give that primary fingerprint"
            ),
            None => "`vendorguard keys list` shows what is pinned".into(),
        };
        eprintln!(
            "vendorguard: {want} is not pinned for vendor {vendor} (no certificate in {} has that primary fingerprint); {hint}; nothing was removed",
            dir.display()
        );
        return Ok(Outcome::Findings);
    }
    if staying.is_empty() && !force {
        eprintln!(
            "vendorguard: refused: {want} is the last pinned certificate of vendor {vendor}, and without it every check of the vendor's signatures fails; pin its successor first (`vendorguard keys add FILE --vendor {vendor} --fingerprint F`), or pass --force; nothing was removed"
        );
        return Ok(Outcome::Findings);
    }
    apply(&holders)?;
    for h in &holders {
        let how = if h.rest.is_empty() {
            "removed the file"
        } else {
            "rewrote the file without it"
        };
        println!(
            "removed: {want} from vendor {vendor} ({how}: {})",
            h.path.display()
        );
    }
    if staying.is_empty() {
        println!("warning: vendor {vendor} has no pinned certificate left");
    }
    Ok(Outcome::Clean)
}

/// Writes every rewritten file under a temporary name first, then renames and removes.
fn apply(holders: &[Holder]) -> anyhow::Result<()> {
    let mut staged: Vec<(PathBuf, &Path)> = Vec::new();
    for h in holders.iter().filter(|h| !h.rest.is_empty()) {
        let written = stage(h);
        match written {
            Ok(tmp) => staged.push((tmp, &h.path)),
            Err(e) => {
                for (tmp, _) in &staged {
                    let _ = std::fs::remove_file(tmp);
                }
                return Err(e);
            }
        }
    }
    for (tmp, path) in &staged {
        std::fs::rename(tmp, path)
            .with_context(|| format!("{}: cannot replace", path.display()))?;
    }
    for h in holders.iter().filter(|h| h.rest.is_empty()) {
        std::fs::remove_file(&h.path)
            .with_context(|| format!("{}: cannot remove", h.path.display()))?;
    }
    Ok(())
}

/// The file's remaining certificates, complete and synced under a temporary name.
fn stage(h: &Holder) -> anyhow::Result<PathBuf> {
    let name = h
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = h.path.with_file_name(format!(".{name}.tmp"));
    let mut bytes = Vec::new();
    for c in &h.rest {
        bytes.extend(if h.armored {
            c.armored().to_vec()?
        } else {
            c.to_vec()?
        });
    }
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("{}: cannot write", tmp.display()))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    Ok(tmp)
}
