"""virtmail-pop3d end to end: per-IP domains with their own passwords,
the RFC 1939 commands with poplib, raw-socket abuse (garbage, NUL,
overlong lines, stalls), Maildir and mbox semantics ([IN-USE], safe
rewrite, delivery during a session), and the Debian client mpop."""

import os
import poplib
import re
import socket
import subprocess
import time

import vmtest

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4
NOWHERE = vmtest.NOWHERE_IP4
PORT = 110
GLOBAL = ("pop3_timeout 2s\npop3_auth_delay 0\npop3_max_auth_failures 3\n"
          "pop3_max_sessions_per_ip 50\n")

_seq = [0]


def _setup(env, mbox=False, global_conf=GLOBAL, start=True):
    a = env.make_domain_root("alpha.test", [ALPHA],
                             users={"bob": "alpha-pw", "carol": "carol-pw",
                                    "locked": "locked-pw"})
    b = env.make_domain_root("beta.test", [BETA], users={"bob": "beta-pw"})
    # Lock an account (usermod -L style).
    sh = a.path("etc/shadow")
    with open(sh) as f:
        text = f.read()
    text = re.sub(r"^locked:", "locked:!", text, flags=re.M)
    text = text.replace("locked:!", "locked:!", 1)
    with open(sh, "w") as f:
        f.write(text)
    lines = []
    for ln in text.splitlines():
        if ln.startswith("locked:"):
            parts = ln.split(":")
            parts[1] = "!" + parts[1].lstrip("!")
            ln = ":".join(parts)
        lines.append(ln)
    with open(sh, "w") as f:
        f.write("\n".join(lines) + "\n")
    if mbox:
        with open(a.path("etc/virtmail.conf"), "a") as f:
            f.write("mailbox mbox\n")
    vc = env.write_virtual_conf([(ALPHA, a.root), (BETA, b.root)])
    gc = env.path("virtmail.conf")
    with open(gc, "w") as f:
        f.write(global_conf)
    p = None
    if start:
        p = env.start_process([env.bin("virtmail-pop3d"), "-d", "-f", vc,
                               "-C", gc], name="pop3d")
        env.wait_for_port(ALPHA, PORT, proc=p)
        env.wait_for_port(BETA, PORT, proc=p)
    return a, b, vc, gc, p


def _put(dom, user, body, where="new"):
    """Drop a message into user's Maildir as a delivery would."""
    _seq[0] += 1
    name = "%d.V%016xI%d.mx.%s" % (1700000000 + _seq[0], _seq[0], _seq[0],
                                  dom.name)
    d = os.path.join(dom.maildir(user), where)
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(body)
    uid = dom.uids[user]
    os.chown(path, uid, uid)
    return name


def _msg(subject, body=b"hello\n"):
    return (b"From: a@example.test\nTo: bob@alpha.test\nSubject: " +
            subject.encode() + b"\n\n" + body)


def _wire(data):
    out = []
    for ln in data.split(b"\n")[:-1] if data.endswith(b"\n") else \
            data.split(b"\n"):
        out.append(ln)
    return out


def _login(ip, user, pw):
    c = poplib.POP3(ip, PORT, timeout=10)
    c.user(user)
    c.pass_(pw)
    return c


def _raw(ip, send, timeout=5, wait_close=True):
    s = socket.create_connection((ip, PORT), timeout=timeout)
    data = b""
    try:
        data = s.recv(4096)
        if send:
            s.sendall(send)
        s.shutdown(socket.SHUT_WR) if wait_close else None
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return data


def test_check(env):
    a, b, vc, gc, p = _setup(env, start=False)
    rc, out, err = env.run([env.bin("virtmail-pop3d"), "-t", "-f", vc,
                            "-C", gc])
    assert rc == 0, (rc, out, err)
    assert "domain alpha.test" in out and "domain beta.test" in out, out
    assert "pop3_port 110" in out and "configuration OK" in out, out
    with open(gc, "a") as f:
        f.write("pop3_port 70000\n")
    rc, out, err = env.run([env.bin("virtmail-pop3d"), "-t", "-f", vc,
                            "-C", gc])
    assert rc == 1 and "pop3_port: too large" in err, (rc, err)


