#!/usr/bin/python3
"""make bench, POP3 part: virtmail-pop3d in the private namespace that
tests/netns.py creates, measured with Python's poplib as the issue's
Dovecot figures were.

  - login + STAT + RETR of every message of a 2000 x 4 KiB Maildir
    (and of 10000 x 4 KiB), messages/s and MB/s, warm cache;
  - RETR of the 10000 pipelined over a raw socket (all commands sent
    in large batches while the answers are read), the server's
    throughput without poplib's per-line parsing;
  - UIDL and LIST on 10000 messages, after the first scan;
  - login time (USER/PASS round trip, sha512-crypt);
  - memory (PSS) per idle unauthenticated connection.

When Dovecot is installed (make bench-peers-deps), a private Dovecot
instance (peers.py) serves an identical Maildir on the same address
and gets the same client code as virtmail: "dovecot here".
Dovecot 2.3's figures from the issue stay in their own column ("issue
ref"): another machine.  A "client ceiling" line runs the same poplib
RETR loop against a trivial in-memory server, which shows what poplib
itself can reach here.  The RETR runs (--repeat of each, default 5)
take turns between the servers and the ceiling, so that a disturbance
of this shared machine hits all of them alike, and the median of each
is printed.  Figures only: nothing here passes or fails.
"""

import argparse
import os
import poplib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import vmtest  # noqa: E402
import peers  # noqa: E402

IP = vmtest.ALPHA_IP4
PORT = 110
PEER_PORT = 1110        # Dovecot, beside virtmail's port 110
CEILING_PORT = 1111     # the trivial in-memory server
PW = "bench-pw"
GLOBAL_CONF = """\
pop3_max_sessions 20000
pop3_max_sessions_per_ip 20000
pop3_auth_delay 0
"""
DOVECOT = {"retr2000": (5500, 23), "retr10000": (7200, 30),
           "uidl": 11.0, "login": 12.0, "idle_kib": 1.2 * 1024}
# Dovecot's index and state files in a Maildir, removed by fill() so
# that each fill starts from the same state as virtmail's.
DOVECOT_FILES = ("dovecot-uidlist", "dovecot-uidvalidity",
                 "dovecot-keywords", "dovecot.index", "dovecot.index.log",
                 "dovecot.index.cache", "dovecot.index.log.2",
                 "dovecot.list.index", "dovecot.list.index.log")


