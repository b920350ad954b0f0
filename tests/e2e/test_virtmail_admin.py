"""The virtmail admin command's editing subcommands against temporary
trees: domain add/list/del (with a live reload of virtmail-smtpd and
virtmail-pop3d through their pid files), user add/del/list, passwd,
alias add/del/list, newaliases, exec, fs add-program, the classic
symlink names, refused names, 20 concurrent "user add" runs,
kill -9 during "user add", purges under a racing symlink swapper and
refused while the domain's processes run, and exec in a session and
on a pty of its own (no TIOCSTI into the caller's terminal)."""

import crypt
import os
import random
import re
import signal
import socket
import stat
import struct
import subprocess
import time

import vmtest

EX_USAGE, EX_DATAERR, EX_NOUSER = 64, 65, 67

NEW_IP = vmtest.NOWHERE_IP4     # on lo, in no domain until we add one


class Admin:
    """virtmail with a private virtual.conf, global conf and pid dir."""

    def __init__(self, env):
        self.env = env
        self.vconf = env.path("virtual.conf")
        self.gconf = env.path("virtmail.conf")
        self.piddir = env.path("run")
        os.makedirs(self.piddir, exist_ok=True)
        with open(self.gconf, "w") as f:
            f.write("retry_min 1\nretry_max 2\n")
        self.base = env.path("domains")

    def argv(self, *args, prog="virtmail"):
        return [self.env.bin(prog) if prog == "virtmail" else prog,
                "-f", self.vconf, "-C", self.gconf, "-P",
                self.piddir] + list(args)

    def run(self, *args, input=None, prog="virtmail", timeout=30):
        rc, out, err = self.env.run(self.argv(*args, prog=prog),
                                    input=input, timeout=timeout)
        return rc, out + err

    def ok(self, *args, input=None):
        rc, out = self.run(*args, input=input)
        assert rc == 0, "virtmail %s: rc %s\n%s" % (" ".join(args), rc,
                                                   out)
        return out

    def root(self, name):
        return os.path.join(self.base, name)

    def add_domain(self, name, *ips):
        return self.ok("domain", "add", name, *ips, "--root",
                       self.root(name), "--resolver", "127.0.0.1")


def read(path):
    with open(path) as f:
        return f.read()


def passwd_lines(path):
    """Every line of a passwd file, each checked to have 7 fields."""
    lines = read(path).splitlines()
    for l in lines:
        assert len(l.split(":")) == 7, "torn line %r in %s" % (l, path)
    return lines


def test_domain_add_builds_minimal_root(env):
    a = Admin(env)
    out = a.add_domain("alpha.test", "192.0.2.10", "2001:db8::10")
    assert "uids 10000-10999" in out, out
    r = a.root("alpha.test")
    st = os.stat(r)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755
    assert stat.S_IMODE(os.stat(r + "/etc/shadow").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(r + "/tmp").st_mode) == 0o1777
    assert stat.S_ISCHR(os.stat(r + "/dev/null").st_mode)
    assert stat.S_ISCHR(os.stat(r + "/dev/urandom").st_mode)
    q = os.stat(r + "/var/spool/virtmail")
    assert q.st_uid == 10000 and stat.S_IMODE(q.st_mode) == 0o710
    # The injector has no privilege; only virtmail-postdrop is setgid.
    sm = os.stat(r + "/usr/sbin/sendmail")
    assert stat.S_IMODE(sm.st_mode) == 0o755 and sm.st_gid == 0
    pd = os.stat(r + "/usr/sbin/virtmail-postdrop")
    assert stat.S_IMODE(pd.st_mode) == 0o2755 and pd.st_gid == 10999
    assert pd.st_uid == 0
    assert "virtmail-drop:x:10999:virtmail" in read(r + "/etc/group")
    hosts = read(r + "/etc/hosts")
    assert "192.0.2.10\tmx.alpha.test alpha.test" in hosts, hosts
    assert "beta" not in hosts
    assert read(r + "/etc/resolv.conf") == "nameserver 127.0.0.1\n"
    assert read(r + "/etc/mailname") == "alpha.test\n"
    assert "postmaster: root" in read(r + "/etc/aliases")
    # Nothing of the host's secrets.
    assert not os.path.exists(r + "/etc/ssh")
    for l in read(r + "/etc/shadow").splitlines():
        assert l.split(":")[0] in ("root", "virtmail"), l
        assert l.split(":")[1] == "*", l
    assert read(a.vconf) == ("192.0.2.10\t%s\tuids=10000-10999\n"
                             "2001:db8::10\t%s\tuids=10000-10999\n" %
                             (r, r))
    out = a.ok("check")
    assert "configuration OK, 1 domain" in out, out

    a.add_domain("beta.test", "192.0.2.20")
    assert ":11000:" in read(a.root("beta.test") + "/etc/passwd")
    out = a.ok("domain", "list")
    assert re.search(r"alpha\.test\s+192\.0\.2\.10,2001:db8::10\s+%s\s+0"
                     r"\s+0" % re.escape(r), out), out
    assert "beta.test" in out

    # Refused: the same name, a used address, bad names and addresses.
    before = read(a.vconf)
    for args in (["alpha.test", NEW_IP], ["gamma.test", "192.0.2.20"],
                 ["bad/name", NEW_IP], ["-x.test", NEW_IP],
                 ["a" * 64 + ".test", NEW_IP], ["gamma.test", "1.2.3"],
                 ["gamma.test", NEW_IP, "--root", "relative/dir"],
                 ["gamma.test", NEW_IP, "--root", "/tmp/../etc"]):
        rc, out = a.run("domain", "add", *args)
        assert rc != 0, (args, out)
    assert read(a.vconf) == before
    assert not os.path.exists(a.root("gamma.test"))

    out = a.ok("domain", "del", "beta.test")
    assert "beta" not in read(a.vconf)
    assert os.path.isdir(a.root("beta.test"))
    a.ok("domain", "del", "alpha.test", "--purge")
    assert not os.path.exists(r)
    assert read(a.vconf) == ""
    rc, out = a.run("domain", "del", "alpha.test")
    assert rc != 0, out


