//! The escalation program: run once per event, directly (never through a shell
//! string), with the event JSON on stdin and `VENDORGUARD_*` variables, one escaped line
//! each. Its output is captured (bounded); on timeout its whole process group is
//! killed, and it dies with the watcher (`PR_SET_PDEATHSIG`), so a killed watcher
//! leaves nothing running on its behalf.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{self, Signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::alert::channel::{Batch, Channel, Failure, Sending};
use crate::alert::event::{Affects, Event};
use crate::alert::route::Route;
use crate::config::Alerts;

/// Captured output kept per attempt.
const OUTPUT_LIMIT: usize = 16 * 1024;

/// The `[alerts] escalation` program.
pub struct Escalation {
    program: PathBuf,
    timeout: Duration,
    route: Route,
    /// Environment variables the program must not inherit (the state's password).
    secret_env: Vec<String>,
}

impl Escalation {
    /// The channel when `[alerts]` names a program.
    pub fn configured(alerts: &Alerts) -> Option<Box<dyn Channel>> {
        let program = alerts.escalation.clone()?;
        Some(Box::new(Escalation {
            program,
            timeout: alerts.escalation_timeout,
            route: Route::new(alerts, alerts.escalation_min_severity),
            secret_env: alerts.secret_env.clone(),
        }))
    }
}

impl Channel for Escalation {
    fn name(&self) -> &'static str {
        "escalation"
    }

    fn carries(&self, event: &Event) -> bool {
        self.route.carries(event)
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> Sending<'a> {
        Box::pin(async move {
            let mut output = None;
            for e in &batch.events {
                output =
                    Some(run_escalation(&self.program, self.timeout, &self.secret_env, e).await?);
            }
            Ok(output)
        })
    }
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
    secret_env: &[String],
    e: &Event,
) -> Result<String, Failure> {
    let mut cmd = tokio::process::Command::new(program);
    for name in secret_env {
        cmd.env_remove(name);
    }
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
                    message: format!(
                        "escalation program {} {}",
                        program.display(),
                        exit_status(s)
                    ),
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
                kill_group(program, pid);
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

/// "exited with status 3" or "was killed by signal 9".
fn exit_status(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("ended with {s}"),
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
    let field = |k: &str| e.fields.get(k).map(String::as_str).unwrap_or("");
    let cves = e.cves.join(" ");
    let affected = e.affects.as_ref().map(Affects::line).unwrap_or_default();
    [
        ("VENDORGUARD_EVENT_ID", e.id.as_str()),
        ("VENDORGUARD_KIND", e.kind.code()),
        ("VENDORGUARD_VENDOR", e.vendor.as_str()),
        ("VENDORGUARD_SEVERITY", e.severity.code()),
        ("VENDORGUARD_TITLE", e.title.as_str()),
        ("VENDORGUARD_URL", e.url.as_str()),
        ("VENDORGUARD_FINGERPRINT", field("fingerprint")),
        ("VENDORGUARD_CONTACT", field("contact")),
        ("VENDORGUARD_CVES", cves.as_str()),
        ("VENDORGUARD_DUE_DATE", field("dueDate")),
        ("VENDORGUARD_REQUIRED_ACTION", field("requiredAction")),
        ("VENDORGUARD_AFFECTED", affected.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k, crate::text::escape(v)))
    .collect()
}

/// Asks the kernel to kill the escalation program when the thread that started it
/// dies, so a watcher killed with SIGKILL leaves no program running on its behalf
/// (the event stays pending and is delivered again: at-least-once).
///
/// The one `unsafe` block of the crate (see `lib.rs`): the crate denies `unsafe_code`
/// instead of forbidding it because this function must be allowed it.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = process::getpid();
    // SAFETY: `pre_exec` is unsafe because its closure runs in the forked child before
    // exec, where only async-signal-safe work is sound. This closure makes two system
    // calls through rustix (prctl, getppid) and builds its error from an errno; it
    // allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // The parent may have died between fork and prctl: then nobody would send
            // the signal, so the program is not started at all.
            if process::getppid() != Some(parent) {
                return Err(Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

/// Kills the process group the program leads (`process_group(0)` made its pid the
/// group id). A group already gone is no failure.
fn kill_group(program: &Path, pgid: u32) {
    let Some(pid) = i32::try_from(pgid).ok().and_then(process::Pid::from_raw) else {
        return;
    };
    match process::kill_process_group(pid, Signal::KILL) {
        Ok(()) | Err(Errno::SRCH) => {}
        Err(e) => tracing::warn!(
            "escalation program {}: cannot kill its process group {pgid}: {e}",
            program.display()
        ),
    }
}
