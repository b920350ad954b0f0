"""virtmail-pop3d isolation, read from /proc while sessions run: two
domains with RSA certificates; while POP3S and STLS sessions are logged
in and POP3S logins are pending (connected, before PASS), in daemon and
inetd mode: no process whose root is a domain's root has uid 0, gid 0,
a capability, or no_new_privs unset; the auth step's root is / and it
holds only SETUID, SETGID, SYS_CHROOT, KILL and CHOWN; the memory of
every process serving one domain holds none of the other domain's
private key, while its login process does hold its own (so the scan can
fail); the master holds no key.  mbox over TLS: the dotlock owned by
root, the session's fcntl lock, the rewrite with owner and mode kept.
A broken key is reported at start, reload and -t with file and reason."""

import os
import poplib
import re
import signal
import socket
import ssl
import subprocess
import time

import vmtest
from test_tls import ctx, make_cert

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4
GLOBAL = ("pop3_timeout 300s\npop3_auth_delay 0\npop3_max_auth_failures 3\n"
          "pop3_max_sessions_per_ip 50\n")
# CAP_CHOWN, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SYS_CHROOT.
AUTH_CAPS = (1 << 0) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 18)


def _key_needles(path):
    """Byte strings that only this private key's holder has: the DER
    private key, and 32-byte windows of the private exponent and the
    primes, big-endian (as in the file) and little-endian (as an x86-64
    BIGNUM holds them)."""
    r = subprocess.run(["openssl", "pkey", "-in", path, "-outform", "DER"],
                       capture_output=True, timeout=20)
    assert r.returncode == 0 and len(r.stdout) > 600, r.stderr
    needles = {"der": r.stdout}
    r = subprocess.run(["openssl", "rsa", "-in", path, "-noout", "-text"],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    for field in ("privateExponent", "prime1", "prime2"):
        m = re.search(r"^%s:\n((?:\s+[0-9a-f:]+\n)+)" % field, text, re.M)
        assert m, text
        num = bytes.fromhex(re.sub(r"[\s:]", "", m.group(1))).lstrip(b"\0")
        assert len(num) >= 100, (field, len(num))
        needles[field + "-be"] = num[8:40]
        needles[field + "-le"] = num[::-1][8:40]
    return needles


def _scan(pid, needles):
    """The names of needles found in pid's readable memory."""
    return vmtest.memory_find(pid, needles)


def _status(pid):
    with open("/proc/%d/status" % pid) as f:
        st = f.read()

    def field(k):
        return re.search(r"^%s:[ \t]*(.*)$" % k, st, re.M).group(1).split()
    return {"uid": [int(x) for x in field("Uid")],
            "gid": [int(x) for x in field("Gid")],
            "groups": [int(x) for x in field("Groups")],
            "cap": {k: int(field(k)[0], 16) for k in
                    ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
            "nnp": int(field("NoNewPrivs")[0]),
            "seccomp": int(field("Seccomp")[0]),
            "ppid": int(field("PPid")[0])}


def _procs(top):
    """{pid: (root, status)} of top and its descendants."""
    out = {}
    for pid in vmtest.tree_pids(top):
        try:
            root = os.readlink("/proc/%d/root" % pid)
            out[pid] = (root, _status(pid))
        except (OSError, AttributeError):
            pass
    return out


def _setup(env):
    a = env.make_domain_root("alpha.test", [ALPHA],
                             users={"bob": "alpha-pw"})
    b = env.make_domain_root("beta.test", [BETA], users={"bob": "beta-pw"})
    keys = {}
    for dom, cn, extra in ((a, "mx.alpha.test", "mailbox mbox\n"),
                           (b, "mx.beta.test", "")):
        c, k = make_cert(env, dom, cn, [cn], kind="rsa")
        with open(dom.path("etc/virtmail.conf"), "w") as f:
            f.write("hostname %s\nrun_as virtmail\ntls_cert %s\n"
                    "tls_key %s\n%s" % (cn, c, k, extra))
        keys[dom.name] = _key_needles(dom.path(k))
    vc = env.write_virtual_conf([(ALPHA, a.root), (BETA, b.root)])
    gc = env.path("virtmail.conf")
    with open(gc, "w") as f:
        f.write(GLOBAL)
    return a, b, vc, gc, keys


def _mbox(dom, user, subjects, mode):
    path = dom.path("var/spool/mail/%s" % user)
    with open(path, "wb") as f:
        for i, s in enumerate(subjects):
            f.write(b"From x@example.test Mon Jan  1 00:00:%02d 2024\n"
                    b"Subject: %s\n\nbody %d\n\n" % (i, s.encode(), i))
    os.chown(path, dom.uids[user], dom.uids[user])
    os.chmod(path, mode)
    return path


def _put(dom, user, body):
    path = os.path.join(dom.maildir(user), "new",
                        "1700000001.V1I1.mx.%s" % dom.name)
    with open(path, "wb") as f:
        f.write(body)
    os.chown(path, dom.uids[user], dom.uids[user])


def _check_tree(top, master, doms, keys, expect):
    """Wait until the tree of top has expect (login, session) processes
    per domain root, then check privileges and memory; returns
    {domain name: [(role, pid), ...]}."""
    roots = {os.path.realpath(d.root): d for d in doms}
    deadline = time.time() + 15
    while True:
        procs = _procs(top)
        count = {}
        for pid, (root, st) in procs.items():
            if root in roots:
                d = roots[root]
                role = "login" if st["uid"][0] == d.uids["virtmail"] \
                    else "session"
                count[(d.name, role)] = count.get((d.name, role), 0) + 1
        if count == expect:
            break
        assert time.time() < deadline, (count, expect, procs)
        time.sleep(0.1)
    byname = {d.name: [] for d in doms}
    for pid, (root, st) in procs.items():
        if root in roots:
            d = roots[root]
            # Nothing inside a root is privileged.
            assert 0 not in st["uid"] and 0 not in st["gid"] and \
                0 not in st["groups"], (pid, root, st)
            for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                assert st["cap"][k] == 0, (pid, root, k, st)
            assert st["nnp"] == 1, (pid, root, st)
            role = "login" if st["uid"][0] == d.uids["virtmail"] \
                else "session"
            assert role == "login" or st["uid"][0] == d.uids["bob"], st
            byname[d.name].append((role, pid))
            continue
        assert root == "/", (pid, root)
        if pid == master:
            continue
        # The auth step: outside every root, only what it needs.
        assert st["uid"] == [0, 0, 0, 0], (pid, st)
        assert st["cap"]["CapBnd"] == AUTH_CAPS and \
            st["cap"]["CapPrm"] == AUTH_CAPS and \
            st["cap"]["CapEff"] == AUTH_CAPS and \
            st["cap"]["CapInh"] == 0, (pid, st["cap"])
        assert st["nnp"] == 1, (pid, st)
        # Bound to its domain's uid range (the harness declares uids=):
        # a seccomp filter on set*id, inherited by login and session.
        assert st["seccomp"] == 2, (pid, st)
        kids = [roots[procs[c][0]].name for c in procs
                if procs[c][1]["ppid"] == pid and procs[c][0] in roots]
        assert len(set(kids)) == 1, (pid, kids)
        byname[kids[0]].append(("auth", pid))
    # ps names each process's role and domain.
    for name, procs in byname.items():
        for role, pid in procs:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                title = f.read().split(b"\0")[0].decode(errors="replace")
            assert title == "virtmail-pop3d: %s %s" % (role, name), \
                (pid, title)
    # Keys: each domain's processes hold none of the other's; its
    # login processes hold its own, nobody else does.
    for d in doms:
        other = [o for o in doms if o is not d]
        for role, pid in byname[d.name]:
            for o in other:
                found = _scan(pid, keys[o.name])
                assert not found, ("%s %s %d holds %s's key: %s" %
                                   (d.name, role, pid, o.name, found))
            own = _scan(pid, keys[d.name])
            if role == "login":
                assert "privateExponent-le" in own, (d.name, pid, own)
            else:
                assert not own, (d.name, role, pid, own)
    if master is not None:
        for d in doms:
            assert not _scan(master, keys[d.name]), d.name
    return byname


def _fds(pid):
    """{fd: link} of pid."""
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    return out


def _check_fds(byname, sanitized):
    """Daemon mode: inside a root, 0-2 are /dev/null (2 stays for a
    sanitizer's reports in such a build) and the only sockets are the
    client (or the proxy's pair), the auth step's pair, and the domain's
    log relay: no host syslog socket, no listener."""
    null = (0, 1) if sanitized else (0, 1, 2)
    for name, procs in byname.items():
        for role, pid in procs:
            if role == "auth":
                continue
            fds = _fds(pid)
            assert all(fds.get(i) == "/dev/null" for i in null), \
                (name, role, fds)
            socks = [v for v in fds.values() if v.startswith("socket:")]
            # login: client, the auth step's pair (closed once it is
            # the TLS proxy, fd 4), proxy pair, relay; session: client
            # or proxy pair, relay.
            want = 2
            if role == "login":
                want = 4 if 4 in fds else 3
            assert len(socks) == want, (name, role, pid, fds)


def _pop3s(ip):
    return poplib.POP3_SSL(ip, 995, timeout=10, context=ctx())


def test_daemon_processes_and_keys(env):
    a, b, vc, gc, keys = _setup(env)
    path = _mbox(a, "bob", ["one", "two", "three"], 0o640)
    _put(b, "bob", b"Subject: beta\n\nhello\n")
    p = env.start_process([env.bin("virtmail-pop3d"), "-d", "-f", vc,
                           "-C", gc], name="pop3d")
    for ip in (ALPHA, BETA):
        env.wait_for_port(ip, 110, proc=p)
        env.wait_for_port(ip, 995, proc=p)
    master = p.popen.pid
    # Logged in: alpha over 995 (mbox), beta over STLS (Maildir).
    sa = _pop3s(ALPHA)
    sa.user("bob")
    sa.pass_("alpha-pw")
    assert sa.stat()[0] == 3
    sb = poplib.POP3(BETA, 110, timeout=10)
    sb.stls(context=ctx())
    sb.user("bob")
    sb.pass_("beta-pw")
    assert sb.stat()[0] == 1
    # Pending: connected over TLS, USER given, no PASS yet.
    pa = _pop3s(ALPHA)
    pa.user("bob")
    pb = _pop3s(BETA)
    pb.user("bob")
    byname = _check_tree(master, master, [a, b], keys, {
        ("alpha.test", "login"): 2, ("alpha.test", "session"): 1,
        ("beta.test", "login"): 2, ("beta.test", "session"): 1})
    assert sorted(r for r, _ in byname["alpha.test"]) == \
        ["auth", "auth", "login", "login", "session"], byname
    _check_fds(byname, env.sanitized())
    # Their lines reach the log through the master, stamped with their
    # domain: the session's login line names alpha.test.
    env.wait_for_log(p, r"virtmail-pop3d\[session\]\[\d+\]: domain=alpha\.test "
                     r"\S+ pop3 login user=bob messages=3")

    # mbox: the dotlock is root's, in the root-owned spool; the session
    # (the user) holds an fcntl write lock on the mailbox.
    st = os.lstat(path + ".lock")
    assert st.st_uid == 0 and os.stat(path).st_uid == a.uids["bob"]
    session = [pid for r, pid in byname["alpha.test"] if r == "session"][0]
    ino = os.stat(path).st_ino
    with open("/proc/locks") as f:
        locks = f.read()
    assert re.search(r"^\d+:\s+(POSIX|OFDLCK)\s+ADVISORY\s+WRITE\s+%d\s+"
                     r"[0-9a-f]+:[0-9a-f]+:%d\s" % (session, ino), locks,
                     re.M), (session, ino, locks)

    # mbox over TLS still works: RETR, DELE, QUIT rewrites, owner and
    # mode kept, nothing left behind.
    assert b"Subject: two" in b"\n".join(sa.retr(2)[1])
    sa.dele(2)
    sa.quit()
    vmtest.wait_for_text(lambda: "gone" if not os.path.exists(
        path + ".lock") else "", "gone", 10, "dotlock removal")
    with open(path, "rb") as f:
        data = f.read()
    assert b"Subject: one" in data and b"Subject: three" in data and \
        b"Subject: two" not in data, data
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == \
        (a.uids["bob"], a.uids["bob"], 0o640), st
    assert not os.path.exists(path + ".pop3tmp")
    for c in (sb, pa, pb):
        c.close()


def test_inetd_processes_and_keys(env):
    a, b, vc, gc, keys = _setup(env)
    _put(a, "bob", b"Subject: alpha\n\nhello\n")
    with open(a.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.alpha.test\nrun_as virtmail\n"
                "tls_cert /etc/ssl/main.crt\ntls_key /etc/ssl/main.key\n")
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ALPHA, 995))
    ls.listen(1)
    raw = socket.create_connection((ALPHA, 995), timeout=10)
    conn, _ = ls.accept()
    ls.close()
    proc = env.start_process([env.bin("virtmail-pop3d"), "-i", "-f", vc,
                              "-C", gc, "-d"], name="pop3d-inetd",
                              stdin=conn)
    conn.close()
    s = ctx().wrap_socket(raw)
    f = s.makefile("rwb")

    def cmd(line):
        f.write(line + b"\r\n")
        f.flush()
        try:
            return f.readline()
        except OSError as e:
            return repr(e).encode()
    assert f.readline().startswith(b"+OK mx.alpha.test")
    assert cmd(b"USER bob").startswith(b"+OK")
    _check_tree(proc.popen.pid, proc.popen.pid, [a, b], keys,
                {("alpha.test", "login"): 1})
    r = cmd(b"PASS alpha-pw")
    assert r.startswith(b"+OK 1 messages"), (r, proc.log())
    _check_tree(proc.popen.pid, proc.popen.pid, [a, b], keys,
                {("alpha.test", "login"): 1, ("alpha.test", "session"): 1})
    assert cmd(b"QUIT").startswith(b"+OK")
    s.close()
    assert proc.wait(10) == 0


