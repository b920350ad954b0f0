"""The virtmail admin command: "check" on a good tree and on each kind of
fault (file:line, exit 1), TLS pairs, mailboxes and milters included;
"domain del" of a domain whose root is gone; "queue" listing a real queue with a deferred
remote message; "flush", "queue delete" and "queue bounce" against the
real queue and the runner's log, with and without a running runner."""

import os
import re
import shutil
import socket
import time

import vmtest
import test_sendmail as sm
from test_tls import make_cert, make_expired_cert

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4
EX_DATAERR, EX_NOHOST, EX_UNAVAILABLE = 65, 68, 69


def virtmail(env, vconf, gconf, *args):
    rc, out, err = env.run([env.bin("virtmail"), "-f", vconf, "-C", gconf]
                           + list(args), timeout=30)
    return rc, out + err


def good_tree(env):
    a = env.make_domain_root("alpha.test", [ALPHA],
                             users={"bob": "pw", "alice": "pw"})
    b = env.make_domain_root("beta.test", [BETA], users={"fred": "pw"})
    vconf = env.write_virtual_conf([(ALPHA, a.root), (BETA, b.root),
                                    ("2001:db8::10", a.root)])
    gconf = env.path("virtmail.conf")
    with open(gconf, "w") as f:
        f.write("retry_min 1\nretry_max 2\n")
    return a, b, vconf, gconf


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


def lines_of(path):
    with open(path) as f:
        return len(f.read().splitlines())


def test_check_good(env):
    a, b, vconf, gconf = good_tree(env)
    rc, out = virtmail(env, vconf, gconf, "check")
    assert rc == 0, out
    assert "configuration OK, 2 domains" in out, out


def test_check_faults(env):
    """One fault at a time: each is named with its file (and line)."""
    def fault_virtual(a, b, vconf, gconf):
        append(vconf, "192.0.2.99 relative/dir\n")
        return r"%s:4: " % re.escape(vconf)

    def fault_global(a, b, vconf, gconf):
        append(gconf, "no_such_key 1\n")
        return r"%s:3: .*no_such_key" % re.escape(gconf)

    def fault_domain_key(a, b, vconf, gconf):
        p = a.path("etc/virtmail.conf")
        append(p, "frobnicate yes\n")
        return r"%s:%d: " % (re.escape(p), lines_of(p))

    def fault_no_run_as(a, b, vconf, gconf):
        p = b.path("etc/virtmail.conf")
        with open(p, "w") as f:
            f.write("hostname mx.beta.test\n")
        return r"%s: run_as not set" % re.escape(p)

    def fault_run_as_unknown(a, b, vconf, gconf):
        p = b.path("etc/virtmail.conf")
        with open(p, "w") as f:
            f.write("hostname mx.beta.test\nrun_as ghost\n")
        return r"%s: run_as ghost: no such account" % re.escape(p)

    def fault_passwd(a, b, vconf, gconf):
        p = a.path("etc/passwd")
        append(p, "broken line without colons\n")
        return r"%s:%d: " % (re.escape(p), lines_of(p))

    def fault_group(a, b, vconf, gconf):
        p = a.path("etc/group")
        append(p, "grp:x:notanumber:\n")
        return r"%s:%d: " % (re.escape(p), lines_of(p))

    def fault_shadow_syntax(a, b, vconf, gconf):
        p = a.path("etc/shadow")
        append(p, "x\n")
        return r"%s:%d: " % (re.escape(p), lines_of(p))

    def fault_shadow_mode(a, b, vconf, gconf):
        p = a.path("etc/shadow")
        os.chmod(p, 0o644)
        return r"%s: readable by group or others" % re.escape(p)

    def fault_aliases(a, b, vconf, gconf):
        p = a.path("etc/aliases")
        append(p, "no colon here\n")
        return r"%s:%d: " % (re.escape(p), lines_of(p))

    def fault_root_owner(a, b, vconf, gconf):
        os.chown(b.root, 1234, 0)
        return r"%s: not owned by root" % re.escape(b.root)

    def fault_root_mode(a, b, vconf, gconf):
        os.chmod(b.root, 0o777)
        return r"%s: group or world writable" % re.escape(b.root)

    def fault_etc_link(a, b, vconf, gconf):
        p = b.path("etc/passwd")
        os.unlink(p)
        os.symlink("/etc/passwd", p)
        return r"%s: not a regular file" % re.escape(p)

    def fault_queue_owner(a, b, vconf, gconf):
        q = a.path("var/spool/virtmail")
        os.chown(q, 0, 0)
        return r"%s: owned by uid 0, not by run_as virtmail" % re.escape(q)

    def fault_queue_mode(a, b, vconf, gconf):
        q = a.path("var/spool/virtmail")
        os.chmod(q, 0o755)
        return r"%s: accessible to others" % re.escape(q)

    faults = [fault_virtual, fault_global, fault_domain_key,
              fault_no_run_as, fault_run_as_unknown, fault_passwd,
              fault_group, fault_shadow_syntax, fault_shadow_mode,
              fault_aliases, fault_root_owner, fault_root_mode,
              fault_etc_link, fault_queue_owner, fault_queue_mode]
    run_faults(env, faults)


