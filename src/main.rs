//! The `vendorguard` binary: glue only. Parse the command line, set up logging, run,
//! and turn the outcome into the documented exit code, printing an error once with its
//! whole cause chain.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vendorguard::cli::{Cli, LogFormat};
use vendorguard::cmd::{self, Outcome};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.verbose, cli.quiet, cli.log_format);
    match cmd::run(cli) {
        Ok(Outcome::Clean) => ExitCode::from(0),
        Ok(Outcome::Findings) => ExitCode::from(1),
        Ok(Outcome::UnexpectedSigner) => ExitCode::from(3),
        Ok(Outcome::Busy) => ExitCode::from(75),
        Ok(Outcome::Critical) => ExitCode::from(2),
        Ok(Outcome::Unknown) => ExitCode::from(3),
        Err(e) => {
            eprintln!("vendorguard: error: {}", cmd::error_line(&e));
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr. On a terminal they are coloured and untimed, for a person
/// watching; anywhere else (a pipe, a file, journald, cron's mail) they carry no ANSI
/// escapes, and every line has a timestamp and a level, so a saved log can be read.
/// With `--log-format json` every line is one JSON object (timestamp, level, target,
/// message and the event's fields at the top level), for journald or a log shipper.
fn init_logging(verbose: u8, quiet: bool, format: LogFormat) {
    use std::io::IsTerminal as _;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == LogFormat::Json {
        builder
            .json()
            .flatten_event(true)
            .with_target(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .init();
        return;
    }
    let builder = builder.with_target(false);
    if std::io::stderr().is_terminal() {
        builder.with_ansi(true).without_time().init();
    } else {
        builder.with_ansi(false).init();
    }
}
