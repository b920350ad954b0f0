"""Delivery before the 250 (smtpd/smtp_direct.c): plain local users get
the message in their mailbox before the client hears 250, and nothing is
queued; aliases, failed deliveries and a lost deliverer fall back to the
queue, and every recipient still gets the message exactly once."""

import ctypes
import os
import re
import shutil
import signal
import threading
import smtplib
import struct
import time

import vmtest
from test_delivery import (ALPHA, maildir_files, queue_ids, setup, start,
                           wait_files)


def send_id(sender, rcpts, msg):
    """Send; return the queue id from the 250 reply."""
    with smtplib.SMTP(ALPHA, 25, timeout=20) as s:
        s.ehlo("client.test")
        s.mail(sender)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = s.data(msg)
        assert code == 250, (code, text)
    m = re.search(rb"queued as ([0-9a-f]{16})", text)
    assert m, text
    return m.group(1).decode()


def worker_pid(p):
    """The pid of alpha.test's worker, from the daemon's log (the
    listeners are bound before the worker is forked and logged)."""
    m = vmtest.wait_for_text(p.log, r"alpha.test: worker started pid=(\d+)")
    return int(m.group(1))


def assert_queue_drains(dom, timeout=10):
    deadline = time.monotonic() + timeout
    while queue_ids(dom) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not queue_ids(dom), queue_ids(dom)


def queue_files(dom):
    out = []
    for sub in ("env", "msg", "tmp"):
        d = dom.path("var/spool/virtmail/" + sub)
        out += [sub + "/" + n for n in os.listdir(d)]
    return out


def base_qid(path):
    m = re.search(r"\.V([0-9a-f]{16})I(\d+)\.", os.path.basename(path))
    assert m, path
    return m.group(1), int(m.group(2))


def test_direct_before_250(env):
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf)
    body = b"Subject: direct\r\n\r\n.leading dot\r\nhello\r\n"
    qid = send_id("carol@remote.test", ["bob@alpha.test"], body)
    # Already there when the 250 arrives: no waiting.
    files = maildir_files(a, "bob")
    assert len(files) == 1, (files, p.log())
    assert base_qid(files[0]) == (qid, 0)
    st = os.stat(files[0])
    assert (st.st_uid, st.st_gid) == (a.uids["bob"], a.uids["bob"])
    assert st.st_mode & 0o777 == 0o600
    data = open(files[0], "rb").read()
    assert data.startswith(b"Return-Path: <carol@remote.test>\n"
                           b"Delivered-To: bob@alpha.test\nReceived: "), data
    assert data.endswith(b"\n\n.leading dot\nhello\n"), data
    # Never queued: no envelope, no body, no spool file but spares.
    assert not queue_ids(a)
    assert not [f for f in queue_files(a) if not f.startswith("tmp/")]
    env.wait_for_log(p, r"%s delivery to=<bob@alpha.test> "
                     r"mailbox=/home/bob/Maildir status=sent delay=0s" % qid)
    env.wait_for_log(p, r"%s smtp message from=<carol@remote.test>" % qid)


def test_direct_with_aliases_and_case(env):
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf)
    # BOB is bob (local parts are case-insensitive); list is an alias
    # for bob and alice, so it is the runner's.
    qid = send_id("carol@remote.test", ["BOB@Alpha.Test", "list@alpha.test"],
                  b"Subject: mixed\r\n\r\nmixed\r\n")
    assert len(wait_files(a, "bob", 2)) == 2, p.log()
    assert len(wait_files(a, "alice", 1)) == 1, p.log()
    got = sorted(base_qid(f) for f in maildir_files(a, "bob"))
    assert got == [(qid, 0), (qid, 1)], got
    direct = [f for f in maildir_files(a, "bob") if base_qid(f)[1] == 0][0]
    assert b"Delivered-To: bob@alpha.test\n" in open(direct, "rb").read()
    # The session records the recipient as the user's own name.
    env.wait_for_log(p, r"%s delivery to=<bob@alpha.test> "
                     r"mailbox=/home/bob/Maildir status=sent delay=0s" % qid)
    assert_queue_drains(a)
    time.sleep(0.5)
    assert len(maildir_files(a, "bob")) == 2
    assert len(maildir_files(a, "alice")) == 1


