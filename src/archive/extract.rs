//! Safe extraction of a verified archive into a fresh staging folder.
//!
//! The extractor is an `archive::Visitor`. It refuses, with the entry name and a stable
//! code, everything that could write outside the target or exhaust the disk: absolute
//! paths and `..` (`path-traversal`), backslashes and NUL (`bad-name`), a path through
//! a symlink of the archive (`path-through-symlink`), symlinks and hard links that leave
//! the target (`symlink-escape`, `hardlink-escape`) or loop (`symlink-loop`), duplicate
//! names (`duplicate-entry`), devices and FIFOs (`special-file`), and archives past the
//! size, ratio or entry-count limits (`too-large`, `ratio-exceeded`, `too-many-entries`).
//!
//! Links are judged as the kernel will follow them, through the links the archive
//! itself makes (`tree.rs` models the tree). Symlinks are created last, once the whole
//! archive is known and every one resolves inside, as GNU tar delays them; until then
//! no entry's parent is a link. Files are created with `O_NOFOLLOW` and `create_new`,
//! so nothing is written through a link even if the checks were wrong. setuid/setgid
//! bits are dropped unless asked for.
//!
//! The inspector (`inspect`) is the other visitor: it models the same tree, so that
//! links which would be refused here are reported there.
//!
//! Verification, the private copy of the verified bytes, and the final rename are the
//! `unpack` command's job (`cmd/verify.rs`); this file only fills the staging folder,
//! and feeds each file's bytes to the inspector as it writes them.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::archive::inspect::Inspector;
use crate::archive::tree::{
    node_cap, normal_path, shown_target, where_to, Added, Clash, Entry, NodeId, Tree, Unresolved,
    NODES_PER_ENTRY,
};
use crate::archive::walk::{Kind, Meta, Part, Refusal, Visitor, WalkError};

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
            max_entries: crate::archive::walk::DEFAULT_MAX_ENTRIES,
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
    tree: Tree,
    /// Symlinks, created once the whole archive is known.
    links: Vec<NodeId>,
    dir_modes: Vec<(PathBuf, u32)>,
    written: u64,
    /// Declared bytes of package control entries, inspected and not written.
    control: u64,
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
            tree: Tree::new(node_cap(limits.max_entries)),
            links: Vec::new(),
            dir_modes: Vec::new(),
            written: 0,
            control: 0,
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

    /// The entry's path relative to the root, or a refusal.
    fn relative_path(&self, meta: &Meta) -> Result<PathBuf, WalkError> {
        normal_path(&meta.name).map_err(|(code, why)| refuse(meta, code, why))
    }

    fn clash(meta: &Meta, clash: Clash) -> WalkError {
        let shown = |p: PathBuf| crate::text::escape_os(p.as_os_str());
        match clash {
            Clash::ParentSymlink(p) => refuse(
                meta,
                "path-through-symlink",
                format!("a parent, {}, is a symlink in this archive", shown(p)),
            ),
            Clash::ParentFile(p) => refuse(
                meta,
                "duplicate-entry",
                format!("a parent, {}, is a file in this archive", shown(p)),
            ),
            Clash::Exists => refuse(
                meta,
                "duplicate-entry",
                "the name appears twice in the archive",
            ),
            Clash::ImpliedDir => refuse(
                meta,
                "duplicate-entry",
                "the name is a folder that earlier entries went into",
            ),
            Clash::Full(n) => refuse(
                meta,
                "too-many-entries",
                format!(
                    "the names make more than {n} files, folders and links \
                     ({NODES_PER_ENTRY} per entry of --max-entries)"
                ),
            ),
        }
    }

    /// The file a hard link's target names, through the links made so far.
    fn hardlink_source(&self, meta: &Meta, target: &[u8]) -> Result<PathBuf, WalkError> {
        match self.tree.hardlink_source(target) {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(refuse(
                meta,
                "hardlink-escape",
                format!(
                    "links to {}, which is not a file extracted earlier from this archive",
                    shown_target(target)
                ),
            )),
            Err(why) => Err(refuse(
                meta,
                link_code(&why, "hardlink-escape"),
                format!("links to {}", where_to(target, &why, "the target")),
            )),
        }
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
            let why = format!(
                "declares {} bytes; the archive may expand to at most {} (--max-size)",
                meta.size, self.limits.max_size
            );
            return Err(refuse(meta, "too-large", why));
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
                let why = format!(
                    "the archive expands past {} bytes (--max-size)",
                    self.limits.max_size
                );
                return Err(refuse(meta, "too-large", why));
            }
            if let Some(c) = meta.compressed_size {
                if entry_written > RATIO_FLOOR
                    && entry_written > c.max(1).saturating_mul(self.limits.max_ratio)
                {
                    let why = format!(
                        "expands more than {}x its compressed size (--max-ratio)",
                        self.limits.max_ratio
                    );
                    return Err(refuse(meta, "ratio-exceeded", why));
                }
            }
            if self.written > RATIO_FLOOR
                && self.written > self.archive_size.saturating_mul(self.limits.max_ratio)
            {
                let why = format!(
                    "the archive expands more than {}x its size (--max-ratio)",
                    self.limits.max_ratio
                );
                return Err(refuse(meta, "ratio-exceeded", why));
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

/// Refuses `meta`'s entry with a stable `code` and why.
fn refuse(meta: &Meta, code: &'static str, message: impl Into<String>) -> WalkError {
    WalkError::Refused(Refusal {
        entry: meta.display_name(),
        code,
        message: message.into(),
    })
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

/// Loops have their own code; escapes the one given.
fn link_code(why: &Unresolved, escape: &'static str) -> &'static str {
    match why {
        Unresolved::Escape(_) => escape,
        Unresolved::Loop | Unresolved::Tangled => "symlink-loop",
    }
}

impl Visitor for Extractor<'_> {
    fn entry(&mut self, meta: &Meta, data: &mut dyn Read) -> Result<(), WalkError> {
        if meta.part == Part::Control {
            // Control data (maintainer scripts, scriptlets) is what the package manager
            // runs, not what installs: reviewed, never written. Its declared size still
            // counts, so a bomb there is refused like one in the payload.
            self.control = self.control.saturating_add(meta.size);
            if self.control > self.limits.max_size {
                let why = format!(
                    "the package expands past {} bytes (--max-size)",
                    self.limits.max_size
                );
                return Err(refuse(meta, "too-large", why));
            }
            return self.inspector.scan(meta, data);
        }
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            let why = format!(
                "more than {} entries (--max-entries)",
                self.limits.max_entries
            );
            return Err(refuse(meta, "too-many-entries", why));
        }
        let rel = self.relative_path(meta)?;
        // Before the tree records the entry: a hard link to itself names nothing.
        let source = match &meta.kind {
            Kind::Hardlink(target) => Some(self.hardlink_source(meta, target)?),
            _ => None,
        };
        if let Kind::Symlink(target) = &meta.kind {
            if target.is_empty() || target.contains(&0) {
                return Err(refuse(meta, "bad-name", "empty or NUL symlink target"));
            }
        }
        let node = match &meta.kind {
            Kind::Dir => Entry::Dir,
            Kind::Symlink(target) => Entry::Symlink(target),
            _ => Entry::File,
        };
        let id = match self.tree.insert(&rel, node) {
            Ok(Added::New(id)) => id,
            // The same directory listed twice is harmless; anything else is the
            // "master key" ambiguity: two entries, one name, which one wins?
            Ok(Added::DirAgain) => return Ok(()),
            Err(clash) => return Err(Self::clash(meta, clash)),
        };
        match &meta.kind {
            Kind::Dir => {
                fs::create_dir_all(self.root.join(&rel)).map_err(WalkError::Io)?;
                self.dir_modes.push((rel, (meta.mode & 0o777) | 0o700));
                self.inspector.begin(meta);
            }
            Kind::File => {
                self.mkdirs(&rel).map_err(WalkError::Io)?;
                self.write_file(meta, &rel, data)?;
            }
            Kind::Symlink(_) => {
                // Made in `end`, once every link of the archive is known.
                self.mkdirs(&rel).map_err(WalkError::Io)?;
                self.links.push(id);
                self.inspector.begin(meta);
            }
            Kind::Hardlink(_) => {
                let source = source.expect("resolved above");
                self.mkdirs(&rel).map_err(WalkError::Io)?;
                fs::hard_link(self.root.join(&source), self.root.join(&rel))
                    .map_err(WalkError::Io)?;
                self.inspector.begin(meta);
            }
            Kind::Special(what) => {
                let why = format!("a {what} is never extracted");
                return Err(refuse(meta, "special-file", why));
            }
        }
        Ok(())
    }

    /// Judges every symlink on the whole tree, then creates them: a link may go through
    /// links that came after it.
    fn end(&mut self) -> Result<(), WalkError> {
        use std::os::unix::ffi::OsStrExt;
        for &link in &self.links {
            if let Err(why) = self.tree.check_symlink(link) {
                let target = self.tree.symlink_target(link);
                return Err(WalkError::Refused(Refusal {
                    entry: crate::text::escape_os(self.tree.path(link).as_os_str()),
                    code: link_code(&why, "symlink-escape"),
                    message: format!("points to {}", where_to(target, &why, "the target")),
                }));
            }
        }
        for &link in &self.links {
            std::os::unix::fs::symlink(
                std::ffi::OsStr::from_bytes(self.tree.symlink_target(link)),
                self.root.join(self.tree.path(link)),
            )
            .map_err(WalkError::Io)?;
        }
        Ok(())
    }

    fn max_entries(&self) -> u64 {
        self.limits.max_entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::inspect::FindingKind;

    fn entry(name: &str, part: Part, size: u64) -> Meta {
        Meta {
            name: name.as_bytes().to_vec(),
            kind: Kind::File,
            mode: 0o755,
            size,
            compressed_size: None,
            part,
            owner: None,
        }
    }

    #[test]
    fn control_entries_are_inspected_never_written_and_counted() {
        let root = std::env::temp_dir().join(format!("vg-extract-{}", std::process::id()));
        fs::create_dir_all(&root).unwrap();
        let mut inspector = Inspector::new();
        let limits = Limits {
            max_size: 100,
            ..Limits::default()
        };
        let mut ex = Extractor::new(&root, limits, 10, &mut inspector);
        let script = b"systemctl enable acme.service\n";
        let postinst = entry("control/postinst", Part::Control, script.len() as u64);
        ex.entry(&postinst, &mut &script[..]).unwrap();
        let payload = entry("usr/bin/acme", Part::Payload, 2);
        ex.entry(&payload, &mut &b"hi"[..]).unwrap();
        // Control bytes count toward the size limit, though nothing is written.
        let bomb = entry("control/preinst", Part::Control, 1000);
        let refused = ex.entry(&bomb, &mut io::empty()).unwrap_err();
        assert_eq!(refused.code(), "too-large");
        assert_eq!(ex.finish().unwrap(), 2);
        let written: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(written, ["usr"], "only the payload is written");
        let kinds: Vec<_> = inspector.finish().iter().map(|f| f.kind).collect();
        assert!(kinds.contains(&FindingKind::MaintainerScript), "{kinds:?}");
        assert!(kinds.contains(&FindingKind::PrivilegedCommand), "{kinds:?}");
        fs::remove_dir_all(&root).unwrap();
    }
}
