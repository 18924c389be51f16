//! Build script: records the git commit a binary was built from, for `--version`.
//!
//! From a checkout (and with git on PATH) the version reads `0.1.0 (commit abcdef123456)`;
//! from a source tarball or crates.io, where there is no repository, it is the bare
//! package version. Cargo reruns this only when the checked-out commit can have
//! changed: `HEAD`, the branch folder and `packed-refs`, never on every build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut suffix = String::new();
    // Only a repository whose top is this package counts: a tarball unpacked inside
    // some other checkout must not report that checkout's commit.
    let top = git(&manifest, &["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    let ours = match (&top, manifest.canonicalize()) {
        (Some(t), Ok(m)) => t.canonicalize().map(|t| t == m).unwrap_or(false),
        _ => false,
    };
    if ours {
        if let Some(commit) = git(&manifest, &["rev-parse", "--short=12", "HEAD"]) {
            suffix = format!(" (commit {commit})");
        }
        for p in ["HEAD", "packed-refs", "refs/heads"] {
            if let Some(path) = git(&manifest, &["rev-parse", "--git-path", p]) {
                let path = manifest.join(path);
                // A path that does not exist would make cargo rerun this every build.
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
    }
    println!("cargo:rustc-env=VENDORGUARD_VERSION_SUFFIX={suffix}");
}
