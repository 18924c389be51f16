//! CSAF 2.0 providers: `provider-metadata.json`, its ROLIE feeds and `directory_url`s
//! with `changes.csv`, and every advisory checked before it is believed.
//!
//! Each new or changed advisory is downloaded with its `.sha256`/`.sha512` and `.asc`
//! side files: the hashes must match and the signature must come from enough keys
//! pinned in `keyring/<vendor>/` (the vendor's `signatures` threshold), judged by the
//! verifier. An advisory that cannot be fetched or fails a check is a [`Problem`] with
//! a stable code, never a silent skip: a missing or bad hash or signature, or a document
//! that is not CSAF JSON, is `bundle-rejected`. A key rotation is one incident: the
//! keys the provider lists that are not pinned and the advisories signed only by such
//! a key make one `key-changed` event per new key (its fingerprint, whether a pinned key
//! certifies it, how many advisories it signed and their first names); those advisories
//! are held back as `unpinned-signer` problems without an event each. An advisory with
//! an open problem is checked again on every poll, so a fix is noticed, except one held
//! back for its signer: that is checked again only when the vendor's pinned keys
//! changed since the source's last poll or the provider lists it with a new date;
//! `watch --recheck` checks every listed advisory again. The verifier's
//! warnings on a verified advisory are notices: an unpinned co-signer is
//! `unexpected-signer` (once per provider and key), a signing key expiring soon
//! `key-expiring`.
//! The listing documents (metadata, ROLIE feeds, `changes.csv`) are asked with the
//! validators of the last full poll when no advisory waits for a second check; if all
//! answer 304 the listing is not parsed and the pass treats it as not modified.
//! Either way, the side files (hash file, signature) of a bounded slice of the verified
//! advisories, those fetched longest ago, are asked for again with their own validators
//! ([`slice_len`]: each within
//! [`CSAF_RECHECK_WINDOW`](crate::policy::CSAF_RECHECK_WINDOW) at the source's interval);
//! one that says something else has its advisory checked in full, so an advisory
//! changed or re-signed without a new listing date is noticed: other content under the
//! same `tracking.version` is an update too.
//! An advisory's identity is the publisher namespace plus `tracking.id`; a new
//! `tracking.version` is an update. Real quirks handled: CISA's `"ref"` where ROLIE says
//! `"rel"`, unsorted and duplicated `changes.csv` rows, hash files naming `2026/<file>`
//! with no final newline. Fetching is `fetch`'s job; deciding which problems and
//! advisories are new, and how many problem events go out, is `pass`'s. The identity of
//! a checked advisory is built by `document`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;
use sha2::Digest as _;
use tokio::task::JoinSet;

use crate::alert::event::{Event, Kind, Severity, PRODUCTS_SEPARATOR};
use crate::store::{EntryRow, EntryWrite, ProblemRow, SideFiles, UrlValidators};
use crate::text::group4;
use crate::verify::judge::Judge;
use crate::verify::keyring::{parse_certs, Keyring};
use crate::verify::{self, Acceptance, Status, Verdict};
use crate::watch::document::{Advisory, DocumentId};
use crate::watch::fetch::{Fetched, Fetcher, Validators};
use crate::watch::keywatch::certified_by_pinned;
use crate::watch::source::PollError;

/// The problem code of an advisory held back because only a key that is not pinned
/// signed it.
pub const HELD: &str = "unpinned-signer";

/// One advisory the provider lists.
#[derive(Debug, Clone)]
struct Listed {
    url: String,
    /// The feed's or changes.csv's date: a change means download again.
    updated: String,
    hashes: Vec<String>,
    signature: Option<String>,
}

/// What the state remembers of a provider, read before its poll.
#[derive(Debug, Default)]
pub struct Known {
    /// `url:` rows (download bookkeeping) and `adv:` rows (identity).
    pub entries: HashMap<String, EntryRow>,
    /// Problems still open from earlier polls.
    pub problems: Vec<ProblemRow>,
    /// Download and check every listed advisory, changed or not (`watch --recheck`).
    pub recheck: bool,
    /// The vendor's pinned fingerprints now (sorted, comma-separated), and whether they
    /// differ from what the source's last poll checked against: only then are
    /// advisories held back for their signer downloaded and checked again.
    pub pinned: String,
    pub keyring_changed: bool,
    /// The validators of the listing documents the last full poll fetched.
    pub listing: Vec<UrlValidators>,
    /// The side files of the advisories verified so far, and how often the source is
    /// polled: together they size the slice fetched again each poll.
    pub side_files: Vec<SideFiles>,
    pub interval: Duration,
}

/// A listed advisory that could not be fetched or did not pass its checks.
#[derive(Debug, Clone)]
pub struct Problem {
    pub advisory_url: String,
    /// `advisory-unreachable`, `hash-missing`, `digest-mismatch`, `no-signature`,
    /// `unpinned-signer`, `csaf-malformed`, or the verifier's first code
    /// (`bad-signature`, `below-threshold`, ...).
    pub code: &'static str,
    /// The event to raise when the problem is new; `None` when the poll's key rotation
    /// incident names the advisory instead.
    pub event: Option<Event>,
    /// For `unpinned-signer`: the fingerprint of the key that signed it.
    pub signer: Option<String>,
    /// The date the provider listed the advisory with.
    pub listed_updated: Option<String>,
}

/// What a poll of a provider produced.
pub struct CsafPoll {
    /// `url:` rows of the advisories that were downloaded and verified.
    pub entries: Vec<EntryWrite>,
    /// Provider and key events (a key rotation incident, an unpinned co-signer, a
    /// signing key expiring soon): their ids are stable per key, so raising one again
    /// adds nothing.
    pub notices: Vec<Event>,
    /// The open problems after this poll, sorted by advisory URL.
    pub problems: Vec<Problem>,
    /// Verified advisories: their identity, `adv:` row and new-advisory event.
    pub advisories: Vec<Advisory>,
    /// What the poll was decided against, handed back so the caller diffs against
    /// the same snapshot without reading the state again.
    pub known: Known,
    /// The validators of the listing documents this poll fetched.
    pub listing: Vec<UrlValidators>,
    /// The side files of every verified advisory listed.
    pub side_files: Vec<SideFiles>,
}

/// What a poll of a provider found.
pub enum Outcome {
    /// The listing answered 304 and the slice's side files said what they said before:
    /// nothing to check; the side files with their new rounds.
    Unchanged(Vec<SideFiles>),
    Polled(Box<CsafPoll>),
}

