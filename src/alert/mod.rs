//! Delivering events from the outbox: the escalation program, email, or stdout.
//!
//! The rule is certspotter's: deliver first, record second. An event is marked
//! delivered on a channel only after that channel acknowledged (the program exited 0,
//! the SMTP server accepted the message). A crash between the two means at most one
//! duplicate, which carries the same `Message-ID` so mail clients fold it. Channels are
//! independent: email being down never holds back the escalation program.
//!
//! Retry policy: every run retries everything pending, oldest first. Within one run a
//! channel that cannot be reached at all (connection refused, TLS failure) is not tried
//! again for the remaining events; they wait for the next run (the cron interval, or the
//! daemon's next pass), so a dead SMTP server is not hammered. A permanent rejection of
//! one message (SMTP 5xx) is recorded as such and the next event is tried.
//!
//! Email credentials travel only over TLS: with a password, `smtp://` requires
//! STARTTLS unless `insecure_auth = true`.
//!
//! The escalation program is run directly, never through a shell string, with the event
//! JSON on stdin and `VENDORGUARD_*` variables; on timeout its whole process group is
//! killed. With no channel configured, events are printed to stdout and count as
//! delivered, so cron mails them to `MAILTO`.

pub mod event;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::alert::event::Event;
use crate::config::{Alerts, Email};
use crate::store::sqlite::{DeliveryFailure, PendingEvent, State, StateError};

/// Captured output kept per attempt.
const OUTPUT_LIMIT: usize = 16 * 1024;

/// A delivery channel.
#[derive(Debug, Clone)]
pub enum Channel {
    Escalation { program: PathBuf, timeout: Duration },
    Email(Email),
    Stdout { json: bool },
}

impl Channel {
    /// The name deliveries are recorded under.
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Escalation { .. } => "escalation",
            Channel::Email(_) => "email",
            Channel::Stdout { .. } => "stdout",
        }
    }
}

/// The channels `[alerts]` configures; stdout when none is.
pub fn channels(alerts: &Alerts, json: bool) -> Vec<Channel> {
    let mut out = Vec::new();
    if let Some(p) = &alerts.escalation {
        out.push(Channel::Escalation {
            program: p.clone(),
            timeout: alerts.escalation_timeout,
        });
    }
    if let Some(e) = &alerts.email {
        out.push(Channel::Email(e.clone()));
    }
    if out.is_empty() {
        out.push(Channel::Stdout { json });
    }
    out
}

/// What happened on one channel in one run.
#[derive(Debug, Clone, Default)]
pub struct ChannelReport {
    pub channel: String,
    pub delivered: usize,
    pub failed: usize,
    pub pending: usize,
    pub last_error: Option<String>,
}

/// One attempt's failure.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: &'static str,
    pub message: String,
    pub output: Option<String>,
    /// The channel itself is unreachable: stop trying it for this run.
    pub channel_down: bool,
}

/// Delivers everything pending on every channel.
///
/// # Errors
///
/// Only state database failures.
pub async fn deliver_pending(
    state: &mut State,
    channels: &[Channel],
    now: SystemTime,
) -> Result<Vec<ChannelReport>, StateError> {
    let mut reports = Vec::new();
    for ch in channels {
        let pending = state.pending(ch.name())?;
        let mut rep = ChannelReport {
            channel: ch.name().into(),
            ..Default::default()
        };
        let mut down = false;
        let mailer = match ch {
            Channel::Email(e) => Some(Mailer::new(e)),
            _ => None,
        };
        let batches = batch(ch, pending);
        for (group, fixed_id) in batches {
            if down {
                rep.pending += group.len();
                continue;
            }
            let result = match ch {
                Channel::Escalation { program, timeout } => {
                    run_escalation(program, *timeout, &group[0]).await.map(Some)
                }
                Channel::Email(e) => match mailer.as_ref().expect("mailer for email") {
                    Ok(m) => {
                        let id = match fixed_id {
                            Some(id) => id,
                            None if e.digest && group[0].kind.is_advisory() => {
                                // A digest is fixed at its first attempt: recorded
                                // before sending, so a resend after a crash carries the
                                // same events under the same Message-ID.
                                let id = message_id(&group);
                                let ids: Vec<&str> = group.iter().map(|e| e.id.as_str()).collect();
                                state.fix_message_id(&ids, ch.name(), &id)?;
                                id
                            }
                            None => message_id(&group),
                        };
                        m.send(&group, &id).await.map(|()| None)
                    }
                    Err(f) => Err(f.clone()),
                },
                Channel::Stdout { json } => print_stdout(&group[0], *json).map(|()| None),
            };
            match result {
                Ok(output) => {
                    for e in &group {
                        state.mark_delivered(&e.id, ch.name(), now, output.as_deref())?;
                    }
                    rep.delivered += group.len();
                }
                Err(f) => {
                    let retry_at = now + Duration::from_secs(60);
                    for e in &group {
                        state.mark_failed(
                            &e.id,
                            ch.name(),
                            &DeliveryFailure {
                                error: f.message.clone(),
                                kind: f.kind.into(),
                                output: f.output.clone(),
                                retry_at,
                            },
                        )?;
                    }
                    tracing::warn!(
                        "{}: event {}: {}: {}",
                        ch.name(),
                        group[0].id,
                        f.kind,
                        f.message
                    );
                    rep.failed += group.len();
                    rep.pending += group.len();
                    rep.last_error = Some(format!("{}: {}", f.kind, f.message));
                    down = f.channel_down;
                }
            }
        }
        reports.push(rep);
    }
    Ok(reports)
}

