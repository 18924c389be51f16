//! vendorguard: verify vendor upgrade bundles against pinned OpenPGP keys and hashes,
//! and watch vendor advisory feeds.
//!
//! The library holds every capability; `main.rs` only parses the command line, calls
//! into here, prints, and chooses the exit code. See `ARCHITECTURE.md` for the map.

pub mod alert;
pub mod app;
pub mod archive;
pub mod armor;
pub mod checksums;
pub mod cli;
pub mod config;
pub mod csaf;
pub mod digest;
pub mod discover;
pub mod event;
pub mod feeds;
pub mod fetch;
pub mod framing;
pub mod inspect;
pub mod keyring;
pub mod keys;
pub mod keywatch;
pub mod monitor;
mod mutation;
pub mod report;
mod robustness;
pub mod sigfile;
pub mod state;
pub mod text;
pub mod tree;
pub mod unpack;
pub mod verify;
pub mod watch;
