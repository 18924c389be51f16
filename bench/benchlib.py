"""Shared helpers for the benchmarks in this folder: timing with peak RSS, medians,
and GnuPG in a private home."""
import os
import socket
import statistics
import subprocess
import sys
import time


def run_measured(cmd, before=None, ok_codes=(0,)):
    """Runs cmd under /usr/bin/time, returns (seconds, peak RSS in MiB). Fails loudly on
    an exit code not in ok_codes (`watch --once` exits 1 while something is degraded).
    (The RSS of a child forked from this Python process would count the parent's pages,
    so GNU time, a small process, does the measuring.) `before`, when given, runs
    untimed first (cleaning an output folder)."""
    if before:
        before()
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "VGRSS %M", *cmd], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    err = p.stderr.decode(errors="replace")
    if p.returncode not in ok_codes:
        sys.exit(f"benchmark command failed ({p.returncode}): {' '.join(cmd)}\n{err}")
    rss_kib = int(err.strip().splitlines()[-1].split()[1])
    return elapsed, rss_kib / 1024.0


def median_of(runs, cmds, before=None, ok_codes=(0,)):
    """cmds: commands run in sequence as one 'tool'. Returns (median seconds, max RSS)."""
    times, rss = [], 0.0
    for _ in range(runs):
        total = 0.0
        for i, c in enumerate(cmds):
            t, r = run_measured(c, before if i == 0 else None, ok_codes)
            total += t
            rss = max(rss, r)
        times.append(total)
    return statistics.median(times), rss


def gpg(home, *args):
    subprocess.run(["gpg", "--homedir", home, "--batch", "--quiet", "--pinentry-mode", "loopback",
                    "--passphrase", "", *args], check=True, stdout=subprocess.PIPE,
                   stderr=subprocess.DEVNULL)


def fingerprint(home, uid):
    out = subprocess.run(["gpg", "--homedir", home, "--with-colons", "--list-keys", uid],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    return next(l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:"))


def report(checks):
    """Prints ratio checks [(name, value, op, target)]; returns how many missed."""
    print("\nratios (target in brackets)")
    failed = 0
    for name, value, op, target in checks:
        ok = value <= target if op == "<=" else value >= target
        failed += not ok
        print(f"  {name:<44} {value:8.2f}   [{op} {target}] {'ok' if ok else 'MISSED'}")
    return failed


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def nginx_static_conf(work, types, listens, www, keepalive_requests):
    """Writes WORK/nginx.conf for nginx serving WWW as static files with ETags, all its
    temporary files and logs under WORK; returns the path. `listens`: "host:port" list."""
    os.makedirs(os.path.join(work, "tmp"), exist_ok=True)
    conf = os.path.join(work, "nginx.conf")
    listen = " ".join(f"listen {l};" for l in listens)
    with open(conf, "w") as f:
        f.write(f"""worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/tmp;
  proxy_temp_path {work}/tmp;
  fastcgi_temp_path {work}/tmp;
  uwsgi_temp_path {work}/tmp;
  scgi_temp_path {work}/tmp;
  keepalive_requests {keepalive_requests};
  types {{ {types} }}
  server {{ {listen} root {www}; etag on; }}
}}
""")
    return conf
