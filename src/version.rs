//! Product versions as operators read them, and `vers:` version ranges.
//!
//! A version is dotted numbers, then an optional pre-release suffix: `1.10 > 1.9`
//! (numbers compare as numbers, of any length), `1.2 == 1.2.0` (missing parts are
//! zeros), `1.2.0-rc1 < 1.2.0` (a suffix comes before the release), and suffixes
//! compare run by run: digits as numbers, letters alphabetically, digits before
//! letters (`alpha < beta < rc`, `rc2 < rc10`). `+build` metadata is ignored.
//!
//! A range is purl-spec `vers:` syntax: `vers:SCHEME/CONSTRAINT|CONSTRAINT...`, each
//! constraint a comparator (`=`, `!=`, `<`, `<=`, `>`, `>=`; none means `=`) and a
//! version, or `*` for every version. Every scheme is compared in the order above.
//!
//! This file only parses and compares; it reads no files and knows no products.
//! Lengths are capped (`policy::MAX_VERSION_LEN`, `policy::MAX_VERS_LEN`,
//! `policy::MAX_VERS_CONSTRAINTS`) so hostile input is refused before it costs much.

use std::cmp::Ordering;
use std::fmt;

use crate::policy::{MAX_VERSION_LEN, MAX_VERS_CONSTRAINTS, MAX_VERS_LEN};

/// A parsed version.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    /// Dotted numbers, leading zeros and trailing zero parts removed.
    release: Vec<String>,
    /// The pre-release suffix in runs of digits or letters (lowercase); empty for a
    /// release.
    pre: Vec<Run>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Run {
    Number(String),
    Word(String),
}