/// What checking one advisory needs, shared by its tasks.
struct Ctx {
    fetcher: Arc<Fetcher>,
    vendor: String,
    provider: String,
    keyring: Arc<Keyring>,
    acceptance: Acceptance,
    now: SystemTime,
}

/// A verified advisory.
struct Checked {
    advisory: Advisory,
    notices: Vec<Event>,
    side_files: SideFiles,
}

/// How checking one listed advisory ended.
enum Check {
    /// Its side files said what they said before: not downloaded.
    Same(Box<SideFiles>),
    Done(Box<Result<Checked, Problem>>),
}

/// How many advisories (of `n`) one poll fetches the side files of, so that each is
/// fetched within [`CSAF_RECHECK_WINDOW`](crate::policy::CSAF_RECHECK_WINDOW) when the
/// source is polled every `interval`: at least one, at most all.
fn slice_len(n: usize, interval: Duration) -> usize {
    let window = crate::policy::CSAF_RECHECK_WINDOW.as_secs().max(1);
    let k = (n as u128 * u128::from(interval.as_secs())).div_ceil(u128::from(window));
    usize::try_from(k).unwrap_or(n).clamp(n.min(1), n)
}

/// The advisory URLs of the `k` side files fetched longest ago (lowest round, then
/// URL); an advisory without a row (verified before they were recorded) comes first.
fn due_first<'a>(rows: impl Iterator<Item = (&'a str, i64)>, k: usize) -> HashSet<String> {
    let mut rows: Vec<(i64, &str)> = rows.map(|(u, r)| (r, u)).collect();
    rows.sort_unstable();
    rows.into_iter()
        .take(k)
        .map(|(_, u)| u.to_string())
        .collect()
}

/// `f` with the validators its side files answered with, when both still say what
/// they said; `None` when either changed or cannot be fetched (the full check then says
/// what is wrong).
async fn side_files_unchanged(fetcher: &Fetcher, f: &SideFiles) -> Option<SideFiles> {
    if f.hash_value.is_empty() {
        return None;
    }
    let mut f = f.clone();
    let (url, want) = (f.hash_url.clone(), f.hash_value.clone());
    if !side_file_same(fetcher, &url, &mut f.hash_validators, &want, hash_value).await {
        return None;
    }
    let (url, want) = (f.signature_url.clone(), f.signature_sha256.clone());
    let same = side_file_same(
        fetcher,
        &url,
        &mut f.signature_validators,
        &want,
        sha256_hex,
    );
    same.await.then_some(f)
}

/// The SHA-256 of `bytes`, in hex: how a signature file is remembered.
fn sha256_hex(bytes: &[u8]) -> String {
    crate::text::hex(&sha2::Sha256::digest(bytes))
}

