"""TLS and SMTP AUTH: per-domain certificates (STARTTLS on 25/587,
implicit TLS on 465), SNI, the STARTTLS injection defence, AUTH PLAIN
and LOGIN against the domain's own shadow, submission rules, sender
login match, broken handshakes, and -t on bad certificates.
Certificates are made here with openssl req, one subject per domain."""

import base64
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time

import vmtest

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4


def make_cert(env, dom, cn, names, kind="ec", days=30, tag="main"):
    """A self-signed certificate for cn/names in dom's etc/ssl; returns
    the (cert, key) paths inside the root."""
    d = dom.path("etc/ssl")
    os.makedirs(d, exist_ok=True)
    crt = os.path.join(d, "%s.crt" % tag)
    key = os.path.join(d, "%s.key" % tag)
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] \
        if kind == "ec" else ["-newkey", "rsa:2048"]
    san = ",".join("DNS:" + n for n in names)
    rc, out, err = vmtest.run(
        ["openssl", "req", "-x509", "-nodes"] + newkey +
        ["-keyout", key, "-out", crt, "-days", str(days),
         "-subj", "/O=%s/CN=%s" % (dom.name, cn),
         "-addext", "subjectAltName=" + san])
    assert rc == 0, err
    os.chmod(key, 0o600)
    return "/etc/ssl/%s.crt" % tag, "/etc/ssl/%s.key" % tag


def make_expired_cert(env, dom, cn):
    """A self-signed certificate that expired in 2020 (openssl ca sets
    the dates, which openssl req cannot)."""
    d = dom.path("etc/ssl")
    os.makedirs(d, exist_ok=True)
    work = env.path("ca-" + dom.name)
    os.makedirs(work, exist_ok=True)
    open(os.path.join(work, "index.txt"), "w").close()
    with open(os.path.join(work, "serial"), "w") as f:
        f.write("01\n")
    cfg = os.path.join(work, "ca.cnf")
    with open(cfg, "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndir = %s\n"
                "database = %s/index.txt\nnew_certs_dir = %s\n"
                "serial = %s/serial\ndefault_md = sha256\npolicy = p\n"
                "[p]\ncommonName = supplied\n" % ((work,) * 4))
    key = os.path.join(d, "expired.key")
    csr = os.path.join(work, "req.csr")
    crt = os.path.join(d, "expired.crt")
    rc, out, err = vmtest.run(
        ["openssl", "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-keyout", key, "-out", csr,
         "-subj", "/CN=%s" % cn])
    assert rc == 0, err
    rc, out, err = vmtest.run(
        ["openssl", "ca", "-batch", "-selfsign", "-notext", "-config", cfg,
         "-keyfile", key, "-in", csr, "-out", crt, "-startdate",
         "20200101000000Z", "-enddate", "20200201000000Z"])
    assert rc == 0, err
    os.chmod(key, 0o600)
    return "/etc/ssl/expired.crt", "/etc/ssl/expired.key"


def setup(env, alpha_extra="", beta_extra="", alpha_certs=None, start=True):
    a = env.make_domain_root("alpha.test", [ALPHA],
                             users={"bob": "alpha-pw"})
    b = env.make_domain_root("beta.test", [BETA],
                             users={"bob": "beta-pw", "fred": "fred-pw"})
    ca, ka = make_cert(env, a, "mx.alpha.test", ["mx.alpha.test"])
    cb, kb = make_cert(env, b, "mx.beta.test", ["mx.beta.test"])
    with open(a.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.alpha.test\nrun_as virtmail\n"
                "tls_cert %s\ntls_key %s\nauth_delay 0\n%s" %
                (ca, ka, alpha_extra))
    with open(b.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.beta.test\nrun_as virtmail\n"
                "tls_cert %s\ntls_key %s\nauth_delay 0\n%s" %
                (cb, kb, beta_extra))
    vc = env.write_virtual_conf([(ALPHA, a.root), (BETA, b.root)])
    gc = env.path("virtmail.conf")
    with open(gc, "w") as f:
        f.write("retry_min 1\nretry_max 2\ntimeout_command 20s\n")
    p = None
    if start:
        p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vc,
                               "-C", gc], name="smtpd")
        for ip in (ALPHA, BETA):
            for port in (25, 587, 465):
                env.wait_for_port(ip, port, proc=p)
    return a, b, p, vc, gc


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def peer_cn(sock):
    der = sock.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    r = subprocess.run(["openssl", "x509", "-noout", "-subject"],
                       input=pem.encode(), capture_output=True)
    return r.stdout.decode()