def test_domain_per_ip(env):
    a, b, vc, gc, p = _setup(env)
    _put(a, "bob", _msg("for alpha bob"))
    _put(b, "bob", _msg("for beta bob"))
    c = _login(ALPHA, "bob", "alpha-pw")
    assert c.stat()[0] == 1
    assert b"Subject: for alpha bob" in c.retr(1)[1]
    c.quit()
    c = _login(BETA, "bob@beta.test", "beta-pw")
    assert b"Subject: for beta bob" in c.retr(1)[1]
    c.quit()
    # alpha's password through beta's address: refused.
    c = poplib.POP3(BETA, PORT, timeout=10)
    c.user("bob")
    try:
        c.pass_("alpha-pw")
        raise AssertionError("alpha's password accepted on beta")
    except poplib.error_proto as e:
        assert str(e).startswith("b'-ERR [AUTH]"), e
    c.quit()
    # A full address of the other domain is not this domain's user.
    c = poplib.POP3(ALPHA, PORT, timeout=10)
    c.user("bob@beta.test")
    try:
        c.pass_("beta-pw")
        raise AssertionError("foreign domain accepted")
    except poplib.error_proto:
        pass
    c.close()
    # The session ran as alpha's bob, chrooted into alpha.
    log = p.log()
    assert "pop3 login user=bob messages=1" in log, log
    assert "alpha-pw" not in log and "beta-pw" not in log


def test_session_privileges(env):
    a, b, vc, gc, p = _setup(env)
    c = _login(ALPHA, "bob", "alpha-pw")
    c.noop()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/status" % name) as f:
                st = f.read()
            root = os.readlink("/proc/%s/root" % name)
        except OSError:
            continue
        if "virtmail-pop3d" not in open("/proc/%s/cmdline" % name,
                                        "rb").read().decode("latin1"):
            continue
        uid = int(re.search(r"^Uid:\s+(\d+)", st, re.M).group(1))
        pids.append((uid, root))
    c.quit()
    want = a.uids["bob"]
    assert (want, os.path.realpath(a.root)) in pids, pids

    # Before login: the privileged step is root OUTSIDE the root, with
    # only what it needs; inside the root nothing is root.
    s = socket.create_connection((ALPHA, PORT), timeout=5)
    s.recv(100)
    seen = []
    for name in os.listdir("/proc"):
        try:
            if "virtmail-pop3d" not in open("/proc/%s/cmdline" % name,
                                            "rb").read().decode("latin1"):
                continue
            root = os.readlink("/proc/%s/root" % name)
            with open("/proc/%s/status" % name) as f:
                st = f.read()
        except OSError:
            continue
        if int(re.search(r"^PPid:\s+(\d+)", st, re.M).group(1)) != \
                p.popen.pid and root != os.path.realpath(a.root):
            continue
        uid = int(re.search(r"^Uid:\s+(\d+)", st, re.M).group(1))
        seen.append((root, uid, [int(re.search(r"^%s:\s+(\S+)" % k, st,
                                                re.M).group(1), 16)
                                 for k in ("CapEff", "CapPrm", "CapBnd")]))
    s.close()
    # CAP_CHOWN, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SYS_CHROOT.
    want_caps = (1 << 0) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 18)
    assert ("/", 0, [want_caps] * 3) in seen, seen
    inside = [x for x in seen if x[0] == os.path.realpath(a.root)]
    assert inside and all(x[1] == a.uids["virtmail"] and x[2][:2] == [0, 0]
                          for x in inside), seen