/// The value a hash file states: its first word, lowercased, cut one character past
/// [`CSAF_MAX_HASH_VALUE`](crate::policy::CSAF_MAX_HASH_VALUE) (longer matches no digest).
pub(crate) fn hash_value(text: &[u8]) -> String {
    let text = &text[..text.len().min(crate::policy::CSAF_MAX_HASH_VALUE * 4 + 64)];
    String::from_utf8_lossy(text)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .take(crate::policy::CSAF_MAX_HASH_VALUE + 1)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
enum Download {
    #[error(transparent)]
    Failed(#[from] PollError),
    #[error("{0}: unexpected 304")]
    NotModified(String),
}

async fn get_bytes(fetcher: &Fetcher, url: &str) -> Result<Vec<u8>, Download> {
    get_with_validators(fetcher, url)
        .await
        .map(|(bytes, _)| bytes)
}

/// A body with the ETag and Last-Modified it came with.
async fn get_with_validators(
    fetcher: &Fetcher,
    url: &str,
) -> Result<(Vec<u8>, (Option<String>, Option<String>)), Download> {
    match fetcher.get(url, &Validators::default()).await? {
        Fetched::Body {
            bytes,
            etag,
            last_modified,
        } => Ok((bytes, (etag, last_modified))),
        Fetched::NotModified => Err(Download::NotModified(url.to_string())),
    }
}

/// Whether the side file at `url` still says `want` (`read` reads what it says), asked
/// with the validators it was last fetched with: 304 says so with no body. What it
/// answered with is kept in `validators`. `false` when it cannot be fetched.
async fn side_file_same(
    fetcher: &Fetcher,
    url: &str,
    validators: &mut (Option<String>, Option<String>),
    want: &str,
    read: fn(&[u8]) -> String,
) -> bool {
    let asked = Validators {
        etag: validators.0.clone(),
        last_modified: validators.1.clone(),
    };
    let sent = asked.etag.is_some() || asked.last_modified.is_some();
    match fetcher.get(url, &asked).await {
        Ok(Fetched::NotModified) => sent,
        Ok(Fetched::Body {
            bytes,
            etag,
            last_modified,
        }) => {
            *validators = (etag, last_modified);
            read(&bytes) == want
        }
        Err(_) => false,
    }
}

/// A provider's metadata, ROLIE feed or `changes.csv`, fetched whole; its validators go
/// to `seen`. Its download failing fails the poll as `csaf-unreachable`.
async fn get_listing(
    fetcher: &Fetcher,
    url: &str,
    seen: &mut Vec<UrlValidators>,
) -> Result<Vec<u8>, PollError> {
    match fetcher.get(url, &Validators::default()).await {
        Ok(Fetched::Body {
            bytes,
            etag,
            last_modified,
        }) => {
            seen.push(UrlValidators {
                url: url.to_string(),
                etag,
                last_modified,
            });
            Ok(bytes)
        }
        Ok(Fetched::NotModified) => Err(Download::NotModified(url.to_string())),
        Err(e) => Err(Download::Failed(e)),
    }
    .map_err(|e| PollError::new("csaf-unreachable", e.to_string()))
}

/// Whether every listing document of the last full poll answers 304 to its own
/// validators: then nothing is listed that was not listed before, and nothing is
/// parsed. Stops at the first that changed (or has no validators to send).
async fn listing_unchanged(
    fetcher: &Fetcher,
    listing: &[UrlValidators],
) -> Result<bool, PollError> {
    for v in listing {
        if v.etag.is_none() && v.last_modified.is_none() {
            return Ok(false);
        }
        let validators = Validators {
            etag: v.etag.clone(),
            last_modified: v.last_modified.clone(),
        };
        let fetched = fetcher
            .get(&v.url, &validators)
            .await
            .map_err(|e| PollError::new("csaf-unreachable", e.to_string()))?;
        if !matches!(fetched, Fetched::NotModified) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `csaf-malformed` for a listing at `url` that is not JSON.
fn not_json(url: &str, e: serde_json::Error) -> PollError {
    PollError::new("csaf-malformed", format!("{url}: not JSON: {e}"))
}

fn resolve(base: &str, href: &str) -> String {
    Base::new(base).join(href)
}

/// A base URL parsed once, for the thousands of links of one feed.
struct Base(Option<reqwest::Url>);

impl Base {
    fn new(base: &str) -> Base {
        Base(reqwest::Url::parse(base).ok())
    }

    /// `href` resolved against the base; as it is when either cannot be parsed.
    fn join(&self, href: &str) -> String {
        self.0
            .as_ref()
            .and_then(|b| b.join(href).ok())
            .map_or_else(|| href.to_string(), String::from)
    }
}

/// Polls the provider at `url`; each advisory must be signed as the vendor's
/// `acceptance` says (threshold, `expired_signer`, `max_signature_age`), exactly as a
/// bundle.
///
/// # Errors
///
/// A `csaf-*` [`PollError`] when the provider metadata or a feed cannot be fetched or parsed,
/// or no key is pinned to check it with (checking nothing is not an option).
pub async fn poll(
    fetcher: Arc<Fetcher>,
    vendor: String,
    url: String,
    known: Known,
    keyring: Option<Arc<Keyring>>,
    acceptance: Acceptance,
    now: SystemTime,
) -> Result<Outcome, PollError> {
    let keyring = keyring.filter(|k| !k.is_empty()).ok_or_else(|| {
        PollError::new("csaf-no-pinned-key", format!("no certificate is pinned for vendor {vendor}: advisories cannot be checked (pin the provider's key in keyring/{vendor}/)"))
    })?;
    // Nothing but the listing can give this poll work when no advisory waits for a
    // second check (held ones wait for the keyring, which did not change): ask with the
    // last full poll's validators, and stop if every listing document answers 304.
    let quiet = !known.recheck
        && !known.keyring_changed
        && !known.listing.is_empty()
        && known.problems.iter().all(|p| p.code == HELD);
    let round = known.side_files.iter().map(|f| f.round).max().unwrap_or(0) + 1;
    let mut forced = HashSet::new();
    if quiet && listing_unchanged(&fetcher, &known.listing).await? {
        // The listing did not change, but an advisory may have in place: fetch the
        // slice's side files again; a change means the full poll, that advisory forced.
        let open: HashSet<&str> = known
            .problems
            .iter()
            .map(|p| p.advisory_url.as_str())
            .collect();
        let rows: Vec<&SideFiles> = known
            .side_files
            .iter()
            .filter(|f| !open.contains(f.advisory_url.as_str()))
            .collect();
        let due = due_first(
            rows.iter().map(|f| (f.advisory_url.as_str(), f.round)),
            slice_len(rows.len(), known.interval),
        );
        let mut set = JoinSet::new();
        for f in rows.iter().filter(|f| due.contains(&f.advisory_url)) {
            let (fetcher, f) = (fetcher.clone(), (*f).clone());
            set.spawn(async move { (side_files_unchanged(&fetcher, &f).await, f.advisory_url) });
        }
        let mut fetched: HashMap<String, SideFiles> = HashMap::new();
        while let Some(r) = set.join_next().await {
            let (same, url) = r.map_err(|e| PollError::new("csaf-internal", e.to_string()))?;
            match same {
                Some(f) => {
                    fetched.insert(url, SideFiles { round, ..f });
                }
                None => {
                    forced.insert(url);
                }
            }
        }
        if forced.is_empty() {
            let rows = rows
                .into_iter()
                .map(|f| fetched.remove(&f.advisory_url).unwrap_or_else(|| f.clone()))
                .collect();
            return Ok(Outcome::Unchanged(rows));
        }
    }
    let mut seen = Vec::new();
    let body = get_listing(&fetcher, &url, &mut seen).await?;
    let meta: Value = serde_json::from_slice(&body).map_err(|e| not_json(&url, e))?;
    let dists = meta
        .get("distributions")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            PollError::new(
                "csaf-malformed",
                format!("{url}: no \"distributions\" in provider metadata"),
            )
        })?;

    let mut notices = Vec::new();
    // Keys the provider lists that are not pinned, with where their certificate is.
    let mut unpinned_keys: Vec<(String, Option<String>)> = Vec::new();
    for k in meta
        .get("public_openpgp_keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let fpr: String = k
            .get("fingerprint")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .collect::<String>()
            .to_ascii_uppercase();
        if fpr.is_empty() {
            continue;
        }
        let pinned = keyring
            .certs()
            .iter()
            .any(|c| c.keys().any(|ka| ka.key().fingerprint().to_hex() == fpr));
        if !pinned {
            let cert_url = k
                .get("url")
                .and_then(Value::as_str)
                .map(|u| resolve(&url, u));
            unpinned_keys.push((fpr, cert_url));
        }
    }

    let mut listed: HashMap<String, Listed> = HashMap::new();
    for d in dists {
        for f in d
            .pointer("/rolie/feeds")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(feed_url) = f.get("url").and_then(Value::as_str) else {
                continue;
            };
            let feed_url = resolve(&url, feed_url);
            let bytes = get_listing(&fetcher, &feed_url, &mut seen).await?;
            let base = Base::new(&feed_url);
            let entries = rolie_entries(&bytes, &base).map_err(|e| not_json(&feed_url, e))?;
            for l in entries {
                merge_listed(&mut listed, l);
            }
        }
        if let Some(dir) = d.get("directory_url").and_then(Value::as_str) {
            let dir = if dir.ends_with('/') {
                dir.to_string()
            } else {
                format!("{dir}/")
            };
            let dir = resolve(&url, &dir);
            let changes_url = format!("{dir}changes.csv");
            let bytes = get_listing(&fetcher, &changes_url, &mut seen).await?;
            let base = Base::new(&dir);
            for (path, date) in parse_changes_csv(&String::from_utf8_lossy(&bytes)) {
                merge_listed(
                    &mut listed,
                    Listed {
                        url: base.join(&path),
                        updated: date,
                        hashes: Vec::new(),
                        signature: None,
                    },
                );
            }
        }
    }

    // Download what is new or changed, or still has an open problem, concurrently (the
    // fetcher enforces politeness). A problem is checked again even when the listing's
    // date did not change, so a fix is noticed; a problem whose advisory is no longer
    // listed is dropped with it.
    let ctx = Arc::new(Ctx {
        fetcher,
        vendor,
        provider: url,
        keyring,
        acceptance,
        now,
    });
    let open: HashSet<&str> = known
        .problems
        .iter()
        .map(|p| p.advisory_url.as_str())
        .collect();
    // Held back for its signer, listed with the same date, and the keyring is what it
    // was: checking it again cannot change the answer, so it stays held unfetched.
    let still_held: HashMap<&str, Option<&str>> = known
        .problems
        .iter()
        .filter(|p| p.code == HELD && !known.keyring_changed && !known.recheck)
        .map(|p| (p.advisory_url.as_str(), p.listed_updated.as_deref()))
        .collect();
    let mut set = JoinSet::new();
    let mut carried = Vec::new();
    let mut listed: Vec<Listed> = listed.into_values().collect();
    listed.sort_by(|a, b| a.url.cmp(&b.url));
    // Listed with the same date, verified, no open problem: only its side files, and
    // only when it is in this poll's slice.
    let skipped = |l: &Listed| {
        !known.recheck
            && !open.contains(l.url.as_str())
            && !forced.contains(&l.url)
            && known
                .entries
                .get(&format!("url:{}", l.url))
                .is_some_and(|p| p.updated.as_deref() == Some(l.updated.as_str()))
    };
    let sides: HashMap<&str, &SideFiles> = known
        .side_files
        .iter()
        .map(|f| (f.advisory_url.as_str(), f))
        .collect();
    let skip: Vec<bool> = listed.iter().map(skipped).collect();
    let candidates = || {
        listed.iter().zip(&skip).filter(|(_, s)| **s).map(|(l, _)| {
            let round = sides.get(l.url.as_str()).map_or(0, |f| f.round);
            (l.url.as_str(), round)
        })
    };
    let due = due_first(
        candidates(),
        slice_len(candidates().count(), known.interval),
    );
    let mut side_files = Vec::new();
    for (l, skip) in listed.iter().zip(skip) {
        let seen = EntryWrite {
            key: format!("url:{}", l.url),
            content_hash: String::new(),
            updated: Some(l.updated.clone()),
            title: String::new(),
            url: l.url.clone(),
        };
        if skip {
            let known_side = sides.get(l.url.as_str()).map(|f| (*f).clone());
            if !due.contains(&l.url) {
                // Verified before side files were recorded: where they are, said nothing
                // yet, so its turn in the slice checks it whole.
                side_files.push(known_side.unwrap_or_else(|| {
                    SideFiles {
                        advisory_url: l.url.clone(),
                        hash_url: l
                            .hashes
                            .first()
                            .cloned()
                            .unwrap_or_else(|| format!("{}.sha512", l.url)),
                        signature_url: l
                            .signature
                            .clone()
                            .unwrap_or_else(|| format!("{}.asc", l.url)),
                        ..SideFiles::default()
                    }
                }));
                continue;
            }
            let (ctx, l) = (ctx.clone(), l.clone());
            set.spawn(async move {
                if let Some(f) = known_side {
                    if let Some(f) = side_files_unchanged(&ctx.fetcher, &f).await {
                        return (seen, Check::Same(Box::new(f)));
                    }
                }
                (seen, Check::Done(Box::new(check_advisory(&ctx, l).await)))
            });
            continue;
        }
        if still_held.get(l.url.as_str()) == Some(&Some(l.updated.as_str())) {
            carried.push(Problem {
                advisory_url: l.url.clone(),
                code: HELD,
                signer: None,
                listed_updated: Some(l.updated.clone()),
                event: None,
            });
            continue;
        }
        let (ctx, l) = (ctx.clone(), l.clone());
        set.spawn(async move { (seen, Check::Done(Box::new(check_advisory(&ctx, l).await))) });
    }
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    while let Some(r) = set.join_next().await {
        let (seen, result) = r.map_err(|e| PollError::new("csaf-internal", e.to_string()))?;
        match result {
            Check::Same(f) => side_files.push(SideFiles { round, ..*f }),
            Check::Done(done) => match *done {
                Ok(c) => checked.push((seen, c)),
                // Not recorded as downloaded: it stays due until it verifies.
                Err(mut problem) => {
                    problem.listed_updated = seen.updated;
                    problems.push(problem);
                }
            },
        }
    }
    checked.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    problems.sort_by(|a, b| a.advisory_url.cmp(&b.advisory_url));
    notices.extend(rotation_incidents(&ctx, &unpinned_keys, &mut problems).await);
    // Held from earlier polls: open still, named by the incident raised back then.
    problems.extend(carried);
    problems.sort_by(|a, b| a.advisory_url.cmp(&b.advisory_url));
    let mut entries = Vec::new();
    let mut advisories = Vec::new();
    for (seen, c) in checked {
        entries.push(seen);
        notices.extend(c.notices);
        advisories.push(c.advisory);
        side_files.push(SideFiles {
            round,
            ..c.side_files
        });
    }
    side_files.sort_by(|a, b| a.advisory_url.cmp(&b.advisory_url));
    // Many advisories co-signed by the same key make one notice, naming the first.
    let mut ids = HashSet::new();
    notices.retain(|e| ids.insert(e.id.clone()));
    advisories.sort_by(|a, b| a.entry.key.cmp(&b.entry.key));
    Ok(Outcome::Polled(Box::new(CsafPoll {
        entries,
        notices,
        problems,
        advisories,
        known,
        listing: seen,
        side_files,
    })))
}

/// The advisories a ROLIE feed lists. The feed is read into the few fields used (fast:
/// a provider's feed can list tens of thousands of entries, read on every poll); when
/// a field has an unexpected type it is walked as a JSON value instead, where such a
/// field reads as absent and skips a link or an entry rather than the feed.
///
/// # Errors
///
/// When the feed is not JSON.
fn rolie_entries(bytes: &[u8], base: &Base) -> Result<Vec<Listed>, serde_json::Error> {
    if let Ok(doc) = serde_json::from_slice::<RolieDoc>(bytes) {
        return Ok(doc
            .feed
            .entry
            .iter()
            .filter_map(|e| {
                listed_entry(
                    base,
                    e.link.iter().filter_map(|l| {
                        let rel = l.rel.as_deref().or(l.ref_.as_deref()).unwrap_or("");
                        Some((rel, l.href.as_deref()?))
                    }),
                    e.content.as_ref().and_then(|c| c.src.as_deref()),
                    e.updated.as_deref(),
                )
            })
            .collect());
    }
    let feed: Value = serde_json::from_slice(bytes)?;
    Ok(feed
        .pointer("/feed/entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            listed_entry(
                base,
                e.get("link")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|l| {
                        let rel = l
                            .get("rel")
                            .or_else(|| l.get("ref"))
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        Some((rel, l.get("href").and_then(Value::as_str)?))
                    }),
                e.pointer("/content/src").and_then(Value::as_str),
                e.get("updated").and_then(Value::as_str),
            )
        })
        .collect())
}

