"""virtmail-smtpd's milter client against real libmilter filters
(build/virtmail-testmilter, contrib/milter-example/) and against
broken ones: replies at each stage, end-of-message modifications,
two milters in a row, a milter that is down, one that hangs, one that
dies and one that sends malformed packets."""

import os
import smtplib
import socket
import struct
import threading
import time

import vmtest

ALPHA = vmtest.ALPHA_IP4


def _milter(env, *rules):
    port = env.free_port()
    p = env.start_process([env.bin("virtmail-testmilter"), "-p",
                           "inet:%d@127.0.0.1" % port] + list(rules),
                          name="milter")
    env.wait_for_port("127.0.0.1", port, proc=p)
    return port


def _setup(env, milter_lines):
    a = env.make_domain_root("alpha.test", [ALPHA],
                             users={"bob": "pw", "carol": "pw"})
    with open(a.path("etc/virtmail.conf"), "a") as f:
        for line in milter_lines:
            f.write("milter %s\n" % line)
    vc = env.write_virtual_conf([(ALPHA, a.root)])
    gc = env.path("virtmail.conf")
    open(gc, "w").close()
    p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vc,
                           "-C", gc], name="smtpd")
    env.wait_for_port(ALPHA, 25, proc=p)
    env.wait_for_log(p, "smtp worker ready")
    return a, p


def _inet(port, extra="timeout=2s eom_timeout=2s default=tempfail"):
    return "inet:127.0.0.1:%d %s" % (port, extra)


def _send(sender="alice@example.org", rcpts=("bob@alpha.test",),
          subject="hello", body="plain body", headers=""):
    """Return (stage, code, text): stage is where it stopped."""
    s = smtplib.SMTP(timeout=20)
    code, msg = s.connect(ALPHA, 25)
    if code != 220:
        return "connect", code, msg.decode()
    s.ehlo("client.example")
    code, msg = s.mail(sender)
    if code != 250:
        s.close()
        return "mail", code, msg.decode()
    ok = 0
    last = None
    for r in rcpts:
        code, msg = s.rcpt(r)
        last = ("rcpt", code, msg.decode())
        ok += code == 250
    if not ok:
        s.close()
        return last
    try:
        code, msg = s.data(("From: <%s>\r\nTo: <bob@alpha.test>\r\n"
                            "Subject: %s\r\n%s\r\n%s\r\n" %
                            (sender, subject, headers, body)).encode())
    except smtplib.SMTPResponseException as e:
        code, msg = e.smtp_code, e.smtp_error
    try:
        s.quit()
    except (smtplib.SMTPException, OSError):
        pass
    return "data", code, msg.decode()


def _find(dom, needle, timeout=15, where=None):
    deadline = time.monotonic() + timeout
    roots = where or [dom.path("home"), dom.path("var/spool/virtmail")]
    while True:
        for root in roots:
            for dp, dn, fn in os.walk(root):
                for n in fn:
                    path = os.path.join(dp, n)
                    try:
                        data = open(path, "rb").read()
                    except OSError:
                        continue
                    if needle.encode() in data:
                        return path, data.decode("utf-8", "replace")
        if time.monotonic() > deadline:
            return None, None
        time.sleep(0.1)


def test_milter_replies(env):
    port = _milter(env, "-r", "carol@alpha.test", "-t", "temp@example.org",
                   "-x", "postmaster@alpha.test", "-H", "SPAMWORD")
    a, p = _setup(env, [_inet(port)])
    st = _send(rcpts=("carol@alpha.test",))
    assert st[:2] == ("rcpt", 550) and "example milter" in st[2], st
    st = _send(sender="temp@example.org")
    assert st[:2] == ("mail", 451) and "4.7.1" in st[2], st
    st = _send(headers="X-Spam: SPAMWORD here\r\n", body="rejected-body")
    assert st[:2] == ("data", 550), st
    st = _send(rcpts=("bob@alpha.test", "postmaster@alpha.test"),
               body="discarded-body")
    assert st[:2] == ("data", 250), st
    st = _send(body="accepted-body")
    assert st[:2] == ("data", 250), st
    assert _find(a, "accepted-body")[0] is not None
    assert _find(a, "discarded-body", timeout=1)[0] is None
    assert _find(a, "rejected-body", timeout=1)[0] is None


def test_milter_custom_reply(env):
    port = _milter(env, "-c", "550 5.7.0 first line\n550 5.7.0 second")
    a, p = _setup(env, [_inet(port)])
    st = _send()
    assert st[1] == 550 and "first line" in st[2] and \
        "second" in st[2], st


def test_milter_macro_lists(env):
    """A filter that asks for macro lists (SMFIF_SETSYMLIST) gets only
    those macros, at those stages, as the names it spelled."""
    port = _milter(env, "-M", "connect:{if_addr} {client_addr}",
                   "-M", "mail:{mail_addr},j", "-M", "rcpt:{rcpt_addr}",
                   "-M", "eom:i")
    a, p = _setup(env, [_inet(port)])
    s = smtplib.SMTP(ALPHA, 25, timeout=20)
    client = s.sock.getsockname()[0]
    s.ehlo("client.example")
    s.sendmail("alice@example.org", ["bob@alpha.test"],
               b"Subject: macros\r\n\r\nmacro-body\r\n")
    s.quit()
    path, m = _find(a, "macro-body", where=[a.maildir("bob")])
    assert m is not None
    line = [h for h in m.replace("\n\t", " ").replace("\n ", " ")
            .split("\n") if h.startswith("X-Milter-Macros:")]
    assert len(line) == 1, m
    got = line[0].split(":", 1)[1].strip()
    want = ("connect: {if_addr}=192.0.2.10, {client_addr}=%s; "
            "mail: j=mx.alpha.test, {mail_addr}=alice@example.org; "
            "rcpt: {rcpt_addr}=bob@alpha.test; eom: i=" % client)
    assert got.startswith(want), (got, want)
    assert got[len(want):] != "" and " " not in got[len(want):], got


