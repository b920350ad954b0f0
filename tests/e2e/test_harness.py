"""Checks of the end-to-end harness itself: the test zone that dnsmasq
serves, and the domain roots that vmtest builds."""

import os
import stat

import vmtest


def test_dns_zone(env):
    q = vmtest.dns_query
    assert q("alpha.test", "MX") == [(10, "mx.alpha.test")]
    assert q("beta.test", "MX") == [(10, "mx.beta.test")]
    assert q("mx.alpha.test", "A") == ["192.0.2.10"]
    assert q("mx.alpha.test", "AAAA") == ["2001:db8::10"]
    assert q("alpha.test", "A") == ["192.0.2.10"]
    assert q("mx.beta.test", "A") == ["192.0.2.20"]
    assert q("mx.beta.test", "AAAA") == ["2001:db8::20"]
    assert q("alpha.test", "TXT") == [
        "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all"]
    assert q("beta.test", "TXT") == ["v=spf1 ip4:192.0.2.20 -all"]
    assert q("nowhere.test", "A") == []


def test_dns_zone_extend(env):
    env.dns.zone["host"].append(("mx.gamma.test", ["192.0.2.30"]))
    env.dns.zone["mx"].append(("gamma.test", "mx.gamma.test", 5))
    env.dns.restart()
    assert vmtest.dns_query("gamma.test", "MX") == [(5, "mx.gamma.test")]
    assert vmtest.dns_query("mx.gamma.test", "A") == ["192.0.2.30"]


def test_dns_zone_reset(env):
    # The previous test's additions are gone.
    assert vmtest.dns_query("gamma.test", "MX") == []


def test_domain_root(env):
    d = env.make_domain_root("alpha.test", ["192.0.2.10"],
                             users={"bob": "pw1", "carol": "pw2"},
                             extra_files={"etc/motd": "hi\n"})
    st = os.stat(d.root)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755
    assert d.uids["virtmail"] == 2000 and d.uids["bob"] == 2001
    sh = os.stat(d.path("etc/shadow"))
    assert stat.S_IMODE(sh.st_mode) == 0o600
    with open(d.path("etc/shadow")) as f:
        assert "bob:$6$" in f.read()
    md = os.stat(d.maildir("carol") + "/new")
    assert md.st_uid == d.uids["carol"]
    sp = os.stat(d.path("var/spool/virtmail"))
    assert sp.st_uid == 2000 and stat.S_IMODE(sp.st_mode) == 0o700
    assert stat.S_IMODE(os.stat(d.path("tmp")).st_mode) == 0o1777
    assert stat.S_ISCHR(os.stat(d.path("dev/null")).st_mode)
    with open(d.path("etc/mailname")) as f:
        assert f.read() == "alpha.test\n"
    with open(d.path("etc/motd")) as f:
        assert f.read() == "hi\n"
    b = env.make_domain_root("beta.test", ["192.0.2.20"])
    assert b.uids["bob"] == 3001