/// One ROLIE entry from its `(rel, href)` links (CISA writes `"ref"` where ROLIE says
/// `"rel"`), its `content.src` (used when no link is `self`) and its `updated` date.
fn listed_entry<'a>(
    base: &Base,
    links: impl Iterator<Item = (&'a str, &'a str)>,
    content_src: Option<&str>,
    updated: Option<&str>,
) -> Option<Listed> {
    let mut adv = None;
    let mut hashes = Vec::new();
    let mut signature = None;
    for (rel, href) in links {
        match rel {
            "self" => adv = Some(base.join(href)),
            "hash" => hashes.push(base.join(href)),
            "signature" => signature = Some(base.join(href)),
            _ => {}
        }
    }
    Some(Listed {
        url: adv.or_else(|| content_src.map(|s| base.join(s)))?,
        updated: updated.unwrap_or("").to_string(),
        hashes,
        signature,
    })
}

/// The parts of a ROLIE feed that [`rolie_entries`] reads; other fields are skipped.
#[derive(Deserialize)]
struct RolieDoc {
    feed: RolieFeed,
}

#[derive(Deserialize)]
struct RolieFeed {
    #[serde(default)]
    entry: Vec<RolieEntry>,
}

#[derive(Deserialize)]
struct RolieEntry {
    #[serde(default)]
    link: Vec<RolieLink>,
    updated: Option<String>,
    content: Option<RolieContent>,
}

