"""virtmail-sendmail inside a domain's root: local delivery with the
added Date/Message-ID/From, -t with To/Cc/Bcc (Bcc removed), -f, the
"." line, remote mail queued in the sender's own domain only, bad
options, and the drop directory that no other domain's user can
reach.  virtmail-sendmail has no privilege: only virtmail-postdrop,
setgid virtmail-drop, writes drop/; it refuses malformed submissions
and links nothing of TLS or the session engine."""

import os
import re
import shutil
import stat
import subprocess
import time

import vmtest

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4
EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_NOPERM = 64, 65, 69, 77
POSTDROP = "usr/sbin/virtmail-postdrop"
# An empty environment; a sanitizer build cannot check leaks without
# /proc, which a domain root does not have.
INJECT_ENV = {"ASAN_OPTIONS": "detect_leaks=0"}


def drop_gid(dom):
    return vmtest.uid_base(dom.name) + 999


def install_libs(dom, path):
    """A sanitizer build is not static: give it its libraries."""
    rc, out, _ = vmtest.run(["ldd", path])
    if rc == 0 and ("=>" in out or "ld-linux" in out):
        for word in out.split():
            if word.startswith("/") and os.path.exists(word):
                lib = dom.path(word)
                os.makedirs(os.path.dirname(lib), exist_ok=True)
                if not os.path.exists(lib):
                    shutil.copy(word, lib)


def install_sendmail(env, dom):
    """Put the injector at /usr/sbin/sendmail, without privilege, and
    virtmail-postdrop beside it, setgid virtmail-drop, with the group in
    the domain's etc/group and run_as a member of it."""
    gid = drop_gid(dom)
    with open(dom.path("etc/group"), "a") as f:
        f.write("virtmail-drop:x:%d:virtmail\n" % gid)
    dst = dom.path("usr/sbin/sendmail")
    shutil.copy(env.bin("virtmail-sendmail"), dst)
    os.chown(dst, 0, 0)
    os.chmod(dst, 0o755)
    pd = dom.path(POSTDROP)
    shutil.copy(env.bin("virtmail-postdrop"), pd)
    os.chown(pd, 0, gid)
    os.chmod(pd, 0o2755)
    install_libs(dom, dst)
    install_libs(dom, pd)
    return dst


def setup(env, alpha_conf=""):
    a = env.make_domain_root(
        "alpha.test", [ALPHA], users={"bob": "pw", "alice": "pw",
                                      "carol": "pw"},
        extra_files={"etc/virtmail.conf":
                     "hostname mx.alpha.test\nrun_as virtmail\n" +
                     alpha_conf})
    b = env.make_domain_root("beta.test", [BETA], users={"fred": "pw"})
    install_sendmail(env, a)
    install_sendmail(env, b)
    vconf = env.write_virtual_conf([(ALPHA, a.root), (BETA, b.root)])
    gconf = env.path("virtmail.conf")
    with open(gconf, "w") as f:
        f.write("retry_min 1\nretry_max 2\n")
    return a, b, vconf, gconf


def start(env, vconf, gconf, doms):
    p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vconf,
                           "-C", gconf], name="smtpd")
    # The runner has made drop/ and its control socket once it says so.
    for d in doms:
        env.wait_for_log(p, r"domain=%s runner started" %
                         re.escape(d.name), timeout=20)
        assert os.path.isdir(d.path("var/spool/virtmail/drop")), p.log()
    return p


def inject(dom, args, msg, uid=None, chroot=True, timeout=10,
           prog="/usr/sbin/sendmail"):
    """Run prog inside dom's root (as uid, or root)."""
    def child():
        os.setsid()
        if chroot:
            os.chroot(dom.root)
            os.chdir("/")
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
    if not chroot:
        prog = dom.path(prog.lstrip("/"))
    p = subprocess.run([prog] + args, input=msg, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, preexec_fn=child,
                       timeout=timeout, env=INJECT_ENV)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def maildir(dom, user):
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(dom.maildir(user), sub)
        out += [os.path.join(d, n) for n in sorted(os.listdir(d))]
    return out