def s_client(args, data=b"QUIT\r\n"):
    r = subprocess.run(["openssl", "s_client", "-brief"] + args,
                       input=data, capture_output=True, timeout=20)
    return r.stdout.decode(errors="replace") + \
        r.stderr.decode(errors="replace")


def files(dom, user):
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(dom.maildir(user), sub)
        out += [os.path.join(d, n) for n in sorted(os.listdir(d))]
    return out


def wait_files(dom, user, n, timeout=20):
    deadline = time.monotonic() + timeout
    while len(files(dom, user)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return files(dom, user)


def test_certificate_per_domain(env):
    a, b, p, _, _ = setup(env)
    out = s_client(["-connect", "%s:25" % ALPHA, "-starttls", "smtp"])
    assert "CN = mx.alpha.test" in out, out
    out = s_client(["-connect", "%s:587" % BETA, "-starttls", "smtp"])
    assert "CN = mx.beta.test" in out, out
    out = s_client(["-connect", "%s:465" % BETA])
    assert "CN = mx.beta.test" in out, out
    assert re.search(r"Protocol version: TLSv1\.[23]", out), out
    for ip, cn in ((ALPHA, "mx.alpha.test"), (BETA, "mx.beta.test")):
        with socket.create_connection((ip, 465), timeout=10) as raw:
            with ctx().wrap_socket(raw) as s:
                assert "CN = " + cn in peer_cn(s)
                assert s.recv(512).startswith(b"220 ")
    # TLS 1.1 and below are refused.
    c = ctx()
    c.minimum_version = ssl.TLSVersion.TLSv1
    c.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection((ALPHA, 465), timeout=10) as raw:
        try:
            c.wrap_socket(raw)
            assert False, "TLS 1.1 accepted"
        except (ssl.SSLError, OSError):
            pass


def test_sni_two_names_and_two_key_types(env):
    a, b, p, vc, gc = setup(env, start=False)
    c2, k2 = make_cert(env, a, "smtp.alpha.test", ["smtp.alpha.test"],
                       tag="second")
    c3, k3 = make_cert(env, a, "mx.alpha.test", ["mx.alpha.test"],
                       kind="rsa", tag="rsa")
    with open(a.path("etc/virtmail.conf"), "a") as f:
        f.write("tls_pair %s %s\ntls_pair %s %s\n" % (c2, k2, c3, k3))
    p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vc,
                           "-C", gc], name="smtpd")
    env.wait_for_port(ALPHA, 465, proc=p)
    for name, cn in (("smtp.alpha.test", "smtp.alpha.test"),
                     ("mx.alpha.test", "mx.alpha.test"),
                     ("other.test", "mx.alpha.test")):
        with socket.create_connection((ALPHA, 465), timeout=10) as raw:
            with ctx().wrap_socket(raw, server_hostname=name) as s:
                assert "CN = " + cn in peer_cn(s), (name, peer_cn(s))
    # An RSA-only TLS 1.2 client gets the RSA certificate of that name.
    out = s_client(["-connect", "%s:465" % ALPHA, "-tls1_2", "-cipher",
                    "ECDHE-RSA-AES128-GCM-SHA256", "-servername",
                    "mx.alpha.test"])
    assert "CN = mx.alpha.test" in out and "rsaEncryption" in out or \
        "RSA" in out, out


def _read_reply(f):
    lines = []
    while True:
        line = f.readline()
        assert line, "connection closed"
        lines.append(line)
        if line[3:4] != b"-":
            return b"".join(lines)


def test_starttls_injection(env):
    a, b, p, _, _ = setup(env)
    raw = socket.create_connection((ALPHA, 25), timeout=10)
    f = raw.makefile("rb")
    assert _read_reply(f).startswith(b"220")
    raw.sendall(b"EHLO client.test\r\n")
    assert b"STARTTLS" in _read_reply(f)
    raw.sendall(b"STARTTLS\r\nRSET\r\n")     # one packet
    assert _read_reply(f).startswith(b"220 2.0.0")
    s = ctx().wrap_socket(raw)
    s.sendall(b"NOOP\r\n")
    sf = s.makefile("rb")
    r = _read_reply(sf)
    assert r.startswith(b"250 2.0.0") and b"\r\n" == r[-2:], r
    # Exactly one reply: nothing left over for the injected RSET.
    s.settimeout(1)
    try:
        extra = s.recv(100)
    except (socket.timeout, ssl.SSLError):
        extra = b""
    assert extra == b"", extra
    # The state was reset: EHLO again, and no STARTTLS offered now.
    s.sendall(b"MAIL FROM:<x@client.test>\r\n")
    s.settimeout(10)
    assert _read_reply(sf).startswith(b"503"), "EHLO must be forgotten"
    s.sendall(b"EHLO client.test\r\n")
    r = _read_reply(sf)
    assert b"STARTTLS" not in r and b"AUTH PLAIN LOGIN" in r, r
    s.close()
    env.wait_for_log(p, r"smtp tls client=192\.0\.2\.\d+ version=TLSv1\.3")


