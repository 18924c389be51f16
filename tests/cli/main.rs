//! The one integration-test binary: runs the real `vendorguard` against temporary
//! projects. See `harness.rs` for how fixtures are made.

mod affects;
mod alert;
mod config;
mod corpus;
mod deb;
mod diff;
mod ha;
mod harness;
mod history;
mod http;
mod keys;
mod logs;
mod monitor;
mod mutation;
mod onboard;
mod package;
mod pg;
mod preflight;
mod rpm;
mod unpack;
mod verify;
mod watch;
