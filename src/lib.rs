//! vendorguard: verify vendor upgrade bundles against pinned OpenPGP keys and hashes,
//! and watch vendor advisory feeds.
//!
//! The library holds every capability; `main.rs` only parses the command line, calls
//! into here, prints, and chooses the exit code. See `ARCHITECTURE.md` for the map.

pub mod alert;
pub mod archive;
pub mod cli;
pub mod cmd;
pub mod config;
mod mutation;
mod robustness;
pub mod store;
pub mod text;
pub mod verify;
pub mod watch;
