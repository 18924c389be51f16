#!/usr/bin/env python3
"""Benchmark: `vendorguard watch --once` over a CSAF provider of 2,000 signed advisories.

Builds a CSAF 2.0 provider (provider-metadata.json, one ROLIE feed, and per advisory
the document, its .sha256, .sha512 and a detached .asc made by GnuPG with an Ed25519
key: 8,002 files), caches it under the temp folder (signing takes a while; delete
`vg-csaf-bench-*` there to rebuild), serves it on 127.0.0.1 with nginx when installed,
else Python's ThreadingHTTPServer (HTTP/1.1 keep-alive), and times, in the same run,
medians of several runs of:

* the anchor: curl fetching the same 8,002 files with `--parallel --parallel-max 8`;
* the first poll (download, hash-check and verify 2,000 advisories; store them);
* an unchanged poll (metadata and ROLIE asked with their validators, and the hash file
  and signature of one slice of the advisories fetched again);
* a failing provider: the same ROLIE feed, but every advisory file answers 404: its
  first poll (time, exit code, events raised) and its second poll (events raised).

vendorguard runs with `concurrency = 8` and `per_host = 8`, the same 8 requests in
flight as curl (the default `per_host = 2` is timed too, for information). Prints
times, peak RSS and the ratios against the anchor.

    python3 bench/csaf.py [--runs 3] [--advisories 2000] [--binary PATH] [--python-server]

Needs gpg and curl; nginx (Debian: nginx-light) is optional.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

from benchlib import fingerprint, free_port, gpg, median_of, nginx_static_conf, report, run_measured

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEED = "white/csaf-feed-tlp-white.json"


def advisory(i):
    """A CSAF security advisory of about 4 KB, shaped like a vendor's."""
    tid = f"ACME-2026-{i:04d}"
    products = [{"category": "product_version", "name": f"{v}.{i % 7}",
                 "product": {"product_id": f"CSAFPID-{i}-{v}", "name": f"Acme Agent {v}.{i % 7}"}}
                for v in range(1, 7)]
    return tid, {
        "document": {
            "category": "csaf_security_advisory",
            "csaf_version": "2.0",
            "title": f"{tid}: remote code execution in Acme Agent component {i}",
            "lang": "en",
            "distribution": {"tlp": {"label": "WHITE"}},
            "publisher": {"category": "vendor", "name": "Acme PSIRT", "namespace": "https://acme.example"},
            "notes": [{"category": "summary", "title": "Summary",
                       "text": f"A flaw in component {i} of Acme Agent lets a remote attacker run code "
                               "with the agent's privileges by sending a crafted request. " * 3}],
            "references": [{"category": "self", "summary": "Canonical URL",
                            "url": f"https://acme.example/.well-known/csaf/white/2026/{tid.lower()}.json"}],
            "tracking": {"id": tid, "version": "1", "status": "final",
                         "initial_release_date": "2026-10-01T00:00:00Z",
                         "current_release_date": "2026-10-01T00:00:00Z",
                         "revision_history": [{"date": "2026-10-01T00:00:00Z", "number": "1",
                                               "summary": "Initial release"}],
                         "generator": {"engine": {"name": "bench/csaf.py"}}},
        },
        "product_tree": {"branches": [{"category": "vendor", "name": "Acme", "branches": [
            {"category": "product_name", "name": "Acme Agent", "branches": products}]}]},
        "vulnerabilities": [{
            "cve": f"CVE-2026-{10000 + i}",
            "notes": [{"category": "description", "text": "Improper input validation in the request parser."}],
            "product_status": {"known_affected": [p["product"]["product_id"] for p in products[:3]],
                               "fixed": [p["product"]["product_id"] for p in products[3:]]},
            "scores": [{"cvss_v3": {"version": "3.1", "baseScore": round(4.0 + (i % 60) / 10, 1),
                                    "baseSeverity": "HIGH",
                                    "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
                        "products": [p["product"]["product_id"] for p in products[:3]]}],
            "remediations": [{"category": "vendor_fix", "details": "Upgrade to the fixed version.",
                              "product_ids": [p["product"]["product_id"] for p in products[:3]]}],
        }],
    }


def rolie(names):
    """The ROLIE feed: per advisory its self, two hash and signature links (relative)."""
    entries = [{
        "id": tid, "title": tid, "updated": "2026-10-01T00:00:00Z",
        "link": [{"rel": "self", "href": f"2026/{name}"},
                 {"rel": "hash", "href": f"2026/{name}.sha256"},
                 {"rel": "hash", "href": f"2026/{name}.sha512"},
                 {"rel": "signature", "href": f"2026/{name}.asc"}],
        "format": {"schema": "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json",
                   "version": "2.0"},
        "content": {"type": "application/json", "src": f"2026/{name}"},
    } for tid, name in names]
    return {"feed": {"id": "acme-csaf-feed-tlp-white", "title": "Acme CSAF feed (TLP:WHITE)",
                     "updated": "2026-10-01T00:00:00Z", "entry": entries}}


def metadata(fpr):
    return {"canonical_url": "provider-metadata.json", "metadata_version": "2.0",
            "role": "csaf_trusted_provider", "list_on_CSAF_aggregators": True,
            "mirror_on_CSAF_aggregators": True,
            "publisher": {"category": "vendor", "name": "Acme PSIRT", "namespace": "https://acme.example"},
            "public_openpgp_keys": [{"fingerprint": fpr, "url": "openpgp/psirt.asc"}],
            "distributions": [{"rolie": {"feeds": [{"summary": "TLP:WHITE advisories",
                                                    "tlp_label": "WHITE", "url": FEED}]}}]}


def build_tree(cache, n):
    """The provider under cache/www/ok/, the failing one under cache/www/fail/ (metadata
    and feed only), the public key in cache/psirt.asc. Signing runs on every core."""
    home = os.path.join(cache, "gnupg")
    os.makedirs(home, mode=0o700)
    uid = "Acme PSIRT <psirt@acme.example>"
    gpg(home, "--quick-generate-key", uid, "ed25519", "sign", "0")
    fpr = fingerprint(home, uid)
    with open(os.path.join(cache, "psirt.asc"), "wb") as f:
        f.write(subprocess.run(["gpg", "--homedir", home, "--armor", "--export", fpr], check=True,
                               stdout=subprocess.PIPE).stdout)
    ok = os.path.join(cache, "www", "ok")
    adv_dir = os.path.join(ok, "white", "2026")
    os.makedirs(adv_dir)
    names = []
    for i in range(n):
        tid, doc = advisory(i)
        name = f"{tid.lower()}.json"
        names.append((tid, name))
        data = json.dumps(doc, indent=2).encode()
        path = os.path.join(adv_dir, name)
        with open(path, "wb") as f:
            f.write(data)
        for algo in ("sha256", "sha512"):
            with open(f"{path}.{algo}", "w") as f:
                f.write(f"{hashlib.new(algo, data).hexdigest()}  {name}\n")

    def sign(name):
        path = os.path.join(adv_dir, name)
        gpg(home, "--armor", "--digest-algo", "SHA512", "--local-user", f"{fpr}!",
            "--output", f"{path}.asc", "--detach-sign", path)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        list(ex.map(sign, [name for _, name in names]))
    print(f"  signed {n} advisories with GnuPG in {time.perf_counter() - start:.1f} s", flush=True)
    for root in (ok, os.path.join(cache, "www", "fail")):
        os.makedirs(os.path.join(root, "white"), exist_ok=True)
        with open(os.path.join(root, "provider-metadata.json"), "w") as f:
            json.dump(metadata(fpr), f, indent=2)
        with open(os.path.join(root, FEED), "w") as f:
            json.dump(rolie(names), f, indent=1)
    with open(os.path.join(cache, "complete"), "w") as f:
        f.write(fpr)
    return names


def wait_listening(port):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"the HTTP server did not start on port {port}")


