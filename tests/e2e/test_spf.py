"""SPF checks (RFC 7208) in virtmail-smtpd with libspf2: the
Received-SPF: and Authentication-Results: headers in tag mode, the
550 5.7.23 / 451 4.7.24 replies in reject mode, and the removal of a
forged Authentication-Results: that claims our authserv-id; the HELO
identity checked too with spf_helo yes (RFC 7208 §2.3).  Clients
connect from 192.0.2.20/.30 (libspf2 passes loopback clients)."""

import os
import smtplib
import time

import vmtest

ALPHA = vmtest.ALPHA_IP4
PASS_IP = "192.0.2.20"      # in beta.test's record
OTHER_IP = "192.0.2.30"     # in no record

ZONE_TXT = [
    ("soft.test", "v=spf1 ip4:192.0.2.99 ~all"),
    ("neutral.test", "v=spf1 ?all"),
    ("perm.test", "v=spf1 ip4:not-an-address -all"),
    ("inc.test", "v=spf1 include:beta.test -all"),
    ("arec.test", "v=spf1 a:mx.beta.test -all"),
    ("mxrec.test", "v=spf1 mx:beta.test -all"),
    ("six.test", "v=spf1 ip6:2001:db8::20 -all"),
    ("slow.test", "v=spf1 include:x.hang.example -all"),
    # HELO names (spf_helo yes): only 192.0.2.20 may use them.
    ("helo-ok.test", "v=spf1 ip4:192.0.2.20 -all"),
    ("helo-bad.test", "v=spf1 ip4:192.0.2.99 -all"),
]


def _setup(env, mode, extra=""):
    for t in ZONE_TXT:
        if t not in env.dns.zone["txt"]:
            env.dns.zone["txt"].append(t)
    env.dns.zone.setdefault("server", [])
    env.dns.restart()
    a = env.make_domain_root("alpha.test", [ALPHA, vmtest.ALPHA_IP6])
    with open(a.path("etc/virtmail.conf"), "a") as f:
        f.write("spf %s\n%s" % (mode, extra))
    with open(a.path("etc/resolv.conf"), "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    vc = env.write_virtual_conf([(ALPHA, a.root),
                                 (vmtest.ALPHA_IP6, a.root)])
    gc = env.path("virtmail.conf")
    open(gc, "w").close()
    p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vc,
                           "-C", gc], name="smtpd")
    env.wait_for_port(ALPHA, 25, proc=p)
    env.wait_for_log(p, "smtp worker ready")
    return a, p


def _send(src, sender, helo="client.example", dst=ALPHA, subject="t"):
    s = smtplib.SMTP(timeout=20, source_address=(src, 0),
                     local_hostname=helo)
    s.connect(dst, 25)
    s.ehlo(helo)
    code, msg = s.mail(sender)
    if code != 250:
        s.quit()
        return code, msg.decode()
    code, msg = s.rcpt("bob@alpha.test")
    assert code == 250, (code, msg)
    code, msg = s.data(("From: <%s>\r\nSubject: %s\r\n"
                        "Authentication-Results: mx.alpha.test; spf=pass "
                        "smtp.mailfrom=forged@example.org\r\n"
                        "Authentication-Results: other.example; "
                        "spf=pass\r\n\r\nbody %s\r\n" %
                        (sender, subject, subject)).encode())
    s.quit()
    return code, msg.decode()


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


def test_spf_tag_results(env):
    a, p = _setup(env, "tag")
    cases = [
        ("pass", PASS_IP, "u@beta.test", "pass"),
        ("fail", OTHER_IP, "u@beta.test", "fail"),
        ("soft", OTHER_IP, "u@soft.test", "softfail"),
        ("neutral", OTHER_IP, "u@neutral.test", "neutral"),
        ("none", OTHER_IP, "u@nospf.test", "none"),
        ("perm", OTHER_IP, "u@perm.test", "permerror"),
        ("include", PASS_IP, "u@inc.test", "pass"),
        ("arec", PASS_IP, "u@arec.test", "pass"),
        ("mxrec", PASS_IP, "u@mxrec.test", "pass"),
        ("helo", PASS_IP, "", "pass"),
    ]
    for tag, ip, sender, want in cases:
        helo = "beta.test" if sender == "" else "client.example"
        code, msg = _send(ip, sender, helo=helo, subject="spf-" + tag)
        assert code == 250, (tag, code, msg)
        m = _stored(a, "body spf-" + tag)
        assert "Received-SPF: %s" % want in m, (tag, m)
        assert "client-ip=%s" % ip in m, (tag, m)
        assert "Authentication-Results: mx.alpha.test;\n\tspf=%s" % want \
            in m, (tag, m)
        assert "smtp.mailfrom=forged" not in m, (tag, m)
        assert "Authentication-Results: other.example" in m, (tag, m)