def test_user_and_alias_commands(env):
    a = Admin(env)
    a.add_domain("alpha.test", "192.0.2.10")
    r = a.root("alpha.test")
    out = a.ok("user", "add", "alpha.test", "bob", "--password-stdin",
               input="s3cret\n")
    assert "uid 10001" in out, out
    pw = [l for l in passwd_lines(r + "/etc/passwd") if l.startswith("bob:")]
    assert pw == ["bob:x:10001:10001:bob:/home/bob:/bin/false"], pw
    sh = [l for l in read(r + "/etc/shadow").splitlines()
          if l.startswith("bob:")][0].split(":")
    assert sh[1].startswith("$y$"), sh
    assert crypt.crypt("s3cret", sh[1]) == sh[1]
    assert "bob:x:10001:" in read(r + "/etc/group")
    for sub in ("", "/Maildir", "/Maildir/new", "/Maildir/cur",
                "/Maildir/tmp"):
        st = os.stat(r + "/home/bob" + sub)
        assert st.st_uid == 10001 and stat.S_IMODE(st.st_mode) == 0o700
    # No terminal, no --password-stdin: locked until passwd.
    out = a.ok("user", "add", "alpha.test", "alice")
    assert "locked" in out, out
    out = a.ok("user", "list", "alpha.test")
    assert re.search(r"bob\s+10001\s+/home/bob\s+set", out), out
    assert re.search(r"alice\s+10002\s+/home/alice\s+locked", out), out
    a.ok("passwd", "alpha.test", "alice", "--password-stdin",
         input="other\n")
    h = [l for l in read(r + "/etc/shadow").splitlines()
         if l.startswith("alice:")][0].split(":")[1]
    assert crypt.crypt("other", h) == h

    before = {p: read(r + "/etc/" + p) for p in ("passwd", "shadow",
                                                  "group", "aliases")}
    for bad in ("../x", "a/b", "a:b", "..", ".x", "-x", "x" * 65,
                "a\x01b", "a b", "Bob", "", "bob"):
        rc, out = a.run("user", "add", "alpha.test", bad)
        assert rc == EX_DATAERR, (bad, rc, out)
        if bad not in ("bob", ""):
            rc, out = a.run("alias", "add", "alpha.test", bad, "bob")
            assert rc == EX_DATAERR, (bad, rc, out)
    for bad in ("|/bin/sh", "/etc/passwd", ":include:/x", "a@b@c",
                "x@-bad", "a,b@c.test"):
        rc, out = a.run("alias", "add", "alpha.test", "info", bad)
        assert rc == EX_DATAERR, (bad, rc, out)
    rc, out = a.run("passwd", "alpha.test", "ghost", "--password-stdin",
                    input="x\n")
    assert rc == EX_NOUSER, out
    rc, out = a.run("alias", "add", "alpha.test", "", "bob")
    assert rc == EX_DATAERR, out
    rc, out = a.run("user", "del", "alpha.test", "virtmail")
    assert rc != 0, out
    rc, out = a.run("user", "add", "nosuch.test", "bob")
    assert rc != 0, out
    assert read(r + "/etc/passwd") == before["passwd"]
    assert read(r + "/etc/group") == before["group"]
    assert read(r + "/etc/aliases") == before["aliases"]

    # Aliases: postmaster's placeholder root gives way to a real user.
    a.ok("alias", "add", "alpha.test", "postmaster", "bob")
    a.ok("alias", "add", "alpha.test", "info", "bob", "fred@example.org")
    a.ok("alias", "add", "alpha.test", "info", "alice")
    out = a.ok("alias", "list", "alpha.test")
    assert "postmaster: bob\n" in out, out
    assert "info: bob, fred@example.org, alice\n" in out, out
    assert "2 aliases OK" in a.ok("newaliases", "alpha.test")
    a.ok("alias", "del", "alpha.test", "info")
    assert "info" not in read(r + "/etc/aliases")
    rc, out = a.run("alias", "del", "alpha.test", "info")
    assert rc == EX_NOUSER, out
    with open(r + "/etc/aliases", "a") as f:
        f.write("broken line\nlost: nobodyhere\n")
    rc, out = a.run("newaliases", "alpha.test")
    assert rc == EX_DATAERR, out
    assert re.search(r"aliases:\d+: ", out), out
    assert "nobodyhere: no such user or alias" in out, out
    with open(r + "/etc/aliases", "w") as f:
        f.write("postmaster: bob\n")

    a.ok("user", "del", "alpha.test", "alice")
    assert "alice" not in read(r + "/etc/passwd")
    assert "alice" not in read(r + "/etc/shadow")
    assert "alice" not in read(r + "/etc/group")
    assert os.path.isdir(r + "/home/alice")
    rc, out = a.run("user", "add", "alpha.test", "alice")
    assert rc != 0 and "earlier user" in out, out
    a.ok("user", "del", "alpha.test", "bob", "--purge")
    assert not os.path.exists(r + "/home/bob")
    out = a.ok("check")
    assert "configuration OK" in out, out