def test_check_good_legacy(env):
    """Plain "IP DIR" lines (no uids=) still check OK."""
    a, b, vconf, gconf = good_tree(env)
    env.write_virtual_conf([(ALPHA, a.root), (BETA, b.root)], path=vconf,
                           ranges=False)
    with open(vconf) as f:
        assert "uids=" not in f.read()
    rc, out = virtmail(env, vconf, gconf, "check")
    assert rc == 0, out


def test_check_id_faults(env):
    """uid/gid ranges: overlaps, accounts outside their domain's range,
    ids shared between domains (legacy ones too), host ids."""
    A, B = vmtest.uid_base("alpha.test"), vmtest.uid_base("beta.test")

    def write_conf(vconf, a, b, arange, brange):
        with open(vconf, "w") as f:
            f.write("%s %s%s\n%s %s%s\n" % (
                ALPHA, a.root, " uids=" + arange if arange else "",
                BETA, b.root, " uids=" + brange if brange else ""))

    def fault_overlap(a, b, vconf, gconf):
        write_conf(vconf, a, b, "%d-%d" % (A, A + 999),
                   "%d-%d" % (A + 999, B + 999))
        return (r"^%s:2: uids=%d-%d of %s overlaps uids=%d-%d of %s on "
                r"line 1$" % (re.escape(vconf), A + 999, B + 999,
                              re.escape(b.root), A, A + 999,
                              re.escape(a.root)))

    def fault_uid_outside(a, b, vconf, gconf):
        p = a.path("etc/passwd")
        append(p, "eve:x:%d:%d::/home/eve:/bin/false\n" % (B + 1, A))
        return (r"^%s:%d: uid %d of eve is outside alpha\.test's range "
                r"%d-%d \(%s:1\)$" % (re.escape(p), lines_of(p), B + 1, A,
                                      A + 999, re.escape(vconf)))

    def fault_gid_host(a, b, vconf, gconf):
        p = a.path("etc/group")
        append(p, "staff:x:65534:bob\n")
        return (r"^%s:%d: gid 65534 of staff is the host's gid \S+ "
                r"\(/etc/(group|passwd):\d+\)$" % (re.escape(p),
                                                  lines_of(p)))

    def fault_range_holds_host(a, b, vconf, gconf):
        write_conf(vconf, a, b, "%d-%d" % (A, A + 999), "60000-65534")
        return (r"^%s:2: uids=60000-65534 of beta\.test holds uid 65534 of "
                r"the host's \S+ \(/etc/passwd:\d+\)$" % re.escape(vconf))

    def fault_legacy_shared(a, b, vconf, gconf):
        write_conf(vconf, a, b, None, None)
        p = a.path("etc/passwd")
        append(p, "eve:x:%d:%d::/home/eve:/bin/false\n" % (
            b.uids["fred"], A))
        return (r"^%s:%d: uid %d of eve is also beta\.test's fred "
                r"\(%s:3\)$" % (re.escape(p), lines_of(p), b.uids["fred"],
                                re.escape(b.path("etc/passwd"))))

    def fault_legacy_in_range(a, b, vconf, gconf):
        write_conf(vconf, a, b, None, "%d-%d" % (B, B + 999))
        p = a.path("etc/passwd")
        append(p, "eve:x:%d:%d::/home/eve:/bin/false\n" % (B + 500, A))
        return (r"^%s:%d: uid %d of eve is in beta\.test's range %d-%d "
                r"\(%s:2\)$" % (re.escape(p), lines_of(p), B + 500, B,
                                B + 999, re.escape(vconf)))

    run_faults(env, [fault_overlap, fault_uid_outside, fault_gid_host,
                     fault_range_holds_host, fault_legacy_shared,
                     fault_legacy_in_range])


