//! The `.deb` walker: the ar members in dpkg's order (`package::deb::Layout`),
//! `debian-binary` checked, `control.tar.*` walked as the package's control part (every
//! entry named `control/<member>`, never extracted) and `data.tar.*` as its payload
//! (names without the leading `./`, owners as the tar states them), both through the
//! one bounded tar walker with every rule it applies.
//!
//! The signature members (`_gpgorigin`, `_gpgbuilder`) are skipped here: judging them
//! is the verifier's job, and this walker decides nothing about trust.

use std::fs::File;
use std::io::{BufReader, Read};

use crate::archive::walk::{walk_tar, Kind, Meta, Part, Refusal, TarOptions, Visitor, WalkError};
use crate::package::ar::{ArError, ArReader};
use crate::package::deb::{self, Layout, MemberKind};

/// Walks the `.deb` in `file` (from its start).
///
/// # Errors
///
/// `Corrupt` for a broken ar container, a `debian-binary` other than 2.x, or a broken
/// tar member; a `Refused` with `bad-member` or `duplicate-entry` for members dpkg
/// would refuse; whatever the visitor returns.
pub(crate) fn walk_deb(file: &mut File, visitor: &mut dyn Visitor) -> Result<(), WalkError> {
    let mut ar = ArReader::new(BufReader::with_capacity(1 << 20, file)).map_err(ar_error)?;
    let mut layout = Layout::default();
    while let Some(member) = ar.next_member().map_err(ar_error)? {
        let kind = layout.next(&member.name).map_err(|e| {
            WalkError::Refused(Refusal {
                entry: e.member,
                code: e.code,
                message: e.message,
            })
        })?;
        let corrupt = |message: String| WalkError::Corrupt {
            entry: Some(member.name.clone()),
            message,
        };
        match kind {
            MemberKind::DebianBinary => {
                let mut version = Vec::new();
                ar.data()
                    .take(64)
                    .read_to_end(&mut version)
                    .map_err(|e| corrupt(e.to_string()))?;
                if !version.starts_with(b"2.") || member.size > 64 {
                    return Err(corrupt(format!(
                        "format {} is not a .deb version dpkg reads (2.x)",
                        crate::text::escape(&String::from_utf8_lossy(&version))
                    )));
                }
            }
            MemberKind::Control(c) | MemberKind::Data(c) => {
                let control = matches!(kind, MemberKind::Control(_));
                let opts = TarOptions {
                    part: if control {
                        Part::Control
                    } else {
                        Part::Payload
                    },
                    owners: !control,
                    prefix: if control { "control/" } else { "" },
                };
                let tar = deb::decoder(c, ar.data()).map_err(|e| corrupt(e.to_string()))?;
                let mut named = PackagePaths { inner: visitor };
                walk_tar(tar, &mut named, opts).map_err(|e| in_member(e, &member.name))?;
            }
            MemberKind::GpgOrigin | MemberKind::GpgBuilder => {}
        }
    }
    layout.finish().map_err(|e| {
        WalkError::Refused(Refusal {
            entry: e.member,
            code: e.code,
            message: e.message,
        })
    })
}

fn ar_error(e: ArError) -> WalkError {
    match e {
        ArError::Corrupt(message) => WalkError::Corrupt {
            entry: None,
            message,
        },
        ArError::Io(e) => WalkError::Io(e),
    }
}

/// A corrupt tar stream is named by its ar member as well as the tar entry.
fn in_member(e: WalkError, member: &str) -> WalkError {
    match e {
        WalkError::Corrupt { entry, message } => WalkError::Corrupt {
            entry: Some(match entry {
                Some(inner) => format!("{member}: {inner}"),
                None => member.to_string(),
            }),
            message,
        },
        other => other,
    }
}

/// Package file names as dpkg installs them: `./usr/bin/x` is `usr/bin/x` (and a hard
/// link's target likewise); the `./` entry for the root itself is dropped. Names
/// starting with `/` or holding `..` are handed on as they are, for the extractor to
/// refuse.
struct PackagePaths<'a> {
    inner: &'a mut dyn Visitor,
}

fn strip_dot(name: &[u8]) -> &[u8] {
    let mut n = name;
    while let Some(rest) = n.strip_prefix(b"./") {
        n = rest;
    }
    n
}

impl Visitor for PackagePaths<'_> {
    fn entry(&mut self, meta: &Meta, data: &mut dyn Read) -> Result<(), WalkError> {
        if meta.part == Part::Control {
            return self.inner.entry(meta, data);
        }
        let name = strip_dot(&meta.name);
        if name.is_empty() || name == b"." {
            return Ok(());
        }
        let kind = match &meta.kind {
            Kind::Hardlink(t) => Kind::Hardlink(strip_dot(t).to_vec()),
            other => other.clone(),
        };
        let meta = Meta {
            name: name.to_vec(),
            kind,
            ..meta.clone()
        };
        self.inner.entry(&meta, data)
    }

    fn max_entries(&self) -> u64 {
        self.inner.max_entries()
    }
}