/// One event per delivery, except that an email channel with `digest` groups the
/// advisory events of a run into one message. Key and signer events are never held
/// back in a digest. A digest already tried keeps the events and the Message-ID it
/// was first tried with (the `Some`); events that arrived since form a new one.
fn batch(ch: &Channel, pending: Vec<PendingEvent>) -> Vec<(Vec<Event>, Option<String>)> {
    let digest = matches!(ch, Channel::Email(e) if e.digest);
    if !digest {
        return pending.into_iter().map(|p| (vec![p.event], None)).collect();
    }
    let mut out: Vec<(Vec<Event>, Option<String>)> = Vec::new();
    let mut fixed: Vec<(Vec<Event>, Option<String>)> = Vec::new();
    let mut fresh = Vec::new();
    for p in pending {
        if !p.event.kind.is_advisory() {
            out.push((vec![p.event], None));
            continue;
        }
        match p.message_id {
            Some(id) => match fixed.iter_mut().find(|(_, f)| f.as_ref() == Some(&id)) {
                Some((events, _)) => events.push(p.event),
                None => fixed.push((vec![p.event], Some(id))),
            },
            None => fresh.push(p.event),
        }
    }
    out.extend(fixed);
    if !fresh.is_empty() {
        out.push((fresh, None));
    }
    out
}

fn print_stdout(e: &Event, json: bool) -> Result<(), Failure> {
    let line = if json {
        e.to_json().to_string()
    } else {
        format!(
            "event {} {} {}: {} {} {}",
            e.kind.code(),
            e.severity.code(),
            e.vendor,
            crate::text::escape(&e.title),
            crate::text::escape(&e.url),
            e.fields
                .get("fingerprint")
                .map(|f| format!("fingerprint {f}"))
                .unwrap_or_default()
        )
        .trim_end()
        .to_string()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Failure {
            kind: "stdout",
            message: e.to_string(),
            output: None,
            channel_down: true,
        })
}

/// Runs the escalation program for one event. `Ok` carries its captured output.
///
/// # Errors
///
/// A [`Failure`]: the program is missing or not executable (`spawn`), exited non-zero
/// (`exit`), or ran past the timeout (`timeout`, its process group killed).
pub async fn run_escalation(
    program: &Path,
    timeout: Duration,
    e: &Event,
) -> Result<String, Failure> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .envs(escalation_env(e))
        .process_group(0)
        .kill_on_drop(true);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|err| Failure {
        kind: "spawn",
        message: format!("cannot run escalation program {}: {err}", program.display()),
        output: None,
        channel_down: true,
    })?;
    let pgid = child.id();
    let json = e.to_json().to_string();
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let work = async {
        // A program that does not read its stdin must not block us.
        let feed = async move {
            let _ = stdin.write_all(json.as_bytes()).await;
            let _ = stdin.shutdown().await;
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = read_bounded(&mut stdout, &mut out);
        let read_err = read_bounded(&mut stderr, &mut err);
        let (_, _, _, status) = tokio::join!(feed, read_out, read_err, child.wait());
        (status, out, err)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((status, out, err)) => {
            let output = captured(&out, &err);
            match status {
                Ok(s) if s.success() => Ok(output),
                Ok(s) => Err(Failure {
                    kind: "exit",
                    message: format!("escalation program {} exited with {s}", program.display()),
                    output: Some(output),
                    channel_down: false,
                }),
                Err(err) => Err(Failure {
                    kind: "spawn",
                    message: format!("waiting for {}: {err}", program.display()),
                    output: Some(output),
                    channel_down: false,
                }),
            }
        }
        Err(_) => {
            if let Some(pid) = pgid {
                kill_group(pid);
            }
            Err(Failure {
                kind: "timeout",
                message: format!(
                    "escalation program {} ran past {timeout:?}; its process group was killed",
                    program.display()
                ),
                output: None,
                channel_down: false,
            })
        }
    }
}

