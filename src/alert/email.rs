//! The email channel (lettre): SMTP with STARTTLS or TLS, or sendmail. One message per
//! event, or with `digest` one per run for advisory events; key and signer events
//! always go alone; a digest groups events per recipient set (a vendor's `email_to`).
//! The `Message-ID` is derived from the event ids, so a resend after a
//! crash folds into the first. Feed text is flattened to one line in headers.
//! Credentials come from the environment variables the configuration names, and travel
//! only over TLS: with a password, `smtp://` requires STARTTLS unless
//! `insecure_auth = true`.

use std::cell::OnceCell;
use std::time::Duration;

use crate::alert::channel::{Batch, Channel, Failure, Sending};
use crate::alert::event::Event;
use crate::alert::outbox::PendingEvent;
use crate::alert::route::Route;
use crate::alert::smtp::{Relay, SmtpError, SmtpSession};
use crate::config::{Alerts, Email};

/// The `[alerts.email]` channel. Its transport is built on first use and kept for the
/// channel's life, so one run's messages share one SMTP connection (`alert/smtp.rs`).
pub struct EmailChannel {
    email: Email,
    mailer: OnceCell<Result<Mailer, Failure>>,
    route: Route,
}

impl EmailChannel {
    /// The channel when `[alerts.email]` is configured.
    pub fn configured(alerts: &Alerts) -> Option<Box<dyn Channel>> {
        let email = alerts.email.clone()?;
        Some(Box::new(EmailChannel {
            route: Route::new(alerts, email.min_severity),
            email,
            mailer: OnceCell::new(),
        }))
    }
}

