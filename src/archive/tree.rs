//! The tree an archive makes, modelled in memory so that its links are judged the way
//! the kernel will follow them, not as text.
//!
//! Entries go in as nodes, with the folders their names imply. A link's target is
//! resolved component by component from its folder, following the links the archive
//! itself makes: `..` applies to what a link resolved to (`up/..` with `up -> ..` is the
//! parent of the parent), absolute targets leave the tree, and a lookup follows at most
//! 40 links, as Linux does, so loops end. A name the archive does not hold is taken as a
//! plain folder from there on: a dangling link is fine as long as it stays inside.
//! Links may point at links that come later, so symlinks are judged once the whole
//! archive is known; hard links, which need their file to exist already, when they come.
//!
//! This file touches no disk and refuses nothing: `normal_path` says what is wrong with
//! a name, and the extractor refuses it, refuses links that do not resolve inside and
//! creates the rest; the inspector reports them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Links the kernel follows in one lookup before it gives up (`ELOOP`).
pub const MAX_LINK_HOPS: usize = 40;

/// Components stepped through while resolving, over the whole archive. One lookup is
/// bounded (40 links of a few KiB each), but many long chains could still take minutes.
pub const STEP_BUDGET: u64 = 1 << 25;

/// A node of the tree.
pub type NodeId = usize;
const ROOT: NodeId = 0;

/// Names are shared between a node and its parent's map, and the map is boxed so that
/// files and links stay small: an archive may hold hundreds of thousands of entries.
#[allow(clippy::box_collection)]
enum NodeKind {
    /// `explicit` once the archive lists the folder itself, not only names below it.
    Dir {
        explicit: bool,
        children: Box<HashMap<Rc<[u8]>, NodeId>>,
    },
    File,
    Symlink(Box<[u8]>),
}

struct Node {
    parent: NodeId,
    name: Rc<[u8]>,
    kind: NodeKind,
}

/// What an entry adds. Hard links are files: they share one.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    Dir,
    File,
    Symlink(&'a [u8]),
}

/// A new node, or a folder listed again (harmless).
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    New(NodeId),
    DirAgain,
}

/// Why an entry does not fit the tree so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Clash {
    /// This parent is a symlink of the archive.
    ParentSymlink(PathBuf),
    /// This parent is a file of the archive.
    ParentFile(PathBuf),
    /// The name is taken.
    Exists,
    /// The name is a folder that earlier names implied.
    ImpliedDir,
    /// More nodes than the tree holds.
    Full(usize),
}

/// Why a target does not resolve inside.
#[derive(Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// It leaves the root; where to, written from the root (`../etc`, `/etc/passwd`),
    /// escaped for a terminal.
    Escape(String),
    /// More than [`MAX_LINK_HOPS`] links to follow: a loop, or a chain the kernel would
    /// not follow either.
    Loop,
    /// The archive's links took more than [`STEP_BUDGET`] steps to resolve.
    Tangled,
}

impl Unresolved {
    /// "resolves to ../etc (outside the target)", for a message after the target.
    pub fn explain(&self, outside: &str) -> String {
        match self {
            Unresolved::Escape(to) => format!("resolves to {to} (outside {outside})"),
            Unresolved::Loop => {
                format!("takes more than {MAX_LINK_HOPS} links to resolve (a loop)")
            }
            Unresolved::Tangled => format!(
                "was not resolved: the archive's links take more than {STEP_BUDGET} steps to resolve"
            ),
        }
    }
}

/// Where a resolution ends: the last node reached, and whether some name on the way was
/// missing or not a folder (the kernel would have stopped there).
struct Place {
    node: NodeId,
    lexical: bool,
}

/// The tree so far.
pub struct Tree {
    nodes: Vec<Node>,
    max_nodes: usize,
    steps: std::cell::Cell<u64>,
    step_budget: u64,
}

impl Tree {
    /// An empty tree that holds at most `max_nodes` files, folders and links.
    pub fn new(max_nodes: usize) -> Tree {
        Tree {
            nodes: vec![Node {
                parent: ROOT,
                name: Rc::from(&[][..]),
                kind: NodeKind::Dir {
                    explicit: true,
                    children: Box::default(),
                },
            }],
            max_nodes,
            steps: std::cell::Cell::new(0),
            step_budget: STEP_BUDGET,
        }
    }

