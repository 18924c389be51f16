//! Rendering a verification [`Report`] for people (text) and for programs (JSON).
//!
//! Text output: a verdict line first, the bundle, its signature source and the
//! vendor's contact, one line per signature, one per pin, warnings, then what to do
//! next. Everything that came from outside (file names, user IDs,
//! error details quoting signatures) is escaped. The JSON object is the contract's
//! shape; the same stable codes appear in both.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::text::{escape, escape_os, group4, plural, time};
use crate::verify::verdict::{Report, SignatureCheck, Status, Verdict};

/// The human report.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let bundle = escape_os(r.subject.bundle.as_os_str());
    let vendor = r
        .subject
        .vendor
        .as_deref()
        .map(|v| format!("vendor {v}"))
        .unwrap_or_else(|| "the given keyring".into());
    let good = r.good_certificates.len();
    match r.verdict {
        Verdict::Verified => {
            let _ = writeln!(
                out,
                "verified: {bundle}: {good} pinned certificate{} signed, {} required ({vendor})",
                plural(good as u64),
                r.subject.threshold,
            );
        }
        Verdict::Rejected if r.codes.contains(&"below-threshold") => {
            let _ = writeln!(
                out,
                "rejected: {bundle}: {good} of {} required pinned certificates signed: {} ({vendor})",
                r.subject.threshold,
                r.codes.join(", ")
            );
        }
        Verdict::Rejected => {
            let _ = writeln!(out, "rejected: {bundle}: {} ({vendor})", r.codes.join(", "));
        }
        Verdict::UnexpectedSigner => {
            let whose = match &r.subject.vendor {
                Some(v) => format!("not pinned for vendor {v}"),
                None => "not in the given keyring".into(),
            };
            let _ = writeln!(
                out,
                "unexpected-signer: {bundle}: signed by a key that is {whose}"
            );
        }
    }
    let _ = writeln!(
        out,
        "  bundle  size {}  sha256 {}",
        r.subject.size, r.subject.sha256
    );
    match &r.subject.source_path {
        Some(p) => {
            let _ = writeln!(
                out,
                "  source  {} {}",
                r.subject.source_kind,
                escape_os(p.as_os_str())
            );
        }
        None => {
            let _ = writeln!(out, "  source  none");
        }
    }
    if let Some(c) = &r.subject.contact {
        let _ = writeln!(out, "  contact  {}", escape(c));
    }
    for s in &r.signatures {
        let _ = writeln!(out, "  {}", signature_line(s));
        if let Some(d) = &s.detail {
            let _ = writeln!(out, "      {}", escape(d));
        }
    }
    for c in &r.checked {
        let _ = writeln!(out, "  checked  {}: {}", c.what, c.outcome);
    }
    for p in &r.pins {
        let _ = writeln!(
            out,
            "  {}  {}  expected {}",
            if p.matched {
                "pin-matched"
            } else {
                "digest-mismatch"
            },
            escape(&p.pin.source),
            p.pin.expected
        );
    }
    for problem in &r.problems {
        let _ = writeln!(out, "  problem: {problem}");
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {}: {}", w.code, w.message);
    }
    out.push_str(&next_steps(r));
    out
}

fn signature_line(s: &SignatureCheck) -> String {
    let issuer = match (&s.issuer, s.issuer_is_fingerprint) {
        (Some(i), true) => i.clone(),
        (Some(i), false) => format!("{i} (key ID only)"),
        (None, _) => "-".into(),
    };
    let cert = match (&s.certificate, &s.user_id) {
        (Some(f), Some(uid)) => format!("{} ({})", f.to_hex(), escape(uid)),
        (Some(f), None) => f.to_hex(),
        (None, _) => "-".into(),
    };
    let created = s.created.map(time).unwrap_or_else(|| "-".into());
    format!(
        "{}  issuer {issuer}  certificate {cert}  created {created}  hash {}",
        s.status.code(),
        s.hash_algorithm
    )
}

