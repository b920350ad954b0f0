"""virtmail-pop3d over TLS: STLS (RFC 2595) on 110 and implicit TLS on
995 (RFC 8314), each address showing its own domain's certificate; mpop
with STARTTLS and with implicit TLS against a trust file; CAPA in each
state; logins refused before TLS; the STLS injection defence; a
garbage ClientHello and a stalled handshake end their own session
only; and the session's TLS proxy passing a large message intact."""

import os
import poplib
import signal
import socket
import ssl

import vmtest
from test_tls import ctx, make_cert, peer_cn

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4
GLOBAL = ("pop3_timeout 5s\npop3_auth_delay 0\npop3_max_auth_failures 3\n"
          "pop3_max_sessions_per_ip 50\n")

_seq = [0]


def setup(env, alpha_extra="", tls=True):
    a = env.make_domain_root("alpha.test", [ALPHA],
                             users={"bob": "alpha-pw"})
    b = env.make_domain_root("beta.test", [BETA], users={"bob": "beta-pw"})
    for dom, cn, extra in ((a, "mx.alpha.test", alpha_extra),
                           (b, "mx.beta.test", "")):
        conf = "hostname %s\nrun_as virtmail\n%s" % (cn, extra)
        if tls:
            c, k = make_cert(env, dom, cn, [cn])
            conf += "tls_cert %s\ntls_key %s\n" % (c, k)
        with open(dom.path("etc/virtmail.conf"), "w") as f:
            f.write(conf)
    vc = env.write_virtual_conf([(ALPHA, a.root), (BETA, b.root)])
    gc = env.path("virtmail.conf")
    with open(gc, "w") as f:
        f.write(GLOBAL)
    p = env.start_process([env.bin("virtmail-pop3d"), "-d", "-f", vc,
                           "-C", gc], name="pop3d")
    for ip in (ALPHA, BETA):
        env.wait_for_port(ip, 110, proc=p)
        if tls:
            env.wait_for_port(ip, 995, proc=p)
    return a, b, p


def put(dom, user, body):
    _seq[0] += 1
    name = "%d.V%xI%d.mx.%s" % (1700000000 + _seq[0], _seq[0], _seq[0],
                               dom.name)
    path = os.path.join(dom.maildir(user), "new", name)
    with open(path, "wb") as f:
        f.write(body)
    os.chown(path, dom.uids[user], dom.uids[user])


def msg(subject, body=b"hello\n"):
    return (b"From: a@example.test\nTo: bob@alpha.test\nSubject: " +
            subject.encode() + b"\n\n" + body)


def readline(f):
    return f.readline()


def test_stls_and_pop3s_per_domain_certificate(env):
    a, b, p = setup(env)
    put(a, "bob", msg("alpha one"))
    put(b, "bob", msg("beta one"))
    for ip, cn, pw, subj in ((ALPHA, "mx.alpha.test", "alpha-pw",
                              b"alpha one"),
                             (BETA, "mx.beta.test", "beta-pw",
                              b"beta one")):
        c = poplib.POP3(ip, 110, timeout=10)
        caps = c.capa()
        assert "STLS" in caps and "USER" not in caps, caps
        c.stls(context=ctx())
        assert ("CN = %s" % cn) in peer_cn(c.sock), peer_cn(c.sock)
        caps = c.capa()
        assert "STLS" not in caps and "USER" in caps, caps
        c.user("bob")
        c.pass_(pw)
        assert c.stat()[0] == 1
        assert subj in b"\n".join(c.retr(1)[1])
        assert "STLS" not in c.capa()
        c.quit()
        s = poplib.POP3_SSL(ip, 995, timeout=10, context=ctx())
        assert ("CN = %s" % cn) in peer_cn(s.sock), peer_cn(s.sock)
        assert "STLS" not in s.capa()
        s.user("bob")
        s.pass_(pw)
        assert s.stat()[0] == 1
        s.quit()
    env.wait_for_log(p, r"pop3 tls version=TLSv1\.[23] cipher=")
    env.wait_for_log(p, r"pop3 auth ok user=bob tls=yes")


def test_login_refused_before_tls(env):
    a, b, p = setup(env)
    c = poplib.POP3(ALPHA, 110, timeout=10)
    for cmd in ("USER bob", "PASS alpha-pw", "AUTH PLAIN AGJvYgBhbHBoYS1wdw=="):
        try:
            r = c._shortcmd(cmd)
        except poplib.error_proto as e:
            r = e.args[0]
        assert r.startswith(b"-ERR [AUTH] plaintext authentication "
                            b"disallowed"), r
    c.quit()
    # allow_plaintext_auth yes (the smtpd key) lets it through.
    with open(a.path("etc/virtmail.conf"), "a") as f:
        f.write("allow_plaintext_auth yes\n")
    p.signal(signal.SIGHUP)
    env.wait_for_log(p, r"reload: done")
    c = poplib.POP3(ALPHA, 110, timeout=10)
    assert "USER" in c.capa() and "STLS" in c.capa()
    c.user("bob")
    c.pass_("alpha-pw")
    c.quit()


