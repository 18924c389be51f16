//! vendorguard: verify vendor upgrade bundles against pinned OpenPGP keys and hashes,
//! and watch vendor advisory feeds.
//!
//! The library holds every capability; `main.rs` only parses the command line, calls
//! into here, prints, and chooses the exit code. See `ARCHITECTURE.md` for the map.
//!
//! `unsafe_code` is denied, not forbidden: one function, `die_with_parent` in
//! `alert/escalation.rs`, sets `PR_SET_PDEATHSIG` in the escalation program's child
//! before exec, and `pre_exec` is unsafe by nature. `forbid` cannot be lifted for it.

#![deny(unsafe_code)]

mod alert;
mod archive;
pub mod cli;
pub mod cmd;
mod config;
mod inventory;
mod mutation;
mod package;
mod policy;
mod robustness;
mod store;
mod text;
mod verify;
mod version;
mod watch;
