//! The sources a watcher polls, as the configuration names them, and the typed failure
//! a poll ends in.
//!
//! Every `[[vendor.feed]]` and `key_url` is a source with a stable id (vendor, kind and
//! URL) and its own interval. A failed poll is a [`PollError`] carrying its stable code
//! (`feed-unreachable`, `csaf-malformed`, ...); nothing reads a code back out of a
//! message. This file polls nothing.

use std::time::{Duration, SystemTime};

use crate::alert::event::{Event, Kind, Severity};

use crate::config::{Config, FeedFormat};
use crate::store::SourceRef;

/// Why a poll failed: a stable code, and the message `status` shows (its `Display` is
/// `code: message`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct PollError {
    pub code: &'static str,
    pub message: String,
}

impl PollError {
    pub fn new(code: &'static str, message: impl Into<String>) -> PollError {
        PollError {
            code,
            message: message.into(),
        }
    }
}

/// What a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Feed(FeedFormat),
    KeyUrl,
}

impl SourceKind {
    pub fn code(self) -> &'static str {
        match self {
            SourceKind::Feed(FeedFormat::Auto) => "feed",
            SourceKind::Feed(FeedFormat::Csaf) => "csaf",
            SourceKind::Feed(FeedFormat::CisaKev) => "cisa-kev",
            SourceKind::KeyUrl => "key-url",
        }
    }
}

/// One thing to poll.
#[derive(Debug, Clone)]
pub struct Source {
    pub id: String,
    pub vendor: String,
    pub kind: SourceKind,
    pub url: String,
    pub interval: Duration,
}

impl Source {
    /// An event raised by polling this source: its identity is the source's id and
    /// `what`, and it names the source's URL in its `source` field.
    pub fn event(
        &self,
        kind: Kind,
        what: &str,
        severity: Severity,
        title: String,
        url: String,
        now: SystemTime,
    ) -> Event {
        let identity = format!("{} {what}", self.id);
        Event::new(kind, &self.vendor, &identity, severity, title, url, now)
            .with("source", self.url.clone())
    }

    /// How the store names this source.
    pub fn store_ref(&self) -> SourceRef<'_> {
        SourceRef {
            id: &self.id,
            vendor: &self.vendor,
            kind: self.kind.code(),
            url: &self.url,
        }
    }
}

/// Every source in the configuration.
pub fn sources(config: &Config) -> Vec<Source> {
    let mut out = Vec::new();
    for v in &config.vendors {
        let vendor_interval = v.interval.unwrap_or(config.watch.interval);
        if let Some(k) = &v.key_url {
            out.push(Source {
                id: format!("{} key {}", v.name, k),
                vendor: v.name.clone(),
                kind: SourceKind::KeyUrl,
                url: k.clone(),
                interval: vendor_interval,
            });
        }
        for f in &v.feeds {
            out.push(Source {
                id: format!("{} {} {}", v.name, SourceKind::Feed(f.format).code(), f.url),
                vendor: v.name.clone(),
                kind: SourceKind::Feed(f.format),
                url: f.url.clone(),
                interval: f.interval.unwrap_or(vendor_interval),
            });
        }
    }
    out
}
