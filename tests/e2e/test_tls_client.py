"""Outgoing STARTTLS in the queue runner: a sibling delivery alpha ->
beta is encrypted (beta's Received: line names the version and cipher,
alpha's log the outcome); tls_policy encrypt defers against a peer
without STARTTLS; tls_policy verify delivers when the peer's
certificate chains to tls_ca_file and carries the MX name, and defers
when the name is wrong; tls_policy none sends in the clear."""

import re
import shutil

import vmtest
from test_remote import Sink, files, send, wait_files
from test_tls import make_cert

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4


def setup(env, alpha_extra="", beta_name="mx.beta.test"):
    a = env.make_domain_root(
        "alpha.test", [ALPHA], users={"bob": "pw"},
        extra_files={"etc/aliases": "postmaster: bob\n"})
    b = env.make_domain_root("beta.test", [BETA], users={"fred": "pw"})
    ca, ka = make_cert(env, a, "mx.alpha.test", ["mx.alpha.test"])
    cb, kb = make_cert(env, b, beta_name, [beta_name])
    # alpha trusts beta's (self-signed) certificate as its CA.
    shutil.copy(b.path("etc/ssl/main.crt"), a.path("etc/ssl/beta-ca.crt"))
    with open(a.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.alpha.test\nrun_as virtmail\n"
                "relay_from 192.0.2.0/24 127.0.0.0/8\n"
                "tls_cert %s\ntls_key %s\n%s" % (ca, ka, alpha_extra))
    with open(b.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.beta.test\nrun_as virtmail\n"
                "tls_cert %s\ntls_key %s\n" % (cb, kb))
    vc = env.write_virtual_conf([(ALPHA, a.root), (BETA, b.root)])
    gc = env.path("virtmail.conf")
    with open(gc, "w") as f:
        f.write("retry_min 1\nretry_max 2\n")
    p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vc,
                           "-C", gc], name="smtpd")
    for ip in (ALPHA, BETA):
        env.wait_for_port(ip, 25, proc=p)
    return a, b, p


def _received(path):
    data = open(path, "rb").read()
    return re.findall(rb"(?m)^Received: .*(?:\n\t.*)*", data)


def test_sibling_delivery_uses_starttls(env):
    a, b, p = setup(env)
    send(ALPHA, "bob@alpha.test", ["fred@beta.test"],
         b"Subject: tls\r\n\r\nover TLS\r\n", src=ALPHA)
    got = wait_files(b, "fred", 1)
    assert len(got) == 1, p.log()
    rec = _received(got[0])
    # beta's line, the first: alpha came over TLS.
    assert b"from mx.alpha.test" in rec[0], rec[0]
    assert re.search(rb"using TLSv1\.3 with cipher TLS_\w+", rec[0]), rec[0]
    env.wait_for_log(p, r"smtp relay=mx\.beta\.test\[192\.0\.2\.20\]:25 "
                     r"tls=TLSv1\.3/TLS_\w+ unverified")
    env.wait_for_log(p, r"delivery to=<fred@beta.test> .*status=sent")


def test_policy_none_sends_in_the_clear(env):
    a, b, p = setup(env, alpha_extra="tls_policy beta.test none\n")
    send(ALPHA, "bob@alpha.test", ["fred@beta.test"],
         b"Subject: clear\r\n\r\nno TLS\r\n", src=ALPHA)
    got = wait_files(b, "fred", 1)
    assert len(got) == 1, p.log()
    assert b"using TLS" not in _received(got[0])[0]
    env.wait_for_log(p, r"smtp relay=mx\.beta\.test\[\S+\]:25 tls=none")


def test_policy_encrypt_defers_without_starttls(env):
    sink = Sink()
    a, b, p = setup(env, alpha_extra="route sink.test [127.0.0.1]:%d\n"
                    "tls_policy sink.test encrypt\n" % sink.port)
    send(ALPHA, "bob@alpha.test", ["x@sink.test"],
         b"Subject: must encrypt\r\n\r\nx\r\n", src=ALPHA)
    env.wait_for_log(p, r"delivery to=<x@sink.test> .*status=deferred "
                     r".*dsn=4\.7\.4 .*TLS is required \(tls_policy\) but "
                     r"the server does not offer STARTTLS")
    assert sink.log == [], "sent in the clear"
    sink.close()


def test_policy_may_to_sink_without_starttls(env):
    sink = Sink()
    a, b, p = setup(env, alpha_extra="route sink.test [127.0.0.1]:%d\n"
                    % sink.port)
    send(ALPHA, "bob@alpha.test", ["x@sink.test"],
         b"Subject: may\r\n\r\nx\r\n", src=ALPHA)
    env.wait_for_log(p, r"delivery to=<x@sink.test> .*status=sent")
    env.wait_for_log(p, r"smtp relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+ "
                     r"tls=none")
    assert len(sink.log) == 1
    sink.close()


def test_policy_verify_right_ca_and_name(env):
    a, b, p = setup(env, alpha_extra="tls_ca_file /etc/ssl/beta-ca.crt\n"
                    "tls_policy beta.test verify\n")
    send(ALPHA, "bob@alpha.test", ["fred@beta.test"],
         b"Subject: verified\r\n\r\nx\r\n", src=ALPHA)
    got = wait_files(b, "fred", 1)
    assert len(got) == 1, p.log()
    env.wait_for_log(p, r"smtp relay=mx\.beta\.test\[\S+\]:25 "
                     r"tls=TLSv1\.3/TLS_\w+ verified")
    env.wait_for_log(p, r"delivery to=<fred@beta.test> .*status=sent")


def test_policy_verify_wrong_name_defers(env):
    a, b, p = setup(env, alpha_extra="tls_ca_file /etc/ssl/beta-ca.crt\n"
                    "tls_policy beta.test verify\n",
                    beta_name="other.beta.test")
    send(ALPHA, "bob@alpha.test", ["fred@beta.test"],
         b"Subject: wrong name\r\n\r\nx\r\n", src=ALPHA)
    env.wait_for_log(p, r"smtp relay=mx\.beta\.test\[\S+\]:25 failed: TLS "
                     r"handshake failed: .*[Hh]ostname mismatch")
    env.wait_for_log(p, r"delivery to=<fred@beta.test> .*status=deferred")
    assert files(b, "fred") == []
