//! Walking an `.rpm`: its scriptlets and triggers and a `conffiles` list from the
//! header as control entries, then the files of its cpio payload as payload entries,
//! with the modes, link targets and owners the header declares.
//!
//! The framing and header come from `package::rpm`. The payload is decompressed by
//! its magic bytes (gzip, xz, zstd, bzip2, or none) and read as cpio: `newc`
//! (`070701`, `070702`) entries, and rpm's stripped form for large files (`07070X`,
//! a file index into the header instead of a header of its own). Every cpio name
//! must be in the header's file list and of the type the header says, so what is
//! reviewed is what rpm installs; names and link targets are bounded like tar's. A
//! newc hard-link set stores its data with the last member: that member is handed on
//! as the file and the others as hard links to it. Deciding what is safe is the
//! visitors' job, as for every archive.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};

use crate::archive::walk::{
    corrupt, Kind, Meta, NameBudget, Owner, Part, Refusal, Visitor, WalkError, MAX_NAME,
};
use crate::package::rpm::{self as format, tag, Header, FILE_CONFIG};
use crate::policy::RPM_MAX_TRIGGER_SCRIPTS;

/// The scriptlets, in the order rpm runs them, with their interpreter tags.
const SCRIPTLETS: [(u32, u32, &str); 6] = [
    (tag::PRETRANS, tag::PRETRANSPROG, "%pretrans"),
    (tag::PREIN, tag::PREINPROG, "%pre"),
    (tag::POSTIN, tag::POSTINPROG, "%post"),
    (tag::PREUN, tag::PREUNPROG, "%preun"),
    (tag::POSTUN, tag::POSTUNPROG, "%postun"),
    (tag::POSTTRANS, tag::POSTTRANSPROG, "%posttrans"),
];

/// `TRIGGERFLAGS` bits and the scriptlet each one names.
const TRIGGERS: [(u32, &str); 4] = [
    (1 << 25, "%triggerprein"),
    (1 << 16, "%triggerin"),
    (1 << 17, "%triggerun"),
    (1 << 18, "%triggerpostun"),
];

/// One file of the header's list.
struct Declared {
    mode: u32,
    owner: Owner,
    config: bool,
    link: Vec<u8>,
    size: u64,
}

/// Walks the package in `file` from where it is (its start).
pub(crate) fn walk_rpm(file: &mut File, visitor: &mut dyn Visitor) -> Result<(), WalkError> {
    let mut r = BufReader::with_capacity(1 << 20, file);
    let pkg = format::read_package(&mut r).map_err(|e| match e {
        format::RpmError::Io(io) => WalkError::Io(io),
        other => corrupt(None, format!("rpm: {other}")),
    })?;
    let h = &pkg.header;
    let mut budget = NameBudget::default();
    let (names, files) = declared_files(h)?;
    control_entries(h, &names, &files, visitor, &mut budget)?;
    let index: HashMap<&[u8], usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_slice(), i))
        .collect();
    let payload = decompress(r)?;
    walk_cpio(payload, &names, &files, &index, visitor, &mut budget)
}

/// The header's file list: names without their leading `/`, and what each declares.
fn declared_files(h: &Header) -> Result<(Vec<Vec<u8>>, Vec<Declared>), WalkError> {
    let Some(base) = h.strings(tag::BASENAMES) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let n = base.len();
    let dirs = h.strings(tag::DIRNAMES).unwrap_or_default();
    let dir_index = h.ints(tag::DIRINDEXES).unwrap_or_default();
    let modes = h.ints(tag::FILEMODES).unwrap_or_default();
    let flags = h.ints(tag::FILEFLAGS).unwrap_or_default();
    let users = h.strings(tag::FILEUSERNAME).unwrap_or_default();
    let groups = h.strings(tag::FILEGROUPNAME).unwrap_or_default();
    let links = h.strings(tag::FILELINKTOS).unwrap_or_default();
    let sizes = h
        .ints(tag::LONGFILESIZES)
        .or_else(|| h.ints(tag::FILESIZES))
        .unwrap_or_default();
    let short = [
        dir_index.len(),
        modes.len(),
        users.len(),
        groups.len(),
        sizes.len(),
    ]
    .into_iter()
    .any(|l| l != n);
    if short {
        return Err(corrupt(
            None,
            "rpm: the header's file list tags disagree on the number of files",
        ));
    }
    let text = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(256)]).into_owned();
    let mut names = Vec::with_capacity(n);
    let mut files = Vec::with_capacity(n);
    for i in 0..n {
        let dir = dirs.get(dir_index[i] as usize).ok_or_else(|| {
            corrupt(
                None,
                format!(
                    "rpm: file {i} names directory {} of {}",
                    dir_index[i],
                    dirs.len()
                ),
            )
        })?;
        let full = [*dir, base[i]].concat();
        let bare = full.strip_prefix(b"/").unwrap_or(&full).to_vec();
        names.push(bare);
        files.push(Declared {
            mode: modes[i] as u32,
            owner: Owner {
                user: text(users[i]),
                group: text(groups[i]),
            },
            config: flags.get(i).is_some_and(|f| *f as u32 & FILE_CONFIG != 0),
            link: links.get(i).map(|l| l.to_vec()).unwrap_or_default(),
            size: sizes[i],
        });
    }
    Ok((names, files))
}