def test_user_add_concurrent(env):
    """20 runs at once: every user once, distinct uids, no torn file."""
    a = Admin(env)
    a.add_domain("alpha.test", "192.0.2.10")
    r = a.root("alpha.test")
    procs = [subprocess.Popen(a.argv("user", "add", "alpha.test",
                                     "u%02d" % i, "--password-stdin"),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
             for i in range(20)]
    for p in procs:
        out, _ = p.communicate(b"pw\n", timeout=30)
        assert p.returncode == 0, out.decode()
    lines = passwd_lines(r + "/etc/passwd")
    users = [l.split(":") for l in lines if l.startswith("u")]
    assert sorted(u[0] for u in users) == ["u%02d" % i for i in range(20)]
    uids = [int(u[2]) for u in users]
    assert sorted(uids) == list(range(10001, 10021)), uids
    assert len([l for l in read(r + "/etc/shadow").splitlines()
                if l.startswith("u")]) == 20
    assert len([l for l in read(r + "/etc/group").splitlines()
                if l.startswith("u")]) == 20
    for u in users:
        assert os.stat(r + u[5]).st_uid == int(u[2])


def test_user_add_kill9(env):
    """kill -9 at random moments: passwd is always the old file or the
    new one, and a later run succeeds."""
    a = Admin(env)
    a.add_domain("alpha.test", "192.0.2.10")
    r = a.root("alpha.test")
    rnd = random.Random(8)
    for i in range(15):
        old = read(r + "/etc/passwd")
        p = subprocess.Popen(a.argv("user", "add", "alpha.test",
                                    "k%02d" % i, "--password-stdin"),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        p.stdin.write(b"pw\n")
        p.stdin.flush()
        time.sleep(rnd.uniform(0, 0.03))
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        p.stdin.close()
        p.stdout.close()
        new = read(r + "/etc/passwd")
        passwd_lines(r + "/etc/passwd")
        assert new == old or (new.startswith(old) and
                              new[len(old):].startswith("k%02d:" % i)), \
            (old, new)
    a.ok("user", "add", "alpha.test", "after", "--password-stdin",
         input="pw\n")
    assert "after:" in read(r + "/etc/passwd")
    out = a.ok("check")
    assert "configuration OK" in out, out


def test_exec_and_symlinks(env):
    a = Admin(env)
    a.add_domain("alpha.test", "192.0.2.10")
    a.add_domain("beta.test", "192.0.2.20")
    a.ok("user", "add", "alpha.test", "bob", "--password-stdin",
         input="pw\n")
    for prog in ("/bin/cat", "/usr/bin/id"):
        a.ok("fs", "add-program", "alpha.test", prog)
    a.ok("fs", "add-program", "beta.test", "/bin/cat")
    out = a.ok("exec", "alpha.test", "cat", "/etc/mailname")
    assert out == "alpha.test\n", out
    out = a.ok("exec", "beta.test", "cat", "/etc/mailname")
    assert out == "beta.test\n", out
    out = a.ok("exec", "-u", "bob", "alpha.test", "id", "-u")
    assert out.strip() == "10001", out
    out = a.ok("exec", "alpha.test", "-u", "bob", "id", "-u")
    assert out.strip() == "10001", out
    rc, out = a.run("exec", "-u", "root", "alpha.test", "id")
    assert rc != 0, out
    # A passwd line that reuses beta's uid: no -u, file and line named.
    pw = a.root("alpha.test") + "/etc/passwd"
    before_pw = read(pw)
    with open(pw, "a") as f:
        f.write("mallory:x:11000:10000::/:/bin/false\n")
    n = len(read(pw).splitlines())
    rc, out = a.run("exec", "-u", "mallory", "alpha.test", "id", "-u")
    assert rc == EX_NOUSER, (rc, out)
    assert re.search(r"alpha\.test: mallory: %s:%d: uid 11000 of mallory "
                     r"is outside alpha\.test's range 10000-10999 "
                     r"\(%s:1\)" % (re.escape(pw), n, re.escape(a.vconf)),
                     out), out
    rc, out = a.run("check")
    assert rc == 1 and re.search(r"%s:%d: uid 11000 of mallory is outside"
                                 % (re.escape(pw), n), out), out
    with open(pw, "w") as f:
        f.write(before_pw)
    rc, out = a.run("exec", "alpha.test", "no-such-program")
    assert rc == 127, out
    # The host's shadow is not there to be read.
    rc, out = a.run("exec", "alpha.test", "cat", "/etc/shadow")
    assert "bob:$y$" in out and "root:*:" in out, out

    links = env.path("bin")
    os.makedirs(links)
    for name in ("virtexec", "virtpasswd", "virtadduser", "virtnewaliases",
                 "virtmailq", "virtfs"):
        os.symlink(env.bin("virtmail"), os.path.join(links, name))
    L = lambda n: os.path.join(links, n)  # noqa: E731
    rc, out = a.run("-d", "alpha.test", "cat", "/etc/hostname",
                    prog=L("virtexec"))
    assert rc == 1 and "No such file" in out, (rc, out)
    rc, out = a.run("-d", "alpha.test", "-u", "bob", "id", "-u",
                    prog=L("virtexec"))
    assert rc == 0 and out.strip() == "10001", out
    rc, out = a.run("-d", "alpha.test", "carol", "--password-stdin",
                    input="pw\n", prog=L("virtadduser"))
    assert rc == 0 and "carol@alpha.test" in out, out
    rc, out = a.run("-d", "alpha.test", "carol", "--password-stdin",
                    input="new\n", prog=L("virtpasswd"))
    assert rc == 0 and "password changed" in out, out
    rc, out = a.run("-d", "alpha.test", prog=L("virtnewaliases"))
    assert rc == 0 and "aliases OK" in out, out
    rc, out = a.run("-d", "alpha.test", prog=L("virtmailq"))
    assert rc == 0, out
    rc, out = a.run("-d", "beta.test", "--add-program", "/usr/bin/id",
                    prog=L("virtfs"))
    assert rc == 0 and os.path.exists(a.root("beta.test") +
                                      "/usr/bin/id"), out
    # virtfs DIR NAME IP: a root only, above the uids in use.
    rc, out = a.run(env.path("standalone"), "gamma.test", NEW_IP,
                    prog=L("virtfs"))
    assert rc == 0 and "uids 12000-12999" in out, out
    assert "%s\tmx.gamma.test gamma.test" % NEW_IP in read(
        env.path("standalone/etc/hosts"))
    assert "gamma" not in read(a.vconf)
    # No -d and no terminal: refused, not guessed.
    rc, out = a.run("carol", prog=L("virtpasswd"))
    assert rc == EX_USAGE and "-d DOMAIN" in out, out


def smtp_banner(ip, timeout=5):
    with socket.create_connection((ip, 25), timeout=timeout) as s:
        return s.recv(512).decode()


def test_domain_add_reloads_daemons(env):
    a = Admin(env)
    a.add_domain("alpha.test", "192.0.2.10")
    spid = os.path.join(a.piddir, "virtmail-smtpd.pid")
    ppid = os.path.join(a.piddir, "virtmail-pop3d.pid")
    smtpd = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f",
                               a.vconf, "-C", a.gconf, "-p", spid])
    pop3d = env.start_process([env.bin("virtmail-pop3d"), "-d", "-f",
                               a.vconf, "-C", a.gconf, "-p", ppid])
    env.wait_for_port("192.0.2.10", 25, proc=smtpd)
    env.wait_for_port("192.0.2.10", 110, proc=pop3d)
    assert read(spid).strip() == str(smtpd.pid)
    assert read(ppid).strip() == str(pop3d.pid)
    out = a.add_domain("gamma.test", NEW_IP)
    assert "virtmail-smtpd: reloading (pid %d)" % smtpd.pid in out, out
    assert "virtmail-pop3d: reloading (pid %d)" % pop3d.pid in out, out
    env.wait_for_port(NEW_IP, 25, proc=smtpd)
    assert "mx.gamma.test" in smtp_banner(NEW_IP)
    # The daemons' workers in gamma's root do not stop the purge: the
    # reload ends them, and the purge waits for that.
    groot = a.root("gamma.test")
    st = os.stat(groot)
    assert any(os.stat("/proc/%d/root" % pid).st_ino == st.st_ino
               for pid in vmtest.tree_pids(smtpd.pid)
               if os.path.exists("/proc/%d/root" % pid)), "no worker"
    a.ok("domain", "del", "gamma.test", "--purge")
    assert not os.path.exists(groot)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            b = smtp_banner(NEW_IP, 1)
        except OSError:
            break
        if not b.startswith("220"):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("gamma.test still served after domain del")
    # A stale pid file (a live process that is not the daemon) gets no
    # signal.
    smtpd.stop()
    pop3d.stop()
    assert not os.path.exists(spid)
    with open(spid, "w") as f:
        f.write("%d\n" % os.getpid())
    got = []
    old = signal.signal(signal.SIGHUP, lambda s, f: got.append(s))
    try:
        out = a.add_domain("delta.test", NEW_IP)
    finally:
        signal.signal(signal.SIGHUP, old)
    assert not got and "reloading" not in out, out


