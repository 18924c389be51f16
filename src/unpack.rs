//! Safe extraction of a verified archive into a fresh staging folder.
//!
//! The extractor is an `archive::Visitor`. It refuses, with the entry name and a stable
//! code, everything that could write outside the target or exhaust the disk: absolute
//! paths and `..` (`path-traversal`), backslashes and NUL (`bad-name`), a path through
//! an earlier symlink (`path-through-symlink`), symlinks and hard links that leave the
//! target (`symlink-escape`, `hardlink-escape`), duplicate names (`duplicate-entry`),
//! devices and FIFOs (`special-file`), and archives past the size, ratio or entry-count
//! limits (`too-large`, `ratio-exceeded`, `too-many-entries`). Files are created with
//! `O_NOFOLLOW` and `create_new`, so nothing is written through a link even if the
//! checks were wrong. setuid/setgid bits are dropped unless asked for.
//!
//! Verification, the private copy of the verified bytes, and the final rename are
//! `app.rs`'s job; this file only fills the staging folder.

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::archive::{Kind, Meta, Refusal, Visitor, WalkError};
use crate::inspect::Inspector;

/// Limits on what an archive may expand to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_size: u64,
    pub max_ratio: u64,
    pub max_entries: u64,
    pub keep_setuid: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: 8 << 30,
            max_ratio: 200,
            max_entries: crate::archive::DEFAULT_MAX_ENTRIES,
            keep_setuid: false,
        }
    }
}

/// Expansion ratios are only judged past this many bytes: tiny files compress absurdly
/// well and harm nobody.
const RATIO_FLOOR: u64 = 1 << 20;

/// Fills `root` (an empty staging folder) from an archive walk.
pub struct Extractor<'a> {
    root: PathBuf,
    limits: Limits,
    /// The archive's size on disk, for the overall ratio.
    archive_size: u64,
    inspector: &'a mut Inspector,
    seen: HashMap<PathBuf, bool>,
    symlinks: HashSet<PathBuf>,
    files: HashSet<PathBuf>,
    dir_modes: Vec<(PathBuf, u32)>,
    written: u64,
    entries: u64,
    buf: Vec<u8>,
}

impl<'a> Extractor<'a> {
    pub fn new(
        root: &Path,
        limits: Limits,
        archive_size: u64,
        inspector: &'a mut Inspector,
    ) -> Self {
        Extractor {
            root: root.to_path_buf(),
            limits,
            archive_size: archive_size.max(1),
            inspector,
            seen: HashMap::new(),
            symlinks: HashSet::new(),
            files: HashSet::new(),
            dir_modes: Vec::new(),
            written: 0,
            entries: 0,
            buf: vec![0u8; 256 * 1024],
        }
    }

    /// Sets directory modes last (deepest first), so that a read-only directory in the
    /// archive did not stop its own children from being written.
    ///
    /// # Errors
    ///
    /// The first failing `chmod`.
    pub fn finish(mut self) -> io::Result<u64> {
        self.dir_modes
            .sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
        for (p, mode) in &self.dir_modes {
            fs::set_permissions(self.root.join(p), fs::Permissions::from_mode(*mode))?;
        }
        Ok(self.written)
    }

    fn refuse(meta: &Meta, code: &'static str, message: impl Into<String>) -> WalkError {
        WalkError::Refused(Refusal {
            entry: meta.display_name(),
            code,
            message: message.into(),
        })
    }