    /// Adds the entry at `path` (normal components only), and the folders it implies.
    ///
    /// # Errors
    ///
    /// A [`Clash`] when a parent is a file or a symlink, or the name is taken.
    pub fn insert(&mut self, path: &Path, entry: Entry) -> Result<Added, Clash> {
        let comps: Vec<&[u8]> = path.iter().map(OsStr::as_bytes).collect();
        let Some((last, parents)) = comps.split_last() else {
            return Err(Clash::Exists);
        };
        let mut cur = ROOT;
        let mut prefix = PathBuf::new();
        for name in parents {
            prefix.push(OsStr::from_bytes(name));
            cur = match self.child(cur, name) {
                Some(id) => match self.nodes[id].kind {
                    NodeKind::Dir { .. } => id,
                    NodeKind::File => return Err(Clash::ParentFile(prefix)),
                    NodeKind::Symlink(_) => return Err(Clash::ParentSymlink(prefix)),
                },
                None => self.add(
                    cur,
                    name,
                    NodeKind::Dir {
                        explicit: false,
                        children: Box::default(),
                    },
                )?,
            };
        }
        if let Some(id) = self.child(cur, last) {
            return match (&mut self.nodes[id].kind, entry) {
                (NodeKind::Dir { explicit, .. }, Entry::Dir) if !*explicit => {
                    *explicit = true;
                    Ok(Added::New(id))
                }
                (NodeKind::Dir { .. }, Entry::Dir) => Ok(Added::DirAgain),
                (
                    NodeKind::Dir {
                        explicit: false, ..
                    },
                    _,
                ) => Err(Clash::ImpliedDir),
                _ => Err(Clash::Exists),
            };
        }
        let kind = match entry {
            Entry::Dir => NodeKind::Dir {
                explicit: true,
                children: Box::default(),
            },
            Entry::File => NodeKind::File,
            Entry::Symlink(t) => NodeKind::Symlink(t.into()),
        };
        self.add(cur, last, kind).map(Added::New)
    }

    fn add(&mut self, parent: NodeId, name: &[u8], kind: NodeKind) -> Result<NodeId, Clash> {
        // The root does not count.
        if self.nodes.len() > self.max_nodes {
            return Err(Clash::Full(self.max_nodes));
        }
        let id = self.nodes.len();
        let name: Rc<[u8]> = Rc::from(name);
        if let NodeKind::Dir { children, .. } = &mut self.nodes[parent].kind {
            children.insert(Rc::clone(&name), id);
        }
        self.nodes.push(Node { parent, name, kind });
        Ok(id)
    }

    fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        match &self.nodes[dir].kind {
            NodeKind::Dir { children, .. } => children.get(name).copied(),
            _ => None,
        }
    }

    /// Judges the symlink at `link`: its target, followed to the end from the link's
    /// folder, must stay inside.
    ///
    /// # Errors
    ///
    /// Where it escapes to, or that it loops.
    pub fn check_symlink(&self, link: NodeId) -> Result<(), Unresolved> {
        let NodeKind::Symlink(target) = &self.nodes[link].kind else {
            return Ok(());
        };
        // Using the link is its first hop.
        self.resolve(self.nodes[link].parent, target, true, 1)
            .map(|_| ())
    }

    /// The file a hard link's target names, resolved from the root through the links
    /// made so far (the last component is not followed, as with `link(2)`): its path
    /// without links, or `None` when it names no file of the archive.
    ///
    /// # Errors
    ///
    /// Where it escapes to, or that it loops.
    pub fn hardlink_source(&self, target: &[u8]) -> Result<Option<PathBuf>, Unresolved> {
        let place = self.resolve(ROOT, target, false, 0)?;
        if place.lexical || !matches!(self.nodes[place.node].kind, NodeKind::File) {
            return Ok(None);
        }
        Ok(Some(self.path(place.node)))
    }

    /// The node's path from the root (with no links on the way: parents are folders).
    pub fn path(&self, node: NodeId) -> PathBuf {
        let mut names = Vec::new();
        let mut at = node;
        while at != ROOT {
            names.push(OsStr::from_bytes(&self.nodes[at].name));
            at = self.nodes[at].parent;
        }
        names.iter().rev().collect()
    }

    /// A symlink's target as stored (empty for other nodes).
    pub fn symlink_target(&self, node: NodeId) -> &[u8] {
        match &self.nodes[node].kind {
            NodeKind::Symlink(t) => t,
            _ => &[],
        }
    }

    /// Resolves `target` from the folder `dir` as the kernel would, through the tree's
    /// links, `hops` links already followed.
    fn resolve(
        &self,
        dir: NodeId,
        target: &[u8],
        follow_final: bool,
        mut hops: usize,
    ) -> Result<Place, Unresolved> {
        if target.first() == Some(&b'/') {
            return Err(Unresolved::Escape(shown(target, &[])));
        }
        // Components still to walk, the next one last.
        let mut pending: Vec<&[u8]> = target.split(|&b| b == b'/').rev().collect();
        let mut cur = dir;
        // Names below `cur` that the archive does not hold, walked lexically.
        let mut missing = 0usize;
        // Whether any name on the way was missing or not a folder.
        let mut lexical = false;
        let mut steps = self.steps.get();
        let result = loop {
            let Some(c) = pending.pop() else {
                break Ok(Place { node: cur, lexical });
            };
            steps += 1;
            if steps > self.step_budget {
                break Err(Unresolved::Tangled);
            }
            match c {
                b"" | b"." => {}
                b".." if missing > 0 => missing -= 1,
                b".." if cur == ROOT => break Err(Unresolved::Escape(shown(b"..", &pending))),
                b".." => cur = self.nodes[cur].parent,
                _ if missing > 0 => missing += 1,
                name => match self.child(cur, name).map(|id| (id, &self.nodes[id].kind)) {
                    None => {
                        missing = 1;
                        lexical = true;
                    }
                    Some((id, NodeKind::Dir { .. })) => cur = id,
                    Some((id, NodeKind::File)) if pending.is_empty() => {
                        break Ok(Place { node: id, lexical })
                    }
                    // Not a folder: the kernel stops here; going on lexically is stricter.
                    Some((_, NodeKind::File)) => {
                        missing = 1;
                        lexical = true;
                    }
                    Some((id, NodeKind::Symlink(_))) if pending.is_empty() && !follow_final => {
                        break Ok(Place { node: id, lexical })
                    }
                    Some((_, NodeKind::Symlink(t))) => {
                        hops += 1;
                        if hops > MAX_LINK_HOPS {
                            break Err(Unresolved::Loop);
                        }
                        if t.first() == Some(&b'/') {
                            break Err(Unresolved::Escape(shown(t, &pending)));
                        }
                        // The target replaces the name, from the link's own folder (`cur`).
                        pending.extend(t.split(|&b| b == b'/').rev());
                    }
                },
            }
        };
        self.steps.set(steps);
        result
    }
}