async fn read_bounded<R: tokio::io::AsyncRead + Unpin>(r: &mut R, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                // Keep reading (so the child never blocks on a full pipe), keep little.
                let room = OUTPUT_LIMIT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

fn captured(out: &[u8], err: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(out).into_owned();
    if !err.is_empty() {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&String::from_utf8_lossy(err));
    }
    s
}

/// The `VENDORGUARD_*` variables for `e`. Values are one line each: control characters
/// are escaped as `text::escape` does (`\n`, `\x1b`), so a feed title cannot smuggle a
/// second line into a script that logs `$VENDORGUARD_TITLE`. The JSON on stdin carries
/// the exact text.
pub fn escalation_env(e: &Event) -> Vec<(&'static str, String)> {
    let fingerprint = e
        .fields
        .get("fingerprint")
        .map(String::as_str)
        .unwrap_or("");
    [
        ("VENDORGUARD_EVENT_ID", e.id.as_str()),
        ("VENDORGUARD_KIND", e.kind.code()),
        ("VENDORGUARD_VENDOR", e.vendor.as_str()),
        ("VENDORGUARD_SEVERITY", e.severity.code()),
        ("VENDORGUARD_TITLE", e.title.as_str()),
        ("VENDORGUARD_URL", e.url.as_str()),
        ("VENDORGUARD_FINGERPRINT", fingerprint),
    ]
    .into_iter()
    .map(|(k, v)| (k, crate::text::escape(v)))
    .collect()
}

/// Asks the kernel to kill the escalation program when the thread that started it
/// dies, so a watcher killed with SIGKILL leaves no program running on its behalf
/// (the event stays pending and is delivered again: at-least-once).
fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit); it allocates nothing.
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would
            // send the signal.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

fn kill_group(pgid: u32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created with
    // process_group(0); it touches no memory of ours.
    unsafe {
        libc::kill(-(pgid as i32), libc::SIGKILL);
    }
}

/// An SMTP or sendmail transport built from `[alerts.email]`.
///
/// Credentials never travel without TLS: with a password configured, `smtp://`
/// requires STARTTLS (lettre then refuses before AUTH), unless `insecure_auth = true`.
pub struct Mailer {
    email: Email,
    transport: Transport,
    /// Why this `smtp://` transport refuses to go on without STARTTLS, and where it
    /// connects (to tell a server without STARTTLS from other failures).
    starttls: Option<(StartTls, String, u16)>,
}

/// Why STARTTLS is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartTls {
    /// A password is configured and `insecure_auth` is not set.
    Credentials,
    /// `require_tls = true`.
    Configured,
}

enum Transport {
    Smtp(lettre::AsyncSmtpTransport<lettre::Tokio1Executor>),
    Sendmail(lettre::AsyncSendmailTransport<lettre::Tokio1Executor>),
}