# --------------------------------------------------------------------
# Purges that resolve no path a user controls, and exec in a session
# of its own (issue 13, outcome 5).

EX_CANTCREAT, EX_TEMPFAIL = 73, 75

RACE_DIRS = 30      # directories the racer swaps for symlinks
RACE_FILES = 50     # files in each directory and in each of its subdirs

# Swaps each directory of TOP with a symlink to OUTSIDE and back, over
# and over, atomically (renameat2 RENAME_EXCHANGE), so that its path
# always names one or the other: while the symlink stands there, a
# purger that resolves paths deletes OUTSIDE's files, which have the
# same names.
RACER = r"""
import ctypes, os, sys
top, outside, ready = sys.argv[1:4]
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
dirs = [os.path.join(top, "d%02d" % i) for i in range(int(sys.argv[4]))]
for d in dirs:
    os.symlink(outside, d + ".l")
pairs = [(d.encode(), (d + ".l").encode()) for d in dirs]
rounds = 0
while True:
    for a, b in pairs:
        libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
    rounds += 1
    if rounds == 3:
        open(ready, "w").close()
"""


def make_race_tree(top, outside):
    """RACE_DIRS directories of RACE_FILES files, each with s/ and s/s/
    alike (4,500 files); OUTSIDE mirrors one of them (sentinels)."""
    def fill(d):
        for sub in ("", "s", "s/s"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
            for k in range(RACE_FILES):
                with open(os.path.join(d, sub, "f%03d" % k), "w") as f:
                    f.write("x")
    for i in range(RACE_DIRS):
        fill(os.path.join(top, "d%02d" % i))
    fill(outside)
    return sorted(os.path.join(dp, f) for dp, _, fs in os.walk(outside)
                  for f in fs)


def start_racer(env, top, outside):
    ready = env.path("racer.ready")
    racer = env.start_process(["/usr/bin/python3", "-c", RACER, top,
                               outside, ready, str(RACE_DIRS)],
                              name="racer")
    deadline = time.monotonic() + 20
    while not os.path.exists(ready):
        assert racer.poll() is None, racer.log()
        assert time.monotonic() < deadline, "racer never got going"
        time.sleep(0.02)
    return racer


def check_race_outcome(rc, out, top, sentinels):
    missing = [p for p in sentinels if not os.path.exists(p)]
    assert not missing, "%d of %d files outside the tree deleted: %s\n%s" % (
        len(missing), len(sentinels), missing[:5], out[-2000:])
    # Gone, or kept only for what the racer made after the last listing.
    assert rc in (0, EX_CANTCREAT), (rc, out[-2000:])
    if rc == 0:
        assert not os.path.lexists(top), out
    else:
        assert "left" in out, out


def test_user_purge_racing_symlinks(env):
    """user del --purge while a racer swaps directories of the home for
    symlinks to a host directory: no file outside is deleted."""
    a = Admin(env)
    a.add_domain("alpha.test", "192.0.2.10")
    a.ok("user", "add", "alpha.test", "bob", "--password-stdin",
         input="pw\n")
    home = a.root("alpha.test") + "/home/bob"
    outside = env.path("outside")
    sentinels = make_race_tree(home + "/tree", outside)
    racer = start_racer(env, home + "/tree", outside)
    rc, out = a.run("user", "del", "alpha.test", "bob", "--purge",
                    timeout=120)
    racer.stop()
    check_race_outcome(rc, out, home, sentinels)
    assert "bob:" not in read(a.root("alpha.test") + "/etc/passwd")


def test_domain_purge_racing_symlinks(env):
    """domain del --purge under the same race."""
    a = Admin(env)
    a.add_domain("alpha.test", "192.0.2.10")
    r = a.root("alpha.test")
    outside = env.path("outside")
    sentinels = make_race_tree(r + "/tmp/tree", outside)
    racer = start_racer(env, r + "/tmp/tree", outside)
    rc, out = a.run("domain", "del", "alpha.test", "--purge", timeout=120)
    racer.stop()
    check_race_outcome(rc, out, r, sentinels)
    assert read(a.vconf) == ""


def test_purge_symlinked_home_and_mount(env):
    """A home that is a symlink is not followed; a mount inside a root
    is not crossed; a symlink inside is removed, not its target."""
    a = Admin(env)
    a.add_domain("alpha.test", "192.0.2.10")
    a.ok("user", "add", "alpha.test", "bob", "--password-stdin",
         input="pw\n")
    a.ok("user", "add", "alpha.test", "carol", "--password-stdin",
         input="pw\n")
    r = a.root("alpha.test")
    outside = env.path("outside")
    os.makedirs(outside + "/sub")
    with open(outside + "/sub/keep", "w") as f:
        f.write("keep")
    os.rename(r + "/home/bob", r + "/home/bob.old")
    os.symlink(outside, r + "/home/bob")
    rc, out = a.run("user", "del", "alpha.test", "bob", "--purge")
    assert rc == EX_CANTCREAT and "not a directory" in out, (rc, out)
    os.symlink(outside + "/sub", r + "/home/carol/link")
    os.symlink(outside + "/sub/keep", r + "/home/carol/flink")
    a.ok("user", "del", "alpha.test", "carol", "--purge")
    assert not os.path.lexists(r + "/home/carol")
    assert os.path.isdir(r + "/home/bob.old")
    mnt = r + "/tmp/mnt"
    os.makedirs(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "none", mnt], check=True)
    try:
        with open(mnt + "/inside", "w") as f:
            f.write("x")
        rc, out = a.run("domain", "del", "alpha.test", "--purge")
        assert rc == EX_CANTCREAT and "not crossed" in out, (rc, out)
        assert os.path.exists(mnt + "/inside")
    finally:
        subprocess.run(["umount", mnt], check=True)
    assert read(outside + "/sub/keep") == "keep"
    # All but the mount point went.
    assert os.listdir(r) == ["tmp"] and os.listdir(r + "/tmp") == ["mnt"]


