//! Alerting: events (`event`), the outbox they wait in as delivery sees it (`outbox`),
//! the channels that carry them (`channel`; `escalation`, `email` over `smtp`'s
//! connection, `stdout`), which events each carries (`route`), and delivering them
//! (`delivery`).
//!
//! Every channel kind is listed once, in [`CHANNELS`]: delivery, `alert test`,
//! `status` and "is any channel configured" all take their channels from here, so a
//! new channel is one file, its `[alerts]` section in `config.rs`, and one line below.
//!
//! Alerting must not poll sources, decide what an event means, or know how the outbox
//! is stored; and no event text reaches a shell. With no channel configured, events go
//! to stdout and count as delivered, so cron mails them to `MAILTO`.

pub(crate) mod channel;
mod delivery;
mod email;
mod escalation;
pub(crate) mod event;
pub(crate) mod outbox;
mod route;
mod smtp;
mod stdout;

pub(crate) use channel::Channel;
pub(crate) use delivery::{deliver_pending, ChannelReport, Scope};
pub(crate) use outbox::{Attempt, DeliveryProblem, Outbox, PendingEvent, UnreadableEvent};

use crate::config::Alerts;

/// Builds a kind of channel from `[alerts]` when it is configured there.
type Configure = fn(&Alerts) -> Option<Box<dyn Channel>>;

/// Every kind of channel, in delivery order.
const CHANNELS: [Configure; 2] = [
    escalation::Escalation::configured,
    email::EmailChannel::configured,
];

/// The channels `[alerts]` configures (possibly none).
pub fn configured(alerts: &Alerts) -> Vec<Box<dyn Channel>> {
    CHANNELS.iter().filter_map(|make| make(alerts)).collect()
}

/// Whether `[alerts]` configures any channel.
pub fn any_configured(alerts: &Alerts) -> bool {
    !configured(alerts).is_empty()
}

/// The channels events are delivered through: those configured, else stdout (as JSON
/// lines with `json`). Send through them inside the tokio runtime, and drop them there:
/// an SMTP transport's pool needs it when it is built and when it is dropped.
pub fn channels(alerts: &Alerts, json: bool) -> Vec<Box<dyn Channel>> {
    let mut out = configured(alerts);
    if out.is_empty() {
        out.push(Box::new(stdout::Stdout {
            json,
            route: route::Route::new(alerts, None),
        }));
    }
    out
}
