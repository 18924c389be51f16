//! One pass over the sources (all of them for `watch --once`, the due ones for each of
//! the daemon's passes): poll, compare with what was seen, record.
//!
//! Each source is polled on its own task; the HTTP politeness limits live in `fetch`.
//! Results come back to this task, which alone touches the store: it compares items with
//! what was seen, turns differences into events, and commits the source's new state and
//! its events in one transaction, with how long the poll took (tokio's clock, for
//! monitoring). One failing source is recorded and reported; it never
//! stops the others. After `failures_before_alert` failed polls in a row (or no success
//! for `stale_after`) a source gets one `source-failing` event, and one
//! `source-recovered` when it comes back. Each advisory is matched to the inventory
//! the command handed in (`affects`): one that affects an installed product is at least
//! `high`, one that affects nothing installed `info`. The first successful poll of a
//! feed records its backlog and emits one summary event instead of one per entry, except
//! for advisories that affect an installed product: those are news, one by one. A CSAF provider's
//! advisory problems are remembered per advisory and code: a new one is raised once (the
//! first `problem_events` of a poll one by one, the rest folded into one summary event
//! per kind), a persisting one never again, and a fixed one is cleared when its advisory
//! verifies; while any is open the source counts as degraded. Advisories held back for
//! their signer that verify once the key is pinned are announced the same way (the
//! first `problem_events` one by one, the rest in one `advisories-released` summary).
//! Key URL results are recorded after the pass's other sources, so a vendor's key
//! rotation seen by both is the CSAF provider's one incident. Delivering events is
//! `alert`'s job.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;

use crate::alert::event::{Event, Kind, Severity};
use crate::config::{Config, ExpiredSigner, FeedFormat};
use crate::inventory::Inventory;
use crate::store::{
    EntryWrite, FailureCommit, Lease, PollCommit, ProblemRow, SourceHealth, SourceRow, Store,
    StoreError,
};
use crate::verify::keyring::Keyring;
use crate::verify::{Acceptance, SignerPolicy};
use crate::watch::feeds::{self, FeedError, Item};
use crate::watch::fetch::{Fetched, Fetcher, Validators};
use crate::watch::source::{sources, PollError, Source, SourceKind};

/// How one source's poll went, for the summary line.
#[derive(Debug, Clone)]
pub struct SourceOutcome {
    pub source: Source,
    /// `ok`, `not-modified`, `skipped` (another instance holds it), or the failure code.
    pub status: &'static str,
    pub detail: String,
    pub items: usize,
    pub new_events: usize,
    /// Open CSAF advisory problems after the poll, per code.
    pub open_problems: BTreeMap<String, usize>,
}

/// What a poll task sends back.
enum Polled {
    NotModified,
    /// A CSAF listing that did not change, with the side files its slice fetched.
    CsafUnchanged(Vec<crate::store::SideFiles>),
    Items {
        items: Vec<Item>,
        validators: (Option<String>, Option<String>),
    },
    Csaf(Box<crate::watch::csaf::CsafPoll>),
    Key(Vec<Event>),
}

/// What every pass needs besides the state: the configuration, the one HTTP client
/// (its politeness limits span all sources), and each vendor's pinned keyring.
pub struct Watcher<'a> {
    pub config: &'a Config,
    /// What is installed, for matching advisories (built by the command).
    inventory: Inventory,
    fetcher: Arc<Fetcher>,
    keyrings: HashMap<String, Arc<Keyring>>,
}