/// What the operator should do now.
fn next_steps(r: &Report) -> String {
    let mut out = String::new();
    let bundle = escape_os(r.subject.bundle.as_os_str());
    let vendor = r.subject.vendor.as_deref().unwrap_or("VENDOR");
    match r.verdict {
        Verdict::Verified => {
            let _ = writeln!(out, "next: {}", verified_advice(r, &bundle));
        }
        Verdict::UnexpectedSigner => {
            let unpinned: Vec<&SignatureCheck> = r
                .signatures
                .iter()
                .filter(|s| s.status == Status::UnpinnedSigner)
                .collect();
            let _ = writeln!(
                out,
                "checked against the pinned certificates of {}",
                r.subject
                    .vendor
                    .as_deref()
                    .map(|v| format!("vendor {v:?}"))
                    .unwrap_or_else(|| "the --keyring given (no vendor)".into())
            );
            for s in unpinned {
                if let Some(i) = &s.issuer {
                    let kind = if s.issuer_is_fingerprint {
                        "fingerprint"
                    } else {
                        "key ID (the signature names no fingerprint)"
                    };
                    let _ = writeln!(out, "unpinned signer {kind}: {i}");
                    let _ = writeln!(out, "  read aloud: {}", group4(i));
                }
            }
            let contact = match &r.subject.contact {
                Some(c) => format!("the vendor contact ({})", escape(c)),
                None => "the vendor contact in feeds.toml".into(),
            };
            let _ = writeln!(
                out,
                "next: do not install yet. 1. Compare the fingerprint above with one the vendor publishes out of band \
                 (security advisory page, WKD, or a call to {contact}). \
                 2. Get the certificate and inspect it: `vendorguard keys show CERT.asc`. \
                 3. If genuine, pin it: copy CERT.asc into keyring/{vendor}/ and run `vendorguard verify {bundle}` again."
            );
        }
        Verdict::Rejected => {
            let advice = if r.codes.contains(&"rollback") {
                "do not install: this release is older than the one installed (both versions named above), and going back can bring back vulnerabilities the newer one fixed. If you mean to go back, run again with --allow-downgrade; the history records that you did."
            } else if r.codes.contains(&"version-reused") {
                "do not install: the vendor shipped different bytes under the version already installed (both SHA-256 named above). Ask the vendor which bundle is genuine; if this one is, run again with --allow-downgrade; the history records that you did."
            } else if r.codes.contains(&"expired-metadata") {
                "do not use: the signed metadata is past its Valid-Until, so it may be an old copy replayed to hide newer releases (a freeze). Fetch a fresh copy from the mirror; if it stays stale, the mirror is out of date or under attack."
            } else if r.codes.contains(&"future-metadata") {
                "do not use: the signed metadata is dated in the future beyond the allowed clock skew. Check this machine's clock first; if it is right, the metadata was made to outlive its validity."
            } else if r.codes.iter().any(|c| {
                matches!(
                    *c,
                    "not-in-index" | "index-mismatch" | "malformed-index" | "malformed-release"
                )
            }) {
                "do not install: the repository's files do not vouch for this package (named above). Fetch the release file, the index and the package again from the same repository, at the same time, and verify again; if it still fails, tell the vendor."
            } else if r.codes.contains(&"unsigned-content") {
                "do not install: the file carries bytes that no signature covers (named above), and a signed file must be signed throughout. Download it again from the vendor's official site and verify again; if it still fails, tell the vendor and your security team."
            } else if r.codes.contains(&"malformed-package") {
                "do not install: the package is damaged or truncated (named above) and could not be read as one. Download it again from the vendor's official site and verify again; if it still fails, tell the vendor and your security team."
            } else if r.codes.contains(&"digest-mismatch") || r.codes.contains(&"bad-signature") {
                "do not install: the bytes are not the ones the vendor signed or pinned. Download the bundle again from the vendor's official site and verify again; if it still fails, tell the vendor and your security team."
            } else if r
                .codes
                .iter()
                .any(|c| matches!(*c, "key-revoked" | "key-expired" | "key-invalid"))
            {
                "do not install: the vendor key that signed was not valid for that signature. Ask the vendor for a bundle signed with their current key, and check `vendorguard keys check`."
            } else if r.subject.source_kind == "rpm" && r.codes.contains(&"no-signature") {
                "do not install: the package is not signed. Ask the vendor for the signed package (`rpmsign --addsign` with their key), or verify a signature they publish beside it with --signature."
            } else if r.codes.contains(&"no-signature") || r.codes.contains(&"not-in-manifest") {
                "do not install: nothing signs this bundle. Download the vendor's signature (BUNDLE.asc or a signed SHA256SUMS) and verify again, or pass it with --signature."
            } else if r.codes.contains(&"below-threshold") {
                "do not install: fewer distinct pinned certificates signed than required; wait for the other signers or check --signatures."
            } else {
                "do not install: the signature could not be accepted. Get a fresh signature file from the vendor and verify again."
            };
            match &r.subject.contact {
                Some(c) => {
                    let _ = writeln!(out, "next: {advice} The vendor contact: {}.", escape(c));
                }
                None => {
                    let _ = writeln!(out, "next: {advice}");
                }
            }
        }
    }
    out
}