def run_faults(env, faults):
    for i, fault in enumerate(faults):
        base = env.path("%s%d" % (fault.__name__, i))
        a = vmtest.make_domain_root(base, "alpha.test", [ALPHA],
                                    users={"bob": "pw"})
        b = vmtest.make_domain_root(base, "beta.test", [BETA],
                                    users={"fred": "pw"})
        vconf = vmtest.write_virtual_conf(
            os.path.join(base, "virtual.conf"),
            [(ALPHA, a.root), (BETA, b.root), ("2001:db8::10", a.root)])
        gconf = os.path.join(base, "virtmail.conf")
        with open(gconf, "w") as f:
            f.write("retry_min 1\nretry_max 2\n")
        want = fault(a, b, vconf, gconf)
        rc, out = virtmail(env, vconf, gconf, "check")
        assert rc == 1, (fault.__name__, rc, out)
        assert re.search(want, out, re.M), (fault.__name__, want, out)
        assert re.search(r"virtmail check: \d+ problems?$", out, re.M), out


def set_conf(dom, extra):
    """dom's etc/virtmail.conf with extra lines; the path and the line
    number of extra's first line."""
    p = dom.path("etc/virtmail.conf")
    head = "hostname mx.%s\nrun_as virtmail\n" % dom.name
    with open(p, "w") as f:
        f.write(head + extra)
    return p, 3


def set_tls(env, dom, crt, key):
    return set_conf(dom, "tls_cert %s\ntls_key %s\n" % (crt, key))


def test_check_good_extras(env):
    """A valid certificate, a live milter socket and mbox delivery pass."""
    a, b, vconf, gconf = good_tree(env)
    crt, key = make_cert(env, a, "mx.alpha.test", ["mx.alpha.test"])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(a.path("var/m.sock"))
    set_conf(a, "tls_cert %s\ntls_key %s\nmilter unix:/var/m.sock\n"
             "milter inet:127.0.0.1:8891\n" % (crt, key))
    set_conf(b, "mailbox mbox\n")
    os.makedirs(b.path("usr/sbin"), exist_ok=True)
    with open(b.path("usr/sbin/sendmail"), "w") as f:
        f.write("")
    with open(b.path("etc/group"), "a") as f:
        f.write("virtmail-drop:x:3999:virtmail\n")
    rc, out = virtmail(env, vconf, gconf, "check")
    sock.close()
    assert rc == 0, out


