//! Advisories matched to what is installed: a GnuPG-signed CSAF provider, CISA KEV and
//! RSS on 127.0.0.1 against products whose `installed` version feeds.toml states.

use serde_json::{json, Value};

use crate::alert::{A, ESC_RECORDING};
use crate::harness::{both_backends, Backend};
use crate::http::Resp;
use crate::watch::{rss, OwnProvider, W};

/// Three products of vendor acme: the API at 4.2.1 (named "Acme API"), the web UI at
/// 1.1 ("Acme Web"), the CLI at 3.1 (by its purl).
const PRODUCTS: &str = "bundles = [\"acme-*.zip\"]\n\
[[vendor.product]]\nname = \"acme-api\"\nbundles = [\"acme-api-*.zip\"]\ninstalled = \"4.2.1\"\nmatch = [\"Acme API\"]\n\
[[vendor.product]]\nname = \"acme-web\"\nbundles = [\"acme-web-*.zip\"]\ninstalled = \"1.1\"\nmatch = [\"Acme Web\"]\n\
[[vendor.product]]\nname = \"acme-cli\"\nbundles = [\"acme-cli-*.zip\"]\ninstalled = \"3.1\"\npurl = \"pkg:generic/acme/cli\"\n";

/// A product tree with one vendor branch: `(product name, category, version or range,
/// product id)` leaves, plus the CLI as a full product name with its purl.
fn tree(leaves: &[(&str, &str, &str, &str)]) -> Value {
    let products: Vec<Value> = leaves
        .iter()
        .map(|(name, category, version, id)| {
            json!({"category": "product_name", "name": name, "branches": [
                {"category": category, "name": version,
                 "product": {"product_id": id, "name": format!("{name} {version}")}}]})
        })
        .collect();
    json!({
        "branches": [{"category": "vendor", "name": "Acme", "branches": products}],
        "full_product_names": [{"product_id": "CLI", "name": "acme command line",
            "product_identification_helper": {"purl": "pkg:generic/acme/cli@3.1"}}],
    })
}

fn provider(b: Backend) -> OwnProvider {
    let p = OwnProvider::new(b);
    p.w.config(&[("/prov/provider-metadata.json", "csaf")], PRODUCTS);
    p
}

/// The stored `advisory-new` event whose title starts with `id`.
fn advisory(w: &W, id: &str) -> Value {
    w.events()
        .into_iter()
        .map(|(_, e)| e)
        .find(|e| e["kind"] == "advisory-new" && e["title"].as_str().unwrap().starts_with(id))
        .unwrap_or_else(|| panic!("no advisory-new event for {id}"))
}