/// Scriptlets, triggers and the `conffiles` list, each a control entry.
fn control_entries(
    h: &Header,
    names: &[Vec<u8>],
    files: &[Declared],
    visitor: &mut dyn Visitor,
    budget: &mut NameBudget,
) -> Result<(), WalkError> {
    let mut emit = |name: String, body: Vec<u8>| -> Result<(), WalkError> {
        let meta = control_meta(name.into_bytes(), body.len() as u64);
        let shown = meta.display_name();
        budget.offer(visitor, &meta, &mut &body[..], &shown)
    };
    for (body_tag, prog_tag, name) in SCRIPTLETS {
        let body = h.string(body_tag);
        let prog = h.strings(prog_tag).unwrap_or_default();
        if body.is_none() && prog.is_empty() {
            continue;
        }
        emit(name.into(), script(&prog, body.unwrap_or_default()))?;
    }
    if let Some(scripts) = h.strings(tag::TRIGGERSCRIPTS) {
        let progs = h.strings(tag::TRIGGERSCRIPTPROG).unwrap_or_default();
        let targets = h.strings(tag::TRIGGERNAME).unwrap_or_default();
        let flags = h.ints(tag::TRIGGERFLAGS).unwrap_or_default();
        let which = h.ints(tag::TRIGGERINDEX).unwrap_or_default();
        if scripts.len() > RPM_MAX_TRIGGER_SCRIPTS {
            return Err(WalkError::Refused(Refusal {
                entry: "%trigger".into(),
                code: "too-large",
                message: format!(
                    "the header declares {} trigger scripts, more than the {RPM_MAX_TRIGGER_SCRIPTS} read",
                    scripts.len()
                ),
            }));
        }
        // The first condition that runs each script names it: one pass over the
        // conditions, not one per script.
        let mut first: Vec<Option<usize>> = vec![None; scripts.len()];
        for (c, w) in which.iter().enumerate() {
            if let Some(slot @ None) = usize::try_from(*w).ok().and_then(|w| first.get_mut(w)) {
                *slot = Some(c);
            }
        }
        for (i, body) in scripts.iter().enumerate() {
            let cond = first[i];
            let kind = cond
                .and_then(|c| flags.get(c))
                .and_then(|f| TRIGGERS.iter().find(|(bit, _)| *f as u32 & bit != 0))
                .map_or("%trigger", |(_, n)| *n);
            let target = cond
                .and_then(|c| targets.get(c))
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .filter(|t| !t.contains('/') && !t.is_empty());
            let name = match target {
                Some(t) => format!("{kind} -- {t}"),
                None => kind.to_string(),
            };
            let prog = progs.get(i).map(|p| vec![*p]).unwrap_or_default();
            emit(name, script(&prog, body))?;
        }
    }
    let conffiles: Vec<u8> = names
        .iter()
        .zip(files)
        .filter(|(_, f)| f.config)
        .flat_map(|(n, _)| [b"/".as_slice(), n, b"\n"].concat())
        .collect();
    if !conffiles.is_empty() {
        emit("conffiles".into(), conffiles)?;
    }
    Ok(())
}