#[derive(Deserialize)]
struct RolieLink {
    rel: Option<String>,
    #[serde(rename = "ref")]
    ref_: Option<String>,
    href: Option<String>,
}

#[derive(Deserialize)]
struct RolieContent {
    src: Option<String>,
}

fn merge_listed(map: &mut HashMap<String, Listed>, l: Listed) {
    match map.get_mut(&l.url) {
        Some(old) => {
            if l.updated > old.updated {
                old.updated = l.updated;
            }
            old.hashes.extend(l.hashes);
            if old.signature.is_none() {
                old.signature = l.signature;
            }
        }
        None => {
            map.insert(l.url.clone(), l);
        }
    }
}

/// `"path","date"` rows; unquoted rows too. Duplicates are merged by the caller.
pub fn parse_changes_csv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(2, ',');
            let p = parts.next()?.trim().trim_matches('"').to_string();
            let d = parts.next()?.trim().trim_matches('"').to_string();
            (!p.is_empty() && p.ends_with(".json")).then_some((p, d))
        })
        .collect()
}

/// A `bundle-rejected` problem. The event's identity includes the poll that found it:
/// a problem that was fixed and comes back is raised again.
fn rejected(ctx: &Ctx, l: &Listed, code: &'static str, why: String) -> Problem {
    let vendor = &ctx.vendor;
    Problem {
        advisory_url: l.url.clone(),
        code,
        signer: None,
        listed_updated: None,
        event: Some(
            Event::new(
                Kind::BundleRejected,
                vendor,
                &format!(
                    "csaf {} {} {code} {}",
                    l.url,
                    l.updated,
                    crate::text::unix_secs(ctx.now)
                ),
                Severity::High,
                format!(
                    "{vendor} CSAF advisory {} rejected: {why}",
                    file_name(&l.url)
                ),
                l.url.clone(),
                ctx.now,
            )
            .with("code", code)
            .with("advisory_url", l.url.clone()),
        ),
    }
}

/// The last path segment of `url`: how advisories are named in events.
pub fn file_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// How many advisory names an event lists.
pub const SUMMARY_NAMES: usize = 10;

/// The first [`SUMMARY_NAMES`] names joined (an event's `advisories` field), and the
/// same with "and N more" for a title.
pub fn name_list<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> (String, String) {
    let n = names.len();
    let first = names.take(SUMMARY_NAMES).collect::<Vec<_>>().join(", ");
    let shown = if n > SUMMARY_NAMES {
        format!("{first} and {} more", n - SUMMARY_NAMES)
    } else {
        first.clone()
    };
    (first, shown)
}

/// A key the provider uses or lists that is not pinned.
struct NewKey {
    /// The primary key's fingerprint when its certificate was found, else the key's.
    primary: String,
    /// The pinned certificate that certifies it.
    vouched_by: Option<String>,
    /// The advisories signed by it alone, held back.
    advisories: Vec<String>,
}

/// What one key rotation caused in one poll, as one `key-changed` incident per new key:
/// the keys the provider lists that are not pinned and the advisories signed only by
/// them. The held advisories stay open problems (checked again every poll, announced
/// once the key is pinned) but raise no event of their own. The certificate the
/// provider publishes for a key tells its primary key (so a signing subkey and the key
/// listed are one incident) and whether a pinned key certified it. The id names the
/// vendor and primary key, as the key URL watcher's does: one rotation is one event.
async fn rotation_incidents(
    ctx: &Ctx,
    listed: &[(String, Option<String>)],
    problems: &mut [Problem],
) -> Vec<Event> {
    let mut keys: Vec<NewKey> = Vec::new();
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (fpr, cert_url) in listed {
        if owner.contains_key(fpr) {
            continue;
        }
        let cert = match cert_url {
            Some(u) => get_bytes(&ctx.fetcher, u)
                .await
                .map(|b| parse_certs(&b).0)
                .unwrap_or_default(),
            None => Vec::new(),
        }
        .into_iter()
        .find(|c| c.keys().any(|k| k.key().fingerprint().to_hex() == *fpr));
        let idx = keys.len();
        owner.insert(fpr.clone(), idx);
        let (primary, vouched_by) = match &cert {
            Some(c) => {
                for k in c.keys() {
                    owner.insert(k.key().fingerprint().to_hex(), idx);
                }
                (
                    c.fingerprint().to_hex(),
                    certified_by_pinned(c, &ctx.keyring),
                )
            }
            None => (fpr.clone(), None),
        };
        keys.push(NewKey {
            primary,
            vouched_by,
            advisories: Vec::new(),
        });
    }
    for p in problems.iter_mut().filter(|p| p.code == HELD) {
        let Some(fpr) = p.signer.clone() else {
            continue;
        };
        let idx = *owner.entry(fpr.clone()).or_insert_with(|| {
            keys.push(NewKey {
                primary: fpr,
                vouched_by: None,
                advisories: Vec::new(),
            });
            keys.len() - 1
        });
        keys[idx]
            .advisories
            .push(file_name(&p.advisory_url).to_string());
        p.event = None;
    }
    keys.iter().map(|k| incident(ctx, k)).collect()
}