def test_no_certificate_no_stls(env):
    a, b, p = setup(env, tls=False)
    c = poplib.POP3(ALPHA, 110, timeout=10)
    caps = c.capa()
    assert "STLS" not in caps and "USER" in caps, caps
    try:
        r = c._shortcmd("STLS")
    except poplib.error_proto as e:
        r = e.args[0]
    assert r.startswith(b"-ERR STLS not available"), r
    c.user("bob")
    c.pass_("alpha-pw")
    c.quit()
    s = socket.socket()
    s.settimeout(2)
    assert s.connect_ex((ALPHA, 995)) != 0, "995 bound without a certificate"
    s.close()


def test_stls_injection(env):
    a, b, p = setup(env)
    put(a, "bob", msg("x"))
    raw = socket.create_connection((ALPHA, 110), timeout=10)
    f = raw.makefile("rb")
    assert readline(f).startswith(b"+OK")
    # One packet: STLS and a command the attacker wants run after it.
    raw.sendall(b"STLS\r\nUSER bob\r\nPASS alpha-pw\r\nDELE 1\r\n")
    assert readline(f).startswith(b"+OK begin TLS")
    try:
        s = ctx().wrap_socket(raw)
    except (ssl.SSLError, OSError):
        s = None
    if s is not None:
        # Either the handshake broke on the injected bytes, or nothing
        # of them survived: PASS now needs USER first.
        s.settimeout(5)
        try:
            s.sendall(b"PASS alpha-pw\r\n")
            r = s.recv(200)
            assert r.startswith(b"-ERR USER first"), r
        except (ssl.SSLError, OSError):
            pass
        s.close()
    raw.close()
    c = poplib.POP3_SSL(ALPHA, 995, timeout=10, context=ctx())
    c.user("bob")
    c.pass_("alpha-pw")
    assert c.stat()[0] == 1, "the injected DELE ran"
    c.quit()
    # The same with the injected bytes arriving after the +OK: they reach
    # OpenSSL as a broken ClientHello and end that session only.
    raw = socket.create_connection((ALPHA, 110), timeout=10)
    f = raw.makefile("rb")
    readline(f)
    raw.sendall(b"STLS\r\n")
    assert readline(f).startswith(b"+OK")
    raw.sendall(b"USER bob\r\nPASS alpha-pw\r\n")
    raw.settimeout(5)
    try:
        r = raw.recv(200)
    except OSError:
        r = b""
    assert not r.startswith(b"+OK"), r
    raw.close()
    env.wait_for_log(p, r"pop3 tls handshake failed")


def test_stls_after_stls_and_pipelining(env):
    a, b, p = setup(env)
    put(a, "bob", msg("piped"))
    raw = socket.create_connection((ALPHA, 110), timeout=10)
    f = raw.makefile("rb")
    readline(f)
    raw.sendall(b"STLS\r\n")
    assert readline(f).startswith(b"+OK")
    s = ctx().wrap_socket(raw)
    sf = s.makefile("rb")
    s.sendall(b"STLS\r\n")
    assert readline(sf).startswith(b"-ERR already using TLS")
    # Pipelined over TLS, through the proxy into the session.
    s.sendall(b"USER bob\r\nPASS alpha-pw\r\nSTAT\r\nNOOP\r\nQUIT\r\n")
    lines = [readline(sf) for _ in range(5)]
    assert lines[0].startswith(b"+OK"), lines
    assert lines[1].startswith(b"+OK 1 messages"), lines
    assert lines[2].startswith(b"+OK 1 "), lines
    assert lines[3] == b"+OK\r\n" and lines[4].startswith(b"+OK bye"), lines
    s.close()


def test_large_message_through_proxy(env):
    a, b, p = setup(env)
    body = b"".join(b"line %06d %s\n" % (i, b"x" * 60)
                    for i in range(20000))
    put(a, "bob", msg("big", body))
    c = poplib.POP3_SSL(ALPHA, 995, timeout=20, context=ctx())
    c.user("bob")
    c.pass_("alpha-pw")
    got = b"\n".join(c.retr(1)[1])
    assert got.endswith(body.rstrip(b"\n")), len(got)
    c.dele(1)
    c.quit()
    c = poplib.POP3_SSL(ALPHA, 995, timeout=10, context=ctx())
    c.user("bob")
    c.pass_("alpha-pw")
    assert c.stat()[0] == 0
    c.quit()


