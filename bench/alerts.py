#!/usr/bin/env python3
"""Benchmark: delivering 1,000 pending events, against a plain lettre loop.

Sets up a state holding 1,000 undelivered events (a feed with 1,000 new entries,
polled while the SMTP server is down and the escalation script fails), then times,
in the same run, medians of: `vendorguard watch --once` delivering all of them to a
local SMTP server (aiosmtpd) and a trivial script, and the anchor, an example
program that sends the same number of mails with lettre and runs the script as
often, with no outbox. Prints times, peak RSS and the ratio (target: at most 2x).

    python3 bench/alerts.py [--events 1000] [--runs 3]
"""
import argparse
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading

from benchlib import free_port, median_of, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "vendorguard", "--example", "lettre-loop"],
                   cwd=ROOT, check=True)
    vg = os.path.join(ROOT, "target/release/vendorguard")
    anchor = os.path.join(ROOT, "target/release/examples/lettre-loop")
    work = tempfile.mkdtemp(prefix="vg-alert-bench-")
    smtp = None
    try:
        www = os.path.join(work, "www")
        os.makedirs(www)

        def feed(n):
            items = "".join(f"<item><title>Advisory {i}</title><guid>a{i}</guid><link>https://acme.example/{i}</link></item>"
                            for i in range(n))
            path = os.path.join(www, "feed.xml")
            with open(path, "w") as f:
                f.write(f"<rss version=\"2.0\"><channel><title>t</title>{items}</channel></rss>")
            # The server's Last-Modified has one-second resolution: make the change visible.
            st = os.stat(path)
            os.utime(path, (st.st_atime, st.st_mtime + 10 * n))

        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=www, **k)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.RequestHandlerClass.log_message = lambda *a: None
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        feed_url = f"http://127.0.0.1:{httpd.server_address[1]}/feed.xml"

        ok_script = os.path.join(work, "ok.sh")
        with open(ok_script, "w") as f:
            f.write("#!/bin/sh\ncat >/dev/null\nexit 0\n")
        fail_script = os.path.join(work, "fail.sh")
        with open(fail_script, "w") as f:
            f.write("#!/bin/sh\ncat >/dev/null\nexit 1\n")
        for s in (ok_script, fail_script):
            os.chmod(s, 0o755)
        port = free_port()
        dead = free_port()

        def config(path, script, smtp_port, with_feed):
            with open(path, "w") as f:
                f.write('[watch]\nstate = "state/vg.sqlite"\n[watch.backoff]\nattempts = 1\n\n')
                f.write(f'[alerts]\nescalation = "{script}"\n[alerts.email]\nurl = "smtp://127.0.0.1:{smtp_port}"\n')
                f.write('from = "vendorguard@example.com"\nto = ["oncall@example.com"]\n\n')
                if with_feed:
                    f.write(f'[[vendor]]\nname = "acme"\n[[vendor.feed]]\nurl = "{feed_url}"\n')

        setup = os.path.join(work, "setup.toml")
        deliver = os.path.join(work, "deliver.toml")
        config(setup, fail_script, dead, True)
        config(deliver, ok_script, port, False)
        feed(0)
        subprocess.run([vg, "--config", setup, "-q", "watch", "--once"], check=True, stdout=subprocess.DEVNULL)
        feed(args.events)
        r = subprocess.run([vg, "--config", setup, "-q", "watch", "--once"], stdout=subprocess.DEVNULL)
        assert r.returncode == 1, "setup run should leave events pending"
        snapshot = os.path.join(work, "snapshot")
        shutil.copytree(os.path.join(work, "state"), snapshot)

        spool = os.path.join(work, "spool")
        smtp = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/smtp_server.py"), str(port), spool],
                                stdout=subprocess.PIPE)
        assert smtp.stdout.readline().startswith(b"ready")

        def restore():
            shutil.rmtree(os.path.join(work, "state"), ignore_errors=True)
            shutil.copytree(snapshot, os.path.join(work, "state"))

        n = args.events
        print(f"\n{n} pending events on two channels (email to aiosmtpd on 127.0.0.1, a trivial script); median of {args.runs} runs")
        t_vg, rss_vg = median_of(args.runs, [[vg, "--config", deliver, "-q", "watch", "--once"]], restore)
        mails = len([f for f in os.listdir(spool) if f.endswith(".eml")])
        assert mails == n * args.runs, f"expected {n * args.runs} mails, got {mails}"
        print(f"  {'vendorguard watch --once (deliver)':<38} {t_vg:8.3f} s   peak RSS {rss_vg:7.1f} MiB")
        t_a, rss_a = median_of(args.runs, [[anchor, str(port), ok_script, str(n)]])
        print(f"  {'anchor: lettre loop + script runs':<38} {t_a:8.3f} s   peak RSS {rss_a:7.1f} MiB")
        failed = report([
            ("delivery / plain lettre loop", t_vg / t_a, "<=", 2.0),
            ("delivery peak RSS MiB (information)", rss_vg, ">=", 0.0),
        ])
        sys.exit(1 if failed else 0)
    finally:
        if smtp:
            smtp.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