/// The `key-changed` incident for one new key: high unless a pinned key vouches for it.
fn incident(ctx: &Ctx, k: &NewKey) -> Event {
    let vendor = &ctx.vendor;
    let n = k.advisories.len();
    let (severity, how) = match &k.vouched_by {
        Some(by) => (
            Severity::Medium,
            format!(
                "certified by pinned key {}: looks like a planned rotation",
                group4(by)
            ),
        ),
        None => (Severity::High, "no pinned key vouches for it".to_string()),
    };
    let (first, shown) = name_list(k.advisories.iter().map(String::as_str));
    let held = match n {
        0 => "no advisory is signed by it yet".to_string(),
        1 => format!("1 advisory signed by it is held back until it is pinned: {shown}"),
        _ => format!("{n} advisories signed by it are held back until it is pinned: {shown}"),
    };
    let mut e = Event::new(
        Kind::KeyChanged,
        vendor,
        &format!("primary {}", k.primary),
        severity,
        format!(
            "{vendor}'s CSAF provider uses a new key {} that is not pinned ({how}); {held}",
            group4(&k.primary)
        ),
        ctx.provider.clone(),
        ctx.now,
    )
    .with("fingerprint", k.primary.clone())
    .with("change", "csaf-signing-key")
    .with("code", "key-rotation")
    .with("source", ctx.provider.clone())
    .with("vouched", if k.vouched_by.is_some() { "yes" } else { "no" })
    .with("count", n.to_string())
    .with("advisories", first);
    if let Some(by) = &k.vouched_by {
        e = e.with("vouched_by", by.clone());
    }
    e
}