def test_capa_auth_plain_pipelining(env):
    a, b, vc, gc, p = _setup(env)
    _put(a, "bob", _msg("one"))
    c = poplib.POP3(ALPHA, PORT, timeout=10)
    caps = c.capa()
    for k in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE",
              "PIPELINING", "SASL", "IMPLEMENTATION"):
        assert k in caps, caps
    assert caps["SASL"] == ["PLAIN"], caps
    assert "STLS" not in caps
    resp = c._shortcmd("AUTH")
    assert resp.startswith(b"+OK")
    # AUTH with no argument lists mechanisms, dot-terminated.
    c.close()
    raw = _raw(ALPHA, b"AUTH\r\nQUIT\r\n")
    assert b"+OK\r\nPLAIN\r\n.\r\n" in raw, raw
    # Initial response: "\0bob\0alpha-pw".
    import base64
    tok = base64.b64encode(b"\0bob\0alpha-pw")
    raw = _raw(ALPHA, b"AUTH PLAIN " + tok + b"\r\nSTAT\r\nQUIT\r\n")
    assert b"+OK 1 messages" in raw and b"+OK 1 " in raw, raw
    # Without initial response; then a wrong password.
    raw = _raw(ALPHA, b"AUTH PLAIN\r\n" + tok + b"\r\nQUIT\r\n")
    assert b"+ \r\n+OK 1 messages" in raw, raw
    bad = base64.b64encode(b"\0bob\0nope")
    raw = _raw(ALPHA, b"AUTH PLAIN " + bad + b"\r\nQUIT\r\n")
    assert b"-ERR [AUTH]" in raw, raw
    raw = _raw(ALPHA, b"AUTH PLAIN\r\n*\r\nQUIT\r\n")
    assert b"-ERR authentication cancelled" in raw, raw
    # Everything pipelined in one write, USER/PASS included.
    raw = _raw(ALPHA, b"CAPA\r\nUSER bob\r\nPASS alpha-pw\r\nSTAT\r\n"
               b"LIST\r\nUIDL\r\nRETR 1\r\nNOOP\r\nQUIT\r\n")
    assert raw.count(b"+OK") >= 9, raw
    assert raw.rstrip().endswith(b"+OK bye"), raw


def test_retr_exact_top_uidl(env):
    a, b, vc, gc, p = _setup(env)
    body = (b"line one\n.starts with a dot\n..two dots\n.\n"
            b"8-bit: \xe9\xe8\xff\x80 end\n\nlast line without newline")
    m1 = _msg("dots", body)
    n1 = _put(a, "bob", m1)
    m2 = _msg("second", b"a\nb\nc\nd\n")
    _put(a, "bob", m2, where="cur")
    c = _login(ALPHA, "bob", "alpha-pw")
    count, total = c.stat()
    assert count == 2
    # Sizes are exact wire octets: CRLF plus stuffing.
    wires = []
    for m in (m1, m2):
        lines = m.split(b"\n")
        if lines[-1] == b"":
            lines = lines[:-1]
        wires.append(sum(len(x) + 2 + (x.startswith(b".")) for x in lines))
    resp, listing, _ = c.list()
    sizes = [int(x.split()[1]) for x in listing]
    assert sizes == wires, (sizes, wires)
    assert total == sum(wires)
    # Byte-exact through poplib (which un-stuffs).
    resp, lines, octets = c.retr(1)
    assert b"\r\n".join(lines) == m1.replace(b"\n", b"\r\n"), lines
    # Raw wire: stuffed dots.
    resp, lines, _ = c.top(2, 1)
    assert lines[-2:] == [b"", b"a"], lines
    resp, lines, _ = c.top(1, 0)
    assert lines[-1] == b"" and b"Subject: dots" in lines, lines
    u1 = c.uidl()[1]
    assert c.uidl(1).split()[2] == n1.encode()
    c.quit()
    c = _login(ALPHA, "bob", "alpha-pw")
    assert c.uidl()[1] == u1, "UIDs changed between sessions"
    c.quit()
    # The retrieved message is in cur/ with the S flag.
    cur = os.listdir(os.path.join(a.maildir("bob"), "cur"))
    assert any(x.startswith(n1) and x.endswith(":2,S") for x in cur), cur
    assert os.listdir(os.path.join(a.maildir("bob"), "new")) == []
    # Raw check of stuffing on the wire.
    raw = _raw(ALPHA, b"USER bob\r\nPASS alpha-pw\r\nRETR 1\r\nQUIT\r\n")
    assert b"\r\n..starts with a dot\r\n...two dots\r\n..\r\n" in raw, raw
    assert b"\xe9\xe8\xff\x80" in raw


def test_maildir_tmp_leftovers(env):
    """Files a dead writer left in tmp/ go after 36 hours (maildir(5)),
    at the next login; younger ones and anything not a file stay."""
    a, b, vc, gc, p = _setup(env)
    tmp = os.path.join(a.maildir("bob"), "tmp")
    old = time.time() - 37 * 3600
    for name in ("dead", "young"):
        with open(os.path.join(tmp, name), "w") as f:
            f.write("half a message")
    os.utime(os.path.join(tmp, "dead"), (old, old))
    os.mkdir(os.path.join(tmp, "olddir"))
    os.utime(os.path.join(tmp, "olddir"), (old, old))
    c = _login(ALPHA, "bob", "alpha-pw")
    c.quit()
    assert sorted(os.listdir(tmp)) == ["olddir", "young"], os.listdir(tmp)


