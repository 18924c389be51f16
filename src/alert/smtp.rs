//! The SMTP connection the email channel sends over: one per channel, opened on the
//! first message and reused for every later one, with `TCP_NODELAY` set.
//!
//! lettre's own transport cannot be given a socket option, and without `TCP_NODELAY`
//! every message stalls: lettre writes a message's body and its closing `.` in two
//! writes, so the second waits (Nagle) for the server's acknowledgement of the first,
//! which the server delays (about 40 ms). So the socket is made here, with the option
//! set, and handed to lettre's public `AsyncSmtpConnection`, which still does
//! everything SMTP: greeting, EHLO, STARTTLS, AUTH, the message. For `smtps://` the TLS
//! session is started first with lettre's own stream and wrapped ([`TlsFirst`]), so
//! certificates are checked exactly as lettre checks them.
//!
//! This file leaves to `email.rs` what the messages say, which TLS is required and
//! how failures are classified.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
// lettre deprecated naming `AsyncNetworkStream` outside the crate (0.11) but gives no
// other way to start TLS before the greeting on a socket of one's own; it is used for
// `smtps://` only, through `use_existing_tokio1` and `upgrade_tls`.
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, Tls};
use lettre::transport::smtp::extension::ClientId;

/// A connection idle for longer than this is asked (`NOOP`) whether it is still open
/// before a message goes over it: servers close idle sessions (RFC 5321 allows 5
/// minutes), and the daemon keeps its channel from one pass to the next.
const IDLE_CHECK: Duration = Duration::from_secs(10);

/// Why a message could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// No TCP connection to the server (refused, unreachable, timed out, no address).
    #[error("connecting to {server}")]
    Connect { server: String, source: io::Error },
    /// What lettre reports: TLS, a server reply, the connection breaking.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// Where and how to connect.
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub credentials: Option<Credentials>,
    /// For opening the TCP connection.
    pub timeout: Duration,
}

/// A [`Relay`] and the one connection a run keeps to it.
pub struct SmtpSession {
    relay: Relay,
    conn: tokio::sync::Mutex<Option<Open>>,
}

struct Open {
    conn: AsyncSmtpConnection,
    last_used: tokio::time::Instant,
}

impl SmtpSession {
    pub fn new(relay: Relay) -> SmtpSession {
        SmtpSession {
            relay,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Sends one message, over the open connection when there is a good one, over a
    /// new one otherwise. After any failure lettre has closed the connection
    /// (`has_broken`), and the next message opens a new one.
    ///
    /// # Errors
    ///
    /// [`SmtpError`]: the connection could not be made, or lettre's error (TLS, a 4xx
    /// or 5xx reply, a broken connection).
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), SmtpError> {
        let mut slot = self.conn.lock().await;
        if let Some(open) = slot.as_mut() {
            let stale = open.last_used.elapsed() > IDLE_CHECK;
            if open.conn.has_broken() || (stale && !open.conn.test_connected().await) {
                *slot = None;
            }
        }
        let open = match slot.as_mut() {
            Some(open) => open,
            None => slot.insert(Open {
                conn: self.connect().await?,
                last_used: tokio::time::Instant::now(),
            }),
        };
        let sent = open.conn.send(envelope, message).await;
        open.last_used = tokio::time::Instant::now();
        if open.conn.has_broken() {
            *slot = None;
        }
        sent.map(|_| ()).map_err(SmtpError::from)
    }

    /// A new connection: TCP with `TCP_NODELAY`, TLS first for `smtps://`, greeting and
    /// EHLO, STARTTLS as `tls` says (as lettre's transport does), then AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let r = &self.relay;
        let tcp = tcp_nodelay(&r.host, r.port, r.timeout)
            .await
            .map_err(|source| SmtpError::Connect {
                server: format!("{}:{}", r.host, r.port),
                source,
            })?;
        let hello = ClientId::default();
        let mut conn = match &r.tls {
            #[allow(deprecated)]
            Tls::Wrapper(params) => {
                let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
                stream.upgrade_tls(params.clone()).await?;
                AsyncSmtpConnection::connect_with_transport(Box::new(TlsFirst(stream)), &hello)
                    .await?
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello).await?,
        };
        match &r.tls {
            Tls::Opportunistic(params) if conn.can_starttls() => {
                conn.starttls(params.clone(), &hello).await?;
            }
            Tls::Required(params) => conn.starttls(params.clone(), &hello).await?,
            _ => {}
        }
        if let Some(c) = &r.credentials {
            conn.auth(DEFAULT_MECHANISMS, c).await?;
        }
        Ok(conn)
    }
}

/// Connects to the first address of `host` that answers within `timeout`, with
/// `TCP_NODELAY` set.
async fn tcp_nodelay(
    host: &str,
    port: u16,
    timeout: Duration,
) -> io::Result<tokio::net::TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
    for addr in tokio::net::lookup_host((host, port)).await? {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "connection timed out"),
        }
    }
    Err(last)
}

/// lettre's TLS stream (made by lettre, over our socket) as the plain stream lettre's
/// connection takes: `connect_with_transport` accepts only a stream that is already
/// what it will speak SMTP over.
#[derive(Debug)]
#[allow(deprecated)]
struct TlsFirst(AsyncNetworkStream);

impl tokio::io::AsyncRead for TlsFirst {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(futures_io::AsyncRead::poll_read(
            Pin::new(&mut self.0),
            cx,
            buf.initialize_unfilled()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for TlsFirst {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(Pin::new(&mut self.0), cx)
    }
}

impl AsyncTokioStream for TlsFirst {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}