def test_check_faults_tls_mailbox_milter(env):
    """The checks of issue 8, one fault at a time, each with its file (and
    the line of the account or of the key at fault)."""
    def fault_tls_expired(a, b, vconf, gconf):
        crt, key = make_expired_cert(env, a, "mx.alpha.test")
        set_tls(env, a, crt, key)
        return r"^%s: certificate expired" % re.escape(a.path(crt))

    def fault_tls_mismatch(a, b, vconf, gconf):
        c1, k1 = make_cert(env, b, "mx.beta.test", ["mx.beta.test"],
                           tag="one")
        c2, k2 = make_cert(env, b, "mx.beta.test", ["mx.beta.test"],
                           tag="two")
        set_tls(env, b, c1, k2)
        return r"^%s: private key does not match" % re.escape(b.path(k2))

    def fault_tls_missing(a, b, vconf, gconf):
        crt, key = make_cert(env, a, "mx.alpha.test", ["mx.alpha.test"])
        set_tls(env, a, "/etc/ssl/none.crt", key)
        return r"^%s: certificate: no such file" % \
            re.escape(a.path("/etc/ssl/none.crt"))

    def fault_tls_key_mode(a, b, vconf, gconf):
        crt, key = make_cert(env, a, "mx.alpha.test", ["mx.alpha.test"])
        set_tls(env, a, crt, key)
        os.chmod(a.path(key), 0o640)
        return r"^%s: private key: .*readable by group or others" % \
            re.escape(a.path(key))

    # alpha's passwd: root, virtmail, bob (line 3).
    def fault_home_missing(a, b, vconf, gconf):
        shutil.rmtree(a.path("home/bob"))
        return r"^%s:3: user bob: home .*: No such file" % \
            re.escape(a.path("etc/passwd"))

    def fault_home_owner(a, b, vconf, gconf):
        os.chown(a.path("home/bob"), 0, 0)
        return r"^%s:3: user bob: home .*: owned by uid 0, not by the " \
            r"user" % re.escape(a.path("etc/passwd"))

    def fault_home_mode(a, b, vconf, gconf):
        os.chmod(a.path("home/bob"), 0o777)
        return r"^%s:3: user bob: home .*: group or world writable" % \
            re.escape(a.path("etc/passwd"))

    def fault_maildir_owner(a, b, vconf, gconf):
        os.chown(a.path("home/bob/Maildir/new"), 0, 0)
        return r"^%s:3: user bob: .*/Maildir/new: owned by uid 0" % \
            re.escape(a.path("etc/passwd"))

    def fault_mbox_spool(a, b, vconf, gconf):
        set_conf(b, "mailbox mbox\n")
        os.chmod(b.path("var/spool/mail"), 0o1777)
        return r"^%s: world writable" % re.escape(b.path("var/spool/mail"))

    def fault_mbox_spool_missing(a, b, vconf, gconf):
        set_conf(b, "mailbox mbox\n")
        os.rmdir(b.path("var/spool/mail"))
        return r"^%s: No such file" % re.escape(b.path("var/spool/mail"))

    def fault_milter_syntax(a, b, vconf, gconf):
        p, n = set_conf(a, "milter inet:milter.example:8891\n")
        return r"^%s:%d: milter: .*no host names" % (re.escape(p), n)

    def fault_milter_no_socket(a, b, vconf, gconf):
        p, n = set_conf(a, "milter inet:127.0.0.1:8891\n"
                        "milter unix:/var/run/milter.sock\n")
        return r"^%s:%d: milter unix:/var/run/milter\.sock: No such " \
            r"file" % (re.escape(p), n + 1)

    def fault_milter_not_socket(a, b, vconf, gconf):
        with open(a.path("var/m.sock"), "w") as f:
            f.write("")
        p, n = set_conf(a, "milter unix:/var/m.sock\n")
        return r"^%s:%d: milter unix:/var/m\.sock: not a socket" % \
            (re.escape(p), n)

    def fault_run_as_shared(a, b, vconf, gconf):
        # beta's run_as takes alpha's run_as uid.
        p = b.path("etc/passwd")
        with open(p) as f:
            text = f.read()
        ua, ub = a.uids["virtmail"], b.uids["virtmail"]
        with open(p, "w") as f:
            f.write(text.replace("virtmail:x:%d:%d:" % (ub, ub),
                                 "virtmail:x:%d:%d:" % (ua, ua)))
        os.chown(b.path("var/spool/virtmail"), ua, ua)
        return r"^%s:2: run_as uid %d also used by domain alpha.test" % \
            (re.escape(b.path("etc/virtmail.conf")), ua)

    def fault_run_as_uid_account(a, b, vconf, gconf):
        ua = a.uids["virtmail"]
        append(a.path("etc/passwd"), "other:x:%d:%d::/:/usr/sbin/nologin\n"
               % (ua, ua))
        return r"^%s:2: run_as virtmail: uid %d also used by account " \
            r"other" % (re.escape(a.path("etc/virtmail.conf")), ua)

    def fault_drop_group(a, b, vconf, gconf):
        os.makedirs(b.path("usr/sbin"), exist_ok=True)
        with open(b.path("usr/sbin/virtmail-postdrop"), "w") as f:
            f.write("")
        return r"^%s: no virtmail-drop group" % \
            re.escape(b.path("etc/group"))

    run_faults(env, [
        fault_tls_expired, fault_tls_mismatch, fault_tls_missing,
        fault_tls_key_mode, fault_home_missing, fault_home_owner,
        fault_home_mode, fault_maildir_owner, fault_mbox_spool,
        fault_mbox_spool_missing, fault_milter_syntax,
        fault_milter_no_socket, fault_milter_not_socket,
        fault_run_as_shared, fault_run_as_uid_account, fault_drop_group])