def _sleeper(env, argv, uid=None, root=None):
    def setup():
        if root is not None:
            os.chroot(root)
            os.chdir("/")
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=setup)


def _end(p):
    p.kill()
    p.wait(10)


def test_purge_refused_while_domain_runs(env):
    a = Admin(env)
    a.add_domain("alpha.test", "192.0.2.10")
    a.ok("user", "add", "alpha.test", "bob", "--password-stdin",
         input="pw\n")
    a.ok("fs", "add-program", "alpha.test", "/bin/sleep")
    r = a.root("alpha.test")
    vconf = read(a.vconf)
    # A process of bob's uid (10001), not even in the root.
    p = _sleeper(env, ["/bin/sleep", "600"], uid=10001)
    try:
        rc, out = a.run("user", "del", "alpha.test", "bob", "--purge")
        assert rc == EX_TEMPFAIL and "pid %d" % p.pid in out, (rc, out)
        assert "bob:" in read(r + "/etc/passwd")
        assert os.path.isdir(r + "/home/bob")
        rc, out = a.run("domain", "del", "alpha.test", "--purge")
        assert rc == EX_TEMPFAIL and "pid %d" % p.pid in out, (rc, out)
        assert read(a.vconf) == vconf and os.path.isdir(r)
    finally:
        _end(p)
    a.ok("user", "del", "alpha.test", "bob", "--purge")
    assert not os.path.exists(r + "/home/bob")
    # Root, chrooted into the domain.
    p = _sleeper(env, ["/bin/sleep", "600"], root=r)
    try:
        rc, out = a.run("domain", "del", "alpha.test", "--purge")
        assert rc == EX_TEMPFAIL and "pid %d" % p.pid in out, (rc, out)
        assert read(a.vconf) == vconf and os.path.isdir(r)
    finally:
        _end(p)
    a.ok("domain", "del", "alpha.test", "--purge")
    assert not os.path.exists(r) and read(a.vconf) == ""


