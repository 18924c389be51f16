//! HTTP for the watcher: polite, bounded, conditional, retried.
//!
//! Politeness: at most `concurrency` requests in flight overall and `per_host` per host.
//! Bounds: a timeout on the whole exchange (headers and body), and `max_body` counted on
//! the *decoded* bytes while they stream, so a gzip bomb stops at the cap. Redirects:
//! at most 5, and an https URL may not redirect to http; a hop to another host is
//! logged. Addresses: no request, first or redirected, goes to a link-local address
//! (169.254.0.0/16, fe80::/10) or a well-known cloud metadata address
//! (`fd00:ec2::254`, `100.100.100.200`, `168.63.129.16`, `192.0.0.192`), checked on the URL's literal address and on
//! every address a name resolves to (`address-refused`); private ranges stay allowed,
//! since internal vendor mirrors are real. Conditional GET: ETag and Last-Modified
//! are kept exactly as the server sent them and sent back; 304 is success.
//!
//! Retry policy: timeouts, connection errors, 5xx and 429 are retried up to `attempts`
//! tries in all. The delay before try `n + 1` is `initial * 2^(n-1)`, capped at `max`,
//! with jitter (`full`: uniform in [0, d]; `equal`: d/2 plus uniform in [0, d/2];
//! `none`). A `Retry-After` header (seconds or an HTTP date) replaces the computed
//! delay, capped at `max`. Other 4xx answers are final at once: asking again will not
//! change them. The permits are released while waiting, so a slow host does not block
//! others.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;

use crate::config::{Backoff, Jitter, Watch};
use crate::watch::source::PollError;

/// A fetched resource.
#[derive(Debug, Clone)]
pub enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
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
        error: PollError,
        after: Option<Duration>,
    },
    Fatal(PollError),
}

impl Fetcher {
    /// Builds the client from `[watch]`.
    ///
    /// # Errors
    ///
    /// When the TLS backend cannot be set up.
    pub fn new(w: &Watch) -> anyhow::Result<Fetcher> {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            if let Err(refused) = literal_address_allowed(attempt.url()) {
                return attempt.error(refused);
            }
            match redirect_allowed(attempt.previous(), attempt.url()) {
                Ok(()) => {
                    let first = attempt.previous().first().and_then(|u| u.host_str());
                    if first != attempt.url().host_str() {
                        tracing::info!(
                            "{}: redirected to another host: {}",
                            attempt.previous().first().map(|u| u.as_str()).unwrap_or(""),
                            attempt.url()
                        );
                    }
                    attempt.follow()
                }
                Err(msg) => attempt.error(msg),
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(w.user_agent.clone())
            .redirect(policy)
            .dns_resolver(Arc::new(GuardedResolver))
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
    /// The last attempt's [`PollError`]: `feed-unreachable`, `feed-timeout`, `http-error`,
    /// `body-too-large`, `redirect-refused` or `address-refused`.
    pub async fn get(&self, url: &str, validators: &Validators) -> Result<Fetched, PollError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| PollError::new("feed-unreachable", format!("bad URL {url}: {e}")))?;
        if let Err(refused) = literal_address_allowed(&parsed) {
            return Err(PollError::new("address-refused", refused.to_string()));
        }
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
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry { error, after } => {
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
                    error: PollError::new("http-error", format!("{shown}: HTTP {status}")),
                    after,
                };
            }
            if !status.is_success() {
                return Attempt::Fatal(PollError::new(
                    "http-error",
                    format!("{shown}: HTTP {status}"),
                ));
            }
            let header = |name: reqwest::header::HeaderName| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let etag = header(reqwest::header::ETAG);
            let last_modified = header(reqwest::header::LAST_MODIFIED);
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
            })
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(a) => a,
            Err(_) => Attempt::Retry {
                error: PollError::new(
                    "feed-timeout",
                    format!("{shown}: no complete answer within {:?}", self.timeout),
                ),
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

fn too_large(url: &str, max: u64) -> PollError {
    PollError::new(
        "body-too-large",
        format!(
            "{url}: the body is larger than max_body ({max} bytes, counted after decompression)"
        ),
    )
}

fn classify_send_error(url: &str, e: reqwest::Error) -> Attempt {
    let chain = crate::text::error_chain(&e);
    if let Some(refused) = find_refused(&e) {
        // Asking again resolves to the same refused address.
        return Attempt::Fatal(PollError::new("address-refused", refused.to_string()));
    }
    if e.is_redirect() {
        return Attempt::Fatal(PollError::new(
            "redirect-refused",
            format!("{url}: {chain}"),
        ));
    }
    if e.is_timeout() {
        return Attempt::Retry {
            error: PollError::new("feed-timeout", format!("{url}: {chain}")),
            after: None,
        };
    }
    if e.is_decode() || e.is_body() {
        // A body that does not decode (bad gzip) will not get better by asking again.
        return Attempt::Fatal(PollError::new("http-error", format!("{url}: {chain}")));
    }
    Attempt::Retry {
        error: PollError::new("feed-unreachable", format!("{url}: {chain}")),
        after: None,
    }
}

/// A request that would reach an address no source may point at.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{host} is {address}, a {why} address; vendorguard never fetches from link-local or cloud metadata addresses")]
pub struct RefusedAddress {
    host: String,
    address: IpAddr,
    why: &'static str,
}

/// Why `ip` may not be fetched from, or `None` when it may. Link-local addresses and
/// the cloud metadata services are what a hostile feed or redirect would aim at (the
/// instance's credentials live there); private ranges are allowed, since vendors'
/// internal mirrors live in them. IPv4 written inside IPv6 (mapped, compatible, and
/// the NAT64 prefix 64:ff9b::/96) is judged as the IPv4 address it carries.
pub fn refused_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return refused_v4(v4);
            }
            if let Some(v4) = local_nat64_v4(v6) {
                return refused_v4(v4);
            }
            if v6.segments()[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("cloud metadata")
            } else {
                None
            }
        }
    }
}

