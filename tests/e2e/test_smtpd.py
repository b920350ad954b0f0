"""virtmail-smtpd's SMTP sessions end to end, with smtplib, swaks and raw
sockets: delivery per domain, relay refused between sibling domains,
recipients, pipelining, limits, SMTP smuggling, NUL bytes, a client that
disconnects in DATA, a client that stalls, and inetd mode."""

import os
import re
import shutil
import smtplib
import socket
import subprocess
import time

import vmtest

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4

MSG = ("From: <sender@example.org>\r\nTo: <bob@%s>\r\n"
       "Subject: %s\r\n\r\nbody of %s\r\n")


def _setup(env, alpha_conf="", global_conf="", start=True):
    a = env.make_domain_root("alpha.test", [ALPHA])
    b = env.make_domain_root("beta.test", [BETA])
    if alpha_conf:
        with open(a.path("etc/virtmail.conf"), "a") as f:
            f.write(alpha_conf)
    vc = env.write_virtual_conf([(ALPHA, a.root), (BETA, b.root)])
    gc = env.path("virtmail.conf")
    with open(gc, "w") as f:
        f.write(global_conf)
    p = None
    if start:
        p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vc,
                               "-C", gc], name="smtpd")
        env.wait_for_port(ALPHA, 25, proc=p)
        env.wait_for_port(BETA, 25, proc=p)
        # The worker greets once it has chrooted; wait for that.
        for ip in (ALPHA, BETA):
            code = _banner(ip)
            assert code == 220, code
    return a, b, vc, gc, p


