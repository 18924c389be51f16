//! The verifier: a bundle, a vendor's pinned certificates and pinned hashes in; a
//! [`Report`] with a [`Verdict`] out.
//!
//! It owns everything about signatures and pins: where the signature is
//! (`discover`), reading signature files and signed messages (`sigfile`, `armor`, and
//! the signed-region rule for inline messages, `framing`), the
//! one pass over the bundle (`digest`, `bundle`), a `.deb`'s apt repository
//! (`repository`), an `.rpm`'s signatures and digests (`rpm`, over `package::rpm`'s
//! framing), the pinned keyring (`keyring`,
//! `checksums`), the policy for one signature (`judge`), the verdict (`verdict`) and its
//! rendering (`report`), and describing certificates (`keys`).
//!
//! It must not read the clock (`now` is an input), choose an exit code, raise alerts,
//! or know about the watcher: rejected is a value, and what to do with it is the
//! caller's business.

pub(crate) mod armor;
mod bundle;
pub(crate) mod checksums;
pub(crate) mod digest;
pub(crate) mod discover;
pub(crate) mod framing;
pub(crate) mod judge;
pub(crate) mod keyring;
pub(crate) mod keys;
pub(crate) mod release;
pub(crate) mod report;
pub(crate) mod repository;
pub(crate) mod rpm;
pub(crate) mod sigfile;
pub(crate) mod verdict;

pub(crate) use bundle::{verify_bundle, verify_detached_bytes, Request};
pub(crate) use judge::{Acceptance, SignerPolicy};
pub(crate) use repository::Repository;
pub(crate) use verdict::{Pin, Refusal, Report, Status, Verdict};
