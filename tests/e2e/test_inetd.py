"""virtmail-smtpd -i behind a real openbsd-inetd (192.0.2.10 ports 25
and 465): the same server as the daemon's worker, so STARTTLS, implicit
TLS, AUTH against the domain's shadow, SPF tags and milters all work
for a session that inetd accepted.  Also a session whose replies go to
a pipe (fd 1) rather than back to the socket it reads (fd 0)."""

import os
import re
import smtplib
import socket
import subprocess
import time

import vmtest
from test_tls import ctx, make_cert

ALPHA = vmtest.ALPHA_IP4
PASS_IP = "192.0.2.20"      # in beta.test's SPF record

# inetd's wrapper: the server's log (-d) and its exit status.
WRAPPER = """#!/bin/sh
%(smtpd)s -d -i -f %(vc)s -C %(gc)s 2>>%(log)s
echo "exit=$?" >>%(log)s
"""


def _setup(env, inetd=True):
    """alpha.test with a certificate, AUTH, SPF tags and (with inetd) a
    milter; inetd serving it on 25 and 465.  Returns the domain, the
    servers' log and the milter."""
    a = env.make_domain_root("alpha.test", [ALPHA], users={"bob": "pw"})
    crt, key = make_cert(env, a, "mx.alpha.test", ["mx.alpha.test"])
    with open(a.path("etc/virtmail.conf"), "a") as f:
        f.write("tls_cert %s\ntls_key %s\nauth_delay 0\nspf tag\n" %
                (crt, key))
    with open(a.path("etc/resolv.conf"), "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    vc = env.write_virtual_conf([(ALPHA, a.root)])
    gc = env.path("virtmail.conf")
    with open(gc, "w") as f:
        f.write("timeout_command 20s\n")
    if not inetd:
        return a
    port = env.free_port()
    milter = env.start_process([env.bin("virtmail-testmilter"), "-p",
                                "inet:%d@127.0.0.1" % port, "-H",
                                "SPAMWORD"], name="milter")
    env.wait_for_port("127.0.0.1", port, proc=milter)
    with open(a.path("etc/virtmail.conf"), "a") as f:
        f.write("milter inet:127.0.0.1:%d timeout=2s eom_timeout=2s "
                "default=tempfail\n" % port)
    log = env.path("smtpd-inetd.log")
    wrap = env.path("smtpd-inetd.sh")
    with open(wrap, "w") as f:
        f.write(WRAPPER % {"smtpd": env.bin("virtmail-smtpd"), "vc": vc,
                           "gc": gc, "log": log})
    os.chmod(wrap, 0o755)
    with open(env.path("inetd.conf"), "w") as f:
        for p in (25, 465):
            f.write("%s:%d stream tcp nowait root %s smtpd-inetd.sh\n" %
                    (ALPHA, p, wrap))
    # A private /run keeps inetd's pid file off the host's.
    proc = env.start_process(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         "mount -t tmpfs tmpfs /run && exec /usr/sbin/inetd -d -i \"$0\"",
         env.path("inetd.conf")], name="inetd")
    for p in (25, 465):
        _wait_listen(ALPHA, p, proc)
    return a, log, milter


