//! What is installed: per product of `feeds.toml`, its version and where that comes
//! from. `installed = "..."` in `[[vendor.product]]` wins (`config`); otherwise the last
//! successful `unpack` in the history (`history`), with when and the bundle's SHA-256.
//!
//! Plain data built from the configuration and history records the caller read: this
//! file opens nothing. `verify`/`unpack` consult it to refuse rollbacks, `inventory`
//! prints it, and an advisory matcher can look products up in it the same way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::store::history::Record;
use crate::version::Version;

/// Where an installed version comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `installed = "..."` in `feeds.toml`.
    Config,
    /// The last successful `unpack`.
    History,
}

impl Source {
    pub fn code(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::History => "history",
        }
    }
}

/// One product and what is installed of it.
#[derive(Debug, Clone)]
pub struct Installed {
    pub vendor: String,
    pub product: String,
    /// `None`: nothing known to be installed.
    pub version: Option<Version>,
    pub source: Option<Source>,
    /// When the recorded `unpack` ran.
    pub since: Option<SystemTime>,
    /// The installed bundle's SHA-256 and path, from the history.
    pub sha256: Option<String>,
    pub bundle: Option<String>,
}

/// Every product of the configuration, then products only the history knows.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub items: Vec<Installed>,
}

impl Inventory {
    /// Builds the inventory from `config` and the last successful `unpack` records
    /// (`History::installed`). A record whose version does not parse counts as nothing
    /// installed.
    pub fn build(config: Option<&Config>, unpacked: &[Record]) -> Inventory {
        let from_history = |vendor: &str, product: &str| {
            unpacked.iter().find(|r| {
                r.entry.vendor.as_deref() == Some(vendor)
                    && r.entry.product.as_deref() == Some(product)
            })
        };
        let mut items = Vec::new();
        for v in config.map(|c| c.vendors.as_slice()).unwrap_or_default() {
            for p in &v.products {
                let record = from_history(&v.name, &p.name);
                items.push(match (&p.installed, record) {
                    (Some(version), _) => Installed {
                        vendor: v.name.clone(),
                        product: p.name.clone(),
                        version: Some(version.clone()),
                        source: Some(Source::Config),
                        since: None,
                        sha256: None,
                        bundle: None,
                    },
                    (None, Some(r)) => from_record(r),
                    (None, None) => Installed {
                        vendor: v.name.clone(),
                        product: p.name.clone(),
                        version: None,
                        source: None,
                        since: None,
                        sha256: None,
                        bundle: None,
                    },
                });
            }
        }
        for r in unpacked {
            let known = items.iter().any(|i| {
                Some(i.vendor.as_str()) == r.entry.vendor.as_deref()
                    && Some(i.product.as_str()) == r.entry.product.as_deref()
            });
            if !known && r.entry.vendor.is_some() && r.entry.product.is_some() {
                items.push(from_record(r));
            }
        }
        Inventory { items }
    }

    /// What is installed of `product` of `vendor`.
    pub fn get(&self, vendor: &str, product: &str) -> Option<&Installed> {
        self.items
            .iter()
            .find(|i| i.vendor == vendor && i.product == product)
    }
}

fn from_record(r: &Record) -> Installed {
    let version = r
        .entry
        .version
        .as_deref()
        .and_then(|v| Version::parse(v).ok());
    Installed {
        vendor: r.entry.vendor.clone().unwrap_or_default(),
        product: r.entry.product.clone().unwrap_or_default(),
        source: version.as_ref().map(|_| Source::History),
        since: version
            .as_ref()
            .map(|_| UNIX_EPOCH + Duration::from_secs(r.entry.at)),
        sha256: version.as_ref().map(|_| r.entry.sha256.clone()),
        bundle: version.as_ref().map(|_| r.entry.bundle.clone()),
        version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::Entry;
    use std::path::Path;

    fn unpack(seq: u64, product: &str, version: &str) -> Record {
        Record {
            seq,
            entry: Entry {
                at: seq,
                command: "unpack".into(),
                vendor: Some("dten".into()),
                product: Some(product.into()),
                version: Some(version.into()),
                sha256: format!("{seq:064}"),
                verdict: "verified".into(),
                ..Entry::default()
            },
            prev: String::new(),
            hash: String::new(),
        }
    }

    /// The inventory of `config` and `records`, as (product, version, source) triples.
    fn check(config: &str, records: &[Record], want: &[(&str, Option<&str>, Option<&str>)]) {
        let c = Config::parse(Path::new("feeds.toml"), config).unwrap();
        let inv = Inventory::build(Some(&c), records);
        let got: Vec<(&str, Option<&str>, Option<&str>)> = inv
            .items
            .iter()
            .map(|i| {
                (
                    i.product.as_str(),
                    i.version.as_ref().map(Version::as_str),
                    i.source.map(Source::code),
                )
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn config_wins_then_history_then_nothing() {
        let config = "[[vendor]]\nname = \"dten\"\nbundles = [\"*.zip\"]\n\
             [[vendor.product]]\nname = \"api\"\ninstalled = \"4.2.1\"\n\
             [[vendor.product]]\nname = \"web\"\n\
             [[vendor.product]]\nname = \"cli\"\n";
        check(
            config,
            &[
                unpack(1, "api", "5.0"),
                unpack(2, "web", "1.2"),
                unpack(3, "gone", "9"),
            ],
            &[
                ("api", Some("4.2.1"), Some("config")),
                ("web", Some("1.2"), Some("history")),
                ("cli", None, None),
                ("gone", Some("9"), Some("history")),
            ],
        );
        check(
            config,
            &[unpack(1, "web", "not a version")],
            &[
                ("api", Some("4.2.1"), Some("config")),
                ("web", None, None),
                ("cli", None, None),
            ],
        );
    }
}
