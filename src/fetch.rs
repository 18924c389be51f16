//! HTTP for the watcher: polite, bounded, conditional, retried.
//!
//! Politeness: at most `concurrency` requests in flight overall and `per_host` per host.
//! Bounds: a timeout on the whole exchange (headers and body), and `max_body` counted on
//! the *decoded* bytes while they stream, so a gzip bomb stops at the cap. Redirects:
//! at most 5, and an https URL may not redirect to http. Conditional GET: ETag and
//! Last-Modified are kept exactly as the server sent them and sent back; 304 is success.
//!
//! Retry policy: timeouts, connection errors, 5xx and 429 are retried up to `attempts`
//! tries in all. The delay before try `n + 1` is `initial * 2^(n-1)`, capped at `max`,
//! with jitter (`full`: uniform in [0, d]; `equal`: d/2 plus uniform in [0, d/2];
//! `none`). A `Retry-After` header (seconds or an HTTP date) replaces the computed
//! delay, capped at `max`. Other 4xx answers are final at once: asking again will not
//! change them. The permits are released while waiting, so a slow host does not block
//! others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;

use crate::config::{Backoff, Jitter, Watch};

/// A fetched resource.
#[derive(Debug, Clone)]
pub enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
        content_type: Option<String>,
    },
}

/// Why a fetch failed, with a stable code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FetchError {
    /// `feed-unreachable`, `feed-timeout`, `http-error`, `body-too-large`,
    /// `redirect-refused`.
    pub code: &'static str,
    pub message: String,
    pub attempts: u32,
}

/// Conditional-GET validators to send.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The shared HTTP client and its limits.
pub struct Fetcher {
    client: reqwest::Client,
    global: Arc<Semaphore>,
    per_host: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    timeout: Duration,
    max_body: u64,
    backoff: Backoff,
}

enum Attempt {
    Done(Fetched),
    Retry {
        error: FetchError,
        after: Option<Duration>,
    },
    Fatal(FetchError),
}

impl Fetcher {
    /// Builds the client from `[watch]`.
    ///
    /// # Errors
    ///
    /// When the TLS backend cannot be set up.
    pub fn new(w: &Watch) -> anyhow::Result<Fetcher> {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            match redirect_allowed(attempt.previous(), attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(msg) => attempt.error(msg),
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(w.user_agent.clone())
            .redirect(policy)
            .connect_timeout(w.timeout)
            .pool_max_idle_per_host(w.per_host)
            .build()?;
        Ok(Fetcher {
            client,
            global: Arc::new(Semaphore::new(w.concurrency)),
            per_host: w.per_host,
            hosts: Mutex::new(HashMap::new()),
            timeout: w.timeout,
            max_body: w.max_body,
            backoff: w.backoff.clone(),
        })
    }

    fn host_semaphore(&self, url: &reqwest::Url) -> Arc<Semaphore> {
        let key = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        let mut hosts = self.hosts.lock().expect("host map");
        hosts
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
            .clone()
    }

    /// GETs `url`, retrying as the policy says.
    ///
    /// # Errors
    ///
    /// The last attempt's [`FetchError`].
    pub async fn get(&self, url: &str, validators: &Validators) -> Result<Fetched, FetchError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| FetchError {
            code: "feed-unreachable",
            message: format!("bad URL {url}: {e}"),
            attempts: 0,
        })?;
        let host = self.host_semaphore(&parsed);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = {
                let _g = self.global.acquire().await.expect("semaphore open");
                let _h = host.acquire().await.expect("semaphore open");
                self.once(parsed.clone(), validators).await
            };
            match result {
                Attempt::Done(f) => return Ok(f),
                Attempt::Fatal(mut e) => {
                    e.attempts = attempt;
                    return Err(e);
                }
                Attempt::Retry { mut error, after } => {
                    error.attempts = attempt;
                    if attempt >= self.backoff.attempts {
                        return Err(error);
                    }
                    let delay = after
                        .map(|d| d.min(self.backoff.max))
                        .unwrap_or_else(|| backoff_delay(&self.backoff, attempt));
                    tracing::debug!("{url}: {error}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn once(&self, url: reqwest::Url, v: &Validators) -> Attempt {
        let shown = url.to_string();
        let work = async {
            let mut req = self.client.get(url);
            if let Some(e) = &v.etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, e);
            }
            if let Some(l) = &v.last_modified {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, l);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => return classify_send_error(&shown, e),
            };
            let status = resp.status();
            if status == reqwest::StatusCode::NOT_MODIFIED {
                return Attempt::Done(Fetched::NotModified);
            }
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                let after = retry_after(resp.headers());
                return Attempt::Retry {
                    error: FetchError {
                        code: "http-error",
                        message: format!("{shown}: HTTP {status}"),
                        attempts: 0,
                    },
                    after,
                };
            }
            if !status.is_success() {
                return Attempt::Fatal(FetchError {
                    code: "http-error",
                    message: format!("{shown}: HTTP {status}"),
                    attempts: 0,
                });
            }
            let header = |name: reqwest::header::HeaderName| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let etag = header(reqwest::header::ETAG);
            let last_modified = header(reqwest::header::LAST_MODIFIED);
            let content_type = header(reqwest::header::CONTENT_TYPE);
            if let Some(len) = resp.content_length() {
                if len > self.max_body {
                    return Attempt::Fatal(too_large(&shown, self.max_body));
                }
            }
            let mut resp = resp;
            let mut bytes = Vec::new();
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        if bytes.len() as u64 + chunk.len() as u64 > self.max_body {
                            return Attempt::Fatal(too_large(&shown, self.max_body));
                        }
                        bytes.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(e) => return classify_send_error(&shown, e),
                }
            }
            Attempt::Done(Fetched::Body {
                bytes,
                etag,
                last_modified,
                content_type,
            })
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(a) => a,
            Err(_) => Attempt::Retry {
                error: FetchError {
                    code: "feed-timeout",
                    message: format!("{shown}: no complete answer within {:?}", self.timeout),
                    attempts: 0,
                },
                after: None,
            },
        }
    }
}