fn refused_v4(v4: Ipv4Addr) -> Option<&'static str> {
    if v4.is_link_local() {
        Some("link-local")
    } else if [
        Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
        Ipv4Addr::new(168, 63, 129, 16),   // Azure WireServer
        Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud (classic)
    ]
    .contains(&v4)
    {
        Some("cloud metadata")
    } else {
        None
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let mapped = s[..5] == [0; 5] && s[5] == 0xffff;
    // ::ffff:0:a.b.c.d (SIIT "translated").
    let translated = s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0;
    // ::a.b.c.d (deprecated "compatible"), but not :: and ::1.
    let compatible = s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1);
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    (mapped || translated || compatible || nat64).then_some(tail)
}

/// The local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) carries the IPv4 address in
/// bytes 6, 7, 9 and 10 (RFC 6052's /48 layout); it is judged by that address.
fn local_nat64_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = v6.octets();
    (o[..6] == [0, 0x64, 0xff, 0x9b, 0, 1]).then(|| Ipv4Addr::new(o[6], o[7], o[9], o[10]))
}

/// Checks a URL whose host is an address literal (names are checked as they resolve).
fn literal_address_allowed(url: &reqwest::Url) -> Result<(), RefusedAddress> {
    let address = match url.host() {
        Some(url::Host::Ipv4(a)) => IpAddr::V4(a),
        Some(url::Host::Ipv6(a)) => IpAddr::V6(a),
        _ => return Ok(()),
    };
    match refused_address(address) {
        Some(why) => Err(RefusedAddress {
            host: url.host_str().unwrap_or("").to_string(),
            address,
            why,
        }),
        None => Ok(()),
    }
}

fn find_refused<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a RefusedAddress> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<RefusedAddress>() {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

/// Name resolution that drops refused addresses, so every connection, redirects
/// included, is checked after resolution: a name that resolves only to refused
/// addresses fails with [`RefusedAddress`]; one with other addresses too uses those.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, refused) = split_resolved(resolved);
            if allowed.is_empty() {
                if let Some((address, why)) = refused {
                    return Err(Box::new(RefusedAddress { host, address, why })
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses that may be used, and the first refused one with its reason.
fn split_resolved(resolved: Vec<SocketAddr>) -> (Vec<SocketAddr>, Option<(IpAddr, &'static str)>) {
    let mut allowed = Vec::new();
    let mut refused = None;
    for a in resolved {
        match refused_address(a.ip()) {
            Some(why) => {
                refused.get_or_insert((a.ip(), why));
            }
            None => allowed.push(a),
        }
    }
    (allowed, refused)
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
    fn address_rule() {
        let check = |s: &str, refused: Option<&str>| {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(refused_address(ip), refused, "{s}");
        };
        check("169.254.169.254", Some("link-local"));
        check("169.254.0.1", Some("link-local"));
        check("169.255.0.1", None);
        check("100.100.100.200", Some("cloud metadata"));
        check("100.100.100.201", None);
        check("168.63.129.16", Some("cloud metadata"));
        check("192.0.0.192", Some("cloud metadata"));
        check("::ffff:0:a9fe:a9fe", Some("link-local"));
        check("64:ff9b:1:a9fe:a9:fe00::", Some("link-local"));
        check("64:ff9b:1:a00:1:200::", None);
        check("fe80::1", Some("link-local"));
        check("febf::1", Some("link-local"));
        check("fec0::1", None);
        check("fd00:ec2::254", Some("cloud metadata"));
        check("fd00:ec2::253", None);
        check("::ffff:169.254.169.254", Some("link-local"));
        check("::169.254.169.254", Some("link-local"));
        check("64:ff9b::a9fe:a9fe", Some("link-local"));
        check("64:ff9b::6464:64c8", Some("cloud metadata"));
        // Loopback and the private ranges stay allowed: internal mirrors are real.
        check("127.0.0.1", None);
        check("::1", None);
        check("::", None);
        check("10.1.2.3", None);
        check("172.16.0.1", None);
        check("192.168.1.1", None);
        check("fd12:3456::1", None);
        check("93.184.216.34", None);
    }

    #[test]
    fn literal_and_resolved_addresses() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        let e =
            literal_address_allowed(&u("http://169.254.169.254/latest/meta-data/")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "169.254.169.254 is 169.254.169.254, a link-local address; vendorguard never fetches from link-local or cloud metadata addresses"
        );
        assert!(literal_address_allowed(&u("http://[fd00:ec2::254]/")).is_err());
        assert!(literal_address_allowed(&u("http://127.0.0.1:8080/feed")).is_ok());
        assert!(literal_address_allowed(&u("https://vendor.example/feed")).is_ok());
        let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let (ok, refused) = split_resolved(vec![sa("169.254.169.254:0"), sa("10.0.0.5:0")]);
        assert_eq!(ok, vec![sa("10.0.0.5:0")]);
        assert_eq!(refused.map(|r| r.1), Some("link-local"));
        let (ok, refused) = split_resolved(vec![sa("[fe80::1]:0")]);
        assert!(ok.is_empty() && refused.is_some());
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
