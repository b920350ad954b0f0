"""Local delivery by the domain's queue runner: Maildir and mbox bytes,
owners and modes from the domain's own passwd, aliases, concurrent mbox
writers, and kill -9 of the whole daemon under load (every message that
got 250 is delivered exactly once)."""

import os
import random
import re
import signal
import smtplib
import threading
import time

import vmtest

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4

ALIASES = ("postmaster: bob\n"
           "list: bob, alice\n"
           "fwd: someone@remote.test\n"
           "loop1: loop2@alpha.test\n"
           "loop2: loop1@alpha.test\n")


def setup(env, beta_mbox=False):
    a = env.make_domain_root("alpha.test", [ALPHA],
                             users={"bob": "pw", "alice": "pw"},
                             extra_files={"etc/aliases": ALIASES})
    extra = {}
    if beta_mbox:
        extra["etc/virtmail.conf"] = ("hostname mx.beta.test\n"
                                      "run_as virtmail\nmailbox mbox\n")
    b = env.make_domain_root("beta.test", [BETA], extra_files=extra)
    vconf = env.write_virtual_conf([(ALPHA, a.root), (BETA, b.root)])
    gconf = env.path("virtmail.conf")
    with open(gconf, "w") as f:
        f.write("retry_min 1\nretry_max 2\n")
    return a, b, vconf, gconf


def start(env, vconf, gconf):
    p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vconf,
                           "-C", gconf], name="smtpd")
    env.wait_for_port(ALPHA, 25, proc=p)
    env.wait_for_port(BETA, 25, proc=p)
    return p


def maildir_files(dom, user):
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(dom.maildir(user), sub)
        for n in sorted(os.listdir(d)):
            out.append(os.path.join(d, n))
    return out


def wait_files(dom, user, count, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        files = maildir_files(dom, user)
        if len(files) >= count or time.monotonic() > deadline:
            return files
        time.sleep(0.05)


def queue_ids(dom):
    d = dom.path("var/spool/virtmail/env")
    try:
        return sorted(os.listdir(d))
    except FileNotFoundError:
        return []


def send(ip, sender, rcpts, msg):
    with smtplib.SMTP(ip, 25, timeout=20) as s:
        s.ehlo("client.test")
        s.sendmail(sender, rcpts, msg)


def test_maildir_per_domain(env):
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf)
    body_a = b"Subject: to alpha\r\n\r\nFrom the start\r\nhello alpha\r\n"
    body_b = b"Subject: to beta\r\n\r\nhello beta\r\n"
    send(ALPHA, "carol@remote.test", ["bob@alpha.test"], body_a)
    send(BETA, "carol@remote.test", ["bob@beta.test"], body_b)
    for dom, body in ((a, body_a), (b, body_b)):
        files = wait_files(dom, "bob", 1)
        assert len(files) == 1, (dom, files, p.log())
        st = os.stat(files[0])
        assert st.st_uid == dom.uids["bob"], (st.st_uid, dom.uids)
        assert st.st_gid == dom.uids["bob"]
        assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)
        data = open(files[0], "rb").read()
        head = ("Return-Path: <carol@remote.test>\nDelivered-To: "
                "bob@%s\n" % dom.name).encode()
        assert data.startswith(head), data
        rest = data[len(head):]
        assert rest.startswith(b"Received: "), data
        assert rest.endswith(body.replace(b"\r\n", b"\n")), data
        env.wait_for_log(p, r"delivery to=<bob@%s> mailbox=/home/bob/"
                         r"Maildir status=sent delay=\d+s" %
                         re.escape(dom.name))
    # Nothing of alpha's bob in beta's, and the other way round.
    assert len(maildir_files(a, "bob")) == 1
    assert len(maildir_files(b, "bob")) == 1
    deadline = time.monotonic() + 10
    while (queue_ids(a) or queue_ids(b)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not queue_ids(a) and not queue_ids(b), "queue not emptied"


def test_aliases(env):
    a, b, vconf, gconf = setup(env)
    p = start(env, vconf, gconf)
    send(ALPHA, "carol@remote.test", ["list@alpha.test"],
         b"Subject: list\r\n\r\nto the list\r\n")
    assert len(wait_files(a, "bob", 1)) == 1, p.log()
    assert len(wait_files(a, "alice", 1)) == 1, p.log()
    data = open(maildir_files(a, "alice")[0], "rb").read()
    assert b"Delivered-To: alice@alpha.test\n" in data, data

    send(ALPHA, "carol@remote.test", ["postmaster@alpha.test"],
         b"Subject: pm\r\n\r\nfor the postmaster\r\n")
    assert len(wait_files(a, "bob", 2)) == 2, p.log()

    # An alias to a remote address goes to remote delivery; remote.test
    # does not exist, so it bounces (and the bounce to carol@remote.test
    # bounces too, which, from <>, is dropped).
    send(ALPHA, "carol@remote.test", ["fwd@alpha.test"],
         b"Subject: fwd\r\n\r\nforward me\r\n")
    env.wait_for_log(p, r"delivery to=<someone@remote.test> "
                     r"orig_to=<fwd@alpha.test> relay=none status=bounced "
                     r".*dsn=5\.1\.2")
    env.wait_for_log(p, r"dsn dropped: null sender")

    # A loop through addresses ends as a permanent failure, not a hang.
    send(ALPHA, "carol@remote.test", ["loop1@alpha.test"],
         b"Subject: loop\r\n\r\nround and round\r\n")
    env.wait_for_log(p, r"delivery to=<loop1@alpha.test> .*status=bounced"
                     r".*alias loop")
    assert len(maildir_files(a, "bob")) == 2
    assert len(maildir_files(a, "alice")) == 1


def split_mbox(data):
    """Messages of an mbox (separator lines start with "From ")."""
    msgs = []
    for part in re.split(rb"(?:^|\n\n)(?=From [^\n]* \d\d:\d\d:\d\d \d{4}\n)",
                         data):
        if part.startswith(b"From "):
            msgs.append(part)
    return msgs


def test_mbox_concurrent(env):
    a, b, vconf, gconf = setup(env, beta_mbox=True)
    p = start(env, vconf, gconf)
    nthreads, per = 20, 3
    errors = []

    def worker(t):
        try:
            for i in range(per):
                body = ("Subject: m-%d-%d\r\n\r\nFrom the body %d-%d\r\n" %
                        (t, i, t, i)) + ("line %d-%d\r\n" % (t, i)) * 200
                send(BETA, "carol@remote.test", ["bob@beta.test"],
                     body.encode())
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(t,))
               for t in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(50)
    assert not errors, errors
    path = b.path("var/spool/mail/bob")
    total = nthreads * per
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if os.path.exists(path) and \
                len(split_mbox(open(path, "rb").read())) >= total:
            break
        time.sleep(0.1)
    data = open(path, "rb").read()
    st = os.stat(path)
    assert st.st_uid == b.uids["bob"] and st.st_mode & 0o777 == 0o600
    msgs = split_mbox(data)
    assert len(msgs) == total, (len(msgs), p.log()[-3000:])
    seen = set()
    for m in msgs:
        subj = re.search(rb"\nSubject: (m-\d+-\d+)\n", m).group(1).decode()
        t, i = subj[2:].split("-")
        assert subj not in seen, subj
        seen.add(subj)
        # No interleaving: the message's own lines, all of them, in order.
        want = ("\n>From the body %s-%s\n" % (t, i)) + \
            ("line %s-%s\n" % (t, i)) * 200
        assert m.decode().rstrip("\n").endswith(want.rstrip("\n")), m[:300]
        assert b"X-Virtmail-Queue-ID: " in m
    assert not os.path.exists(path + ".lock")


