//! Advisories matched to what is installed: a CSAF document's `product_tree` and
//! `product_status`, a CISA KEV entry's `vendorProject`/`product`, and a feed entry's
//! title and summary, each against the products of `feeds.toml` and the inventory the
//! caller built (`cmd` reads the history; this file reads nothing).
//!
//! A configured product matches a CSAF product by its `cpe`/`purl` prefix against the
//! product identification helper, or by name (`name` or a `match` word, case-insensitive,
//! against a `product_name` branch or the start of a full product name). The walk is
//! bounded (`policy::MAX_CSAF_*`); what does not have the expected shape is skipped.

use std::collections::HashMap;

use serde_json::Value;

use crate::alert::event::{Affect, Affects};
use crate::config::{Config, Product};
use crate::inventory::Inventory;
use crate::policy::{MAX_CSAF_BRANCH_DEPTH, MAX_CSAF_PRODUCT_IDS, MAX_CSAF_STATUS_REFS};
use crate::version::{Range, Version};

/// Which versions a CSAF product stands for.
#[derive(Debug, Clone, PartialEq)]
enum Versions {
    /// No version given: the product as a whole.
    Any,
    Exact(String),
    /// A `vers:` range.
    Range(String),
    /// A version or range that does not parse: nothing can be said.
    Unreadable,
}

/// One CSAF product id: its names, helpers, versions and the statuses listing it.
#[derive(Debug, Clone, PartialEq)]
struct Claimed {
    /// `product_name` branch names, or a full product name.
    name: Option<String>,
    full_name: Option<String>,
    cpe: Option<String>,
    purl: Option<String>,
    versions: Versions,
    statuses: Vec<&'static str>,
}

/// What a CSAF document says about products, read once when it is checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Claims {
    /// `None`: the document has no `product_tree`, so nothing can be said.
    products: Option<Vec<Claimed>>,
}

/// CSAF `product_status` lists and the status code each gives.
const STATUSES: &[(&str, &str)] = &[
    ("known_affected", "known-affected"),
    ("first_affected", "first-affected"),
    ("last_affected", "last-affected"),
    ("fixed", "fixed"),
    ("first_fixed", "first-fixed"),
    ("known_not_affected", "known-not-affected"),
    ("under_investigation", "under-investigation"),
    ("recommended", "recommended"),
];

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn helper(p: &Value, k: &str) -> Option<String> {
    p.get("product_identification_helper")
        .and_then(|h| text(h, k))
}

/// Reads `doc`'s product tree and statuses into [`Claims`].
pub fn csaf_claims(doc: &Value) -> Claims {
    let Some(tree) = doc.get("product_tree") else {
        return Claims::default();
    };
    let mut by_id: HashMap<String, Claimed> = HashMap::new();
    let mut add = |p: &Value, name: Option<String>, versions: Versions| {
        let Some(id) = text(p, "product_id") else {
            return;
        };
        if by_id.len() >= MAX_CSAF_PRODUCT_IDS || by_id.contains_key(&id) {
            return;
        }
        by_id.insert(
            id,
            Claimed {
                name,
                full_name: text(p, "name"),
                cpe: helper(p, "cpe"),
                purl: helper(p, "purl"),
                versions,
                statuses: Vec::new(),
            },
        );
    };
    for p in arr(tree, "full_product_names") {
        add(p, None, Versions::Any);
    }
    // (branch, product_name seen above it, version seen above it, depth)
    let mut stack: Vec<(&Value, Option<String>, Versions, usize)> = arr(tree, "branches")
        .rev()
        .map(|b| (b, None, Versions::Any, 0))
        .collect();
    while let Some((b, mut name, mut versions, depth)) = stack.pop() {
        let bname = text(b, "name");
        match b.get("category").and_then(Value::as_str) {
            Some("product_name") => name = bname,
            Some("product_version") => {
                versions = bname.map_or(Versions::Unreadable, Versions::Exact);
            }
            Some("product_version_range") => {
                versions = bname.map_or(Versions::Unreadable, Versions::Range);
            }
            _ => {}
        }
        if let Some(p) = b.get("product") {
            add(p, name.clone(), versions.clone());
        }
        if depth < MAX_CSAF_BRANCH_DEPTH {
            for c in arr(b, "branches").rev() {
                stack.push((c, name.clone(), versions.clone(), depth + 1));
            }
        }
    }
    let mut refs = 0usize;
    'walk: for v in arr(doc, "vulnerabilities") {
        let Some(ps) = v.get("product_status") else {
            continue;
        };
        for (list, code) in STATUSES {
            for id in arr(ps, list) {
                refs += 1;
                if refs > MAX_CSAF_STATUS_REFS {
                    break 'walk;
                }
                if let Some(c) = id.as_str().and_then(|i| by_id.get_mut(i.trim())) {
                    if !c.statuses.contains(code) {
                        c.statuses.push(code);
                    }
                }
            }
        }
    }
    let mut products: Vec<Claimed> = by_id.into_values().collect();
    products.sort_by(|a, b| (&a.name, &a.full_name).cmp(&(&b.name, &b.full_name)));
    Claims {
        products: Some(products),
    }
}