impl<'a> Watcher<'a> {
    /// Loads each vendor's keyring (a broken one is logged when the vendor has sources
    /// that need it, and those sources fail) and builds the HTTP client.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be set up.
    pub fn new(config: &'a Config, inventory: Inventory) -> anyhow::Result<Watcher<'a>> {
        let mut keyrings = HashMap::new();
        for v in &config.vendors {
            match Keyring::load(std::slice::from_ref(&v.keyring)) {
                Ok(k) => {
                    keyrings.insert(v.name.clone(), Arc::new(k));
                }
                Err(e)
                    if v.key_url.is_some()
                        || v.feeds.iter().any(|f| f.format == FeedFormat::Csaf) =>
                {
                    tracing::warn!("vendor {}: {e}", v.name);
                }
                Err(_) => {}
            }
        }
        Ok(Watcher {
            config,
            inventory,
            fetcher: Arc::new(Fetcher::new(&config.watch)?),
            keyrings,
        })
    }

    /// Polls `only` (or every source) once and records the results. The CSAF
    /// providers of vendor `recheck` download and check every listed advisory again,
    /// changed or not (`watch --recheck`).
    ///
    /// Each source is polled under its lease in the state: a source another instance
    /// is polling is skipped (outcome `skipped`), and so, with `share`, is one another
    /// instance polled less than half its interval ago (daemons sharing a state take
    /// turns rather than each polling every source).
    ///
    /// # Errors
    ///
    /// Only a state database failure; source failures are recorded and reported in
    /// the outcomes.
    pub async fn run_pass(
        &self,
        state: &mut dyn Store,
        only: Option<&[Source]>,
        recheck: Option<&str>,
        share: bool,
        now: SystemTime,
    ) -> Result<Vec<SourceOutcome>, StoreError> {
        let (config, fetcher, keyrings) = (self.config, &self.fetcher, &self.keyrings);
        let ctx = Ctx {
            config,
            inventory: &self.inventory,
        };
        let all = sources(config);
        let list: Vec<Source> = only.map(<[Source]>::to_vec).unwrap_or(all);
        let mut set = JoinSet::new();
        let mut tasks: HashMap<tokio::task::Id, Source> = HashMap::new();
        let mut priors: HashMap<String, Option<SourceRow>> = HashMap::new();
        let timings: Arc<std::sync::Mutex<HashMap<String, Duration>>> = Arc::default();
        let mut outcomes = Vec::new();
        // Every source's lease in one transaction, then every stored row in one read.
        let wanted: Vec<_> = list
            .iter()
            .map(|s| (s.store_ref(), share.then_some(s.interval / 2)))
            .collect();
        let leases = state.lease_sources(&wanted, now)?;
        let mut rows: HashMap<String, SourceRow> = state
            .sources()?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        for (s, lease) in list.iter().zip(leases) {
            if let Some(skipped) = skipped(s, lease) {
                outcomes.push(skipped);
                continue;
            }
            let row = rows.remove(&s.id);
            let read = |state: &mut dyn Store| -> Result<_, StoreError> {
                let validators = row
                    .as_ref()
                    .filter(|r| r.initialized)
                    .map(|r| Validators {
                        etag: r.etag.clone(),
                        last_modified: r.last_modified.clone(),
                    })
                    .unwrap_or_default();
                let known = if s.kind == SourceKind::Feed(FeedFormat::Csaf) {
                    let pinned = pinned_fingerprints(keyrings.get(&s.vendor).map(|k| &**k));
                    crate::watch::csaf::Known {
                        entries: state.entries(&s.id)?,
                        problems: state.problems(&s.id)?,
                        recheck: recheck == Some(s.vendor.as_str()),
                        keyring_changed: state.keyring_seen(&s.id)?.as_deref() != Some(&pinned),
                        pinned,
                        listing: state.listing_validators(&s.id)?,
                        side_files: state.side_files(&s.id)?,
                        interval: s.interval,
                    }
                } else {
                    crate::watch::csaf::Known::default()
                };
                Ok((row, validators, known))
            };
            let (row, validators, known) = match read(state) {
                Ok(r) => r,
                Err(e) => {
                    // The lease is given back: another instance need not wait for it.
                    let _ = state.release_source(&s.id);
                    return Err(e);
                }
            };
            priors.insert(s.id.clone(), row);
            let acceptance = config.vendor(&s.vendor).map_or(
                Acceptance {
                    threshold: crate::config::DEFAULT_SIGNATURES,
                    signers: SignerPolicy::default(),
                },
                |v| Acceptance {
                    threshold: v.signatures,
                    signers: SignerPolicy {
                        reject_expired_signer: v.expired_signer == ExpiredSigner::Reject,
                        max_signature_age: v.max_signature_age,
                    },
                },
            );
            let (f, src, kr) = (fetcher.clone(), s.clone(), keyrings.get(&s.vendor).cloned());
            let timings = timings.clone();
            let task = set.spawn(async move {
                // tokio's clock: how long the poll took, for monitoring.
                let start = tokio::time::Instant::now();
                let r = poll_source(&f, &src, validators, known, kr, acceptance, now).await;
                if let Ok(mut t) = timings.lock() {
                    t.insert(src.id.clone(), start.elapsed());
                }
                r
            });
            tasks.insert(task.id(), s.clone());
        }
        // Key URL results are recorded last: a new key that a CSAF provider of the same
        // vendor already signs with is then one incident, the one naming its advisories
        // (both events have the same id, and the first stored wins).
        let mut key_results = Vec::new();
        // The first source the state refused: the others are still recorded.
        let mut failed: Option<StoreError> = None;
        while let Some(joined) = set.join_next_with_id().await {
            let Some((src, result)) = task_result(joined, &mut tasks) else {
                continue;
            };
            if src.kind == SourceKind::KeyUrl {
                key_results.push((src, result));
                continue;
            }
            let took = took(&timings, &src);
            let recorded = record(&ctx, state, &mut priors, &src, result, took, now);
            keep_going(state, &src, recorded, &mut outcomes, &mut failed);
        }
        for (src, result) in key_results {
            let took = took(&timings, &src);
            let recorded = record(&ctx, state, &mut priors, &src, result, took, now);
            keep_going(state, &src, recorded, &mut outcomes, &mut failed);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        outcomes.sort_by(|a, b| {
            (&a.source.vendor, &a.source.url).cmp(&(&b.source.vendor, &b.source.url))
        });
        Ok(outcomes)
    }
}

/// Keeps `recorded`'s outcome; a source the state refused to record keeps the pass
/// going (its lease given back), the first such error is returned at its end.
fn keep_going(
    state: &mut dyn Store,
    src: &Source,
    recorded: Result<SourceOutcome, StoreError>,
    outcomes: &mut Vec<SourceOutcome>,
    failed: &mut Option<StoreError>,
) {
    match recorded {
        Ok(o) => outcomes.push(o),
        Err(e) => {
            tracing::warn!("{}: the state refused its poll: {e}", src.url);
            let _ = state.release_source(&src.id);
            failed.get_or_insert(e);
        }
    }
}

/// The outcome of a source this instance may not poll now, or `None` when it holds the
/// lease.
fn skipped(s: &Source, lease: Lease) -> Option<SourceOutcome> {
    let detail = match lease {
        Lease::Taken => return None,
        Lease::Held { by, until } => format!(
            "being polled by instance {} (lease until {})",
            crate::text::escape(&by),
            crate::text::time(until)
        ),
        Lease::Fresh { by, at } => format!(
            "polled by instance {} at {}",
            crate::text::escape(&by),
            crate::text::time(at)
        ),
    };
    Some(SourceOutcome {
        source: s.clone(),
        status: "skipped",
        detail,
        items: 0,
        new_events: 0,
        open_problems: BTreeMap::new(),
    })
}

/// A vendor's pinned primary fingerprints, sorted and comma-separated: what a CSAF
/// poll compares with the last poll's to tell whether the keyring changed.
fn pinned_fingerprints(keyring: Option<&Keyring>) -> String {
    let mut fprs: Vec<String> = keyring
        .map(|k| k.certs().iter().map(|c| c.fingerprint().to_hex()).collect())
        .unwrap_or_default();
    fprs.sort();
    fprs.dedup();
    fprs.join(",")
}

/// How long `src`'s poll task took; `None` when it did not finish (a panic).
fn took(timings: &std::sync::Mutex<HashMap<String, Duration>>, src: &Source) -> Option<Duration> {
    timings.lock().ok()?.remove(&src.id)
}

/// The source and result of a finished poll task. A task that panicked (or was
/// cancelled) is its source's `internal-error` failure: it is recorded and counted like
/// any failure, never dropped. `None` only for a task this pass did not start.
fn task_result<T>(
    joined: Result<(tokio::task::Id, Result<T, PollError>), tokio::task::JoinError>,
    tasks: &mut HashMap<tokio::task::Id, Source>,
) -> Option<(Source, Result<T, PollError>)> {
    match joined {
        Ok((id, result)) => Some((tasks.remove(&id)?, result)),
        Err(e) => {
            let src = tasks.remove(&e.id())?;
            let what = if e.is_panic() {
                let payload = e.into_panic();
                let text = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                format!("panicked ({text}); this is a bug in vendorguard, please report it")
            } else {
                "was cancelled".into()
            };
            let failure =
                PollError::new("internal-error", format!("the poll of {} {what}", src.url));
            Some((src, Err(failure)))
        }
    }
}

async fn poll_source(
    fetcher: &Arc<Fetcher>,
    s: &Source,
    validators: Validators,
    known: crate::watch::csaf::Known,
    keyring: Option<Arc<Keyring>>,
    acceptance: Acceptance,
    now: SystemTime,
) -> Result<Polled, PollError> {
    // Every kind named: a new feed format does not compile until it is polled here.
    match s.kind {
        SourceKind::Feed(FeedFormat::Csaf) => crate::watch::csaf::poll(
            fetcher.clone(),
            s.vendor.clone(),
            s.url.clone(),
            known,
            keyring,
            acceptance,
            now,
        )
        .await
        .map(|p| match p {
            crate::watch::csaf::Outcome::Unchanged(f) => Polled::CsafUnchanged(f),
            crate::watch::csaf::Outcome::Polled(c) => Polled::Csaf(c),
        }),
        SourceKind::KeyUrl => {
            let keyring = keyring.ok_or_else(|| {
                PollError::new(
                    "key-no-pinned-key",
                    format!(
                        "nothing is pinned for vendor {} to compare {} with",
                        s.vendor, s.url
                    ),
                )
            })?;
            match fetcher.get(&s.url, &Validators::default()).await? {
                Fetched::NotModified => Ok(Polled::NotModified),
                Fetched::Body { bytes, .. } => {
                    crate::watch::keywatch::compare(&s.vendor, &s.url, &bytes, &keyring, now)
                        .map(Polled::Key)
                }
            }
        }
        SourceKind::Feed(FeedFormat::Auto) => {
            poll_items(fetcher, s, &validators, |b| feeds::parse_feed(b, &s.url)).await
        }
        SourceKind::Feed(FeedFormat::CisaKev) => {
            poll_items(fetcher, s, &validators, feeds::parse_cisa_kev).await
        }
    }
}

/// Fetches a feed of items and parses it with `parse`.
async fn poll_items(
    fetcher: &Fetcher,
    s: &Source,
    validators: &Validators,
    parse: impl FnOnce(&[u8]) -> Result<Vec<Item>, FeedError>,
) -> Result<Polled, PollError> {
    match fetcher.get(&s.url, validators).await? {
        Fetched::NotModified => Ok(Polled::NotModified),
        Fetched::Body {
            bytes,
            etag,
            last_modified,
        } => Ok(Polled::Items {
            items: parse(&bytes)
                .map_err(|e| e.at(&s.url))?
                .into_iter()
                .map(Item::without_nul)
                .collect(),
            validators: (etag, last_modified),
        }),
    }
}

/// What recording a poll needs besides the state.
struct Ctx<'c> {
    config: &'c Config,
    inventory: &'c Inventory,
}

fn record(
    ctx: &Ctx,
    state: &mut dyn Store,
    priors: &mut HashMap<String, Option<SourceRow>>,
    src: &Source,
    result: Result<Polled, PollError>,
    took: Option<Duration>,
    now: SystemTime,
) -> Result<SourceOutcome, StoreError> {
    let prior = priors.remove(&src.id).flatten();
    match result {
        Ok(polled) => record_success(ctx, state, src, prior.as_ref(), polled, took, now),
        Err(failure) => record_failure(ctx.config, state, src, &failure, took, now),
    }
}

fn recovered(src: &Source, prior: Option<&SourceRow>, now: SystemTime) -> Option<Event> {
    let p = &prior?.health;
    if !p.failing_alerted {
        return None;
    }
    let since = failing_since(p);
    let title = format!(
        "{} {} answers again (failing since {since})",
        src.vendor,
        src.kind.code()
    );
    let what = format!("recovered after failing since {since}");
    Some(src.event(
        Kind::SourceRecovered,
        &what,
        Severity::Info,
        title,
        src.url.clone(),
        now,
    ))
}

fn record_success(
    ctx: &Ctx,
    state: &mut dyn Store,
    src: &Source,
    prior: Option<&SourceRow>,
    polled: Polled,
    took: Option<Duration>,
    now: SystemTime,
) -> Result<SourceOutcome, StoreError> {
    let config = ctx.config;
    let first = !prior.is_some_and(|p| p.initialized);
    let mut events: Vec<Event> = recovered(src, prior, now).into_iter().collect();
    let mut entries: Vec<EntryWrite> = Vec::new();
    let mut validators = None;
    let mut problems: Option<Vec<ProblemRow>> = None;
    let mut keyring = None;
    let mut listing = None;
    let mut side_files = None;
    let (status, items_n) = match polled {
        Polled::NotModified => ("not-modified", 0),
        Polled::CsafUnchanged(f) => {
            // A CSAF listing that did not change keeps its open problems: counted still.
            problems = Some(state.problems(&src.id)?);
            side_files = Some(f);
            ("not-modified", 0)
        }
        Polled::Items {
            items,
            validators: v,
        } => {
            validators = Some(v);
            let known = state.entries(&src.id)?;
            let mut new_items = 0usize;
            for it in &items {
                let affects = item_affects(ctx, src, it);
                match known.get(&it.key) {
                    None => {
                        // On the first poll only what affects an installed product is
                        // news; the rest is the backlog.
                        if !first || is_affected(affects.as_ref()) {
                            let e = advisory_event(Kind::AdvisoryNew, src, it, now);
                            events.push(matched(e, affects));
                        } else {
                            new_items += 1;
                        }
                    }
                    Some(k) if k.content_hash != it.content_hash || k.updated != it.updated => {
                        let e = advisory_event(Kind::AdvisoryUpdated, src, it, now);
                        events.push(matched(e, affects));
                    }
                    Some(_) => continue,
                }
                entries.push(EntryWrite {
                    key: it.key.clone(),
                    content_hash: it.content_hash.clone(),
                    updated: it.updated.clone(),
                    title: it.title.clone(),
                    url: it.url.clone(),
                });
            }
            if first && new_items > 0 {
                events.push(backlog_event(src, new_items, now));
            }
            ("ok", items.len())
        }
        Polled::Csaf(c) => {
            let c = *c;
            let known = c.known;
            keyring = Some(known.pinned.clone());
            listing = Some(c.listing);
            side_files = Some(c.side_files);
            entries.extend(c.entries);
            events.extend(c.notices);
            let (raised, open) = fold_problems(
                src,
                config.watch.problem_events,
                &known.problems,
                c.problems,
                now,
            );
            events.extend(raised);
            problems = Some(open);
            // What an advisory that verifies now was failing with before.
            let mut resolved: HashMap<&str, Vec<&str>> = HashMap::new();
            for p in &known.problems {
                resolved
                    .entry(p.advisory_url.as_str())
                    .or_default()
                    .push(p.code.as_str());
            }
            let mut new_items = 0;
            let n = c.advisories.len();
            let mut released = Vec::new();
            for mut advisory in c.advisories {
                let codes = resolved.get(advisory.event.url.as_str());
                if let Some(codes) = codes {
                    advisory.event = advisory.event.with("resolved", codes.join(","));
                }
                let affects =
                    crate::watch::affects::match_csaf(&advisory.claims, config, ctx.inventory);
                let news = is_affected(affects.as_ref());
                advisory.event = matched(advisory.event, affects);
                match known.entries.get(&advisory.entry.key) {
                    None if first && news => events.push(advisory.event.clone()),
                    None => {
                        new_items += 1;
                        if !first {
                            if codes.is_some_and(|c| c.contains(&crate::watch::csaf::HELD)) {
                                released.push(advisory.event);
                            } else {
                                events.push(advisory.event);
                            }
                        }
                    }
                    // A new version, or the same version changed in place.
                    Some(k)
                        if k.updated != advisory.entry.updated
                            || k.content_hash != advisory.entry.content_hash =>
                    {
                        events.push(advisory.updated_event());
                    }
                    Some(_) => {}
                }
                entries.push(advisory.entry);
            }
            if first && new_items > 0 {
                events.push(backlog_event(src, new_items, now));
            }
            events.extend(fold_released(
                src,
                config.watch.problem_events,
                released,
                now,
            ));
            ("ok", n)
        }
        Polled::Key(key_events) => {
            let n = key_events.len();
            events.extend(key_events);
            ("ok", n)
        }
    };
    let contact = vendor_contact(config, src);
    for e in &mut events {
        e.set_contact(contact);
    }
    let inserted = state.commit_poll(&PollCommit {
        source: src.store_ref(),
        validators,
        entries: &entries,
        problems: problems.as_deref(),
        events: &events,
        listing: listing.as_deref(),
        keyring: keyring.as_deref(),
        side_files: side_files.as_deref(),
        now,
        duration: took,
    })?;
    let mut open_problems = BTreeMap::new();
    for p in problems.iter().flatten() {
        *open_problems.entry(p.code.clone()).or_insert(0) += 1;
    }
    Ok(SourceOutcome {
        source: src.clone(),
        status,
        detail: String::new(),
        items: items_n,
        new_events: inserted,
        open_problems,
    })
}

/// Splits a poll's advisory problems into the events to raise and the rows to remember.
/// A problem already open (same advisory, same code) keeps its first-seen time and
/// raises nothing. Of the new ones, the first `one_by_one` (by advisory URL) are raised
/// as they are; the rest are folded into one summary event per kind, so one broken
/// provider cannot send on-call thousands of alerts.
fn fold_problems(
    src: &Source,
    one_by_one: usize,
    open_before: &[ProblemRow],
    problems: Vec<crate::watch::csaf::Problem>,
    now: SystemTime,
) -> (Vec<Event>, Vec<ProblemRow>) {
    let before: HashMap<(&str, &str), SystemTime> = open_before
        .iter()
        .map(|p| ((p.advisory_url.as_str(), p.code.as_str()), p.first_seen))
        .collect();
    let mut rows = Vec::with_capacity(problems.len());
    let mut fresh = Vec::new();
    for p in problems {
        let first_seen = before.get(&(p.advisory_url.as_str(), p.code)).copied();
        rows.push(ProblemRow {
            advisory_url: p.advisory_url.clone(),
            code: p.code.to_string(),
            first_seen: first_seen.unwrap_or(now),
            listed_updated: p.listed_updated.clone(),
        });
        // A problem named by a key rotation incident raises nothing of its own.
        if let (None, Some(event)) = (first_seen, p.event.clone()) {
            fresh.push((p, event));
        }
    }
    let folded = fresh.split_off(one_by_one.min(fresh.len()));
    let mut events: Vec<Event> = fresh.into_iter().map(|(_, e)| e).collect();
    let mut by_kind: BTreeMap<Kind, Vec<(crate::watch::csaf::Problem, Event)>> = BTreeMap::new();
    for (p, e) in folded {
        by_kind.entry(e.kind).or_default().push((p, e));
    }
    for (kind, group) in by_kind {
        events.push(problems_summary(src, kind, &group, now));
    }
    (events, rows)
}

/// One event for the new problems of one kind beyond the one-by-one quota.
fn problems_summary(
    src: &Source,
    kind: Kind,
    folded: &[(crate::watch::csaf::Problem, Event)],
    now: SystemTime,
) -> Event {
    let n = folded.len();
    let mut codes: BTreeMap<&str, usize> = BTreeMap::new();
    for (p, _) in folded {
        *codes.entry(p.code).or_insert(0) += 1;
    }
    let codes = codes
        .iter()
        .map(|(c, k)| format!("{c} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (first, names) = crate::watch::csaf::name_list(
        folded
            .iter()
            .map(|(p, _)| crate::watch::csaf::file_name(&p.advisory_url)),
    );
    let what = match (kind, n) {
        (Kind::UnexpectedSigner, 1) => "advisory is signed only by keys that are not pinned",
        (Kind::UnexpectedSigner, _) => "advisories are signed only by keys that are not pinned",
        (_, 1) => "advisory failed its checks",
        _ => "advisories failed their checks",
    };
    let when = match kind {
        Kind::UnexpectedSigner => "once the vendor's pinned keys change",
        _ => "every poll",
    };
    let title = format!(
        "{} CSAF provider: {n} more {what} ({codes}): {names}; each is checked again {when} (vendorguard status counts them)",
        src.vendor
    );
    let at = format!("advisory problems {}", crate::text::unix_secs(now));
    let mut e = src
        .event(kind, &at, Severity::High, title, src.url.clone(), now)
        .with("code", "advisories-failing")
        .with("count", n.to_string())
        .with("codes", codes)
        .with("advisories", first);
    let mut fprs: Vec<&str> = folded
        .iter()
        .filter_map(|(_, e)| e.fields.get("fingerprint").map(String::as_str))
        .collect();
    fprs.sort_unstable();
    fprs.dedup();
    match fprs.as_slice() {
        [] => {}
        [one] => e = e.with("fingerprint", *one),
        many => e = e.with("fingerprints", many.join(", ")),
    }
    e
}

/// The advisories of one poll that were held back for their signer and verify now
/// (their key was pinned): the first `one_by_one` announced as they are, the rest in
/// one `advisory-new` summary (code `advisories-released`) at the highest severity.
fn fold_released(
    src: &Source,
    one_by_one: usize,
    mut released: Vec<Event>,
    now: SystemTime,
) -> Vec<Event> {
    let folded = released.split_off(one_by_one.min(released.len()));
    if folded.is_empty() {
        return released;
    }
    let n = folded.len();
    let (first, names) =
        crate::watch::csaf::name_list(folded.iter().map(|e| crate::watch::csaf::file_name(&e.url)));
    let severity = folded
        .iter()
        .map(|e| e.severity)
        .max()
        .unwrap_or(Severity::Info);
    let what = if n == 1 {
        "advisory held back for its signer verifies"
    } else {
        "advisories held back for their signer verify"
    };
    released.push(
        Event::new(
            Kind::AdvisoryNew,
            &src.vendor,
            &format!("{} released {}", src.id, crate::text::unix_secs(now)),
            severity,
            format!("{} CSAF provider: {n} more {what} now: {names}", src.vendor),
            src.url.clone(),
            now,
        )
        .with("source", src.url.clone())
        .with("code", "advisories-released")
        .with("count", n.to_string())
        .with("advisories", first),
    );
    released
}

fn advisory_event(kind: Kind, src: &Source, it: &Item, now: SystemTime) -> Event {
    let what = match kind {
        Kind::AdvisoryNew => it.key.clone(),
        _ => format!("{} {} {:?}", it.key, it.content_hash, it.updated),
    };
    let severity = it.severity.unwrap_or(Severity::Unknown);
    let mut e = src
        .event(kind, &what, severity, it.title.clone(), it.url.clone(), now)
        .with("entry_key", it.key.clone());
    for (k, v) in &it.fields {
        e = e.with(k, v.clone());
    }
    e.cves = it.cves.clone();
    if let Some(a) = &it.advisory_id {
        e = e.with("advisory_id", a.clone());
    }
    if let Some(u) = &it.updated {
        e = e.with("updated", u.clone());
    }
    e
}

/// What `it` means for the installed products: a CISA KEV entry by its
/// `vendorProject`/`product`, a feed entry by its title and summary.
fn item_affects(ctx: &Ctx, src: &Source, it: &Item) -> Option<crate::alert::event::Affects> {
    use crate::watch::affects::{match_kev, match_text};
    if src.kind == SourceKind::Feed(FeedFormat::CisaKev) {
        let field = |k: &str| {
            it.fields
                .iter()
                .find(|(f, _)| *f == k)
                .map_or("", |(_, v)| v.as_str())
        };
        match_kev(
            field("vendorProject"),
            field("product"),
            ctx.config,
            ctx.inventory,
        )
    } else {
        let text = format!("{}\n{}", it.title, it.summary);
        match_text(&text, ctx.config, ctx.inventory)
    }
}

fn is_affected(a: Option<&crate::alert::event::Affects>) -> bool {
    a.is_some_and(|a| a.affected == Some(true))
}

/// `e` with what it means for the installed products: an advisory that affects one
/// is at least `high`, one that affects nothing installed is `info`.
fn matched(mut e: Event, affects: Option<crate::alert::event::Affects>) -> Event {
    match affects.as_ref().and_then(|a| a.affected) {
        Some(true) => e.severity = e.severity.max(Severity::High),
        Some(false) => e.severity = Severity::Info,
        None => {}
    }
    e.affects = affects;
    e
}

fn backlog_event(src: &Source, n: usize, now: SystemTime) -> Event {
    let title = format!("{n} advisories already published by {} recorded on the first poll; new ones will be alerted one by one", src.vendor);
    src.event(
        Kind::BacklogRecorded,
        "backlog",
        Severity::Info,
        title,
        src.url.clone(),
        now,
    )
    .with("backlog", n.to_string())
}

/// The `contact` of the vendor `src` belongs to: every event names whom to call.
fn vendor_contact<'c>(config: &'c Config, src: &Source) -> Option<&'c str> {
    config
        .vendor(&src.vendor)
        .and_then(|v| v.contact.as_deref())
}

