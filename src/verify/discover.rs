//! Where a bundle's signature is: the discovery order of the contract.
//!
//! First found wins: `--signature FILE`; an `.rpm` package (by its magic bytes), whose
//! signatures are in its own signature header; `BUNDLE.asc`, `BUNDLE.sig`, `BUNDLE.gpg`; a
//! signed `SHA256SUMS` manifest in the bundle's folder that lists the bundle; the bundle
//! itself when it is a `.deb` (its `_gpgorigin` member, looked for by the verifier);
//! the bundle itself when it is an inline or cleartext-signed message (an apt
//! `InRelease`), also when text precedes its armor line (the verifier then rejects that
//! text). This file only looks at names and a few leading bytes; it verifies nothing.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::verify::checksums;
use crate::verify::sigfile::{sniff, Sniff};

/// Extensions of detached signatures, in the order they are tried.
pub const DETACHED_EXTENSIONS: &[&str] = &["asc", "sig", "gpg"];

/// Where the signature over a bundle was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A detached signature over the bundle's bytes.
    Detached { signature: PathBuf },
    /// A checksum manifest listing the bundle, signed by a detached signature
    /// (`signature: Some`) or cleartext-signed itself (`signature: None`).
    Manifest {
        manifest: PathBuf,
        signature: Option<PathBuf>,
    },
    /// The bundle is a signed message itself.
    Inline,
    /// A `.deb` (an ar archive), whose signature may be a member of its own
    /// (`_gpgorigin`); `looked_at` and `skipped` as for `None` when it has none.
    Embedded {
        looked_at: Vec<PathBuf>,
        skipped: Vec<Skipped>,
    },
    /// A `.deb` vouched for by a signed apt release through its index
    /// (`--release`, `--index`): not discovered, given.
    Repository,
    /// The bundle is an `.rpm` package, signed (or not) in its signature header.
    Rpm,
    /// Nothing found; `looked_at` says where we looked, `skipped` what we passed over.
    None {
        looked_at: Vec<PathBuf>,
        skipped: Vec<Skipped>,
    },
}

/// A manifest that was found but passed over during discovery, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// `SHA256SUMS` with no detached signature beside it that is not cleartext-signed.
    Unsigned { manifest: PathBuf },
    /// A signed manifest that does not list the bundle (`not-in-manifest`).
    NotListed {
        manifest: PathBuf,
        file_name: String,
    },
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::Unsigned { manifest } => write!(
                f,
                "{} has no detached signature (.asc/.sig/.gpg) and is not cleartext-signed",
                manifest.display()
            ),
            Skipped::NotListed {
                manifest,
                file_name,
            } => write!(
                f,
                "{} does not list {}",
                manifest.display(),
                crate::text::escape(file_name)
            ),
        }
    }
}

impl Source {
    /// A short stable name for reports: `detached`, `manifest`, `inline`, `embedded`,
    /// `release`, `rpm`, `none`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Detached { .. } => "detached",
            Source::Manifest { .. } => "manifest",
            Source::Inline => "inline",
            Source::Repository => "release",
            Source::Embedded { .. } => "embedded",
            Source::Rpm => "rpm",
            Source::None { .. } => "none",
        }
    }
}

/// Finds the signature source for `bundle`. `head` is the bundle's first bytes, read
/// through the caller's handle.
pub fn find(bundle: &Path, explicit: Option<&Path>, head: &[u8]) -> Source {
    if let Some(sig) = explicit {
        return Source::Detached {
            signature: sig.to_path_buf(),
        };
    }
    // A package carries its signatures: a stray BUNDLE.asc beside it does not replace
    // them (`--signature` does, explicitly).
    if crate::package::rpm::detect(head) {
        return Source::Rpm;
    }
    let mut looked_at = Vec::new();
    let mut skipped = Vec::new();
    for ext in DETACHED_EXTENSIONS {
        let candidate = append_extension(bundle, ext);
        if candidate.is_file() {
            return Source::Detached {
                signature: candidate,
            };
        }
        looked_at.push(candidate);
    }

    let dir = match bundle.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file_name != "SHA256SUMS" && file_name != "SHA256SUMS.asc" {
        if let Some(found) = find_manifest(&dir, &file_name, &mut looked_at, &mut skipped) {
            return found;
        }
    }

    if head.starts_with(crate::package::ar::MAGIC) {
        return Source::Embedded { looked_at, skipped };
    }
    match sniff(head) {
        Sniff::Cleartext | Sniff::Message => Source::Inline,
        // Text before a signed message's armor line: the verifier names it as unsigned
        // content rather than report that no signature exists.
        Sniff::Other
            if matches!(
                crate::verify::framing::Layout::of(head),
                crate::verify::framing::Layout::Cleartext | crate::verify::framing::Layout::Armored
            ) =>
        {
            Source::Inline
        }
        _ => Source::None { looked_at, skipped },
    }
}

fn find_manifest(
    dir: &Path,
    file_name: &str,
    looked_at: &mut Vec<PathBuf>,
    skipped: &mut Vec<Skipped>,
) -> Option<Source> {
    let sums = dir.join("SHA256SUMS");
    let sums_asc = dir.join("SHA256SUMS.asc");
    let mut candidates = Vec::new();
    if sums.is_file() {
        // A detached signature beside it, else SHA256SUMS itself cleartext-signed.
        let detached = DETACHED_EXTENSIONS
            .iter()
            .map(|e| append_extension(&sums, e))
            .find(|p| p.is_file() && sniff(&head_of(p)) == Sniff::Signature);
        match detached {
            Some(sig) => candidates.push((sums.clone(), Some(sig))),
            None if sniff(&head_of(&sums)) == Sniff::Cleartext => {
                candidates.push((sums.clone(), None))
            }
            None => skipped.push(Skipped::Unsigned {
                manifest: sums.clone(),
            }),
        }
    } else {
        looked_at.push(sums.clone());
    }
    if sums_asc.is_file() && sniff(&head_of(&sums_asc)) == Sniff::Cleartext {
        candidates.push((sums_asc, None));
    }
    for (manifest, signature) in candidates {
        if lists(&manifest, file_name) {
            return Some(Source::Manifest {
                manifest,
                signature,
            });
        }
        skipped.push(Skipped::NotListed {
            manifest,
            file_name: file_name.to_string(),
        });
    }
    None
}

/// Whether a manifest file has a line naming `file_name`. This is a cheap look before
/// verification; the verified manifest is parsed again from the signed bytes.
fn lists(manifest: &Path, file_name: &str) -> bool {
    let Ok(text) = read_prefix(manifest, crate::policy::MAX_MANIFEST) else {
        return false;
    };
    let text = String::from_utf8_lossy(&text);
    let (entries, _) = checksums::parse(&text, 64);
    !checksums::entries_for(&entries, file_name).is_empty()
}

fn head_of(path: &Path) -> Vec<u8> {
    read_prefix(path, 512).unwrap_or_default()
}

fn read_prefix(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.take(limit).read_to_end(&mut buf)?;
    Ok(buf)
}

/// `name.zip` + `asc` = `name.zip.asc`.
pub fn append_extension(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}
