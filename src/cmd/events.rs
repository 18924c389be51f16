//! `events list` and `events ack`: what the outbox holds, where each event went, and
//! the operator's way to mark one handled so no channel retries it.

use std::time::SystemTime;

use anyhow::Context as _;
use serde_json::json;

use crate::alert;
use crate::cmd::outcome::Outcome;
use crate::cmd::setup::NO_CONFIG;
use crate::config::Config;
use crate::store::{self, EventRow};
use crate::text::escape;

/// The configuration and its existing state.
fn state(config: Option<&Config>) -> anyhow::Result<(&Config, Box<dyn store::Store>)> {
    let config = config
        .with_context(|| format!("events reads the state named in feeds.toml; {NO_CONFIG}"))?;
    Ok((config, super::watch::existing_state(config)?))
}

/// Per configured channel: `delivered`, `filtered` (routed away by `[alerts]`), `acked`
/// (handled without delivery) or `pending`.
fn channel_states<'a>(e: &EventRow, channels: &[&'a str]) -> Vec<(&'a str, &'static str)> {
    channels
        .iter()
        .map(|c| {
            let s = if e.delivered.iter().any(|d| d == c) {
                "delivered"
            } else if e.filtered.iter().any(|d| d == c) {
                "filtered"
            } else if e.acked_at.is_some() {
                "acked"
            } else {
                "pending"
            };
            (*c, s)
        })
        .collect()
}

/// `events list`.
pub fn run_list(
    config: Option<&Config>,
    pending: bool,
    since: Option<SystemTime>,
    json: bool,
) -> anyhow::Result<Outcome> {
    let (config, state) = state(config)?;
    let channels = alert::channels(&config.alerts, false);
    let names: Vec<&str> = channels.iter().map(|c| c.name()).collect();
    let mut rows = Vec::new();
    for e in state.events(since)? {
        let per = channel_states(&e, &names);
        if !pending || per.iter().any(|(_, s)| *s == "pending") {
            rows.push((e, per));
        }
    }
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(e, per)| {
                let ev = e.event.as_ref().ok();
                json!({
                    "id": e.id,
                    "seq": e.seq,
                    "kind": e.kind,
                    "vendor": e.vendor,
                    "severity": ev.map(|v| v.severity.code()),
                    "title": ev.map(|v| v.title.as_str()),
                    "detected_at": crate::text::time(e.detected_at),
                    "acked_at": e.acked_at.map(crate::text::time),
                    "channels": per.iter().map(|(c, s)| (c.to_string(), json!(s))).collect::<serde_json::Map<_, _>>(),
                    "error": e.event.as_ref().err(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(Outcome::Clean);
    }
    for (e, per) in &rows {
        let (severity, title) = match &e.event {
            Ok(v) => (v.severity.code(), escape(&v.title)),
            Err(error) => (
                "?",
                format!("(unreadable: its stored JSON {})", escape(error)),
            ),
        };
        let channels: Vec<String> = per.iter().map(|(c, s)| format!("{c}={s}")).collect();
        println!(
            "{} {} {} {} {} {title}  [{}]",
            crate::text::time(e.detected_at),
            escape(&e.id),
            escape(&e.kind),
            severity,
            escape(&e.vendor),
            channels.join(" ")
        );
    }
    Ok(Outcome::Clean)
}

/// `events ack ID`.
pub fn run_ack(config: Option<&Config>, id: &str, now: SystemTime) -> anyhow::Result<Outcome> {
    let (config, mut state) = state(config)?;
    if state.ack_event(id, now)? {
        eprintln!(
            "acknowledged {}: handled, no channel delivers it again",
            escape(id)
        );
        Ok(Outcome::Clean)
    } else {
        eprintln!(
            "no event with id {} in {} (see `vendorguard events list`)",
            escape(id),
            config.watch.state
        );
        Ok(Outcome::Findings)
    }
}