impl Mailer {
    /// Builds the transport.
    ///
    /// # Errors
    ///
    /// A `config` [`Failure`] for a URL or credentials that cannot work.
    pub fn new(e: &Email) -> Result<Mailer, Failure> {
        use lettre::transport::smtp::client::{Tls, TlsParameters};
        let fail = |m: String| Failure {
            kind: "config",
            message: m,
            output: None,
            channel_down: true,
        };
        let mut starttls = None;
        let transport = if e.url == "sendmail" || e.url.starts_with("sendmail:") {
            let path = e.url.strip_prefix("sendmail:").filter(|p| !p.is_empty());
            Transport::Sendmail(match path {
                Some(p) => lettre::AsyncSendmailTransport::new_with_command(p),
                None => lettre::AsyncSendmailTransport::new(),
            })
        } else {
            let u =
                url::Url::parse(&e.url).map_err(|err| fail(format!("alerts.email.url: {err}")))?;
            let host = u
                .host_str()
                .ok_or_else(|| fail("alerts.email.url has no host".into()))?
                .to_string();
            let credentials = e
                .password_env
                .as_ref()
                .and_then(|pw_env| std::env::var(pw_env).ok())
                .map(|pw| {
                    let user = e
                        .user_env
                        .as_ref()
                        .and_then(|u| std::env::var(u).ok())
                        .unwrap_or_else(|| e.from.clone());
                    lettre::transport::smtp::authentication::Credentials::new(user, pw)
                });
            let params = TlsParameters::new(host.clone())
                .map_err(|err| fail(format!("TLS setup: {err}")))?;
            let why = if u.scheme() == "smtps" {
                None
            } else if credentials.is_some() && !e.insecure_auth {
                Some(StartTls::Credentials)
            } else if e.require_tls {
                Some(StartTls::Configured)
            } else {
                None
            };
            let (tls, default_port) = match (u.scheme(), why) {
                ("smtps", _) => (Tls::Wrapper(params), 465),
                (_, Some(_)) => (Tls::Required(params), 25),
                _ => (Tls::Opportunistic(params), 25),
            };
            let port = u.port().unwrap_or(default_port);
            starttls = why.map(|w| (w, host.clone(), port));
            let mut b =
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(host)
                    .port(port)
                    .tls(tls)
                    .timeout(Some(Duration::from_secs(30)));
            if let Some(c) = credentials {
                b = b.credentials(c);
            }
            Transport::Smtp(b.build())
        };
        Ok(Mailer {
            email: e.clone(),
            transport,
            starttls,
        })
    }

    /// Sends one message for `events` (one event, or a digest of advisory events)
    /// under `message_id`.
    ///
    /// # Errors
    ///
    /// A [`Failure`]: `permanent` (SMTP 5xx), `temporary` (4xx), `tls-unavailable`
    /// (STARTTLS is required and the server does not offer it), `connection`.
    pub async fn send(&self, events: &[Event], message_id: &str) -> Result<(), Failure> {
        use lettre::AsyncTransport;
        let msg = build_message(&self.email, events, message_id).map_err(|m| Failure {
            kind: "message",
            message: m,
            output: None,
            channel_down: false,
        })?;
        match &self.transport {
            Transport::Smtp(t) => {
                let err = match t.send(msg).await {
                    Ok(_) => return Ok(()),
                    Err(err) => err,
                };
                let (kind, down) = if err.is_permanent() {
                    ("permanent", false)
                } else if err.is_transient() {
                    ("temporary", false)
                } else {
                    ("connection", true)
                };
                if err.is_client() {
                    if let Some(f) = self.without_starttls().await {
                        return Err(f);
                    }
                }
                Err(Failure {
                    kind,
                    message: format!(
                        "SMTP {}: {}",
                        self.email.url,
                        crate::text::error_chain(&err)
                    ),
                    output: None,
                    channel_down: down,
                })
            }
            Transport::Sendmail(t) => t.send(msg).await.map(|_| ()).map_err(|err| Failure {
                kind: "sendmail",
                message: format!("sendmail: {}", crate::text::error_chain(&err)),
                output: None,
                channel_down: true,
            }),
        }
    }

    /// After a client-side failure on a transport that requires STARTTLS: asks the
    /// server (EHLO, then QUIT; no credentials) whether it offers STARTTLS at all, so
    /// the failure can say what to change. `None` when it does, or cannot be asked.
    async fn without_starttls(&self) -> Option<Failure> {
        use lettre::transport::smtp::client::AsyncSmtpConnection;
        use lettre::transport::smtp::extension::ClientId;
        let (why, host, port) = self.starttls.as_ref()?;
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (host.as_str(), *port),
            Some(Duration::from_secs(30)),
            &ClientId::default(),
            None,
            None,
        )
        .await
        .ok()?;
        let offers = conn.can_starttls();
        let _ = conn.quit().await;
        if offers {
            return None;
        }
        let url = &self.email.url;
        let message = match why {
            StartTls::Credentials => format!(
                "SMTP {url} offers no STARTTLS, and the credentials from {} are sent only over TLS: \
                 use smtps://, a server that offers STARTTLS, or set insecure_auth = true in \
                 [alerts.email] to send them in clear",
                self.email.password_env.as_deref().unwrap_or("password_env")
            ),
            StartTls::Configured => format!(
                "SMTP {url} offers no STARTTLS and require_tls = true: use smtps:// or a server \
                 that offers STARTTLS"
            ),
        };
        Some(Failure {
            kind: "tls-unavailable",
            message,
            output: None,
            channel_down: true,
        })
    }
}