def test_dele_rset_quit_drop(env):
    a, b, vc, gc, p = _setup(env)
    for i in range(3):
        _put(a, "bob", _msg("m%d" % i))
    c = _login(ALPHA, "bob", "alpha-pw")
    c.dele(1)
    assert c.stat()[0] == 2
    try:
        c.retr(1)
        raise AssertionError("deleted message retrieved")
    except poplib.error_proto:
        pass
    c.rset()
    assert c.stat()[0] == 3
    c.dele(2)
    c.close()           # dropped: nothing deleted
    time.sleep(0.3)
    c = _login(ALPHA, "bob", "alpha-pw")
    assert c.stat()[0] == 3
    c.dele(2)
    c.quit()
    c = _login(ALPHA, "bob", "alpha-pw")
    n, _ = c.stat()
    subj = [l for l in c.retr(2)[1] if l.startswith(b"Subject")]
    c.quit()
    assert n == 2 and subj == [b"Subject: m2"], (n, subj)


def test_thousand_messages_and_delivery(env):
    a, b, vc, gc, p = _setup(env)
    for i in range(1000):
        _put(a, "bob", _msg("n%d" % i, b"x" * 100 + b"\n"))
    c = _login(ALPHA, "bob", "alpha-pw")
    n, total = c.stat()
    assert n == 1000
    assert len(c.uidl()[1]) == 1000 and len(c.list()[1]) == 1000
    # A delivery during the session shows up in the next one only.
    _put(a, "bob", _msg("late"))
    assert c.stat()[0] == 1000
    for i in (1, 500, 1000):
        assert c.retr(i)[1][2] == ("Subject: n%d" % (i - 1)).encode()
    for i in range(1, 1001):
        c.dele(i)
    c.quit()
    c = _login(ALPHA, "bob", "alpha-pw")
    assert c.stat()[0] == 1
    assert b"Subject: late" in c.retr(1)[1]
    c.quit()


def test_unknown_user_vs_wrong_password(env):
    a, b, vc, gc, p = _setup(env)

    def attempt(user, pw):
        c = poplib.POP3(ALPHA, PORT, timeout=10)
        r1 = c.user(user)
        t0 = time.monotonic()
        try:
            c.pass_(pw)
            raise AssertionError("accepted")
        except poplib.error_proto as e:
            err = e.args[0]
        dt = time.monotonic() - t0
        c.close()
        return r1, err, dt

    r = [attempt("bob", "wrong") for _ in range(4)]
    u = [attempt("nosuchuser", "wrong") for _ in range(4)]
    l = [attempt("locked", "locked-pw") for _ in range(2)]
    assert len({x[0] for x in r + u + l}) == 1
    assert len({x[1] for x in r + u + l}) == 1, (r, u, l)
    mr = sorted(x[2] for x in r)[1]
    mu = sorted(x[2] for x in u)[1]
    # Both pay one crypt(3) of the same kind.
    assert mu > mr / 3 and mr > mu / 3, (mr, mu)
    # The locked account's right password does not open it.
    env.wait_for_log(p, r"pop3 auth failed user=locked")
    assert "wrong" not in p.log() and "locked-pw" not in p.log()


def test_failures_then_close(env):
    a, b, vc, gc, p = _setup(env)
    raw = _raw(ALPHA, b"USER bob\r\nPASS x\r\nUSER bob\r\nPASS y\r\n"
               b"USER bob\r\nPASS z\r\nUSER bob\r\nPASS alpha-pw\r\n")
    assert raw.count(b"-ERR [AUTH]") == 3, raw
    assert b"too many failures" in raw
    assert b"messages" not in raw


