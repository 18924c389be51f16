#!/usr/bin/env python3
"""Benchmark: mail at wire speed. 300 pending events delivered by vendorguard, against
python's smtplib sending 300 messages over one connection to the same server.

Sets up a state holding N undelivered events (a feed with N new entries, polled while
the SMTP server is down), then times, in the same run, medians of: `vendorguard watch
--once` delivering all of them by email to a local SMTP server (aiosmtpd), and the
floor, a Python process that sends N messages of the same size with smtplib over one
connection to that server. Prints times, peak RSS, connections used and the ratio
(target: at most 3x).

    python3 bench/alerts.py [--events 300] [--runs 3] [--binary PATH]

`--binary` times another build of vendorguard (an older one, to compare) instead of
building this checkout.
"""
import argparse
import http.server
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading

from benchlib import free_port, median_of, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def floor(port, n, size):
    """The anchor: n messages of about `size` bytes over one smtplib connection."""
    body = ("x" * 70 + "\r\n") * max(1, size // 72)
    with smtplib.SMTP("127.0.0.1", port) as s:
        for i in range(n):
            msg = (f"From: vendorguard@example.com\r\nTo: oncall@example.com\r\n"
                   f"Subject: [vendorguard] acme: Advisory {i}\r\n"
                   f"Message-ID: <floor-{i}@vendorguard>\r\n\r\n{body}")
            s.sendmail("vendorguard@example.com", ["oncall@example.com"], msg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary")
    ap.add_argument("--floor", nargs=3, type=int, metavar=("PORT", "N", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.floor:
        floor(*args.floor)
        return
    vg = args.binary
    if not vg:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "vendorguard"], cwd=ROOT, check=True)
        vg = os.path.join(ROOT, "target/release/vendorguard")
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

        port = free_port()
        dead = free_port()

        def config(path, smtp_port, with_feed):
            with open(path, "w") as f:
                f.write('[watch]\nstate = "state/vg.sqlite"\n[watch.backoff]\nattempts = 1\n\n')
                f.write(f'[alerts.email]\nurl = "smtp://127.0.0.1:{smtp_port}"\n')
                f.write('from = "vendorguard@example.com"\nto = ["oncall@example.com"]\n\n')
                if with_feed:
                    f.write(f'[[vendor]]\nname = "acme"\n[[vendor.feed]]\nurl = "{feed_url}"\n')

        setup = os.path.join(work, "setup.toml")
        deliver = os.path.join(work, "deliver.toml")
        config(setup, dead, True)
        config(deliver, port, False)
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

        def mails():
            return sorted(f for f in os.listdir(spool) if f.endswith(".eml"))

        def connections():
            try:
                with open(os.path.join(spool, "connections.log")) as f:
                    return len(f.read().splitlines())
            except FileNotFoundError:
                return 0

        n = args.events
        print(f"\n{n} pending events by email to aiosmtpd on 127.0.0.1; median of {args.runs} runs")
        t_vg, rss_vg = median_of(args.runs, [[vg, "--config", deliver, "-q", "watch", "--once"]], restore)
        sent = mails()
        assert len(sent) == n * args.runs, f"expected {n * args.runs} mails, got {len(sent)}"
        conns = connections()
        with open(os.path.join(spool, sent[0]), "rb") as f:
            size = len(f.read())
        print(f"  {'vendorguard watch --once (deliver)':<38} {t_vg:8.3f} s   peak RSS {rss_vg:7.1f} MiB"
              f"   {conns / args.runs:.0f} connection(s) a run, {size} bytes a mail")
        t_a, rss_a = median_of(args.runs, [[sys.executable, os.path.abspath(__file__), "--floor", str(port), str(n), str(size)]])
        print(f"  {'floor: smtplib, one connection':<38} {t_a:8.3f} s   peak RSS {rss_a:7.1f} MiB")
        failed = report([
            ("delivery / smtplib floor", t_vg / t_a, "<=", 3.0),
            ("connections per run", conns / args.runs, "<=", 1.0),
        ])
        sys.exit(1 if failed else 0)
    finally:
        if smtp:
            smtp.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
