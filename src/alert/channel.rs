//! What every delivery channel is: a name deliveries are recorded under, how pending
//! events are grouped into deliveries, and one `send` that either is acknowledged or
//! fails with a [`Failure`].
//!
//! A channel never touches the outbox: recording what it acknowledged is
//! `delivery`'s job, and which channels exist is `alert::channels`'.

use std::future::Future;
use std::pin::Pin;

use crate::alert::event::Event;
use crate::alert::outbox::PendingEvent;

/// A future a channel returns; channels run on the current thread.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<Acknowledged, Failure>> + 'a>>;

/// What a channel said when it accepted a delivery: the escalation program's captured
/// output, kept for `status`.
pub type Acknowledged = Option<String>;

/// A delivery channel.
pub trait Channel {
    /// The name deliveries are recorded under (`escalation`, `email`, `stdout`).
    fn name(&self) -> &'static str;

    /// Groups pending events (oldest first) into deliveries: one event each, unless the
    /// channel bundles some (an email digest).
    fn batch(&self, pending: Vec<PendingEvent>) -> Vec<Batch> {
        pending.into_iter().map(|p| Batch::one(p.event)).collect()
    }

    /// Whether this channel delivers `event` at all (`alert::route`); one it does not
    /// is recorded as filtered, never sent, never pending.
    fn carries(&self, event: &Event) -> bool {
        let _ = event;
        true
    }

    /// Delivers one [`Batch`] of [`Channel::batch`].
    fn send<'a>(&'a self, batch: &'a Batch) -> Sending<'a>;
}

/// One delivery: the events it carries and, for a message channel, the Message-ID it
/// goes under.
#[derive(Debug, Clone)]
pub struct Batch {
    pub events: Vec<Event>,
    /// `None`: derived from the events' ids when sent.
    pub message_id: Option<String>,
    /// A new digest: `message_id` is recorded on its events before the first attempt,
    /// so a resend after a crash carries the same events under the same Message-ID.
    pub fix_id: bool,
}

impl Batch {
    /// One event on its own.
    pub fn one(event: Event) -> Batch {
        Batch {
            events: vec![event],
            message_id: None,
            fix_id: false,
        }
    }
}

/// One attempt's failure.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: &'static str,
    pub message: String,
    pub output: Option<String>,
    /// The channel itself is unreachable: stop trying it for this run.
    pub channel_down: bool,
}
