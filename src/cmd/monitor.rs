//! Monitoring: `status --check` (a Nagios/Icinga plugin line and exit status) and
//! `status --prometheus` (the text exposition format, which the daemon also serves at
//! `/metrics`, see `cmd/serve.rs`).
//!
//! Both read one [`Snapshot`] of the state: the configured sources as stored, the
//! pending events per channel and the delivery and event totals. The check is judged
//! against the configuration's `failures_before_alert`, `stale_after` and
//! `pending_critical` at a `now` the command reads; the Prometheus text needs no
//! clock (its timestamps are absolute). Nothing here writes to the state or delivers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::alert;
use crate::cmd::outcome::Outcome;
use crate::config::Config;
use crate::store::{SourceHealth, Store, StoreError};
use crate::watch::source::sources;

/// A configured source as the state knows it.
#[derive(Debug, Clone)]
pub struct SourceView {
    pub vendor: String,
    pub kind: String,
    pub url: String,
    /// `None` until its first poll is recorded.
    pub health: Option<SourceHealth>,
}

/// Delivery figures of one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelView {
    pub name: String,
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
}

/// What monitoring reads from the state.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub sources: Vec<SourceView>,
    pub channels: Vec<ChannelView>,
    /// Stored events per kind code.
    pub events: Vec<(String, u64)>,
    /// Events pending on at least one channel.
    pub pending: u64,
    /// When the oldest of them was detected.
    pub oldest_pending: Option<SystemTime>,
    /// When the oldest event pending on every channel (delivered nowhere) was detected.
    pub oldest_undelivered: Option<SystemTime>,
}

impl Snapshot {
    /// Reads the figures of the sources and channels `config` names from `state`.
    ///
    /// # Errors
    ///
    /// The store's error when a query fails.
    pub fn read(config: &Config, state: &dyn Store) -> Result<Snapshot, StoreError> {
        let mut out = Snapshot::default();
        for s in sources(config) {
            out.sources.push(SourceView {
                vendor: s.vendor.clone(),
                kind: s.kind.code().to_string(),
                url: s.url.clone(),
                health: state.source(&s.id)?.map(|r| r.health),
            });
        }
        let totals = state.delivery_totals()?;
        let names: Vec<&'static str> = alert::channels(&config.alerts, false)
            .iter()
            .map(|c| c.name())
            .collect();
        // Per pending event: when detected, and on how many channels it is pending.
        let mut pending: BTreeMap<String, (SystemTime, usize)> = BTreeMap::new();
        for name in &names {
            let list = state.pending_detected(name)?;
            for (id, at) in &list {
                pending.entry(id.clone()).or_insert((*at, 0)).1 += 1;
            }
            let t = totals.iter().find(|t| t.channel == *name);
            out.channels.push(ChannelView {
                name: name.to_string(),
                pending: list.len() as u64,
                delivered: t.map_or(0, |t| t.delivered),
                failed: t.map_or(0, |t| t.failed),
            });
        }
        out.pending = pending.len() as u64;
        out.oldest_pending = pending.values().map(|(at, _)| *at).min();
        out.oldest_undelivered = pending
            .values()
            .filter(|(_, n)| *n == names.len())
            .map(|(at, _)| *at)
            .min();
        out.events = state.event_totals()?;
        Ok(out)
    }
}

/// A Nagios plugin status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            Level::Ok => Outcome::Clean,
            Level::Warning => Outcome::Findings,
            Level::Critical => Outcome::Critical,
            Level::Unknown => Outcome::Unknown,
        }
    }
}

/// What the check needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub failures_before_alert: u32,
    pub stale_after: Option<Duration>,
    pub pending_critical: Duration,
}

impl Limits {
    pub fn of(config: &Config) -> Limits {
        Limits {
            failures_before_alert: config.watch.failures_before_alert,
            stale_after: config.watch.stale_after,
            pending_critical: config.alerts.pending_critical,
        }
    }
}