/// Header text from feed data: one line, no control characters, bounded.
pub fn header_safe(s: &str) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one = one.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 180 {
        let mut t: String = one.chars().take(180).collect();
        t.push('…');
        t
    } else {
        one
    }
}

/// The Message-ID for a new message carrying `events`: derived from their ids, so a
/// resend after a crash carries the same one. A digest's is also recorded at its first
/// attempt (`State::fix_message_id`) and kept with its events from then on.
pub fn message_id(events: &[Event]) -> String {
    if let [e] = events {
        format!("<{}@vendorguard>", e.id)
    } else {
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        format!(
            "<digest-{}@vendorguard>",
            crate::alert::event::event_id(
                crate::alert::event::Kind::AdvisoryNew,
                "",
                &ids.join(",")
            )
        )
    }
}

/// Builds the mail for `events`, under `message_id`.
///
/// # Errors
///
/// A message when the addresses in the configuration do not parse.
pub fn build_message(
    email: &Email,
    events: &[Event],
    message_id: &str,
) -> Result<lettre::Message, String> {
    let first = &events[0];
    let subject = if events.len() == 1 {
        format!(
            "[vendorguard] {} {}: {}",
            first.severity.code().to_ascii_uppercase(),
            header_safe(&first.vendor),
            header_safe(&first.title)
        )
    } else {
        let top = events
            .iter()
            .map(|e| e.severity)
            .max()
            .unwrap_or(first.severity);
        format!(
            "[vendorguard] {} {} advisories",
            top.code().to_ascii_uppercase(),
            events.len()
        )
    };
    let mut b = lettre::Message::builder()
        .from(
            email
                .from
                .parse()
                .map_err(|e| format!("alerts.email.from: {e}"))?,
        )
        .subject(subject)
        .message_id(Some(message_id.to_string()))
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for to in &email.to {
        b = b.to(to.parse().map_err(|e| format!("alerts.email.to: {e}"))?);
    }
    let body: String = events
        .iter()
        .map(body_for)
        .collect::<Vec<_>>()
        .join("\n----\n\n");
    b.body(body).map_err(|e| e.to_string())
}

/// The plain-text body for one event: every field on-call needs, and the next step.
pub fn body_for(e: &Event) -> String {
    let mut s = String::new();
    s.push_str(&format!("{}\n\n", e.title));
    s.push_str(&format!("kind:        {}\n", e.kind.code()));
    s.push_str(&format!("severity:    {}\n", e.severity.code()));
    s.push_str(&format!("vendor:      {}\n", e.vendor));
    s.push_str(&format!("url:         {}\n", e.url));
    s.push_str(&format!(
        "detected at: {}\n",
        crate::text::time(e.detected_at)
    ));
    s.push_str(&format!("event id:    {}\n", e.id));
    for (k, v) in &e.fields {
        s.push_str(&format!("{:<12} {}\n", format!("{k}:"), v));
        if k == "fingerprint" && v.len() >= 16 {
            s.push_str(&format!(
                "{:<12} {}\n",
                "read aloud:",
                crate::text::group4(v)
            ));
        }
    }
    s.push_str(&format!("\nnext: {}\n", next_step(e)));
    s
}

fn next_step(e: &Event) -> String {
    use crate::alert::event::Kind as K;
    let fpr = e.fields.get("fingerprint").cloned().unwrap_or_default();
    match e.kind {
        K::UnexpectedSigner | K::KeyChanged => format!(
            "validate fingerprint {fpr} out of band (the vendor's advisory page, WKD, or a call to the vendor contact in feeds.toml); inspect it with `vendorguard keys show CERT.asc`; if genuine, copy the certificate into keyring/{}/",
            e.vendor
        ),
        K::KeyRevoked => format!(
            "stop installing bundles signed by {fpr}; ask {} for its new key and confirm it out of band before pinning it",
            e.vendor
        ),
        K::KeyExpiring => format!("ask {} for the renewed certificate and pin it before it expires", e.vendor),
        K::BundleRejected => "do not install or trust this item; fetch it again and verify; tell the vendor if it persists".into(),
        K::SourceFailing => "check the URL, the network and the vendor's site; `vendorguard status` shows the last error".into(),
        K::SourceRecovered => "nothing: the source answers again".into(),
        K::AdvisoryNew | K::AdvisoryUpdated => "read the advisory and decide whether the upgrade window must move".into(),
        K::Test => "nothing: this is a fire drill".into(),
    }
}