def test_direct_failure_is_queued(env):
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf)
    new = os.path.join(a.maildir("bob"), "new")
    os.rmdir(new)
    with open(new, "w") as f:       # Maildir/new is not a directory
        f.write("in the way\n")
    qid = send_id("carol@remote.test", ["bob@alpha.test", "alice@alpha.test"],
                  b"Subject: later\r\n\r\nlater\r\n")
    # alice had hers at once; bob's waits in the queue.
    assert len(maildir_files(a, "alice")) == 1
    env.wait_for_log(p, r"%s delivery to=<bob@alpha.test> mailbox=none "
                     r"status=queued reason=" % qid)
    assert queue_ids(a) == [qid], queue_ids(a)
    env.wait_for_log(p, r"%s delivery to=<bob@alpha.test> .*"
                     r"status=deferred" % qid)
    os.unlink(new)
    os.mkdir(new, 0o700)
    os.chown(new, a.uids["bob"], a.uids["bob"])
    files = wait_files(a, "bob", 1)
    assert [base_qid(f) for f in files] == [(qid, 0)], (files, p.log())
    assert_queue_drains(a)
    # alice was recorded as delivered: the runner did not write again.
    time.sleep(0.5)
    assert len(maildir_files(a, "alice")) == 1
    assert len(maildir_files(a, "bob")) == 1


def test_direct_deliverer_lost(env):
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf)
    send_id("carol@remote.test", ["bob@alpha.test"],
            b"Subject: 1\r\n\r\n1\r\n")
    worker = worker_pid(p)
    # The worker's children: its AUTH service and its deliverer.
    kids = vmtest.child_pids(worker)
    assert len(kids) == 2, kids
    for k in kids:
        os.kill(k, signal.SIGKILL)
    time.sleep(0.2)
    qid = send_id("carol@remote.test", ["bob@alpha.test"],
                  b"Subject: 2\r\n\r\n2\r\n")
    files = wait_files(a, "bob", 2)
    assert len(files) == 2, p.log()
    assert (qid, 0) in [base_qid(f) for f in files]
    assert_queue_drains(a)
    assert vmtest.wait_for_text(p.log, r"direct delivery: deliverer channel "
                                r"lost; queueing")


def test_direct_creates_maildir(env):
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf)
    md = a.maildir("alice")
    uid = a.uids["alice"]
    shutil.rmtree(md)
    send_id("carol@remote.test", ["alice@alpha.test"],
            b"Subject: 1\r\n\r\nfirst\r\n")
    for sub in ("", "tmp", "new", "cur"):
        st = os.stat(os.path.join(md, sub))
        assert (st.st_uid, st.st_gid) == (uid, uid), (sub, st)
        assert st.st_mode & 0o777 == 0o700, (sub, oct(st.st_mode))
    assert len(maildir_files(a, "alice")) == 1, p.log()
    # Only new/ and cur/ gone: they come back at the link.
    shutil.rmtree(os.path.join(md, "new"))
    shutil.rmtree(os.path.join(md, "cur"))
    send_id("carol@remote.test", ["alice@alpha.test"],
            b"Subject: 2\r\n\r\nsecond\r\n")
    assert len(maildir_files(a, "alice")) == 1, p.log()
    assert not os.listdir(os.path.join(md, "tmp"))


