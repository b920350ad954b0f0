"""End-to-end tests of virtuald, the chroot wrapper for inetd.

Two domain roots (alpha.test on 192.0.2.10 and 2001:db8::10, beta.test
on 192.0.2.20 and 2001:db8::20) each hold a copy of the static busybox
as /bin/busybox; the served program is "busybox cat /etc/mailname" or
"busybox id -u", so a reply tells which root (and which uid) served it.
192.0.2.30 is on the loopback but in no domain.

Every case runs in three front ends:
  inetd   a real openbsd-inetd with its own configuration;
  socket  -s, behind a small socket-activation launcher (as systemd
          with Accept=yes: the connection on fd 3, LISTEN_FDS=1,
          LISTEN_PID = virtuald's pid);
  listen  -l, virtuald's own accept loop on the wildcard (IPv4 arrives
          IPv4-mapped).
"""

import os
import re
import shutil
import signal
import socket
import sys
import time

import vmtest

PORT = 7001
BUSYBOX = "/bin/busybox"
ALPHA4, BETA4, NOWHERE4 = vmtest.ALPHA_IP4, vmtest.BETA_IP4, \
    vmtest.NOWHERE_IP4
ALPHA6, BETA6 = vmtest.ALPHA_IP6, vmtest.BETA_IP6
MAILNAME = [BUSYBOX, "cat", "/etc/mailname"]

# A tiny launcher: accept on each --listen address and spawn the command
# per connection, either as systemd does with Accept=yes (--fd3) or as
# inetd does (--fd0).  It logs "exit=N" for every child.
LAUNCHER = r'''
import os, select, socket, sys
args = sys.argv[1:]
mode, log, listens = None, None, []
while args[0] != "--":
    o = args.pop(0)
    if o in ("--fd3", "--fd0"):
        mode = o
    elif o == "--log":
        log = args.pop(0)
    elif o == "--listen":
        listens.append(args.pop(0))
cmd = args[1:]
socks = []
for spec in listens:
    host, port = spec.rsplit(":", 1)
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(16)
    socks.append(s)
def note(text):
    with open(log, "a") as f:
        f.write(text + "\n")
def reap():
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        note("exit=%d pid=%d" % (os.waitstatus_to_exitcode(st), pid))
while True:
    r, _, _ = select.select(socks, [], [], 0.1)
    reap()
    for s in r:
        c, _ = s.accept()
        pid = os.fork()
        if pid == 0:
            # Listeners first: one of them may be fd 3.
            for ls in socks:
                ls.close()
            fd = c.fileno()
            if mode == "--fd3":
                os.dup2(fd, 3)
                os.environ["LISTEN_FDS"] = "1"
                os.environ["LISTEN_PID"] = str(os.getpid())
            else:
                os.dup2(fd, 0)
                os.dup2(fd, 1)
            if fd not in (0, 1, 3):
                os.close(fd)
            os.execv(cmd[0], cmd)
        c.close()
'''

# inetd's wrapper: keep virtuald's log (-d) and its exit status.
WRAPPER = """#!/bin/sh
%(virtuald)s -d -v "$@" 2>>%(log)s
echo "exit=$?" >>%(log)s
"""


def setup(env, conf_extra="", users=None):
    """Two domain roots with busybox, and a virtual.conf for them."""
    doms = []
    for name, ips in (("alpha.test", [ALPHA4, ALPHA6]),
                      ("beta.test", [BETA4, BETA6])):
        d = env.make_domain_root(name, ips, users=users)
        shutil.copy(BUSYBOX, d.path("bin/busybox"))
        os.chmod(d.path("bin/busybox"), 0o755)
        doms.append(d)
    alpha, beta = doms
    # Mixed tabs and spaces, a comment, and no newline at the end.
    text = ("# test domains\n"
            "%s\t%s\n"
            "%s   \t %s\n"
            "\n"
            "%s %s\n" % (ALPHA4, alpha.root, ALPHA6, alpha.root,
                         BETA4, beta.root) +
            conf_extra +
            "%s\t\t%s" % (BETA6, beta.root))
    conf = env.path("virtual.conf")
    with open(conf, "w") as f:
        f.write(text)
    return alpha, beta, conf


