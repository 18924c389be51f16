//! The watcher: vendors' feeds, CSAF providers and key URLs polled into events.
//!
//! `source` names what is polled and how a poll fails; `schedule` says when (the
//! daemon); `pass` polls, compares with the store and commits; `fetch` is the one HTTP
//! client (politeness, bounds, retries, refused addresses); `feeds`, `csaf` and
//! `keywatch` turn bodies into items or events; `document` builds the identity of a
//! checked advisory; `affects` matches advisories to the inventory it is handed.
//!
//! The watcher must not deliver events (that is alerting's job), decide whether a
//! document is authentic by itself (`csaf` asks the verifier), read the wall clock
//! (`now` comes from the command; the schedule uses tokio's clock), or fetch anything
//! except through `fetch::Fetcher`, or read the history (`cmd` builds the inventory).

pub(crate) mod affects;
pub(crate) mod csaf;
pub(crate) mod document;
pub(crate) mod feeds;
pub(crate) mod fetch;
pub(crate) mod keywatch;
pub(crate) mod pass;
pub(crate) mod schedule;
pub(crate) mod source;