def _banner(ip, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = smtplib.SMTP(timeout=5)
            code, _ = s.connect(ip, 25)
            s.close()
            if code == 220:
                return code
        except (OSError, smtplib.SMTPException):
            code = None
        if time.monotonic() > deadline:
            return code
        time.sleep(0.1)


def _files(root):
    out = {}
    for dp, dn, fn in os.walk(root):
        for n in fn:
            p = os.path.join(dp, n)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


def _grep_tree(root, needle):
    """Files under root whose contents contain needle (bytes)."""
    hits = []
    for dp, dn, fn in os.walk(root):
        for n in fn:
            p = os.path.join(dp, n)
            try:
                with open(p, "rb") as f:
                    if needle in f.read():
                        hits.append(p)
            except OSError:
                pass
    return hits


def _delivered(dom, user, needle, timeout=15):
    """Wait for needle in a file of user's Maildir/new; return the
    paths (none after timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        hits = _grep_tree(os.path.join(dom.maildir(user), "new"), needle)
        if hits or time.monotonic() > deadline:
            return hits
        time.sleep(0.1)


def _raw(ip, data, until=b"221 ", timeout=10, port=25):
    """Send data in one packet after the banner; read until `until` or
    EOF; return the replies as text."""
    s = socket.create_connection((ip, port), timeout=timeout)
    try:
        buf = b""
        while not buf.endswith(b"\r\n"):
            c = s.recv(4096)
            if not c:
                break
            buf += c
        s.sendall(data)
        deadline = time.monotonic() + timeout
        while until not in buf and time.monotonic() < deadline:
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            if not c:
                break
            buf += c
        return buf.decode("utf-8", "replace")
    finally:
        s.close()


def _codes(text):
    return [l[:3] for l in text.split("\r\n") if len(l) >= 4 and
            l[3] == " "]


def _messages_logged(p):
    return len(re.findall(r" smtp message from=", p.log()))


def test_delivery_alpha_and_beta(env):
    a, b, vc, gc, p = _setup(env)
    for dom, ip in ((a, ALPHA), (b, BETA)):
        tag = "to-%s-%d" % (dom.name, os.getpid())
        with smtplib.SMTP(ip, 25, timeout=10) as s:
            code, msg = s.ehlo("client.example")
            assert code == 250, (code, msg)
            for ext in ("pipelining", "size", "8bitmime",
                        "enhancedstatuscodes", "smtputf8"):
                assert s.has_extn(ext), (ext, msg)
            s.mail("sender@example.org")
            code, msg = s.rcpt("bob@%s" % dom.name)
            assert code == 250, (code, msg)
            code, msg = s.data(MSG % (dom.name, tag, tag))
            assert code == 250, (code, msg)
            assert re.match(rb"2\.0\.0 Ok: queued as [0-9a-f]{16}$", msg), \
                msg
        hits = _delivered(dom, "bob", tag.encode())
        assert len(hits) == 1, "message %s delivered %d times" % (
            tag, len(hits))
        other = b if dom is a else a
        assert not _grep_tree(other.root, tag.encode()), \
            "message for %s leaked into %s" % (dom.name, other.name)
        with open(hits[0], "rb") as f:
            data = f.read()
        assert b"Received: from client.example" in data, data
        assert b"by mx.%s" % dom.name.encode() in data, data
        assert b"for <bob@%s>" % dom.name.encode() in data, data
        # The exact bytes sent, LF line ends, after our added headers.
        body = (MSG % (dom.name, tag, tag)).replace("\r\n", "\n")
        assert data.endswith(body.encode()), data
        assert data.startswith(b"Return-Path: <sender@example.org>\n"
                               b"Delivered-To: bob@%s\n" %
                               dom.name.encode()), data
        st = os.stat(hits[0])
        assert (st.st_uid, st.st_gid) == (dom.uids["bob"],
                                          dom.uids["bob"]), hits[0]
        assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)
    assert re.search(r"[0-9a-f]{16} smtp message from=<sender@example\.org>"
                     r" size=\d+ nrcpt=1 client=192\.0\.2\.\d+", p.log()), \
        p.log()


def test_swaks(env):
    if shutil.which("swaks") is None:
        return
    a, b, vc, gc, p = _setup(env)
    rc, out, err = env.run(["swaks", "--server", ALPHA, "--port", "25",
                            "--from", "sender@example.org",
                            "--to", "bob@alpha.test", "--helo",
                            "swaks.example", "--header",
                            "Subject: swaks-test", "--pipeline"],
                           timeout=30)
    assert rc == 0, (rc, out, err)
    assert "queued as" in out, out
    assert len(_delivered(a, "bob", b"swaks-test")) == 1


def test_sibling_is_relay(env):
    a, b, vc, gc, p = _setup(env)
    # beta's runner makes its queue directories as it starts: after that.
    env.wait_for_log(p, r"domain=beta\.test runner started queue=")
    before = _files(b.root)
    with smtplib.SMTP(ALPHA, 25, timeout=10) as s:
        s.ehlo("client.example")
        s.mail("sender@example.org")
        code, msg = s.rcpt("bob@beta.test")
        assert code == 554, (code, msg)
        assert msg.startswith(b"5.7.1"), msg
        try:
            s.data("Subject: x\r\n\r\nx\r\n")
            assert False, "DATA accepted without recipients"
        except smtplib.SMTPDataError as e:
            assert e.smtp_code in (503, 554), e
    time.sleep(0.5)
    assert _files(b.root) == before, "something written under beta"
    assert _messages_logged(p) == 0


def test_recipients(env):
    a, b, vc, gc, p = _setup(env)
    with smtplib.SMTP(ALPHA, 25, timeout=10) as s:
        s.ehlo("client.example")
        s.mail("sender@example.org")
        code, msg = s.rcpt("nobody@alpha.test")
        assert code == 550 and msg.startswith(b"5.1.1"), (code, msg)
        code, msg = s.rcpt("postmaster@alpha.test")
        assert code == 250, (code, msg)
        code, msg = s.rcpt("<postmaster>")
        assert code == 250, (code, msg)
        code, msg = s.rcpt("BOB@Alpha.Test")
        assert code == 250, (code, msg)
        code, msg = s.verify("bob")
        assert code == 252, (code, msg)
        code, msg = s.data("Subject: pm\r\n\r\nx\r\n")
        assert code == 250, (code, msg)
    # A user added to etc/passwd is known without a restart.
    with open(a.path("etc/passwd"), "a") as f:
        f.write("carol:x:2099:2099:carol:/home/carol:/bin/sh\n")
    with smtplib.SMTP(ALPHA, 25, timeout=10) as s:
        s.ehlo("client.example")
        s.mail("sender@example.org")
        code, msg = s.rcpt("carol@alpha.test")
        assert code == 250, (code, msg)


def test_pipelining_one_packet(env):
    a, b, vc, gc, p = _setup(env)
    out = _raw(ALPHA, b"EHLO c\r\nMAIL FROM:<s@example.org>\r\n"
               b"RCPT TO:<nobody@alpha.test>\r\nRCPT TO:<bob@alpha.test>\r\n"
               b"DATA\r\nSubject: pipe\r\n\r\npipelined\r\n.\r\n"
               b"MAIL FROM:<s@example.org>\r\nRCPT TO:<bob@alpha.test>\r\n"
               b"DATA\r\nSubject: pipe2\r\n\r\npipelined2\r\n.\r\n"
               b"QUIT\r\n")
    assert _codes(out) == ["220", "250", "250", "550", "250", "354", "250",
                           "250", "250", "354", "250", "221"], out
    # Lines reach the log through the master's relay: wait for both.
    vmtest.wait_for_text(p.log, r"(?s)smtp message from=.*smtp message from=")
    assert _messages_logged(p) == 2, p.log()


def test_size_limits(env):
    a, b, vc, gc, p = _setup(env, alpha_conf="max_message_size 10k\n")
    with smtplib.SMTP(ALPHA, 25, timeout=10) as s:
        s.ehlo("client.example")
        assert s.esmtp_features.get("size") == "10240", s.esmtp_features
        code, msg = s.mail("sender@example.org", ["SIZE=20000"])
        assert code == 552 and msg.startswith(b"5.3.4"), (code, msg)
        code, msg = s.mail("sender@example.org", ["SIZE=2000"])
        assert code == 250, (code, msg)
        s.rcpt("bob@alpha.test")
        body = "Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 300
        code, msg = s.data(body)
        assert code == 552 and msg.startswith(b"5.3.4"), (code, msg)
        code, msg = s.noop()
        assert code == 250
    assert _messages_logged(p) == 0


def test_overlong_command(env):
    a, b, vc, gc, p = _setup(env)
    out = _raw(ALPHA, b"NOOP " + b"x" * 5000 + b"\r\nNOOP\r\nQUIT\r\n")
    assert _codes(out) == ["220", "500", "250", "221"], out


def test_smuggling(env):
    a, b, vc, gc, p = _setup(env)
    head = (b"EHLO c\r\nMAIL FROM:<s@example.org>\r\n"
            b"RCPT TO:<bob@alpha.test>\r\nDATA\r\nSubject: smuggle\r\n\r\n"
            b"first\r\n")
    evil = (b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@alpha.test>\r\n"
            b"DATA\r\nSubject: SMUGGLED\r\n\r\nevil\r\n.\r\nQUIT\r\n")
    for end in (b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r\n.\r",
                b".\n", b"\r\n\x00.\r\n"):
        out = _raw(ALPHA, head + end + evil)
        codes = _codes(out)
        assert codes == ["220", "250", "250", "250", "354", "550", "221"], \
            (end, out)
    time.sleep(1)
    assert _messages_logged(p) == 0, p.log()
    assert not _grep_tree(a.root, b"SMUGGLED"), "smuggled message written"


def test_nul_in_data(env):
    a, b, vc, gc, p = _setup(env)
    out = _raw(ALPHA, b"EHLO c\r\nMAIL FROM:<s@example.org>\r\n"
               b"RCPT TO:<bob@alpha.test>\r\nDATA\r\nSubject: nul\r\n\r\n"
               b"a\x00b\r\n.\r\nQUIT\r\n")
    assert _codes(out)[-2:] == ["550", "221"], out
    assert "550 5.6.0" in out, out
    assert _messages_logged(p) == 0


def test_disconnect_mid_data(env):
    a, b, vc, gc, p = _setup(env)
    s = socket.create_connection((ALPHA, 25), timeout=10)
    s.recv(4096)
    s.sendall(b"EHLO c\r\nMAIL FROM:<s@example.org>\r\n"
              b"RCPT TO:<bob@alpha.test>\r\nDATA\r\n")
    buf = b""
    while b"354 " not in buf:
        c = s.recv(4096)
        assert c, buf
        buf += c
    s.sendall(b"Subject: half\r\n\r\nHALFMESSAGE\r\n")
    s.shutdown(socket.SHUT_WR)
    rest = s.recv(4096)
    s.close()
    assert b"250" not in rest, rest
    vmtest.wait_for_text(p.log, r"smtp disconnect", 10)
    time.sleep(0.5)
    assert _messages_logged(p) == 0
    assert not _grep_tree(a.root, b"HALFMESSAGE"), "partial message kept"


def test_stall_timeout(env):
    a, b, vc, gc, p = _setup(env, alpha_conf="timeout_command 2s\n"
                             "timeout_data_block 2s\n")
    for pre in (b"", b"EHLO c\r\nMAIL FROM:<s@example.org>\r\n"
                b"RCPT TO:<bob@alpha.test>\r\nDATA\r\npartial"):
        s = socket.create_connection((ALPHA, 25), timeout=15)
        t0 = time.monotonic()
        s.sendall(pre)
        buf = b""
        while True:
            c = s.recv(4096)
            if not c:
                break
            buf += c
        s.close()
        elapsed = time.monotonic() - t0
        assert b"421 4.4.2" in buf, buf
        assert 1.5 < elapsed < 10, elapsed
    assert _messages_logged(p) == 0


def test_too_many_errors(env):
    a, b, vc, gc, p = _setup(env, alpha_conf="max_errors 3\n")
    out = _raw(ALPHA, b"FOO\r\n" * 6, until=b"421 ")
    assert _codes(out) == ["220", "500", "500", "500", "500", "421"], out


def test_sessions_per_ip(env):
    a, b, vc, gc, p = _setup(env, alpha_conf="max_sessions_per_ip 2\n")
    time.sleep(0.5)     # the banner probes of _setup are gone
    keep = []
    for i in range(2):
        s = socket.create_connection((ALPHA, 25), timeout=10)
        data = s.recv(4096)
        assert data.startswith(b"220"), (i, data, p.log())
        keep.append(s)
    s = socket.create_connection((ALPHA, 25), timeout=10)
    data = s.recv(4096)
    s.close()
    assert data.startswith(b"421 4.7.0"), data
    for s in keep:
        s.close()


def test_inetd(env):
    a, b, vc, gc, p = _setup(env, start=False)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ALPHA, 2525))
    ls.listen(1)
    c = socket.create_connection((ALPHA, 2525), timeout=10)
    conn, _ = ls.accept()
    ls.close()
    proc = subprocess.Popen([env.bin("virtmail-smtpd"), "-i", "-f", vc,
                             "-C", gc], stdin=conn, stdout=conn,
                            stderr=subprocess.PIPE)
    conn.close()
    try:
        buf = b""
        while not buf.endswith(b"\r\n"):
            d = c.recv(4096)
            assert d, buf
            buf += d
        assert buf.startswith(b"220 mx.alpha.test ESMTP"), buf
        c.sendall(b"EHLO c\r\nMAIL FROM:<s@example.org>\r\n"
                  b"RCPT TO:<bob@alpha.test>\r\nDATA\r\n"
                  b"Subject: inetd-mode\r\n\r\nvia inetd\r\n.\r\nQUIT\r\n")
        while b"221 " not in buf:
            d = c.recv(4096)
            if not d:
                break
            buf += d
        assert _codes(buf.decode())[-3:] == ["354", "250", "221"], buf
        assert proc.wait(10) == 0
    finally:
        c.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _grep_tree(a.path("var/spool/virtmail"), b"inetd-mode") or \
        _grep_tree(a.maildir("bob"), b"inetd-mode")