def test_direct_agent_follows_passwd(env):
    """A writer kept for a user is not reused once etc/passwd gives the
    user another uid: the next file belongs to the new owner."""
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf)
    send_id("carol@remote.test", ["alice@alpha.test"],
            b"Subject: 1\r\n\r\nfirst\r\n")
    old = a.uids["alice"]
    new = old + 500         # another uid, still in alpha.test's range
    pw = a.path("etc/passwd")
    lines = open(pw).read().splitlines()
    with open(pw + ".new", "w") as f:
        for line in lines:
            fl = line.split(":")
            if fl[0] == "alice":
                fl[2] = fl[3] = str(new)
            f.write(":".join(fl) + "\n")
    os.rename(pw + ".new", pw)
    for dirpath, dirs, files in os.walk(os.path.dirname(a.maildir("alice"))):
        for n in [dirpath] + [os.path.join(dirpath, x) for x in files]:
            os.chown(n, new, new)
    time.sleep(1.1)     # a new mtime for the worker's passwd cache
    send_id("carol@remote.test", ["alice@alpha.test"],
            b"Subject: 2\r\n\r\nsecond\r\n")
    owners = sorted(os.stat(f).st_uid for f in maildir_files(a, "alice"))
    assert owners == [new, new], (owners, old, new, p.log())


def test_direct_concurrent_one_user(env):
    """More sessions at once (16, under the per-client limit) than a user
    has writers: the deliveries wait their turn, and each message is
    there once, before its 250."""
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf)
    ids = []
    lock = threading.Lock()

    def one(i):
        qid = send_id("carol@remote.test", ["bob@alpha.test"],
                      b"Subject: c%d\r\n\r\nbody %d\r\n" % (i, i))
        with lock:
            ids.append(qid)
            # Every message acknowledged so far is in the mailbox.
            got = {base_qid(f)[0] for f in maildir_files(a, "bob")}
            assert set(ids) <= got, (set(ids) - got)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(ids) == 16, p.log()
    files = maildir_files(a, "bob")
    assert sorted(base_qid(f)[0] for f in files) == sorted(ids)
    assert not queue_ids(a)
    for qid in ids:
        env.wait_for_log(p, r"%s delivery to=<bob@alpha.test> "
                         r"mailbox=/home/bob/Maildir status=sent "
                         r"delay=0s" % qid)


def test_direct_agent_killed(env):
    """A writer that dies while idle costs nothing: the next delivery
    gets a new one."""
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf)
    send_id("carol@remote.test", ["bob@alpha.test"],
            b"Subject: 1\r\n\r\n1\r\n")
    worker = worker_pid(p)
    # The worker's children are its AUTH service and its deliverer; the
    # deliverer's children are the writers (bob's, now idle).
    agents = [g for k in vmtest.child_pids(worker)
              for g in vmtest.child_pids(k)]
    assert agents, p.log()
    for g in agents:
        os.kill(g, signal.SIGKILL)
    time.sleep(0.2)
    ids = [send_id("carol@remote.test", ["bob@alpha.test"],
                   b"Subject: %d\r\n\r\n%d\r\n" % (i, i)) for i in (2, 3)]
    files = wait_files(a, "bob", 3)
    got = sorted(base_qid(f)[0] for f in files)
    assert len(files) == 3 and set(ids) <= set(got), (got, ids, p.log())
    assert_queue_drains(a)
    assert len(maildir_files(a, "bob")) == 3


def test_direct_agent_killed_while_writing(env):
    """A writer killed in the middle of a delivery: the message is
    queued with that recipient pending, and the runner delivers it,
    once."""
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf)
    worker = worker_pid(p)
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 40000
    result = []
    t = threading.Thread(target=lambda: result.append(
        send_id("carol@remote.test", ["bob@alpha.test"], body)))
    t.start()
    # The writer starts for this delivery: kill it as soon as it is there.
    deadline = time.monotonic() + 20
    killed = []
    while not killed and time.monotonic() < deadline:
        for k in vmtest.child_pids(worker):
            for g in vmtest.child_pids(k):
                os.kill(g, signal.SIGKILL)
                killed.append(g)
        time.sleep(0.002)
    t.join(60)
    assert killed and result, p.log()[-3000:]
    qid = result[0]
    env.wait_for_log(p, r"%s delivery to=<bob@alpha.test> mailbox=none "
                     r"status=queued reason=\"delivery process failed\"" %
                     qid)
    files = wait_files(a, "bob", 1, timeout=30)
    assert [base_qid(f) for f in files] == [(qid, 0)], files
    assert os.path.getsize(files[0]) > 40000 * 999
    assert_queue_drains(a)
    assert len(maildir_files(a, "bob")) == 1


