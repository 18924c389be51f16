//! The history of verdicts: one record per `verify` and `unpack`, hash-chained so that
//! a record changed, removed or reordered afterwards is found by `history --check`.
//!
//! Each record holds `prev`, the SHA-256 of the previous record's canonical encoding
//! (64 zeros for the first), and `hash`, the SHA-256 of its own. The canonical encoding
//! of a record is the compact JSON array (serde_json, no whitespace)
//!
//! ```text
//! ["vendorguard-history-1", seq, at, command, bundle, size, sha256, vendor, product,
//!  version, verdict, codes, signers, unexpected, into, user, host, allowed, prev]
//! ```
//!
//! with `seq` the record's number (1, 2, ...), `at` seconds since the Unix epoch, absent
//! values `null` and the lists arrays of strings. A head row (count and last hash),
//! written in the same transaction, makes removing the last records visible too.
//!
//! This file defines the record and checks a chain; `sqlite.rs` stores them. It decides
//! nothing about what a record means (the inventory and rollback refusal are the
//! commands' business).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use sha2::{Digest as _, Sha256};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a command records; the store adds `seq`, `prev` and `hash`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub at: u64,
    /// `verify` or `unpack`.
    pub command: String,
    pub bundle: String,
    pub size: u64,
    pub sha256: String,
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    /// `verified`, `rejected` or `unexpected-signer`.
    pub verdict: String,
    pub codes: Vec<String>,
    /// Pinned certificates that made a good signature.
    pub signers: Vec<String>,
    /// Signers that are not pinned.
    pub unexpected: Vec<String>,
    /// `unpack`'s target folder, when it extracted.
    pub into: Option<String>,
    pub user: String,
    pub host: String,
    /// Refusals `--allow-downgrade` let through (`rollback`, `version-reused`).
    pub allowed: Vec<String>,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub entry: Entry,
    pub prev: String,
    pub hash: String,
}

/// Seconds since the epoch of `t` (0 before it).
pub fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The canonical encoding of record `seq` holding `e` after `prev`.
pub fn canonical(seq: u64, e: &Entry, prev: &str) -> Vec<u8> {
    json!([
        "vendorguard-history-1",
        seq,
        e.at,
        e.command,
        e.bundle,
        e.size,
        e.sha256,
        e.vendor,
        e.product,
        e.version,
        e.verdict,
        e.codes,
        e.signers,
        e.unexpected,
        e.into,
        e.user,
        e.host,
        e.allowed,
        prev
    ])
    .to_string()
    .into_bytes()
}

/// Lowercase hex SHA-256 of the canonical encoding.
pub fn hash(seq: u64, e: &Entry, prev: &str) -> String {
    let d = Sha256::digest(canonical(seq, e, prev));
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a chain breaks: the first record that is not what was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The record named (its number as stored, or the number expected there).
    pub seq: u64,
    pub message: String,
}

/// Walks a chain record by record, in storage order, keeping only the last hash.
#[derive(Debug)]
pub struct Checker {
    next: u64,
    prev: String,
}

impl Default for Checker {
    fn default() -> Checker {
        Checker {
            next: 1,
            prev: GENESIS.to_string(),
        }
    }
}

impl Checker {
    /// Checks the next record.
    ///
    /// # Errors
    ///
    /// The [`Break`] it is.
    pub fn step(&mut self, r: &Record) -> Result<(), Break> {
        let expected = self.next;
        if r.seq != expected {
            let message = if r.seq > expected {
                format!(
                    "record {expected} was removed (the record after record {} is record {})",
                    expected - 1,
                    r.seq
                )
            } else {
                format!(
                    "record {} appears again after record {}: the records were reordered",
                    r.seq,
                    expected - 1
                )
            };
            return Err(Break {
                seq: expected,
                message,
            });
        }
        if hash(r.seq, &r.entry, &r.prev) != r.hash {
            return Err(Break {
                seq: r.seq,
                message: format!(
                    "record {} was changed or reordered: its contents no longer give its hash",
                    r.seq
                ),
            });
        }
        if r.prev != self.prev {
            let message = if r.seq == 1 {
                "record 1 was changed: it does not start the chain".to_string()
            } else {
                format!(
                    "record {} does not follow record {}: one of them was changed, or records were removed or reordered",
                    r.seq,
                    r.seq - 1
                )
            };
            return Err(Break {
                seq: r.seq,
                message,
            });
        }
        self.prev = r.hash.clone();
        self.next += 1;
        Ok(())
    }