# -- exec on a terminal

CAPS_OUT = {"CAP_DAC_READ_SEARCH": 2, "CAP_SYS_MODULE": 16,
            "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
            "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21, "CAP_MKNOD": 27}


def _set_ctty():
    import fcntl
    import termios
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_on_pty(argv, on_output=None, timeout=30):
    """Run argv in a new session whose controlling terminal is a new
    pty, on its fds 0-2, as an administrator's shell would.  on_output
    (text so far) may return bytes to type.  Returns (rc, output, what
    the terminal still holds as input, pid, the pty's device)."""
    import fcntl
    import select
    import termios
    master, slave = os.openpty()
    rdev = os.fstat(slave).st_rdev
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 37, 101,
                                                       0, 0))
    modes = termios.tcgetattr(slave)
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                         start_new_session=True, preexec_fn=_set_ctty)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert time.monotonic() < deadline, out
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    data = b""
                out += data
                if on_output is not None:
                    typed = on_output(out.decode("utf-8", "replace"))
                    if typed:
                        os.write(master, typed)
                        on_output = None
            elif p.poll() is not None:
                break
        # The terminal is as it was (virtmail put it in raw mode).
        assert termios.tcgetattr(slave) == modes, out
        # Nobody reads the terminal now: what is queued there is what
        # the administrator's shell would read next.
        os.set_blocking(slave, False)
        try:
            queued = os.read(slave, 4096)
        except BlockingIOError:
            queued = b""
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(10)
        os.close(master)
        os.close(slave)
    return p.returncode, out.decode("utf-8", "replace"), queued, p.pid, rdev


