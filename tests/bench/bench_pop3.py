#!/usr/bin/python3
"""make bench, POP3 part: virtmail-pop3d in the private namespace that
tests/netns.py creates, measured with Python's poplib as the issue's
Dovecot figures were.

  - login + STAT + RETR of every message of a 2000 x 4 KiB Maildir
    (and of 10000 x 4 KiB), messages/s and MB/s, warm cache;
  - UIDL and LIST on 10000 messages, after the first scan;
  - login time (USER/PASS round trip, sha512-crypt);
  - memory (PSS) per idle unauthenticated connection.

Dovecot 2.3's numbers from the issue are printed beside ours.  Figures
only: nothing here passes or fails.
"""

import argparse
import os
import poplib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import vmtest  # noqa: E402

IP = vmtest.ALPHA_IP4
PW = "bench-pw"
GLOBAL_CONF = """\
pop3_max_sessions 20000
pop3_max_sessions_per_ip 20000
pop3_auth_delay 0
"""
DOVECOT = {"retr2000": (5500, 23), "retr10000": (7200, 30),
           "uidl": 11.0, "login": 12.0, "idle_kib": 1.2 * 1024}


def pss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def group_pids(pgid):
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == pgid:
                    pids.append(int(name))
            except OSError:
                pass
    return pids


def fill(dom, n, size=4096):
    d = os.path.join(dom.maildir("bob"), "new")
    for sub in ("new", "cur"):
        p = os.path.join(dom.maildir("bob"), sub)
        shutil.rmtree(p)
        os.mkdir(p, 0o700)
        os.chown(p, dom.uids["bob"], dom.uids["bob"])
    line = b"x" * 75 + b"\n"
    body = b"From: a@example.test\nSubject: bench\n\n" + \
        line * ((size - 40) // 76)
    uid = dom.uids["bob"]
    for i in range(n):
        p = os.path.join(d, "%d.V%016xI%d.bench" % (1700000000 + i, i, i))
        with open(p, "wb") as f:
            f.write(body)
        os.chown(p, uid, uid)


def login():
    c = poplib.POP3(IP, 110, timeout=60)
    c.user("bob")
    c.pass_(PW)
    return c


def retr_all():
    t0 = time.monotonic()
    c = login()
    n, _ = c.stat()
    octets = 0
    for i in range(1, n + 1):
        resp, lines, o = c.retr(i)
        octets += o
    c.quit()
    dt = time.monotonic() - t0
    return n, n / dt, octets / dt / 1e6


def raw_times():
    """Best of 5, command sent to last byte read, no client parsing."""
    s = socket.create_connection((IP, 110), timeout=30)
    s.recv(200)
    s.sendall(b"USER bob\r\nPASS %s\r\n" % PW.encode())
    d = b""
    while d.count(b"\r\n") < 2:
        d += s.recv(4096)
    out = {}
    for cmd in ("UIDL", "LIST"):
        times = []
        for _ in range(5):
            t0 = time.monotonic()
            s.sendall(cmd.encode() + b"\r\n")
            d = b""
            while not d.endswith(b"\r\n.\r\n"):
                d += s.recv(1 << 20)
            times.append((time.monotonic() - t0) * 1000)
        out[cmd] = min(times)
    s.sendall(b"QUIT\r\n")
    s.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--idle", type=int, default=200)
    a = ap.parse_args()
    vmtest.check_isolated()
    work = tempfile.mkdtemp(prefix="virtmail-bench-pop3.")
    os.chmod(work, 0o755)
    proc = None
    try:
        alpha = vmtest.make_domain_root(os.path.join(work, "d"),
                                        "alpha.test", [IP],
                                        users={"bob": PW})
        vc = vmtest.write_virtual_conf(os.path.join(work, "virtual.conf"),
                                       [(IP, alpha.root)])
        gc = os.path.join(work, "virtmail.conf")
        with open(gc, "w") as f:
            f.write(GLOBAL_CONF)
        log = open(os.path.join(work, "pop3d.log"), "w")
        proc = subprocess.Popen([os.path.join(a.build, "virtmail-pop3d"),
                                 "-d", "-f", vc, "-C", gc], stdout=log,
                                stderr=log, start_new_session=True)
        vmtest.wait_for_port(IP, 110, timeout=15)
        print()
        print("virtmail-pop3d, Maildir, warm cache, poplib client")
        print("%-28s %12s %12s" % ("", "virtmail", "dovecot 2.3"))
        for n in (2000, 10000):
            fill(alpha, n)
            c = login()         # the first scan learns the wire sizes
            c.quit()
            retr_all()          # warm the page cache
            cnt, mps, mbs = retr_all()
            d = DOVECOT["retr%d" % n]
            print("%-28s %6.0f msg/s %6.0f msg/s" % (
                "RETR %d x 4 KiB" % n, mps, d[0]))
            print("%-28s %7.1f MB/s %7.0f MB/s" % ("", mbs, d[1]),
                  flush=True)
        # UIDL / LIST on 10000 after the first scan.
        c = login()
        best = {}
        for cmd in ("uidl", "list"):
            times = []
            for _ in range(5):
                t0 = time.monotonic()
                r = getattr(c, cmd)()
                times.append((time.monotonic() - t0) * 1000)
                assert len(r[1]) == 10000
            best[cmd] = min(times)
        c.quit()
        raw = raw_times()
        print("%-28s %9.1f ms %9.1f ms" % ("UIDL, 10000, poplib",
                                           best["uidl"], DOVECOT["uidl"]))
        print("%-28s %9.1f ms %12s" % ("LIST, 10000, poplib",
                                       best["list"], "-"))
        print("%-28s %9.1f ms %12s" % ("UIDL, 10000, raw socket",
                                       raw["UIDL"], "-"))
        print("%-28s %9.1f ms %12s" % ("LIST, 10000, raw socket",
                                       raw["LIST"], "-"), flush=True)
        fill(alpha, 10)
        times = []
        for _ in range(10):
            c = poplib.POP3(IP, 110, timeout=10)
            c.user("bob")
            t0 = time.monotonic()
            c.pass_(PW)
            times.append((time.monotonic() - t0) * 1000)
            c.quit()
        times.sort()
        print("%-28s %9.1f ms %9.1f ms" % ("login (PASS, sha512-crypt)",
                                           times[len(times) // 2],
                                           DOVECOT["login"]), flush=True)
        if a.idle > 0:
            time.sleep(0.5)
            base = pss_kib(group_pids(proc.pid))
            socks = []
            for _ in range(a.idle):
                s = socket.create_connection((IP, 110), timeout=10)
                socks.append(s)
            for s in socks:
                s.recv(100)
            time.sleep(0.5)
            with_idle = pss_kib(group_pids(proc.pid))
            for s in socks:
                s.close()
            per = (with_idle - base) / a.idle
            print("%-28s %8.0f KiB %8.0f KiB" % (
                "PSS per idle connection", per, DOVECOT["idle_kib"]))
            print("  (%d idle unauthenticated connections: %.1f MiB -> "
                  "%.1f MiB, all processes)" % (a.idle, base / 1024,
                                               with_idle / 1024))
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