def test_milter_modifications(env):
    port = _milter(env, "-a", "X-Example: added", "-i", "X-Top: inserted",
                   "-s", "MARK", "-d", "X-Remove-Me", "-A",
                   "carol@alpha.test", "-f", "new-sender@example.org",
                   "-b", "REPLACEME", "-g")
    a, p = _setup(env, [_inet(port)])
    st = _send(subject="MARK this", headers="X-Remove-Me: yes\r\n",
               body="REPLACEME please")
    assert st[:2] == ("data", 250), st
    path, m = _find(a, "replaced by the example milter",
                    where=[a.maildir("bob")])
    assert m is not None
    assert "X-Example: added" in m
    assert "X-Top: inserted" in m
    assert "Subject: [MARK] MARK this" in m
    assert "X-Remove-Me" not in m
    assert "REPLACEME" not in m
    assert "Return-Path: <new-sender@example.org>" in m, m
    path2, m2 = _find(a, "replaced by the example milter",
                      where=[a.maildir("carol")])
    assert m2 is not None


def test_milter_delrcpt_and_quarantine(env):
    port = _milter(env, "-D", "carol@alpha.test", "-q", "HOLDME")
    a, p = _setup(env, [_inet(port)])
    st = _send(rcpts=("bob@alpha.test", "carol@alpha.test"),
               body="for bob only")
    assert st[:2] == ("data", 250), st
    assert _find(a, "for bob only", where=[a.maildir("bob")])[0]
    assert _find(a, "for bob only", timeout=1,
                 where=[a.maildir("carol")])[0] is None
    st = _send(body="HOLDME now")
    assert st[:2] == ("data", 250), st
    held = a.path("var/spool/virtmail/hold")
    deadline = time.monotonic() + 5
    while not os.listdir(held) and time.monotonic() < deadline:
        time.sleep(0.1)
    names = os.listdir(held)
    assert len(names) == 1, names
    assert b"marked by the example milter" in open(
        os.path.join(held, names[0]), "rb").read()
    assert _find(a, "HOLDME now", timeout=1,
                 where=[a.maildir("bob")])[0] is None


def test_two_milters(env):
    p1 = _milter(env, "-a", "X-First: one")
    p2 = _milter(env, "-a", "X-Second: two", "-r", "carol@alpha.test")
    a, p = _setup(env, [_inet(p1), _inet(p2)])
    st = _send(rcpts=("carol@alpha.test",))
    assert st[:2] == ("rcpt", 550), st
    st = _send(body="two-milters")
    assert st[:2] == ("data", 250), st
    path, m = _find(a, "two-milters", where=[a.maildir("bob")])
    assert "X-First: one" in m and "X-Second: two" in m, m


def test_milter_down(env):
    port = env.free_port()
    a, p = _setup(env, [_inet(port, "default=tempfail")])
    st = _send()
    assert st[:2] == ("connect", 421), st
    p.stop()
    a, p = _setup(env, [_inet(port, "default=reject")])
    st = _send()
    assert st[:2] == ("connect", 554), st
    p.stop()
    a, p = _setup(env, [_inet(port, "default=accept")])
    st = _send(body="milter-down-accept")
    assert st[:2] == ("data", 250), st
    env.wait_for_log(p, "failed: Connection refused, default=accept")


def test_milter_hangs_and_dies(env):
    port = _milter(env, "-w", "eom")
    a, p = _setup(env, [_inet(port, "timeout=2s eom_timeout=2s "
                             "default=tempfail")])
    result = {}

    def slow():
        result["st"] = _send(body="hang-body")
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    # The worker serves another session while the first one waits.
    s = smtplib.SMTP(timeout=5)
    code, _ = s.connect(ALPHA, 25)
    assert code == 220
    assert s.noop()[0] == 250
    s.close()
    t.join(20)
    assert result["st"][:2] == ("data", 451), result
    env.wait_for_log(p, "timeout waiting for a reply")

    port2 = _milter(env, "-k", "mail")
    p.stop()
    a, p = _setup(env, [_inet(port2, "default=accept")])
    st = _send(body="died-body")
    assert st[:2] == ("data", 250), st
    env.wait_for_log(p, "connection closed, default=accept")


def _bad_milter(kind):
    """A one-connection fake milter speaking garbage after OPTNEG."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def run():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            try:
                c.recv(4096)
                if kind == "oversized":
                    c.sendall(struct.pack(">I", 0x7fffffff) + b"O")
                elif kind == "zero":
                    c.sendall(struct.pack(">I", 0))
                else:
                    c.sendall(struct.pack(">IcIII", 13, b"O", 6, 0, 0))
                    c.recv(4096)
                    c.sendall(struct.pack(">Ic", 1, b"Z"))
                time.sleep(1)
            except OSError:
                pass
            c.close()
    threading.Thread(target=run, daemon=True).start()
    return srv


def test_milter_malformed(env):
    for kind in ("oversized", "zero", "unknown"):
        srv = _bad_milter(kind)
        a, p = _setup(env, [_inet(srv.getsockname()[1],
                                  "default=tempfail")])
        st = _send()
        assert st[:2] == ("connect", 421), (kind, st)
        # Still alive and serving.
        st = _send()
        assert st[:2] == ("connect", 421), (kind, st)
        p.stop()
        srv.close()
