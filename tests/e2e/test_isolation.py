"""Tenant isolation, read from the outside: with two domains that both
have certificates and traffic of every kind in flight (SMTP, SMTPS,
submission with AUTH, POP3 and POP3S sessions, deliveries to a Maildir
and to an mbox, a queued remote message), every process of
virtmail-smtpd and virtmail-pop3d is looked at through /proc: none whose
root directory is a domain's root is privileged, and none that serves
one domain holds the other domain's private key in its memory."""

import os
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import time

import vmtest
from test_tls import ctx, make_cert

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4
# Idle sessions must outlast a scan of every process's memory, which a
# sanitizer build makes slow.
GLOBAL = ("retry_min 60\nretry_max 120\ntimeout_command 300s\n"
          "pop3_timeout 300s\npop3_auth_delay 0\n")


def setup(env):
    """alpha.test delivers to Maildir, beta.test to mbox; both have an
    RSA certificate.  Starts virtmail-smtpd and virtmail-pop3d."""
    a = env.make_domain_root("alpha.test", [ALPHA],
                             users={"bob": "alpha-pw", "carol": "carol-pw"})
    b = env.make_domain_root("beta.test", [BETA],
                             users={"bob": "beta-pw", "dave": "dave-pw"})
    for dom, extra in ((a, "route remote.test [127.0.0.1]:9\n"),
                       (b, "mailbox mbox\n")):
        c, k = make_cert(env, dom, "mx." + dom.name, ["mx." + dom.name],
                         kind="rsa")
        with open(dom.path("etc/virtmail.conf"), "w") as f:
            f.write("hostname mx.%s\nrun_as virtmail\ntls_cert %s\n"
                    "tls_key %s\nauth_delay 0\nrelay_from 127.0.0.1/32\n%s"
                    % (dom.name, c, k, extra))
    vc = env.write_virtual_conf([(ALPHA, a.root), (BETA, b.root)])
    gc = env.path("virtmail.conf")
    with open(gc, "w") as f:
        f.write(GLOBAL)
    smtpd = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vc,
                               "-C", gc], name="smtpd")
    pop3d = env.start_process([env.bin("virtmail-pop3d"), "-d", "-f", vc,
                               "-C", gc], name="pop3d")
    for ip in (ALPHA, BETA):
        for port in (25, 587, 465):
            env.wait_for_port(ip, port, proc=smtpd)
        for port in (110, 995):
            env.wait_for_port(ip, port, proc=pop3d)
    return a, b, smtpd, pop3d


# --------------------------------------------------------------------
# Key material, as OpenSSL keeps it in memory


def _bn(text, label):
    """The bytes (big-endian) of one number of `openssl rsa -text`."""
    m = re.search(r"^%s:\s*\n((?:\s+[0-9a-f:]+\n)+)" % label, text,
                  re.M)
    assert m, "no %s in openssl output" % label
    return bytes.fromhex(re.sub(r"[\s:]", "", m.group(1)))