impl Channel for EmailChannel {
    fn name(&self) -> &'static str {
        "email"
    }

    fn carries(&self, event: &Event) -> bool {
        self.route.carries(event)
    }

    /// One event per message, except that `digest` groups the advisory events of a
    /// run into one message. Key and signer events are never held back in a digest. A
    /// digest already tried keeps the events and the Message-ID it was first tried
    /// with; events that arrived since form a new one, whose Message-ID is fixed before
    /// its first attempt.
    fn batch(&self, pending: Vec<PendingEvent>) -> Vec<Batch> {
        if !self.email.digest {
            return pending.into_iter().map(|p| Batch::one(p.event)).collect();
        }
        let mut out = Vec::new();
        let mut fixed: Vec<Batch> = Vec::new();
        // New digests: one per recipient set, in order of first appearance.
        let mut fresh: Vec<(&[String], Vec<Event>)> = Vec::new();
        for p in pending {
            if !p.event.kind.is_advisory() {
                out.push(Batch::one(p.event));
                continue;
            }
            match p.message_id {
                Some(id) => match fixed
                    .iter_mut()
                    .find(|b| b.message_id.as_ref() == Some(&id))
                {
                    Some(b) => b.events.push(p.event),
                    None => fixed.push(Batch {
                        events: vec![p.event],
                        message_id: Some(id),
                        fix_id: false,
                    }),
                },
                None => {
                    let to = self.email.recipients(&p.event.vendor);
                    match fresh.iter_mut().find(|(t, _)| *t == to) {
                        Some((_, events)) => events.push(p.event),
                        None => fresh.push((to, vec![p.event])),
                    }
                }
            }
        }
        out.extend(fixed);
        out.extend(fresh.into_iter().map(|(_, events)| Batch {
            message_id: Some(message_id(&events)),
            events,
            fix_id: true,
        }));
        out
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> Sending<'a> {
        Box::pin(async move {
            let id = match &batch.message_id {
                Some(id) => id.clone(),
                None => message_id(&batch.events),
            };
            match self.mailer.get_or_init(|| Mailer::new(&self.email)) {
                Ok(m) => m.send(&batch.events, &id).await.map(|()| None),
                Err(f) => Err(f.clone()),
            }
        })
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
    Smtp(Box<SmtpSession>),
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
            Transport::Smtp(Box::new(SmtpSession::new(Relay {
                host,
                port,
                tls,
                credentials,
                timeout: Duration::from_secs(30),
            })))
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
                let err = match t.send(msg.envelope(), &msg.formatted()).await {
                    Ok(()) => return Ok(()),
                    Err(SmtpError::Smtp(err)) => err,
                    Err(err @ SmtpError::Connect { .. }) => {
                        return Err(Failure {
                            kind: "connection",
                            message: format!(
                                "SMTP {}: {}",
                                self.email.url,
                                crate::text::error_chain(&err)
                            ),
                            output: None,
                            channel_down: true,
                        })
                    }
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
/// attempt (`Outbox::fix_message_id`) and kept with its events from then on.
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
    let vendor = events.first().map_or("", |e| e.vendor.as_str());
    for to in email.recipients(vendor) {
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
    // Outside text (titles, URLs, feed fields) is one escaped line each: a newline in a
    // title must not forge a line of the body, such as our own "next:" advice.
    use crate::text::escape;
    let mut s = String::new();
    s.push_str(&format!("{}\n\n", escape(&e.title)));
    s.push_str(&format!("kind:        {}\n", e.kind.code()));
    s.push_str(&format!("severity:    {}\n", e.severity.code()));
    s.push_str(&format!("vendor:      {}\n", escape(&e.vendor)));
    s.push_str(&format!("url:         {}\n", escape(&e.url)));
    s.push_str(&format!(
        "detected at: {}\n",
        crate::text::time(e.detected_at)
    ));
    s.push_str(&format!("event id:    {}\n", e.id));
    if !e.cves.is_empty() {
        s.push_str(&format!("{:<12} {}\n", "cves:", escape(&e.cves.join(", "))));
    }
    if let Some(a) = &e.affects {
        s.push_str(&format!("{:<12} {}\n", "affected:", escape(&a.line())));
    }
    for (k, v) in &e.fields {
        s.push_str(&format!("{:<12} {}\n", format!("{k}:"), escape(v)));
        if k == "fingerprint" && v.len() >= 16 {
            s.push_str(&format!(
                "{:<12} {}\n",
                "read aloud:",
                crate::text::group4(v)
            ));
        }
    }
    match key_checklist(e) {
        Some(steps) => {
            s.push_str("\nnext:\n");
            for step in steps {
                s.push_str(&format!("  {step}\n"));
            }
        }
        None => s.push_str(&format!("\nnext: {}\n", next_step(e))),
    }
    s
}

/// The numbered checklist for a key or signer event, word for word the one the shipped
/// `escalation/escalate` prints (a test holds the two together): validate the
/// fingerprint out of band, call the vendor, inspect, and only then the exact command
/// that pins it, which refuses a file without that fingerprint.
pub fn key_checklist(e: &Event) -> Option<Vec<String>> {
    use crate::alert::event::Kind as K;
    if !matches!(e.kind, K::UnexpectedSigner | K::KeyChanged | K::KeyRevoked) {
        return None;
    }
    let fpr = e
        .fields
        .get("fingerprint")
        .map(String::as_str)
        .unwrap_or("");
    let vendor = &e.vendor;
    let contact = match e.fields.get("contact") {
        Some(c) => c.clone(),
        None => format!("none in feeds.toml: set contact in the [[vendor]] named {vendor}"),
    };
    let mut steps = vec![
        format!(
            "1. Compare fingerprint {} out of band with the one {vendor} publishes on its security advisory page and in WKD; do not trust a page linked from the bundle or the feed.",
            crate::text::group4(fpr)
        ),
        format!("2. Call the vendor contact ({contact}) and read the fingerprint aloud, four characters at a time."),
        "3. Save the certificate as CERT.asc and inspect it: vendorguard keys show CERT.asc".to_string(),
    ];
    steps.push(if e.kind == K::KeyRevoked {
        "4. The key is revoked: stop installing bundles it signed, and confirm the replacement key the same way before pinning it.".to_string()
    } else {
        format!("4. If, and only if, it is genuine, pin it: vendorguard keys add CERT.asc --vendor {vendor} --fingerprint {fpr}")
    });
    Some(steps)
}

fn next_step(e: &Event) -> String {
    use crate::alert::event::Kind as K;
    let fpr = e.fields.get("fingerprint").cloned().unwrap_or_default();
    match e.kind {
        // `body_for` gives these kinds `key_checklist` instead; kept for completeness.
        K::UnexpectedSigner | K::KeyChanged | K::KeyRevoked => {
            format!("validate fingerprint {fpr} out of band before pinning anything")
        }
        K::KeyExpiring => format!("ask {} for the renewed certificate and pin it before it expires", e.vendor),
        K::BundleRejected => "do not install or trust this item; fetch it again and verify; tell the vendor if it persists".into(),
        K::SourceFailing => "check the URL, the network and the vendor's site; `vendorguard status` shows the last error".into(),
        K::SourceRecovered => "nothing: the source answers again".into(),
        K::AdvisoryNew | K::AdvisoryUpdated => "read the advisory and decide whether the upgrade window must move".into(),
        K::BacklogRecorded => "nothing: what the source had already published was recorded; new advisories are alerted one by one".into(),
        K::Test => "nothing: this is a fire drill".into(),
    }
}
