//! Freshness of signed apt metadata: a cleartext- or inline-signed `Release` or
//! `InRelease` past its signed `Valid-Until:` is `expired-metadata`, and one whose
//! signed `Date:` is ahead of `now` by more than the clock skew (`policy::CLOCK_SKEW`)
//! is `future-metadata`. A replayed old copy (a freeze attack) and metadata made to
//! outlive its validity are refused although their signatures are good, as apt
//! refuses them.
//!
//! Only the signed text is read, at most `policy::MAX_RELEASE_HEADER` bytes of it (the
//! fields are in the first paragraph), and only for a file apt would take for release
//! metadata: named `Release`, `InRelease` (or `*_Release`, `*_InRelease` as in
//! `/var/lib/apt/lists`), or whose first paragraph has a `Suite:` or `Codename:`
//! field. A date that cannot be read refuses the file, as apt does.

use std::time::{Duration, SystemTime};

use crate::policy::CLOCK_SKEW;
use crate::verify::verdict::Refusal;

/// Whether a file called `file_name` with `signed` text is release metadata.
pub fn is_release(file_name: &str, signed: &[u8]) -> bool {
    let named = ["Release", "InRelease"]
        .iter()
        .any(|n| file_name == *n || file_name.ends_with(&format!("_{n}")));
    named
        || first_paragraph(signed)
            .any(|(k, _)| k.eq_ignore_ascii_case("Suite") || k.eq_ignore_ascii_case("Codename"))
}

/// The fields of the first paragraph: `Key: value` lines up to the first blank line
/// (continuation lines are skipped).
fn first_paragraph(signed: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    let text = match std::str::from_utf8(signed) {
        Ok(t) => t,
        // Cut inside a character: the valid part.
        Err(e) => std::str::from_utf8(&signed[..e.valid_up_to()]).unwrap_or_default(),
    };
    text.split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
}

/// The refusal `signed` release metadata earns at `now`, with its message.
pub fn check(signed: &[u8], now: SystemTime) -> Option<(Refusal, String)> {
    let mut date = None;
    let mut valid_until = None;
    for (k, v) in first_paragraph(signed) {
        if k.eq_ignore_ascii_case("Date") {
            date = Some(v);
        } else if k.eq_ignore_ascii_case("Valid-Until") {
            valid_until = Some(v);
        }
    }
    let now_shown = crate::text::time(now);
    let expired = valid_until.and_then(|v| {
        dated(
            "Valid-Until",
            v,
            |t| t < now,
            || {
                format!(
                    "is past (now {now_shown}); an old copy may be replayed to hide newer releases"
                )
            },
        )
    });
    if let Some(m) = expired {
        return Some((Refusal::ExpiredMetadata, format!("expired-metadata: {m}")));
    }
    let future = date.and_then(|d| {
        dated(
            "Date",
            d,
            |t| t > now + CLOCK_SKEW,
            || {
                format!(
                "is ahead of now ({now_shown}) by more than the allowed clock skew of {} seconds",
                CLOCK_SKEW.as_secs()
            )
            },
        )
    });
    future.map(|m| (Refusal::FutureMetadata, format!("future-metadata: {m}")))
}

/// What is wrong with the signed field `name: value`: not a date, or `bad` (then
/// `why`).
fn dated(
    name: &str,
    value: &str,
    bad: impl Fn(SystemTime) -> bool,
    why: impl Fn() -> String,
) -> Option<String> {
    let shown = crate::text::escape(value);
    match parse_date(value) {
        None => Some(format!(
            "the signed {name}: {shown} cannot be read as a date"
        )),
        Some(t) if bad(t) => Some(format!("the signed {name}: {shown} {}", why())),
        Some(_) => None,
    }
}

