"""Shared helpers for the benchmarks in this folder: timing with peak RSS, medians,
GnuPG in a private home, and a private PostgreSQL server."""
import glob
import os
import pwd
import shutil
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


class Postgres:
    """A private PostgreSQL server in WORK/pg on 127.0.0.1 and a free port, run as the
    `postgres` user when we are root (initdb refuses root), trust authentication, no
    fsync (a benchmark's server, as the test suite's). `stop()` stops it."""

    def __init__(self, work):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            sys.exit("PostgreSQL server binaries are needed (apt-get install postgresql)")
        self.bin = os.path.dirname(bins[-1])
        self.dir = os.path.join(work, "pg")
        os.makedirs(self.dir)
        self.as_user = []
        if os.geteuid() == 0:
            os.chown(self.dir, pwd.getpwnam("postgres").pw_uid, -1)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        data = os.path.join(self.dir, "data")
        subprocess.run([*self.as_user, f"{self.bin}/initdb", "-D", data, "-A", "trust", "-U", "postgres"],
                       check=True, stdout=subprocess.DEVNULL)
        opts = f"-p {self.port} -k {self.dir} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off"
        subprocess.run([*self.as_user, f"{self.bin}/pg_ctl", "-D", data, "-o", opts, "-w",
                        "-l", os.path.join(self.dir, "log"), "start"], check=True, stdout=subprocess.DEVNULL)
        self.data = data

    def sql(self, statement):
        subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", statement],
                       check=True, stdout=subprocess.DEVNULL)

    def url(self, db):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}?sslmode=disable"

    def stop(self):
        subprocess.run([*self.as_user, f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"],
                       check=False, stdout=subprocess.DEVNULL)
