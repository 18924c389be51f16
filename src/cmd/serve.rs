//! The daemon's metrics endpoint (`[watch] metrics = "ADDR"`): a tiny HTTP/1.x server
//! on tokio that answers `GET /metrics` with `status --prometheus`'s text and 404 to
//! anything else.
//!
//! It never holds up the watcher: each scrape opens its own connection to the state
//! (SQLite in WAL mode lets it read while the watcher writes) on a blocking thread. A
//! request may be at most [`MAX_REQUEST`] bytes and must arrive within
//! [`HEAD_TIMEOUT`]; answering it then takes at most [`EXCHANGE_TIMEOUT`], and at most
//! [`MAX_CONNECTIONS`] are answered at once. Connections are always accepted, so idle
//! ones cannot queue scrapes behind them: at most [`MAX_OPEN`] are open at once and
//! more are closed as soon as they are accepted. The rendering is `cmd/monitor.rs`'s;
//! nothing here reads the clock or writes to the state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::cmd::monitor::{prometheus_text, Snapshot};
use crate::config::Config;

/// The most a request (line and headers) may take.
pub const MAX_REQUEST: usize = 8 * 1024;
/// The most the request head may take to arrive, from accept.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// The most answering one request may take, from its head to the last byte written.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests answered at once; more wait, their head read.
pub const MAX_CONNECTIONS: usize = 8;
/// Connections open at once (most of them still sending their head); more are
/// closed on accept.
pub const MAX_OPEN: usize = 256;

/// Binds `addr` and returns the listener and the address it got (port 0 chooses one).
///
/// # Errors
///
/// When the address cannot be bound, naming it.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("watch.metrics: cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves scrapes on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, config: Arc<Config>) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_OPEN));
    let answering = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                continue;
            }
        };
        let Ok(held) = open.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (config, answering) = (config.clone(), answering.clone());
        tokio::spawn(async move {
            let Ok(Ok(Some(head))) =
                tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await
            else {
                return;
            };
            if let Ok(_slot) = answering.acquire().await {
                let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, answer(stream, head, config)).await;
            }
            drop(held);
        });
    }
}

/// What the client sent before the blank line.
enum Head {
    Request(Request),
    TooLarge,
}

/// Reads up to the blank line ending the request head; `None` when the client closes
/// first.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Head>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(Head::Request(parse_request(&head))));
        }
        if head.len() > MAX_REQUEST {
            return Ok(Some(Head::TooLarge));
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Metrics,
    NotFound,
    Bad,
}

/// Reads the request head: up to the blank line, at most [`MAX_REQUEST`] bytes.
pub(crate) fn parse_request(head: &[u8]) -> Request {
    let Some(line) = head.split(|&b| b == b'\n').next() else {
        return Request::Bad;
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    match parts.as_slice() {
        [method, target, version] if version.starts_with(b"HTTP/1.") => {
            if *method == b"GET" && *target == b"/metrics" {
                Request::Metrics
            } else {
                Request::NotFound
            }
        }
        _ => Request::Bad,
    }
}

async fn answer(mut stream: TcpStream, head: Head, config: Arc<Config>) -> std::io::Result<()> {
    let request = match head {
        Head::Request(r) => r,
        Head::TooLarge => {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
            )
            .await;
        }
    };
    match request {
        Request::Metrics => {
            let rendered = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
                let state = super::watch::existing_state(&config)?;
                Ok(prometheus_text(&Snapshot::read(&config, &*state)?))
            })
            .await;
            match rendered {
                Ok(Ok(text)) => {
                    respond(
                        &mut stream,
                        "200 OK",
                        "text/plain; version=0.0.4; charset=utf-8",
                        &text,
                    )
                    .await
                }
                Ok(Err(e)) => {
                    let msg = format!("cannot read the state: {}\n", crate::cmd::error_line(&e));
                    respond(&mut stream, "500 Internal Server Error", "text/plain", &msg).await
                }
                Err(_) => {
                    respond(
                        &mut stream,
                        "500 Internal Server Error",
                        "text/plain",
                        "internal error\n",
                    )
                    .await
                }
            }
        }
        Request::NotFound => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "only GET /metrics is served\n",
            )
            .await
        }
        Request::Bad => {
            respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                "bad request\n",
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    kind: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &[u8], want: Request) {
        assert_eq!(
            parse_request(head),
            want,
            "{}",
            String::from_utf8_lossy(head)
        );
    }

    #[test]
    fn requests() {
        check(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            Request::Metrics,
        );
        check(b"GET /metrics HTTP/1.0\n\n", Request::Metrics);
        check(b"GET / HTTP/1.1\r\n\r\n", Request::NotFound);
        check(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", Request::NotFound);
        check(b"POST /metrics HTTP/1.1\r\n\r\n", Request::NotFound);
        check(b"GET /metrics/../x HTTP/1.1\r\n\r\n", Request::NotFound);
        check(b"GET /metrics\r\n\r\n", Request::Bad);
        check(b"GET  /metrics HTTP/1.1\r\n\r\n", Request::Bad);
        check(b"\x00\xff\r\n\r\n", Request::Bad);
        check(b"", Request::Bad);
        check(b"GET /metrics SPDY/3\r\n\r\n", Request::Bad);
    }
}