def test_domain_del_root_gone(env):
    """A domain whose root was removed by hand is skipped by the table
    parser, yet "domain del" still finds and removes its lines."""
    a, b, vconf, gconf = good_tree(env)
    shutil.rmtree(b.root)
    rund = env.path("run")
    os.makedirs(rund, exist_ok=True)
    cmd = [env.bin("virtmail"), "-f", vconf, "-C", gconf, "-P", rund,
           "domain", "del"]
    rc, out, err = env.run(cmd + ["nosuch.test"])
    assert rc == EX_NOHOST, out + err
    rc, out, err = env.run(cmd + ["beta.test", "--purge"])
    assert rc == 0, out + err
    assert "already gone" in out, out
    with open(vconf) as f:
        text = f.read()
    assert b.root not in text and text.count(a.root) == 2, text
    rc, out = virtmail(env, vconf, gconf, "check")
    assert rc == 0 and "configuration OK, 1 domain" in out, out
    # By its root, too.
    shutil.rmtree(a.root)
    rc, out, err = env.run(cmd + [a.root])
    assert rc == 0, out + err
    with open(vconf) as f:
        assert f.read() == ""


def setup_queue(env):
    """alpha with bob and alice; mail for beta.test goes to a closed port,
    so it stays deferred in alpha's queue."""
    a, b, vconf, gconf = sm.setup(env, "route beta.test [127.0.0.1]:9\n")
    return a, b, vconf, gconf


def queued(dom):
    return sorted(os.listdir(dom.path("var/spool/virtmail/env")))


def wait_queued(dom, n, timeout=10):
    deadline = time.monotonic() + timeout
    while len(queued(dom)) != n:
        assert time.monotonic() < deadline, queued(dom)
        time.sleep(0.05)
    return queued(dom)


