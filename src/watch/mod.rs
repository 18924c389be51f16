//! The watcher.
pub mod csaf;
pub mod feeds;
pub mod fetch;
pub mod keywatch;
pub mod pass;