def test_spf_ip6(env):
    a, p = _setup(env, "tag")
    s = smtplib.SMTP(timeout=20, source_address=(vmtest.BETA_IP6, 0))
    s.connect(vmtest.ALPHA_IP6, 25)
    s.ehlo("client.example")
    assert s.mail("u@six.test")[0] == 250
    assert s.rcpt("bob@alpha.test")[0] == 250
    assert s.data(b"Subject: six\r\n\r\nbody spf-six\r\n")[0] == 250
    s.quit()
    m = _stored(a, "body spf-six")
    assert "Received-SPF: pass" in m, m


def test_spf_reject(env):
    a, p = _setup(env, "reject")
    code, msg = _send(OTHER_IP, "u@beta.test", subject="rej")
    assert code == 550 and "5.7.23" in msg, (code, msg)
    code, msg = _send(PASS_IP, "u@beta.test", subject="ok")
    assert code == 250, (code, msg)
    code, msg = _send(OTHER_IP, "u@soft.test", subject="soft")
    assert code == 250, (code, msg)
    # spf_helo is off by default: a failing HELO name is not checked.
    code, msg = _send(PASS_IP, "u@beta.test", helo="helo-bad.test",
                      subject="helo-off")
    assert code == 250, (code, msg)
    assert "Received-SPF: fail" not in _stored(a, "body helo-off")


def test_spf_temperror(env):
    # x.hang.example goes to a server that never answers.
    import socket
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 5399))
    env.dns.zone["server"] = [("hang.example", "127.0.0.1#5399")]
    try:
        a, p = _setup(env, "reject")
        code, msg = _send(OTHER_IP, "u@slow.test", subject="slow")
        assert code == 451 and "4.7.24" in msg, (code, msg)
        # The worker kept serving meanwhile and still does.
        code, msg = _send(PASS_IP, "u@beta.test", subject="after")
        assert code == 250, (code, msg)
    finally:
        sink.close()


def _headers(m):
    """The header fields of m, unfolded."""
    head = m.split("\n\n", 1)[0]
    return head.replace("\n\t", " ").replace("\n ", " ").split("\n")


def test_spf_helo_always(env):
    # spf_helo yes: the HELO identity is checked for every message too.
    a, p = _setup(env, "tag", "spf_helo yes\n")
    code, msg = _send(PASS_IP, "u@beta.test", helo="helo-ok.test",
                      subject="helo-pass")
    assert code == 250, (code, msg)
    h = _headers(_stored(a, "body helo-pass"))
    spf = [x for x in h if x.startswith("Received-SPF:")]
    assert len(spf) == 2, h
    assert spf[0].startswith("Received-SPF: pass") and \
        "identity=mailfrom" in spf[0], spf
    assert spf[1].startswith("Received-SPF: pass") and \
        "identity=helo" in spf[1] and "helo=helo-ok.test" in spf[1], spf
    ar = [x for x in h if x.startswith("Authentication-Results: mx.")]
    assert ar == ["Authentication-Results: mx.alpha.test; "
                  "spf=pass smtp.mailfrom=u@beta.test; "
                  "spf=pass smtp.helo=helo-ok.test"], h
    code, msg = _send(PASS_IP, "u@beta.test", helo="helo-bad.test",
                      subject="helo-fail")
    assert code == 250, (code, msg)
    h = _headers(_stored(a, "body helo-fail"))
    spf = [x for x in h if x.startswith("Received-SPF:")]
    assert spf[0].startswith("Received-SPF: pass") and \
        spf[1].startswith("Received-SPF: fail") and \
        "identity=helo" in spf[1], spf
    assert "spf=fail smtp.helo=helo-bad.test" in "\n".join(h), h
    # A HELO name that is no domain is not checked (RFC 7208 §2.3).
    code, msg = _send(PASS_IP, "u@beta.test", helo="[192.0.2.20]",
                      subject="helo-literal")
    assert code == 250, (code, msg)
    h = _headers(_stored(a, "body helo-literal"))
    assert len([x for x in h if x.startswith("Received-SPF:")]) == 1, h


def test_spf_helo_reject(env):
    a, p = _setup(env, "reject", "spf_helo yes\n")
    code, msg = _send(PASS_IP, "u@beta.test", helo="helo-bad.test",
                      subject="hrej")
    assert code == 550 and "5.7.23" in msg, (code, msg)
    code, msg = _send(PASS_IP, "u@beta.test", helo="helo-ok.test",
                      subject="hok")
    assert code == 250, (code, msg)