/// `head` followed by the components still pending, for a message.
fn shown(head: &[u8], pending: &[&[u8]]) -> String {
    let mut out = head.to_vec();
    for c in pending
        .iter()
        .rev()
        .filter(|c| !c.is_empty() && **c != b".")
    {
        if !out.ends_with(b"/") {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    shown_target(&out)
}

// ---- names and messages shared by the extractor and the inspector ----------------

/// Names imply folders too: the tree holds this many nodes per entry allowed.
pub const NODES_PER_ENTRY: u64 = 4;

/// The nodes a tree may hold for an archive of at most `max_entries` entries.
pub fn node_cap(max_entries: u64) -> usize {
    usize::try_from(max_entries.saturating_mul(NODES_PER_ENTRY)).unwrap_or(usize::MAX)
}

/// The entry's path relative to the root, or the refusal's code and reason.
pub fn normal_path(name: &[u8]) -> Result<PathBuf, (&'static str, &'static str)> {
    if name.contains(&0) || name.contains(&b'\\') {
        return Err(("bad-name", "the name holds a NUL or a backslash"));
    }
    if name.first() == Some(&b'/') {
        return Err(("path-traversal", "absolute path"));
    }
    let mut rel = PathBuf::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(("path-traversal", "the path contains \"..\"")),
            p => rel.push(OsStr::from_bytes(p)),
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(("bad-name", "empty path"));
    }
    Ok(rel)
}

/// Bytes of a link target quoted in a message at most.
pub const SHOWN_TARGET: usize = 200;

/// A link target from the archive, escaped for messages, its first [`SHOWN_TARGET`]
/// bytes and "…" when longer: thousands of findings must not each print 4 KiB.
pub fn shown_target(target: &[u8]) -> String {
    if target.len() > SHOWN_TARGET {
        let head = String::from_utf8_lossy(&target[..SHOWN_TARGET]);
        return format!("{}…", crate::text::escape(&head));
    }
    crate::text::escape(&String::from_utf8_lossy(target))
}

/// "y/.., which resolves to .. (outside the target)", for a message.
pub fn where_to(target: &[u8], why: &Unresolved, outside: &str) -> String {
    if target.first() == Some(&b'/') {
        format!(
            "{} (an absolute path, outside {outside})",
            shown_target(target)
        )
    } else {
        format!("{}, which {}", shown_target(target), why.explain(outside))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum E {
        D(&'static str),
        F(&'static str),
        L(&'static str, &'static str),
    }
    use E::*;

    fn tree(entries: &[E]) -> (Tree, HashMap<&'static str, NodeId>) {
        let mut t = Tree::new(1000);
        let mut ids = HashMap::new();
        for e in entries {
            let (name, entry) = match e {
                D(n) => (n, Entry::Dir),
                F(n) => (n, Entry::File),
                L(n, target) => (n, Entry::Symlink(target.as_bytes())),
            };
            match t.insert(Path::new(name), entry) {
                Ok(Added::New(id)) => {
                    ids.insert(*name, id);
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        (t, ids)
    }

    /// Every link of `entries` judged: (link, None when inside, or the refusal).
    fn check(entries: &[E], want: &[(&str, Option<Unresolved>)]) {
        let (t, ids) = tree(entries);
        for (link, w) in want {
            let got = t.check_symlink(ids[link]).err();
            assert_eq!(&got, w, "{link}");
        }
    }

    fn esc(to: &str) -> Option<Unresolved> {
        Some(Unresolved::Escape(to.into()))
    }

    #[test]
    fn links_resolve_through_links() {
        check(
            &[L("y", "."), L("x", "y/..")],
            &[("y", None), ("x", esc(".."))],
        );
        check(
            &[L("a/up", ".."), L("b", "a/up/a/up/.."), L("c", "a/up/a")],
            &[("a/up", None), ("b", esc("..")), ("c", None)],
        );
        // Order does not matter: the tree is judged whole.
        check(&[L("x", "y/../etc"), L("y", ".")], &[("x", esc("../etc"))]);
        check(
            &[
                L("lib/so", "so.1"),
                L("lib/so.1", "so.1.2"),
                F("lib/so.1.2"),
            ],
            &[("lib/so", None), ("lib/so.1", None)],
        );
        check(
            &[
                L("usr/lib/acme", "../../current/so"),
                L("current", "lib"),
                F("lib/so"),
            ],
            &[("usr/lib/acme", None), ("current", None)],
        );
        // Dangling names are folders from there on.
        check(
            &[L("d", "nowhere/../.."), L("e", "nowhere/../x"), D("k")],
            &[("d", esc("..")), ("e", None)],
        );
        // Through a file: the kernel would stop; lexically it is judged all the same.
        check(
            &[F("f"), L("g", "f/../.."), L("h", "f/..")],
            &[("g", esc("..")), ("h", None)],
        );
        check(&[L("abs", "/etc/passwd")], &[("abs", esc("/etc/passwd"))]);
        check(
            &[L("etc", "/etc"), L("p", "etc/passwd")],
            &[("p", esc("/etc/passwd"))],
        );
        // `..` applies to where a link led, not to the text before it.
        check(
            &[D("a/b"), L("a/b/l", "../.."), L("m", "a/b/l/..")],
            &[("m", esc(".."))],
        );
    }

    #[test]
    fn loops_and_deep_chains_stop_at_forty_links() {
        check(&[L("s", "s")], &[("s", Some(Unresolved::Loop))]);
        check(
            &[L("a", "b"), L("b", "a")],
            &[("a", Some(Unresolved::Loop))],
        );
        // 40 links including the first is what the kernel follows; 41 is too many.
        let mut ok: Vec<E> = Vec::new();
        let names: Vec<&'static str> = (0..=41)
            .map(|i| &*Box::leak(format!("l{i}").into_boxed_str()))
            .collect();
        for i in 0..40 {
            ok.push(L(names[i], names[i + 1]));
        }
        ok.push(F("l40"));
        check(&ok, &[("l0", None), ("l1", None)]);
        let mut long = ok;
        long.pop();
        long.push(L("l40", "l41"));
        long.push(F("l41"));
        check(&long, &[("l0", Some(Unresolved::Loop)), ("l1", None)]);
    }

    #[test]
    fn hard_links_name_files_through_links() {
        let (t, _) = tree(&[
            F("lib/so.1"),
            L("current", "lib"),
            L("y", "."),
            L("x", "y/.."),
        ]);
        for (target, want) in [
            ("lib/so.1", Ok(Some(PathBuf::from("lib/so.1")))),
            ("current/so.1", Ok(Some(PathBuf::from("lib/so.1")))),
            ("./lib/../lib/so.1", Ok(Some(PathBuf::from("lib/so.1")))),
            ("current", Ok(None)),
            ("lib", Ok(None)),
            ("missing/../lib/so.1", Ok(None)),
            (
                "x/etc/passwd",
                Err(Unresolved::Escape("../etc/passwd".into())),
            ),
            ("/etc/shadow", Err(Unresolved::Escape("/etc/shadow".into()))),
        ] {
            assert_eq!(t.hardlink_source(target.as_bytes()), want, "{target}");
        }
    }

    #[test]
    fn clashes() {
        let mut t = Tree::new(4);
        let mut ins = |p: &str, e: Entry| t.insert(Path::new(p), e);
        assert!(matches!(ins("d/f", Entry::File), Ok(Added::New(_))));
        assert_eq!(ins("d", Entry::Symlink(b".")), Err(Clash::ImpliedDir));
        assert!(matches!(ins("d", Entry::Dir), Ok(Added::New(_))));
        assert_eq!(ins("d", Entry::Dir), Ok(Added::DirAgain));
        assert_eq!(ins("d/f", Entry::File), Err(Clash::Exists));
        assert_eq!(
            ins("d/f/g", Entry::File),
            Err(Clash::ParentFile("d/f".into()))
        );
        assert!(matches!(ins("l", Entry::Symlink(b"d")), Ok(Added::New(_))));
        assert_eq!(
            ins("l/g", Entry::File),
            Err(Clash::ParentSymlink("l".into()))
        );
        assert!(matches!(ins("e", Entry::File), Ok(Added::New(_))));
        assert_eq!(ins("g", Entry::File), Err(Clash::Full(4)));
    }

    #[test]
    fn the_step_budget_ends_tangled_archives() {
        // Forty links to a target of 2,000 components each: 80,000 steps per lookup.
        let long: &'static str = Box::leak("a/".repeat(2000).into_boxed_str());
        let mut t = Tree::new(10_000);
        t.step_budget = 1_000_000;
        t.insert(Path::new("l40"), Entry::Dir).unwrap();
        let mut links = Vec::new();
        for i in 0..40 {
            let target: &'static str = Box::leak(format!("l{}/{long}", i + 1).into_boxed_str());
            let Ok(Added::New(id)) = t.insert(
                Path::new(&format!("l{i}")),
                Entry::Symlink(target.as_bytes()),
            ) else {
                panic!()
            };
            links.push(id);
        }
        let mut last = Ok(());
        for _ in 0..20 {
            last = t.check_symlink(links[0]);
            if last.is_err() {
                break;
            }
        }
        assert_eq!(last, Err(Unresolved::Tangled));
    }
}
