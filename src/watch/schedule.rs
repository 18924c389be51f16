//! When the daemon polls each source: all at start, then each on its own interval plus
//! up to 10% jitter, so sources with the same interval do not poll in lockstep.
//!
//! Time comes from the caller (tokio's clock in the daemon), so tests can drive it.
//! Polling, delivering and stopping on a signal are the `watch` command's job.

use std::time::Duration;

use tokio::time::Instant;

use crate::watch::source::Source;

/// The sources and when each is next due.
pub struct Schedule {
    sources: Vec<Source>,
    due: Vec<Instant>,
}

impl Schedule {
    /// Every source due at `start`.
    pub fn new(sources: Vec<Source>, start: Instant) -> Schedule {
        let due = vec![start; sources.len()];
        Schedule { sources, due }
    }

    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// The sources due at `now`.
    pub fn ready(&self, now: Instant) -> Vec<Source> {
        self.sources
            .iter()
            .zip(&self.due)
            .filter(|(_, d)| **d <= now)
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Schedules the next poll of each of `polled`, one interval (plus jitter) after
    /// `now`.
    pub fn polled(&mut self, polled: &[Source], now: Instant) {
        for (s, d) in self.sources.iter().zip(self.due.iter_mut()) {
            if polled.iter().any(|r| r.id == s.id) {
                let tenth = (s.interval.as_millis() as u64 / 10).max(1);
                *d = now + s.interval + Duration::from_millis(fastrand::u64(0..=tenth));
            }
        }
    }

    /// When the next source is due; `now + idle` when there is none.
    pub fn next(&self, now: Instant, idle: Duration) -> Instant {
        self.due.iter().min().copied().unwrap_or(now + idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FeedFormat;
    use crate::watch::source::SourceKind;

    fn source(id: &str, minutes: u64) -> Source {
        Source {
            id: id.into(),
            vendor: "acme".into(),
            kind: SourceKind::Feed(FeedFormat::Auto),
            url: format!("https://acme.example/{id}"),
            interval: Duration::from_secs(60 * minutes),
        }
    }

    fn ids(sources: &[Source]) -> Vec<&str> {
        sources.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn each_source_on_its_own_interval_with_bounded_jitter() {
        let t0 = Instant::now();
        let min = Duration::from_secs(60);
        let mut s = Schedule::new(vec![source("fast", 10), source("slow", 60)], t0);
        assert_eq!(ids(&s.ready(t0)), ["fast", "slow"]);
        s.polled(&s.ready(t0), t0);
        assert!(s.ready(t0 + min * 9).is_empty());
        let next = s.next(t0, min);
        assert!(next >= t0 + min * 10 && next <= t0 + min * 11, "{next:?}");
        assert_eq!(ids(&s.ready(t0 + min * 11)), ["fast"]);
        assert_eq!(ids(&s.ready(t0 + min * 66)), ["fast", "slow"]);
        let empty = Schedule::new(Vec::new(), t0);
        assert_eq!(empty.next(t0, min), t0 + min);
    }
}