def test_queue_listing(env):
    a, b, vconf, gconf = setup_queue(env)
    p = sm.start(env, vconf, gconf, [a, b])
    rc, err = sm.inject(a, ["bob", "fred@beta.test"],
                        b"Subject: listed\n\nx\n", uid=a.uids["alice"])
    assert rc == 0, err
    sm.wait_mail(a, "bob")
    qid = wait_queued(a, 1)[0]
    # bob's copy is recorded before fred's stays pending.
    deadline = time.monotonic() + 10
    while True:
        rc, out = virtmail(env, vconf, gconf, "queue", "alpha.test")
        if "<bob@alpha.test>  delivered" in out or \
                time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rc == 0, out
    size = os.path.getsize(a.path("var/spool/virtmail/msg/" + qid))
    assert re.search(r"^domain alpha.test root %s$" % re.escape(a.root),
                     out, re.M), out
    assert re.search(r"^%s  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  %d  "
                     r"<alice@alpha.test>" % (qid, size), out, re.M), out
    assert re.search(r"^    <bob@alpha.test>  delivered$", out, re.M), out
    assert re.search(r"^    <fred@beta.test>  (deferred|queued)", out,
                     re.M), out
    assert "1 message\n" in out, out
    # All domains: beta's queue is listed too, and is empty.
    rc, out = virtmail(env, vconf, gconf, "queue")
    assert rc == 0, out
    assert out.count("\ndomain ") + out.startswith("domain ") == 2, out
    assert re.search(r"domain beta.test .*\n0 messages", out), out
    # Bad arguments.
    rc, out = virtmail(env, vconf, gconf, "queue", "nosuch.test")
    assert rc == EX_NOHOST, out
    rc, out = virtmail(env, vconf, gconf, "queue", "delete", "alpha.test",
                       "../../etc")
    assert rc == EX_DATAERR, out
    p.stop()


def control_available(dom):
    return os.path.exists(dom.path("var/spool/virtmail/control"))


def test_flush_delete_bounce(env):
    a, b, vconf, gconf = setup_queue(env)
    p = sm.start(env, vconf, gconf, [a, b])
    for subj in (b"one", b"two", b"three"):
        rc, err = sm.inject(a, ["fred@beta.test"], b"Subject: " + subj +
                            b"\n\nx\n", uid=a.uids["alice"])
        assert rc == 0, err
    ids = wait_queued(a, 3)
    time.sleep(0.5)
    deadline = time.monotonic() + 5
    while not control_available(a):
        assert time.monotonic() < deadline, "no control socket: " + p.log()
        time.sleep(0.05)
    rc, out = virtmail(env, vconf, gconf, "flush", "alpha.test")
    assert rc == 0 and "alpha.test: flushed" in out, out
    env.wait_for_log(p, r"queue flush by administrator")
    rc, out = virtmail(env, vconf, gconf, "queue", "delete",
                       "alpha.test", ids[0])
    assert rc == 0 and "%s: deleted" % ids[0] in out, out
    assert ids[0] not in queued(a)
    assert not os.path.exists(a.path("var/spool/virtmail/msg/" + ids[0]))
    env.wait_for_log(p, r"%s removed by administrator" % ids[0])
    rc, out = virtmail(env, vconf, gconf, "queue", "bounce",
                       "alpha.test", ids[1])
    assert rc == 0 and "%s: bounced" % ids[1] in out, out
    env.wait_for_log(p, r"%s.*bounce" % ids[1])
    # The DSN goes back to alice, a local sender.
    data = sm.wait_mail(a, "alice")[0]
    assert b"delivery-status" in data, data
    rc, out = virtmail(env, vconf, gconf, "queue", "delete",
                       "alpha.test", "0123456789abcdef")
    assert rc == EX_DATAERR, out
    remaining = ids[2]
    # Without a runner: flush and bounce fail, delete acts on the files.
    p.stop()
    rc, out = virtmail(env, vconf, gconf, "flush", "alpha.test")
    assert rc == EX_UNAVAILABLE and "not running" in out, out
    rc, out = virtmail(env, vconf, gconf, "flush")
    assert rc != 0, out
    rc, out = virtmail(env, vconf, gconf, "queue", "bounce", "alpha.test",
                       remaining)
    assert rc == EX_UNAVAILABLE, out
    rc, out = virtmail(env, vconf, gconf, "queue", "delete", "alpha.test",
                       remaining)
    assert rc == 0 and "deleted (runner not running)" in out, out
    assert remaining not in queued(a)
    assert not os.path.exists(a.path("var/spool/virtmail/msg/" +
                                     remaining))
    rc, out = virtmail(env, vconf, gconf, "queue", "delete", "alpha.test",
                       remaining)
    assert rc == EX_DATAERR, out
