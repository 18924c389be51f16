//! Packages: the container formats vendors ship upgrades in and the metadata that
//! describes them (`ar`, the `.deb`'s outer archive; `deb822`, the paragraph format of
//! a `.deb`'s control file and of an apt repository's `Release` and `Packages`; `deb`,
//! what a `.deb` holds and in which order; `rpm`, an `.rpm`'s lead, signature header
//! and header).
//!
//! This subsystem only reads: bounded and streaming, every length taken from the input
//! capped before it is used. It must not decide whether anything is trusted (the
//! verifier does), write files (the extractor does), report findings (the inspector
//! does) or open a package by name, and it uses nothing of ours but `policy` and `text`.

pub(crate) mod ar;
pub(crate) mod deb;
pub(crate) mod deb822;
pub(crate) mod rpm;