def unnamed_files_work(path, uid):
    """Whether a process of uid can make an unnamed file in path and
    link it by descriptor, as the Maildir writers try first (Linux
    6.10 and later allow the link without CAP_DAC_READ_SEARCH)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(path, os.O_TMPFILE | os.O_WRONLY, 0o600)
            AT_FDCWD, AT_EMPTY_PATH = -100, 0x1000
            name = os.path.join(path, "probe")
            if libc.linkat(fd, b"", AT_FDCWD, name.encode(),
                           AT_EMPTY_PATH) == 0:
                os.unlink(name)
                code = 0
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1] == 0


def names_created(path, action):
    """The names created in directory path while action() runs
    (inotify IN_CREATE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    IN_NONBLOCK, IN_CREATE = 0o4000, 0x100
    fd = libc.inotify_init1(IN_NONBLOCK)
    assert fd >= 0
    try:
        assert libc.inotify_add_watch(fd, path.encode(), IN_CREATE) >= 0
        action()
        names, data = [], b""
        while True:
            try:
                data += os.read(fd, 65536)
            except BlockingIOError:
                break
        while data:
            wd, mask, cookie, n = struct.unpack_from("iIII", data)
            names.append(data[16:16 + n].rstrip(b"\0").decode())
            data = data[16 + n:]
        return names
    finally:
        os.close(fd)


def test_direct_maildir_tmp_unused(env):
    """Where the kernel allows, a message is written unnamed and only
    ever has a name in new/: no name is ever made in tmp/ (nothing to
    lock there, nothing to clean up after a crash)."""
    a, b, vconf, gconf = setup(env)
    probe = os.path.join(env.tmp, "probe")
    os.mkdir(probe)
    os.chmod(probe, 0o777)
    if not unnamed_files_work(probe, a.uids["bob"]):
        return      # tmp/NAME: the other tests cover it
    p = start(env, vconf, gconf)
    send_id("carol@remote.test", ["bob@alpha.test"], b"Subject: 1\r\n\r\nx\r\n")
    md = os.path.join(a.root, "home", "bob", "Maildir")
    made = names_created(os.path.join(md, "tmp"), lambda: [
        send_id("carol@remote.test", ["bob@alpha.test"],
                b"Subject: %d\r\n\r\nx\r\n" % i) for i in range(5)])
    assert made == [], made
    files = maildir_files(a, "bob")
    assert len(files) == 6, p.log()
    for f in files:
        st = os.stat(f)
        assert (st.st_uid, st.st_mode & 0o777) == (a.uids["bob"], 0o600)


def test_direct_many_recipients(env):
    """A hundred local users in one message (the default limit): all
    delivered before the 250, through more writers than a deliverer
    keeps and more answers than a socket queue holds."""
    users = {"u%02d" % i: "pw" for i in range(100)}
    a = env.make_domain_root("alpha.test", [ALPHA], users=users)
    vconf = env.write_virtual_conf([(ALPHA, a.root)])
    p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vconf],
                          name="smtpd")
    env.wait_for_port(ALPHA, 25, proc=p)
    qid = send_id("carol@remote.test", ["%s@alpha.test" % u for u in users],
                  b"Subject: many\r\n\r\nto all\r\n")
    for u in users:
        files = maildir_files(a, u)
        assert [base_qid(f)[0] for f in files] == [qid], (u, files)
    assert not queue_ids(a)
