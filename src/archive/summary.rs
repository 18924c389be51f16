//! One walk over a bundle that collects everything `diff` and `preflight` compare:
//! every entry with its size, mode and SHA-256, the inspector's findings (the
//! [`Inspector`] sees the same entries as for `inspect`, links modelled and all),
//! configuration files flattened into keys (`config_keys`), and the lines' signals
//! (`signals`).
//!
//! The [`Summarizer`] is a [`Visitor`]: each file's bytes go through one reader that
//! hashes all of them and copies the first [`CONFIG_SCAN_LIMIT`] of a configuration
//! file; the inspector (collecting signals) reads from that same reader, and whatever
//! it leaves is drained to finish the hash.
//! Memory grows with the entry count only (one row per entry, names capped by the
//! walker) and with keys and signals up to [`MAX_CONFIG_KEYS`] and its own caps. It
//! compares nothing and knows no host.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::archive::config_keys::{self, ConfigFormat};
use crate::archive::inspect::{Finding, Inspector, ReadLimits};
pub use crate::archive::signals::Entry;
use crate::archive::signals::{entry_path, Signals};
use crate::archive::walk::{self, Kind, Meta, Visitor, WalkError};
use crate::policy::{CONFIG_SCAN_LIMIT, MAX_CONFIG_KEYS};

/// Everything one walk learned about a bundle. Paths are raw (unescaped) archive
/// names without a leading `./`; a package's control entries start `control:`.
#[derive(Debug)]
pub struct Summary {
    pub entries: BTreeMap<String, Entry>,
    pub findings: Vec<Finding>,
    /// (path, dotted key) → value.
    pub config: BTreeMap<(String, String), String>,
    pub signals: Signals,
    /// What was not read in full, one sentence each (caps hit, files not parsed).
    pub notes: Vec<String>,
}

/// Walks `file` once; hashes every file when `hash` (`diff` compares contents,
/// `preflight` does not).
///
/// # Errors
///
/// The archive could not be read, or its entries declare more than `limits` allow.
pub fn summarize(file: &mut File, limits: ReadLimits, hash: bool) -> Result<Summary, WalkError> {
    let mut s = Summarizer {
        hash,
        inspector: Inspector::with_limits(limits).with_signals(),
        hashes: BTreeMap::new(),
        config: BTreeMap::new(),
        notes: Vec::new(),
        keys_capped: false,
    };
    walk::walk(file, &mut s)?;
    if s.keys_capped {
        s.notes.push(format!(
            "more than {MAX_CONFIG_KEYS} configuration keys: the rest were not compared"
        ));
    }
    let (findings, signals) = s.inspector.finish_with_signals();
    let mut summary = Summary::from_inspection(findings, signals, s.notes);
    for (path, (bytes, hash)) in s.hashes {
        if let Some(entry) = summary.entries.get_mut(&path) {
            entry.size = bytes;
            entry.content = hash;
        }
    }
    summary.config = s.config;
    Ok(summary)
}

impl Summary {
    /// A summary without hashes or configuration keys, from an inspector that
    /// collected signals (`unpack`'s, fed by the extractor).
    pub fn from_inspection(
        findings: Vec<Finding>,
        mut signals: Signals,
        mut notes: Vec<String>,
    ) -> Summary {
        if signals.capped {
            notes.push("too many lines of interest: the rest were not checked".to_string());
        }
        Summary {
            entries: std::mem::take(&mut signals.entries),
            findings,
            config: BTreeMap::new(),
            signals,
            notes,
        }
    }
}

struct Summarizer {
    hash: bool,
    inspector: Inspector,
    /// Per file: the bytes read and their SHA-256.
    hashes: BTreeMap<String, (u64, String)>,
    config: BTreeMap<(String, String), String>,
    notes: Vec<String>,
    keys_capped: bool,
}

impl Visitor for Summarizer {
    fn entry(&mut self, meta: &Meta, data: &mut dyn Read) -> Result<(), WalkError> {
        if meta.kind != Kind::File {
            return self.inspector.entry(meta, data);
        }
        let path = entry_path(meta);
        let format = config_keys::format_of(&path);
        let mut tee = Tee {
            inner: data,
            hasher: self.hash.then(Sha256::new),
            bytes: 0,
            config: format.map(|_| Vec::new()),
        };
        self.inspector.entry(meta, &mut tee)?;
        if self.hash {
            // The inspector stops at its scan limit; the hash needs every byte.
            let mut buf = vec![0; 256 * 1024];
            loop {
                match tee.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(WalkError::Io(e)),
                }
            }
        }
        let hash = tee
            .hasher
            .map(|h| format!("{:x}", h.finalize()))
            .unwrap_or_default();
        self.hashes.insert(path.clone(), (tee.bytes, hash));
        if let (Some(format), Some(bytes)) = (format, tee.config) {
            self.keys(&path, format, &bytes, tee.bytes > CONFIG_SCAN_LIMIT as u64);
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), WalkError> {
        self.inspector.end()
    }
}

impl Summarizer {
    fn keys(&mut self, path: &str, format: ConfigFormat, bytes: &[u8], truncated: bool) {
        let room = MAX_CONFIG_KEYS.saturating_sub(self.config.len());
        let flat = config_keys::flatten(format, bytes, truncated, room);
        self.keys_capped |= flat.capped;
        if let Some(problem) = flat.problem {
            self.notes
                .push(format!("{}: {problem}", crate::text::escape(path)));
        }
        for (key, value) in flat.keys {
            self.config.insert((path.to_string(), key), value);
        }
    }
}

/// What one file's bytes feed besides the inspector: the hash, and the first bytes of
/// a configuration file.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    hasher: Option<Sha256>,
    bytes: u64,
    config: Option<Vec<u8>>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.bytes += n as u64;
        if let Some(config) = &mut self.config {
            let room = CONFIG_SCAN_LIMIT.saturating_sub(config.len());
            config.extend_from_slice(&buf[..n.min(room)]);
        }
        Ok(n)
    }
}