def test_crash_exactly_once(env):
    a, b, vconf, gconf = setup(env)
    p = [start(env, vconf, gconf)]
    acked = set()
    retried = set()     # a try failed: the client may have caused a copy
    lock = threading.Lock()
    stop = threading.Event()
    total = 100000      # an upper bound; the kills decide how many go

    def sender(t):
        n = t
        while n < total and not stop.is_set():
            subj = "crash-%04d" % n
            msg = ("Subject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n"
                   "body %s\r\n" % (subj, subj, subj)).encode()
            try:
                with smtplib.SMTP(ALPHA, 25, timeout=5) as s:
                    s.sendmail("carol@remote.test", ["bob@alpha.test"], msg)
                with lock:
                    acked.add(subj)
                n += 8
            except (OSError, smtplib.SMTPException):
                # The daemon is down: try again.  A kill between the
                # commit and the 250 makes a second, legitimate copy
                # (RFC 5321 §6.1), so such messages may arrive twice.
                with lock:
                    retried.add(subj)
                time.sleep(0.05)

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    # Four kills at random moments while the load runs, then stop it.
    kills = 0
    while kills < 4 and any(t.is_alive() for t in threads):
        time.sleep(random.uniform(0.1, 0.6))
        # kill -9 everything: master, workers, runners, deliverers.
        try:
            os.killpg(p[0].pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p[0].wait(5)
        # The group's other members may outlive the master a moment and
        # still hold the listening sockets.
        gone = time.monotonic() + 5
        while time.monotonic() < gone:
            try:
                os.killpg(p[0].pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        kills += 1
        p[0] = start(env, vconf, gconf)
    time.sleep(0.5)     # some messages through the last incarnation
    stop.set()
    for t in threads:
        t.join(10)
    assert kills == 4
    assert len(acked) >= 50, len(acked)
    # Let the last incarnation finish the queue.
    deadline = time.monotonic() + 15
    while queue_ids(a) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not queue_ids(a), (queue_ids(a), p[0].log()[-2000:])
    count = {}
    qids = {}
    for f in maildir_files(a, "bob"):
        m = re.search(rb"\nSubject: (crash-\d+)\n", open(f, "rb").read())
        assert m, f
        s = m.group(1).decode()
        count[s] = count.get(s, 0) + 1
        # One queued message (id and recipient index in the file name)
        # is in the mailbox at most once.
        q = re.search(r"\.V([0-9a-f]+I\d+)\.", os.path.basename(f))
        assert q, f
        qids[q.group(1)] = qids.get(q.group(1), 0) + 1
    assert not [q for q, c in qids.items() if c > 1], qids
    dups = sorted(s for s, c in count.items() if c > 1 and s not in retried)
    lost = sorted(acked - set(count))
    assert not dups, "delivered twice: %s" % dups
    assert not lost, "acknowledged but lost: %s" % lost
    # A delivery killed before its 250 (smtpd/smtp_direct.c) may leave
    # its half-written file in tmp/: the client sends that message again
    # under a new name, and the Maildir convention lets readers remove
    # such files after 36 hours.  At most one per delivery in flight at
    # each kill; one whose delivery completed (killed between the link
    # into new/ and the unlink) is only a second name of that file.
    md = a.maildir("bob")
    left = set(os.listdir(os.path.join(md, "tmp")))
    assert len(left) <= kills * 8, left
    for n in left & set(os.listdir(os.path.join(md, "new"))):
        assert os.stat(os.path.join(md, "tmp", n)).st_ino == \
            os.stat(os.path.join(md, "new", n)).st_ino, n