class Front:
    """One way of putting virtuald in front of a connection."""

    def __init__(self, env, kind):
        self.env = env
        self.kind = kind
        self.proc = None
        self.logfile = env.path("virtuald-%s.log" % kind)
        self.seen = 0

    def start(self, conf, vargs, prog):
        env, v = self.env, self.env.bin("virtuald")
        if self.kind == "inetd":
            wrap = env.path("wrap.sh")
            with open(wrap, "w") as f:
                f.write(WRAPPER % {"virtuald": v, "log": self.logfile})
            os.chmod(wrap, 0o755)
            args = " ".join(vargs + [conf] + prog)
            with open(env.path("inetd.conf"), "w") as f:
                f.write("*:%d stream tcp nowait root %s wrap.sh %s\n" %
                        (PORT, wrap, args))
            # A private /run keeps inetd's pid file off the host's.
            self.proc = env.start_process(
                ["unshare", "--mount", "--propagation", "private", "sh",
                 "-c", "mount -t tmpfs tmpfs /run && exec /usr/sbin/inetd "
                 "-d -i \"$0\"", env.path("inetd.conf")], name="inetd")
        elif self.kind == "socket":
            launcher = env.path("launcher.py")
            with open(launcher, "w") as f:
                f.write(LAUNCHER)
            listens = []
            for ip in (ALPHA4, BETA4, NOWHERE4, ALPHA6, BETA6):
                listens += ["--listen", "[%s]:%d" % (ip, PORT)]
            self.proc = env.start_process(
                [sys.executable, launcher, "--fd3", "--log", self.logfile]
                + listens + ["--", v, "-d", "-v", "-s"] + vargs + [conf]
                + prog, name="launcher")
            # The launcher's own stderr carries virtuald's log lines.
            self.logfile = None
        else:
            self.proc = env.start_process(
                [v, "-d", "-v", "-l", "*:%d" % PORT] + vargs + [conf] +
                prog, name="virtuald")
            self.logfile = None
        for ip in (ALPHA4, ALPHA6):
            env.wait_for_port(ip, PORT, proc=self.proc)
        # Our probe connections count as sessions; wait until they end.
        time.sleep(0.3)
        self.seen = len(self.exits())

    def log(self):
        text = self.proc.log()
        if self.logfile and os.path.exists(self.logfile):
            with open(self.logfile) as f:
                text += f.read()
        if self.kind == "socket":
            with open(self.env.path("virtuald-socket.log")) as f:
                text += f.read()
        return text

    def exits(self):
        """Exit statuses of the virtuald runs so far."""
        if self.kind == "listen":
            return [int(x) for x in re.findall(
                r"child \d+ exited (\d+)", self.proc.log())]
        return [int(x) for x in re.findall(r"exit=(-?\d+)", self.log())]

    def connect(self, ip, send=b""):
        """Reply bytes and virtuald's exit status for one connection."""
        data = self.env.tcp_exchange(ip, PORT, send)
        deadline = time.monotonic() + 10
        while True:
            ex = self.exits()
            if len(ex) > self.seen or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        rc = ex[self.seen] if len(ex) > self.seen else None
        self.seen = len(ex)
        return data, rc


def expect(front, ip, want, rc=0):
    data, got_rc = front.connect(ip)
    assert data == want, "%s: got %r, want %r; log:\n%s" % (
        ip, data, want, front.log())
    if rc is not None:
        if rc == "nonzero":
            assert got_rc not in (0, None), \
                "%s: exit %r, want non-zero; log:\n%s" % (
                    ip, got_rc, front.log())
        else:
            assert got_rc == rc, "%s: exit %r, want %r; log:\n%s" % (
                ip, got_rc, rc, front.log())


# --------------------------------------------------------------------
# Cases, each run in every front end.