/// Whether a redirect to `next` may be followed after `previous` hops: at most 5, and
/// never from https down to http.
fn redirect_allowed(previous: &[reqwest::Url], next: &reqwest::Url) -> Result<(), String> {
    if previous.len() >= 5 {
        return Err(format!("more than 5 redirects (last to {next})"));
    }
    if previous.iter().any(|u| u.scheme() == "https") && next.scheme() != "https" {
        return Err(format!("an https source may not redirect to {next}"));
    }
    Ok(())
}

fn too_large(url: &str, max: u64) -> FetchError {
    FetchError {
        code: "body-too-large",
        message: format!(
            "{url}: the body is larger than max_body ({max} bytes, counted after decompression)"
        ),
        attempts: 0,
    }
}

fn classify_send_error(url: &str, e: reqwest::Error) -> Attempt {
    let chain = crate::text::error_chain(&e);
    if e.is_redirect() {
        return Attempt::Fatal(FetchError {
            code: "redirect-refused",
            message: format!("{url}: {chain}"),
            attempts: 0,
        });
    }
    if e.is_timeout() {
        return Attempt::Retry {
            error: FetchError {
                code: "feed-timeout",
                message: format!("{url}: {chain}"),
                attempts: 0,
            },
            after: None,
        };
    }
    if e.is_decode() || e.is_body() {
        // A body that does not decode (bad gzip) will not get better by asking again.
        return Attempt::Fatal(FetchError {
            code: "http-error",
            message: format!("{url}: {chain}"),
            attempts: 0,
        });
    }
    Attempt::Retry {
        error: FetchError {
            code: "feed-unreachable",
            message: format!("{url}: {chain}"),
            attempts: 0,
        },
        after: None,
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The delay before try `attempt + 1`.
pub fn backoff_delay(b: &Backoff, attempt: u32) -> Duration {
    let exp = b
        .initial
        .checked_mul(1u32 << (attempt.saturating_sub(1)).min(20))
        .unwrap_or(b.max)
        .min(b.max);
    let ms = exp.as_millis() as u64;
    match b.jitter {
        Jitter::None => exp,
        Jitter::Full => Duration::from_millis(fastrand::u64(0..=ms)),
        Jitter::Equal => Duration::from_millis(ms / 2 + fastrand::u64(0..=ms / 2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Backoff {
            attempts: 5,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(5),
            jitter: Jitter::None,
        };
        let d: Vec<u64> = (1..=5).map(|a| backoff_delay(&b, a).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 5, 5]);
        let full = Backoff {
            jitter: Jitter::Full,
            ..b.clone()
        };
        assert!((0..100).all(|_| backoff_delay(&full, 3) <= Duration::from_secs(4)));
        let equal = Backoff {
            jitter: Jitter::Equal,
            ..b
        };
        assert!((0..100).all(|_| backoff_delay(&equal, 3) >= Duration::from_secs(2)));
    }

    #[test]
    fn redirects_never_downgrade_and_are_bounded() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(redirect_allowed(&[u("https://a.example/")], &u("https://b.example/")).is_ok());
        assert!(redirect_allowed(&[u("http://a.example/")], &u("https://b.example/")).is_ok());
        let e = redirect_allowed(&[u("https://a.example/")], &u("http://a.example/")).unwrap_err();
        assert!(e.contains("may not redirect"), "{e}");
        let five: Vec<_> = (0..5)
            .map(|i| u(&format!("http://a.example/{i}")))
            .collect();
        assert!(redirect_allowed(&five, &u("http://a.example/x"))
            .unwrap_err()
            .contains("more than 5"));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        h.insert(reqwest::header::RETRY_AFTER, later.parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(50) && d <= Duration::from_secs(60),
            "{d:?}"
        );
    }
}
