//! The outbox as delivery sees it: what is pending per channel, and what each attempt
//! came to. The state store implements it; this file says what alerting needs from
//! storage and nothing about how it is kept.

use std::time::SystemTime;

use crate::alert::event::Event;

/// How one delivery attempt of one event on one channel ended.
#[derive(Debug, Clone, Copy)]
pub enum Attempt<'a> {
    /// The channel acknowledged at `at`; `output` is what it printed.
    Delivered {
        at: SystemTime,
        output: Option<&'a str>,
    },
    /// It failed; the event stays pending.
    Failed(&'a DeliveryFailure),
    /// The channel does not carry this event (`[alerts]` routing): done with it at
    /// `at` without sending, never retried, never pending.
    Filtered { at: SystemTime },
}

/// A delivery attempt that failed.
#[derive(Debug, Clone)]
pub struct DeliveryFailure {
    pub error: String,
    /// `temporary`, `permanent`, `timeout`, `spawn`...
    pub kind: String,
    pub output: Option<String>,
    pub retry_at: SystemTime,
}

/// Failed deliveries still pending on one channel, of one kind.
#[derive(Debug, Clone)]
pub struct DeliveryProblem {
    pub channel: String,
    /// `temporary`, `permanent`, `connection`, `exit`, `timeout`, `spawn`...
    pub kind: String,
    pub events: u64,
    pub error: String,
    /// What the escalation program printed on its latest failed run (bounded).
    pub output: Option<String>,
}

/// A stored event whose JSON does not parse: it can never be delivered, so it stays
/// pending until its row is fixed or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableEvent {
    pub seq: i64,
    pub id: String,
    /// What is wrong with the stored JSON.
    pub error: String,
}

/// An event's delivery state on one channel.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub event: Event,
    /// The Message-ID of the digest this event was first tried in, if any.
    pub message_id: Option<String>,
}

/// Where events wait until every channel has acknowledged them.
pub trait Outbox {
    type Error;

    /// Stores events raised outside a watcher's poll (by `verify`, `unpack`); an event
    /// already stored is not stored twice. Returns how many were new.
    fn add_events(&mut self, events: &[Event]) -> Result<usize, Self::Error>;

    /// Events not yet delivered on `channel`, oldest first.
    fn pending(&self, channel: &str) -> Result<Vec<PendingEvent>, Self::Error>;

    /// Claims for this instance, until `now` plus its lease, the events pending on
    /// `channel` that no other instance has claimed (or whose claim ran out), oldest
    /// first: what this instance may deliver. One instance at a time (SQLite's lock):
    /// the same as [`Outbox::pending`].
    fn claim(&mut self, channel: &str, now: SystemTime) -> Result<Vec<PendingEvent>, Self::Error>;

    /// Extends to `now` plus the lease this instance's claims on `event_ids` on
    /// `channel`, and returns the ids it still holds (a claim that ran out and was
    /// taken by another instance is not this instance's to send). One instance at a
    /// time (SQLite): every id.
    fn renew_claims(
        &mut self,
        event_ids: &[&str],
        channel: &str,
        now: SystemTime,
    ) -> Result<Vec<String>, Self::Error>;

    /// Gives back this instance's claims on `channel` that no attempt was recorded for.
    fn release_claims(&mut self, channel: &str) -> Result<(), Self::Error>;

    /// Events pending on any of `channels` whose stored JSON does not parse, oldest
    /// first: `pending` skips them, so they are reported here instead.
    fn unreadable_pending(&self, channels: &[&str]) -> Result<Vec<UnreadableEvent>, Self::Error>;

    /// How many events are not yet delivered on `channel`.
    fn pending_count(&self, channel: &str) -> Result<u64, Self::Error>;

    /// Records, before a digest's first attempt on `channel`, the Message-ID it goes
    /// under on each of its events, in one transaction: from then on the digest is
    /// those events under that Message-ID, however often it is retried.
    fn fix_message_id(
        &mut self,
        event_ids: &[&str],
        channel: &str,
        message_id: &str,
    ) -> Result<(), Self::Error>;

    /// Records how an attempt to deliver `event` (an id) on `channel` ended, and ends
    /// this instance's claim on it; called only after the channel answered.
    fn record(&mut self, event: &str, channel: &str, a: Attempt<'_>) -> Result<(), Self::Error>;

    /// Failures among pending deliveries, per channel and kind: the count, and the
    /// error and captured program output of the latest one.
    fn delivery_problems(&self) -> Result<Vec<DeliveryProblem>, Self::Error>;
}