    /// The entry's path relative to the root, or a refusal.
    fn relative_path(&self, meta: &Meta) -> Result<PathBuf, WalkError> {
        use std::os::unix::ffi::OsStrExt;
        let name = &meta.name;
        if name.contains(&0) || name.contains(&b'\\') {
            return Err(Self::refuse(
                meta,
                "bad-name",
                "the name holds a NUL or a backslash",
            ));
        }
        if name.first() == Some(&b'/') {
            return Err(Self::refuse(meta, "path-traversal", "absolute path"));
        }
        let mut rel = PathBuf::new();
        for part in name.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    return Err(Self::refuse(
                        meta,
                        "path-traversal",
                        "the path contains \"..\"",
                    ))
                }
                p => rel.push(std::ffi::OsStr::from_bytes(p)),
            }
        }
        if rel.as_os_str().is_empty() {
            return Err(Self::refuse(meta, "bad-name", "empty path"));
        }
        Ok(rel)
    }

    fn check_parents(&self, meta: &Meta, rel: &Path) -> Result<(), WalkError> {
        let mut p = PathBuf::new();
        let comps: Vec<Component> = rel.components().collect();
        for c in &comps[..comps.len().saturating_sub(1)] {
            p.push(c);
            if self.symlinks.contains(&p) {
                return Err(Self::refuse(
                    meta,
                    "path-through-symlink",
                    format!(
                        "a parent, {}, is a symlink in this archive",
                        crate::text::escape_os(p.as_os_str())
                    ),
                ));
            }
            if self.seen.get(&p) == Some(&false) {
                return Err(Self::refuse(
                    meta,
                    "duplicate-entry",
                    format!(
                        "a parent, {}, is a file in this archive",
                        crate::text::escape_os(p.as_os_str())
                    ),
                ));
            }
        }
        Ok(())
    }

    fn mkdirs(&mut self, rel: &Path) -> io::Result<()> {
        if let Some(parent) = rel.parent() {
            if !parent.as_os_str().is_empty() {
                fs::create_dir_all(self.root.join(parent))?;
            }
        }
        Ok(())
    }

    fn file_mode(&self, mode: u32) -> u32 {
        let m = mode & 0o7777;
        if self.limits.keep_setuid {
            m
        } else {
            m & !0o6000
        }
    }

    fn write_file(
        &mut self,
        meta: &Meta,
        rel: &Path,
        data: &mut dyn Read,
    ) -> Result<(), WalkError> {
        let budget = self.limits.max_size.saturating_sub(self.written);
        if meta.size > budget {
            return Err(Self::refuse(
                meta,
                "too-large",
                format!(
                    "declares {} bytes; the archive may expand to at most {} (--max-size)",
                    meta.size, self.limits.max_size
                ),
            ));
        }
        let path = self.root.join(rel);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc_o_nofollow())
            .open(&path)
            .map_err(WalkError::Io)?;
        let scan = self.inspector.begin(meta);
        let mut entry_written = 0u64;
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(WalkError::Io(e)),
            };
            entry_written += n as u64;
            self.written += n as u64;
            if self.written > self.limits.max_size {
                return Err(Self::refuse(
                    meta,
                    "too-large",
                    format!(
                        "the archive expands past {} bytes (--max-size)",
                        self.limits.max_size
                    ),
                ));
            }
            if let Some(c) = meta.compressed_size {
                if entry_written > RATIO_FLOOR
                    && entry_written > c.max(1).saturating_mul(self.limits.max_ratio)
                {
                    return Err(Self::refuse(
                        meta,
                        "ratio-exceeded",
                        format!(
                            "expands more than {}x its compressed size (--max-ratio)",
                            self.limits.max_ratio
                        ),
                    ));
                }
            }
            if self.written > RATIO_FLOOR
                && self.written > self.archive_size.saturating_mul(self.limits.max_ratio)
            {
                return Err(Self::refuse(
                    meta,
                    "ratio-exceeded",
                    format!(
                        "the archive expands more than {}x its size (--max-ratio)",
                        self.limits.max_ratio
                    ),
                ));
            }
            out.write_all(&self.buf[..n]).map_err(WalkError::Io)?;
            if scan {
                self.inspector.data(&self.buf[..n]);
            }
        }
        out.set_permissions(fs::Permissions::from_mode(self.file_mode(meta.mode)))
            .map_err(WalkError::Io)?;
        Ok(())
    }
}

/// `O_NOFOLLOW` on Linux and the BSDs; refuse to open through a final symlink.
fn libc_o_nofollow() -> i32 {
    #[cfg(target_os = "linux")]
    {
        0o400000
    }
    #[cfg(any(
        target_os = "macos",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd"
    ))]
    {
        0x0100
    }
    #[cfg(not(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd"
    )))]
    {
        0
    }
}

