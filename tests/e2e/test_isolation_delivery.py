"""Isolation of the delivery path, read from /proc while deliveries to a
Maildir (alpha.test) and an mbox (beta.test) are in flight or their
writers idle: every process of the deliverers' trees whose root is a
domain's root has no uid or gid 0, no capability and no_new_privs; the
deliverers themselves stay outside (root "/") with only the
capabilities they need.  And the mbox scheme from the outside: a new
mbox is made for its user, a stale dotlock is broken, a held one is
waited for, a symlinked or hard-linked mbox is refused."""

import fcntl
import os
import re
import smtplib
import threading
import time

import vmtest
from test_delivery import ALPHA, BETA, setup, split_mbox, start, wait_files

# CAP_CHOWN, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SYS_CHROOT
DELIVERER_CAPS = (1 << 0) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 18)


def send(ip, rcpt, subject):
    with smtplib.SMTP(ip, 25, timeout=60) as s:
        s.ehlo("client.test")
        s.sendmail("carol@remote.test", [rcpt],
                   ("Subject: %s\r\n\r\nbody of %s\r\n" %
                    (subject, subject)).encode())


def role_pid(p, domain, role):
    m = re.search(r"%s: %s started pid=(\d+)" % (re.escape(domain), role),
                  p.log())
    assert m, p.log()
    return int(m.group(1))


def deliverers(p, domain):
    """The domain's two deliverers: the runner's parent (the master's
    child) and the worker's child of that name."""
    out = [role_pid(p, domain, "runner")]
    worker = role_pid(p, domain, "worker")
    want = "virtmail-smtpd: deliverer %s" % domain
    mine = [k for k in vmtest.child_pids(worker)
            if vmtest.proc_title(k) == want]
    assert len(mine) == 1, [(k, vmtest.proc_title(k)) for k in
                            vmtest.child_pids(worker)]
    return out + mine


def check_tree(deliverer, roots):
    """Check deliverer and every descendant; returns the identities of
    the processes found inside a domain's root."""
    inside = []
    for pid in vmtest.tree_pids(deliverer):
        ident = vmtest.proc_identity(pid)
        if ident is None:
            continue            # ended meanwhile
        if ident["root"] in roots:
            assert 0 not in ident["uids"], (pid, ident)
            assert 0 not in ident["gids"], (pid, ident)
            assert 0 not in ident["groups"], (pid, ident)
            assert ident["cap_eff"] == 0, (pid, ident)
            assert ident["cap_prm"] == 0, (pid, ident)
            assert ident["cap_inh"] == 0, (pid, ident)
            assert ident["no_new_privs"] == 1, (pid, ident)
            inside.append(ident)
        else:
            # The deliverers and their mbox children: outside, root,
            # with only what delivery needs.
            assert ident["root"] == "/", (pid, ident)
            assert ident["cap_eff"] == DELIVERER_CAPS, (pid, hex(
                ident["cap_eff"]))
            assert ident["cap_prm"] == DELIVERER_CAPS, (pid, ident)
            assert ident["cap_bnd"] == DELIVERER_CAPS, (pid, ident)
            assert ident["cap_inh"] == 0, (pid, ident)
    return inside


