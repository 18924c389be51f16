//! The stdout channel: with no channel configured, events are printed, one line each
//! (or one JSON object with `--json`), and count as delivered, so cron mails them to
//! `MAILTO`. Event text from feeds is escaped before it reaches the terminal.

use std::io::Write as _;

use crate::alert::channel::{Batch, Channel, Failure, Sending};
use crate::alert::event::Event;
use crate::alert::route::Route;

/// Prints events on stdout.
pub struct Stdout {
    pub json: bool,
    /// `[alerts]` include/exclude rules still apply.
    pub route: Route,
}

impl Channel for Stdout {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn carries(&self, event: &Event) -> bool {
        self.route.carries(event)
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> Sending<'a> {
        let printed = batch
            .events
            .iter()
            .try_for_each(|e| print_stdout(e, self.json));
        Box::pin(async move { printed.map(|()| None) })
    }
}

fn print_stdout(e: &Event, json: bool) -> Result<(), Failure> {
    let line = if json {
        e.to_json().to_string()
    } else {
        let mut line = format!(
            "event {} {} {}: {} {}",
            e.kind.code(),
            e.severity.code(),
            e.vendor,
            crate::text::escape(&e.title),
            crate::text::escape(&e.url),
        );
        if let Some(f) = e.fields.get("fingerprint") {
            line.push_str(&format!(" fingerprint {f}"));
        }
        if let Some(a) = &e.affects {
            line.push_str(&format!(" affected {}", crate::text::escape(&a.line())));
        }
        line.trim_end().to_string()
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
