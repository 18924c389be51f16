//! The commands that poll and alert: `watch [--once]`, `status` and `alert test`. Glue
//! between the configuration, the lock, the state, the watcher and the delivery
//! channels.
//!
//! The daemon gives each source its own schedule (its interval plus up to 10% jitter so
//! sources do not poll in lockstep), retries pending deliveries every pass, and on
//! SIGTERM or SIGINT stops starting new polls, lets the open pass commit, and exits.
//! With `[watch] metrics` set it also serves `/metrics` (`cmd/serve.rs`) beside the
//! loop.

use std::time::SystemTime;

use anyhow::{bail, Context as _};
use serde_json::json;

use crate::alert::channel::Batch;
use crate::alert::event::{Event, Kind, Severity};
use crate::alert::{self, ChannelReport, Scope, UnreadableEvent};
use crate::cmd::outcome::Outcome;
use crate::cmd::setup::{runtime, NO_CONFIG};
use crate::config::Config;
use crate::store::{self, Store};
use crate::text::plural;
use crate::watch::pass::{self as watch, SourceOutcome, Watcher};
use crate::watch::schedule::Schedule;
use crate::watch::source::{sources, Source};
use tokio::time::Instant;

/// `watch --once` and `watch`.
pub fn run_watch(
    config: Option<&Config>,
    once: bool,
    recheck: Option<&str>,
    json: bool,
    quiet: bool,
) -> anyhow::Result<Outcome> {
    let config = config.with_context(|| format!("watch needs feeds.toml; {NO_CONFIG}"))?;
    if let Some(name) = recheck.filter(|n| config.vendor(n).is_none()) {
        bail!(
            "--recheck {:?}: no such vendor in {}; known vendors: {}",
            name,
            config.path.display(),
            config
                .vendors
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let location = &config.watch.state;
    let Some(_lock) = store::lock(location)
        .with_context(|| format!("{location}: cannot create the lock file"))?
    else {
        eprintln!("vendorguard: another run holds the lock on {location}; nothing done");
        return Ok(Outcome::Busy);
    };
    // What is installed, read once: advisories are matched against it. Read on its
    // own connection, closed before the state's is opened: closing a second connection
    // to the file while the state's is open would remove the WAL under it.
    let unpacked = store::open_history(location)
        .and_then(|h| h.installed())
        .with_context(|| format!("{location}: cannot read the history"))?;
    let inventory = crate::inventory::Inventory::build(Some(config), &unpacked);
    let me = this_instance(config);
    let mut state = store::open(location, &me)?;
    let watcher = Watcher::new(config, inventory)?;
    let rt = runtime()?;
    if once {
        let state = &mut *state;
        rt.block_on(async {
            let share = false;
            let ended = match pass(&watcher, state, &me, None, recheck, share, json, quiet).await {
                Ok((outcomes, reports)) => finish_pass(state, &outcomes, &reports, json),
                Err(e) => state_failed(location, e).map(|()| Outcome::Findings),
            };
            // Done: not listed as alive for a lease after it ended. (A state that
            // failed is told already.)
            let _ = state.forget_instance(&me.id);
            ended
        })
    } else {
        rt.block_on(daemon(&watcher, &mut state, &me, json, quiet))
    }
}

/// Ends the leases and claims of earlier runs on this host whose process is gone (a run
/// killed, or cut off from the state before it could commit), so this run does their
/// work now rather than when their leases run out. Instances of other hosts are left
/// to their leases: their processes cannot be seen from here.
fn forget_dead_neighbours(state: &mut dyn Store, me: &store::Instance) -> anyhow::Result<()> {
    for i in state.instances()? {
        let gone = i.host == me.host
            && i.id != me.id
            && i.pid != me.pid
            && rustix::process::Pid::from_raw(i.pid as i32).is_some_and(|pid| {
                rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
            });
        if gone {
            state.forget_instance(&i.id)?;
        }
    }
    Ok(())
}

/// Opens the state again after it failed (a PostgreSQL connection does not come back
/// by itself); while it cannot be opened the old one is kept and the next pass tries
/// again.
fn reopen(state: &mut Box<dyn Store>, location: &store::StateLocation, me: &store::Instance) {
    match store::open(location, me) {
        Ok(fresh) => *state = fresh,
        Err(e) => eprintln!("vendorguard: {location}: still unusable: {e}; trying again next pass"),
    }
}

/// A pass the state failed under (a PostgreSQL server gone mid-run): told, and the run
/// degrades rather than aborts. Nothing is lost: a poll is recorded with its events in
/// one transaction or not at all (then polled again), and a delivery not recorded is
/// sent again. Any other error is returned.
fn state_failed(location: &store::StateLocation, e: anyhow::Error) -> anyhow::Result<()> {
    if e.downcast_ref::<store::StoreError>().is_none() {
        return Err(e);
    }
    eprintln!(
        "vendorguard: {location}: the state failed during the run: {}; what was not recorded \
         is polled and delivered again by the next run",
        crate::text::error_chain(e.as_ref())
    );
    Ok(())
}

/// One pass over `only` (or every source): retry what earlier runs left pending
/// (oldest first), poll, print a summary line per source (`-q`: failures only), and
/// deliver what the pass raised.
///
/// The pass starts with this instance's heartbeat (and forgets runs of this host that
/// are gone); with `share` (daemons sharing a state), a source another live instance
/// polled less than half its interval ago is left to it.
#[allow(clippy::too_many_arguments)]
async fn pass(
    watcher: &Watcher<'_>,
    state: &mut dyn Store,
    me: &store::Instance,
    only: Option<&[Source]>,
    recheck: Option<&str>,
    share: bool,
    json: bool,
    quiet: bool,
) -> anyhow::Result<(Vec<SourceOutcome>, Vec<ChannelReport>)> {
    // A pass's channels (an SMTP transport included) serve its deliveries only.
    let channels = alert::channels(&watcher.config.alerts, json);
    let now = SystemTime::now();
    state.heartbeat(now)?;
    forget_dead_neighbours(state, me)?;
    let mut reports = alert::deliver_pending(state, &channels, Scope::All, now).await?;
    let outcomes = watcher.run_pass(state, only, recheck, share, now).await?;
    // -q keeps only the failures and the sources with open problems.
    for o in outcomes.iter().filter(|o| !quiet || !o.is_clean()) {
        eprintln!("{}", watch::summary_line(o));
    }
    let after = alert::deliver_pending(state, &channels, Scope::All, SystemTime::now()).await?;
    merge_reports(&mut reports, after);
    Ok((outcomes, reports))
}

fn merge_reports(into: &mut Vec<ChannelReport>, more: Vec<ChannelReport>) {
    for m in more {
        match into.iter_mut().find(|r| r.channel == m.channel) {
            Some(r) => {
                r.delivered += m.delivered;
                r.filtered += m.filtered;
                r.failed += m.failed;
                r.pending = m.pending;
                if m.last_error.is_some() {
                    r.last_error = m.last_error;
                }
            }
            None => into.push(m),
        }
    }
}

fn finish_pass(
    state: &dyn Store,
    outcomes: &[SourceOutcome],
    reports: &[ChannelReport],
    json: bool,
) -> anyhow::Result<Outcome> {
    let failed = outcomes.iter().filter(|o| !o.is_success()).count();
    let names: Vec<&str> = reports.iter().map(|r| r.channel.as_str()).collect();
    let unreadable = state.unreadable_pending(&names)?;
    // An advisory that could not be fetched or checked degrades the run like a failed
    // source: it is checked again next run.
    let with_problems = outcomes
        .iter()
        .filter(|o| o.is_success() && o.problem_count() > 0)
        .count();
    let mut pending = 0;
    for r in reports {
        let p = state.pending_count(&r.channel)?;
        pending += p;
        if p > 0 {
            eprintln!(
                "pending: {} event{} on {}{}",
                p,
                plural(p),
                r.channel,
                r.last_error
                    .as_ref()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            );
        }
    }
    for u in &unreadable {
        eprintln!("{}", unreadable_line(u));
    }
    if json {
        println!(
            "{}",
            json!({
                "summary": {
                    "sources": outcomes.iter().map(|o| json!({
                        "vendor": o.source.vendor,
                        "kind": o.source.kind.code(),
                        "url": o.source.url,
                        "status": o.status,
                        "detail": o.detail,
                        "entries": o.items,
                        "new_events": o.new_events,
                        "open_problems": o.problem_count(),
                        "open_problem_codes": o.open_problems,
                    })).collect::<Vec<_>>(),
                    "channels": reports.iter().map(|r| json!({
                        "channel": r.channel,
                        "delivered": r.delivered,
                        "filtered": r.filtered,
                        "failed": r.failed,
                        "last_error": r.last_error,
                    })).collect::<Vec<_>>(),
                    "failed_sources": failed,
                    "sources_with_problems": with_problems,
                    "pending_events": pending,
                    "unreadable_events": unreadable_json(&unreadable),
                }
            })
        );
    }
    Ok(if failed == 0 && with_problems == 0 && pending == 0 {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// The line for an event that cannot be delivered because its stored JSON does not
/// parse.
fn unreadable_line(u: &UnreadableEvent) -> String {
    format!(
        "unreadable event {}: its stored JSON {}; it cannot be delivered and stays pending \
         until its row in the state's events table is fixed or deleted",
        crate::text::escape(&u.id),
        crate::text::escape(&u.error)
    )
}

fn unreadable_json(list: &[UnreadableEvent]) -> serde_json::Value {
    list.iter()
        .map(|u| json!({"id": u.id, "seq": u.seq, "error": u.error}))
        .collect()
}

async fn daemon(
    watcher: &Watcher<'_>,
    state: &mut Box<dyn Store>,
    me: &store::Instance,
    json: bool,
    quiet: bool,
) -> anyhow::Result<Outcome> {
    let config = watcher.config;
    let location = &config.watch.state;
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut schedule = Schedule::new(sources(config), Instant::now());
    eprintln!(
        "vendorguard: watching {} sources (SIGTERM or SIGINT to stop)",
        schedule.len()
    );
    let metrics = match config.watch.metrics {
        Some(addr) => {
            let (listener, local) = super::serve::bind(addr).await?;
            // The address is told so that port 0 can be found (and scraped) by a test.
            eprintln!("vendorguard: metrics at http://{local}/metrics");
            let config = std::sync::Arc::new(config.clone());
            Some(tokio::spawn(super::serve::serve(listener, config)))
        }
        None => None,
    };
    let names: Vec<&str> = alert::channels(&config.alerts, json)
        .iter()
        .map(|c| c.name())
        .collect();
    // Told again only when the set changes, not every pass.
    let mut unreadable_seen = Vec::new();
    // Daemons sharing a PostgreSQL state take turns; one on SQLite is alone.
    let share = matches!(config.watch.state, store::StateLocation::Postgres(_));
    // Heartbeats at least three times a lease, so a live instance never looks gone.
    let beat = config.watch.lease / 3;
    loop {
        let ready = schedule.ready(Instant::now());
        if !ready.is_empty() {
            let only = Some(ready.as_slice());
            match pass(watcher, &mut **state, me, only, None, share, json, quiet).await {
                Ok(_) => {
                    let unreadable = state.unreadable_pending(&names)?;
                    if unreadable != unreadable_seen {
                        for u in &unreadable {
                            eprintln!("{}", unreadable_line(u));
                        }
                        unreadable_seen = unreadable;
                    }
                }
                // The daemon goes on: the next pass retries what this one could not
                // record, on a new connection.
                Err(e) => {
                    state_failed(location, e)?;
                    reopen(state, location, me);
                }
            }
            schedule.polled(&ready, Instant::now());
        } else if let Err(e) = state.heartbeat(SystemTime::now()) {
            state_failed(location, e.into())?;
            reopen(state, location, me);
        }
        let wake = schedule
            .next(Instant::now(), config.watch.interval)
            .min(Instant::now() + beat);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    if let Some(m) = metrics {
        m.abort();
    }
    let _ = state.forget_instance(&me.id);
    eprintln!("vendorguard: stopping");
    Ok(Outcome::Clean)
}

/// `status`.
pub fn run_status(config: Option<&Config>, json: bool) -> anyhow::Result<Outcome> {
    let config = config
        .with_context(|| format!("status reads the state named in feeds.toml; {NO_CONFIG}"))?;
    let state = existing_state(config)?;
    let sources = state.sources()?;
    let now = SystemTime::now();
    // Instances and who polled what matter where several share the state.
    let shared = matches!(config.watch.state, store::StateLocation::Postgres(_));
    let instances = state.instances()?;
    let channels = alert::channels(&config.alerts, false);
    let mut pending = Vec::new();
    let mut filtered = Vec::new();
    for c in &channels {
        pending.push((c.name(), state.pending_count(c.name())?));
        filtered.push((c.name(), state.filtered_count(c.name())?));
    }
    let problems = state.delivery_problems()?;
    let names: Vec<&str> = channels.iter().map(|c| c.name()).collect();
    let unreadable = state.unreadable_pending(&names)?;
    let handled = state.handled_count(&names)?;
    let open = state.open_problems()?;
    let open_of = |id: &str| -> (u64, Vec<(String, u64)>) {
        let codes = open.get(id).cloned().unwrap_or_default();
        (codes.iter().map(|(_, n)| n).sum(), codes)
    };
    // Held back: signed only by a key that is not pinned; the rest were rejected.
    let held_of = |id: &str| -> u64 {
        open_of(id)
            .1
            .iter()
            .filter(|(c, _)| c == crate::watch::csaf::HELD)
            .map(|(_, n)| n)
            .sum()
    };
    let t = |x: Option<SystemTime>| x.map(crate::text::time);
    if json {
        println!(
            "{}",
            json!({
                "sources": sources.iter().map(|s| json!({
                    "vendor": s.vendor,
                    "kind": s.kind,
                    "url": s.url,
                    "insecure_http": s.url.starts_with("http://"),
                    "last_success": t(s.health.last_success),
                    "last_attempt": t(s.health.last_attempt),
                    "last_error": s.health.last_error,
                    "last_error_code": s.health.last_error_code,
                    "failures_in_a_row": s.health.failures,
                    "entries_seen": s.entries,
                    "open_problems": open_of(&s.id).0,
                    "open_problem_codes": open_of(&s.id).1.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                    "held_back": held_of(&s.id),
                    "rejected": open_of(&s.id).0 - held_of(&s.id),
                    "last_polled_by": s.health.last_polled_by,
                })).collect::<Vec<_>>(),
                "instances": instances.iter().map(|i| json!({
                    "id": i.id, "host": i.host, "pid": i.pid, "version": i.version,
                    "started": t(Some(i.started_at)), "last_heartbeat": t(Some(i.heartbeat_at)),
                    "alive": i.alive_until > now,
                })).collect::<Vec<_>>(),
                "pending": pending.iter().map(|(c, n)| json!({"channel": c, "events": n})).collect::<Vec<_>>(),
                "filtered": filtered.iter().map(|(c, n)| json!({"channel": c, "events": n})).collect::<Vec<_>>(),
                "handled_events": handled,
                "delivery_errors": problems.iter().map(|p| json!({"channel": p.channel, "kind": p.kind, "error": p.error, "events": p.events, "output": p.output})).collect::<Vec<_>>(),
                "unreadable_events": unreadable_json(&unreadable),
            })
        );
    } else {
        for s in &sources {
            let url = crate::text::escape(&s.url);
            let plain = match s.url.starts_with("http://") {
                true => "  (plain http: can be tampered with in transit)",
                false => "",
            };
            println!("{} {} {url}{plain}", s.vendor, s.kind);
            let success = t(s.health.last_success).unwrap_or_else(|| "never".into());
            let (failures, entries) = (s.health.failures, s.entries);
            let held = held_of(&s.id);
            println!(
                "  last success {success}  failures in a row {failures}  entries seen {entries}"
            );
            if let (true, Some(by)) = (shared, &s.health.last_polled_by) {
                println!("  last polled by {}", crate::text::escape(by));
            }
            if let Some(e) = &s.health.last_error {
                println!("  last error {}", crate::text::escape(e));
            }
            let (n, codes) = open_of(&s.id);
            if n > 0 {
                println!(
                    "  open problems {n} ({}): {held} held back for their signer, {} rejected or unreachable",
                    codes
                        .iter()
                        .map(|(c, k)| format!("{} {k}", crate::text::escape(c)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    n - held
                );
            }
        }
        for i in instances.iter().filter(|_| shared) {
            let alive = match i.alive_until > now {
                true => "alive",
                false => "gone",
            };
            println!(
                "instance {} {alive}: last heartbeat {}, started {} (host {}, pid {}, vendorguard {})",
                crate::text::escape(&i.id),
                crate::text::time(i.heartbeat_at),
                crate::text::time(i.started_at),
                crate::text::escape(&i.host),
                i.pid,
                crate::text::escape(&i.version)
            );
        }
        for (c, n) in &pending {
            println!("pending: {n} event{} on {c}", plural(*n));
        }
        for (c, n) in filtered.iter().filter(|(_, n)| *n > 0) {
            println!(
                "filtered: {n} event{} not sent on {c} ([alerts] routing; see `vendorguard events list`)",
                plural(*n)
            );
        }
        if handled > 0 {
            println!(
                "handled: {handled} event{} acknowledged before every channel delivered it",
                plural(handled)
            );
        }
        for p in &problems {
            let (error, n) = (crate::text::escape(&p.error), p.events);
            let events = format!("{n} event{}", plural(n));
            println!(
                "delivery error: {}: {}: {error} ({events})",
                p.channel, p.kind
            );
            if let Some(out) = p.output.as_deref().filter(|o| !o.trim().is_empty()) {
                for line in out.lines().take(20) {
                    println!("  | {}", crate::text::escape(line));
                }
            }
        }
        if !unreadable.is_empty() {
            let ids: Vec<String> = unreadable
                .iter()
                .map(|u| crate::text::escape(&u.id))
                .collect();
            println!(
                "unreadable: {} event{} cannot be parsed and will never be delivered \
                 (fix or delete their rows in the state's events table): {}",
                unreadable.len(),
                plural(unreadable.len() as u64),
                ids.join(", ")
            );
            for u in &unreadable {
                println!(
                    "  {}: its stored JSON {}",
                    crate::text::escape(&u.id),
                    crate::text::escape(&u.error)
                );
            }
        }
    }
    Ok(Outcome::Clean)
}

/// The state named in feeds.toml, which a run of `watch` must have created.
pub(super) fn existing_state(config: &Config) -> anyhow::Result<Box<dyn Store>> {
    if !store::exists(&config.watch.state)? {
        bail!(
            "{}: no state yet: run `vendorguard watch --once` first",
            config.watch.state
        );
    }
    Ok(store::open(&config.watch.state, &this_instance(config))?)
}

/// This process among the instances sharing the state, as the configuration names it.
pub(super) fn this_instance(config: &Config) -> store::Instance {
    store::Instance::this_process(
        config.watch.instance.as_deref(),
        config.watch.lease,
        SystemTime::now(),
    )
}

/// `alert test`.
pub fn run_alert_test(config: Option<&Config>, json: bool) -> anyhow::Result<Outcome> {
    let config = config.with_context(|| {
        format!("alert test sends through the channels in feeds.toml; {NO_CONFIG}")
    })?;
    let now = SystemTime::now();
    let event = Event::new(
        Kind::Test,
        "vendorguard",
        &format!("test {}", crate::text::unix_secs(now)),
        Severity::Info,
        "vendorguard fire drill: if you read this, alerts reach you",
        "",
        now,
    );
    let rt = runtime()?;
    let mut all_ok = true;
    let mut results = Vec::new();
    rt.block_on(async {
        // Built and dropped inside the runtime: an SMTP pool needs it for both. The
        // stdout channel prints the drill as a text line even with --json, whose
        // object comes last.
        let channels = alert::channels(&config.alerts, false);
        let drill = Batch::one(event.clone());
        for ch in &channels {
            let r = ch.send(&drill).await.map(|_| ());
            all_ok &= r.is_ok();
            results.push((ch.name(), r));
        }
    });
    for (name, r) in &results {
        match r {
            Ok(()) => eprintln!("ok: {name}: acknowledged"),
            Err(f) => {
                eprintln!("failed: {name}: {}: {}", f.kind, f.message);
                // What the program said is why it failed: show it, escaped.
                for line in f.output.as_deref().unwrap_or("").lines() {
                    eprintln!("  {name} output: {}", crate::text::escape(line));
                }
            }
        }
    }
    if json {
        println!(
            "{}",
            json!({"event": event.to_json(), "channels": results.iter().map(|(n, r)| json!({
                "channel": n, "ok": r.is_ok(), "error": r.as_ref().err().map(|f| format!("{}: {}", f.kind, f.message)),
                "output": r.as_ref().err().and_then(|f| f.output.clone()),
            })).collect::<Vec<_>>()})
        );
    }
    Ok(if all_ok {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