def wait_for(cond, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = cond()
        if r:
            return r
        time.sleep(0.02)
    raise AssertionError("timed out waiting for %s" % what)


def uid_inside(p, domain, root, uid):
    """A process of uid inside root, below one of domain's deliverers."""
    for d in deliverers(p, domain):
        for pid in vmtest.tree_pids(d):
            ident = vmtest.proc_identity(pid)
            if ident and ident["root"] == root and ident["uids"][0] == uid:
                return pid
    return None


def test_delivery_processes_unprivileged(env):
    a, b, vconf, gconf = setup(env, beta_mbox=True)
    aroot, broot = os.path.realpath(a.root), os.path.realpath(b.root)
    p = start(env, vconf, gconf)
    mbox = b.path("var/spool/mail/bob")
    assert not os.path.exists(mbox)

    # A first mbox delivery makes bob's mbox, as bob's, 0600.
    send(BETA, "bob@beta.test", "first")
    data = open(mbox, "rb").read()
    assert len(split_mbox(data)) == 1 and b"Subject: first\n" in data, data
    st = os.lstat(mbox)
    assert (st.st_uid, st.st_gid) == (b.uids["bob"], b.uids["bob"]), st
    assert st.st_mode & 0o7777 == 0o600, oct(st.st_mode)

    # Hold the mbox's fcntl lock: the next delivery's writer (bob,
    # inside beta's root) waits for it, under its parent's dotlock.
    fd = os.open(mbox, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    result = []
    t = threading.Thread(target=lambda: result.append(
        send(BETA, "bob@beta.test", "second")))
    t.start()
    try:
        wait_for(lambda: uid_inside(p, "beta.test", broot, b.uids["bob"]),
                 what="beta's mbox writer")
        assert os.path.exists(mbox + ".lock")
        # A Maildir delivery: its writer (an agent) stays for 10 s.
        send(ALPHA, "bob@alpha.test", "maildir")
        assert len(wait_files(a, "bob", 1)) == 1, p.log()
        wait_for(lambda: uid_inside(p, "alpha.test", aroot, a.uids["bob"]),
                 what="alpha's Maildir writer")

        seen = []
        for dom in ("alpha.test", "beta.test"):
            ds = deliverers(p, dom)
            assert vmtest.proc_title(ds[0]) == \
                "virtmail-smtpd: deliverer %s" % dom, ds
            for d in ds:
                assert vmtest.proc_identity(d)["root"] == "/", d
                assert vmtest.proc_identity(d)["uids"][0] == 0, d
                seen += check_tree(d, (aroot, broot))
        uids = {(i["root"], i["uids"][0]) for i in seen}
        titles = {vmtest.proc_title(i["pid"]) for i in seen}
        assert "virtmail-smtpd: agent alpha.test" in titles, titles
        assert "virtmail-smtpd: delivery beta.test" in titles, titles
        # The runners (run_as), alpha's agent, beta's mbox writer.
        assert (aroot, a.uids["virtmail"]) in uids, uids
        assert (broot, b.uids["virtmail"]) in uids, uids
        assert (aroot, a.uids["bob"]) in uids, uids
        assert (broot, b.uids["bob"]) in uids, uids
        assert t.is_alive() and not result
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        os.close(fd)
    t.join(60)
    assert result == [None], result
    data = open(mbox, "rb").read()
    assert len(split_mbox(data)) == 2 and b"Subject: second\n" in data
    assert not os.path.exists(mbox + ".lock")


def test_mbox_stale_lock_broken(env):
    a, b, vconf, gconf = setup(env, beta_mbox=True)
    p = start(env, vconf, gconf)
    mbox = b.path("var/spool/mail/bob")
    lock = mbox + ".lock"
    with open(lock, "w") as f:
        f.write("99999\n")
    old = time.time() - 400         # older than DELIVER_LOCK_STALE
    os.utime(lock, (old, old))
    send(BETA, "bob@beta.test", "stale")
    data = open(mbox, "rb").read()
    assert b"Subject: stale\n" in data, p.log()[-2000:]
    assert not os.path.exists(lock)
    env.wait_for_log(p, r"delivery to=<bob@beta.test> "
                     r"mailbox=/var/spool/mail/bob status=sent")


def test_mbox_held_lock_waited_for(env):
    a, b, vconf, gconf = setup(env, beta_mbox=True)
    p = start(env, vconf, gconf)
    mbox = b.path("var/spool/mail/bob")
    lock = mbox + ".lock"
    with open(lock, "w") as f:
        f.write("1\n")
    result = []
    t = threading.Thread(target=lambda: result.append(
        send(BETA, "bob@beta.test", "waited")))
    t.start()

    def waiting():
        # The worker's deliverer's mbox child (root, outside) is there.
        for d in deliverers(p, "beta.test"):
            for c in vmtest.child_pids(d):
                if vmtest.proc_title(c) == "virtmail-smtpd: mbox beta.test":
                    i = vmtest.proc_identity(c)
                    assert i is None or i["root"] == "/", i
                    return c
        return None
    wait_for(waiting, what="the mbox child waiting for the dotlock")
    # It made the missing mbox for bob, and writes nothing while the
    # lock is held; the client has no answer yet.
    wait_for(lambda: os.path.exists(mbox), what="the new mbox")
    st = os.lstat(mbox)
    assert st.st_uid == b.uids["bob"] and st.st_mode & 0o777 == 0o600
    time.sleep(0.5)
    assert os.path.getsize(mbox) == 0 and t.is_alive() and not result
    os.unlink(lock)
    t.join(60)
    assert result == [None], result
    assert b"Subject: waited\n" in open(mbox, "rb").read()
    assert not os.path.exists(lock)


def test_mbox_symlink_and_hardlink_refused(env):
    a, b, vconf, gconf = setup(env, beta_mbox=True)
    p = start(env, vconf, gconf)
    bob = b.uids["bob"]
    spool = b.path("var/spool/mail")
    # bob points his mbox at a file outside the root that he owns.
    target = env.path("outside-target")
    with open(target, "w") as f:
        f.write("untouched\n")
    os.chown(target, bob, bob)
    os.symlink(target, os.path.join(spool, "bob"))
    os.lchown(os.path.join(spool, "bob"), bob, bob)
    send(BETA, "bob@beta.test", "via-symlink")
    env.wait_for_log(p, r"delivery to=<bob@beta.test> mailbox=none "
                     r"status=queued reason=\"open mailbox: Too many "
                     r"levels of symbolic links\"")
    env.wait_for_log(p, r"delivery to=<bob@beta.test> .*status=deferred "
                     r".*symbolic links")
    assert open(target).read() == "untouched\n"
    assert os.path.islink(os.path.join(spool, "bob"))
    assert not os.path.exists(os.path.join(spool, "bob.lock"))

    # A hard link to another of bob's files: not one link, refused.
    os.unlink(os.path.join(spool, "bob"))
    other = b.path("home/bob/other")
    with open(other, "w") as f:
        f.write("mine\n")
    os.chown(other, bob, bob)
    os.link(other, os.path.join(spool, "bob"))
    send(BETA, "bob@beta.test", "via-hardlink")
    env.wait_for_log(p, r"delivery to=<bob@beta.test> mailbox=none "
                     r"status=queued reason=\"mailbox is not a regular "
                     r"file owned by the user\"")
    assert open(other).read() == "mine\n"
    assert "status=sent" not in p.log()