/// A scriptlet as a file: its interpreter as a `#!` line, then its body.
fn script(prog: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if !prog.is_empty() {
        out.extend_from_slice(b"#!");
        out.extend_from_slice(&prog.join(&b' '));
        out.push(b'\n');
    }
    out.extend_from_slice(body);
    out
}

fn control_meta(name: Vec<u8>, size: u64) -> Meta {
    Meta {
        name,
        kind: Kind::File,
        mode: 0o644,
        size,
        compressed_size: None,
        part: Part::Control,
        owner: None,
    }
}

/// The payload decompressed according to its magic bytes.
fn decompress<'a>(mut r: BufReader<&'a mut File>) -> Result<Box<dyn Read + 'a>, WalkError> {
    use std::io::BufRead as _;
    let head = r.fill_buf().map_err(WalkError::Io)?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r).map_err(WalkError::Io)?)
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(r))
    } else if head.starts_with(b"07070") {
        Box::new(r)
    } else {
        return Err(corrupt(
            None,
            "rpm: the payload is not cpio compressed with gzip, xz, zstd or bzip2",
        ));
    })
}

/// A newc member whose data comes with a later member of its hard-link set.
struct Deferred {
    name: Vec<u8>,
    file: usize,
}

fn walk_cpio(
    mut r: Box<dyn Read + '_>,
    names: &[Vec<u8>],
    files: &[Declared],
    index: &HashMap<&[u8], usize>,
    visitor: &mut dyn Visitor,
    budget: &mut NameBudget,
) -> Result<(), WalkError> {
    // Hard-link sets by inode: members seen without their data.
    let mut links: HashMap<u64, Vec<Deferred>> = HashMap::new();
    let mut seen = vec![false; files.len()];
    let mut pos: u64 = 0;
    for i in 0.. {
        let at = format!("cpio entry #{i}");
        let mut magic = [0u8; 6];
        read_exact(&mut r, &mut magic, &at)?;
        pos += 6;
        let (file, name, size, ino, nlink, cpio_mode) = if &magic == b"07070X" {
            let mut idx = [0u8; 8];
            read_exact(&mut r, &mut idx, &at)?;
            pos += 8;
            let file = hex(&idx, &at)? as usize;
            skip(&mut r, pad4(pos), &at)?;
            pos += pad4(pos);
            let name = names
                .get(file)
                .ok_or_else(|| {
                    corrupt(
                        Some(at.clone()),
                        format!("file index {file} is not in the header"),
                    )
                })?
                .clone();
            // Only regular files and symlinks carry data.
            let size = match files[file].mode & 0o170000 {
                0o100000 | 0o120000 => files[file].size,
                _ => 0,
            };
            (file, name, size, 0, 1, None)
        } else if &magic == b"070701" || &magic == b"070702" {
            let mut fields = [0u8; 104];
            read_exact(&mut r, &mut fields, &at)?;
            pos += 104;
            let f = |n: usize| hex(&fields[n * 8..n * 8 + 8], &at);
            let (ino, mode, nlink, size, namesize) = (f(0)?, f(1)? as u32, f(4)?, f(6)?, f(11)?);
            if namesize == 0 || namesize > MAX_NAME + 1 {
                return Err(WalkError::Refused(Refusal {
                    entry: at,
                    code: "bad-name",
                    message: format!("a cpio name of {namesize} bytes; the limit is {MAX_NAME}"),
                }));
            }
            let mut raw = vec![0u8; namesize as usize];
            read_exact(&mut r, &mut raw, &at)?;
            pos += namesize;
            skip(&mut r, pad4(pos), &at)?;
            pos += pad4(pos);
            if raw.pop() != Some(0) {
                return Err(corrupt(Some(at), "a cpio name without its NUL"));
            }
            if raw == b"TRAILER!!!" {
                break;
            }
            let bare = raw.strip_prefix(b"./").unwrap_or(&raw);
            let bare = bare.strip_prefix(b"/").unwrap_or(bare);
            let shown = crate::text::escape(&String::from_utf8_lossy(&raw));
            let Some(&file) = index.get(bare) else {
                return Err(corrupt(
                    Some(shown),
                    "a cpio entry that is not in the package header's file list",
                ));
            };
            (file, raw, size, ino, nlink, Some(mode))
        } else {
            return Err(corrupt(
                Some(at),
                "not a cpio header (newc or rpm's stripped form)",
            ));
        };
        if std::mem::replace(&mut seen[file], true) {
            return Err(corrupt(
                Some(display(&name)),
                "a second cpio entry for the same file",
            ));
        }
        let decl = &files[file];
        if let Some(m) = cpio_mode {
            if m & 0o170000 != decl.mode & 0o170000 {
                return Err(corrupt(
                    Some(display(&name)),
                    "the cpio entry's file type is not the one the package header declares",
                ));
            }
        }
        let meta_name = names[file].clone();
        let kind = match decl.mode & 0o170000 {
            0o100000 => Kind::File,
            0o040000 => Kind::Dir,
            0o120000 => Kind::Symlink(read_link(&mut r, size, &decl.link, &name)?),
            0o010000 => Kind::Special("FIFO"),
            0o020000 | 0o060000 => Kind::Special("device"),
            0o140000 => Kind::Special("socket"),
            _ => Kind::Special("unknown entry type"),
        };
        let body_len = if matches!(kind, Kind::Symlink(_)) {
            0
        } else {
            size
        };
        let meta = file_meta(meta_name, kind.clone(), body_len, decl);
        let shown = meta.display_name();
        if kind == Kind::File && nlink > 1 && size == 0 {
            // newc: the data of a hard-link set comes with its last member.
            links.entry(ino).or_default().push(Deferred {
                name: meta.name.clone(),
                file,
            });
        } else {
            let mut data = (&mut r).take(body_len);
            budget.offer(visitor, &meta, &mut data, &shown)?;
            io::copy(&mut data, &mut io::sink()).map_err(|e| corrupt(Some(shown.clone()), e))?;
            if kind == Kind::File && nlink > 1 {
                for d in links.remove(&ino).unwrap_or_default() {
                    hard_link(&d, &meta.name, files, visitor, budget)?;
                }
            }
        }
        pos += size;
        skip(&mut r, pad4(pos), &display(&name))?;
        pos += pad4(pos);
    }
    // Sets whose members all had no data are empty files: the first holds, the rest
    // link to it.
    let mut rest: Vec<Vec<Deferred>> = links.into_values().collect();
    rest.sort_by_key(|set| set.first().map(|d| d.file));
    for set in rest {
        let Some((first, others)) = set.split_first() else {
            continue;
        };
        let meta = file_meta(first.name.clone(), Kind::File, 0, &files[first.file]);
        let shown = meta.display_name();
        budget.offer(visitor, &meta, &mut io::empty(), &shown)?;
        for d in others {
            hard_link(d, &first.name, files, visitor, budget)?;
        }
    }
    Ok(())
}