/// What to do with what verified, which depends on what it was: an inline-signed file
/// is used for its signed text, a manifest vouches for the bundle through its line, and
/// only an archive is for `unpack`.
fn verified_advice(r: &Report, bundle: &str) -> String {
    const AGAIN: &str = "a copy fetched again is a different file and needs its own check";
    match r.subject.source_kind {
        "inline" => format!(
            "the signed text in {bundle} is the vendor's (an apt InRelease, a cleartext-signed file or an inline-signed message): use the text from this same file; for an InRelease, the files it lists are trusted only through the checksums it gives for them ({AGAIN})"
        ),
        "release" => format!(
            "{bundle} matches its stanza in the index, the index matches the signed release, and the release's signature is the vendor's; {} ({AGAIN})",
            archive_step(bundle)
        ),
        "rpm" => format!(
            "the package's header and payload are the vendor's and match every pin; install this same file, or look inside it with `vendorguard inspect {bundle}` ({AGAIN})"
        ),
        "manifest" => format!(
            "{bundle} matches its line in the signed checksum manifest, and the manifest's signature is the vendor's; {} ({AGAIN})",
            archive_step(bundle)
        ),
        _ => format!(
            "the bytes are the vendor's and match every pin; {} ({AGAIN})",
            archive_step(bundle)
        ),
    }
}

/// The next step for a verified file: `unpack` for an archive, else use it as it is.
fn archive_step(bundle: &str) -> String {
    const ARCHIVES: [&str; 9] = [
        ".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".deb",
    ];
    if ARCHIVES
        .iter()
        .any(|e| bundle.to_ascii_lowercase().ends_with(e))
    {
        format!("extract this same file with `vendorguard unpack {bundle} --into DIR`")
    } else {
        "use this same file now".into()
    }
}

/// The JSON object of the contract.
pub fn render_json(r: &Report) -> Value {
    json!({
        "verdict": r.verdict.code(),
        "codes": r.codes,
        "bundle": {
            "path": escape_os(r.subject.bundle.as_os_str()),
            "size": r.subject.size,
            "sha256": r.subject.sha256,
        },
        "vendor": r.subject.vendor,
        "contact": r.subject.contact,
        "threshold": r.subject.threshold,
        "source": {
            "kind": r.subject.source_kind,
            "path": r.subject.source_path.as_ref().map(|p| escape_os(p.as_os_str())),
        },
        "signatures": r.signatures.iter().map(|s| json!({
            "status": s.status.code(),
            "issuer": s.issuer,
            "issuer_is_fingerprint": s.issuer_is_fingerprint,
            "certificate": s.certificate.as_ref().map(|f| f.to_hex()),
            "user_id": s.user_id.as_deref().map(escape),
            "signing_key": s.signing_key.as_ref().map(|f| f.to_hex()),
            "created": s.created.map(time),
            "hash_algorithm": s.hash_algorithm.to_string(),
            "detail": s.detail,
        })).collect::<Vec<_>>(),
        "pins": r.pins.iter().map(|p| json!({
            "source": p.pin.source,
            "expected": p.pin.expected,
            "matched": p.matched,
        })).collect::<Vec<_>>(),
        "checked": r.checked.iter().map(|c| json!({"what": c.what, "outcome": c.outcome})).collect::<Vec<_>>(),
        "good_certificates": r.good_certificates.iter().map(|f| f.to_hex()).collect::<Vec<_>>(),
        "warnings": r.warnings.iter().map(|w| json!({"code": w.code, "message": w.message})).collect::<Vec<_>>(),
        "problems": r.problems,
    })
}

/// The JSON object printed when a bundle could not be checked at all.
pub fn render_error_json(message: &str) -> Value {
    json!({
        "verdict": "error",
        "codes": ["could-not-check"],
        "error": message,
    })
}
