//! Advisory feeds into items with stable keys: RSS 0.9x/1.0/2.0, Atom and JSON Feed
//! through feed-rs (from bytes, so the declared encoding wins), and CISA's Known
//! Exploited Vulnerabilities catalogue.
//!
//! Identity is ours, not feed-rs's: an entry's key is its guid/id when the feed gives
//! one, else its link; when several entries share a link, those fall back to link plus
//! published date. Never the title, so an edited title is not a new advisory. feed-rs
//! invents ids for entries without one; we give it an id generator that marks such
//! entries instead. The content hash covers the body and links but not the title, so a
//! title edit changes nothing, while a changed body or `updated` date is an update.
//! Comparing with what was seen before is `pass`'s job.
//!
//! Severity is only what the source says: a severity word in an entry's title, never a
//! default. CISA KEV has no severity field, so its entries carry none (the event says
//! `unknown`); being in the catalogue means exploited in the wild, which the event says
//! through the catalogue's own fields (`knownRansomwareCampaignUse`, `dueDate`,
//! `requiredAction`) rather than through a severity we would have to invent.

use std::collections::HashMap;

use sha2::Digest as _;

use crate::alert::event::Severity;
use crate::watch::source::PollError;

/// One advisory as a feed presents it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: String,
    pub title: String,
    pub url: String,
    /// The entry's `updated` (or `published`) date as RFC 3339, when given.
    pub updated: Option<String>,
    pub content_hash: String,
    pub severity: Option<Severity>,
    /// Advisory id when the feed names one (a CVE, a CSAF tracking id).
    pub advisory_id: Option<String>,
    /// CVE ids named in the entry's title, summary or content, first mention first.
    pub cves: Vec<String>,
    /// Source-specific fields the event carries as they are (CISA KEV's `dueDate`, ...).
    pub fields: Vec<(&'static str, String)>,
    /// The entry's summary, for matching products' `match` words (not carried).
    pub summary: String,
}

impl Item {
    /// The item with every NUL in its text replaced by U+FFFD, so that its key compares
    /// and stores alike in both backends (PostgreSQL's text cannot hold NUL).
    pub fn without_nul(mut self) -> Item {
        use crate::text::strip_nul;
        for s in [
            &mut self.key,
            &mut self.title,
            &mut self.url,
            &mut self.content_hash,
            &mut self.summary,
        ] {
            strip_nul(s);
        }
        for s in self.updated.iter_mut().chain(self.advisory_id.iter_mut()) {
            strip_nul(s);
        }
        for (_, v) in &mut self.fields {
            strip_nul(v);
        }
        self.cves.iter_mut().for_each(strip_nul);
        self
    }
}

/// Why a body is not a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedError(pub String);

impl FeedError {
    /// The poll failure (`feed-malformed`) for the feed at `url`.
    pub fn at(self, url: &str) -> PollError {
        PollError::new("feed-malformed", format!("{} ({url})", self.0))
    }
}

const NO_ID: &str = "\u{0}vendorguard:no-id";