def wait_mail(dom, user, count=1, timeout=15):
    deadline = time.monotonic() + timeout
    while len(maildir(dom, user)) < count:
        assert time.monotonic() < deadline, "no mail for %s in %s" % (
            user, dom.name)
        time.sleep(0.05)
    return [open(f, "rb").read() for f in maildir(dom, user)]


def tree(root):
    """Every path under root with its size and mtime."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


def header(data):
    return data.split(b"\n\n", 1)[0]


def test_local_delivery(env):
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf, [a, b])
    rc, err = inject(a, ["bob"], b"Subject: hello\n\nfirst line\n"
                     b".\nnot sent\n", uid=a.uids["alice"])
    assert rc == 0, err
    data = wait_mail(a, "bob")[0]
    h = header(data)
    assert b"Return-Path: <alice@alpha.test>\n" in h, data
    assert b"Delivered-To: bob@alpha.test\n" in h, data
    assert (b"Received: from local user %d\n\tby mx.alpha.test "
            b"(virtmail-sendmail) id " % a.uids["alice"]) in h, data
    assert b"\nSubject: hello\n" in h
    assert b"\nFrom: \"alice\" <alice@alpha.test>\n" in h, data
    assert b"\nDate: " in h and b"\nMessage-ID: <" in h, data
    assert data.endswith(b"\n\nfirst line\n"), data  # "." ended it
    env.wait_for_log(p, r"[0-9a-f]{16} pickup uid=%d " % a.uids["alice"])
    deadline = time.monotonic() + 5
    while os.listdir(a.path("var/spool/virtmail/drop")):
        assert time.monotonic() < deadline, "drop file not removed"
        time.sleep(0.05)

    # -i: a lone "." is text; an existing header is kept as it is.
    rc, err = inject(a, ["-i", "bob@alpha.test"],
                     b"From: Me <alice@alpha.test>\r\nDate: Mon, 1 Jan "
                     b"2024 00:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\n"
                     b"a\r\n.\r\nb\r\n", uid=a.uids["alice"])
    assert rc == 0, err
    data = wait_mail(a, "bob", 2)
    second = [d for d in data if b"<x@y>" in d][0]
    assert second.count(b"\nFrom: ") == 1 and second.count(b"\nDate: ") == 1
    assert second.endswith(b"\n\na\n.\nb\n"), second


def test_extract_and_sender(env):
    a, b, vconf, gconf = setup(env)
    start(env, vconf, gconf, [a, b])
    msg = (b"To: Bob <bob@alpha.test>\nCc: alice\n"
           b"Bcc: \"Secret, C.\" <carol@alpha.test>\nSubject: t\n\nhi\n")
    rc, err = inject(a, ["-t", "-oi", "-odi", "-oem", "-f",
                         "lists@alpha.test", "-F", "The List"], msg,
                     uid=a.uids["bob"])
    assert rc == 0, err
    for user in ("bob", "alice", "carol"):
        data = wait_mail(a, user)[0]
        h = header(data)
        assert b"Return-Path: <lists@alpha.test>\n" in h, data
        assert b"Bcc" not in data and b"Secret" not in data, data
        assert b"\nFrom: \"The List\" <lists@alpha.test>\n" in h, data
        assert b"\nTo: Bob <bob@alpha.test>\nCc: alice\n" in h, data
    # No recipients at all: a usage error.
    rc, err = inject(a, ["-t"], b"Subject: none\n\nx\n", uid=a.uids["bob"])
    assert rc == EX_USAGE, (rc, err)


def test_remote_stays_in_own_queue(env):
    # alpha's route to beta goes to a closed port: the message waits.
    a, b, vconf, gconf = setup(env, "route beta.test [127.0.0.1]:9\n")
    p = start(env, vconf, gconf, [a, b])
    p.stop()
    before = tree(b.root)
    rc, err = inject(a, ["fred@beta.test"], b"Subject: far\n\nx\n",
                     uid=a.uids["alice"])
    assert rc == 0, err
    drop = os.listdir(a.path("var/spool/virtmail/drop"))
    assert len(drop) == 1 and drop[0].startswith("m."), drop
    st = os.stat(os.path.join(a.path("var/spool/virtmail/drop"), drop[0]))
    assert st.st_uid == a.uids["alice"] and st.st_gid == drop_gid(a)
    assert st.st_mode & 0o777 == 0o640, oct(st.st_mode)
    assert tree(b.root) == before, "the injector wrote under beta's root"
    # The runner picks it up at start into alpha's own queue.
    p = start(env, vconf, gconf, [a, b])
    env.wait_for_log(p, r"[0-9a-f]{16} pickup uid=%d" % a.uids["alice"])
    deadline = time.monotonic() + 5
    while os.listdir(a.path("var/spool/virtmail/drop")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    envs = os.listdir(a.path("var/spool/virtmail/env"))
    assert len(envs) == 1, envs
    data = open(a.path("var/spool/virtmail/env/" + envs[0]), "rb").read()
    assert b"fred@beta.test" in data and b"alice@alpha.test" in data
    assert os.listdir(b.path("var/spool/virtmail/env")) == []
    assert maildir(b, "fred") == []


def test_bad_options(env):
    a, b, vconf, gconf = setup(env)
    for args in (["-X", "/tmp/log", "bob"], ["-bs"], ["-q"], ["-C", "x"],
                 ["-bp"], ["-Z"], ["-f"]):
        rc, err = inject(a, args, b"x\n", uid=a.uids["bob"])
        assert rc == EX_USAGE, (args, rc, err)
        assert "usage" in err, err
    rc, err = inject(a, ["-f", "bad address@x", "bob"], b"x\n",
                     uid=a.uids["bob"])
    assert rc == 65, (rc, err)


def test_no_other_domain(env):
    a, b, vconf, gconf = setup(env)
    start(env, vconf, gconf, [a, b])
    before = tree(b.path("var/spool/virtmail"))
    alice = a.uids["alice"]
    # -d is root's: a user cannot point the injector at beta's root.
    rc, err = inject(a, ["-d", b.root, "fred@beta.test"], b"x\n",
                     uid=alice)
    assert rc == EX_NOPERM, (rc, err)
    # On the host, outside any root, it refuses to guess.
    rc, err = inject(a, ["fred@beta.test"], b"x\n", chroot=False)
    assert rc == EX_USAGE, (rc, err)
    rc, err = inject(a, ["fred@beta.test"], b"x\n", uid=alice,
                     chroot=False)
    assert rc != 0, (rc, err)
    # Even with alpha's drop group, beta's drop directory is closed.
    def child():
        os.setgroups([drop_gid(a)])
        os.setgid(alice)
        os.setuid(alice)
    r = subprocess.run(["/bin/sh", "-c", "echo x > %s/m.x" %
                        b.path("var/spool/virtmail/drop")],
                       preexec_fn=child, stderr=subprocess.DEVNULL)
    assert r.returncode != 0
    assert tree(b.path("var/spool/virtmail")) == before
    # Root may inject into a named domain; it lands in that domain only.
    rc, err = inject(b, ["-d", b.root, "fred"], b"Subject: root\n\nx\n",
                     chroot=False)
    assert rc == 0, err
    data = wait_mail(b, "fred")[0]
    assert b"Received: from local user 0\n\tby mx.beta.test" in data, data
    assert b"\nFrom: \"root\" <root@beta.test>\n" in data, data
    assert maildir(a, "bob") == []


def test_pickup_refuses_hostile_files(env):
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf, [a, b])
    drop = a.path("var/spool/virtmail/drop")
    alice, gid = a.uids["alice"], drop_gid(a)

    def plant(name, data, uid=alice, group=gid, links=1, age=0):
        # Made complete elsewhere, then renamed in: the runner never
        # sees it half set up.
        path = a.path("var/spool/virtmail/tmp/plant-" + name)
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, uid, group)
        os.chmod(path, 0o640)
        for i in range(1, links):
            os.link(path, a.path("var/spool/virtmail/tmp/link%d" % i))
        if age:
            t = time.time() - age
            os.utime(path, (t, t))
        os.rename(path, os.path.join(drop, name))

    good = b"VMDROP 1\nS alice@alpha.test\nR bob@alpha.test\n\nSubject: ok\n\n"
    plant("t." + "1" * 32, good, age=7200)
    plant("m." + "2" * 32, b"garbage\n")
    plant("m." + "3" * 32, good, group=alice)
    plant("m." + "4" * 32, good, links=2)
    os.symlink(a.path("etc/passwd"), os.path.join(drop, "m." + "5" * 32))
    plant("m." + "6" * 32, b"VMDROP 1\nS alice@alpha.test\nR bob@alpha.test"
          b"\r\n\nx\n")
    plant("m." + "7" * 32, good + b"a\0b\n")
    plant("m." + "8" * 32, good + b"fine\n")
    for reason in ("2" * 32 + r" uid=%d: not a drop file" % alice,
                   "3" * 32 + r" .*cannot open: Permission denied",
                   "4" * 32 + r" .*more than one link",
                   "5" * 32 + r" .*cannot open: Too many levels",
                   "6" * 32 + r" .*bad recipient address",
                   "7" * 32 + r" .*NUL bytes",
                   r"removed stale t\.1{32} uid=%d" % alice):
        env.wait_for_log(p, reason)
    data = wait_mail(a, "bob")[0]
    assert data.endswith(b"\n\nfine\n"), data
    deadline = time.monotonic() + 5
    while os.listdir(drop):
        assert time.monotonic() < deadline, os.listdir(drop)
        time.sleep(0.05)
    time.sleep(0.5)
    assert len(maildir(a, "bob")) == 1
    # The linked file of the runner's own queue is untouched.
    assert os.path.exists(a.path("var/spool/virtmail/tmp/link1"))


def test_unreadable_passwd_defers(env):
    """A runner that cannot read etc/passwd defers local mail and
    delivers it once it can; it never bounces it as "no such user"."""
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf, [a, b])
    pw = a.path("etc/passwd")
    os.chmod(pw, 0o600)     # root only: the run_as runner cannot read it
    rc, err = inject(a, ["-d", a.root, "-f", "alice@alpha.test", "bob"],
                     b"Subject: wait for passwd\n\nx\n", chroot=False)
    assert rc == 0, err
    env.wait_for_log(p, r"to=<bob@alpha\.test>.*status=deferred.*"
                     r"cannot read /etc/passwd", timeout=15)
    assert not maildir(a, "bob")
    os.chmod(pw, 0o644)
    data = wait_mail(a, "bob")
    assert b"Subject: wait for passwd" in data[0], data
    assert "status=bounced" not in p.log(), p.log()


def drop_files(dom):
    return sorted(os.listdir(dom.path("var/spool/virtmail/drop")))


def stopped_runner(env):
    """alpha and beta with drop/ made by a runner that is stopped again,
    so whatever lands in drop/ stays there for the test to see."""
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf, [a, b])
    p.stop()
    assert drop_files(a) == []
    return a, b


def test_sendmail_unprivileged(env):
    """The injector has no setgid bit and cannot write drop/ itself:
    without virtmail-postdrop, or with one that lost its setgid bit, it
    fails cleanly and drop/ stays empty."""
    a, b = stopped_runner(env)
    alice = a.uids["alice"]
    st = os.stat(a.path("usr/sbin/sendmail"))
    assert st.st_mode & (stat.S_ISGID | stat.S_ISUID) == 0, oct(st.st_mode)
    assert st.st_uid == 0 and st.st_gid == 0
    pd = os.stat(a.path(POSTDROP))
    assert stat.S_IMODE(pd.st_mode) == 0o2755 and pd.st_gid == drop_gid(a)

    # The injector's process has the user's ids and nothing more, and
    # those cannot even reach drop/ (its parent is 0710
    # run_as:virtmail-drop).
    def as_alice():
        os.setgroups([])
        os.setgid(alice)
        os.setuid(alice)
    r = subprocess.run(["/bin/sh", "-c", "echo x > %s/m.x" %
                        a.path("var/spool/virtmail/drop")],
                       preexec_fn=as_alice, stderr=subprocess.DEVNULL)
    assert r.returncode != 0
    assert drop_files(a) == []

    os.rename(a.path(POSTDROP), a.path(POSTDROP + ".off"))
    rc, err = inject(a, ["bob"], b"Subject: x\n\nx\n", uid=alice)
    assert rc == EX_UNAVAILABLE, (rc, err)
    assert "virtmail-postdrop" in err, err
    assert drop_files(a) == []

    # A postdrop without its setgid bit cannot create the file either.
    os.rename(a.path(POSTDROP + ".off"), a.path(POSTDROP))
    os.chmod(a.path(POSTDROP), 0o755)
    rc, err = inject(a, ["bob"], b"Subject: x\n\nx\n", uid=alice)
    assert rc == EX_NOPERM, (rc, err)
    assert drop_files(a) == []

    # One a user could replace is not run (and -d would run it as root).
    os.chmod(a.path(POSTDROP), 0o2775)
    rc, err = inject(a, ["bob"], b"Subject: x\n\nx\n", uid=alice)
    assert rc == EX_UNAVAILABLE and "only root" in err, (rc, err)
    assert drop_files(a) == []

    # Restored, the same call works and the file is alice's.
    os.chmod(a.path(POSTDROP), 0o2755)
    rc, err = inject(a, ["bob"], b"Subject: x\n\nx\n", uid=alice)
    assert rc == 0, err
    files = drop_files(a)
    assert len(files) == 1 and re.match(r"m\.[0-9a-f]{32}$", files[0])
    st = os.stat(os.path.join(a.path("var/spool/virtmail/drop"), files[0]))
    assert (st.st_uid, st.st_gid) == (alice, drop_gid(a))
    assert st.st_mode & 0o777 == 0o640


def test_postdrop_refuses_malformed(env):
    """virtmail-postdrop run straight by a user: every malformed
    submission is refused with EX_DATAERR and leaves nothing in drop/; a
    good one is written as the runner expects and delivered."""
    a, b = stopped_runner(env)
    alice = a.uids["alice"]
    env_ok = b"VMDROP 1\nS alice@alpha.test\nR bob@alpha.test\n\n"
    cases = [
        (b"", "truncated envelope"),
        (b"garbage\n\nSubject: x\n\nx\n", "not a drop file"),
        (b"VMDROP 2\nS alice@alpha.test\nR bob@alpha.test\n\nx\n",
         "not a drop file"),
        (b"VMDROP 1\nR bob@alpha.test\n\nx\n", "sender record missing"),
        (b"VMDROP 1\nS alice@alpha.test\n\nx\n", "no recipients"),
        (b"VMDROP 1\nS alice@alpha.test\nR bob\n\nx\n",
         "bad recipient address"),
        (b"VMDROP 1\nS alice@alpha.test\nR bob@alpha.test\r\n\nx\n",
         "bad recipient address"),
        (b"VMDROP 1\nS alice@alpha.test\nX y\n\nx\n",
         "unknown envelope record"),
        (b"VMDROP 1\nS ali\0ce@alpha.test\nR bob@alpha.test\n\nx\n",
         "NUL byte in envelope"),
        (env_ok + b"Subject: x\n\na\0b\n", "NUL byte in the message"),
        (b"VMDROP 1\nS alice@alpha.test\nR " + b"b" * 300 +
         b"@alpha.test\n\nx\n", "envelope line too long"),
        (b"VMDROP 1\nS alice@alpha.test\nR bob@alpha.test\n",
         "truncated envelope"),
        # Bounded: 10001 recipients, and an envelope that never ends.
        (b"VMDROP 1\nS alice@alpha.test\n" +
         b"".join(b"R u%d@alpha.test\n" % i for i in range(10001)) +
         b"\nx\n", "too many recipients"),
        (b"VMDROP 1\nS alice@alpha.test\n" +
         b"R bob@alpha.test\n" * 200000, "envelope too large"),
    ]
    for data, why in cases:
        rc, err = inject(a, [], data, uid=alice, prog="/" + POSTDROP)
        assert rc == EX_DATAERR, (data[:60], rc, err)
        assert why in err, (why, err)
        assert drop_files(a) == [], (data[:60], drop_files(a))
    # No options at all, and not on the host.
    rc, err = inject(a, ["-f", "x"], env_ok, uid=alice, prog="/" + POSTDROP)
    assert rc == EX_USAGE, (rc, err)
    rc, err = inject(a, [], env_ok, chroot=False, prog="/" + POSTDROP)
    assert rc == EX_USAGE and "not inside a domain's root" in err, err
    # Installed setuid root by mistake, it refuses.
    bad = a.path("usr/sbin/postdrop-suid")
    shutil.copy(a.path(POSTDROP), bad)
    os.chmod(bad, 0o4755)
    rc, err = inject(a, [], env_ok, uid=alice, prog="/usr/sbin/postdrop-suid")
    assert rc == EX_NOPERM, (rc, err)
    os.unlink(bad)
    assert drop_files(a) == []

    # A good submission: written as given, the owner is the kernel's.
    good = env_ok + b"Subject: straight\n\nbody\n"
    rc, err = inject(a, [], good, uid=alice, prog="/" + POSTDROP)
    assert rc == 0, err
    files = drop_files(a)
    assert len(files) == 1 and files[0].startswith("m."), files
    path = os.path.join(a.path("var/spool/virtmail/drop"), files[0])
    assert open(path, "rb").read() == good
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (alice, drop_gid(a))
    vconf = env.path("virtual.conf")
    p = start(env, vconf, env.path("virtmail.conf"), [a, b])
    env.wait_for_log(p, r"[0-9a-f]{16} pickup uid=%d " % alice)
    data = wait_mail(a, "bob")[0]
    assert data.endswith(b"\n\nbody\n"), data
    assert b"Received: from local user %d\n" % alice in data, data


def text_symbols(path):
    """Names of the code symbols defined in an object or program."""
    rc, out, err = vmtest.run(["nm", "--defined-only", path])
    assert rc == 0, err
    names = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in "Tt":
            names.add(f[2].split(".")[0])
    return names


def test_postdrop_links_little(env):
    """virtmail-postdrop holds code of drop.c, postdrop.c and six small
    modules of common/ only: nothing of TLS, SPF, the queue or the
    session engine that the injector links."""
    allowed = ["common/address.o", "common/buf.o", "common/compat.o",
               "common/fileio.o", "common/log.o", "common/xmalloc.o",
               "smtpd/drop.o", "smtpd/postdrop.o"]
    ours = set()
    for d in ("common", "smtpd"):
        for n in os.listdir(os.path.join(env.build, d)):
            if n.endswith(".o"):
                ours |= text_symbols(os.path.join(env.build, d, n))
    ok = set()
    for o in allowed:
        ok |= text_symbols(os.path.join(env.build, o))
    pd = text_symbols(env.bin("virtmail-postdrop")) & ours
    sm = text_symbols(env.bin("virtmail-sendmail")) & ours
    assert pd <= ok, sorted(pd - ok)
    assert len(pd) < 120, len(pd)
    assert len(sm) > 3 * len(pd), (len(sm), len(pd))
    everything = text_symbols(env.bin("virtmail-postdrop"))
    for prefix in ("SSL_", "EVP_", "SPF_", "smtp_session", "queue_",
                   "runner_", "milter_", "tls_"):
        assert not [n for n in everything if n.startswith(prefix)], prefix