/// Judges `snap` at `now`: the level and the one plugin line, perfdata included.
pub fn check_line(snap: &Snapshot, limits: Limits, now: SystemTime) -> (Level, String) {
    let age = |t: SystemTime| now.duration_since(t).unwrap_or_default().as_secs();
    let mut level = Level::Ok;
    let mut failing = 0;
    let mut said = Vec::new();
    for s in &snap.sources {
        let Some(h) = &s.health else { continue };
        let critical = crate::watch::pass::is_failing(
            h,
            limits.failures_before_alert,
            limits.stale_after,
            now,
        );
        if !critical && h.failures == 0 {
            continue;
        }
        failing += 1;
        level = level.max(if critical {
            Level::Critical
        } else {
            Level::Warning
        });
        let why = match (h.failures, h.last_success) {
            (0, Some(t)) => format!("no success for {}s", age(t)),
            (0, None) => "never succeeded".to_string(),
            (n, _) => format!(
                "{n} failed poll{} in a row{}",
                crate::text::plural(n.into()),
                h.last_error_code
                    .as_deref()
                    .map(|c| format!(", {c}"))
                    .unwrap_or_default()
            ),
        };
        said.push(format!("{} {} {} ({why})", s.vendor, s.kind, s.url));
    }
    let mut text = match failing {
        0 => format!(
            "{} source{} polled fine",
            snap.sources.len(),
            crate::text::plural(snap.sources.len() as u64)
        ),
        n => format!(
            "{n} of {} source{} failing: {}",
            snap.sources.len(),
            crate::text::plural(snap.sources.len() as u64),
            said.join("; ")
        ),
    };
    let oldest = snap.oldest_pending.map_or(0, age);
    if snap.pending > 0 {
        level = level.max(Level::Warning);
        let _ = write!(
            text,
            "; {} event{} pending, oldest {oldest}s",
            snap.pending,
            crate::text::plural(snap.pending)
        );
    }
    if let Some(t) = snap.oldest_undelivered {
        if Duration::from_secs(age(t)) > limits.pending_critical {
            level = Level::Critical;
            let _ = write!(
                text,
                "; an event has been undeliverable on every channel for {}s (pending_critical {}s)",
                age(t),
                limits.pending_critical.as_secs()
            );
        }
    }
    // The text part of a plugin line ends at the first '|', where perfdata begins.
    let text = crate::text::escape(&text).replace('|', "/");
    let line = format!(
        "VENDORGUARD {} - {text} | sources={} failing={failing} pending={} oldest_pending_s={oldest}",
        level.word(),
        snap.sources.len(),
        snap.pending,
    );
    (level, line)
}

/// `status --check`: prints the plugin line; every failure to read is UNKNOWN.
pub fn run_check(config: anyhow::Result<Option<Config>>, now: SystemTime) -> Outcome {
    let result = config.and_then(|c| {
        let c = c.ok_or_else(|| anyhow::anyhow!(super::setup::NO_CONFIG))?;
        let state = super::watch::existing_state(&c)?;
        let snap = Snapshot::read(&c, &*state)?;
        Ok(check_line(&snap, Limits::of(&c), now))
    });
    let (level, line) = result.unwrap_or_else(|e| {
        let why = crate::text::escape(&crate::cmd::error_line(&e)).replace('|', "/");
        (Level::Unknown, format!("VENDORGUARD UNKNOWN - {why}"))
    });
    println!("{line}");
    level.outcome()
}

/// `status --prometheus`.
///
/// # Errors
///
/// No configuration, or a state that cannot be read.
pub fn run_prometheus(config: Option<&Config>) -> anyhow::Result<Outcome> {
    let config = config.ok_or_else(|| anyhow::anyhow!(super::setup::NO_CONFIG))?;
    let state = super::watch::existing_state(config)?;
    print!("{}", prometheus_text(&Snapshot::read(config, &*state)?));
    Ok(Outcome::Clean)
}

