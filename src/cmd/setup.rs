//! What the commands share before they do their job: the configuration, the vendor a
//! run is about, a tokio runtime, and writing a file so that a crash leaves the old one
//! whole. Nothing here prints or chooses an outcome.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::config::{self, Config};
use crate::text::escape_os;

/// The configuration: `--config FILE` (which must load), else `./feeds.toml` when it
/// exists, else none.
pub fn load_config(explicit: Option<&Path>) -> anyhow::Result<Option<Config>> {
    match explicit {
        Some(p) => Ok(Some(Config::load(p)?)),
        None => {
            let p = Path::new("feeds.toml");
            if p.is_file() {
                Ok(Some(Config::load(p)?))
            } else {
                Ok(None)
            }
        }
    }
}

/// The vendor settings a run uses, config or not.
pub struct VendorChoice {
    pub name: String,
    pub keyring_dir: PathBuf,
    pub signatures: usize,
    pub contact: Option<String>,
}

/// The vendor `explicit` names, else the one whose `bundles` patterns match the
/// bundle's file name; `None` when neither applies.
///
/// # Errors
///
/// An explicit vendor that is not in the configuration, or several vendors matching.
pub fn choose_vendor(
    config: Option<&Config>,
    explicit: Option<&str>,
    bundle: &Path,
) -> anyhow::Result<Option<VendorChoice>> {
    let file_name = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let from_config = |v: &config::Vendor| VendorChoice {
        name: v.name.clone(),
        keyring_dir: v.keyring.clone(),
        signatures: v.signatures,
        contact: v.contact.clone(),
    };
    match (explicit, config) {
        (Some(name), Some(c)) => match c.vendor(name) {
            Some(v) => Ok(Some(from_config(v))),
            None => bail!(
                "vendor {:?} is not in {}; known vendors: {}",
                name,
                c.path.display(),
                c.vendors
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        (Some(name), None) => Ok(Some(VendorChoice {
            name: name.to_string(),
            keyring_dir: config::default_keyring_dir(Path::new("."), name),
            signatures: config::DEFAULT_SIGNATURES,
            contact: None,
        })),
        (None, Some(c)) => {
            let matches = c.vendors_for_bundle(&file_name);
            match matches.as_slice() {
                [] => Ok(None),
                [v] => Ok(Some(from_config(v))),
                many => bail!(
                    "{}: the bundles patterns of several vendors match ({}); pass --vendor",
                    escape_os(bundle.as_os_str()),
                    many.iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        (None, None) => Ok(None),
    }
}

/// The runtime for the commands that poll or deliver: two workers, which is all a
/// watcher bounded by its politeness limits needs.
///
/// # Errors
///
/// When the runtime cannot start (no threads).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Writes `bytes` to `dir/name` through `dir/.name.tmp`, synced and renamed, so a crash
/// leaves either the old file or the new one, never half of either.
///
/// # Errors
///
/// The folder cannot be created, or the file cannot be written or renamed.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create folder", dir.display()))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("{}: cannot replace", path.display()))?;
    Ok(path)
}
