#!/usr/bin/env python3
"""Benchmark: `vendorguard verify` of a .deb through its apt repository, against
`sha256sum` of the same file (the floor apt itself pays: it hashes every package it
downloads against the index).

Builds a package of about 200 MiB with `dpkg-deb` (payload uncompressed, so the file is
that large), a repository with `dpkg-scanpackages`, `Packages.gz`, and an `InRelease`
clearsigned with GnuPG (Ed25519), then times medians of several runs of:
sha256sum PKG.deb; vendorguard verify PKG.deb --release InRelease --index Packages.gz;
and vendorguard verify of the same package carrying a debsigs `_gpgorigin` member
(signature over the member data, hashed in the same read as the file's SHA-256).
Prints times, peak RSS and the ratios. Every number comes from this run.

    python3 bench/deb.py [--size-mib 200] [--runs 5]

Needs dpkg-dev (dpkg-deb, dpkg-scanpackages), gzip and GnuPG.
"""
import argparse
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

from benchlib import fingerprint, gpg, median_of, report, run_measured

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ar_members(data):
    """(name, data) of each member of an ar archive."""
    assert data.startswith(b"!<arch>\n")
    at, out = 8, []
    while at + 60 <= len(data):
        h = data[at:at + 60]
        name = h[:16].decode().rstrip().rstrip("/")
        size = int(h[48:58].decode().strip())
        out.append((name, data[at + 60:at + 60 + size]))
        at += 60 + size + size % 2
    return out


def ar_member(name, data):
    h = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
    return h + data + (b"\n" if len(data) % 2 else b"")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    for tool in ("dpkg-deb", "dpkg-scanpackages", "gpg", "sha256sum"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (Debian: apt-get install dpkg-dev gnupg)")

    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "vendorguard"], cwd=ROOT,
                   check=True)
    vg = os.path.join(ROOT, "target/release/vendorguard")

    work = tempfile.mkdtemp(prefix="vg-bench-deb-")
    try:
        home = os.path.join(work, "gnupg")
        os.mkdir(home, 0o700)
        pkg = os.path.join(work, "pkg")
        os.makedirs(os.path.join(pkg, "DEBIAN"))
        os.makedirs(os.path.join(pkg, "opt/acme"))
        with open(os.path.join(pkg, "DEBIAN/control"), "w") as f:
            f.write("Package: acme-big\nVersion: 1.0\nArchitecture: all\n"
                    "Maintainer: Acme <ops@acme.example>\nDescription: a large package\n")
        print(f"making a {args.size_mib} MiB package in {work} ...", flush=True)
        with open(os.path.join(pkg, "opt/acme/payload.bin"), "wb") as f:
            block = os.urandom(16 << 20)
            for i in range(max(1, args.size_mib // 16)):
                f.write(block[i % 7:] + block[:i % 7])
        pool = os.path.join(work, "pool")
        os.mkdir(pool)
        deb = os.path.join(pool, "acme-big_1.0_all.deb")
        subprocess.run(["dpkg-deb", "-Znone", "--root-owner-group", "--build", pkg, deb],
                       check=True, stdout=subprocess.DEVNULL)
        packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "pool", "/dev/null"],
                                  cwd=work, check=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL).stdout
        with open(os.path.join(work, "Packages.gz"), "wb") as f:
            f.write(gzip.compress(packages, mtime=0))
        gz = open(os.path.join(work, "Packages.gz"), "rb").read()
        release = os.path.join(work, "Release")
        with open(release, "w") as f:
            f.write("Origin: Acme\nSuite: stable\nSHA256:\n"
                    f" {hashlib.sha256(gz).hexdigest()} {len(gz)} main/binary-all/Packages.gz\n")
        gpg(home, "--quick-generate-key", "Bench <b@bench.example>", "ed25519", "sign", "0")
        fpr = fingerprint(home, "b@bench.example")
        inrelease = os.path.join(work, "InRelease")
        gpg(home, "--digest-algo", "SHA256", "--local-user", fpr + "!", "--output", inrelease,
            "--clearsign", release)
        ring = os.path.join(work, "ring.gpg")
        with open(ring, "wb") as f:
            f.write(subprocess.run(["gpg", "--homedir", home, "--export", fpr], check=True,
                                   stdout=subprocess.PIPE).stdout)

        # The same package with a debsigs origin signature appended.
        data = open(deb, "rb").read()
        signed = os.path.join(work, "signed-members")
        with open(signed, "wb") as f:
            for _, d in ar_members(data)[:3]:
                f.write(d)
        sig = signed + ".sig"
        gpg(home, "--digest-algo", "SHA256", "--local-user", fpr + "!", "--output", sig,
            "--detach-sign", signed)
        origin_deb = os.path.join(work, "acme-big-origin.deb")
        with open(origin_deb, "wb") as f:
            f.write(data + ar_member("_gpgorigin", open(sig, "rb").read()))
        del data
        os.remove(signed)

        run_measured(["cat", deb])
        run_measured(["cat", origin_deb])
        R = args.runs
        results = {}

        def bench(name, cmd):
            t, rss = median_of(R, [cmd])
            results[name] = (t, rss)
            print(f"  {name:<40} {t:8.3f} s   peak RSS {rss:7.1f} MiB", flush=True)

        size = os.path.getsize(deb) / (1 << 20)
        print(f"\nmedian of {R} runs, {size:.0f} MiB .deb, `nproc` = {os.cpu_count()}")
        bench("sha256sum PKG.deb", ["sha256sum", deb])
        bench("verify --release --index Packages.gz", [vg, "verify", "--keyring", ring,
                                                       "--release", inrelease, "--index",
                                                       os.path.join(work, "Packages.gz"), deb])
        bench("verify (embedded _gpgorigin)", [vg, "verify", "--keyring", ring, origin_deb])

        def t(name):
            return results[name][0]

        failed = report([
            ("verify via repository / sha256sum", t("verify --release --index Packages.gz") / t("sha256sum PKG.deb"), "<=", 1.25),
            ("verify via _gpgorigin / sha256sum", t("verify (embedded _gpgorigin)") / t("sha256sum PKG.deb"), "<=", 1.5),
            ("verify via repository peak RSS MiB", results["verify --release --index Packages.gz"][1], "<=", 32.0),
        ])
        sys.exit(1 if failed else 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