/// Resolves `target` lexically from `link_dir` (both relative to the root); `None` when
/// it leaves the root.
fn resolve_inside(link_dir: &Path, target: &Path) -> Option<PathBuf> {
    let mut out: Vec<Component> = link_dir.components().collect();
    for c in target.components() {
        match c {
            Component::Normal(_) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out.iter().collect())
}

impl Visitor for Extractor<'_> {
    fn entry(&mut self, meta: &Meta, data: &mut dyn Read) -> Result<(), WalkError> {
        use std::os::unix::ffi::OsStrExt;
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(Self::refuse(
                meta,
                "too-many-entries",
                format!(
                    "more than {} entries (--max-entries)",
                    self.limits.max_entries
                ),
            ));
        }
        let rel = self.relative_path(meta)?;
        self.check_parents(meta, &rel)?;
        let is_dir = meta.kind == Kind::Dir;
        if let Some(&was_dir) = self.seen.get(&rel) {
            // The same directory listed twice is harmless; anything else is the
            // "master key" ambiguity: two entries, one name, which one wins?
            if !(was_dir && is_dir) {
                return Err(Self::refuse(
                    meta,
                    "duplicate-entry",
                    "the name appears twice in the archive",
                ));
            }
            return Ok(());
        }
        self.seen.insert(rel.clone(), is_dir);
        match &meta.kind {
            Kind::Dir => {
                fs::create_dir_all(self.root.join(&rel)).map_err(WalkError::Io)?;
                self.dir_modes.push((rel, (meta.mode & 0o777) | 0o700));
                self.inspector.begin(meta);
            }
            Kind::File => {
                self.mkdirs(&rel).map_err(WalkError::Io)?;
                self.write_file(meta, &rel, data)?;
                self.files.insert(rel);
            }
            Kind::Symlink(target) => {
                let t = Path::new(std::ffi::OsStr::from_bytes(target));
                if target.is_empty() || target.contains(&0) {
                    return Err(Self::refuse(
                        meta,
                        "bad-name",
                        "empty or NUL symlink target",
                    ));
                }
                let dir = rel.parent().unwrap_or(Path::new(""));
                if t.is_absolute() || resolve_inside(dir, t).is_none() {
                    return Err(Self::refuse(
                        meta,
                        "symlink-escape",
                        format!(
                            "points outside the target: {}",
                            crate::text::escape_os(t.as_os_str())
                        ),
                    ));
                }
                self.mkdirs(&rel).map_err(WalkError::Io)?;
                std::os::unix::fs::symlink(t, self.root.join(&rel)).map_err(WalkError::Io)?;
                self.symlinks.insert(rel);
                self.inspector.begin(meta);
            }
            Kind::Hardlink(target) => {
                let t = Path::new(std::ffi::OsStr::from_bytes(target));
                let resolved = if t.is_absolute() {
                    None
                } else {
                    resolve_inside(Path::new(""), t)
                };
                let Some(resolved) = resolved else {
                    return Err(Self::refuse(
                        meta,
                        "hardlink-escape",
                        format!(
                            "links outside the target: {}",
                            crate::text::escape_os(t.as_os_str())
                        ),
                    ));
                };
                if !self.files.contains(&resolved) {
                    return Err(Self::refuse(
                        meta,
                        "hardlink-escape",
                        format!(
                            "links to {}, which is not a file extracted earlier from this archive",
                            crate::text::escape_os(t.as_os_str())
                        ),
                    ));
                }
                self.mkdirs(&rel).map_err(WalkError::Io)?;
                fs::hard_link(self.root.join(&resolved), self.root.join(&rel))
                    .map_err(WalkError::Io)?;
                self.files.insert(rel);
                self.inspector.begin(meta);
            }
            Kind::Special(what) => {
                return Err(Self::refuse(
                    meta,
                    "special-file",
                    format!("a {what} is never extracted"),
                ));
            }
        }
        Ok(())
    }

    fn max_entries(&self) -> u64 {
        self.limits.max_entries
    }
}

/// Walks an archive for `inspect`: every file's bytes go to the inspector, nothing is
/// written.
pub struct InspectOnly<'a> {
    pub inspector: &'a mut Inspector,
    buf: Vec<u8>,
}

impl<'a> InspectOnly<'a> {
    pub fn new(inspector: &'a mut Inspector) -> Self {
        InspectOnly {
            inspector,
            buf: vec![0u8; 256 * 1024],
        }
    }
}

impl Visitor for InspectOnly<'_> {
    fn entry(&mut self, meta: &Meta, data: &mut dyn Read) -> Result<(), WalkError> {
        if !self.inspector.begin(meta) {
            return Ok(());
        }
        let mut scanned = 0usize;
        while scanned < crate::inspect::SCAN_LIMIT {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(WalkError::Io(e)),
            };
            scanned += n;
            self.inspector.data(&self.buf[..n]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_resolution() {
        for (dir, target, want) in [
            ("a/b", "../c", Some("a/c")),
            ("a", "../../etc", None),
            ("", "x/./y", Some("x/y")),
            ("", "/etc/passwd", None),
            ("a/b", "../../..", None),
        ] {
            let got = resolve_inside(Path::new(dir), Path::new(target));
            assert_eq!(got.as_deref(), want.map(Path::new), "{dir} -> {target}");
        }
    }
}
