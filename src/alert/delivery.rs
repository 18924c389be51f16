//! Delivering events from the outbox, channel by channel.
//!
//! The rule is certspotter's: deliver first, record second. An event is marked
//! delivered on a channel only after that channel acknowledged (the program exited 0,
//! the SMTP server accepted the message). A crash between the two means at most one
//! duplicate, which carries the same `Message-ID` so mail clients fold it. Channels are
//! independent: email being down never holds back the escalation program.
//!
//! Retry policy: every run retries everything pending in its scope, oldest first.
//! Within one run a channel that cannot be reached at all (connection refused, TLS
//! failure) is not tried again for the remaining events; they wait for the next run
//! (the cron interval, or the daemon's next pass), so a dead SMTP server is not
//! hammered. A permanent rejection of one message (SMTP 5xx) is recorded as such and
//! the next event is tried.
//!
//! An event the channel does not carry (`alert::route`) is recorded as filtered on that
//! channel before any batch is formed: stored, shown, never sent and never retried.

use std::time::{Duration, SystemTime};

use crate::alert::channel::Channel;
use crate::alert::outbox::{Attempt, DeliveryFailure, Outbox};

/// What happened on one channel in one run.
#[derive(Debug, Clone, Default)]
pub struct ChannelReport {
    pub channel: String,
    pub delivered: usize,
    /// Events this channel does not carry (`[alerts]` routing), recorded as filtered.
    pub filtered: usize,
    pub failed: usize,
    pub pending: usize,
    pub last_error: Option<String>,
}

/// Which pending events a run delivers.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Everything pending, oldest first: the watcher's runs.
    All,
    /// Only the events with these ids: what `verify` or `unpack` just raised. The rest
    /// of the outbox is the watcher's to deliver.
    Only(&'a [String]),
}

/// Delivers what is pending in `scope` on every channel.
///
/// # Errors
///
/// Only outbox (state database) failures.
pub async fn deliver_pending<O: Outbox + ?Sized>(
    outbox: &mut O,
    channels: &[Box<dyn Channel>],
    scope: Scope<'_>,
    now: SystemTime,
) -> Result<Vec<ChannelReport>, O::Error> {
    let mut reports = Vec::new();
    for ch in channels {
        // Claimed: another instance sharing the state does not send these meanwhile.
        let mut pending = outbox.claim(ch.name(), now)?;
        if let Scope::Only(ids) = scope {
            pending.retain(|p| ids.contains(&p.event.id));
        }
        let mut rep = ChannelReport {
            channel: ch.name().into(),
            ..Default::default()
        };
        // Routed away: done with on this channel before anything is sent. An event
        // already fixed in a digest stays in it, so every retry is the same mail.
        let (pending, routed_away): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|p| p.message_id.is_some() || ch.carries(&p.event));
        for p in &routed_away {
            outbox.record(&p.event.id, ch.name(), Attempt::Filtered { at: now })?;
        }
        rep.filtered = routed_away.len();
        let mut down = false;
        // The claims were taken at `now`; a long backlog outlasts them, so each batch
        // renews its own before it is sent, at the time it is sent (tokio's clock).
        let started = tokio::time::Instant::now();
        for batch in ch.batch(pending) {
            let group = &batch.events;
            if down {
                rep.pending += group.len();
                continue;
            }
            let ids: Vec<&str> = group.iter().map(|e| e.id.as_str()).collect();
            let held = outbox.renew_claims(&ids, ch.name(), now + started.elapsed())?;
            if held.len() < ids.len() {
                // Another instance took some over when they ran out: they are its to
                // send now (not pending on this run), and this batch goes whole or
                // not at all.
                continue;
            }
            if let (true, Some(id)) = (batch.fix_id, &batch.message_id) {
                outbox.fix_message_id(&ids, ch.name(), id)?;
            }
            match ch.send(&batch).await {
                Ok(output) => {
                    let output = output.as_deref();
                    for e in group {
                        let delivered = Attempt::Delivered { at: now, output };
                        outbox.record(&e.id, ch.name(), delivered)?;
                    }
                    rep.delivered += group.len();
                }
                Err(f) => {
                    let failure = DeliveryFailure {
                        error: f.message.clone(),
                        kind: f.kind.into(),
                        output: f.output.clone(),
                        retry_at: now + Duration::from_secs(60),
                    };
                    for e in group {
                        outbox.record(&e.id, ch.name(), Attempt::Failed(&failure))?;
                    }
                    tracing::warn!(
                        "{}: event {}: {}: {}",
                        ch.name(),
                        group[0].id,
                        f.kind,
                        f.message
                    );
                    rep.failed += group.len();
                    rep.pending += group.len();
                    rep.last_error = Some(format!("{}: {}", f.kind, f.message));
                    down = f.channel_down;
                }
            }
        }
        // What was claimed and not attempted (out of scope, or the channel is down)
        // is free for any instance again.
        outbox.release_claims(ch.name())?;
        reports.push(rep);
    }
    Ok(reports)
}