fn record_failure(
    config: &Config,
    state: &mut dyn Store,
    src: &Source,
    failure: &PollError,
    took: Option<Duration>,
    now: SystemTime,
) -> Result<SourceOutcome, StoreError> {
    let (code, message) = (failure.code, failure.to_string());
    let threshold = config.watch.failures_before_alert;
    let stale_after = config.watch.stale_after;
    let commit = FailureCommit {
        source: src.store_ref(),
        code,
        error: &message,
        now,
        duration: took,
    };
    let (row, event) = state.commit_failure(&commit, &|row| {
        let row = &row.health;
        if !is_failing(row, threshold, stale_after, now) {
            return None;
        }
        let title = format!(
            "{} {} has failed {} polls in a row: {message}",
            src.vendor,
            src.kind.code(),
            row.failures
        );
        let what = format!("failing since {}", failing_since(row));
        let event = src.event(
            Kind::SourceFailing,
            &what,
            Severity::Medium,
            title,
            src.url.clone(),
            now,
        );
        let mut event = event
            .with("code", code)
            .with("failures", row.failures.to_string());
        event.set_contact(vendor_contact(config, src));
        Some(event)
    })?;
    Ok(SourceOutcome {
        source: src.clone(),
        status: code,
        detail: format!("{message} ({} in a row)", row.health.failures),
        items: 0,
        new_events: usize::from(event.is_some()),
        open_problems: BTreeMap::new(),
    })
}