/// Downloads and checks one advisory.
async fn check_advisory(ctx: &Ctx, l: Listed) -> Result<Checked, Problem> {
    let fetcher = &ctx.fetcher;
    let vendor = ctx.vendor.as_str();
    let now = ctx.now;
    let data = get_bytes(fetcher, &l.url).await.map_err(|e| {
        rejected(
            ctx,
            &l,
            "advisory-unreachable",
            format!("could not be downloaded ({e}); tried again next poll"),
        )
    })?;
    // Hashes: the feed's links, else the conventional side files.
    let hash_urls = if l.hashes.is_empty() {
        vec![format!("{}.sha512", l.url), format!("{}.sha256", l.url)]
    } else {
        l.hashes.clone()
    };
    let mut checked = 0;
    let mut side_files = SideFiles {
        advisory_url: l.url.clone(),
        ..SideFiles::default()
    };
    for hu in &hash_urls {
        let Ok((text, validators)) = get_with_validators(fetcher, hu).await else {
            continue;
        };
        let want = hash_value(&text);
        let got = if want.len() == 128 {
            crate::text::hex(&sha2::Sha512::digest(&data))
        } else {
            crate::text::hex(&sha2::Sha256::digest(&data))
        };
        if want != got {
            return Err(rejected(
                ctx,
                &l,
                "digest-mismatch",
                format!("{} does not match the document", file_name(hu)),
            ));
        }
        if checked == 0 {
            side_files.hash_url.clone_from(hu);
            side_files.hash_value.clone_from(&want);
            side_files.hash_validators = validators;
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(rejected(
            ctx,
            &l,
            "hash-missing",
            "no .sha256 or .sha512 file could be fetched".into(),
        ));
    }
    let sig_url = l
        .signature
        .clone()
        .unwrap_or_else(|| format!("{}.asc", l.url));
    let (sig, validators) = get_with_validators(fetcher, &sig_url)
        .await
        .map_err(|e| rejected(ctx, &l, "no-signature", format!("no signature: {e}")))?;
    side_files.signature_url = sig_url;
    side_files.signature_sha256 = sha256_hex(&sig);
    side_files.signature_validators = validators;
    let policy = sequoia_openpgp::policy::StandardPolicy::new();
    let judge = Judge {
        keyring: &ctx.keyring,
        vendor: Some(vendor),
        policy: &policy,
        signers: ctx.acceptance.signers,
        now,
    };
    let name = Path::new(file_name(&l.url));
    let report = verify::verify_detached_bytes(name, &data, &sig, &judge, ctx.acceptance.threshold);
    match report.verdict {
        Verdict::Verified => {}
        Verdict::UnexpectedSigner => {
            let fpr = report
                .signatures
                .iter()
                .find_map(|s| s.issuer.clone())
                .unwrap_or_default();
            return Err(Problem {
                advisory_url: l.url.clone(),
                code: HELD,
                signer: Some(fpr.clone()).filter(|f| !f.is_empty()),
                listed_updated: None,
                event: Some(unpinned_signer(
                    vendor,
                    &format!(
                        "csaf {} {} signer {fpr} {}",
                        l.url,
                        l.updated,
                        crate::text::unix_secs(now)
                    ),
                    &l.url,
                    fpr,
                    false,
                    now,
                )),
            });
        }
        Verdict::Rejected => {
            let why = if report.codes == ["below-threshold"] {
                format!(
                    "signed by {} pinned certificate{}, {} required (below-threshold)",
                    report.good_certificates.len(),
                    if report.good_certificates.len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    report.subject.threshold
                )
            } else {
                format!("signature {}", report.codes.join(", "))
            };
            return Err(rejected(
                ctx,
                &l,
                report.codes.first().copied().unwrap_or("bad-signature"),
                why,
            ));
        }
    }
    let notices = signer_notices(ctx, &l, &report);
    // Only now is the content believed.
    let doc: Value = serde_json::from_slice(&data)
        .map_err(|e| rejected(ctx, &l, "csaf-malformed", format!("not CSAF JSON: {e}")))?;
    let tracking_id = doc
        .pointer("/document/tracking/id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    if tracking_id.is_empty() {
        return Err(rejected(
            ctx,
            &l,
            "csaf-malformed",
            "document.tracking.id is missing or empty".into(),
        ));
    }
    let namespace = doc
        .pointer("/document/publisher/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = doc
        .pointer("/document/tracking/version")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let title = doc
        .pointer("/document/title")
        .and_then(Value::as_str)
        .unwrap_or(tracking_id)
        .to_string();
    let severity = csaf_severity(&doc);
    let cves = csaf_cves(&doc);
    let products = csaf_products(&doc);
    let claims = crate::watch::affects::csaf_claims(&doc);
    let doc = DocumentId {
        scheme: "csaf",
        id: format!("{namespace}#{tracking_id}"),
        version: version.clone(),
    };
    let mut event = Event::new(
        Kind::AdvisoryNew,
        vendor,
        &doc.event_identity(Kind::AdvisoryNew),
        severity,
        format!("{tracking_id}: {title}"),
        l.url.clone(),
        now,
    )
    .with("advisory_id", doc.id.clone())
    .with("tracking_version", version);
    if !products.is_empty() {
        event = event.with("products", products.join(PRODUCTS_SEPARATOR));
    }
    event.cves = cves;
    let content_hash = crate::text::hex(&sha2::Sha256::digest(&data)[..16]);
    let mut advisory = Advisory::new(doc, content_hash, title, event);
    advisory.claims = claims;
    Ok(Checked {
        advisory,
        notices,
        side_files,
    })
}

/// An advisory at `url` signed by key `fpr` that is not pinned: alone, or (`also`)
/// beside pinned signatures that verify.
fn unpinned_signer(
    vendor: &str,
    identity: &str,
    url: &str,
    fpr: String,
    also: bool,
    now: SystemTime,
) -> Event {
    let (name, key) = (file_name(url), group4(&fpr));
    let title = if also {
        format!("{vendor} CSAF advisory {name} is also signed by key {key} that is not pinned (the pinned signatures verify)")
    } else {
        format!("{vendor} CSAF advisory {name} is signed by key {key} that is not pinned")
    };
    Event::new(
        Kind::UnexpectedSigner,
        vendor,
        identity,
        Severity::High,
        title,
        url,
        now,
    )
    .with("fingerprint", fpr)
    .with("advisory_url", url)
    .with("code", "unpinned-signer")
}

/// The verifier's warnings on a verified advisory, as events: a co-signer that is not
/// pinned (`unexpected-signer`, once per provider and key) and a pinned signing key
/// expiring soon (`key-expiring`, with the identity `verify` gives it, so a bundle and
/// an advisory signed by the same key raise it once).
fn signer_notices(ctx: &Ctx, l: &Listed, report: &verify::Report) -> Vec<Event> {
    let vendor = ctx.vendor.as_str();
    let mut out = Vec::new();
    for s in report
        .signatures
        .iter()
        .filter(|s| s.status == Status::UnpinnedSigner)
    {
        let fpr = s.issuer.clone().unwrap_or_default();
        let identity = format!("csaf-co-signer {} {fpr}", ctx.provider);
        out.push(unpinned_signer(
            vendor, &identity, &l.url, fpr, true, ctx.now,
        ));
    }
    for s in &report.signatures {
        if let (Some(exp), Some(cert)) = (s.key_expires_soon, &s.certificate) {
            let fpr = cert.to_hex();
            let event = Event::signer_expiring(vendor, fpr, exp, l.url.clone(), ctx.now);
            out.push(event.with("advisory_url", l.url.clone()));
        }
    }
    out
}

/// `document.aggregate_severity.text`, else the highest CVSS v3 (or v2) base score,
/// else `unknown`: a document that states no severity gets none invented.
pub fn csaf_severity(doc: &Value) -> Severity {
    let mut best = doc
        .pointer("/document/aggregate_severity/text")
        .and_then(Value::as_str)
        .and_then(Severity::parse);
    for v in doc
        .get("vulnerabilities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for s in v
            .get("scores")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let score = s
                .pointer("/cvss_v3/baseScore")
                .or_else(|| s.pointer("/cvss_v2/baseScore"))
                .and_then(Value::as_f64);
            if let Some(score) = score {
                let sev = Severity::from_cvss(score);
                if best.is_none_or(|b| sev > b) {
                    best = Some(sev);
                }
            }
        }
    }
    best.unwrap_or(Severity::Unknown)
}

/// The CVE ids of `vulnerabilities[].cve`, each once, in document order.
/// At most this many product names are carried per advisory (`products`).
const MAX_PRODUCTS: usize = 50;
/// Branches deeper than this are not walked (real trees are 3 to 5 deep).
const MAX_BRANCH_DEPTH: usize = 16;

/// The product names a CSAF document's `product_tree` gives, for routing: every
/// `full_product_names[].name`, and in `branches` every `product_name` branch's `name`
/// and every leaf's `product.name`. Each once, at most [`MAX_PRODUCTS`], branches walked
/// at most [`MAX_BRANCH_DEPTH`] deep; whatever does not have the expected shape is
/// skipped.
pub fn csaf_products(doc: &Value) -> Vec<String> {
    fn branches(v: &Value) -> Vec<&Value> {
        v.get("branches")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: Option<&str>| {
        if let Some(n) = name.map(str::trim).filter(|n| !n.is_empty()) {
            if out.len() < MAX_PRODUCTS && !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
    };
    let Some(tree) = doc.get("product_tree") else {
        return out;
    };
    let name = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_string);
    for p in tree
        .get("full_product_names")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(name(p).as_deref());
    }
    let mut stack: Vec<(&Value, usize)> =
        branches(tree).into_iter().rev().map(|b| (b, 0)).collect();
    while let Some((b, depth)) = stack.pop() {
        if b.get("category").and_then(Value::as_str) == Some("product_name") {
            add(name(b).as_deref());
        }
        if let Some(p) = b.get("product") {
            add(name(p).as_deref());
        }
        if depth < MAX_BRANCH_DEPTH {
            stack.extend(branches(b).into_iter().rev().map(|c| (c, depth + 1)));
        }
    }
    out
}

fn csaf_cves(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in doc
        .get("vulnerabilities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(c) = v.get("cve").and_then(Value::as_str) {
            if !out.iter().any(|o| o == c) {
                out.push(c.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of `n` advisories a poll every `hours` fetches the side files of.
    fn check_slice(n: usize, hours: u64, want: usize) {
        let got = slice_len(n, Duration::from_secs(hours * 3600));
        assert_eq!(got, want, "{n} advisories, polled every {hours}h");
    }

    #[test]
    fn side_file_slices_cover_every_advisory_within_the_window() {
        check_slice(0, 1, 0);
        check_slice(1, 1, 1);
        check_slice(30, 1, 2);
        check_slice(48, 1, 2);
        check_slice(49, 1, 3);
        check_slice(20_000, 1, 834);
        check_slice(2, 12, 1);
        check_slice(5, 48, 5);
        check_slice(5, 0, 1);
        check_slice(usize::MAX, u64::MAX / 3600, usize::MAX);
        // Each of n fetched once in ceil(n / k) polls: the lowest round first, then URL.
        let rows = [("c", 3), ("a", 5), ("b", 3), ("d", 0)];
        let due = due_first(rows.iter().copied(), 2);
        assert_eq!(due, HashSet::from(["d".to_string(), "b".to_string()]));
        assert!(due_first(rows.iter().copied(), 0).is_empty());
        assert_eq!(due_first(rows.iter().copied(), 9).len(), 4);
    }

    #[test]
    fn hash_file_values_are_bounded() {
        let h = "AB".repeat(64);
        assert_eq!(
            hash_value(format!("{h}  2026/a.json").as_bytes()),
            h.to_lowercase()
        );
        assert_eq!(hash_value(b"\n\n  abc"), "abc");
        assert_eq!(hash_value(b""), "");
        assert_eq!(hash_value(&[0xff; 64]).chars().count(), 64);
        let long = "a".repeat(10 << 20);
        assert_eq!(hash_value(long.as_bytes()).len(), 129);
    }

    #[test]
    fn changes_csv_quirks() {
        let rows = parse_changes_csv("\"2024/b.json\",\"2024-02-01T00:00:00Z\"\n\"2024/a.json\",\"2024-01-01T00:00:00Z\"\nnot,a row\n2024/c.json,2024-03-01");
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[2],
            ("2024/c.json".to_string(), "2024-03-01".to_string())
        );
    }

    /// The listing of a ROLIE feed, as (url, updated, hashes, signature) rows sorted by
    /// URL.
    fn check_rolie(feed: &str, want: &[(&str, &str, usize, Option<&str>)]) {
        let base = Base::new("https://p.example/white/feed.json");
        let mut got = rolie_entries(feed.as_bytes(), &base).unwrap();
        got.sort_by(|a, b| a.url.cmp(&b.url));
        let got: Vec<(&str, &str, usize, Option<&str>)> = got
            .iter()
            .map(|l| {
                (
                    l.url.as_str(),
                    l.updated.as_str(),
                    l.hashes.len(),
                    l.signature.as_deref(),
                )
            })
            .collect();
        assert_eq!(got, want, "{feed}");
    }

    #[test]
    fn rolie_feeds_typed_and_odd() {
        let quirks = r#"{"feed": {"id": "x", "entry": [
            {"updated": "2026-01-01", "link": [{"rel": "self", "href": "2026/a.json"},
                {"rel": "hash", "href": "2026/a.json.sha256"}, {"rel": "hash", "href": "2026/a.json.sha512"},
                {"rel": "signature", "href": "2026/a.json.asc"}]},
            {"updated": "2026-01-02", "link": [{"ref": "self", "href": "https://q.example/b.json"}]},
            {"content": {"type": "application/json", "src": "c.json"}},
            {"updated": "2026-01-04", "link": [{"rel": "alternate", "href": "d.html"}]}]}}"#;
        let want = [
            (
                "https://p.example/white/2026/a.json",
                "2026-01-01",
                2,
                Some("https://p.example/white/2026/a.json.asc"),
            ),
            ("https://p.example/white/c.json", "", 0, None),
            ("https://q.example/b.json", "2026-01-02", 0, None),
        ];
        check_rolie(quirks, &want);
        // A field of an unexpected type reads as absent, as it always did.
        check_rolie(
            &quirks
                .replace(r#""id": "x""#, r#""id": 7, "entry2": null"#)
                .replace(
                    r#"{"updated": "2026-01-04""#,
                    r#"{"updated": 20260104, "link": {"rel": "self"}}, {"updated": "2026-01-04""#,
                ),
            &want,
        );
        check_rolie(r#"{"feed": {}}"#, &[]);
        check_rolie(r#"{"not a feed": true}"#, &[]);
        let base = Base::new("https://p.example/");
        assert!(rolie_entries(b"<html>", &base).is_err());
    }

    #[test]
    fn severity_from_aggregate_or_cvss() {
        let doc: Value = serde_json::json!({"document": {"aggregate_severity": {"text": "Moderate"}},
            "vulnerabilities": [{"scores": [{"cvss_v3": {"baseScore": 9.8}}]}]});
        assert_eq!(csaf_severity(&doc), Severity::Critical);
        let doc: Value =
            serde_json::json!({"document": {"aggregate_severity": {"text": "Important"}}});
        assert_eq!(csaf_severity(&doc), Severity::High);
    }

    #[test]
    fn no_stated_severity_is_unknown_and_cves_are_listed_once() {
        let doc: Value = serde_json::json!({"vulnerabilities": [
            {"cve": "CVE-2024-1"}, {"cve": "CVE-2024-2"}, {"cve": "CVE-2024-1"}, {"title": "x"}]});
        assert_eq!(csaf_severity(&doc), Severity::Unknown);
        assert_eq!(csaf_cves(&doc), ["CVE-2024-1", "CVE-2024-2"]);
    }

    #[test]
    fn product_names_from_the_tree_bounded() {
        let doc = serde_json::json!({"product_tree": {
            "full_product_names": [{"name": "Acme Agent 4.2"}, {"name": 7}, {"nope": 1}],
            "branches": [{"category": "vendor", "name": "Acme", "branches": [
                {"category": "product_name", "name": "Acme Agent", "branches": [
                    {"category": "product_version", "name": "4.2", "product": {"name": "Acme Agent 4.2", "product_id": "A"}},
                    {"category": "product_version", "name": "4.3", "product": {"name": "Acme Agent 4.3"}}]}]}],
        }});
        assert_eq!(
            csaf_products(&doc),
            ["Acme Agent 4.2", "Acme Agent", "Acme Agent 4.3"]
        );
        assert!(csaf_products(&serde_json::json!({"product_tree": "x"})).is_empty());
        // Deep and wide trees: bounded.
        let mut deep = serde_json::json!({"category": "product_name", "name": "bottom"});
        for i in 0..100 {
            deep = serde_json::json!({"category": "product_name", "name": format!("n{i}"), "branches": [deep]});
        }
        let names = csaf_products(&serde_json::json!({"product_tree": {"branches": [deep]}}));
        assert_eq!(names.len(), MAX_BRANCH_DEPTH + 1);
        let wide: Vec<Value> = (0..500)
            .map(|i| serde_json::json!({"name": format!("p{i}")}))
            .collect();
        let names =
            csaf_products(&serde_json::json!({"product_tree": {"full_product_names": wide}}));
        assert_eq!(names.len(), MAX_PRODUCTS);
    }
}