def case_mailname(env, kind):
    alpha, beta, conf = setup(env)
    f = Front(env, kind)
    f.start(conf, [], MAILNAME)
    expect(f, ALPHA4, b"alpha.test\n")
    expect(f, BETA4, b"beta.test\n")
    expect(f, ALPHA6, b"alpha.test\n")
    expect(f, BETA6, b"beta.test\n")
    log = f.log()
    assert re.search(r"local=192\.0\.2\.10 dir=%s program=%s" % (
        re.escape(alpha.root), BUSYBOX), log), log
    assert re.search(r"peer=2001:db8::20 local=2001:db8::20 dir=%s" %
                     re.escape(beta.root), log), log


def case_user(env, kind):
    alpha, beta, conf = setup(env)
    f = Front(env, kind)
    f.start(conf, ["-u", "bob"], [BUSYBOX, "id", "-u"])
    expect(f, ALPHA4, b"%d\n" % alpha.uids["bob"])
    expect(f, BETA6, b"%d\n" % beta.uids["bob"])
    assert alpha.uids["bob"] != beta.uids["bob"]


def case_group(env, kind):
    alpha, beta, conf = setup(env)
    f = Front(env, kind)
    f.start(conf, ["-u", "bob", "-g", "virtmail"], [BUSYBOX, "id", "-g"])
    expect(f, ALPHA4, b"%d\n" % alpha.uids["virtmail"])
    expect(f, BETA4, b"%d\n" % beta.uids["virtmail"])


def case_unknown_user(env, kind):
    alpha, beta, conf = setup(env, users={"carol": "pw"})
    with open(beta.path("etc/passwd"), "a") as pw:
        pw.write("dave:x:3999:3999:dave:/home/dave:/bin/sh\n")
    f = Front(env, kind)
    f.start(conf, ["-u", "dave"], [BUSYBOX, "id", "-u"])
    expect(f, BETA4, b"3999\n")
    # dave exists only in beta's passwd, not in alpha's.
    expect(f, ALPHA4, b"", "nonzero")
    assert "user dave" in f.log(), f.log()


def case_no_domain(env, kind):
    alpha, beta, conf = setup(env)
    f = Front(env, kind)
    f.start(conf, [], MAILNAME)
    expect(f, NOWHERE4, b"", "nonzero")
    assert re.search(r"local=192\.0\.2\.30: no domain", f.log()), f.log()
    expect(f, ALPHA4, b"alpha.test\n")


def case_missing_conf(env, kind):
    setup(env)
    missing = env.path("no-such-virtual.conf")
    f = Front(env, kind)
    if kind == "listen":
        # Checked at startup: refuse to start at all.
        p = env.start_process([env.bin("virtuald"), "-d", "-l",
                               "*:%d" % PORT, missing] + MAILNAME)
        rc = p.wait(10)
        assert rc not in (0, None), rc
        assert missing in p.log(), p.log()
        return
    f.start(missing, [], MAILNAME)
    expect(f, ALPHA4, b"", "nonzero")
    assert missing in f.log(), f.log()


def case_missing_dir(env, kind):
    alpha, beta, conf = setup(
        env, conf_extra="%s %s\n" % (NOWHERE4, env.path("no-such-dir")))
    f = Front(env, kind)
    f.start(conf, [], MAILNAME)
    expect(f, NOWHERE4, b"", "nonzero")
    expect(f, BETA6, b"beta.test\n")
    assert re.search(r"virtual\.conf:6:", f.log()), f.log()


def case_malformed_line(env, kind):
    alpha, beta, conf = setup(env, conf_extra="this-is-not-an-address\n"
                              "192.0.2.300 /tmp\n")
    f = Front(env, kind)
    f.start(conf, [], MAILNAME)
    expect(f, ALPHA4, b"alpha.test\n")
    expect(f, BETA6, b"beta.test\n")
    log = f.log()
    assert re.search(r"virtual\.conf:6:", log), log
    assert re.search(r"virtual\.conf:7:", log), log


def case_missing_program(env, kind):
    alpha, beta, conf = setup(env)
    f = Front(env, kind)
    f.start(conf, [], ["/bin/no-such-program"])
    expect(f, ALPHA4, b"", 127)
    assert re.search(r"cannot execute /bin/no-such-program", f.log()), \
        f.log()


