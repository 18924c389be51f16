//! Events: what the watcher (and the verifier) hand to the escalation path.
//!
//! Every event has a stable `id` derived from what it is about (the same advisory
//! version, the same key change, found twice, has the same id), so that storing it is
//! idempotent and a delivery channel can deduplicate. Storing events is the store's
//! job, delivering them `delivery`'s.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Value};
use sha2::Digest as _;

use crate::policy::EXPIRY_WARNING_DAYS;

/// Declares [`Kind`] with each variant's stable code, once: `code`, `from_code` and
/// `ALL` are generated from the same list, so a new kind cannot miss one of them.
macro_rules! kinds {
    ($($variant:ident => $code:literal,)*) => {
        /// Event kinds, as the contract names them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $($variant,)*
        }

        impl Kind {
            /// Every kind, in declaration order.
            pub const ALL: &[Kind] = &[$(Kind::$variant,)*];

            /// The stable kebab-case code.
            pub fn code(self) -> &'static str {
                match self {
                    $(Kind::$variant => $code,)*
                }
            }
        }
    };
}

kinds! {
    AdvisoryNew => "advisory-new",
    AdvisoryUpdated => "advisory-updated",
    BacklogRecorded => "backlog-recorded",
    UnexpectedSigner => "unexpected-signer",
    KeyChanged => "key-changed",
    KeyExpiring => "key-expiring",
    KeyRevoked => "key-revoked",
    BundleRejected => "bundle-rejected",
    SourceFailing => "source-failing",
    SourceRecovered => "source-recovered",
    Test => "test",
}

impl Kind {
    pub fn from_code(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.code() == s)
    }

    /// Key and signer events are never held back in a digest.
    pub fn is_advisory(self) -> bool {
        matches!(
            self,
            Kind::AdvisoryNew | Kind::AdvisoryUpdated | Kind::BacklogRecorded
        )
    }
}

/// Severity, lowest first. `Unknown` is what a source that says nothing gets (a plain
/// RSS entry, a CISA KEV entry): we do not invent one. It sorts lowest because it
/// claims nothing, not because it is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Unknown,
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn code(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a severity word as vendors write it ("Important" is Red Hat's high).
    /// `unknown` reads back as [`Severity::Unknown`] but is never taken from a source.
    pub fn parse(s: &str) -> Option<Severity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "unknown" => Some(Severity::Unknown),
            "critical" => Some(Severity::Critical),
            "high" | "important" => Some(Severity::High),
            "medium" | "moderate" => Some(Severity::Medium),
            "low" => Some(Severity::Low),
            "none" | "info" | "informational" => Some(Severity::Info),
            _ => None,
        }
    }

    /// CVSS v3 base score bands.
    pub fn from_cvss(score: f64) -> Severity {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else if score > 0.0 {
            Severity::Low
        } else {
            Severity::Info
        }
    }
}

/// Between the names of an event's `products` field (a CSAF advisory's product names).
pub const PRODUCTS_SEPARATOR: &str = "; ";

/// What an advisory says about one installed product (an entry of an event's `affects`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affect {
    pub product: String,
    /// The installed version; `None`: nothing of the product is installed.
    pub installed: Option<String>,
    /// A stable kebab-case code: `known-affected`, `first-affected`, `last-affected`,
    /// `fixed`, `known-not-affected`, `under-investigation`, `not-listed`,
    /// `not-installed`, `known-exploited`, `mentioned`.
    pub status: &'static str,
    /// The fixed version the advisory names for the product, when it names one.
    pub fixed: Option<String>,
}

/// Every status code an [`Affect`] may carry, for reading events back.
pub const AFFECT_STATUSES: &[&str] = &[
    "known-affected",
    "first-affected",
    "last-affected",
    "fixed",
    "known-not-affected",
    "under-investigation",
    "not-listed",
    "not-installed",
    "known-exploited",
    "mentioned",
];

/// An advisory matched to the inventory: `affected` is `None` when nothing can be said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Affects {
    pub affected: Option<bool>,
    pub products: Vec<Affect>,
}

