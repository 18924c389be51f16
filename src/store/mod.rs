//! The watcher's durable state.
pub mod sqlite;