/// An RFC 2822 date as apt writes it: `Sat, 29 Nov 2026 06:00:00 UTC` (the weekday is
/// optional; the zone `UTC`, `GMT`, `Z` or `+HHMM`/`-HHMM`).
fn parse_date(s: &str) -> Option<SystemTime> {
    let s = s.split_once(',').map_or(s, |(_, rest)| rest);
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [day, month, year, clock, zone] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|n| n.eq_ignore_ascii_case(month))? + 1;
    let day: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let year: u32 = year.parse().ok().filter(|y| (1970..=9999).contains(y))?;
    if clock.len() != 8 || !clock.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let utc = humantime::parse_rfc3339(&format!("{year:04}-{m:02}-{day:02}T{clock}Z")).ok()?;
    let offset = match *zone {
        "UTC" | "GMT" | "Z" => 0i64,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let hh: i64 = z[1..3].parse().ok()?;
            let mm: i64 = z[3..5].parse().ok()?;
            let secs = hh * 3600 + mm * 60;
            if z.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    // Local time = UTC + offset, so UTC = local - offset.
    if offset >= 0 {
        utc.checked_sub(Duration::from_secs(offset as u64))
    } else {
        utc.checked_add(Duration::from_secs(offset.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-29T06:00:00Z";

    /// The refusal code for a release whose first paragraph is `fields`, at NOW.
    fn check_fields(fields: &str, want: Option<&str>) {
        let now = humantime::parse_rfc3339(NOW).unwrap();
        let text = format!("Origin: Debian\nSuite: stable\n{fields}\nSHA256:\n abc 1 main/x\n");
        let got = check(text.as_bytes(), now);
        assert_eq!(
            got.as_ref().map(|(r, _)| r.code()),
            want,
            "{fields}: {got:?}"
        );
    }

    #[test]
    fn dates_and_validity() {
        for (fields, want) in [
            (
                "Date: Sat, 28 Nov 2026 06:00:00 UTC\nValid-Until: Sat, 05 Dec 2026 06:00:00 UTC",
                None,
            ),
            (
                "Date: Sat, 21 Nov 2026 06:00:00 UTC\nValid-Until: Sat, 28 Nov 2026 06:00:00 UTC",
                Some("expired-metadata"),
            ),
            (
                "Valid-Until: Sun, 29 Nov 2026 05:59:59 UTC",
                Some("expired-metadata"),
            ),
            (
                "Valid-Until: Sun, 29 Nov 2026 07:59:59 +0200",
                Some("expired-metadata"),
            ),
            ("Valid-Until: Sun, 29 Nov 2026 02:00:01 -0400", None),
            ("Date: Sun, 29 Nov 2026 06:04:59 UTC", None),
            (
                "Date: Sun, 29 Nov 2026 06:05:01 UTC",
                Some("future-metadata"),
            ),
            ("Date: 29 Nov 2026 06:30:00 GMT", Some("future-metadata")),
            (
                "Date: Sun, 29 Nov 2026 06:30:00 XYZ",
                Some("future-metadata"),
            ),
            ("Valid-Until: tomorrow", Some("expired-metadata")),
            (
                "Valid-Until: Sun, 99 Nov 2026 06:00:00 UTC",
                Some("expired-metadata"),
            ),
            (
                "Valid-Until: Sun, 29 Nov 99999999999 06:00:00 UTC",
                Some("expired-metadata"),
            ),
            (
                "Valid-Until: Sun, 29 Nov 2026 6:0:0 UTC",
                Some("expired-metadata"),
            ),
            (
                "Valid-Until: Sun, 29 Nov 2026 06:00:00 +9999",
                Some("expired-metadata"),
            ),
            ("Components: main", None),
        ] {
            check_fields(fields, want);
        }
        // Fields after the first paragraph are not the release's.
        let now = humantime::parse_rfc3339(NOW).unwrap();
        let later = b"Suite: x\n\nValid-Until: Sat, 01 Jan 2000 00:00:00 UTC\n";
        assert!(check(later, now).is_none());
        // Cut inside a UTF-8 character: the valid part is read.
        let mut cut = b"Suite: x\nValid-Until: Sat, 01 Jan 2000 00:00:00 UTC\nLabel: \xc3".to_vec();
        assert!(check(&cut, now).is_some());
        cut.truncate(3);
        assert!(check(&cut, now).is_none());
    }

    #[test]
    fn what_counts_as_release_metadata() {
        for (name, text, want) in [
            ("InRelease", &b"anything"[..], true),
            ("deb.debian.org_debian_dists_stable_InRelease", b"", true),
            ("Release", b"", true),
            ("notes.txt", b"Origin: x\nSuite: stable\n", true),
            ("notes.txt", b"Codename: bookworm\n", true),
            ("notes.txt", b"Date: Sat, 01 Jan 2000 00:00:00 UTC\n", false),
            ("notes.txt", b"Hello\n\nSuite: later\n", false),
            ("MyRelease", b"", false),
        ] {
            assert_eq!(is_release(name, text), want, "{name}");
        }
    }
}
