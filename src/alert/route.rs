//! Which events a channel carries: `[[alerts.include]]` and `[[alerts.exclude]]` for
//! every channel, and each channel's `min_severity`.
//!
//! Only advisory events (`advisory-new`, `advisory-updated`, `backlog-recorded`) are
//! ever routed away. Key, signer, rejected-bundle and source-health events reach every
//! channel whatever the rules say: a rule written to quieten a vendor's advisories must
//! not also hide that its key changed or its feed went dark. Routing decides; recording
//! an event as `filtered` on a channel is `delivery`'s job.

use crate::alert::event::{Event, Severity, PRODUCTS_SEPARATOR};
use crate::config::{Alerts, Rule, SeverityFloor};

/// One channel's routing: the shared rules and its own severity floor.
#[derive(Debug, Clone, Default)]
pub struct Route {
    include: Vec<Rule>,
    exclude: Vec<Rule>,
    min_severity: Option<SeverityFloor>,
}

impl Route {
    /// The rules of `[alerts]` with `min_severity` for one channel.
    pub fn new(alerts: &Alerts, min_severity: Option<SeverityFloor>) -> Route {
        Route {
            include: alerts.include.clone(),
            exclude: alerts.exclude.clone(),
            min_severity,
        }
    }

    /// Whether the channel delivers `e`.
    pub fn carries(&self, e: &Event) -> bool {
        if !e.kind.is_advisory() {
            return true;
        }
        let included = self.include.is_empty() || self.include.iter().any(|r| matches(r, e));
        included
            && !self.exclude.iter().any(|r| matches(r, e))
            && self
                .min_severity
                .is_none_or(|floor| at_least(e.severity, floor))
    }
}

/// An event whose source states no severity passes every floor: nothing says it is
/// below it (a CISA KEV entry is exploited in the wild and has no severity field).
fn at_least(s: Severity, floor: SeverityFloor) -> bool {
    let rank = match s {
        Severity::Unknown => return true,
        Severity::Info => SeverityFloor::Info,
        Severity::Low => SeverityFloor::Low,
        Severity::Medium => SeverityFloor::Medium,
        Severity::High => SeverityFloor::High,
        Severity::Critical => SeverityFloor::Critical,
    };
    rank >= floor
}

/// Every field the rule sets matches `e`.
fn matches(r: &Rule, e: &Event) -> bool {
    let field_is = |name: &str, want: &Option<String>| {
        want.as_deref().is_none_or(|w| {
            e.fields
                .get(name)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case(w.trim()))
        })
    };
    let product = r.product.as_deref().is_none_or(|w| {
        let csaf = e
            .fields
            .get("products")
            .into_iter()
            .flat_map(|p| p.split(PRODUCTS_SEPARATOR));
        e.fields
            .get("product")
            .map(String::as_str)
            .into_iter()
            .chain(csaf)
            .any(|v| v.trim().eq_ignore_ascii_case(w.trim()))
    });
    r.vendor.as_deref().is_none_or(|v| v == e.vendor)
        && product
        && field_is("vendorProject", &r.vendor_project)
        && r.keyword.as_deref().is_none_or(|k| has_keyword(e, k))
}

fn has_keyword(e: &Event, keyword: &str) -> bool {
    let k = keyword.to_lowercase();
    let summary = e.fields.get("summary").map(String::as_str);
    std::iter::once(e.title.as_str())
        .chain(summary)
        .chain(e.cves.iter().map(String::as_str))
        .any(|t| t.to_lowercase().contains(&k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::event::Kind;
    use std::time::SystemTime;

    fn rule(spec: &str) -> Rule {
        let mut r = Rule::default();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap();
            let v = Some(v.to_string());
            match k {
                "vendor" => r.vendor = v,
                "product" => r.product = v,
                "vendor_project" => r.vendor_project = v,
                "keyword" => r.keyword = v,
                _ => panic!("{k}"),
            }
        }
        r
    }

    /// `include`/`exclude`: rules separated by `;`; the event: a KEV-like advisory of
    /// `acme` unless `kind` says otherwise.
    fn check(
        include: &str,
        exclude: &str,
        min: Option<SeverityFloor>,
        kind: Kind,
        severity: Severity,
        want: bool,
    ) {
        let rules = |s: &str| s.split(';').filter(|r| !r.is_empty()).map(rule).collect();
        let route = Route {
            include: rules(include),
            exclude: rules(exclude),
            min_severity: min,
        };
        let mut e = Event::new(
            kind,
            "acme",
            "x",
            severity,
            "Chrome heap overflow",
            "",
            SystemTime::UNIX_EPOCH,
        )
        .with("vendorProject", "Google")
        .with("product", "Chromium V8")
        .with("products", "Acme Agent 4.2; Acme Agent");
        e.cves = vec!["CVE-2024-0519".into()];
        assert_eq!(
            route.carries(&e),
            want,
            "include {include:?} exclude {exclude:?} min {min:?} {kind:?} {severity:?}"
        );
    }

    #[test]
    fn routing() {
        use Kind::*;
        use Severity::*;
        let high = Some(SeverityFloor::High);
        check("", "", None, AdvisoryNew, Unknown, true);
        check("", "vendor=acme", None, AdvisoryNew, High, false);
        check("", "vendor=other", None, AdvisoryNew, High, true);
        check(
            "",
            "vendor=acme,keyword=firefox",
            None,
            AdvisoryNew,
            High,
            true,
        );
        check(
            "",
            "vendor=acme,keyword=CHROME",
            None,
            AdvisoryUpdated,
            High,
            false,
        );
        check("", "keyword=cve-2024-0519", None, AdvisoryNew, High, false);
        check(
            "",
            "vendor_project=google,product=chromium v8",
            None,
            AdvisoryNew,
            High,
            false,
        );
        check("", "product=Chromium", None, AdvisoryNew, High, true);
        check("", "product=acme agent", None, AdvisoryNew, High, false);
        check("", "product=Acme", None, AdvisoryNew, High, true);
        check("keyword=heap", "", None, AdvisoryNew, Low, true);
        check("keyword=kernel", "", None, AdvisoryNew, Low, false);
        check(
            "keyword=kernel;vendor=acme",
            "",
            None,
            BacklogRecorded,
            Low,
            true,
        );
        check(
            "keyword=heap",
            "keyword=overflow",
            None,
            AdvisoryNew,
            Low,
            false,
        );
        check("", "", high, AdvisoryNew, Medium, false);
        check("", "", high, AdvisoryNew, High, true);
        check("", "", high, AdvisoryNew, Critical, true);
        check("", "", high, AdvisoryNew, Unknown, true);
        check("", "", Some(SeverityFloor::Low), AdvisoryNew, Info, false);
        // Key, signer, bundle and source events are never routed away.
        for kind in [
            KeyChanged,
            UnexpectedSigner,
            KeyRevoked,
            KeyExpiring,
            BundleRejected,
            SourceFailing,
            SourceRecovered,
        ] {
            check("keyword=kernel", "vendor=acme", high, kind, Info, true);
        }
    }
}