fn hard_link(
    d: &Deferred,
    target: &[u8],
    files: &[Declared],
    visitor: &mut dyn Visitor,
    budget: &mut NameBudget,
) -> Result<(), WalkError> {
    let meta = file_meta(
        d.name.clone(),
        Kind::Hardlink(target.to_vec()),
        0,
        &files[d.file],
    );
    let shown = meta.display_name();
    budget.offer(visitor, &meta, &mut io::empty(), &shown)
}

/// A payload entry with the mode and owner the header declares for it.
fn file_meta(name: Vec<u8>, kind: Kind, size: u64, decl: &Declared) -> Meta {
    Meta {
        name,
        kind,
        mode: decl.mode & 0o7777,
        size,
        compressed_size: None,
        part: Part::Payload,
        owner: Some(decl.owner.clone()),
    }
}

/// A symlink's target: the cpio data, bounded, and the one the header declares.
fn read_link(
    r: &mut dyn Read,
    size: u64,
    declared: &[u8],
    name: &[u8],
) -> Result<Vec<u8>, WalkError> {
    if size > MAX_NAME {
        return Err(WalkError::Refused(Refusal {
            entry: display(name),
            code: "bad-name",
            message: format!("a link target of {size} bytes; the limit is {MAX_NAME}"),
        }));
    }
    let mut target = vec![0u8; size as usize];
    read_exact(r, &mut target, &display(name))?;
    if target != declared {
        return Err(corrupt(
            Some(display(name)),
            "the symlink's target in the payload is not the one the package header declares",
        ));
    }
    Ok(target)
}