def probe_report(text):
    """The ttyprobe lines as {"pid": .., "fd0": {...}, ...}."""
    rep = {}
    for line in text.replace("\r", "").splitlines():
        m = re.match(r"pid=(\d+) sid=(\d+) uid=(\d+)$", line)
        if m:
            rep["pid"], rep["sid"], rep["uid"] = map(int, m.groups())
        m = re.match(r"(fd\d) tty=(\d) rdev=(\d+) ctty=(\d) sti=(.*)$", line)
        if m:
            rep[m.group(1)] = {"tty": int(m.group(2)),
                               "rdev": int(m.group(3)),
                               "ctty": int(m.group(4)), "sti": m.group(5)}
        m = re.match(r"winsize=(\d+x\d+)$", line)
        if m:
            rep["winsize"] = m.group(1)
        m = re.match(r"devtty=(.*) sti=(.*)$", line)
        if m:
            rep["devtty"] = m.group(1)
    assert "pid" in rep and "fd2" in rep and "devtty" in rep, text
    return rep


def exec_domain(env):
    a = Admin(env)
    a.add_domain("alpha.test", "192.0.2.10")
    a.ok("user", "add", "alpha.test", "bob", "--password-stdin",
         input="pw\n")
    probe = os.path.abspath(env.bin("tests/ttyprobe"))
    a.ok("fs", "add-program", "alpha.test", probe)
    a.ok("fs", "add-program", "alpha.test", "/usr/bin/id")
    return a, probe