def case_unsafe_root(env, kind):
    alpha, beta, conf = setup(env)
    os.chmod(beta.root, 0o777)
    f = Front(env, kind)
    f.start(conf, [], MAILNAME)
    expect(f, BETA4, b"", "nonzero")
    expect(f, ALPHA4, b"alpha.test\n")
    assert re.search(r"cannot enter %s" % re.escape(beta.root), f.log()), \
        f.log()


def _make(case, kind):
    def t(env):
        case(env, kind)
    t.__name__ = "test_%s_%s" % (kind, case.__name__[len("case_"):])
    t.__qualname__ = t.__name__
    return t


for _kind in ("inetd", "socket", "listen"):
    for _case in (case_mailname, case_user, case_group, case_unknown_user,
                  case_no_domain, case_missing_conf, case_missing_dir,
                  case_malformed_line, case_missing_program,
                  case_unsafe_root):
        _t = _make(_case, _kind)
        globals()[_t.__name__] = _t


# --------------------------------------------------------------------
# Command line and standalone mode


def test_usage(env):
    v = env.bin("virtuald")
    for argv in ([v], [v, "conf"], [v, "-x", "conf", "/bin/true"],
                 [v, "-g", "wheel", "conf", "/bin/true"],
                 [v, "-s", "-l", "25", "conf", "/bin/true"],
                 [v, "-m", "0", "-l", "25", "conf", "/bin/true"]):
        rc, out, err = env.run(argv)
        assert rc == 64, (argv, rc, err)
        assert "usage" in err, err
    rc, out, err = env.run([v, "conf", "relative/prog"])
    assert rc == 64, (rc, err)


def test_socket_activation_checks(env):
    """-s refuses LISTEN_PID of another process and a missing fd 3."""
    alpha, beta, conf = setup(env)
    v = env.bin("virtuald")
    e = dict(os.environ, LISTEN_FDS="1", LISTEN_PID="1")
    rc, out, err = env.run([v, "-d", "-s", conf] + MAILNAME, env=e)
    assert rc not in (0, None) and "LISTEN_PID" in err, (rc, err)
    e = dict(os.environ)
    e.pop("LISTEN_PID", None)
    rc, out, err = env.run([v, "-d", "-s", conf] + MAILNAME, env=e)
    assert rc not in (0, None) and "LISTEN_PID" in err, (rc, err)


def test_listen_specific_addresses(env):
    alpha, beta, conf = setup(env)
    v = env.bin("virtuald")
    p4 = env.start_process([v, "-d", "-l", "%s:%d" % (BETA4, PORT), conf]
                           + MAILNAME)
    p6 = env.start_process([v, "-d", "-l", "[%s]:%d" % (ALPHA6, PORT),
                            conf] + MAILNAME)
    env.wait_for_port(BETA4, PORT, proc=p4)
    env.wait_for_port(ALPHA6, PORT, proc=p6)
    assert env.tcp_exchange(BETA4, PORT) == b"beta.test\n"
    assert env.tcp_exchange(ALPHA6, PORT) == b"alpha.test\n"
    for spec in ("x", "0", "65536", "2001:db8::10:25", "[::1]25",
                 "192.0.2.300:25"):
        rc, out, err = env.run([v, "-d", "-l", spec, conf] + MAILNAME)
        assert rc not in (0, None), (spec, rc, err)


def test_listen_sigterm(env):
    alpha, beta, conf = setup(env)
    p = env.start_process([env.bin("virtuald"), "-d", "-l", "*:%d" % PORT,
                           conf] + MAILNAME)
    env.wait_for_port(ALPHA4, PORT, proc=p)
    assert env.tcp_exchange(ALPHA4, PORT) == b"alpha.test\n"
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0, p.log()
    try:
        env.tcp_exchange(ALPHA4, PORT)
    except ConnectionRefusedError:
        pass
    else:
        raise AssertionError("still accepting after SIGTERM")


