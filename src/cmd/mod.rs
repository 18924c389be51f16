//! The commands: parsed flags in, validated settings (which vendor, keyring, pins,
//! threshold), a call into the capability modules, the result printed, an [`Outcome`]
//! out. One file per family: `verify` (verify, unpack, inspect), `review` (diff,
//! preflight, and the host view preflight checks against), `keys` (keys, pin; `unpin`
//! for `keys remove`), `watch` (watch, status, alert test), `monitor` (status --check
//! and --prometheus; `serve`, the daemon's /metrics), `events` (events list, events
//! ack), `history` (history, inventory, and the record and rollback check around
//! `verify` and `unpack`), `check_config`; `onboard` (vendor add); `docs` (completions, man), which read no
//! configuration.
//!
//! Errors returned from here mean "could not check" (exit 2); `main.rs` chooses every
//! exit code. The commands read the clock and pass `now` down: nothing below them reads
//! the wall clock. They hold no policy of their own.

mod check_config;
mod docs;
mod events;
mod history;
mod keys;
mod monitor;
pub(crate) mod onboard;
mod outcome;
mod review;
pub(crate) mod serve;
mod setup;
mod state;
mod unpin;
mod verify;
mod watch;

use std::time::SystemTime;

use crate::cli::{AlertCommand, Cli, Command, EventsCommand, StateCommand, VendorCommand};
pub use outcome::{error_line, Outcome};

/// Runs the command in `cli`.
///
/// # Errors
///
/// Anything that means the command could not do its job: bad configuration, unreadable
/// bundle or keyring, bad usage.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let now = SystemTime::now();
    let quiet = cli.quiet;
    match cli.command {
        Command::Completions { shell } => return docs::run_completions(shell),
        Command::Man => return docs::run_man(),
        // Names both states itself: feeds.toml is not needed.
        Command::State {
            command: StateCommand::Migrate(args),
        } => return state::run_migrate(&args),
        _ => {}
    }
    // A monitoring plugin reports a configuration it cannot load as UNKNOWN (exit 3),
    // not as an error (exit 2, which Nagios reads as CRITICAL).
    if let Command::Status { check: true, .. } = cli.command {
        return Ok(monitor::run_check(
            setup::load_config(cli.config.as_deref()),
            now,
        ));
    }
    let config = setup::load_config(cli.config.as_deref())?;
    let config = config.as_ref();
    match cli.command {
        Command::Verify(args) => verify::run_verify(config, &args, now),
        Command::Unpack(args) => verify::run_unpack(config, &args, now),
        Command::Inspect(args) => verify::run_inspect(&args),
        Command::Diff(args) => review::run_diff(&args),
        Command::Preflight(args) => review::run_preflight(&args),
        Command::Watch(args) => {
            watch::run_watch(config, args.once, args.recheck.as_deref(), args.json, quiet)
        }
        Command::Status {
            prometheus: true, ..
        } => monitor::run_prometheus(config),
        Command::Status { json, .. } => watch::run_status(config, json),
        Command::Events {
            command:
                EventsCommand::List {
                    pending,
                    since,
                    json,
                },
        } => events::run_list(config, pending, since, json),
        Command::Events {
            command: EventsCommand::Ack { id },
        } => events::run_ack(config, &id, now),
        Command::Alert {
            command: AlertCommand::Test { json },
        } => watch::run_alert_test(config, json),
        Command::Pin(args) => keys::run_pin(config, &args),
        Command::Keys { command } => keys::run_keys(config, command, now),
        Command::CheckConfig => check_config::run_check_config(config, now),
        Command::Vendor {
            command: VendorCommand::Add(args),
        } => onboard::run_vendor_add(config, &args, now),
        Command::History(args) => history::run_history(config, &args),
        Command::Inventory { json } => history::run_inventory(config, json),
        Command::Completions { .. } | Command::Man | Command::State { .. } => {
            unreachable!("handled above")
        }
    }
}
