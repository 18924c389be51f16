//! How a command ended, short of an error, and the one mapping from a verifier's
//! verdict to it. `main.rs` turns an [`Outcome`] into the exit code; nothing here
//! prints.

use crate::verify::Verdict;

/// How a command ended, short of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Verified, or nothing to report.
    Clean,
    /// Rejected, or findings that fail a check.
    Findings,
    /// A signature by a key that is not pinned, and no pinned one.
    UnexpectedSigner,
    /// Another run holds the lock; nothing was done.
    Busy,
    /// A monitoring check found something that needs someone now (Nagios CRITICAL).
    Critical,
    /// A monitoring check could not read what it checks (Nagios UNKNOWN).
    Unknown,
}

impl From<Verdict> for Outcome {
    fn from(v: Verdict) -> Outcome {
        match v {
            Verdict::Verified => Outcome::Clean,
            Verdict::Rejected => Outcome::Findings,
            Verdict::UnexpectedSigner => Outcome::UnexpectedSigner,
        }
    }
}

/// A top-level error as `main.rs` prints it: the message and each cause once
/// (`text::error_chain`), where anyhow's `{:#}` repeats causes that already print
/// their source.
pub fn error_line(e: &anyhow::Error) -> String {
    crate::text::error_chain(e.as_ref())
}