def test_listen_max_children(env):
    """With -m 1 a second connection waits for the first to end."""
    alpha, beta, conf = setup(env)
    p = env.start_process([env.bin("virtuald"), "-d", "-m", "1", "-l",
                           "*:%d" % PORT, conf, BUSYBOX, "cat"])
    env.wait_for_port(ALPHA4, PORT, proc=p)
    time.sleep(0.3)     # let the probe's child exit
    c1 = socket.create_connection((ALPHA4, PORT), timeout=5)
    c1.sendall(b"one\n")
    assert c1.recv(100) == b"one\n"
    c2 = socket.create_connection((BETA4, PORT), timeout=5)
    c2.sendall(b"two\n")
    c2.settimeout(0.7)
    try:
        got = c2.recv(100)
    except socket.timeout:
        got = None
    assert got is None, "second connection served beyond -m 1: %r" % got
    c1.close()
    c2.settimeout(5)
    assert c2.recv(100) == b"two\n"
    c2.close()


# --------------------------------------------------------------------
# Who runs the service: run_as, -R, and the id policy (issue 13)


def ranged_setup(env, users=None):
    """The two roots with a virtual.conf that declares their uid ranges."""
    alpha, beta, _ = setup(env, users=users)
    conf = env.write_virtual_conf(
        [(ALPHA4, alpha.root), (ALPHA6, alpha.root), (BETA4, beta.root),
         (BETA6, beta.root)], path=env.path("virtual-ranges.conf"))
    with open(conf) as f:
        assert "uids=%d-%d" % (vmtest.uid_base("alpha.test"),
                               vmtest.uid_base("alpha.test") + 999) in f.read()
    return alpha, beta, conf


