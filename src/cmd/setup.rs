//! What the commands share before they do their job: the configuration (and where it is
//! looked for), the vendor a run is about, a tokio runtime, and writing a file so that a crash leaves the old one
//! whole. Nothing here prints or chooses an outcome.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use crate::config::{self, Config};
use crate::text::escape_os;
use crate::verify::SignerPolicy;

/// The configuration file looked for last, when nothing names one and the current
/// folder has no `feeds.toml`.
pub const SYSTEM_CONFIG: &str = "/etc/vendorguard/feeds.toml";

/// The environment variable that names the configuration when `--config` does not.
pub const CONFIG_ENV: &str = "VENDORGUARD_CONFIG";

/// Where the configuration comes from, and whether someone named it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConfigSource {
    /// Named by `--config` or `$VENDORGUARD_CONFIG`: it must exist and load.
    Named { path: PathBuf, by: &'static str },
    /// Found in the search (`./feeds.toml`, then [`SYSTEM_CONFIG`]).
    Found(PathBuf),
    /// None anywhere: commands that need one say so.
    Nothing,
}

/// The search order: `--config`, else `$VENDORGUARD_CONFIG` (when set and not empty),
/// else `./feeds.toml`, else [`SYSTEM_CONFIG`]. `exists` is the file check, injected so
/// the order can be tested without touching `/etc`.
fn choose_config(
    explicit: Option<&Path>,
    env: Option<std::ffi::OsString>,
    exists: impl Fn(&Path) -> bool,
) -> ConfigSource {
    if let Some(p) = explicit {
        return ConfigSource::Named {
            path: p.to_path_buf(),
            by: "--config",
        };
    }
    if let Some(v) = env.filter(|v| !v.is_empty()) {
        return ConfigSource::Named {
            path: PathBuf::from(v),
            by: "$VENDORGUARD_CONFIG",
        };
    }
    [Path::new("feeds.toml"), Path::new(SYSTEM_CONFIG)]
        .into_iter()
        .find(|p| exists(p))
        .map_or(ConfigSource::Nothing, |p| {
            ConfigSource::Found(p.to_path_buf())
        })
}

/// Loads the configuration [`choose_config`] picks. A file that was named but is
/// missing is an error naming it and who named it, never a silent run without one.
pub fn load_config(explicit: Option<&Path>) -> anyhow::Result<Option<Config>> {
    match choose_config(explicit, std::env::var_os(CONFIG_ENV), Path::is_file) {
        ConfigSource::Named { path, by } => {
            if !path.exists() {
                bail!(
                    "{}: no such configuration file (named by {by})",
                    escape_os(path.as_os_str())
                );
            }
            Ok(Some(Config::load(&path)?))
        }
        ConfigSource::Found(path) => Ok(Some(Config::load(&path)?)),
        ConfigSource::Nothing => Ok(None),
    }
}

/// What a command that needs the configuration says when there is none.
pub const NO_CONFIG: &str = "no configuration: pass --config FILE, set $VENDORGUARD_CONFIG, or put feeds.toml in the current folder or at /etc/vendorguard/feeds.toml";

/// The vendor settings a run uses, config or not.
pub struct VendorChoice {
    pub name: String,
    pub keyring_dir: PathBuf,
    pub signatures: usize,
    pub contact: Option<String>,
    /// The vendor's rules on good signatures.
    pub signers: SignerPolicy,
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
        signers: signer_policy(v),
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
            signers: SignerPolicy::default(),
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

/// The verifier's signer policy from the vendor's `expired_signer` and
/// `max_signature_age`.
pub fn signer_policy(v: &config::Vendor) -> SignerPolicy {
    SignerPolicy {
        reject_expired_signer: v.expired_signer == config::ExpiredSigner::Reject,
        max_signature_age: v.max_signature_age,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The source chosen when only the files in `present` exist.
    fn check(explicit: Option<&str>, env: Option<&str>, present: &[&str], want: ConfigSource) {
        let got = choose_config(explicit.map(Path::new), env.map(Into::into), |p| {
            present.iter().any(|f| Path::new(f) == p)
        });
        assert_eq!(
            got, want,
            "--config {explicit:?}, env {env:?}, present {present:?}"
        );
    }

    #[test]
    fn config_search_order() {
        let named = |p: &str, by| ConfigSource::Named { path: p.into(), by };
        let found = |p: &str| ConfigSource::Found(p.into());
        let all = &["feeds.toml", SYSTEM_CONFIG];
        check(
            Some("a.toml"),
            Some("b.toml"),
            all,
            named("a.toml", "--config"),
        );
        check(Some("gone.toml"), None, &[], named("gone.toml", "--config"));
        check(
            None,
            Some("b.toml"),
            all,
            named("b.toml", "$VENDORGUARD_CONFIG"),
        );
        check(None, Some(""), all, found("feeds.toml"));
        check(None, None, all, found("feeds.toml"));
        check(None, None, &[SYSTEM_CONFIG], found(SYSTEM_CONFIG));
        check(None, None, &[], ConfigSource::Nothing);
    }
}
