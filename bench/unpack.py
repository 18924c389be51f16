#!/usr/bin/env python3
"""Benchmark: `vendorguard unpack` against `unzip` and `tar`, in one run.

Makes a bundle of many files (1 GiB expanded by default) as a zip and as a tar.gz,
signs both with GnuPG, and times medians of several runs of: `unzip` alone, `tar xzf`
alone, what users do today (`gpgv` and `sha256sum -c` and then `unzip`/`tar`), and
`vendorguard unpack` (verify with a SHA-256 pin, private copy, safe extraction, inspect
summary). Prints times, peak RSS and the ratios the unpack issue sets as targets.

    python3 bench/unpack.py [--size-mib 1024] [--runs 3]
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile

from benchlib import fingerprint, gpg, median_of, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_tree(top, size_mib):
    """Many files of text-like, compressible content (about 3:1), like a software bundle."""
    rng = random.Random(7)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
             for _ in range(4096)]
    file_size = 256 * 1024
    block = b" ".join(rng.choice(words) for _ in range(200_000))[: 4 << 20]
    count = size_mib * (1 << 20) // file_size
    for i in range(count):
        d = os.path.join(top, f"pkg/module{i // 64:03d}")
        os.makedirs(d, exist_ok=True)
        off = (i * 7919) % (len(block) - file_size)
        with open(os.path.join(d, f"file{i:05d}.dat"), "wb") as f:
            f.write(block[off:off + file_size])
    os.makedirs(os.path.join(top, "pkg/etc/cron.d"), exist_ok=True)
    with open(os.path.join(top, "pkg/etc/cron.d/job"), "w") as f:
        f.write("0 3 * * * root /opt/pkg/bin/import --from sftp://old.example/x\n")
    return count + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for tool in ("unzip", "zip", "tar", "gpgv", "sha256sum"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed for this benchmark (apt-get install {tool})")

    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "vendorguard"], cwd=ROOT, check=True)
    vg = os.path.join(ROOT, "target/release/vendorguard")

    work = tempfile.mkdtemp(prefix="vg-unpack-bench-")
    try:
        src = os.path.join(work, "src")
        print(f"making {args.size_mib} MiB of files in {work} ...", flush=True)
        n = make_tree(src, args.size_mib)
        zip_path = os.path.join(work, "bundle.zip")
        tgz_path = os.path.join(work, "bundle.tar.gz")
        subprocess.run(["zip", "-q", "-r", "-1", zip_path, "pkg"], cwd=src, check=True)
        subprocess.run(f"tar -cf - pkg | gzip -1 > {tgz_path}", shell=True, cwd=src, check=True)
        shutil.rmtree(src)

        home = os.path.join(work, "gnupg")
        os.mkdir(home, 0o700)
        gpg(home, "--quick-generate-key", "Bench <b@bench.example>", "ed25519", "sign", "0")
        fpr = fingerprint(home, "b@bench.example")
        ring = os.path.join(work, "ring.gpg")
        with open(ring, "wb") as f:
            f.write(subprocess.run(["gpg", "--homedir", home, "--export", fpr], check=True,
                                   stdout=subprocess.PIPE).stdout)
        sums = {}
        for b in (zip_path, tgz_path):
            gpg(home, "--local-user", fpr + "!", "--output", b + ".sig", "--detach-sign", b)
            sums[b] = subprocess.run(["sha256sum", b], check=True, stdout=subprocess.PIPE,
                                     text=True).stdout.split()[0]
            with open(b + ".sha256", "w") as f:
                f.write(f"{sums[b]}  {b}\n")
            subprocess.run(["cat", b], stdout=subprocess.DEVNULL, check=True)

        out = os.path.join(work, "out")

        def clean():
            if os.path.exists(out):
                shutil.rmtree(out)

        results = {}

        def bench(name, cmds, mkdir=False):
            def before():
                clean()
                if mkdir:
                    os.mkdir(out)
            t, rss = median_of(args.runs, cmds, before)
            results[name] = (t, rss)
            print(f"  {name:<40} {t:8.3f} s   peak RSS {rss:7.1f} MiB", flush=True)

        zsize = os.path.getsize(zip_path) >> 20
        tsize = os.path.getsize(tgz_path) >> 20
        print(f"\nmedian of {args.runs} runs; {n} files, {args.size_mib} MiB expanded; zip {zsize} MiB, tar.gz {tsize} MiB")
        bench("unzip alone", [["unzip", "-q", zip_path, "-d", out]], mkdir=True)
        bench("gpgv + sha256sum -c + unzip", [["gpgv", "--keyring", ring, zip_path + ".sig", zip_path],
                                               ["sha256sum", "-c", "--quiet", zip_path + ".sha256"],
                                               ["unzip", "-q", zip_path, "-d", out]], mkdir=True)
        bench("vendorguard unpack (zip)", [[vg, "unpack", "--keyring", ring, "--signature", zip_path + ".sig",
                                            "--sha256", sums[zip_path], zip_path, "--into", out]])
        bench("tar xzf alone", [["tar", "-xzf", tgz_path, "-C", out]], mkdir=True)
        bench("gpgv + sha256sum -c + tar xzf", [["gpgv", "--keyring", ring, tgz_path + ".sig", tgz_path],
                                                 ["sha256sum", "-c", "--quiet", tgz_path + ".sha256"],
                                                 ["tar", "-xzf", tgz_path, "-C", out]], mkdir=True)
        bench("vendorguard unpack (tar.gz)", [[vg, "unpack", "--keyring", ring, "--signature", tgz_path + ".sig",
                                               "--sha256", sums[tgz_path], tgz_path, "--into", out]])
        clean()

        def t(name):
            return results[name][0]

        failed = report([
            ("unpack zip / unzip alone", t("vendorguard unpack (zip)") / t("unzip alone"), "<=", 1.2),
            ("unpack tar.gz / tar xzf alone (information)", t("vendorguard unpack (tar.gz)") / t("tar xzf alone"), ">=", 0.0),
            ("(gpgv + sha256sum + unzip) / unpack zip", t("gpgv + sha256sum -c + unzip") / t("vendorguard unpack (zip)"), ">=", 1.0),
            ("unpack zip peak RSS MiB", results["vendorguard unpack (zip)"][1], "<=", 64.0),
            ("unpack tar.gz peak RSS MiB", results["vendorguard unpack (tar.gz)"][1], "<=", 64.0),
        ])
        sys.exit(1 if failed else 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