def test_broken_key_reported(env):
    a, b, vc, gc, keys = _setup(env)
    key = b.path("etc/ssl/main.key")
    with open(key, "rb") as f:
        good = f.read()
    with open(key, "wb") as f:
        f.write(b"-----BEGIN PRIVATE KEY-----\ngarbage\n"
                b"-----END PRIVATE KEY-----\n")
    rc, out, err = env.run([env.bin("virtmail-pop3d"), "-t", "-f", vc,
                            "-C", gc])
    assert rc == 1 and "/etc/ssl/main.key: not a PEM private key" in err, \
        (out, err)
    p = env.start_process([env.bin("virtmail-pop3d"), "-d", "-f", vc,
                           "-C", gc], name="pop3d")
    env.wait_for_port(ALPHA, 995, proc=p)
    env.wait_for_log(p, r"/etc/ssl/main\.key: not a PEM private key")
    s = socket.socket()
    s.settimeout(2)
    assert s.connect_ex((BETA, 995)) != 0, "beta started with a broken key"
    s.close()
    # Mended and reloaded: beta starts; broken again: reported again.
    with open(key, "wb") as f:
        f.write(good)
    p.signal(signal.SIGHUP)
    env.wait_for_port(BETA, 995, proc=p)
    # Broken under a running daemon: the session's login process, the
    # only one that loads it, refuses loudly with file and reason.
    with open(key, "wb") as f:
        f.write(good[:len(good) // 2])
    try:
        c = _pop3s(BETA)
        c.close()
        raise AssertionError("TLS with a broken key")
    except (ssl.SSLError, OSError, poplib.error_proto):
        pass
    env.wait_for_log(p, r"pop3 tls: the domain's keys do not load; "
                     r"session refused")
    # The next reload reports it with file and reason.
    p.signal(signal.SIGHUP)
    vmtest.wait_for_text(
        lambda: str(len(re.findall(re.escape(b.root) + r": /etc/ssl/main"
                                   r"\.key: not a PEM private key",
                                   p.log()))),
        r"^2$", 10, "log")


def test_uid_of_another_domain_gets_no_login(env):
    """An etc/passwd line of alpha that reuses beta's bob's uid (or a
    uid outside alpha's range) logs in nowhere: the auth step is bound
    to alpha's ids and names the file and line."""
    a = env.make_domain_root("alpha.test", [ALPHA],
                             users={"bob": "alpha-pw",
                                    "mallory": "mallory-pw"})
    b = env.make_domain_root("beta.test", [BETA], users={"bob": "beta-pw"})
    pw = a.path("etc/passwd")
    with open(pw) as f:
        text = f.read()
    stolen = b.uids["bob"]
    text = re.sub(r"^mallory:x:\d+:\d+:", "mallory:x:%d:%d:" %
                  (stolen, stolen), text, flags=re.M)
    with open(pw, "w") as f:
        f.write(text)
    line = [i + 1 for i, ln in enumerate(text.splitlines())
            if ln.startswith("mallory:")][0]
    vc = env.write_virtual_conf([(ALPHA, a.root), (BETA, b.root)])
    with open(vc) as f:
        assert "uids=" in f.read()
    gc = env.path("virtmail.conf")
    with open(gc, "w") as f:
        f.write(GLOBAL)
    p = env.start_process([env.bin("virtmail-pop3d"), "-d", "-f", vc,
                           "-C", gc], name="pop3d")
    env.wait_for_port(ALPHA, 110, proc=p)
    c = poplib.POP3(ALPHA, 110, timeout=10)
    c.user("mallory")
    try:
        c.pass_("mallory-pw")
        raise AssertionError("mallory logged in with beta's uid")
    except poplib.error_proto as e:
        assert e.args[0].startswith(b"-ERR"), e
    c.close()
    env.wait_for_log(p, r"auth refused: .*etc/passwd:%d: uid %d of mallory" %
                     (line, stolen))
    # alpha's own users still log in.
    c = poplib.POP3(ALPHA, 110, timeout=10)
    c.user("bob")
    c.pass_("alpha-pw")
    c.quit()