PY_SERVER = """
import functools, http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes on a kept-alive connection
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer.daemon_threads = True
# 404s close the connection; with the default backlog of 5, reconnecting clients'
# SYNs overflow it and are retried after a second.
http.server.ThreadingHTTPServer.request_queue_size = 128
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])),
    functools.partial(H, directory=sys.argv[2])).serve_forever()
"""


def start_server(work, www, port, python_only):
    """nginx when installed (and not python_only), else Python; returns (name, stop)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if os.path.exists(nginx) and not python_only:
        conf = nginx_static_conf(work, "application/json json; text/plain sha256 sha512 asc;",
                                 [f"127.0.0.1:{port}"], www, 100000)
        subprocess.run([nginx, "-c", conf, "-p", work, "-e", os.path.join(work, "error.log")], check=True)
        wait_listening(port)
        return "nginx", lambda: subprocess.run([nginx, "-c", conf, "-p", work, "-s", "quit"], check=False)
    p = subprocess.Popen([sys.executable, "-c", PY_SERVER, str(port), www])
    wait_listening(port)

    def stop():
        p.terminate()
        p.wait()
    return "python ThreadingHTTPServer", stop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--advisories", type=int, default=2000)
    ap.add_argument("--binary", help="time this vendorguard instead of building target/release")
    ap.add_argument("--python-server", action="store_true", help="serve with Python even when nginx is installed")
    args = ap.parse_args()
    n = args.advisories
    # Timed as cron runs it. With RUST_BACKTRACE set, every error Sequoia creates and
    # discards internally (one per signature check of a key without a direct-key
    # signature) captures a backtrace: about 0.1 s more CPU for 2,000 advisories.
    for var in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE"):
        os.environ.pop(var, None)
    if args.binary:
        vg = os.path.abspath(args.binary)
    else:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "vendorguard"], cwd=ROOT, check=True)
        vg = os.path.join(ROOT, "target/release/vendorguard")

    cache = os.path.join(tempfile.gettempdir(), f"vg-csaf-bench-{n}")
    if not os.path.exists(os.path.join(cache, "complete")):
        shutil.rmtree(cache, ignore_errors=True)
        os.makedirs(cache)
        print(f"building a provider of {n} signed advisories in {cache}", flush=True)
        build_tree(cache, n)
    os.chmod(cache, 0o755)  # nginx's workers run as another user
    www = os.path.join(cache, "www")
    with open(os.path.join(www, "ok", FEED)) as f:
        hrefs = [l["href"] for e in json.load(f)["feed"]["entry"] for l in e["link"]]

    work = tempfile.mkdtemp(prefix="vg-csaf-bench-run-")
    os.chmod(work, 0o755)
    stop = None
    try:
        port = free_port()
        server, stop = start_server(work, www, port, args.python_server)
        base = f"http://127.0.0.1:{port}"
        files = ["provider-metadata.json", FEED] + [f"white/{h}" for h in hrefs]
        curl_cfg = os.path.join(work, "curl.cfg")
        with open(curl_cfg, "w") as f:
            for p in files:
                f.write(f'url = "{base}/ok/{p}"\noutput = "/dev/null"\n')
        total = sum(os.path.getsize(os.path.join(www, "ok", p)) for p in files)
        os.makedirs(os.path.join(work, "keyring", "acme"))
        shutil.copy(os.path.join(cache, "psirt.asc"), os.path.join(work, "keyring", "acme", "psirt.asc"))

        def config(name, provider, per_host):
            path = os.path.join(work, f"{name}.toml")
            with open(path, "w") as f:
                f.write(f'[watch]\nstate = "state-{name}/vg.sqlite"\nconcurrency = 8\nper_host = {per_host}\n'
                        f'timeout = "30s"\n\n[[vendor]]\nname = "acme"\n[[vendor.feed]]\n'
                        f'url = "{base}/{provider}/provider-metadata.json"\nformat = "csaf"\n')
            return path, os.path.join(work, f"state-{name}")

        results = {}

        def line(name, t, rss=None, extra=""):
            mem = f"   peak RSS {rss:7.1f} MiB" if rss is not None else ""
            print(f"  {name:<40} {t:8.3f} s{mem}{extra}", flush=True)

        print(f"\nCSAF provider: {n} advisories, {len(files)} files, {total / 1e6:.1f} MB, "
              f"{server} on 127.0.0.1; median of {args.runs} runs")
        t_curl, _ = median_of(args.runs, [["curl", "-s", "--fail", "--parallel", "--parallel-max", "8",
                                           "-K", curl_cfg]])
        results["anchor"] = t_curl
        line("anchor: curl --parallel-max 8", t_curl)

        def poll_case(name, provider, per_host, ok_codes=(0,)):
            cfg, state = config(name, provider, per_host)
            snapshot = state + "-snapshot"
            cmd = [vg, "--config", cfg, "-q", "watch", "--once"]

            def fresh():
                shutil.rmtree(state, ignore_errors=True)

            def restore():
                shutil.rmtree(state, ignore_errors=True)
                shutil.copytree(snapshot, state)

            first = median_of(args.runs, [cmd], fresh, ok_codes=ok_codes)
            fresh()
            run_measured(cmd, ok_codes=ok_codes)
            first_events = event_count(state)
            shutil.copytree(state, snapshot)
            second = median_of(args.runs, [cmd], restore, ok_codes=ok_codes)
            restore()
            code = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
            second_events = event_count(state) - first_events
            return first, second, first_events, second_events, code

        (t1, r1), (t2, r2), _, _, _ = poll_case("ok", "ok", 8)
        results["first"], results["unchanged"] = t1, t2
        line(f"first poll ({n:,} advisories verified)", t1, r1)
        line("unchanged poll", t2, r2)
        (t3, r3), _, _, _, _ = poll_case("ok2", "ok", 2)
        line("first poll, per_host = 2 (information)", t3, r3)
        (t4, r4), (t5, r5), ev1, ev2, code = poll_case("fail", "fail", 8, ok_codes=(0, 1))
        line("failing provider: first poll", t4, r4, f"   {ev1} events, exit {code}")
        line("failing provider: second poll", t5, r5, f"   {ev2} new events")

        failed = report([
            ("first poll / anchor", t1 / t_curl, "<=", 3.0),
            ("unchanged poll / anchor", t2 / t_curl, "<=", 0.25),
            ("first poll, per_host = 2 / anchor (information)", t3 / t_curl, ">=", 0.0),
            ("failing provider first poll / anchor", t4 / t_curl, "<=", 3.0),
            ("failing provider: events on first poll", ev1, "<=", 10),
            ("failing provider: events on second poll", ev2, "<=", 0),
            ("failing provider: exit code is 1", code, ">=", 1),
            ("peak RSS MiB (first poll)", r1, "<=", 128.0),
        ])
        sys.exit(1 if failed else 0)
    finally:
        if stop:
            stop()
        shutil.rmtree(work, ignore_errors=True)


def event_count(state):
    db = sqlite3.connect(os.path.join(state, "vg.sqlite"))
    try:
        return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        db.close()


if __name__ == "__main__":
    main()