impl SourceOutcome {
    /// Polled fine (new data or 304).
    /// Polled without failing, or left to the instance that holds it (`skipped`).
    pub fn is_success(&self) -> bool {
        matches!(self.status, "ok" | "not-modified" | "skipped")
    }

    /// Open CSAF advisory problems after the poll.
    pub fn problem_count(&self) -> usize {
        self.open_problems.values().sum()
    }

    /// Polled fine and nothing is left open: what exit code 0 needs.
    pub fn is_clean(&self) -> bool {
        self.is_success() && self.problem_count() == 0
    }
}

/// When the source started failing, for event identities and titles.
fn failing_since(row: &SourceHealth) -> String {
    row.failing_since.map(crate::text::time).unwrap_or_default()
}

/// Whether a source that just failed counts as failing: `threshold` failures in a row,
/// or no success for `stale_after` (counted from its first poll when it never
/// succeeded).
pub(crate) fn is_failing(
    row: &SourceHealth,
    threshold: u32,
    stale_after: Option<Duration>,
    now: SystemTime,
) -> bool {
    let stale = match (stale_after, row.last_success.or(row.first_seen)) {
        (Some(limit), Some(since)) => now.duration_since(since).unwrap_or_default() >= limit,
        _ => false,
    };
    row.failures >= threshold || stale
}