/// A label value as the text format wants it: backslash, double quote and line feed
/// escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its HELP and TYPE lines, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// The snapshot in the Prometheus text exposition format (version 0.0.4).
pub fn prometheus_text(snap: &Snapshot) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "vendorguard_build_info",
        "gauge",
        "The vendorguard version that wrote these metrics (always 1).",
        &[(
            format!("version=\"{}\"", label(env!("CARGO_PKG_VERSION"))),
            "1".into(),
        )],
    );
    let polled: Vec<(String, &SourceHealth)> = snap
        .sources
        .iter()
        .filter_map(|s| {
            let labels = format!(
                "source=\"{}\",vendor=\"{}\",kind=\"{}\"",
                label(&s.url),
                label(&s.vendor),
                label(&s.kind)
            );
            Some((labels, s.health.as_ref()?))
        })
        .collect();
    let per_source = |f: &dyn Fn(&SourceHealth) -> Option<String>| -> Vec<(String, String)> {
        polled
            .iter()
            .filter_map(|(l, h)| Some((l.clone(), f(h)?)))
            .collect()
    };
    family(
        &mut out,
        "vendorguard_source_up",
        "gauge",
        "Whether the source's last poll succeeded (1) or failed (0).",
        &per_source(&|h| Some(u8::from(h.failures == 0).to_string())),
    );
    family(
        &mut out,
        "vendorguard_source_last_success_timestamp_seconds",
        "gauge",
        "When the source was last polled successfully, in seconds since the epoch.",
        &per_source(&|h| {
            h.last_success
                .map(|t| crate::text::unix_secs(t).to_string())
        }),
    );
    family(
        &mut out,
        "vendorguard_source_consecutive_failures",
        "gauge",
        "Failed polls of the source in a row.",
        &per_source(&|h| Some(h.failures.to_string())),
    );
    family(
        &mut out,
        "vendorguard_source_poll_duration_seconds",
        "gauge",
        "How long the source's last poll took, in seconds.",
        &per_source(&|h| h.last_poll.map(|d| format!("{:.3}", d.as_secs_f64()))),
    );
    let per_channel = |f: &dyn Fn(&ChannelView) -> Vec<(String, u64)>| -> Vec<(String, String)> {
        snap.channels
            .iter()
            .flat_map(|c| {
                f(c).into_iter().map(move |(extra, v)| {
                    (
                        format!("channel=\"{}\"{extra}", label(&c.name)),
                        v.to_string(),
                    )
                })
            })
            .collect()
    };
    family(
        &mut out,
        "vendorguard_events_pending",
        "gauge",
        "Events not yet delivered on the channel.",
        &per_channel(&|c| vec![(String::new(), c.pending)]),
    );
    family(
        &mut out,
        "vendorguard_deliveries_total",
        "counter",
        "Delivery attempts on the channel, by result.",
        &per_channel(&|c| {
            vec![
                (",result=\"delivered\"".into(), c.delivered),
                (",result=\"failed\"".into(), c.failed),
            ]
        }),
    );
    family(
        &mut out,
        "vendorguard_events_total",
        "counter",
        "Events raised and stored, by kind.",
        &snap
            .events
            .iter()
            .map(|(k, n)| (format!("kind=\"{}\"", label(k)), n.to_string()))
            .collect::<Vec<_>>(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const NOW: u64 = 1_800_000_000;

    fn at(secs_ago: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW - secs_ago)
    }

    fn source(failures: u32, success_ago: Option<u64>) -> SourceView {
        SourceView {
            vendor: "acme".into(),
            kind: "feed".into(),
            url: "https://acme.example/feed|x".into(),
            health: Some(SourceHealth {
                failures,
                last_success: success_ago.map(at),
                first_seen: Some(at(100_000)),
                last_error_code: (failures > 0).then(|| "feed-unreachable".to_string()),
                ..Default::default()
            }),
        }
    }

    /// `sources`: (failures in a row, last success seconds ago); `pending`: (seconds
    /// ago, pending everywhere).
    fn check(sources: &[(u32, Option<u64>)], pending: &[(u64, bool)], want: Level, has: &str) {
        let snap = Snapshot {
            sources: sources.iter().map(|&(f, s)| source(f, s)).collect(),
            pending: pending.len() as u64,
            oldest_pending: pending.iter().map(|p| at(p.0)).min(),
            oldest_undelivered: pending.iter().filter(|p| p.1).map(|p| at(p.0)).min(),
            ..Default::default()
        };
        let limits = Limits {
            failures_before_alert: 3,
            stale_after: Some(Duration::from_secs(86_400)),
            pending_critical: Duration::from_secs(3600),
        };
        let (level, line) = check_line(&snap, limits, at(0));
        assert_eq!(level, want, "{line}");
        assert!(line.contains(has), "{line:?} lacks {has:?}");
        assert_eq!(line.matches('|').count(), 1, "{line}");
        assert!(
            line.starts_with(&format!("VENDORGUARD {} - ", want.word())),
            "{line}"
        );
    }

    #[test]
    fn levels() {
        check(
            &[],
            &[],
            Level::Ok,
            "| sources=0 failing=0 pending=0 oldest_pending_s=0",
        );
        check(&[(0, Some(60))], &[], Level::Ok, "1 source polled fine");
        check(
            &[(1, Some(60))],
            &[],
            Level::Warning,
            "1 failed poll in a row, feed-unreachable",
        );
        check(&[(3, Some(60))], &[], Level::Critical, "failing=1 ");
        check(
            &[(0, Some(90_000))],
            &[],
            Level::Critical,
            "no success for 90000s",
        );
        check(&[(1, None)], &[], Level::Critical, "failing=1");
        check(
            &[(0, Some(60))],
            &[(7200, false)],
            Level::Warning,
            "pending=1 oldest_pending_s=7200",
        );
        check(
            &[(0, Some(60))],
            &[(600, true)],
            Level::Warning,
            "1 event pending, oldest 600s",
        );
        check(
            &[],
            &[(600, true), (3601, true)],
            Level::Critical,
            "undeliverable on every channel for 3601s",
        );
        check(
            &[(1, Some(60))],
            &[(3601, false)],
            Level::Warning,
            "https://acme.example/feed/x",
        );
    }

    #[test]
    fn prometheus_labels_are_escaped_and_absent_values_omitted() {
        let mut s = source(2, None);
        s.vendor = "a\"b\\c\nd".into();
        let snap = Snapshot {
            sources: vec![
                s,
                SourceView {
                    vendor: "never".into(),
                    kind: "feed".into(),
                    url: "u".into(),
                    health: None,
                },
            ],
            channels: vec![ChannelView {
                name: "email".into(),
                pending: 2,
                delivered: 5,
                failed: 1,
            }],
            events: vec![("advisory-new".into(), 7)],
            ..Default::default()
        };
        let text = prometheus_text(&snap);
        assert!(text.contains(r#"vendor="a\"b\\c\nd""#), "{text}");
        assert!(!text.contains("never"), "{text}");
        assert!(
            !text.contains("vendorguard_source_last_success_timestamp_seconds{"),
            "{text}"
        );
        assert!(text.contains("vendorguard_source_up{source=\"https://acme.example/feed|x\",vendor=\"a\\\"b\\\\c\\nd\",kind=\"feed\"} 0\n"), "{text}");
        assert!(
            text.contains("vendorguard_deliveries_total{channel=\"email\",result=\"failed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("vendorguard_events_total{kind=\"advisory-new\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE vendorguard_deliveries_total counter\n"),
            "{text}"
        );
    }
}