impl Affects {
    /// One line for the terminal, the mail body and `VENDORGUARD_AFFECTED` (unescaped:
    /// product names come from the configuration, versions from outside).
    pub fn line(&self) -> String {
        let verdict = match self.affected {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        };
        let each: Vec<String> = self
            .products
            .iter()
            .map(|a| {
                let mut s = format!(
                    "{} {} {}",
                    a.product,
                    a.installed.as_deref().unwrap_or("not installed"),
                    a.status
                );
                if let Some(f) = &a.fixed {
                    s.push_str(&format!(" (fixed in {f})"));
                }
                s
            })
            .collect();
        if each.is_empty() {
            verdict.to_string()
        } else {
            format!("{verdict}: {}", each.join("; "))
        }
    }

    fn to_json(&self) -> (Value, Value) {
        let list = self
            .products
            .iter()
            .map(|a| {
                json!({
                    "product": a.product,
                    "installed": a.installed,
                    "status": a.status,
                    "fixed": a.fixed,
                })
            })
            .collect();
        (json!(self.affected), Value::Array(list))
    }

    fn from_json(v: &Value) -> Option<Affects> {
        let list = v.get("affects")?.as_array()?;
        let s = |a: &Value, k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
        let products = list
            .iter()
            .map(|a| {
                let status = a.get("status").and_then(Value::as_str)?;
                Some(Affect {
                    product: s(a, "product")?,
                    installed: s(a, "installed"),
                    status: AFFECT_STATUSES.iter().copied().find(|c| *c == status)?,
                    fixed: s(a, "fixed"),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Affects {
            affected: v.get("affected").and_then(Value::as_bool),
            products,
        })
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub kind: Kind,
    pub vendor: String,
    pub severity: Severity,
    pub title: String,
    pub url: String,
    pub detected_at: SystemTime,
    /// Kind-specific fields: `fingerprint`, `advisory_id`, `source`, `code`, `contact`,
    /// CISA KEV's `dueDate`, `requiredAction`, ...
    pub fields: BTreeMap<String, String>,
    /// CVE ids the advisory names (a list in the JSON), in the order first named.
    pub cves: Vec<String>,
    /// Advisory events: what the advisory means for the installed products.
    pub affects: Option<Affects>,
}

impl Event {
    /// A new event whose id is derived from `kind`, `vendor` and `identity` (what the
    /// event is about, e.g. source + entry key + version).
    pub fn new(
        kind: Kind,
        vendor: &str,
        identity: &str,
        severity: Severity,
        title: impl Into<String>,
        url: impl Into<String>,
        detected_at: SystemTime,
    ) -> Event {
        Event {
            id: event_id(kind, vendor, identity),
            kind,
            vendor: vendor.to_string(),
            severity,
            title: title.into(),
            url: url.into(),
            detected_at,
            fields: BTreeMap::new(),
            cves: Vec::new(),
            affects: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Event {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// Adds the vendor's `contact` from feeds.toml (whom to call), when it has one.
    pub fn set_contact(&mut self, contact: Option<&str>) {
        if let Some(c) = contact {
            self.fields.insert("contact".into(), c.to_string());
        }
    }

    /// The event as JSON (the escalation script's stdin).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "kind": self.kind.code(),
            "vendor": self.vendor,
            "severity": self.severity.code(),
            "title": self.title,
            "url": self.url,
            "detected_at": crate::text::time(self.detected_at),
        });
        let obj = v.as_object_mut().expect("object");
        if !self.cves.is_empty() {
            obj.insert("cves".into(), json!(self.cves));
        }
        if let Some(a) = &self.affects {
            let (affected, list) = a.to_json();
            obj.insert("affected".into(), affected);
            obj.insert("affects".into(), list);
        }
        for (k, val) in &self.fields {
            obj.entry(k.clone())
                .or_insert_with(|| Value::String(val.clone()));
        }
        v
    }

    /// Reads an event back from its JSON.
    pub fn from_json(v: &Value) -> Option<Event> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let detected_at = humantime::parse_rfc3339(&s("detected_at")?).ok()?;
        let mut fields = BTreeMap::new();
        for (k, val) in v.as_object()? {
            if ![
                "id",
                "kind",
                "vendor",
                "severity",
                "title",
                "url",
                "detected_at",
                "cves",
                "affected",
                "affects",
            ]
            .contains(&k.as_str())
            {
                if let Some(t) = val.as_str() {
                    fields.insert(k.clone(), t.to_string());
                }
            }
        }
        let cves = v
            .get("cves")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Some(Event {
            id: s("id")?,
            kind: Kind::from_code(&s("kind")?)?,
            vendor: s("vendor")?,
            severity: Severity::parse(&s("severity")?)?,
            title: s("title")?,
            url: s("url").unwrap_or_default(),
            detected_at,
            fields,
            cves,
            affects: Affects::from_json(v),
        })
    }
}

/// The identity of a `key-expiring` event: the same key, expiry and threshold make
/// the same event, whichever check noticed it (`verify`, a CSAF advisory, the key URL),
/// so it is raised once.
pub fn key_expiring_identity(fingerprint: &str, expires: SystemTime, within_days: u64) -> String {
    format!(
        "{fingerprint} expires {} within {within_days}d",
        crate::text::time(expires)
    )
}

impl Event {
    /// A good signature's pinned key that expires within `policy::EXPIRY_WARNING_DAYS`.
    pub fn signer_expiring(
        vendor: &str,
        fingerprint: String,
        expires: SystemTime,
        url: impl Into<String>,
        now: SystemTime,
    ) -> Event {
        let identity = key_expiring_identity(&fingerprint, expires, EXPIRY_WARNING_DAYS);
        let title = format!(
            "{vendor}'s signing key {} expires at {}",
            crate::text::group4(&fingerprint),
            crate::text::time(expires)
        );
        Event::new(
            Kind::KeyExpiring,
            vendor,
            &identity,
            Severity::Medium,
            title,
            url,
            now,
        )
        .with("fingerprint", fingerprint)
    }
}

/// A stable id: 32 hex digits of SHA-256 over the kind, vendor and identity.
pub fn event_id(kind: Kind, vendor: &str, identity: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(kind.code().as_bytes());
    h.update([0]);
    h.update(vendor.as_bytes());
    h.update([0]);
    h.update(identity.as_bytes());
    crate::text::hex(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = event_id(Kind::AdvisoryNew, "acme", "feed#1");
        assert_eq!(a, event_id(Kind::AdvisoryNew, "acme", "feed#1"));
        assert_ne!(a, event_id(Kind::AdvisoryUpdated, "acme", "feed#1"));
        assert_ne!(a, event_id(Kind::AdvisoryNew, "acme", "feed#2"));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn json_round_trip() {
        let mut e = Event::new(
            Kind::KeyChanged,
            "acme",
            "x",
            Severity::High,
            "t",
            "u",
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        )
        .with("fingerprint", "ABCD")
        .with("contact", "psirt@acme.example");
        e.cves = vec!["CVE-2024-1".into(), "CVE-2024-2".into()];
        let back = Event::from_json(&e.to_json()).unwrap();
        assert_eq!(back, e);
        e.affects = Some(Affects {
            affected: Some(true),
            products: vec![Affect {
                product: "api".into(),
                installed: Some("4.2.1".into()),
                status: "known-affected",
                fixed: Some("4.2.2".into()),
            }],
        });
        let json = e.to_json();
        assert_eq!(json["affected"], json!(true));
        assert_eq!(json["affects"][0]["fixed"], json!("4.2.2"));
        assert_eq!(Event::from_json(&json).unwrap(), e);
        assert_eq!(
            e.affects.as_ref().unwrap().line(),
            "yes: api 4.2.1 known-affected (fixed in 4.2.2)"
        );
    }

    #[test]
    fn every_kind_reads_back_from_its_code() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_code(k.code()), Some(*k));
        }
        assert_eq!(Kind::ALL.len(), 11);
        assert_eq!(Kind::from_code("no-such-kind"), None);
    }

    #[test]
    fn severities() {
        assert_eq!(Severity::parse("Important"), Some(Severity::High));
        assert_eq!(Severity::parse("unknown"), Some(Severity::Unknown));
        assert_eq!(Severity::parse("whatever"), None);
        assert_eq!(Severity::from_cvss(9.8), Severity::Critical);
        assert_eq!(Severity::from_cvss(5.0), Severity::Medium);
    }
}