def test_broken_handshakes_end_one_session(env):
    a, b, p = setup(env)
    garbage = socket.create_connection((ALPHA, 995), timeout=10)
    garbage.sendall(b"USER this is not a ClientHello\r\n" * 20)
    stalled = socket.create_connection((ALPHA, 995), timeout=10)
    half = socket.create_connection((ALPHA, 110), timeout=10)
    hf = half.makefile("rb")
    readline(hf)
    half.sendall(b"STLS\r\n")
    assert readline(hf).startswith(b"+OK")
    half.sendall(b"\x16\x03\x01\x00\x05abc")
    # Everyone else is served meanwhile.
    for _ in range(2):
        c = poplib.POP3_SSL(ALPHA, 995, timeout=10, context=ctx())
        c.user("bob")
        c.pass_("alpha-pw")
        c.quit()
    c = poplib.POP3(ALPHA, 110, timeout=10)
    c.stls(context=ctx())
    c.user("bob")
    c.pass_("alpha-pw")
    c.quit()
    garbage.settimeout(5)
    try:
        assert not garbage.recv(100).startswith(b"+OK")
    except OSError:
        pass
    env.wait_for_log(p, r"pop3 tls handshake failed error=")
    for s in (garbage, stalled, half):
        s.close()


def _mpop(env, a, extra, n):
    for i in range(n):
        put(a, "bob", msg("mpop%d" % i))
    crt = a.path("etc/ssl/main.crt")
    out = env.path("mpop.mbox")
    if os.path.exists(out):
        os.unlink(out)
    rc_file = env.path("mpoprc")
    with open(rc_file, "w") as f:
        f.write("account default\nhost %s\nuser bob\nauth user\n"
                "password alpha-pw\ntls on\ntls_trust_file %s\n"
                "tls_host_override mx.alpha.test\n%s"
                "delivery mbox %s\nkeep off\nuidls_file %s\n"
                % (ALPHA, crt, extra, out, env.path("uidls")))
    os.chmod(rc_file, 0o600)
    rc, so, se = env.run(["mpop", "-C", rc_file, "-q"], timeout=30)
    assert rc == 0, (rc, so, se)
    with open(out, "rb") as f:
        got = f.read()
    for i in range(n):
        assert b"Subject: mpop%d" % i in got, got


def test_mpop_starttls_and_implicit(env):
    a, b, p = setup(env)
    _mpop(env, a, "port 110\ntls_starttls on\n", 2)
    _mpop(env, a, "port 995\ntls_starttls off\n", 3)
    # A trust file that does not hold alpha's certificate: refused.
    other = b.path("etc/ssl/main.crt")
    rc_file = env.path("mpoprc-bad")
    with open(rc_file, "w") as f:
        f.write("account default\nhost %s\nport 995\nuser bob\n"
                "auth user\npassword alpha-pw\ntls on\ntls_starttls off\n"
                "tls_trust_file %s\ntls_host_override mx.alpha.test\n"
                "delivery mbox %s\n" % (ALPHA, other, env.path("x.mbox")))
    os.chmod(rc_file, 0o600)
    rc, so, se = env.run(["mpop", "-C", rc_file, "-q"], timeout=30)
    assert rc != 0, (rc, so, se)


def test_check_shows_certificates(env):
    a = env.make_domain_root("alpha.test", [ALPHA], users={"bob": "pw"})
    c, k = make_cert(env, a, "mx.alpha.test", ["mx.alpha.test"])
    with open(a.path("etc/virtmail.conf"), "w") as f:
        f.write("run_as virtmail\ntls_cert %s\ntls_key %s\n" % (c, k))
    vc = env.write_virtual_conf([(ALPHA, a.root)])
    gc = env.path("virtmail.conf")
    with open(gc, "w") as f:
        f.write(GLOBAL)
    rc, out, err = env.run([env.bin("virtmail-pop3d"), "-t", "-f", vc,
                            "-C", gc])
    assert rc == 0 and "pop3s_port 995" in out and \
        "tls certificate" in out and "mx.alpha.test" in out, (out, err)
    os.chmod(a.path("etc/ssl/main.key"), 0o644)
    rc, out, err = env.run([env.bin("virtmail-pop3d"), "-t", "-f", vc,
                            "-C", gc])
    assert rc == 1 and "readable by group or others" in err, (out, err)