def key_patterns(dom):
    """Byte strings that only a copy of dom's private key contains: the
    private exponent and both primes, big-endian (DER, files) and
    little-endian (OpenSSL's BIGNUM limbs on this CPU), and a piece of
    the DER encoding."""
    key = dom.path("etc/ssl/main.key")
    r = subprocess.run(["openssl", "rsa", "-in", key, "-text", "-noout"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    pats = []
    for label in ("privateExponent", "prime1", "prime2"):
        n = _bn(r.stdout, label).lstrip(b"\0")
        pats.append(n[16:48])
        pats.append(n[::-1][16:48])
    der = subprocess.run(["openssl", "pkey", "-in", key, "-outform", "DER"],
                         capture_output=True, timeout=20).stdout
    assert len(der) > 600
    pats.append(der[400:432])
    return pats


def memory_holds(pid, patterns):
    """Whether any readable mapping of pid contains one of patterns."""
    return bool(vmtest.memory_find(pid, dict(enumerate(patterns))))


# --------------------------------------------------------------------
# /proc


def status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        return None
    return out


def proc_root(pid):
    try:
        return os.readlink("/proc/%d/root" % pid)
    except OSError:
        return None


def domain_of(pid, doms):
    """The domain pid serves: by its root directory, by the name in its
    command line (process title), or by a descriptor it holds inside a
    domain's root; None when it shows none."""
    root = proc_root(pid)
    for d in doms:
        if root == d.root:
            return d
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmd = ""
    for d in doms:
        if re.search(r"\b%s\b" % re.escape(d.name), cmd):
            return d
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        fds = []
    for fd in fds:
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        for d in doms:
            if t == d.root or t.startswith(d.root + "/"):
                return d
    return None


def classify(masters, doms):
    """{pid: domain or None} for every process under masters; a process
    that shows no domain itself serves its nearest ancestor's."""
    children = vmtest._children()
    out = {}
    todo = [(m, None) for m in masters]
    while todo:
        pid, inherited = todo.pop()
        d = domain_of(pid, doms) if pid not in masters else None
        d = d or inherited
        out[pid] = d
        todo.extend((c, d) for c in children.get(pid, []))
    return out


# --------------------------------------------------------------------
# Traffic that keeps every kind of process alive


def smtp_send(ip, rcpt, body, port=25):
    s = smtplib.SMTP(ip, port, timeout=20)
    s.sendmail("someone@example.test", [rcpt], body)
    s.quit()


def mbox_text(dom, user):
    try:
        with open(dom.path("var/spool/mail/" + user), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def wait_until(cond, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def maildir_count(dom, user):
    md = dom.maildir(user)
    return sum(len(os.listdir(os.path.join(md, s))) for s in ("new", "cur"))


def busy(env, a, b, smtpd, pop3d):
    """Open sessions of every kind and leave them open; returns what
    must be closed afterwards."""
    keep = []
    # Deliveries: Maildir (alpha) and mbox (beta), agents then idle.
    smtp_send(ALPHA, "bob@alpha.test", b"Subject: a1\r\n\r\nalpha\r\n")
    smtp_send(BETA, "bob@beta.test", b"Subject: b1\r\n\r\nbeta\r\n")
    wait_until(lambda: maildir_count(a, "bob") >= 1, what="alpha Maildir")
    wait_until(lambda: b"beta" in mbox_text(b, "bob"), what="beta mbox")
    # A remote message that stays queued (its route refuses).
    s = smtplib.SMTP(ALPHA, 587, timeout=20)
    s.starttls(context=ctx())
    s.login("carol", "carol-pw")
    s.sendmail("carol@alpha.test", ["x@remote.test"],
               b"Subject: queued\r\n\r\nqueued\r\n")
    keep.append(s)                      # submission session, after AUTH
    for ip in (ALPHA, BETA):
        t = ctx().wrap_socket(socket.create_connection((ip, 465), 20))
        assert t.recv(512).startswith(b"220")
        keep.append(t)                  # SMTPS session, idle
        c = smtplib.SMTP(ip, 25, timeout=20)
        c.ehlo()
        keep.append(c)                  # plain SMTP session, idle
    # POP3: a logged-in session per domain (beta's holds its mbox), a
    # POP3S session logged in, and one waiting for its password.
    p = poplib.POP3(ALPHA, 110, timeout=20)
    p.stls(context=ctx())
    p.user("bob")
    p.pass_("alpha-pw")
    keep.append(p)
    q = poplib.POP3_SSL(BETA, 995, timeout=20, context=ctx())
    q.user("bob")
    q.pass_("beta-pw")
    assert q.stat()[0] == 1
    keep.append(q)
    r = poplib.POP3_SSL(ALPHA, 995, timeout=20, context=ctx())
    r.user("carol")
    keep.append(r)
    env.wait_for_log(smtpd, r"to=<x@remote.test>.* status=deferred",
                     timeout=30)
    return keep


def close_all(keep):
    for k in keep:
        try:
            k.close()
        except Exception:
            pass


def test_no_privileged_process_inside_a_root(env):
    a, b, smtpd, pop3d = setup(env)
    keep = busy(env, a, b, smtpd, pop3d)
    try:
        seen = {a.root: 0, b.root: 0}
        bad = []
        for pid in vmtest.tree_pids(smtpd.pid) + \
                vmtest.tree_pids(pop3d.pid):
            root, st = proc_root(pid), status(pid)
            if st is None or root not in seen:
                continue
            seen[root] += 1
            uids = st["Uid"].split() + st["Gid"].split()
            caps = [st[k] for k in ("CapEff", "CapPrm", "CapInh")]
            if "0" in uids or any(int(c, 16) for c in caps) or \
                    st.get("NoNewPrivs") != "1":
                bad.append("pid %d (%s) in %s: Uid %s Gid %s Cap %s "
                           "NoNewPrivs %s" % (pid, st["Name"], root,
                                              st["Uid"], st["Gid"], caps,
                                              st.get("NoNewPrivs")))
        assert not bad, "\n".join(bad)
        # The scan looked at something: workers, runners, agents,
        # login processes and sessions of both domains.
        assert seen[a.root] >= 4 and seen[b.root] >= 4, seen
    finally:
        close_all(keep)


def test_no_process_holds_another_domains_key(env):
    a, b, smtpd, pop3d = setup(env)
    pats = {a.root: key_patterns(a), b.root: key_patterns(b)}
    keep = busy(env, a, b, smtpd, pop3d)
    try:
        masters = [smtpd.pid, pop3d.pid]
        owner = classify(masters, [a, b])
        bad, found_own = [], {a.root: 0, b.root: 0}
        for pid, d in owner.items():
            for other in (a, b):
                holds = memory_holds(pid, pats[other.root])
                if d is other:
                    found_own[other.root] += holds
                elif holds:
                    bad.append("pid %d (%s, serving %s) holds %s's key" %
                               (pid, status(pid)["Name"] if status(pid)
                                else "?", d.name if d else "no domain",
                                other.name))
        assert not bad, "\n".join(bad)
        # The scan can fail: each domain's own TLS processes hold its key.
        assert found_own[a.root] > 0 and found_own[b.root] > 0, found_own
    finally:
        close_all(keep)


def test_uid_of_another_domain_gets_nothing(env):
    """alpha's administrator adds eve with beta's bob's uid: mail to
    eve is not delivered (it waits in the queue), eve cannot log in
    over POP3 nor pass SMTP AUTH, and the refusals name the passwd file
    and line."""
    a, b, smtpd, pop3d = setup(env)
    stolen = b.uids["bob"]
    with open(a.path("etc/passwd"), "a") as f:
        f.write("eve:x:%d:%d:eve:/home/eve:/bin/sh\n" % (stolen, stolen))
    with open(a.path("etc/shadow"), "a") as f:
        f.write("eve:%s:19000:0:99999:7:::\n" %
                vmtest.hash_password("eve-pw"))
    line = len(open(a.path("etc/passwd")).read().splitlines())
    home = a.path("home/eve")
    for sub in ("", "/Maildir", "/Maildir/new", "/Maildir/cur",
                "/Maildir/tmp"):
        os.mkdir(home + sub, 0o700)
        os.chown(home + sub, stolen, stolen)
    where = r"%s/etc/passwd:%d: uid %d of eve" % (re.escape(a.root), line,
                                                  stolen)
    s = smtplib.SMTP(ALPHA, 25, timeout=20)
    try:
        s.sendmail("x@example.test", ["eve@alpha.test"],
                   b"Subject: steal\r\n\r\nfor eve\r\n")
    except smtplib.SMTPRecipientsRefused:
        pass            # refused at RCPT: as good as not delivered
    s.quit()
    env.wait_for_log(smtpd, where, timeout=30)
    env.wait_for_log(smtpd, r"to=<eve@alpha.test>.* status=deferred",
                     timeout=30)
    assert maildir_count(a, "eve") == 0
    assert maildir_count(b, "bob") == 0
    p = poplib.POP3(ALPHA, 110, timeout=20)
    p.stls(context=ctx())
    p.user("eve")
    try:
        p.pass_("eve-pw")
        raise AssertionError("eve logged in with beta's uid")
    except poplib.error_proto as e:
        assert e.args[0].startswith(b"-ERR"), e
    p.close()
    env.wait_for_log(pop3d, where, timeout=20)
    s = smtplib.SMTP(ALPHA, 587, timeout=20)
    s.starttls(context=ctx())
    try:
        s.login("eve", "eve-pw")
        raise AssertionError("eve passed SMTP AUTH with beta's uid")
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code == 535, e
    s.quit()
    # The AUTH service's refusal too (lines come through the relay).
    vmtest.wait_for_text(lambda: "%d" % len(re.findall(where, smtpd.log())),
                         r"^([2-9]|\d\d)", 20, "the refusals in the log")
    # bob of alpha, in range, still gets mail and logs in.
    smtp_send(ALPHA, "bob@alpha.test", b"Subject: ok\r\n\r\nfine\r\n")
    wait_until(lambda: maildir_count(a, "bob") == 1, what="bob's mail")
    p = poplib.POP3(ALPHA, 110, timeout=20)
    p.stls(context=ctx())
    p.user("bob")
    p.pass_("alpha-pw")
    assert p.stat()[0] == 1
    p.quit()