def test_garbage_nul_overlong(env):
    a, b, vc, gc, p = _setup(env)
    raw = _raw(ALPHA, b"HELO\r\nSTAT\r\nUS\x00ER bob\r\n" + b"A" * 5000 +
               b"\r\nGET / HTTP/1.0\r\n\xff\xfe\r\nUSER bob\r\n"
               b"PASS alpha-pw\r\nRETR 999\r\nLIST x\r\nTOP 1\r\n"
               b"NOOP\r\nQUIT\r\n")
    lines = raw.split(b"\r\n")
    assert lines[0].startswith(b"+OK"), raw
    assert b"-ERR line too long" in raw, raw
    assert b"-ERR invalid character" in raw, raw
    assert b"-ERR no such message" in raw, raw
    assert raw.rstrip().endswith(b"+OK bye"), raw
    # Endless garbage: closed after POP3_ERRORS_MAX.
    raw = _raw(ALPHA, b"XXXX\r\n" * 100)
    assert b"too many errors" in raw, raw
    # An unknown local address is refused (inetd mode shows it).


def test_stall_timeout(env):
    a, b, vc, gc, p = _setup(env)
    s = socket.create_connection((ALPHA, PORT), timeout=10)
    t0 = time.monotonic()
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    dt = time.monotonic() - t0
    s.close()
    assert b"-ERR autologout" in data, data
    assert 1.5 < dt < 6, dt
    # Logged-in stall: the same; nothing deleted.
    _put(a, "bob", _msg("keep"))
    c = _login(ALPHA, "bob", "alpha-pw")
    c.dele(1)
    time.sleep(3)
    c.close()
    c = _login(ALPHA, "bob", "alpha-pw")
    assert c.stat()[0] == 1
    c.quit()


def test_session_limits(env):
    a, b, vc, gc, p = _setup(env, global_conf=GLOBAL.replace(
        "pop3_max_sessions_per_ip 50", "pop3_max_sessions_per_ip 2"))
    time.sleep(0.5)     # the probes of wait_for_port end
    s1 = socket.create_connection((ALPHA, PORT), timeout=5)
    s2 = socket.create_connection((ALPHA, PORT), timeout=5)
    assert s1.recv(100).startswith(b"+OK")
    assert s2.recv(100).startswith(b"+OK")
    data = _raw(ALPHA, b"")
    assert data.startswith(b"-ERR [SYS/TEMP]"), data
    s1.close()
    s2.close()


def _mbox_write(dom, user, msgs):
    path = dom.path("var/spool/mail/%s" % user)
    with open(path, "wb") as f:
        for i, m in enumerate(msgs):
            f.write(b"From sender@example.test Mon Jan  1 00:00:%02d 2024\n"
                    % i + m + b"\n")
    uid = dom.uids[user]
    os.chown(path, uid, uid)
    os.chmod(path, 0o600)
    return path


def test_mbox_in_use_and_rewrite(env):
    a, b, vc, gc, p = _setup(env, mbox=True, global_conf=GLOBAL.replace(
        "pop3_timeout 2s", "pop3_timeout 10s"))
    msgs = [_msg("mb%d" % i, b".dot line\nbody %d\n" % i) for i in range(3)]
    path = _mbox_write(a, "bob", msgs)
    c = _login(ALPHA, "bob", "alpha-pw")
    assert c.stat()[0] == 3
    u = c.uidl()[1]
    lines = c.retr(1)[1]
    assert b".dot line" in lines, lines
    # A second session: [IN-USE].
    c2 = poplib.POP3(ALPHA, PORT, timeout=10)
    c2.user("bob")
    try:
        c2.pass_("alpha-pw")
        raise AssertionError("second mbox session accepted: %s" % p.log())
    except poplib.error_proto as e:
        assert b"[IN-USE]" in e.args[0], e
    c2.close()
    assert os.path.exists(path + ".lock")
    c.dele(2)
    c.quit()
    time.sleep(0.3)
    assert not os.path.exists(path + ".lock")
    assert not os.path.exists(path + ".pop3tmp")
    with open(path, "rb") as f:
        data = f.read()
    assert b"Subject: mb1" not in data and b"Subject: mb0" in data and \
        b"Subject: mb2" in data, data
    st = os.stat(path)
    assert st.st_uid == a.uids["bob"] and st.st_mode & 0o777 == 0o600
    c = _login(ALPHA, "bob", "alpha-pw")
    u2 = c.uidl()[1]
    c.quit()
    # UIDs of the remaining messages are unchanged.
    old = [x.split()[1] for x in u]
    new = [x.split()[1] for x in u2]
    assert new == [old[0], old[2]], (old, new)
    # A dropped session leaves the mailbox as it was.
    c = _login(ALPHA, "bob", "alpha-pw")
    c.dele(1)
    c.close()
    time.sleep(0.3)
    with open(path, "rb") as f:
        assert f.read() == data


