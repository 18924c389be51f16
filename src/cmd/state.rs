//! `state migrate`: copies a whole state between backends (SQLite file, PostgreSQL
//! database), table by table through `store::Rows`, in one transaction on the
//! destination, then reads the copy back and checks it row for row and its history
//! chain, so a move to two machines re-alerts nothing and loses nothing.

use std::path::Path;

use anyhow::{bail, Context as _};

use crate::cli::MigrateArgs;
use crate::cmd::outcome::Outcome;
use crate::store::{self, Cell, StateLocation, TABLES};

/// `state migrate --from FROM --to TO`.
pub fn run_migrate(args: &MigrateArgs) -> anyhow::Result<Outcome> {
    let from = location("--from", &args.from, &args.from_password_env)?;
    let to = location("--to", &args.to, &args.to_password_env)?;
    if from == to {
        bail!("--from and --to name the same state ({from})");
    }
    if !store::exists(&from)? {
        bail!("--from {from}: no such state");
    }
    // A SQLite state in use by a watcher is not copied mid-write, nor written into.
    let mut locks = Vec::new();
    for (flag, loc) in [("--from", &from), ("--to", &to)] {
        match store::lock(loc).with_context(|| format!("{flag} {loc}: cannot take its lock"))? {
            Some(l) => locks.push(l),
            None => {
                eprintln!("vendorguard: a watcher holds the lock on {loc}; nothing copied");
                return Ok(Outcome::Busy);
            }
        }
    }
    let source = store::open_rows(&from).with_context(|| format!("--from {from}"))?;
    if source.is_empty()? {
        bail!("--from {from} holds no state (no source, event or history record): nothing to copy");
    }
    let mut dest = store::open_rows(&to).with_context(|| format!("--to {to}"))?;
    if !dest.is_empty()? {
        bail!(
            "--to {to} already holds a state: vendorguard copies only into an empty one \
             (merging two states could alert twice or lose deliveries)"
        );
    }
    let mut tables = Vec::with_capacity(TABLES.len());
    for t in TABLES {
        let rows = source
            .read_rows(t)
            .with_context(|| format!("--from {from}: cannot read table {}", t.name))?;
        tables.push((*t, rows));
    }
    dest.write_rows(&tables)
        .with_context(|| format!("--to {to}: nothing was copied"))?;
    // Read back: every row as it was (compared sorted: the backends collate text
    // differently).
    for (t, rows) in &tables {
        // PostgreSQL keeps a NUL of outside text as U+FFFD: compared alike.
        let clean = |r: &Vec<Cell>| -> Vec<Cell> {
            r.iter()
                .map(|c| match c {
                    Cell::Text(t) => Cell::Text(crate::text::without_nul(t).into_owned()),
                    c => c.clone(),
                })
                .collect()
        };
        let mut want: Vec<Vec<Cell>> = rows.iter().map(clean).collect();
        let mut got: Vec<Vec<Cell>> = dest.read_rows(t)?.iter().map(clean).collect();
        want.sort();
        got.sort();
        if want != got {
            bail!(
                "--to {to}: table {} does not read back as copied ({} rows written, {} read)",
                t.name,
                want.len(),
                got.len()
            );
        }
    }
    let history = store::open_history(&to)?;
    let chained = match history.check()? {
        Ok(n) => n,
        Err(b) => bail!(
            "--to {to}: the copied history chain is broken at record {}: {}",
            b.seq,
            b.message
        ),
    };
    let count = |name: &str| {
        tables
            .iter()
            .find(|(t, _)| t.name == name)
            .map_or(0, |(_, r)| r.len())
    };
    eprintln!(
        "migrated {from} to {to}: {} sources, {} entries, {} events, {} deliveries, \
         {chained} history records (chain intact)",
        count("sources"),
        count("entries"),
        count("events"),
        count("deliveries"),
    );
    drop(locks);
    Ok(Outcome::Clean)
}

/// A `--from`/`--to` value: a path (relative to the working folder) or a URL.
fn location(flag: &str, value: &str, password_env: &str) -> anyhow::Result<StateLocation> {
    let mut loc = StateLocation::parse(value, Path::new(""), None)
        // The value is not repeated: a URL refused for its password would show it.
        .map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    if let StateLocation::Postgres(pg) = &mut loc {
        if !crate::store::location::is_env_name(password_env) {
            bail!("{flag}-password-env {password_env:?} is not an environment variable name");
        }
        pg.password_env = password_env.to_string();
    }
    Ok(loc)
}