def service_status(env, root, proc, timeout=10):
    """/proc/PID/status of the busybox serving inside root, as a dict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in vmtest.tree_pids(proc.popen.pid):
            try:
                if os.readlink("/proc/%d/root" % pid) != root:
                    continue
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if not f.read().startswith(BUSYBOX.encode()):
                        continue
                with open("/proc/%d/status" % pid) as f:
                    st = dict(line.split(":", 1) for line in
                              f.read().splitlines() if ":" in line)
                st["fds"] = sorted(int(n) for n in
                                   os.listdir("/proc/%d/fd" % pid))
                return st
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError("no service process in %s; log:\n%s" % (
        root, proc.log()))


def start_listen(env, conf, vargs, prog):
    p = env.start_process([env.bin("virtuald"), "-d", "-v", "-l",
                           "*:%d" % PORT] + vargs + [conf] + prog)
    env.wait_for_port(ALPHA4, PORT, proc=p)
    return p


def cap_has(status, field, cap):
    return (int(status[field].strip(), 16) >> cap) & 1


CAP_SYS_CHROOT, CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SETUID = 18, 21, 19, 7


def test_run_as_without_u(env):
    """Without -u the service runs as the domain's run_as, with no
    capability at all and the seccomp id filter in place."""
    alpha, beta, conf = ranged_setup(env)
    p = start_listen(env, conf, [], [BUSYBOX, "cat"])
    c = socket.create_connection((ALPHA4, PORT), timeout=5)
    try:
        c.sendall(b"x\n")
        assert c.recv(10) == b"x\n"
        st = service_status(env, alpha.root, p)
    finally:
        c.close()
    ra = alpha.uids["virtmail"]
    assert st["Uid"].split() == [str(ra)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(ra)] * 4, st["Gid"]
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd"):
        assert int(st[field].strip(), 16) == 0, (field, st[field])
    assert st["Seccomp"].strip() == "2", st["Seccomp"]
    # Nothing of virtuald's but the connection: not its syslog socket.
    assert st["fds"] == [0, 1, 2], st["fds"]
    # no_new_privs stays off: setgid virtmail-sendmail must work.
    assert st["NoNewPrivs"].strip() == "0", st["NoNewPrivs"]
    assert re.search(r"dir=%s program=%s user=virtmail" % (
        re.escape(alpha.root), BUSYBOX), p.log()), p.log()


def test_no_run_as_refused(env):
    alpha, beta, conf = ranged_setup(env)
    with open(beta.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.beta.test\n")
    p = start_listen(env, conf, [], MAILNAME)
    assert env.tcp_exchange(BETA4, PORT) == b""
    assert env.tcp_exchange(ALPHA4, PORT) == b"alpha.test\n"
    vmtest.wait_for_text(p.log, r"dir=%s: no run_as in etc/virtmail\.conf "
                         r"and no -u: refusing to run %s as root \(-R\)" %
                         (re.escape(beta.root), BUSYBOX))


def test_root_option_limits_caps(env):
    """-R: uid 0 inside the root, but no capability that leaves it."""
    alpha, beta, conf = ranged_setup(env)
    p = start_listen(env, conf, ["-R"], [BUSYBOX, "cat"])
    for ip, d, setid in ((ALPHA4, alpha, 1), (BETA4, beta, 1)):
        c = socket.create_connection((ip, PORT), timeout=5)
        try:
            c.sendall(b"x\n")
            assert c.recv(10) == b"x\n"
            st = service_status(env, d.root, p)
        finally:
            c.close()
        assert st["Uid"].split() == ["0"] * 4, st["Uid"]
        for cap in (CAP_SYS_CHROOT, CAP_SYS_ADMIN, CAP_SYS_PTRACE):
            for field in ("CapBnd", "CapPrm", "CapEff"):
                assert not cap_has(st, field, cap), (field, cap, st[field])
        assert int(st["CapInh"].strip(), 16) == 0
        assert cap_has(st, "CapEff", CAP_SETUID) == setid
        assert st["NoNewPrivs"].strip() == "1"
        assert st["Seccomp"].strip() == "2"
    assert "user=root (-R)" in p.log(), p.log()


def test_root_option_legacy_no_setuid(env):
    """-R for a domain without a range: not even CAP_SETUID."""
    alpha, beta, conf = setup(env)
    p = start_listen(env, conf, ["-R"], [BUSYBOX, "cat"])
    c = socket.create_connection((ALPHA4, PORT), timeout=5)
    try:
        c.sendall(b"x\n")
        assert c.recv(10) == b"x\n"
        st = service_status(env, alpha.root, p)
    finally:
        c.close()
    assert st["Uid"].split() == ["0"] * 4, st["Uid"]
    assert not cap_has(st, "CapBnd", CAP_SETUID)
    assert not cap_has(st, "CapBnd", CAP_SYS_CHROOT)


def test_usage_root_and_user(env):
    rc, out, err = env.run([env.bin("virtuald"), "-R", "-u", "bob", "conf",
                            "/bin/true"])
    assert rc == 64 and "usage" in err, (rc, err)


def test_user_reusing_other_domains_uid(env):
    """-u with a passwd line that reuses beta's bob's uid is refused,
    with a log line naming the file and line; with declared ranges and
    with plain (legacy) lines alike."""
    for ranged in (True, False):
        alpha, beta, conf = (ranged_setup if ranged else setup)(env)
        stolen = beta.uids["bob"]
        with open(alpha.path("etc/passwd"), "a") as f:
            f.write("mallory:x:%d:%d::/home/bob:/bin/sh\n" % (
                stolen, alpha.uids["bob"]))
        with open(alpha.path("etc/passwd")) as f:
            line = len(f.read().splitlines())
        p = start_listen(env, conf, ["-u", "mallory"],
                         [BUSYBOX, "id", "-u"])
        assert env.tcp_exchange(ALPHA4, PORT) == b""
        if ranged:
            why = r"is outside alpha\.test's range %d-%d \(%s:1\)" % (
                alpha.uids["virtmail"], alpha.uids["virtmail"] + 999,
                re.escape(conf))
        else:
            why = r"is also beta\.test's bob \(%s:3\)" % re.escape(
                beta.path("etc/passwd"))
        vmtest.wait_for_text(p.log, r"user mallory: %s:%d: uid %d of "
                             r"mallory %s" % (re.escape(
                                 alpha.path("etc/passwd")), line, stolen,
                                 why))
        # bob of alpha, in range, still served.
        p.stop()
        p = start_listen(env, conf, ["-u", "bob"], [BUSYBOX, "id", "-u"])
        assert env.tcp_exchange(ALPHA4, PORT) == b"%d\n" % alpha.uids["bob"]
        p.stop()
