//! The thresholds of vendorguard's policy, in one place: how far a signature may be
//! dated in the future, when a key counts as expiring, and how large a signature file,
//! a manifest, an rpm header or a scanned file may be.
//!
//! Only constants live here, so that a threshold is changed once and every message
//! that names it follows. Applying them is the job of the modules that import them;
//! this file decides nothing and imports nothing.

use std::time::Duration;

const DAY: u64 = 24 * 3600;

/// How far in the future a signature may be dated before it is rejected.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// A signer or pinned key expiring within this many days is reported (and, with
/// alerts, escalated).
pub const EXPIRY_WARNING_DAYS: u64 = 30;
/// [`EXPIRY_WARNING_DAYS`] as a duration.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(EXPIRY_WARNING_DAYS * DAY);
/// A watched key expiring within this many days is reported again, as urgent.
pub const EXPIRY_URGENT_DAYS: u64 = 7;

/// Signature files larger than this are not signature files.
pub const MAX_SIGNATURE_FILE: u64 = 1 << 20;
/// Checksum manifests larger than this are refused.
pub const MAX_MANIFEST: u64 = 16 << 20;
/// Index entries an rpm header may declare (rpm's own limit, `HEADER_TAGS_MAX`).
pub const RPM_MAX_INDEX: u32 = 0xffff;
/// Data bytes of an rpm signature header: signatures and digests, a few KiB in
/// practice.
pub const RPM_MAX_SIGNATURE_DATA: u32 = 1 << 20;
/// Data bytes of an rpm main header: the file list of the largest distribution
/// packages is a few tens of MiB (rpm itself allows 256 MiB).
pub const RPM_MAX_HEADER_DATA: u32 = 64 << 20;
/// Trigger scripts an rpm header may declare before walking it is refused
/// (`too-large`): each becomes a control entry, and real packages have a few dozen.
pub const RPM_MAX_TRIGGER_SCRIPTS: usize = 4096;
/// Fields one deb822 paragraph (a `.deb`'s control, a `Release`, a `Packages`
/// stanza) may have; past this it is malformed. Real ones have a few dozen.
pub const DEB822_MAX_FIELDS: usize = 1024;
/// Bytes of each archived file the inspector scans for findings.
pub const SCAN_LIMIT: usize = 8 << 20;

/// `n` days.
pub fn days(n: u64) -> Duration {
    Duration::from_secs(n * DAY)
}

/// A byte count in whole MiB, for messages that name a cap.
pub fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

/// Longest product version vendorguard parses (`version.rs`).
pub const MAX_VERSION_LEN: usize = 128;
/// Longest `vers:` range vendorguard parses.
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "read by the advisory matcher (CSAF product_version_range), the second half of this work"
    )
)]
pub const MAX_VERS_LEN: usize = 64 << 10;
/// Most constraints in one `vers:` range.
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "read by the advisory matcher (CSAF product_version_range), the second half of this work"
    )
)]
pub const MAX_VERS_CONSTRAINTS: usize = 1024;
/// Bytes of the signed text of a cleartext- or inline-signed apt `Release`/`InRelease`
/// read for its `Date:` and `Valid-Until:` fields (they are in the first paragraph).
pub const MAX_RELEASE_HEADER: usize = 64 << 10;
/// History records `history` and `history --check` read at most.
pub const MAX_HISTORY_RECORDS: usize = 1_000_000;
/// Bytes of each configuration file that `diff` flattens into keys; the rest of a
/// larger file is not read for keys (and the report says so).
pub const CONFIG_SCAN_LIMIT: usize = 1 << 20;
/// Configuration keys kept per bundle; past this, keys are dropped (and the report
/// says so).
pub const MAX_CONFIG_KEYS: usize = 50_000;
/// Characters of a configuration value kept; longer values end in `…`.
pub const MAX_CONFIG_VALUE: usize = 512;
/// Nesting a configuration file may have before flattening stops at that depth.
pub const MAX_CONFIG_DEPTH: usize = 64;
/// Signals (unit references, SQL, writes, webhooks) kept per bundle for `preflight`.
pub const MAX_SIGNALS: usize = 20_000;

/// Every verified CSAF advisory's hash and signature files are fetched again within
/// this window, a slice on each poll, so one changed or re-signed without a new date in
/// the provider's listing is noticed.
pub const CSAF_RECHECK_WINDOW: Duration = Duration::from_secs(DAY);
/// At most this much of a CSAF hash file's first word is kept (a SHA-512 is 128 hex
/// digits): what a hostile provider writes there cannot grow the state.
pub const CSAF_MAX_HASH_VALUE: usize = 128;

/// At most this many CSAF product ids are read from one advisory's `product_tree` for
/// matching against the inventory; the rest are not looked at.
pub const MAX_CSAF_PRODUCT_IDS: usize = 10_000;

/// At most this many `product_status` references are read from one CSAF advisory.
pub const MAX_CSAF_STATUS_REFS: usize = 100_000;

/// `product_tree` branches deeper than this are not walked for matching.
pub const MAX_CSAF_BRANCH_DEPTH: usize = 16;