    /// Checks the end of the chain against the head the store keeps (`count`, `hash`).
    ///
    /// # Errors
    ///
    /// The [`Break`] when records after the last one were removed, or the head does
    /// not match.
    pub fn finish(&self, head: Option<(u64, String)>) -> Result<u64, Break> {
        let seen = self.next - 1;
        let (count, hash) = head.unwrap_or((0, GENESIS.to_string()));
        if count > seen {
            return Err(Break {
                seq: seen + 1,
                message: format!(
                    "record {} was removed: the history held {count} records and now ends at record {seen}",
                    seen + 1
                ),
            });
        }
        if count < seen || hash != self.prev {
            return Err(Break {
                seq: seen,
                message: format!(
                    "record {seen} was changed or added outside vendorguard: the history's head says {count} records ending in {hash}"
                ),
            });
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<Record> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let entry = Entry {
                    at: 1_700_000_000 + seq,
                    command: "verify".into(),
                    bundle: format!("b-{seq}.zip"),
                    verdict: "verified".into(),
                    ..Entry::default()
                };
                let h = hash(seq, &entry, &prev);
                let r = Record {
                    seq,
                    entry,
                    prev: prev.clone(),
                    hash: h.clone(),
                };
                prev = h;
                r
            })
            .collect()
    }

    /// Checks `records` against `head` and compares the break (record, message start).
    fn check(records: &[Record], head: Option<(u64, String)>, want: Option<(u64, &str)>) {
        let mut c = Checker::default();
        let got = records
            .iter()
            .try_for_each(|r| c.step(r))
            .and_then(|()| c.finish(head).map(|_| ()));
        match (got, want) {
            (Ok(()), None) => {}
            (Err(b), Some((seq, msg))) => {
                assert_eq!(b.seq, seq, "{b:?}");
                assert!(b.message.starts_with(msg), "{b:?}");
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn a_chain_and_its_breaks() {
        let c = chain(4);
        let head = |n: usize| Some((n as u64, c[n - 1].hash.clone()));
        check(&c, head(4), None);
        check(&[], None, None);

        let mut changed = c.clone();
        changed[1].entry.verdict = "rejected".into();
        check(&changed, head(4), Some((2, "record 2 was changed")));

        // Changed and its hash recomputed: the next record no longer follows it.
        let mut rehashed = c.clone();
        rehashed[1].entry.bundle = "evil.zip".into();
        rehashed[1].hash = hash(2, &rehashed[1].entry, &rehashed[1].prev);
        check(
            &rehashed,
            head(4),
            Some((3, "record 3 does not follow record 2")),
        );

        let removed: Vec<Record> = [0, 2, 3].iter().map(|&i| c[i].clone()).collect();
        check(&removed, head(4), Some((2, "record 2 was removed")));

        let reordered: Vec<Record> = [0, 2, 1, 3].iter().map(|&i| c[i].clone()).collect();
        check(&reordered, head(4), Some((2, "record 2 was removed")));

        // Swapping their numbers too: their contents no longer give their hashes.
        let mut swapped = c.clone();
        swapped.swap(1, 2);
        swapped[1].seq = 2;
        swapped[2].seq = 3;
        check(&swapped, head(4), Some((2, "record 2 was changed")));

        check(&c[..3], head(4), Some((4, "record 4 was removed")));
        check(&c, head(3), Some((4, "record 4 was changed or added")));

        let mut first = c.clone();
        first[0].prev = "1".repeat(64);
        first[0].hash = hash(1, &first[0].entry, &first[0].prev);
        check(
            &first,
            head(4),
            Some((1, "record 1 was changed: it does not start")),
        );
    }

    #[test]
    fn the_canonical_encoding_is_fixed() {
        let e = Entry {
            at: 1,
            command: "unpack".into(),
            bundle: "a\"b.zip".into(),
            size: 2,
            sha256: "ab".into(),
            vendor: Some("v".into()),
            product: None,
            version: Some("1.0".into()),
            verdict: "verified".into(),
            codes: vec![],
            signers: vec!["F".into()],
            unexpected: vec![],
            into: Some("/x".into()),
            user: "u".into(),
            host: "h".into(),
            allowed: vec!["rollback".into()],
        };
        assert_eq!(
            String::from_utf8(canonical(7, &e, GENESIS)).unwrap(),
            format!("[\"vendorguard-history-1\",7,1,\"unpack\",\"a\\\"b.zip\",2,\"ab\",\"v\",null,\"1.0\",\"verified\",[],[\"F\"],[],\"/x\",\"u\",\"h\",[\"rollback\"],\"{GENESIS}\"]")
        );
    }
}