/// Parses an RSS, Atom or JSON Feed body.
///
/// # Errors
///
/// [`FeedError`] when the bytes are not a feed (an HTML page, malformed XML, JSON that
/// is not a JSON Feed).
pub fn parse_feed(bytes: &[u8], base_url: &str) -> Result<Vec<Item>, FeedError> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_ascii_lowercase();
    if head.trim_start().starts_with("<!doctype html") || head.trim_start().starts_with("<html") {
        return Err(FeedError("the server sent an HTML page, not a feed".into()));
    }
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(base_url))
        .id_generator(|_links, _title, _uri| NO_ID.to_string())
        .sanitize_content(false)
        .build();
    let feed = parser
        .parse(bytes)
        .map_err(|e| FeedError(format!("not RSS, Atom or JSON Feed: {e}")))?;

    struct Raw {
        id: Option<String>,
        link: Option<String>,
        published: Option<String>,
        title: String,
        updated: Option<String>,
        hash: String,
        cves: Vec<String>,
        summary: String,
    }
    let mut raws = Vec::with_capacity(feed.entries.len());
    for e in feed.entries {
        let title = e
            .title
            .as_ref()
            .map(|t| t.content.trim().to_string())
            .unwrap_or_default();
        let link = e.links.first().map(|l| l.href.clone());
        let published = e.published.map(|d| d.to_rfc3339());
        let updated = e
            .updated
            .map(|d| d.to_rfc3339())
            .or_else(|| published.clone());
        let mut h = sha2::Sha256::new();
        if let Some(s) = &e.summary {
            h.update(s.content.as_bytes());
        }
        h.update([0]);
        if let Some(c) = &e.content {
            h.update(c.body.as_deref().unwrap_or("").as_bytes());
        }
        h.update([0]);
        for l in &e.links {
            h.update(l.href.as_bytes());
            h.update([1]);
        }
        let id = (e.id != NO_ID && !e.id.trim().is_empty()).then(|| e.id.trim().to_string());
        let mut cves = Vec::new();
        cve_ids(&title, &mut cves);
        if let Some(s) = &e.summary {
            cve_ids(&s.content, &mut cves);
        }
        if let Some(c) = &e.content {
            cve_ids(c.body.as_deref().unwrap_or(""), &mut cves);
        }
        raws.push(Raw {
            id,
            link,
            published,
            title,
            updated,
            hash: crate::text::hex(&h.finalize()[..16]),
            cves,
            summary: e.summary.map(|s| s.content).unwrap_or_default(),
        });
    }
    let mut link_count: HashMap<&str, usize> = HashMap::new();
    for r in raws.iter().filter(|r| r.id.is_none()) {
        if let Some(l) = &r.link {
            *link_count.entry(l.as_str()).or_default() += 1;
        }
    }
    let mut items = Vec::with_capacity(raws.len());
    for r in &raws {
        let key = match (&r.id, &r.link) {
            (Some(id), _) => format!("id:{id}"),
            (None, Some(link)) if link_count.get(link.as_str()).copied().unwrap_or(0) > 1 => {
                format!(
                    "link:{link}#{}",
                    r.published
                        .as_deref()
                        .or(r.updated.as_deref())
                        .unwrap_or(&r.hash)
                )
            }
            (None, Some(link)) => format!("link:{link}"),
            // Neither id nor link: the content is all that identifies it.
            (None, None) => format!("content:{}", r.hash),
        };
        items.push(Item {
            key,
            title: r.title.clone(),
            url: r.link.clone().unwrap_or_default(),
            updated: r.updated.clone(),
            content_hash: r.hash.clone(),
            severity: severity_in_title(&r.title),
            advisory_id: None,
            cves: r.cves.clone(),
            fields: Vec::new(),
            summary: r.summary.clone(),
        });
    }
    // The same key twice in one feed (a feed bug): keep the first, as readers show it.
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert(i.key.clone()));
    Ok(items)
}

/// Vendors such as Amazon put the severity in the title: "ALAS-2018-1106 (medium): ...".
fn severity_in_title(title: &str) -> Option<Severity> {
    let open = title.find('(')?;
    let close = title[open..].find(')')? + open;
    Severity::parse(&title[open + 1..close])
}

