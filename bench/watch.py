#!/usr/bin/env python3
"""Benchmark: `vendorguard watch --once` over 1,000 feeds served by nginx.

Builds 1,000 feeds of 50 entries each (RSS shaped like Amazon's ALAS bulletins and
Atom shaped like vendor advisories, about 28 MB in all), serves them with nginx on
127.0.0.1 to 127.0.0.4 (250 feeds each, so the 2-per-host limit still allows 8 in
flight), and times, in the same run, medians of several runs of: the first pass
(parse and store 50,000 entries), a pass where every feed answers 304, a pass where
10 feeds changed, and the floor: curl fetching the same 1,000 URLs with
`--parallel --parallel-max 8`. Prints times, peak RSS and the ratios, for a SQLite
state and for a PostgreSQL one (a private server started here, on 127.0.0.1).

    python3 bench/watch.py [--runs 5] [--backend sqlite|postgres|both]

Needs nginx (Debian: nginx-light) and curl; for PostgreSQL, Debian's postgresql.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from benchlib import Postgres, median_of, nginx_static_conf, report, run_measured

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEEDS = 1000
ENTRIES = 50
HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]


def rss_feed(n, extra=0):
    items = []
    for i in range(ENTRIES + extra):
        k = n * 1000 + i + extra * 100000
        items.append(
            f"""    <item>
        <title>ALAS-2026-{k:06d} (important): package-{n}-{i}</title>
        <description>
            CVE-2026-{k % 99999:05d}, CVE-2026-{(k * 7) % 99999:05d}: An update for package-{n}-{i} is available.
            A flaw was found in the way the package handled crafted input; an attacker could use it to crash
            the service or run code. Customers are advised to run yum update package-{n}-{i} to update.
        </description>
        <pubDate>Tue, 26 Oct 2026 02:25:00 GMT</pubDate>
        <link>https://alas.example/AL2026/ALAS-2026-{k:06d}.html</link>
        <guid isPermaLink="true">https://alas.example/AL2026/ALAS-2026-{k:06d}.html</guid>
    </item>""")
    return ('<?xml version="1.0" encoding="UTF-8" ?>\n<rss version="2.0"><channel>\n'
            f'<title>Vendor {n} Security Bulletins</title><link>https://alas.example</link>\n'
            + "\n".join(items) + "\n</channel></rss>\n")


def atom_feed(n, extra=0):
    entries = []
    for i in range(ENTRIES + extra):
        k = n * 1000 + i + extra * 100000
        entries.append(
            f"""  <entry>
    <id>urn:uuid:vendor-{n}-advisory-{k}</id>
    <title>Security advisory VSA-{k}: update for component {i}</title>
    <updated>2026-10-26T02:25:00Z</updated>
    <link href="https://vendor{n}.example/security/VSA-{k}"/>
    <summary>Component {i} of vendor {n} allows remote attackers to bypass authentication via a crafted
    request. Fixed in version {i}.2.3; upgrade during the next maintenance window.</summary>
  </entry>""")
    return ('<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n'
            f'  <title>Vendor {n} advisories</title><id>urn:vendor-{n}</id><updated>2026-10-26T02:25:00Z</updated>\n'
            + "\n".join(entries) + "\n</feed>\n")


def write_feed(root, n, extra=0):
    name = f"f{n:04d}.xml"
    with open(os.path.join(root, name), "w") as f:
        f.write(rss_feed(n, extra) if n % 2 == 0 else atom_feed(n, extra))
    return name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = ap.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        sys.exit("nginx is needed (apt-get install nginx-light)")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "vendorguard"], cwd=ROOT, check=True)
    vg = os.path.join(ROOT, "target/release/vendorguard")

    work = tempfile.mkdtemp(prefix="vg-watch-bench-")
    os.chmod(work, 0o755)  # nginx's workers run as another user
    nginx_started = False
    pg = None
    try:
        www = os.path.join(work, "www")
        os.makedirs(www)
        names = [write_feed(www, n) for n in range(FEEDS)]
        total = sum(os.path.getsize(os.path.join(www, n)) for n in names)
        port = 18080 + os.getpid() % 1000
        conf = nginx_static_conf(work, "application/rss+xml xml;", [f"{h}:{port}" for h in HOSTS],
                                 www, 10000)
        subprocess.run([nginx, "-c", conf, "-p", work, "-e", os.path.join(work, "error.log")], check=True)
        nginx_started = True
        urls = [f"http://{HOSTS[i % 4]}:{port}/{name}" for i, name in enumerate(names)]

        def config(path, state):
            with open(path, "w") as f:
                f.write(f'[watch]\nstate = "{state}"\nconcurrency = 8\nper_host = 2\ntimeout = "30s"\n\n')
                for v in range(10):
                    f.write(f'[[vendor]]\nname = "vendor{v}"\n')
                    for u in urls[v * 100:(v + 1) * 100]:
                        f.write(f'[[vendor.feed]]\nurl = "{u}"\n')

        curl_cfg = os.path.join(work, "curl.cfg")
        with open(curl_cfg, "w") as f:
            for u in urls:
                f.write(f'url = "{u}"\noutput = "/dev/null"\n')

        print(f"\n{FEEDS} feeds x {ENTRIES} entries, {total / 1e6:.1f} MB, nginx on {len(HOSTS)} loopback addresses; median of {args.runs} runs")
        t_floor, _ = median_of(args.runs, [["curl", "-s", "--parallel", "--parallel-max", "8", "-K", curl_cfg]])
        print(f"  {'floor: curl --parallel-max 8':<34} {t_floor:8.3f} s")
        checks = []
        for backend in backends:
            cfg = os.path.join(work, f"feeds-{backend}.toml")
            state_dir = os.path.join(work, "state")
            snapshot = os.path.join(work, "snapshot")
            if backend == "sqlite":
                config(cfg, "state/vg.sqlite")

                def reset_state():
                    shutil.rmtree(state_dir, ignore_errors=True)

                def take_snapshot():
                    shutil.copytree(state_dir, snapshot)

                def restore_snapshot():
                    shutil.rmtree(state_dir, ignore_errors=True)
                    shutil.copytree(snapshot, state_dir)
            else:
                pg = pg or Postgres(work)
                config(cfg, pg.url("vg"))
                pg.sql("CREATE DATABASE vg")

                def reset_state():
                    pg.sql("DROP DATABASE IF EXISTS vg")
                    pg.sql("CREATE DATABASE vg")

                def take_snapshot():
                    pg.sql("CREATE DATABASE snap TEMPLATE vg")

                def restore_snapshot():
                    pg.sql("DROP DATABASE IF EXISTS vg")
                    pg.sql("CREATE DATABASE vg TEMPLATE snap")

            watch = [vg, "--config", cfg, "-q", "watch", "--once"]
            results = {}

            def bench(name, before):
                t, rss = median_of(args.runs, [watch], before)
                results[name] = (t, rss)
                print(f"  {backend + ': ' + name:<44} {t:8.3f} s   peak RSS {rss:7.1f} MiB", flush=True)

            bench("first pass (50,000 entries)", reset_state)
            # The state after one first pass is the starting point of the next two.
            reset_state()
            run_measured(watch)
            take_snapshot()
            bench("unchanged pass (all 304)", restore_snapshot)
            counter = [0]

            def ten_changed():
                restore_snapshot()
                counter[0] += 1
                for n in range(10):
                    write_feed(www, n * 97, extra=counter[0])

            bench("pass with 10 feeds changed", ten_changed)
            # The feeds changed by that pass are restored for the next backend.
            for n in range(10):
                write_feed(www, n * 97)

            def t(name):
                return results[name][0]

            # The budgets are SQLite's; PostgreSQL's ratios are reported (no budget was
            # set for a database over a socket).
            budget = backend == "sqlite"
            checks += [
                (f"{backend}: unchanged pass / floor" + ("" if budget else " (information)"),
                 t("unchanged pass (all 304)") / t_floor, *(("<=", 2.0) if budget else (">=", 0.0))),
                (f"{backend}: first pass / floor" + ("" if budget else " (information)"),
                 t("first pass (50,000 entries)") / t_floor, *(("<=", 12.0) if budget else (">=", 0.0))),
                (f"{backend}: 10-changed pass / floor (information)", t("pass with 10 feeds changed") / t_floor,
                 ">=", 0.0),
                (f"{backend}: peak RSS MiB (first pass)", results["first pass (50,000 entries)"][1], "<=", 128.0),
            ]
        failed = report(checks)
        sys.exit(1 if failed else 0)
    finally:
        if pg:
            pg.stop()
        if nginx_started:
            subprocess.run([nginx, "-c", conf, "-p", work, "-s", "quit"], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
