#!/usr/bin/env python3
"""Benchmark: `vendorguard verify` on a signed .rpm against the anchor, `rpmkeys
--checksig` (header signature, header digests and payload digest), in one run.

Builds a noarch package holding one file of random bytes (200 MiB by default) with
rpmbuild, signs it with rpmsign and a GnuPG Ed25519 key in a private home, imports the
key into a temporary rpm database, and times medians of several runs of both tools.
Prints times, peak RSS and the ratio. Every number comes from this run.

    python3 bench/rpm.py [--size-mib 200] [--runs 5]

Needs rpmbuild, rpmsign and rpmkeys (Debian's `rpm` package) and a release build
(this script runs `cargo build --release`).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from benchlib import fingerprint, gpg, median_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SPEC = """Name: bench
Version: 1.0
Release: 1
Summary: benchmark payload
License: MIT
BuildArch: noarch
%description
benchmark payload
%install
mkdir -p %{buildroot}/opt/bench
cp SOURCE %{buildroot}/opt/bench/blob
%files
/opt/bench/blob
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    for tool in ("rpmbuild", "rpmsign", "rpmkeys", "gpg"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install rpm gnupg)")

    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "vendorguard"],
                   cwd=ROOT, check=True)
    vg = os.path.join(ROOT, "target/release/vendorguard")

    work = tempfile.mkdtemp(prefix="vg-bench-rpm-")
    try:
        home = os.path.join(work, "gnupg")
        os.mkdir(home, 0o700)
        gpg(home, "--quick-generate-key", "Bench <bench@example.invalid>", "ed25519", "sign", "0")
        fpr = fingerprint(home, "Bench")
        key = os.path.join(work, "bench.asc")
        with open(key, "wb") as f:
            f.write(subprocess.run(["gpg", "--homedir", home, "--armor", "--export", fpr],
                                   check=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL).stdout)

        top = os.path.join(work, "top")
        os.makedirs(os.path.join(top, "SPECS"))
        source = os.path.join(work, "blob")
        with open(source, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        spec = os.path.join(top, "SPECS", "bench.spec")
        with open(spec, "w") as f:
            f.write(SPEC.replace("SOURCE", source))
        # Level-1 gzip: the payload is random, so compressing harder only slows the build.
        subprocess.run(["rpmbuild", "--quiet", "--define", f"_topdir {top}",
                        "--define", "_binary_payload w1.gzdio", "-bb", spec], check=True)
        pkg = os.path.join(work, "bench.rpm")
        shutil.copy(os.path.join(top, "RPMS", "noarch", "bench-1.0-1.noarch.rpm"), pkg)
        os.unlink(source)
        shutil.rmtree(top)
        subprocess.run(["rpmsign", "--define", f"_gpg_name {fpr}", "--define", f"_gpg_path {home}",
                        "--define", f"__gpg {shutil.which('gpg')}", "--addsign", pkg],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        db = os.path.join(work, "rpmdb")
        os.mkdir(db)
        subprocess.run(["rpmkeys", "--dbpath", db, "--import", key], check=True)
        size = os.path.getsize(pkg) / (1 << 20)

        t_rpm, rss_rpm = median_of(args.runs, [["rpmkeys", "--dbpath", db, "--checksig", pkg]])
        t_vg, rss_vg = median_of(args.runs, [[vg, "verify", "--keyring", key, pkg]])
        print(f"signed package: {size:.1f} MiB, medians of {args.runs}")
        print(f"  {'rpmkeys --checksig':<34} {t_rpm:8.3f} s   peak RSS {rss_rpm:8.1f} MiB")
        print(f"  {'vendorguard verify':<34} {t_vg:8.3f} s   peak RSS {rss_vg:8.1f} MiB")
        print(f"\nratio vendorguard / rpmkeys: {t_vg / t_rpm:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
