//! Archives: one walker over zip and tar entries and `.deb` and `.rpm` packages (`walk`,
//! and `deb`, `rpm` for a package's members), and its visitors: the extractor that
//! fills a staging folder (`extract`), the inspector that lists what an upgrade will do
//! (`inspect`), and the summarizer (`summary`) that wraps the inspector and adds hashes,
//! configuration keys (`config_keys`) and line signals (`signals`) for `diff` (two
//! summaries compared) and `preflight` (one summary against a view of the host); the extractor and the
//! inspector model the tree an archive makes (`tree`) to judge its links as the kernel
//! will follow them.
//!
//! This subsystem must not decide whether a bundle is trusted, open a bundle by name,
//! or write outside the staging root it is given: the `unpack` command verifies first
//! and hands it the private copy of the verified bytes. Findings are information and
//! never change an exit code.

pub(crate) mod config_keys;
mod deb;
pub(crate) mod diff;
pub(crate) mod extract;
pub(crate) mod inspect;
pub(crate) mod preflight;
pub(crate) mod rpm;
pub(crate) mod signals;
pub(crate) mod summary;
pub(crate) mod tree;
pub(crate) mod walk;