def test_exec_user_cannot_inject_into_terminal(env):
    a, probe = exec_domain(env)
    rc, out, queued, pid, rdev = run_on_pty(
        a.argv("exec", "-u", "bob", "alpha.test", probe, "-x", "3"))
    assert rc == 3, (rc, out)
    assert queued == b"", "typed into the caller's terminal: %r\n%s" % (
        queued, out)
    rep = probe_report(out)
    assert rep["uid"] == 10001, out
    # A session of its own (it leads it), not the caller's (pid).
    assert rep["sid"] == rep["pid"] and rep["sid"] != pid, out
    for fd in ("fd0", "fd1", "fd2"):
        # A terminal, its own, and never the caller's.
        assert rep[fd]["tty"] == 1 and rep[fd]["ctty"] == 1, out
        assert rep[fd]["rdev"] != rdev, out
    assert rep["devtty"] != "ok", out
    assert rep["winsize"] == "37x101", out   # passed on to its pty


def test_exec_root_on_terminal_drops_caps(env):
    a, probe = exec_domain(env)
    seen = {}

    def on_output(text):
        # The whole report is there once its last line is.
        if not re.search(r"winsize=\d+x\d+\r?\n", text) or "pid" in seen:
            return None
        rep = probe_report(text)
        seen["pid"] = rep["pid"]
        with open("/proc/%d/status" % rep["pid"]) as f:
            seen["status"] = f.read()
        with open("/proc/%d/stat" % rep["pid"]) as f:
            seen["stat"] = f.read()
        return b"q\n"

    rc, out, queued, pid, rdev = run_on_pty(
        a.argv("exec", "alpha.test", probe, "-w"), on_output)
    assert rc == 0 and "got q" in out, (rc, out)
    assert queued == b"", (queued, out)
    rep = probe_report(out)
    assert rep["uid"] == 0 and rep["sid"] == rep["pid"] != pid, out
    fields = seen["stat"].rsplit(")", 1)[1].split()
    assert int(fields[3]) == rep["pid"], seen["stat"]     # session
    tty_nr = int(fields[4])
    assert tty_nr != 0 and tty_nr != rdev, (tty_nr, rdev)
    caps = {}
    for l in seen["status"].splitlines():
        k, _, v = l.partition(":")
        if k.startswith("Cap"):
            caps[k] = int(v.strip(), 16)
    for name, bit in CAPS_OUT.items():
        for s in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
            assert not caps[s] & (1 << bit), (name, s, seen["status"])
    assert caps["CapEff"] & (1 << 0), caps   # CAP_CHOWN: still root there


def test_exec_without_terminal(env):
    a, probe = exec_domain(env)
    rc, out = a.run("exec", "-u", "bob", "alpha.test", probe, "-x", "5")
    assert rc == 5, (rc, out)
    rep = probe_report(out)
    assert rep["sid"] == rep["pid"] and rep["uid"] == 10001, out
    for fd in ("fd0", "fd1", "fd2"):
        assert rep[fd]["tty"] == 0 and rep[fd]["ctty"] == 0, out
    assert rep["devtty"] != "ok", out
    # stdin and stdout pass through as they are.
    rc, out = a.run("exec", "-u", "bob", "alpha.test", probe, "-w",
                    input="hello\nq\n")
    assert rc == 0 and "got q" in out, out
    out = a.ok("exec", "-u", "bob", "alpha.test", "id", "-u")
    assert out == "10001\n", out
    # Output to a file, the terminal on stderr only.
    master, slave = os.openpty()
    try:
        p = subprocess.run(a.argv("exec", "-u", "bob", "alpha.test",
                                  probe), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=slave,
                           start_new_session=True, timeout=30)
    finally:
        os.close(master)
        os.close(slave)
    rep = probe_report(p.stdout.decode())
    assert rep["fd0"]["tty"] == 0 and rep["fd1"]["tty"] == 0, rep
    assert rep["fd2"]["tty"] == 1 and rep["sid"] == rep["pid"], rep


def test_exec_user_bound_to_domain_ids(env):
    """exec -u: the user's program runs under its domain's seccomp id
    filter (virtmail domain add declares the range), as the daemons'
    processes do."""
    a, probe = exec_domain(env)
    p = subprocess.Popen(a.argv("exec", "-u", "bob", "alpha.test", probe,
                                "-w"), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        first = p.stdout.readline().decode()
        m = re.match(r"pid=(\d+) ", first)
        assert m, first
        with open("/proc/%s/status" % m.group(1)) as f:
            st = dict(l.split(":", 1) for l in f.read().splitlines()
                      if ":" in l)
        assert st["Seccomp"].strip() == "2", st["Seccomp"]
        assert st["Uid"].split()[0] == "10001", st["Uid"]
    finally:
        p.communicate(b"q\n", timeout=30)