fn arr<'v>(v: &'v Value, k: &str) -> impl DoubleEndedIterator<Item = &'v Value> {
    v.get(k).and_then(Value::as_array).into_iter().flatten()
}

/// The words a product is known by: its name and its `match` words, lowercased.
fn words(p: &Product) -> Vec<String> {
    std::iter::once(&p.name)
        .chain(&p.match_words)
        .map(|w| w.trim().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

fn prefixed(value: Option<&String>, prefix: Option<&String>) -> bool {
    matches!((value, prefix), (Some(v), Some(p))
        if v.to_lowercase().starts_with(&p.to_lowercase()))
}

/// Whether `c` is product `p`, and the versions it stands for (a full product name
/// "Name 4.2.1" stands for 4.2.1).
fn claimed_as(p: &Product, c: &Claimed) -> Option<Versions> {
    if prefixed(c.cpe.as_ref(), p.cpe.as_ref()) || prefixed(c.purl.as_ref(), p.purl.as_ref()) {
        return Some(c.versions.clone());
    }
    let words = words(p);
    if let Some(n) = &c.name {
        return words
            .contains(&n.to_lowercase())
            .then(|| c.versions.clone());
    }
    let full = c.full_name.as_deref()?.to_lowercase();
    words.iter().find_map(|w| {
        let rest = full.strip_prefix(w.as_str())?;
        if rest.is_empty() {
            Some(c.versions.clone())
        } else {
            let v = rest.strip_prefix(' ')?.trim();
            Some(if Version::parse(v).is_ok() {
                Versions::Exact(v.to_string())
            } else {
                Versions::Unreadable
            })
        }
    })
}

/// Whether `installed` is among `versions`: `None` when that cannot be said.
fn covers(versions: &Versions, installed: &Version) -> Option<bool> {
    match versions {
        Versions::Any => Some(true),
        Versions::Exact(v) => Version::parse(v).ok().map(|v| v == *installed),
        Versions::Range(r) => Range::parse(r).ok().map(|r| r.contains(installed)),
        Versions::Unreadable => None,
    }
}

/// `versions` compared with `installed` when it is one version: `Some(installed >= v)`.
fn at_or_above(versions: &Versions, installed: &Version) -> Option<bool> {
    match versions {
        Versions::Exact(v) => Version::parse(v).ok().map(|v| *installed >= v),
        _ => covers(versions, installed),
    }
}

/// What the claims about one installed product add up to.
fn judge(
    installed: &Version,
    claims: &[(Versions, &'static str)],
) -> (&'static str, Option<bool>, Option<String>) {
    let holds = |codes: &[&str], f: &dyn Fn(&Versions) -> Option<bool>| {
        claims
            .iter()
            .filter(|(_, s)| codes.contains(s))
            .find(|(v, _)| f(v) == Some(true))
            .map(|(_, s)| *s)
    };
    // The lowest fixed version above what is installed, else any fixed one named.
    let mut fixes: Vec<Version> = claims
        .iter()
        .filter(|(_, s)| ["fixed", "first-fixed", "recommended"].contains(s))
        .filter_map(|(v, _)| match v {
            Versions::Exact(v) => Version::parse(v).ok(),
            _ => None,
        })
        .collect();
    fixes.sort();
    let fixed = fixes
        .iter()
        .find(|f| *f > installed)
        .or(fixes.last())
        .map(|f| f.as_str().to_string());
    let is_fixed = holds(&["fixed", "first-fixed"], &|v| at_or_above(v, installed));
    if is_fixed.is_some() {
        return ("fixed", Some(false), fixed);
    }
    if holds(&["known-not-affected"], &|v| covers(v, installed)).is_some() {
        return ("known-not-affected", Some(false), fixed);
    }
    let affected = holds(&["known-affected"], &|v| covers(v, installed))
        .or_else(|| holds(&["first-affected"], &|v| at_or_above(v, installed)))
        .or_else(|| {
            holds(&["last-affected"], &|v| match v {
                Versions::Exact(v) => Version::parse(v).ok().map(|v| *installed <= v),
                _ => covers(v, installed),
            })
        });
    if let Some(code) = affected {
        return (code, Some(true), fixed);
    }
    if holds(&["under-investigation"], &|v| covers(v, installed)).is_some() {
        return ("under-investigation", None, fixed);
    }
    let unreadable = claims
        .iter()
        .any(|(v, s)| *s != "recommended" && covers(v, installed).is_none());
    if unreadable {
        return ("not-listed", None, fixed);
    }
    ("not-listed", Some(false), fixed)
}

/// Every configured product with what is installed of it.
fn products<'c>(config: &'c Config, inventory: &Inventory) -> Vec<(&'c Product, Option<Version>)> {
    let mut out = Vec::new();
    for v in &config.vendors {
        for p in &v.products {
            let installed = inventory
                .get(&v.name, &p.name)
                .and_then(|i| i.version.clone());
            out.push((p, installed));
        }
    }
    out
}

/// Combines per-product entries: affected when any is, unknown when any is unknown
/// and none is affected, not affected otherwise; `empty` when no product is named.
fn combine(list: Vec<Affect>, verdicts: &[Option<bool>], empty: Option<bool>) -> Affects {
    let affected = if verdicts.is_empty() {
        empty
    } else if verdicts.contains(&Some(true)) {
        Some(true)
    } else if verdicts.contains(&None) {
        None
    } else {
        Some(false)
    };
    Affects {
        affected,
        products: list,
    }
}

/// A CSAF advisory against the inventory. `None` when no product is configured.
pub fn match_csaf(claims: &Claims, config: &Config, inventory: &Inventory) -> Option<Affects> {
    let products = products(config, inventory);
    if products.is_empty() {
        return None;
    }
    let Some(claimed) = &claims.products else {
        return Some(Affects::default());
    };
    let (mut list, mut verdicts) = (Vec::new(), Vec::new());
    for (p, installed) in products {
        let mut about: Vec<(Versions, &'static str)> = Vec::new();
        for c in claimed {
            if let Some(v) = claimed_as(p, c) {
                about.extend(c.statuses.iter().map(|s| (v.clone(), *s)));
            }
        }
        if about.is_empty() {
            continue;
        }
        let (status, verdict, fixed) = match &installed {
            Some(i) => judge(i, &about),
            None => ("not-installed", Some(false), None),
        };
        verdicts.push(verdict);
        list.push(Affect {
            product: p.name.clone(),
            installed: installed.map(|v| v.as_str().to_string()),
            status,
            fixed,
        });
    }
    Some(combine(list, &verdicts, Some(false)))
}

/// A CISA KEV entry (`vendorProject`, `product`) against the products' `match` words
/// (and names): a listed installed product is `known-exploited` (KEV names no versions,
/// so `affected` is unknown); an entry naming nothing configured affects nothing.
pub fn match_kev(
    vendor_project: &str,
    product: &str,
    config: &Config,
    inventory: &Inventory,
) -> Option<Affects> {
    let entry = [vendor_project.to_lowercase(), product.to_lowercase()];
    let hits = |p: &Product| {
        let both = format!("{} {}", entry[0], entry[1]);
        words(p).iter().any(|w| entry.contains(w) || both == *w)
    };
    let found = named(config, inventory, hits, "known-exploited")?;
    Some(found.into_affects(Some(false)))
}

/// A feed entry's title and summary against the products' `match` words: a product
/// named there is `mentioned`, and nothing is said either way.
pub fn match_text(text: &str, config: &Config, inventory: &Inventory) -> Option<Affects> {
    let text = text.to_lowercase();
    let hits = |p: &Product| {
        p.match_words
            .iter()
            .any(|w| contains_word(&text, &w.to_lowercase()))
    };
    let found = named(config, inventory, hits, "mentioned")?;
    Some(found.into_affects(None))
}

/// Whether `word` occurs in `text` not as part of a longer word.
fn contains_word(text: &str, word: &str) -> bool {
    let word = word.trim();
    if word.is_empty() {
        return false;
    }
    let edge = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    text.match_indices(word).any(|(i, _)| {
        edge(text[..i].chars().next_back()) && edge(text[i + word.len()..].chars().next())
    })
}

struct Named {
    list: Vec<Affect>,
}

impl Named {
    fn into_affects(self, empty: Option<bool>) -> Affects {
        if self.list.is_empty() {
            return Affects {
                affected: empty,
                products: Vec::new(),
            };
        }
        let installed = self.list.iter().any(|a| a.installed.is_some());
        Affects {
            affected: if installed { None } else { Some(false) },
            products: self.list,
        }
    }
}

/// The configured products `hits` names, each with `status` when installed.
fn named(
    config: &Config,
    inventory: &Inventory,
    hits: impl Fn(&Product) -> bool,
    status: &'static str,
) -> Option<Named> {
    let products = products(config, inventory);
    if products.is_empty() {
        return None;
    }
    let list = products
        .into_iter()
        .filter(|(p, _)| hits(p))
        .map(|(p, installed)| Affect {
            product: p.name.clone(),
            status: if installed.is_some() {
                status
            } else {
                "not-installed"
            },
            installed: installed.map(|v| v.as_str().to_string()),
            fixed: None,
        })
        .collect();
    Some(Named { list })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    const CONFIG: &str = "[[vendor]]\nname = \"acme\"\nbundles = [\"*.zip\"]\n\
        [[vendor.product]]\nname = \"api\"\ninstalled = \"4.2.1\"\nmatch = [\"Acme API\"]\n\
        [[vendor.product]]\nname = \"cli\"\ninstalled = \"3.1\"\npurl = \"pkg:generic/acme/cli\"\n\
        [[vendor.product]]\nname = \"gone\"\nmatch = [\"Acme Gone\"]\n";

    fn config() -> Config {
        Config::parse(Path::new("feeds.toml"), CONFIG).unwrap()
    }

    /// `doc` matched against [`CONFIG`], as its one-line summary (`None`: no products).
    fn check(doc: Value, want: &str) {
        let c = config();
        let inv = Inventory::build(Some(&c), &[]);
        let got = match_csaf(&csaf_claims(&doc), &c, &inv).map(|a| a.line());
        assert_eq!(got.as_deref(), Some(want));
    }

    /// A product tree of `Acme API` leaves `(category, version, id)` and statuses.
    fn api(leaves: &[(&str, &str, &str)], status: Value) -> Value {
        let leaves: Vec<Value> = leaves
            .iter()
            .map(|(cat, v, id)| json!({"category": cat, "name": v, "product": {"product_id": id, "name": "x"}}))
            .collect();
        json!({
            "product_tree": {"branches": [{"category": "product_name", "name": "acme api", "branches": leaves}]},
            "vulnerabilities": [{"product_status": status}],
        })
    }

    #[test]
    fn statuses_against_the_installed_version() {
        let v = "product_version";
        let r = "product_version_range";
        type Leaves<'a> = &'a [(&'a str, &'a str, &'a str)];
        let cases: &[(Leaves, Value, &str)] = &[
            (
                &[(v, "4.2.1", "A")],
                json!({"known_affected": ["A"]}),
                "yes: api 4.2.1 known-affected",
            ),
            (
                &[(v, "4.2.0", "A")],
                json!({"known_affected": ["A"]}),
                "no: api 4.2.1 not-listed",
            ),
            (
                &[(r, "vers:generic/<4.3", "A"), (v, "4.3", "F")],
                json!({"known_affected": ["A"], "fixed": ["F"]}),
                "yes: api 4.2.1 known-affected (fixed in 4.3)",
            ),
            (
                &[(v, "4.0", "F")],
                json!({"fixed": ["F"]}),
                "no: api 4.2.1 fixed (fixed in 4.0)",
            ),
            (
                &[(v, "4.0", "A")],
                json!({"first_affected": ["A"]}),
                "yes: api 4.2.1 first-affected",
            ),
            (
                &[(v, "4.0", "A"), (v, "4.2.2", "F")],
                json!({"first_affected": ["A"], "first_fixed": ["F"]}),
                "yes: api 4.2.1 first-affected (fixed in 4.2.2)",
            ),
            (
                &[(v, "4.1", "A")],
                json!({"last_affected": ["A"]}),
                "no: api 4.2.1 not-listed",
            ),
            (
                &[(v, "4.3", "A")],
                json!({"last_affected": ["A"]}),
                "yes: api 4.2.1 last-affected",
            ),
            (
                &[(r, "vers:generic/*", "N")],
                json!({"known_not_affected": ["N"]}),
                "no: api 4.2.1 known-not-affected",
            ),
            (
                &[(r, "vers:generic/*", "U")],
                json!({"under_investigation": ["U"]}),
                "unknown: api 4.2.1 under-investigation",
            ),
            // A range that does not parse says nothing.
            (
                &[(r, "4.x", "A")],
                json!({"known_affected": ["A"]}),
                "unknown: api 4.2.1 not-listed",
            ),
            (
                &[(v, "4.3", "R")],
                json!({"recommended": ["R"]}),
                "no: api 4.2.1 not-listed (fixed in 4.3)",
            ),
        ];
        for (leaves, status, want) in cases {
            check(api(leaves, status.clone()), want);
        }
    }

    #[test]
    fn products_match_by_purl_prefix_full_name_or_not_at_all() {
        let doc = json!({
            "product_tree": {"full_product_names": [
                {"product_id": "C", "name": "whatever", "product_identification_helper": {"purl": "pkg:generic/acme/cli@3.1"}},
                {"product_id": "A", "name": "Acme API 4.2.1"},
                {"product_id": "G", "name": "Acme Gone"},
                {"product_id": "O", "name": "Acme APIs 4.2.1"},
            ]},
            "vulnerabilities": [{"product_status": {"known_not_affected": ["C"], "known_affected": ["A", "G", "O"]}}],
        });
        check(doc, "yes: api 4.2.1 known-affected; cli 3.1 known-not-affected; gone not installed not-installed");
        check(json!({"product_tree": {}}), "no");
        check(json!({}), "unknown");
        let c = Config::parse(Path::new("feeds.toml"), "[[vendor]]\nname = \"a\"\n").unwrap();
        let inv = Inventory::build(Some(&c), &[]);
        assert_eq!(match_csaf(&csaf_claims(&json!({})), &c, &inv), None);
    }

    #[test]
    fn hostile_trees_are_bounded() {
        // Duplicate product ids: the first definition counts.
        let doc = json!({
            "product_tree": {"full_product_names": [
                {"product_id": "A", "name": "Other 1"},
                {"product_id": "A", "name": "Acme API"},
            ]},
            "vulnerabilities": [{"product_status": {"known_affected": ["A", "A", 7, null]}}],
        });
        check(doc, "no");
        // More product ids than the cap: the rest are not read.
        let mut names: Vec<Value> = (0..MAX_CSAF_PRODUCT_IDS)
            .map(|i| json!({"product_id": format!("P{i}"), "name": "Other"}))
            .collect();
        names.push(json!({"product_id": "LATE", "name": "Acme API"}));
        let doc = json!({"product_tree": {"full_product_names": names},
            "vulnerabilities": [{"product_status": {"known_affected": ["LATE"]}}]});
        check(doc, "no");
        // More status references than the cap: the rest are not read.
        let mut refs = vec![Value::from("X"); MAX_CSAF_STATUS_REFS];
        refs.push("A".into());
        let doc = json!({"product_tree": {"full_product_names": [{"product_id": "A", "name": "Acme API"}]},
            "vulnerabilities": [{"product_status": {"known_affected": refs}}]});
        check(doc, "no");
        // Branches deeper than the cap are not walked.
        let mut b = json!({"category": "product_name", "name": "Acme API",
            "product": {"product_id": "DEEP", "name": "x"}});
        for _ in 0..MAX_CSAF_BRANCH_DEPTH + 1 {
            b = json!({"category": "vendor", "name": "v", "branches": [b]});
        }
        let doc = json!({"product_tree": {"branches": [b]},
            "vulnerabilities": [{"product_status": {"known_affected": ["DEEP"]}}]});
        check(doc, "no");
    }

    #[test]
    fn kev_and_feed_text() {
        let c = config();
        let inv = Inventory::build(Some(&c), &[]);
        let kev = [
            (("Acme", "API"), "unknown: api 4.2.1 known-exploited"),
            (("acme api", ""), "unknown: api 4.2.1 known-exploited"),
            (("Acme", "Gone"), "no: gone not installed not-installed"),
            (("Other", "Thing"), "no"),
        ];
        for ((vendor, product), want) in kev {
            let got = match_kev(vendor, product, &c, &inv).map(|a| a.line());
            assert_eq!(got.as_deref(), Some(want), "{vendor} {product}");
        }
        let text = [
            ("A flaw in ACME API 4", "unknown: api 4.2.1 mentioned"),
            ("Acme APIs", "unknown"),
            ("nothing", "unknown"),
        ];
        for (t, want) in text {
            let got = match_text(t, &c, &inv).map(|a| a.line());
            assert_eq!(got.as_deref(), Some(want), "{t}");
        }
    }
}