fn display(name: &[u8]) -> String {
    crate::text::escape(&String::from_utf8_lossy(name))
}

fn pad4(pos: u64) -> u64 {
    (4 - pos % 4) % 4
}

fn hex(field: &[u8], at: &str) -> Result<u64, WalkError> {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| corrupt(Some(at.to_string()), "a cpio header field that is not hex"))
}

fn read_exact(r: &mut dyn Read, buf: &mut [u8], at: &str) -> Result<(), WalkError> {
    r.read_exact(buf).map_err(|e| {
        let why = if e.kind() == io::ErrorKind::UnexpectedEof {
            "the payload ends inside a cpio entry (truncated)".to_string()
        } else {
            e.to_string()
        };
        corrupt(Some(at.to_string()), why)
    })
}

fn skip(r: &mut dyn Read, n: u64, at: &str) -> Result<(), WalkError> {
    let mut pad = [0u8; 4];
    read_exact(r, &mut pad[..n as usize], at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::rpm::tests::{header, package};

    /// Collects the names of the entries it is handed.
    #[derive(Default)]
    struct Names(Vec<String>);

    impl Visitor for Names {
        fn entry(&mut self, meta: &Meta, _: &mut dyn Read) -> Result<(), WalkError> {
            self.0
                .push(String::from_utf8_lossy(&meta.name).into_owned());
            Ok(())
        }
    }

    /// The control entries of a header with `scripts` empty trigger scripts, the
    /// conditions `which` and their `flags`, and the time they took.
    fn triggers(
        scripts: usize,
        which: &[u32],
        flags: &[u32],
    ) -> (Result<Vec<String>, String>, std::time::Duration) {
        let ints = |v: &[u32]| v.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
        let (which_bytes, flag_bytes) = (ints(which), ints(flags));
        let mut entries = vec![
            (tag::TRIGGERSCRIPTS, 8, vec![0u8; scripts], scripts as u32),
            (tag::TRIGGERINDEX, 4, which_bytes, which.len() as u32),
        ];
        if !flags.is_empty() {
            entries.push((tag::TRIGGERFLAGS, 4, flag_bytes, flags.len() as u32));
        }
        let entries: Vec<(u32, u32, &[u8], u32)> = entries
            .iter()
            .map(|(t, y, d, c)| (*t, *y, d.as_slice(), *c))
            .collect();
        let sig = header(&[(format::sigtag::SHA256HEADER, 6, b"a\0", 1)]);
        let bytes = package(&sig, &header(&entries), b"");
        let pkg = format::read_package(&mut &bytes[..]).expect("a readable package");
        let mut names = Names::default();
        let start = std::time::Instant::now();
        let got = control_entries(
            &pkg.header,
            &[],
            &[],
            &mut names,
            &mut NameBudget::default(),
        );
        let took = start.elapsed();
        (got.map(|()| names.0).map_err(|e| e.to_string()), took)
    }

    #[test]
    fn trigger_scripts_are_named_by_their_first_condition() {
        let (got, _) = triggers(2, &[1, 0, 1], &[0x0001_0000, 0x0004_0000, 0x0002_0000]);
        assert_eq!(got.unwrap(), ["%triggerpostun", "%triggerin"]);
    }

    #[test]
    fn many_trigger_conditions_are_matched_in_one_pass() {
        // The most scripts read, and a million conditions that name none of them:
        // one search per script was four billion comparisons.
        let which = vec![u32::MAX; 1 << 20];
        let (got, took) = triggers(RPM_MAX_TRIGGER_SCRIPTS, &which, &[]);
        assert_eq!(got.unwrap().len(), RPM_MAX_TRIGGER_SCRIPTS);
        assert!(took.as_secs() < 5, "took {took:?}");
    }

    #[test]
    fn too_many_trigger_scripts_are_refused() {
        let (got, _) = triggers(RPM_MAX_TRIGGER_SCRIPTS + 1, &[0], &[]);
        let err = got.unwrap_err();
        assert!(
            err.starts_with("too-large: entry %trigger: the header declares 4097 trigger scripts"),
            "{err}"
        );
    }
}
