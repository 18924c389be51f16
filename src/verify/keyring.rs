//! Pinned certificates: loading a vendor's keyring from files and folders.
//!
//! A keyring is the set of certificates pinned for *one* vendor for *one* run. It is
//! loaded from `keyring/<vendor>/` or from `--keyring` paths, and from nowhere else:
//! there is no fallback to a system or user keyring. Files may be armored or binary and
//! hold several certificates (Debian's `debian-archive-keyring.gpg` holds many).
//! Certificates found twice are merged. Judging signatures is `judge`'s job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use openpgp::cert::prelude::*;
use openpgp::parse::Parse;
use openpgp::{Cert, Fingerprint};
use sequoia_openpgp as openpgp;

use crate::text::error_chain;
use crate::verify::armor;

/// File extensions read from a keyring folder.
pub const CERT_EXTENSIONS: &[&str] = &["asc", "pgp", "gpg", "key"];

/// The pinned certificates of one run.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    certs: Vec<Cert>,
    /// Which file each certificate came from (the first, when merged).
    origin: BTreeMap<Fingerprint, PathBuf>,
    /// Non-fatal findings such as stripped secret keys.
    pub warnings: Vec<String>,
}

/// Why a keyring could not be loaded. Each names the path.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("keyring {path}: cannot read: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keyring {path}: no certificate files (*.asc, *.pgp, *.gpg, *.key) in this folder")]
    EmptyFolder { path: PathBuf },
    #[error("keyring {path}: not an OpenPGP certificate file: {reason}")]
    NotOpenPgp { path: PathBuf, reason: String },
}

impl Keyring {
    /// Loads every certificate from `paths` (files or folders).
    ///
    /// # Errors
    ///
    /// A [`KeyringError`] naming the first path that is unreadable, an empty folder, or a
    /// file with no certificate in it.
    pub fn load(paths: &[PathBuf]) -> Result<Keyring, KeyringError> {
        let mut kr = Keyring::default();
        for p in paths {
            let meta = std::fs::metadata(p).map_err(|source| KeyringError::Unreadable {
                path: p.clone(),
                source,
            })?;
            if meta.is_dir() {
                let files = cert_files(p)?;
                if files.is_empty() {
                    return Err(KeyringError::EmptyFolder { path: p.clone() });
                }
                for f in files {
                    kr.add_file(&f)?;
                }
            } else {
                kr.add_file(p)?;
            }
        }
        Ok(kr)
    }

    fn add_file(&mut self, path: &Path) -> Result<(), KeyringError> {
        let bytes = std::fs::read(path).map_err(|source| KeyringError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let (certs, problems) = parse_certs(&bytes);
        if certs.is_empty() {
            let reason = problems
                .first()
                .cloned()
                .unwrap_or_else(|| "the file holds no certificate".into());
            return Err(KeyringError::NotOpenPgp {
                path: path.to_path_buf(),
                reason,
            });
        }
        for p in problems {
            self.warnings.push(format!(
                "keyring {}: skipped a certificate that does not parse: {p}",
                path.display()
            ));
        }
        for cert in certs {
            let cert = if cert.is_tsk() {
                self.warnings.push(format!(
                    "keyring {}: holds secret key material for {}; only the public part is used (remove the secret from the keyring)",
                    path.display(),
                    cert.fingerprint()
                ));
                cert.strip_secret_key_material()
            } else {
                cert
            };
            self.insert(cert, path);
        }
        Ok(())
    }

    /// A keyring of `certs`, as if loaded from one file (for tests).
    #[cfg(test)]
    pub fn from_certs(certs: impl IntoIterator<Item = Cert>) -> Keyring {
        let mut kr = Keyring::default();
        for c in certs {
            kr.insert(c, Path::new("test"));
        }
        kr
    }

    fn insert(&mut self, cert: Cert, path: &Path) {
        let fp = cert.fingerprint();
        if let Some(i) = self.certs.iter().position(|c| c.fingerprint() == fp) {
            let old = self.certs[i].clone();
            if let Ok(merged) = old.merge_public(cert) {
                self.certs[i] = merged;
            }
        } else {
            self.origin.insert(fp, path.to_path_buf());
            self.certs.push(cert);
        }
    }

    /// The certificates, in load order.
    pub fn certs(&self) -> &[Cert] {
        &self.certs
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The file a certificate was loaded from.
    pub fn origin(&self, fp: &Fingerprint) -> Option<&Path> {
        self.origin.get(fp).map(PathBuf::as_path)
    }
}

/// The certificate files in a keyring folder, sorted by name for a stable order.
pub(crate) fn cert_files(dir: &Path) -> Result<Vec<PathBuf>, KeyringError> {
    let rd = std::fs::read_dir(dir).map_err(|source| KeyringError::Unreadable {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| KeyringError::Unreadable {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = entry.path();
        let ext_ok = p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CERT_EXTENSIONS.contains(&e));
        if ext_ok && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses every certificate in `bytes`: binary, or one or more armored blocks.
/// Returns the certificates and a message for each part that did not parse.
pub fn parse_certs(bytes: &[u8]) -> (Vec<Cert>, Vec<String>) {
    let mut certs = Vec::new();
    let mut problems = Vec::new();
    fn parse_one(chunk: &[u8], certs: &mut Vec<Cert>, problems: &mut Vec<String>) {
        match CertParser::from_bytes(chunk) {
            Ok(parser) => {
                for r in parser {
                    match r {
                        Ok(c) => certs.push(c),
                        Err(e) => problems.push(error_chain(&*e)),
                    }
                }
            }
            Err(e) => problems.push(error_chain(&*e)),
        }
    }
    if armor::is_armored(bytes) {
        let blocks = armor::blocks(bytes);
        for b in blocks {
            if b.label == "PGP PUBLIC KEY BLOCK" || b.label == "PGP PRIVATE KEY BLOCK" {
                parse_one(b.bytes, &mut certs, &mut problems);
            } else {
                problems.push(format!(
                    "armored block labelled {:?}, expected \"PGP PUBLIC KEY BLOCK\"",
                    b.label
                ));
            }
        }
    } else if bytes.is_empty() {
        problems.push("the file is empty".into());
    } else {
        parse_one(bytes, &mut certs, &mut problems);
    }
    (certs, problems)
}

/// The SHA-256 pins for `file_name` in `keyring_dir/pinned.sha256`; an absent file pins
/// nothing.
///
/// # Errors
///
/// A message naming the file when it cannot be read or has malformed lines.
pub fn pinned_hashes(
    keyring_dir: &Path,
    file_name: &str,
) -> Result<Vec<crate::verify::checksums::Entry>, String> {
    let path = keyring_dir.join("pinned.sha256");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    let (entries, bad) = crate::verify::checksums::parse(&text, 64);
    if let Some(b) = bad.first() {
        return Err(format!("{}: line {}: {}", path.display(), b.line, b.reason));
    }
    Ok(crate::verify::checksums::entries_for(&entries, file_name)
        .into_iter()
        .filter(|e| e.name.strip_prefix("./").unwrap_or(&e.name) == file_name)
        .cloned()
        .collect())
}