both_backends!(
    csaf_advisories_are_matched_to_installed_versions_and_only_affecting_ones_are_first_poll_news
);
fn csaf_advisories_are_matched_to_installed_versions_and_only_affecting_ones_are_first_poll_news(
    b: Backend,
) {
    let p = provider(b);
    // By range: 4.0 up to before 4.2.2 is affected, 4.2.2 fixes it.
    p.publish_with(
        "ACME-1",
        "1",
        5.3,
        "2026-11-01T00:00:00Z",
        &tree(&[
            (
                "Acme API",
                "product_version_range",
                "vers:generic/>=4.0|<4.2.2",
                "API-4",
            ),
            ("Acme API", "product_version", "4.2.2", "API-422"),
        ]),
        &json!({"known_affected": ["API-4"], "fixed": ["API-422"]}),
    );
    // Not affected: fixed in 1.1, which is installed; 1.0 was affected.
    p.publish_with(
        "ACME-3",
        "1",
        8.1,
        "2026-11-02T00:00:00Z",
        &tree(&[
            ("Acme Web", "product_version", "1.0", "WEB-10"),
            ("Acme Web", "product_version", "1.1", "WEB-11"),
        ]),
        &json!({"known_affected": ["WEB-10"], "fixed": ["WEB-11"]}),
    );
    let r = p.w.once();
    r.code(0)
        .stdout_has("event advisory-new high acme: ACME-1: ACME-1 in acme agent")
        .stdout_has("affected yes: acme-api 4.2.1 known-affected (fixed in 4.2.2)")
        .stdout_has("1 advisories already published");
    assert!(!r.stdout.contains("ACME-3"), "{}", r.stdout);
    let one = advisory(&p.w, "ACME-1");
    assert_eq!(one["affected"], true);
    assert_eq!(one["severity"], "high", "medium raised to high: {one}");
    assert_eq!(
        one["affects"],
        json!([{"product": "acme-api", "installed": "4.2.1", "status": "known-affected", "fixed": "4.2.2"}])
    );

    // By exact version; known_not_affected; another product only.
    p.publish_with(
        "ACME-2",
        "1",
        9.8,
        "2026-11-03T00:00:00Z",
        &tree(&[("Acme API", "product_version", "4.2.1", "API-421")]),
        &json!({"known_affected": ["API-421"]}),
    );
    p.publish_with(
        "ACME-4",
        "1",
        7.5,
        "2026-11-04T00:00:00Z",
        &tree(&[]),
        &json!({"known_not_affected": ["CLI"]}),
    );
    p.publish_with(
        "ACME-5",
        "1",
        9.1,
        "2026-11-05T00:00:00Z",
        &json!({"branches": [{"category": "vendor", "name": "Acme", "branches": [
            {"category": "product_name", "name": "Acme Router", "branches": [
                {"category": "product_version", "name": "2.0",
                 "product": {"product_id": "R2", "name": "Acme Router 2.0"}}]}]}]}),
        &json!({"known_affected": ["R2"]}),
    );
    let r = p.w.once();
    r.code(0)
        .stdout_has("event advisory-new critical acme: ACME-2")
        .stdout_has("event advisory-new info acme: ACME-4")
        .stdout_has("affected no: acme-cli 3.1 known-not-affected")
        .stdout_has("event advisory-new info acme: ACME-5");
    let two = advisory(&p.w, "ACME-2");
    assert_eq!(two["affected"], true);
    assert_eq!(two["affects"][0]["status"], "known-affected");
    assert_eq!(two["affects"][0]["fixed"], Value::Null);
    let four = advisory(&p.w, "ACME-4");
    assert_eq!(four["affected"], false);
    assert_eq!(four["severity"], "info");
    let five = advisory(&p.w, "ACME-5");
    assert_eq!(five["affected"], false);
    assert_eq!(five["affects"], json!([]));

    // ACME-3, recorded as backlog, is fixed where it is installed: not affected.
    p.publish_with(
        "ACME-3",
        "2",
        8.1,
        "2026-11-06T00:00:00Z",
        &tree(&[
            ("Acme Web", "product_version", "1.0", "WEB-10"),
            ("Acme Web", "product_version", "1.1", "WEB-11"),
        ]),
        &json!({"known_affected": ["WEB-10"], "fixed": ["WEB-11"]}),
    );
    p.w.once()
        .code(0)
        .stdout_has("event advisory-updated info acme: ACME-3")
        .stdout_has("affected no: acme-web 1.1 fixed (fixed in 1.1)");
}

both_backends!(a_fixed_version_below_the_installed_one_is_not_affected);
fn a_fixed_version_below_the_installed_one_is_not_affected(b: Backend) {
    let p = provider(b);
    p.w.once().code(0);
    p.publish_with(
        "ACME-6",
        "1",
        9.8,
        "2026-11-01T00:00:00Z",
        &tree(&[
            (
                "Acme API",
                "product_version_range",
                "vers:generic/<4.1",
                "OLD",
            ),
            ("Acme API", "product_version", "4.1", "FIX"),
        ]),
        &json!({"known_affected": ["OLD"], "first_fixed": ["FIX"]}),
    );
    p.w.once()
        .code(0)
        .stdout_has("event advisory-new info acme: ACME-6")
        .stdout_has("affected no: acme-api 4.2.1 fixed (fixed in 4.1)");
}

fn kev(entries: &[(&str, &str, &str)]) -> String {
    let v: Vec<Value> = entries
        .iter()
        .map(|(cve, vendor, product)| {
            json!({"cveID": cve, "vendorProject": vendor, "product": product,
                   "vulnerabilityName": "a flaw", "dateAdded": "2026-11-01"})
        })
        .collect();
    json!({"vulnerabilities": v}).to_string()
}