/// Appends the CVE ids (`CVE-YYYY-NNNN...`, any case) in `text` to `out`, each once.
fn cve_ids(text: &str, out: &mut Vec<String>) {
    let upper = text.to_ascii_uppercase();
    let b = upper.as_bytes();
    let mut i = 0;
    while let Some(at) = upper[i..].find("CVE-").map(|p| p + i) {
        i = at + 4;
        if at > 0 && b[at - 1].is_ascii_alphanumeric() {
            continue;
        }
        let year = &b[i..(i + 4).min(b.len())];
        if year.len() < 4 || !year.iter().all(u8::is_ascii_digit) || b.get(i + 4) != Some(&b'-') {
            continue;
        }
        let digits = b[i + 5..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits < 4 || b.get(i + 5 + digits).is_some_and(u8::is_ascii_alphanumeric) {
            continue;
        }
        let id = upper[at..i + 5 + digits].to_string();
        if !out.contains(&id) {
            out.push(id);
        }
        i += 5 + digits;
    }
}

/// Parses CISA's Known Exploited Vulnerabilities catalogue: one item per CVE.
///
/// # Errors
///
/// [`FeedError`] when the JSON is not the catalogue.
pub fn parse_cisa_kev(bytes: &[u8]) -> Result<Vec<Item>, FeedError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| FeedError(format!("not JSON: {e}")))?;
    let vulns = v
        .get("vulnerabilities")
        .and_then(|x| x.as_array())
        .ok_or_else(|| {
            FeedError("not a CISA KEV catalogue: no \"vulnerabilities\" array".into())
        })?;
    let mut items = Vec::with_capacity(vulns.len());
    for x in vulns {
        let s = |k: &str| {
            x.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let cve = s("cveID");
        if cve.is_empty() {
            continue;
        }
        let mut h = sha2::Sha256::new();
        h.update(x.to_string().as_bytes());
        let fields = [
            "vendorProject",
            "product",
            "dueDate",
            "requiredAction",
            "knownRansomwareCampaignUse",
        ]
        .into_iter()
        .map(|k| (k, s(k)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
        items.push(Item {
            key: format!("cve:{cve}"),
            title: format!(
                "{cve} {} {}: {}",
                s("vendorProject"),
                s("product"),
                s("vulnerabilityName")
            ),
            url: format!("https://nvd.nist.gov/vuln/detail/{cve}"),
            updated: Some(s("dateAdded")).filter(|d| !d.is_empty()),
            content_hash: crate::text::hex(&h.finalize()[..16]),
            // The catalogue has no severity field; see the file's header.
            severity: None,
            cves: vec![cve.clone()],
            advisory_id: Some(cve),
            fields,
            summary: String::new(),
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(xml: &str) -> Vec<String> {
        parse_feed(xml.as_bytes(), "https://v.example/feed")
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect()
    }

    #[test]
    fn identity_prefers_guid_then_link_then_link_and_date() {
        let rss = r#"<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
          <item><title>A</title><guid>urn:a</guid><link>https://v.example/a</link></item>
          <item><title>B</title><link>https://v.example/b</link></item>
          <item><title>C1</title><link>https://v.example/c</link><pubDate>Mon, 01 Jan 2024 00:00:00 GMT</pubDate></item>
          <item><title>C2</title><link>https://v.example/c</link><pubDate>Tue, 02 Jan 2024 00:00:00 GMT</pubDate></item>
        </channel></rss>"#;
        assert_eq!(
            keys(rss),
            [
                "id:urn:a",
                "link:https://v.example/b",
                "link:https://v.example/c#2024-01-01T00:00:00+00:00",
                "link:https://v.example/c#2024-01-02T00:00:00+00:00"
            ]
        );
    }

    #[test]
    fn a_title_edit_changes_neither_key_nor_hash() {
        let a = r#"<rss version="2.0"><channel><title>t</title><item><title>Old</title><link>https://v.example/x</link><description>body</description></item></channel></rss>"#;
        let b = a.replace("Old", "New title");
        let (x, y) = (
            &parse_feed(a.as_bytes(), "https://v.example/").unwrap()[0],
            &parse_feed(b.as_bytes(), "https://v.example/").unwrap()[0],
        );
        assert_eq!((&x.key, &x.content_hash), (&y.key, &y.content_hash));
        let c = a.replace("body", "changed body");
        assert_ne!(
            parse_feed(c.as_bytes(), "https://v.example/").unwrap()[0].content_hash,
            x.content_hash
        );
    }

    #[test]
    fn html_and_garbage_are_errors() {
        assert!(parse_feed(b"<!DOCTYPE html><html><body>login</body></html>", "u").is_err());
        assert!(parse_feed(b"<rss><channel><item>", "u").is_err());
        assert!(parse_cisa_kev(b"{\"x\": 1}").is_err());
    }

    #[test]
    fn severity_from_amazon_style_titles() {
        assert_eq!(
            severity_in_title("ALAS-2018-1106 (medium): 389-ds-base"),
            Some(Severity::Medium)
        );
        assert_eq!(severity_in_title("no severity"), None);
    }

    fn check_cves(text: &str, want: &[&str]) {
        let mut got = Vec::new();
        cve_ids(text, &mut got);
        assert_eq!(got, want, "{text:?}");
    }

    #[test]
    fn cve_ids_in_text() {
        check_cves(
            "fixes CVE-2024-3094 and cve-2023-12345.",
            &["CVE-2024-3094", "CVE-2023-12345"],
        );
        check_cves("CVE-2024-3094, CVE-2024-3094 again", &["CVE-2024-3094"]);
        check_cves("XCVE-2024-1234 CVE-24-1234 CVE-2024-12 CVE-2024-1234x", &[]);
        check_cves("<p>CVE-2025-0001</p>", &["CVE-2025-0001"]);
        check_cves("", &[]);
    }

    #[test]
    fn kev_entries_keep_the_catalogue_fields_and_invent_no_severity() {
        let kev = br#"{"vulnerabilities": [{"cveID": "CVE-2024-8068", "vendorProject": "Citrix",
          "product": "Session Recording", "vulnerabilityName": "x", "dateAdded": "2024-11-18",
          "dueDate": "2024-12-09", "requiredAction": "Apply mitigations.",
          "knownRansomwareCampaignUse": "Unknown"}]}"#;
        let it = &parse_cisa_kev(kev).unwrap()[0];
        assert_eq!(it.severity, None);
        assert_eq!(it.cves, ["CVE-2024-8068"]);
        assert!(it.fields.contains(&("dueDate", "2024-12-09".to_string())));
        assert!(it
            .fields
            .contains(&("knownRansomwareCampaignUse", "Unknown".to_string())));
    }
}
