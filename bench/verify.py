#!/usr/bin/env python3
"""Benchmark: `vendorguard verify` against the tools people use today, in one run.

Makes a bundle (1 GiB by default), signs it with GnuPG twice (an Ed25519 key with
SHA-256 and an RSA-3072 key with SHA-512), and times medians of several runs of:
vendorguard verify (with a SHA-256 pin), sha256sum, gpgv, gpgv followed by
`sha256sum -c` (what users do today), sqv when installed, and a raw sha2 pass over
the same file (the hardware limit). Prints times, peak RSS and the ratios the
verifier issue sets as targets. Every number comes from this run.

    python3 bench/verify.py [--size-mib 1024] [--runs 5]

Needs a release build: `cargo build --release --example raw-sha` (this script runs it).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from benchlib import fingerprint, gpg, median_of, report, run_measured

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "vendorguard",
                    "--example", "raw-sha"], cwd=ROOT, check=True)
    vg = os.path.join(ROOT, "target/release/vendorguard")
    raw = os.path.join(ROOT, "target/release/examples/raw-sha")

    work = tempfile.mkdtemp(prefix="vg-bench-")
    try:
        home = os.path.join(work, "gnupg")
        os.mkdir(home, 0o700)
        bundle = os.path.join(work, "bundle.bin")
        print(f"making a {args.size_mib} MiB bundle in {work} ...", flush=True)
        with open(bundle, "wb") as f:
            block = os.urandom(16 << 20)
            for i in range(args.size_mib // 16):
                f.write(block[i % 7:] + block[:i % 7])
        small = os.path.join(work, "small.txt")
        with open(small, "wb") as f:
            f.write(b"a small release note\n" * 50)

        gpg(home, "--quick-generate-key", "Bench Ed25519 <ed@bench.example>", "ed25519", "sign", "0")
        gpg(home, "--quick-generate-key", "Bench RSA <rsa@bench.example>", "rsa3072", "sign", "0")
        ed = fingerprint(home, "ed@bench.example")
        rsa = fingerprint(home, "rsa@bench.example")
        ring = os.path.join(work, "ring.gpg")
        with open(ring, "wb") as f:
            f.write(subprocess.run(["gpg", "--homedir", home, "--export", ed, rsa], check=True,
                                   stdout=subprocess.PIPE).stdout)
        sig256 = bundle + ".ed25519-sha256.sig"
        sig512 = bundle + ".rsa3072-sha512.sig"
        gpg(home, "--digest-algo", "SHA256", "--local-user", ed + "!", "--output", sig256,
            "--detach-sign", bundle)
        gpg(home, "--digest-algo", "SHA512", "--local-user", rsa + "!", "--output", sig512,
            "--detach-sign", bundle)
        small_sig = small + ".sig"
        gpg(home, "--digest-algo", "SHA256", "--local-user", ed + "!", "--output", small_sig,
            "--detach-sign", small)
        sha = subprocess.run(["sha256sum", bundle], check=True, stdout=subprocess.PIPE,
                             text=True).stdout.split()[0]
        sums = os.path.join(work, "SHA256SUMS")
        with open(sums, "w") as f:
            f.write(f"{sha}  {bundle}\n")

        # Warm the page cache so every tool reads from memory.
        run_measured(["cat", bundle])

        sqv = shutil.which("sqv")
        results = {}
        R = args.runs

        def bench(name, cmds):
            t, rss = median_of(R, cmds)
            results[name] = (t, rss)
            print(f"  {name:<34} {t:8.3f} s   peak RSS {rss:7.1f} MiB", flush=True)

        print(f"\nmedian of {R} runs, {args.size_mib} MiB bundle, `nproc` = {os.cpu_count()}")
        bench("raw sha2 SHA-256 pass", [[raw, "sha256", bundle]])
        bench("raw sha2 SHA-512 pass", [[raw, "sha512", bundle]])
        bench("sha256sum", [["sha256sum", bundle]])
        bench("vendorguard verify (SHA-256 sig)", [[vg, "verify", "--keyring", ring, "--signature",
                                                    sig256, "--sha256", sha, bundle]])
        bench("vendorguard verify (SHA-512 sig)", [[vg, "verify", "--keyring", ring, "--signature",
                                                    sig512, "--sha256", sha, bundle]])
        bench("gpgv (SHA-256 sig)", [["gpgv", "--keyring", ring, sig256, bundle]])
        bench("gpgv (SHA-512 sig)", [["gpgv", "--keyring", ring, sig512, bundle]])
        bench("gpgv + sha256sum -c (SHA-256)", [["gpgv", "--keyring", ring, sig256, bundle],
                                                ["sha256sum", "-c", sums]])
        bench("gpgv + sha256sum -c (SHA-512)", [["gpgv", "--keyring", ring, sig512, bundle],
                                                ["sha256sum", "-c", sums]])
        if sqv:
            bench("sqv (SHA-256 sig)", [[sqv, "--keyring", ring, sig256, bundle]])
            bench("sqv (SHA-512 sig)", [[sqv, "--keyring", ring, sig512, bundle]])
        else:
            print("  sqv                                not installed: not measured")
        small_runs = max(R, 20)
        t_vg_small, _ = median_of(small_runs, [[vg, "verify", "--keyring", ring, "--signature",
                                                small_sig, small]])
        t_gpgv_small, _ = median_of(small_runs, [["gpgv", "--keyring", ring, small_sig, small]])
        print(f"  {'vendorguard verify (1 KiB file)':<34} {t_vg_small*1000:8.1f} ms")
        print(f"  {'gpgv (1 KiB file)':<34} {t_gpgv_small*1000:8.1f} ms")

        def t(name):
            return results[name][0]

        checks = [
            ("verify SHA-256 sig / raw SHA-256", t("vendorguard verify (SHA-256 sig)") / t("raw sha2 SHA-256 pass"), "<=", 1.10),
            ("verify SHA-512 sig / slower raw pass", t("vendorguard verify (SHA-512 sig)") / max(t("raw sha2 SHA-256 pass"), t("raw sha2 SHA-512 pass")), "<=", 1.15),
            ("(gpgv + sha256sum -c) / verify, SHA-256", t("gpgv + sha256sum -c (SHA-256)") / t("vendorguard verify (SHA-256 sig)"), ">=", 5.0),
            ("(gpgv + sha256sum -c) / verify, SHA-512", t("gpgv + sha256sum -c (SHA-512)") / t("vendorguard verify (SHA-512 sig)"), ">=", 3.0),
            ("verify small / gpgv small", t_vg_small / t_gpgv_small, "<=", 2.0),
            ("verify peak RSS MiB (SHA-256 sig)", results["vendorguard verify (SHA-256 sig)"][1], "<=", 32.0),
            ("verify peak RSS MiB (SHA-512 sig)", results["vendorguard verify (SHA-512 sig)"][1], "<=", 32.0),
        ]
        if sqv:
            checks.append(("sqv / verify, SHA-256 (information)", t("sqv (SHA-256 sig)") / t("vendorguard verify (SHA-256 sig)"), ">=", 0.0))
            checks.append(("sqv peak RSS MiB (information)", results["sqv (SHA-256 sig)"][1], ">=", 0.0))
        failed = report(checks)
        sys.exit(1 if failed else 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