/// The one-line summary of a source's poll, for stderr.
pub fn summary_line(o: &SourceOutcome) -> String {
    let what = format!(
        "{} {} {}",
        o.source.vendor,
        o.source.kind.code(),
        o.source.url
    );
    let open = || {
        let codes: Vec<String> = o
            .open_problems
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        format!(
            "{} advisories with open problems ({})",
            o.problem_count(),
            codes.join(", ")
        )
    };
    match o.status {
        "ok" if o.problem_count() > 0 => format!(
            "problems: {what}: {}; {} entries, {} new events",
            open(),
            o.items,
            o.new_events
        ),
        "ok" => format!(
            "ok: {what}: {} entries, {} new events",
            o.items, o.new_events
        ),
        "not-modified" if o.problem_count() > 0 => {
            format!("problems: {what}: not modified; {}", open())
        }
        "not-modified" => format!("ok: {what}: not modified"),
        "skipped" => format!("skipped: {what}: {}", o.detail),
        _ => format!(
            "failed: {what}: {}{}",
            crate::text::escape(&o.detail),
            if o.new_events > 0 {
                " (source-failing raised)"
            } else {
                ""
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        failures: u32,
        last_success_ago: Option<u64>,
        first_seen_ago: u64,
        stale_after: Option<u64>,
        want: bool,
    ) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ago = |s: u64| now - Duration::from_secs(s);
        let row = SourceHealth {
            failures,
            last_success: last_success_ago.map(ago),
            first_seen: Some(ago(first_seen_ago)),
            ..Default::default()
        };
        assert_eq!(
            is_failing(&row, 3, stale_after.map(Duration::from_secs), now),
            want,
            "failures {failures}, last success {last_success_ago:?}s ago, stale_after {stale_after:?}"
        );
    }

    fn source(n: u32) -> Source {
        Source {
            id: format!("acme feed https://acme.example/{n}"),
            vendor: "acme".into(),
            kind: SourceKind::Feed(FeedFormat::Auto),
            url: format!("https://acme.example/{n}"),
            interval: Duration::from_secs(3600),
        }
    }

    /// Issue: a poll task that panicked was dropped without an outcome, so the pass
    /// could end clean with a source never polled.
    #[tokio::test]
    async fn a_panicking_poll_task_is_its_sources_internal_error() {
        let mut set = JoinSet::new();
        let mut tasks = HashMap::new();
        for n in 0..3u32 {
            let task = set.spawn(async move {
                if n == 1 {
                    panic!("poll {n} fell over");
                }
                Ok::<u32, PollError>(n)
            });
            tasks.insert(task.id(), source(n));
        }
        let mut got = Vec::new();
        while let Some(joined) = set.join_next_with_id().await {
            got.push(task_result(joined, &mut tasks).expect("every task has its source"));
        }
        got.sort_by(|a, b| a.0.url.cmp(&b.0.url));
        assert_eq!(got.len(), 3, "no task is dropped");
        assert_eq!(got[0].1, Ok(0));
        assert_eq!(got[2].1, Ok(2));
        let err = got[1].1.clone().unwrap_err();
        assert_eq!(err.code, "internal-error");
        assert!(
            err.to_string().starts_with(
                "internal-error: the poll of https://acme.example/1 panicked (poll 1 fell over)"
            ),
            "{err}"
        );
        assert!(tasks.is_empty());
    }

    /// `problems`: (advisory, code, kind) found by a poll; `open`: (advisory, code)
    /// already open. Returns the titles raised and the first-seen seconds remembered.
    fn fold(
        limit: usize,
        open: &[(&str, &str)],
        problems: &[(&str, &'static str, Kind)],
    ) -> (Vec<String>, Vec<u64>) {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let src = Source {
            id: "acme csaf p".into(),
            vendor: "acme".into(),
            kind: SourceKind::Feed(FeedFormat::Csaf),
            url: "https://acme.example/p".into(),
            interval: Duration::from_secs(60),
        };
        let open: Vec<ProblemRow> = open
            .iter()
            .map(|(u, c)| ProblemRow {
                advisory_url: format!("https://acme.example/{u}"),
                code: c.to_string(),
                first_seen: at(1),
                listed_updated: None,
            })
            .collect();
        let problems = problems
            .iter()
            .map(|(u, code, kind)| crate::watch::csaf::Problem {
                advisory_url: format!("https://acme.example/{u}"),
                code,
                signer: None,
                listed_updated: None,
                event: Some(Event::new(
                    *kind,
                    "acme",
                    u,
                    Severity::High,
                    format!("{u} {code}"),
                    "",
                    at(2),
                )),
            })
            .collect();
        let (events, rows) = fold_problems(&src, limit, &open, problems, at(2));
        (
            events.into_iter().map(|e| e.title).collect(),
            rows.iter()
                .map(|r| {
                    r.first_seen
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                })
                .collect(),
        )
    }

    #[test]
    fn new_problems_beyond_the_quota_are_folded_per_kind() {
        use Kind::{BundleRejected as R, UnexpectedSigner as U};
        let (titles, seen) = fold(
            1,
            &[("a.json", "digest-mismatch")],
            &[
                ("a.json", "digest-mismatch", R),
                ("b.json", "no-signature", R),
                ("c.json", "advisory-unreachable", R),
                ("d.json", "unpinned-signer", U),
                ("e.json", "advisory-unreachable", R),
            ],
        );
        assert_eq!(
            seen,
            [1, 2, 2, 2, 2],
            "a persisting problem keeps its first-seen time"
        );
        assert_eq!(titles.len(), 3, "{titles:?}");
        assert_eq!(titles[0], "b.json no-signature");
        assert!(
            titles[1].starts_with("acme CSAF provider: 1 more advisory is signed only by keys that are not pinned (unpinned-signer 1): d.json;"),
            "{titles:?}"
        );
        assert!(
            titles[2].starts_with("acme CSAF provider: 2 more advisories failed their checks (advisory-unreachable 2): c.json, e.json;"),
            "{titles:?}"
        );
        // A known advisory failing with another code is a new problem.
        let (titles, _) = fold(
            3,
            &[("a.json", "advisory-unreachable")],
            &[("a.json", "digest-mismatch", R)],
        );
        assert_eq!(titles, ["a.json digest-mismatch"]);
        // Zero: everything in the summary.
        let (titles, _) = fold(0, &[], &[("a.json", "no-signature", R)]);
        assert_eq!(titles.len(), 1);
        assert!(
            titles[0].contains("1 more advisory failed its checks"),
            "{titles:?}"
        );
    }

    #[test]
    fn failing_after_threshold_or_staleness() {
        check(1, Some(60), 999, None, false);
        check(3, Some(60), 999, None, true);
        check(1, Some(60), 999, Some(3600), false);
        check(1, Some(7200), 9999, Some(3600), true);
        // Never succeeded: staleness counts from the first poll.
        check(1, None, 60, Some(3600), false);
        check(1, None, 7200, Some(3600), true);
    }
}