def test_auth_plain_and_login(env):
    a, b, p, _, _ = setup(env)
    with smtplib.SMTP(ALPHA, 587, timeout=20) as s:
        s.ehlo("client.test")
        s.starttls(context=ctx())
        s.ehlo("client.test")
        s.user, s.password = "bob", "alpha-pw"
        code, msg = s.auth("PLAIN", s.auth_plain)
        assert code == 235, msg
    with smtplib.SMTP(ALPHA, 587, timeout=20) as s:
        s.ehlo("client.test")
        s.starttls(context=ctx())
        s.ehlo("client.test")
        s.user, s.password = "bob@alpha.test", "alpha-pw"
        code, msg = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        assert code == 235, msg
    env.wait_for_log(p, r"smtp auth ok user=bob client=192\.0\.2\.")


def _auth_reply(ip, port, user, pw, implicit=False):
    if implicit:
        s = smtplib.SMTP_SSL(ip, port, timeout=20, context=ctx())
    else:
        s = smtplib.SMTP(ip, port, timeout=20)
    try:
        s.ehlo("client.test")
        if not implicit:
            s.starttls(context=ctx())
            s.ehlo("client.test")
        try:
            s.login(user, pw)
            return (235, b"")
        except smtplib.SMTPAuthenticationError as e:
            return (e.smtp_code, e.smtp_error)
    finally:
        s.close()


def test_auth_failures_same_reply(env):
    a, b, p, _, _ = setup(env)
    wrong = _auth_reply(ALPHA, 587, "bob", "nope")
    unknown = _auth_reply(ALPHA, 587, "nosuchuser", "nope")
    assert wrong[0] == 535 and wrong == unknown, (wrong, unknown)
    # alpha's bob's password is not beta's bob's.
    assert _auth_reply(BETA, 465, "bob", "alpha-pw", True)[0] == 535
    assert _auth_reply(BETA, 465, "bob", "beta-pw", True)[0] == 235
    assert _auth_reply(ALPHA, 465, "bob@beta.test", "beta-pw", True)[0] == 535
    assert "alpha-pw" not in p.log() and "beta-pw" not in p.log()


def test_auth_limit_per_session(env):
    a, b, p, _, _ = setup(env)
    s = socket.create_connection((ALPHA, 465), timeout=10)
    s = ctx().wrap_socket(s)
    f = s.makefile("rb")
    assert _read_reply(f).startswith(b"220")
    s.sendall(b"EHLO c\r\n")
    _read_reply(f)
    bad = base64.b64encode(b"\0bob\0bad").decode()
    codes = []
    for _ in range(3):
        s.sendall(("AUTH PLAIN %s\r\n" % bad).encode())
        codes.append(_read_reply(f)[:3])
    assert codes == [b"535", b"535", b"421"], codes
    s.close()


def test_auth_refused_before_tls(env):
    a, b, p, _, _ = setup(env)
    with smtplib.SMTP(ALPHA, 587, timeout=20) as s:
        code, msg = s.ehlo("client.test")
        assert b"AUTH" not in msg and b"STARTTLS" in msg
        code, msg = s.docmd("AUTH", "PLAIN " + base64.b64encode(
            b"\0bob\0alpha-pw").decode())
        assert code == 538, (code, msg)
        code, msg = s.docmd("MAIL", "FROM:<bob@alpha.test>")
        assert code == 530 and msg.startswith(b"5.7.0"), (code, msg)


def test_plaintext_auth_when_allowed(env):
    a, b, p, _, _ = setup(env, alpha_extra="allow_plaintext_auth yes\n")
    with smtplib.SMTP(ALPHA, 587, timeout=20) as s:
        code, msg = s.ehlo("client.test")
        assert b"AUTH PLAIN LOGIN" in msg
        s.login("bob", "alpha-pw")


def test_submission_relay_to_sibling(env):
    a, b, p, _, _ = setup(env, alpha_extra="received_auth_user yes\n")
    with smtplib.SMTP_SSL(ALPHA, 465, timeout=20, context=ctx()) as s:
        s.login("bob", "alpha-pw")
        s.sendmail("bob@alpha.test", ["fred@beta.test"],
                   b"Subject: via submission\r\n\r\nhello\r\n")
    got = wait_files(b, "fred", 1)
    assert len(got) == 1, p.log()
    data = open(got[0], "rb").read()
    rec = re.findall(rb"(?m)^Received: .*(?:\n\t.*)*", data)
    assert len(rec) == 2, rec
    assert b"with ESMTPSA" in rec[1], rec[1]
    assert b"Authenticated sender: bob" in rec[1], rec[1]
    assert re.search(rb"using TLSv1\.3 with cipher", rec[1]), rec[1]
    assert files(a, "bob") == []