both_backends!(kev_entries_match_on_vendor_project_and_product);
fn kev_entries_match_on_vendor_project_and_product(b: Backend) {
    let w = W::new(b, &[]);
    w.config(&[("/kev.json", "cisa-kev")], PRODUCTS);
    w.srv.route("/kev.json", vec![Resp::ok(kev(&[]))]);
    w.once().code(0);
    w.srv.route(
        "/kev.json",
        vec![Resp::ok(kev(&[
            ("CVE-2026-1", "Acme", "API"),
            ("CVE-2026-2", "Other", "Thing"),
        ]))],
    );
    w.once()
        .code(0)
        .stdout_has("event advisory-new unknown acme: CVE-2026-1 Acme API")
        .stdout_has("affected unknown: acme-api 4.2.1 known-exploited")
        .stdout_has("event advisory-new info acme: CVE-2026-2 Other Thing");
    let e = |cve: &str| {
        w.events()
            .into_iter()
            .map(|(_, e)| e)
            .find(|e| e["advisory_id"] == cve)
            .unwrap()
    };
    assert_eq!(e("CVE-2026-1")["affected"], Value::Null);
    assert_eq!(e("CVE-2026-1")["affects"][0]["status"], "known-exploited");
    assert_eq!(e("CVE-2026-2")["affected"], false);
}

both_backends!(feed_entries_that_name_a_product_are_mentioned);
fn feed_entries_that_name_a_product_are_mentioned(b: Backend) {
    let w = W::new(b, &[]);
    w.config(&[("/feed.xml", "")], PRODUCTS);
    w.srv.route("/feed.xml", vec![Resp::ok(rss(&[]))]);
    w.once().code(0);
    w.srv.route(
        "/feed.xml",
        vec![Resp::ok(rss(&[
            (
                "a1",
                "Security update",
                "Fixes a flaw in Acme Web before 1.2",
            ),
            ("a2", "Company news (high)", "Nothing to see"),
        ]))],
    );
    w.once()
        .code(0)
        .stdout_has("event advisory-new unknown acme: Security update")
        .stdout_has("affected unknown: acme-web 1.1 mentioned")
        .stdout_has("event advisory-new high acme: Company news (high)");
    let events: Vec<Value> = w.events().into_iter().map(|(_, e)| e).collect();
    let a2 = events.iter().find(|e| e["entry_key"] == "id:a2").unwrap();
    assert_eq!(a2["affected"], Value::Null);
    assert_eq!(a2["affects"], json!([]));
}

both_backends!(affected_reaches_script_and_mail_and_info_is_below_a_low_floor);
/// The script sees VENDORGUARD_AFFECTED, the mail an `affected:` line, and an entry
/// that affects nothing installed (info) is not escalated when the floor is `low`.
fn affected_reaches_script_and_mail_and_info_is_below_a_low_floor(b: Backend) {
    let a = A::new(b, Some(ESC_RECORDING), "10s");
    let smtp = a.smtp();
    let cfg = std::fs::read_to_string(a.p.path("feeds.toml")).unwrap();
    let cfg = cfg
        .replace(
            "escalation_timeout = \"10s\"\n",
            "escalation_timeout = \"10s\"\nescalation_min_severity = \"low\"\n",
        )
        .replace("name = \"acme\"\n", &format!("name = \"acme\"\n{PRODUCTS}"))
        .replace("/feed\"\n", "/feed\"\nformat = \"cisa-kev\"\n");
    a.p.write("feeds.toml", cfg);
    a.srv.route("/feed", vec![Resp::ok(kev(&[]))]);
    a.once().code(0);
    a.srv.route(
        "/feed",
        vec![Resp::ok(kev(&[
            ("CVE-2026-1", "Acme", "API"),
            ("CVE-2026-2", "Other", "Thing"),
        ]))],
    );
    a.once().code(0);
    let calls = a.calls();
    assert_eq!(calls.len(), 1, "only the matching entry is escalated");
    let (json, env) = &calls[0];
    assert_eq!(json["advisory_id"], "CVE-2026-1");
    assert!(
        env.contains("VENDORGUARD_AFFECTED=unknown: acme-api 4.2.1 known-exploited\n"),
        "{env}"
    );
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let m = msgs.iter().find(|m| m.contains("CVE-2026-1")).unwrap();
    assert!(
        m.contains("affected:    unknown: acme-api 4.2.1 known-exploited"),
        "{m}"
    );
    let other = msgs.iter().find(|m| m.contains("CVE-2026-2")).unwrap();
    assert!(other.contains("affected:    no\r\n"), "{other}");
}