def test_mbox_delivery_waits(env):
    """A delivery that arrives during a session waits for the dotlock
    (as deliver_local does) and lands after the rewrite: not lost."""
    a, b, vc, gc, p = _setup(env, mbox=True)
    path = _mbox_write(a, "bob", [_msg("old")])
    c = _login(ALPHA, "bob", "alpha-pw")
    c.dele(1)
    lock = path + ".lock"
    # A delivery's steps: wait for the dotlock, then append.
    script = ("import os,time\n"
              "while True:\n"
              "    try:\n"
              "        fd=os.open(%r,os.O_CREAT|os.O_EXCL|os.O_WRONLY,0o600)\n"
              "        break\n"
              "    except FileExistsError:\n"
              "        time.sleep(0.02)\n"
              "with open(%r,'ab') as f:\n"
              "    f.write(b'From x Mon Jan  1 00:00:00 2024\\n"
              "Subject: new\\n\\nhi\\n\\n')\n"
              "os.unlink(%r)\n" % (lock, path, lock))
    d = subprocess.Popen(["/usr/bin/python3", "-c", script])
    time.sleep(0.3)
    assert d.poll() is None, "delivery did not wait for the lock"
    c.quit()
    assert d.wait(10) == 0
    with open(path, "rb") as f:
        data = f.read()
    assert b"Subject: old" not in data and b"Subject: new" in data, data


def test_mpop(env):
    a, b, vc, gc, p = _setup(env)
    bodies = [_msg("mpop%d" % i, b".x\n\xe9\n") for i in range(3)]
    for m in bodies:
        _put(a, "bob", m)
    out = env.path("mpop.mbox")
    rc_file = env.path("mpoprc")
    pwf = env.path("pw")
    with open(pwf, "w") as f:
        f.write("alpha-pw\n")
    with open(rc_file, "w") as f:
        f.write("account default\nhost %s\nport 110\nuser bob\n"
                "auth user\ntls off\npasswordeval cat %s\n"
                "delivery mbox %s\nkeep off\nuidls_file %s\n"
                % (ALPHA, pwf, out, env.path("uidls")))
    os.chmod(rc_file, 0o600)
    rc, so, se = env.run(["mpop", "-C", rc_file, "-q"], timeout=30)
    assert rc == 0, (rc, so, se)
    with open(out, "rb") as f:
        got = f.read()
    for i in range(3):
        assert b"Subject: mpop%d" % i in got
    assert b"\n.x\n\xe9\n" in got, got
    c = _login(ALPHA, "bob", "alpha-pw")
    assert c.stat()[0] == 0, "mpop did not delete (DELE+QUIT)"
    c.quit()
    # Wrong password: mpop fails with an authentication error.
    with open(pwf, "w") as f:
        f.write("nope\n")
    rc, so, se = env.run(["mpop", "-C", rc_file, "-q"], timeout=30)
    assert rc != 0, (rc, so, se)


def test_wildcard_and_inetd(env):
    a, b, vc, gc, p = _setup(env, global_conf=GLOBAL + "listen_any yes\n")
    _put(b, "bob", _msg("beta"))
    c = _login(BETA, "bob", "beta-pw")
    assert c.stat()[0] == 1
    c.quit()
    data = _raw(NOWHERE, b"")
    assert data.startswith(b"-ERR [SYS/PERM] no service"), data
    env.wait_for_log(p, r"no service for this address local=192\.0\.2\.30")
    # inetd mode on alpha's address.
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind((ALPHA, 0))
    ls.listen(1)
    cl = socket.create_connection((ALPHA, ls.getsockname()[1]), timeout=10)
    conn, _ = ls.accept()
    ls.close()
    proc = subprocess.Popen([env.bin("virtmail-pop3d"), "-i", "-f", vc,
                             "-C", gc], stdin=conn, stdout=conn,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True)
    conn.close()
    cl.sendall(b"USER bob\r\nPASS alpha-pw\r\nSTAT\r\nQUIT\r\n")
    data = b""
    while True:
        ch = cl.recv(4096)
        if not ch:
            break
        data += ch
    cl.close()
    proc.wait(10)
    assert data.startswith(b"+OK mx.alpha.test") and b"+OK bye" in data, \
        data