def message(size=4096):
    line = b"x" * 75 + b"\n"
    return b"From: a@example.test\nSubject: bench\n\n" + \
        line * ((size - 40) // 76)


def fill(maildir, uid, n, size=4096):
    """n messages of about size bytes in maildir/new, nothing in cur/."""
    for sub in ("new", "cur"):
        p = os.path.join(maildir, sub)
        shutil.rmtree(p)
        os.mkdir(p, 0o700)
        os.chown(p, uid, uid)
    for name in os.listdir(maildir):
        if name.startswith("dovecot"):
            os.unlink(os.path.join(maildir, name))
    d = os.path.join(maildir, "new")
    body = message(size)
    for i in range(n):
        p = os.path.join(d, "%d.V%016xI%d.bench" % (1700000000 + i, i, i))
        with open(p, "wb") as f:
            f.write(body)
        os.chown(p, uid, uid)


def login(port):
    c = poplib.POP3(IP, port, timeout=60)
    c.user("bob")
    c.pass_(PW)
    return c


def retr_all(port):
    t0 = time.monotonic()
    c = login(port)
    n, _ = c.stat()
    octets = 0
    for i in range(1, n + 1):
        resp, lines, o = c.retr(i)
        octets += o
    c.quit()
    dt = time.monotonic() - t0
    return n, n / dt, octets / dt / 1e6


def raw_login(port):
    """A socket past USER/PASS, without poplib."""
    s = socket.create_connection((IP, port), timeout=60)
    d = b""
    while b"\r\n" not in d:
        b = s.recv(200)
        if not b:
            raise RuntimeError("no greeting on port %d" % port)
        d += b
    s.sendall(b"USER bob\r\nPASS %s\r\n" % PW.encode())
    d = b""
    while d.count(b"\r\n") < 2:
        b = s.recv(4096)
        if not b:
            raise RuntimeError("closed during login on port %d" % port)
        d += b
    if b"-ERR" in d:
        raise RuntimeError("login failed on port %d: %r" % (port, d))
    return s


def raw_times(port):
    """Best of 5, command sent to last byte read, no client parsing."""
    s = raw_login(port)
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


def retr_pipelined(port, n, batch=500):
    """RETR 1..n over one socket: a thread sends the commands in batches
    of batch while this one reads; each answer ends with CRLF.CRLF
    (the bench messages have no line that is a lone dot).  Returns
    (msg/s, MB/s) from the first command sent to the last byte read."""
    s = raw_login(port)
    cmds = [b"".join(b"RETR %d\r\n" % i
                     for i in range(j, min(n, j + batch - 1) + 1))
            for j in range(1, n + 1, batch)]
    err = []

    def send():
        try:
            for c in cmds:
                s.sendall(c)
        except OSError as e:
            err.append(e)

    got = octets = 0
    tail = b""
    t0 = time.monotonic()
    w = threading.Thread(target=send)
    w.start()
    try:
        while got < n:
            b = s.recv(1 << 20)
            if not b:
                raise RuntimeError("closed after %d of %d answers" %
                                   (got, n))
            octets += len(b)
            data = tail + b
            if b"\r\n-ERR" in data or data.startswith(b"-ERR"):
                raise RuntimeError("RETR failed: %r" % data[:200])
            # A terminator split across reads is counted once: the
            # 4-byte tail cannot hold a whole 5-byte one.
            got += data.count(b"\r\n.\r\n")
            tail = data[-4:]
        dt = time.monotonic() - t0
    finally:
        w.join(60)
    if err:
        raise RuntimeError("sending RETR: %s" % err[0])
    s.sendall(b"QUIT\r\n")
    s.close()
    return n / dt, octets / dt / 1e6


def uidl_list(port, n):
    """Best of 5 poplib UIDL and LIST, in ms."""
    c = login(port)
    best = {}
    for cmd in ("uidl", "list"):
        times = []
        for _ in range(5):
            t0 = time.monotonic()
            r = getattr(c, cmd)()
            times.append((time.monotonic() - t0) * 1000)
            assert len(r[1]) == n
        best[cmd] = min(times)
    c.quit()
    return best


def login_ms(port):
    """Median of 10 PASS round trips."""
    times = []
    for _ in range(10):
        c = poplib.POP3(IP, port, timeout=10)
        c.user("bob")
        t0 = time.monotonic()
        c.pass_(PW)
        times.append((time.monotonic() - t0) * 1000)
        c.quit()
    times.sort()
    return times[len(times) // 2]


def idle_pss(port, pids, n):
    """KiB of PSS per idle unauthenticated connection; (per, base KiB,
    with KiB).  pids() lists the server's processes."""
    time.sleep(0.5)
    base = vmtest.pss_kib(pids())
    socks = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection((IP, port), timeout=10))
        for s in socks:
            s.recv(100)
        time.sleep(0.5)
        with_idle = vmtest.pss_kib(pids())
    finally:
        for s in socks:
            s.close()
    return (with_idle - base) / n, base, with_idle


def ceiling_server(n, size=4096):
    """Fork a trivial POP3 server on IP:CEILING_PORT: any USER and PASS
    succeed, STAT says n messages, every RETR answers the same prebuilt
    bench message (CRLF, as a server sends it).  One connection at a
    time.  Returns its pid; the caller kills it."""
    body = message(size).replace(b"\n", b"\r\n")
    retr = b"+OK %d octets\r\n%s.\r\n" % (len(body), body)
    stat = b"+OK %d %d\r\n" % (n, n * len(body))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((IP, CEILING_PORT))
    ls.listen(16)
    pid = os.fork()
    if pid != 0:
        ls.close()
        return pid
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        while True:
            c, _ = ls.accept()
            c.sendall(b"+OK ready\r\n")
            for line in c.makefile("rb"):
                cmd = line[:4].upper()
                if cmd == b"RETR":
                    c.sendall(retr)
                elif cmd == b"STAT":
                    c.sendall(stat)
                elif cmd == b"QUIT":
                    c.sendall(b"+OK bye\r\n")
                    break
                else:
                    c.sendall(b"+OK\r\n")
            c.close()
    finally:
        os._exit(0)


def start_dovecot(a, work, dom):
    """A private Dovecot on IP:PEER_PORT for bob, same password and uid,
    its own Maildir; (peer or None, note)."""
    if a.no_peers:
        return None, "dovecot here: not measured (--no-peers)"
    if not peers.Dovecot.available():
        return None, "dovecot here: - (not installed; %s)" % \
            peers.INSTALL_HINT
    uid = dom.uids["bob"]
    dv = peers.Dovecot(os.path.join(work, "dovecot"), IP, PEER_PORT, "bob",
                       vmtest.hash_password(PW), uid, uid,
                       login_limit=a.idle + 20)
    try:
        dv.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        dv.stop()
        return None, "dovecot here: - (did not start: %s)" % e
    return dv, ("dovecot here: Dovecot %s on %s:%d, same client "
                "as virtmail's, Maildir, passwd-file sha512-crypt, "
                "defaults otherwise" % (dv.version(), IP, PEER_PORT))


def row(label, unit, fmt, ours, peer, ref):
    def cell(v):
        if v is None:
            return "%14s" % "-"
        return "%8s %-5s" % (fmt % v, unit)
    print("%-30s %s %s %s" % (label, cell(ours), cell(peer), cell(ref)),
          flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5,
                    help="RETR runs per server, interleaved; the median "
                    "is printed")
    ap.add_argument("--no-peers", action="store_true",
                    help="measure virtmail only, even if Dovecot is here")
    a = ap.parse_args()
    vmtest.check_isolated()
    # A plain kill still runs the finally clause below.
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(143))
    work = tempfile.mkdtemp(prefix="virtmail-bench-pop3.")
    os.chmod(work, 0o755)
    proc = None
    dv = None
    try:
        alpha = vmtest.make_domain_root(os.path.join(work, "d"),
                                        "alpha.test", [IP],
                                        users={"bob": PW})
        uid = alpha.uids["bob"]
        vc = vmtest.write_virtual_conf(os.path.join(work, "virtual.conf"),
                                       [(IP, alpha.root)])
        gc = os.path.join(work, "virtmail.conf")
        with open(gc, "w") as f:
            f.write(GLOBAL_CONF)
        log = open(os.path.join(work, "pop3d.log"), "w")
        proc = subprocess.Popen([os.path.join(a.build, "virtmail-pop3d"),
                                 "-d", "-f", vc, "-C", gc], stdout=log,
                                stderr=log, start_new_session=True)
        vmtest.wait_for_port(IP, PORT, timeout=15)
        dv, dv_note = start_dovecot(a, work, alpha)
        # Each server's Maildir: (port, maildir) in measuring order.
        servers = [(PORT, alpha.maildir("bob"))]
        if dv is not None:
            servers.append((PEER_PORT, dv.maildir))

        def each(f, *args):
            """f(port, ...) for virtmail, then Dovecot or None."""
            out = [f(port, *args) for port, _ in servers]
            return out + [None] * (2 - len(out))

        print()
        print("virtmail-pop3d, Maildir, warm cache, poplib client")
        print(dv_note)
        print("%-30s %14s %14s %14s" % ("", "virtmail", "dovecot here",
                                        "issue ref"))
        ceiling = None
        for n in (2000, 10000):
            for _, md in servers:
                fill(md, uid, n)
            ports = [port for port, _ in servers]
            cpid = ceiling_server(n) if n == 10000 else None
            try:
                if cpid is not None:
                    vmtest.wait_for_port(IP, CEILING_PORT, timeout=10)
                    ports.append(CEILING_PORT)
                for port in ports:
                    c = login(port)     # the first scan learns the sizes
                    c.quit()
                    retr_all(port)      # warm the page cache
                # Interleaved, so that a disturbance hits every server
                # alike; the median of each.
                runs = {port: [] for port in ports}
                for _ in range(a.repeat):
                    for port in ports:
                        runs[port].append(retr_all(port))
            finally:
                if cpid is not None:
                    os.kill(cpid, signal.SIGKILL)
                    os.waitpid(cpid, 0)
            med = {port: sorted(v, key=lambda x: x[1])[len(v) // 2]
                   for port, v in runs.items()}
            r = [med[port] for port, _ in servers]
            r += [None] * (2 - len(r))
            ceiling = med.get(CEILING_PORT, ceiling)
            d = DOVECOT["retr%d" % n]
            row("RETR %d x 4 KiB" % n, "msg/s", "%.0f",
                *[x and x[1] for x in r], d[0])
            row("", "MB/s", "%.1f", *[x and x[2] for x in r], d[1])
        r = each(retr_pipelined, 10000)
        row("RETR 10000 pipelined, raw sock", "msg/s", "%.0f",
            *[x and x[0] for x in r], None)
        row("", "MB/s", "%.1f", *[x and x[1] for x in r], None)
        # UIDL / LIST on 10000 after the first scan.
        best = each(uidl_list, 10000)
        raw = each(raw_times)
        row("UIDL, 10000, poplib", "ms", "%.1f",
            *[x and x["uidl"] for x in best], DOVECOT["uidl"])
        row("LIST, 10000, poplib", "ms", "%.1f",
            *[x and x["list"] for x in best], None)
        row("UIDL, 10000, raw socket", "ms", "%.1f",
            *[x and x["UIDL"] for x in raw], None)
        row("LIST, 10000, raw socket", "ms", "%.1f",
            *[x and x["LIST"] for x in raw], None)
        for _, md in servers:
            fill(md, uid, 10)
        row("login (PASS, sha512-crypt)", "ms", "%.1f", *each(login_ms),
            DOVECOT["login"])
        if a.idle > 0:
            pids = [lambda: vmtest.group_pids(proc.pid)]
            if dv is not None:
                pids.append(lambda: vmtest.tree_pids(dv.pid))
            r = [idle_pss(port, pids[i], a.idle)
                 for i, (port, _) in enumerate(servers)]
            r += [None] * (2 - len(r))
            row("PSS per idle connection", "KiB", "%.0f",
                *[x and x[0] for x in r], DOVECOT["idle_kib"])
            print("  (%d idle unauthenticated connections, all processes: "
                  "virtmail %.1f MiB -> %.1f MiB%s)" % (
                      a.idle, r[0][1] / 1024, r[0][2] / 1024,
                      "; dovecot %.1f MiB -> %.1f MiB" % (
                          r[1][1] / 1024, r[1][2] / 1024) if r[1] else ""))
        print("client ceiling: poplib RETR 10000 x 4 KiB against a trivial "
              "in-memory server: %.0f msg/s, %.1f MB/s" % (ceiling[1],
                                                          ceiling[2]))
        print("  (interleaved with the RETR 10000 runs above; no server "
              "looks faster than this through poplib on this machine)",
              flush=True)
        return 0
    finally:
        if dv is not None:
            dv.stop()
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