impl Version {
    /// Parses `s` (`1.2.0`, `4.2.1-rc1`, `2.0~beta2`, `1.0+build7`).
    ///
    /// # Errors
    ///
    /// What is wrong: empty, too long, no leading number, an empty dotted part, or a
    /// character outside letters, digits and `.-_~+`.
    pub fn parse(s: &str) -> Result<Version, String> {
        if s.is_empty() {
            return Err("an empty version".into());
        }
        if s.len() > MAX_VERSION_LEN {
            return Err(format!(
                "a version of {} bytes; the limit is {MAX_VERSION_LEN}",
                s.len()
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".-_~+".contains(*c)))
        {
            return Err(format!("{c:?} is not allowed in a version"));
        }
        let core = s.split_once('+').map_or(s, |(core, _build)| core);
        let end = core
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(core.len());
        let (numbers, suffix) = core.split_at(end);
        // "1.2." followed by a suffix: the dot separates the suffix.
        let numbers = match numbers.strip_suffix('.') {
            Some(n) if !suffix.is_empty() => n,
            _ => numbers,
        };
        if numbers.is_empty() {
            return Err("a version must start with a number".into());
        }
        let mut release = Vec::new();
        for part in numbers.split('.') {
            if part.is_empty() {
                return Err("an empty part between dots".into());
            }
            let trimmed = part.trim_start_matches('0');
            release.push(if trimmed.is_empty() { "0" } else { trimmed }.to_string());
        }
        while release.len() > 1 && release.last().is_some_and(|p| p == "0") {
            release.pop();
        }
        let suffix = suffix.trim_start_matches(['-', '_', '~', '.']);
        Ok(Version {
            text: s.to_string(),
            release,
            pre: runs(suffix),
        })
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `suffix` in runs of digits and letters; separators only split.
fn runs(suffix: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut digits = false;
    let flush = |cur: &mut String, digits: bool, out: &mut Vec<Run>| {
        if cur.is_empty() {
            return;
        }
        let text = std::mem::take(cur);
        out.push(if digits {
            let t = text.trim_start_matches('0');
            Run::Number(if t.is_empty() { "0".into() } else { t.into() })
        } else {
            Run::Word(text.to_ascii_lowercase())
        });
    };
    for c in suffix.chars() {
        if !c.is_ascii_alphanumeric() {
            flush(&mut cur, digits, &mut out);
            continue;
        }
        if !cur.is_empty() && c.is_ascii_digit() != digits {
            flush(&mut cur, digits, &mut out);
        }
        digits = c.is_ascii_digit();
        cur.push(c);
    }
    flush(&mut cur, digits, &mut out);
    out
}

/// Two numbers without leading zeros, of any length.
fn cmp_number(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn cmp_run(a: &Run, b: &Run) -> Ordering {
    match (a, b) {
        (Run::Number(x), Run::Number(y)) => cmp_number(x, y),
        (Run::Word(x), Run::Word(y)) => x.cmp(y),
        (Run::Number(_), Run::Word(_)) => Ordering::Less,
        (Run::Word(_), Run::Number(_)) => Ordering::Greater,
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        let n = self.release.len().max(other.release.len());
        for i in 0..n {
            let a = self.release.get(i).map_or("0", String::as_str);
            let b = other.release.get(i).map_or("0", String::as_str);
            match cmp_number(a, b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                for (a, b) in self.pre.iter().zip(&other.pre) {
                    match cmp_run(a, b) {
                        Ordering::Equal => {}
                        o => return o,
                    }
                }
                self.pre.len().cmp(&other.pre.len())
            }
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The first dotted number in a file name (`dten-api-4.2.1.zip` gives `4.2.1`), with a
/// pre-release suffix when one follows a `-` or `~` (`x-1.2.0-rc1.zip` gives `1.2.0-rc1`).
pub fn from_file_name(name: &str) -> Option<Version> {
    let start = name.find(|c: char| c.is_ascii_digit())?;
    let rest = &name[start..];
    let mut end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let mut numbers = rest[..end].trim_end_matches('.');
    // A suffix such as `-rc1` belongs to the version; `.zip` does not.
    let tail = &rest[end..];
    if let Some(sep) = tail.strip_prefix(['-', '~']) {
        let word = sep
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(sep.len());
        let w = &sep[..word];
        let lower = w.to_ascii_lowercase();
        if ["alpha", "beta", "rc", "pre", "dev", "a", "b"]
            .iter()
            .any(|p| lower.starts_with(p) && lower[p.len()..].bytes().all(|b| b.is_ascii_digit()))
        {
            end += 1 + word;
            numbers = &rest[..end];
        }
    }
    let text = &numbers[..numbers.len().min(MAX_VERSION_LEN)];
    Version::parse(text).ok()
}

/// One comparator of a `vers:` range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed `vers:` range.
#[derive(Debug, Clone)]
pub struct Range {
    /// `None` for `*`, every version.
    constraints: Option<Vec<(Cmp, Version)>>,
}

impl Range {
    /// Parses `vers:SCHEME/CONSTRAINTS`.
    ///
    /// # Errors
    ///
    /// What is wrong: not `vers:`, no scheme, an empty or unparsable constraint, too
    /// long, too many constraints, or versions not in ascending order or repeated (as the
    /// spec requires).
    pub fn parse(s: &str) -> Result<Range, String> {
        if s.len() > MAX_VERS_LEN {
            return Err(format!(
                "a range of {} bytes; the limit is {MAX_VERS_LEN}",
                s.len()
            ));
        }
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let rest = compact
            .strip_prefix("vers:")
            .ok_or("a range must start with \"vers:\"")?;
        let (scheme, body) = rest
            .split_once('/')
            .ok_or("expected vers:SCHEME/CONSTRAINTS")?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.+".contains(&b))
        {
            return Err(format!("{scheme:?} is not a versioning scheme"));
        }
        if body == "*" {
            return Ok(Range { constraints: None });
        }
        if body.split('|').count() > MAX_VERS_CONSTRAINTS {
            return Err(format!(
                "more than {MAX_VERS_CONSTRAINTS} constraints in one range"
            ));
        }
        let mut constraints: Vec<(Cmp, Version)> = Vec::new();
        for c in body.split('|') {
            let (cmp, v) = [
                ("!=", Cmp::Ne),
                ("<=", Cmp::Le),
                (">=", Cmp::Ge),
                ("<", Cmp::Lt),
                (">", Cmp::Gt),
                ("=", Cmp::Eq),
            ]
            .iter()
            .find_map(|(p, cmp)| c.strip_prefix(p).map(|v| (*cmp, v)))
            .unwrap_or((Cmp::Eq, c));
            let v = percent_decode(v)?;
            let version = Version::parse(&v).map_err(|e| format!("constraint {c:?}: {e}"))?;
            if let Some((_, last)) = constraints.last() {
                if version <= *last {
                    return Err(format!(
                        "constraint {c:?}: versions must be unique and in ascending order"
                    ));
                }
            }
            constraints.push((cmp, version));
        }
        Ok(Range {
            constraints: Some(constraints),
        })
    }

    /// Whether `v` is in the range (the purl-spec `vers` algorithm).
    pub fn contains(&self, v: &Version) -> bool {
        let Some(all) = &self.constraints else {
            return true;
        };
        for (cmp, c) in all {
            match cmp {
                Cmp::Eq if v == c => return true,
                Cmp::Ne if v == c => return false,
                _ => {}
            }
        }
        let ranges: Vec<&(Cmp, Version)> = all
            .iter()
            .filter(|(c, _)| !matches!(c, Cmp::Eq | Cmp::Ne))
            .collect();
        let Some(first) = ranges.first() else {
            // Only `!=` constraints: everything else is in; only `=`: nothing else is.
            return all.iter().all(|(c, _)| *c == Cmp::Ne);
        };
        let below = |(cmp, c): &(Cmp, Version)| match cmp {
            Cmp::Lt => v < c,
            Cmp::Le => v <= c,
            _ => false,
        };
        let above = |(cmp, c): &(Cmp, Version)| match cmp {
            Cmp::Gt => v > c,
            Cmp::Ge => v >= c,
            _ => false,
        };
        if below(first) {
            return true;
        }
        if ranges.last().is_some_and(|l| above(l)) {
            return true;
        }
        ranges.windows(2).any(|w| above(w[0]) && below(w[1]))
    }
}

/// `%xx` escapes decoded, as `vers:` versions may carry them.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a` compared with `b` must be `want`, and the reverse its reverse.
    fn check(a: &str, b: &str, want: Ordering) {
        let (x, y) = (Version::parse(a).unwrap(), Version::parse(b).unwrap());
        assert_eq!(x.cmp(&y), want, "{a} vs {b}");
        assert_eq!(y.cmp(&x), want.reverse(), "{b} vs {a}");
    }

    #[test]
    fn order() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.2.0-rc1", "1.2.0", Less),
            ("1.10", "1.9", Greater),
            ("1.2", "1.2.0", Equal),
            ("1.2.0.0", "1.2", Equal),
            ("01.02", "1.2", Equal),
            ("4.2.1", "4.2.0", Greater),
            ("4.2.1", "4.10", Less),
            ("1.0-alpha", "1.0-beta", Less),
            ("1.0-beta2", "1.0-rc1", Less),
            ("1.0-rc2", "1.0-rc10", Less),
            ("1.0-rc1", "1.0-rc1.1", Less),
            ("1.0rc1", "1.0-rc1", Equal),
            ("1.0~beta", "1.0", Less),
            ("1.0+build7", "1.0", Equal),
            ("1.0-1", "1.0-a", Less),
            ("2", "1.99999", Greater),
            (
                "1.99999999999999999999999999999999999999",
                "1.99999999999999999999999999999999999998",
                Greater,
            ),
            (
                "100000000000000000000000000",
                "99999999999999999999999999",
                Greater,
            ),
        ] {
            check(a, b, want);
        }
    }

    #[test]
    fn refused_versions() {
        for (s, want) in [
            ("", "empty"),
            ("rc1", "must start with a number"),
            ("1..2", "empty part"),
            (".1", "empty part"),
            ("1.2/3", "not allowed"),
            ("1 2", "not allowed"),
        ] {
            let err = Version::parse(s).unwrap_err();
            assert!(err.contains(want), "{s:?}: {err}");
        }
        let long = "1.".repeat(MAX_VERSION_LEN) + "1";
        assert!(Version::parse(&long).unwrap_err().contains("the limit is"));
    }

    #[test]
    fn file_names() {
        for (name, want) in [
            ("dten-api-4.2.1.zip", Some("4.2.1")),
            ("Full-upgrade-package-dten-2.1.zip", Some("2.1")),
            ("x-1.2.0-rc1.tar.gz", Some("1.2.0-rc1")),
            ("x-1.2.0-linux.tar.gz", Some("1.2.0")),
            ("x64-tool-3.zip", Some("64")),
            ("noversion.zip", None),
        ] {
            assert_eq!(
                from_file_name(name)
                    .map(|v| v.as_str().to_string())
                    .as_deref(),
                want,
                "{name}"
            );
        }
    }

    /// `range` must hold exactly the versions in `inside` and none in `outside`.
    fn check_range(range: &str, inside: &[&str], outside: &[&str]) {
        let r = Range::parse(range).unwrap_or_else(|e| panic!("{range}: {e}"));
        for v in inside {
            assert!(r.contains(&Version::parse(v).unwrap()), "{v} in {range}");
        }
        for v in outside {
            assert!(
                !r.contains(&Version::parse(v).unwrap()),
                "{v} not in {range}"
            );
        }
    }

    #[test]
    fn ranges() {
        check_range(
            "vers:generic/>=1.0.0|<1.4.2",
            &["1.0", "1.2", "1.4.1", "1.4.2-rc1"],
            &["0.9", "1.4.2", "2.0", "1.0.0-rc1"],
        );
        check_range("vers:semver/<2.0.0", &["1.9.9", "0.1"], &["2.0", "3"]);
        check_range("vers:generic/>4.2", &["4.2.1", "5"], &["4.2", "4.2.0", "1"]);
        check_range(
            "vers:generic/1.2.3|4.5",
            &["1.2.3", "4.5.0"],
            &["1.2.4", "4.4"],
        );
        check_range("vers:generic/!=1.2", &["1.1", "1.3"], &["1.2.0"]);
        check_range(
            "vers:generic/<1.0|>=2.0|<2.5|>3.0",
            &["0.5", "2.0", "2.4", "3.1"],
            &["1.0", "1.5", "2.5", "3.0"],
        );
        check_range(
            "vers:generic/>=1.0|!=1.5|<2.0",
            &["1.0", "1.4"],
            &["1.5", "2.0"],
        );
        check_range("vers:generic/*", &["0", "99.9"], &[]);
        check_range("vers: generic / >= 1.0 | < 1.1 ", &["1.0.5"], &["1.1"]);
        check_range("vers:generic/>=1.0%2Brc", &["1.0"], &["0.9"]);
    }

    #[test]
    fn refused_ranges() {
        for (s, want) in [
            ("generic/>=1.0", "must start with \"vers:\""),
            ("vers:>=1.0", "SCHEME"),
            ("vers:/1.0", "not a versioning scheme"),
            ("vers:Gen/1.0", "not a versioning scheme"),
            ("vers:generic/", "empty"),
            ("vers:generic/>=1.0|", "empty"),
            ("vers:generic/>=2.0|<1.0", "ascending"),
            ("vers:generic/1.0|1.0.0", "ascending"),
            ("vers:generic/>=x", "must start with a number"),
            ("vers:generic/1.0%zz", "percent escape"),
            ("vers:generic/1.0%ff", "not UTF-8"),
            ("vers:generic/<>1.0", "not allowed"),
        ] {
            let err = Range::parse(s).unwrap_err();
            assert!(err.contains(want), "{s:?}: {err}");
        }
    }

    #[test]
    fn hostile_ranges_are_refused_by_their_size() {
        let many: Vec<String> = (0..10_000).map(|i| format!("=1.{i}")).collect();
        let text = format!("vers:generic/{}", many.join("|"));
        let err = Range::parse(&text).unwrap_err();
        assert!(
            err.contains("the limit is") || err.contains("constraints"),
            "{err}"
        );
        let many: Vec<String> = (0..MAX_VERS_CONSTRAINTS + 1)
            .map(|i| format!("{i}"))
            .collect();
        let text = format!("vers:generic/{}", many.join("|"));
        assert!(text.len() <= MAX_VERS_LEN);
        assert!(Range::parse(&text).unwrap_err().contains("constraints"));
        let pipes = format!("vers:generic/{}", "|".repeat(MAX_VERS_LEN - 20));
        assert!(Range::parse(&pipes).is_err());
        // The most a range may hold still parses and matches quickly.
        let most: Vec<String> = (0..MAX_VERS_CONSTRAINTS).map(|i| format!("{i}")).collect();
        let r = Range::parse(&format!("vers:generic/{}", most.join("|"))).unwrap();
        assert!(r.contains(&Version::parse("7").unwrap()));
        assert!(!r.contains(&Version::parse("7.5").unwrap()));
        let huge = format!("vers:generic/>={}", "9".repeat(MAX_VERSION_LEN));
        let r = Range::parse(&huge).unwrap();
        assert!(!r.contains(&Version::parse("1").unwrap()));
    }
}