def _wait_listen(ip, port, proc, timeout=10):
    """Wait for inetd's listener without connecting (a probe would start
    a session)."""
    want = "%s:%04X" % ("".join("%02X" % int(x) for x in
                                reversed(ip.split("."))), port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    return
        assert proc.poll() is None, proc.log()
        time.sleep(0.05)
    raise AssertionError("inetd not listening on %s:%d" % (ip, port))


def _exits(log, n, timeout=10):
    """The first n exit statuses in the wrapper's log."""
    deadline = time.monotonic() + timeout
    while True:
        text = open(log).read() if os.path.exists(log) else ""
        ex = [int(x) for x in re.findall(r"exit=(-?\d+)", text)]
        if len(ex) >= n or time.monotonic() > deadline:
            return ex, text
        time.sleep(0.05)


def _stored(dom, needle, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        for root in (dom.maildir("bob"), dom.path("var/spool/virtmail")):
            for dp, dn, fn in os.walk(root):
                for n in fn:
                    try:
                        data = open(os.path.join(dp, n), "rb").read()
                    except OSError:
                        continue
                    if needle.encode() in data:
                        return data.decode("utf-8", "replace")
        if time.monotonic() > deadline:
            raise AssertionError("no stored message with %r" % needle)
        time.sleep(0.1)


def test_inetd_tls_auth_spf_milter(env):
    a, log, milter = _setup(env)
    # STARTTLS and AUTH on 25.
    s = smtplib.SMTP(ALPHA, 25, timeout=20)
    code, msg = s.ehlo("client.example")
    assert code == 250 and b"STARTTLS" in msg, msg
    s.starttls(context=ctx())
    code, msg = s.ehlo("client.example")
    assert b"AUTH" in msg, msg
    s.user, s.password = "bob", "pw"
    code, msg = s.auth("PLAIN", s.auth_plain)
    assert code == 235, msg
    assert s.mail("bob@alpha.test")[0] == 250
    assert s.rcpt("bob@alpha.test")[0] == 250
    code, msg = s.data(b"Subject: tls\r\n\r\nbody inetd-tls\r\n")
    assert code == 250, msg
    s.quit()
    # SPF, from an address in beta.test's record.
    s = smtplib.SMTP(ALPHA, 25, timeout=20, source_address=(PASS_IP, 0))
    s.ehlo("client.example")
    assert s.mail("u@beta.test")[0] == 250
    assert s.rcpt("bob@alpha.test")[0] == 250
    code, msg = s.data(b"Subject: spf\r\n\r\nbody inetd-spf\r\n")
    assert code == 250, msg
    s.quit()
    # Implicit TLS on 465, AUTH LOGIN.
    s = smtplib.SMTP_SSL(ALPHA, 465, timeout=20, context=ctx())
    s.ehlo("client.example")
    s.user, s.password = "bob@alpha.test", "pw"
    code, msg = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    assert code == 235, msg
    s.quit()
    # A milter's reject, plain on 25.
    s = smtplib.SMTP(ALPHA, 25, timeout=20)
    s.ehlo("client.example")
    assert s.mail("u@example.org")[0] == 250
    assert s.rcpt("bob@alpha.test")[0] == 250
    try:
        code, msg = s.data(b"X-Spam: SPAMWORD\r\n\r\nbody rejected\r\n")
    except smtplib.SMTPResponseException as e:
        code, msg = e.smtp_code, e.smtp_error
    assert code == 550, (code, msg)
    s.quit()

    ex, text = _exits(log, 4)
    assert ex == [0, 0, 0, 0], text
    assert len(re.findall(r"smtp tls client=", text)) == 2, text
    assert len(re.findall(r"smtp auth ok user=bob ", text)) == 2, text
    assert "Authentication-Results" not in _stored(a, "body inetd-tls")
    m = _stored(a, "body inetd-spf")
    assert "Received-SPF: pass" in m and "client-ip=%s" % PASS_IP in m, m
    # libmilter takes seconds to leave on SIGTERM.
    milter.stop(timeout=0.1)


def test_inetd_pipe_out(env):
    """Reads on fd 0 (the socket), replies on fd 1 (a pipe)."""
    a = _setup(env, inetd=False)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ALPHA, 0))
    ls.listen(1)
    c = socket.create_connection(ls.getsockname(), timeout=10)
    conn, _ = ls.accept()
    ls.close()
    proc = subprocess.Popen(
        [env.bin("virtmail-smtpd"), "-i", "-f", env.path("virtual.conf"),
         "-C", env.path("virtmail.conf")], stdin=conn,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True)
    conn.close()
    try:
        c.sendall(b"EHLO c\r\nQUIT\r\n")
        out = proc.stdout.read()
        assert proc.wait(10) == 0
    finally:
        c.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.startswith(b"220 mx.alpha.test ESMTP"), out
    assert b"250-STARTTLS" in out and b"\r\n221 " in out, out