def test_swaks_starttls_auth(env):
    a, b, p, _, _ = setup(env)
    rc, out, err = vmtest.run(
        ["swaks", "--server", ALPHA, "--port", "587", "--tls",
         "--auth", "LOGIN", "--auth-user", "bob", "--auth-password",
         "alpha-pw", "--from", "bob@alpha.test", "--to", "fred@beta.test",
         "--helo", "client.test", "--body", "swaks over tls"], timeout=30)
    assert rc == 0, out + err
    got = wait_files(b, "fred", 1)
    assert len(got) == 1, p.log()
    assert b"swaks over tls" in open(got[0], "rb").read()


def test_sender_login_match(env):
    a, b, p, _, _ = setup(env)
    with smtplib.SMTP_SSL(ALPHA, 465, timeout=20, context=ctx()) as s:
        s.login("bob", "alpha-pw")
        code, msg = s.docmd("MAIL", "FROM:<bob@beta.test>")
        assert code == 553 and msg.startswith(b"5.7.1"), (code, msg)
        code, msg = s.docmd("MAIL", "FROM:<other@alpha.test>")
        assert code == 250, (code, msg)


def test_broken_handshakes_do_not_disturb_others(env):
    a, b, p, _, _ = setup(env)
    garbage = socket.create_connection((ALPHA, 465), timeout=10)
    garbage.sendall(b"EHLO this is not a ClientHello\r\n" * 20)
    stalled = socket.create_connection((ALPHA, 465), timeout=10)
    half = socket.create_connection((ALPHA, 25), timeout=10)
    hf = half.makefile("rb")
    _read_reply(hf)
    half.sendall(b"STARTTLS\r\n")
    assert _read_reply(hf).startswith(b"220")
    half.sendall(b"\x16\x03\x01\x00\x05abc")     # a torn record, then quiet
    # Everyone else is served meanwhile.
    for port in (465, 465):
        with smtplib.SMTP_SSL(ALPHA, port, timeout=10, context=ctx()) as s:
            assert s.noop()[0] == 250
    with smtplib.SMTP(ALPHA, 25, timeout=10) as s:
        s.starttls(context=ctx())
        assert s.ehlo("x")[0] == 250
    garbage.settimeout(5)
    try:
        assert garbage.recv(100) in (b"",) or True
    except OSError:
        pass
    env.wait_for_log(p, r"smtp tls handshake failed client=")
    for c in (garbage, stalled, half):
        c.close()


def test_check_reports_bad_certificates(env):
    a, b, p, vc, gc = setup(env, start=False)
    # Expired: valid for zero days.
    ce, ke = make_expired_cert(env, a, "mx.alpha.test")
    with open(a.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.alpha.test\nrun_as virtmail\n"
                "tls_cert %s\ntls_key %s\n" % (ce, ke))
    # Mismatched: beta's certificate with another key.
    cb, kb = make_cert(env, b, "mx.beta.test", ["mx.beta.test"], tag="one")
    cc, kc = make_cert(env, b, "mx.beta.test", ["mx.beta.test"], tag="two")
    with open(b.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.beta.test\nrun_as virtmail\n"
                "tls_cert %s\ntls_key %s\n" % (cb, kc))
    rc, out, err = env.run([env.bin("virtmail-smtpd"), "-t", "-f", vc,
                            "-C", gc])
    assert rc == 1, out + err
    assert re.search(r"expired\.crt.*certificate expired", err), err
    assert re.search(r"two\.key.*does not match the certificate "
                     r"/etc/ssl/one\.crt", err), err
    # A missing file, and a key readable by others.
    os.chmod(a.path(ke), 0o644)
    with open(a.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.alpha.test\nrun_as virtmail\n"
                "tls_cert /etc/ssl/none.crt\ntls_key %s\n" % ke)
    with open(b.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.beta.test\nrun_as virtmail\n"
                "tls_cert %s\ntls_key %s\n" % (cb, kb))
    os.chmod(b.path(kb), 0o640)
    rc, out, err = env.run([env.bin("virtmail-smtpd"), "-t", "-f", vc,
                            "-C", gc])
    assert rc == 1
    assert "none.crt: certificate: no such file" in err, err
    assert "readable by group or others" in err, err
