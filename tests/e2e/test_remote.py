"""Remote delivery by the domain's queue runner: sibling domains over
SMTP (IPv4 and IPv6) from the domain's own address and HELO name, and a
scripted sink server for temporary and permanent failures, per-recipient
results, DSNs (parsed with the email package), null MX, A fallback, MX
preference, an unreachable MX, loops to our own address, no bounce to
<>, queue lifetime expiry, kill -9 of the runner during delivery, and
the control socket."""

import email
import email.policy
import os
import re
import signal
import socket
import smtplib
import threading
import time

import vmtest

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4


class Sink:
    """A tiny SMTP server.  rcpt(addr) and data() return reply lines;
    every transaction is recorded (peer, helo, mail, rcpts, data)."""

    def __init__(self, ip="127.0.0.1", port=0, rcpt=None, data=None,
                 banner="220 sink ESMTP"):
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.rcpt = rcpt or (lambda a: "250 2.1.5 ok")
        self.data = data or (lambda: "250 2.0.0 queued")
        self.banner = banner
        self.log = []
        self.conns = 0
        self.stopped = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopped:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self.session, args=(c, peer),
                             daemon=True).start()

    def session(self, c, peer):
        f = c.makefile("rb")
        t = {"peer": peer[0], "rcpts": [], "helo": None}
        c.settimeout(20)
        try:
            c.sendall((self.banner + "\r\n").encode())
            if not self.banner.startswith("220"):
                f.readline()
                return
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.decode().rstrip("\r\n")
                up = cmd.upper()
                if up.startswith("EHLO"):
                    t["helo"] = cmd[5:]
                    c.sendall(b"250-sink\r\n250-PIPELINING\r\n"
                              b"250-8BITMIME\r\n250 SIZE 1000000\r\n")
                elif up.startswith("MAIL FROM:"):
                    t["mail"] = cmd[10:]
                    c.sendall(b"250 2.1.0 ok\r\n")
                elif up.startswith("RCPT TO:"):
                    a = cmd[8:].split()[0].strip("<>")
                    r = self.rcpt(a)
                    if r.startswith("2"):
                        t["rcpts"].append(a)
                    c.sendall((r + "\r\n").encode())
                elif up == "DATA":
                    if not t["rcpts"]:
                        c.sendall(b"554 no valid recipients\r\n")
                        continue
                    c.sendall(b"354 go\r\n")
                    body = b""
                    while True:
                        ln = f.readline()
                        if ln in (b".\r\n", b""):
                            break
                        body += ln
                    t["data"] = body
                    r = self.data()
                    if r.startswith("2"):
                        t["at"] = time.monotonic()   # the 250 goes now
                        self.log.append(dict(t))
                    c.sendall((r + "\r\n").encode())
                    t = {"peer": peer[0], "rcpts": [], "helo": t["helo"]}
                elif up == "QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def setup(env, alpha_extra="", gconf_extra="", alpha_ips=(ALPHA,),
          beta_ips=(BETA,)):
    a = env.make_domain_root(
        "alpha.test", list(alpha_ips), users={"bob": "pw"},
        extra_files={"etc/virtmail.conf":
                     "hostname mx.alpha.test\nrun_as virtmail\n"
                     "relay_from 192.0.2.0/24 127.0.0.0/8 2001:db8::/32\n" +
                     alpha_extra,
                     "etc/aliases": "postmaster: bob\n"})
    b = env.make_domain_root("beta.test", list(beta_ips),
                             users={"fred": "pw"})
    entries = [(ip, a.root) for ip in alpha_ips] + \
        [(ip, b.root) for ip in beta_ips]
    vconf = env.write_virtual_conf(entries)
    gconf = env.path("virtmail.conf")
    with open(gconf, "w") as f:
        f.write("retry_min 1\nretry_max 2\n" + gconf_extra)
    p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vconf,
                           "-C", gconf], name="smtpd")
    for ip in list(alpha_ips) + list(beta_ips):
        env.wait_for_port(ip, 25, proc=p)
    return a, b, p


def send(ip, sender, rcpts, msg, src=None):
    with smtplib.SMTP(ip, 25, timeout=20,
                      source_address=(src, 0) if src else None) as s:
        s.ehlo("client.test")
        s.sendmail(sender, rcpts, msg)


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


def queue_ids(dom):
    try:
        return sorted(os.listdir(dom.path("var/spool/virtmail/env")))
    except FileNotFoundError:
        return []


def wait_empty(dom, timeout=15):
    deadline = time.monotonic() + timeout
    while queue_ids(dom) and time.monotonic() < deadline:
        time.sleep(0.05)
    return queue_ids(dom)


def dsn_of(path):
    msg = email.message_from_bytes(open(path, "rb").read(),
                                   policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    assert parts[2].get_content_type() == "text/rfc822-headers"
    blocks = parts[1].get_payload()     # [per-message, per-recipient...]
    return msg, blocks[0], blocks[1:], parts[2].get_payload()


def _sibling(env, aip, bip):
    a, b, p = setup(env, alpha_ips=(aip,), beta_ips=(BETA, vmtest.BETA_IP6))
    send(aip, "bob@alpha.test", ["fred@beta.test"],
         b"Subject: sibling\r\n\r\nhello beta\r\n.dot line\r\n", src=aip)
    got = wait_files(b, "fred", 1)
    assert len(got) == 1, p.log()
    data = open(got[0], "rb").read()
    assert b"\n..dot" not in data and b"\n.dot line\n" in data, data
    rec = re.findall(rb"(?m)^Received: .*(?:\n\t.*)*", data)
    assert len(rec) == 2, rec
    # beta's line (the first) names alpha's HELO and alpha's address.
    assert b"from mx.alpha.test" in rec[0], rec[0]
    assert ("[%s]" % aip).encode() in rec[0], rec[0]
    assert files(a, "bob") == [], "alpha kept a copy"
    env.wait_for_log(p, r"delivery to=<fred@beta.test> relay=mx.beta.test"
                     r"\[%s\]:25 status=sent delay=\d+s dsn=2\.0\.0" %
                     re.escape(bip))
    assert wait_empty(a) == []


def test_sibling_ipv4(env):
    _sibling(env, ALPHA, BETA)


def test_sibling_ipv6(env):
    _sibling(env, vmtest.ALPHA_IP6, vmtest.BETA_IP6)


def _route_setup(env, sink, extra="", gconf_extra=""):
    return setup(env, alpha_extra="route sink.test [127.0.0.1]:%d\n%s" %
                 (sink.port, extra), gconf_extra=gconf_extra)


def test_tempfail_then_success(env):
    n = [0]

    def rcpt(a):
        n[0] += 1
        return "451 4.3.0 later" if n[0] == 1 else "250 ok"
    sink = Sink(rcpt=rcpt)
    a, b, p = _route_setup(env, sink)
    send(ALPHA, "bob@alpha.test", ["x@sink.test"], b"Subject: t\r\n\r\nx\r\n")
    env.wait_for_log(p, r"delivery to=<x@sink.test> relay=127.0.0.1\[127.0.0.1\]:\d+"
                     r" status=deferred .*dsn=4\.3\.0 reason=\"451 4.3.0")
    env.wait_for_log(p, r"delivery to=<x@sink.test> .*status=sent")
    assert wait_empty(a) == []
    assert len(sink.log) == 1 and sink.log[0]["helo"] == "mx.alpha.test"
    assert sink.log[0]["peer"] == ALPHA, sink.log[0]
    assert files(a, "bob") == [], "no bounce expected"
    sink.close()


def test_permanent_failure_dsn(env):
    sink = Sink(rcpt=lambda a: "550 5.1.1 <%s>: no such user" % a)
    a, b, p = _route_setup(env, sink)
    send(ALPHA, "bob@alpha.test", ["nobody@sink.test"],
         b"Subject: doomed\r\nMessage-ID: <m1@client.test>\r\n\r\nx\r\n")
    got = wait_files(a, "bob", 1)
    assert len(got) == 1, p.log()
    msg, per_msg, per_rcpt, headers = dsn_of(got[0])
    assert msg["From"].endswith("<MAILER-DAEMON@alpha.test>"), msg["From"]
    assert msg["To"] == "<bob@alpha.test>"
    assert b"Return-Path: <>" in open(got[0], "rb").read()
    assert per_msg["Reporting-MTA"] == "dns; mx.alpha.test"
    assert per_msg["Arrival-Date"]
    assert len(per_rcpt) == 1
    r = per_rcpt[0]
    assert r["Final-Recipient"] == "rfc822; nobody@sink.test"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Remote-MTA"] == "dns; [127.0.0.1]"
    assert r["Diagnostic-Code"] == \
        "smtp; 550 5.1.1 <nobody@sink.test>: no such user", r.items()
    assert "Subject: doomed" in str(headers)
    assert "Message-ID: <m1@client.test>" in str(headers)
    assert wait_empty(a) == []
    sink.close()


def test_mixed_recipients(env):
    def rcpt(a):
        return {"ok": "250 ok", "temp": "452 4.2.2 full",
                "perm": "550 5.1.1 unknown"}[a.split("@")[0]]
    sink = Sink(rcpt=rcpt)
    a, b, p = _route_setup(env, sink)
    send(ALPHA, "bob@alpha.test", ["ok@sink.test", "temp@sink.test",
                                   "perm@sink.test"],
         b"Subject: mixed\r\n\r\nx\r\n")
    got = wait_files(a, "bob", 1)
    assert len(got) == 1, p.log()
    _, _, per_rcpt, _ = dsn_of(got[0])
    assert [r["Final-Recipient"] for r in per_rcpt] == \
        ["rfc822; perm@sink.test"]
    env.wait_for_log(p, r"to=<temp@sink.test> .*status=deferred")
    time.sleep(2.5)
    assert [t["rcpts"] for t in sink.log] == [["ok@sink.test"]], sink.log
    assert len(queue_ids(a)) == 1      # temp@ still pending
    assert len(files(a, "bob")) == 1   # one DSN only
    sink.close()


def test_null_sender_no_bounce(env):
    sink = Sink(rcpt=lambda a: "550 5.1.1 unknown")
    a, b, p = _route_setup(env, sink)
    send(ALPHA, "", ["x@sink.test"], b"Subject: from <>\r\n\r\nx\r\n")
    env.wait_for_log(p, r"dsn dropped: null sender")
    assert wait_empty(a) == []
    time.sleep(0.5)
    assert files(a, "bob") == []


def test_queue_lifetime_expiry(env):
    sink = Sink(rcpt=lambda a: "451 4.3.0 try later")
    a, b, p = _route_setup(env, sink, gconf_extra="queue_lifetime 3s\n")
    send(ALPHA, "bob@alpha.test", ["late@sink.test"],
         b"Subject: expiring\r\nMessage-ID: <e1@client.test>\r\n\r\nx\r\n")
    env.wait_for_log(p, r"to=<late@sink.test> .*status=deferred")
    got = wait_files(a, "bob", 1, timeout=15)
    assert len(got) == 1, p.log()
    env.wait_for_log(p, r"delivery to=<late@sink.test> mailbox=none "
                     r"status=bounced .*reason=\"queue lifetime expired\"")
    msg, per_msg, per_rcpt, headers = dsn_of(got[0])
    assert msg["From"].endswith("<MAILER-DAEMON@alpha.test>"), msg["From"]
    assert msg["To"] == "<bob@alpha.test>"
    assert len(per_rcpt) == 1
    r = per_rcpt[0]
    assert r["Final-Recipient"] == "rfc822; late@sink.test"
    assert r["Action"] == "failed", r.items()
    assert r["Status"] == "4.4.7", r.items()
    assert r["Remote-MTA"] == "dns; [127.0.0.1]", r.items()
    assert r["Diagnostic-Code"] == "smtp; 451 4.3.0 try later", r.items()
    assert "Subject: expiring" in str(headers)
    assert wait_empty(a) == []
    # Retried until it expired, never accepted.
    assert sink.conns >= 2 and sink.log == [], (sink.conns, sink.log)
    sink.close()


def _pid_gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1].startswith("Z")
    except FileNotFoundError:
        return True


def test_runner_kill_during_delivery(env):
    """kill -9 the run_as runner in the middle of a batch: after the
    master restarts it, every recipient has the message, the local one
    exactly once; a remote copy is sent twice only where the sink's 250
    may not have reached the runner before it died (RFC 1047)."""
    def rcpt(a):
        time.sleep(0.2)                 # keeps the batch in flight
        return "250 2.1.5 ok"
    sink = Sink(rcpt=rcpt)
    a, b, p = _route_setup(env, sink)
    rx = r"smtpd-runner\[(\d+)\]: domain=alpha.test runner started"
    env.wait_for_log(p, rx)
    pid = int(re.findall(rx, p.log())[-1])
    n = 30
    for k in range(n):
        rcpts = ["r%d@sink.test" % k]
        if k == n // 2:
            rcpts.append("bob@alpha.test")
        send(ALPHA, "bob@alpha.test", rcpts,
             b"Subject: batch %d\r\n\r\nx\r\n" % k)
    deadline = time.monotonic() + 15
    while len(sink.log) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    before = len(sink.log)
    assert 3 <= before < n, (before, p.log())
    os.kill(pid, signal.SIGKILL)
    while not _pid_gone(pid):
        time.sleep(0.005)
    killed = time.monotonic()
    env.wait_for_log(p, r"alpha.test: runner pid=\d+ exited .*restart in")
    env.wait_for_log(p, r"smtpd-runner\[(?!%d\])\d+\]: domain=alpha.test "
                     r"runner started" % pid)
    assert wait_empty(a, timeout=20) == [], p.log()

    sent = {}
    for t in sink.log:
        for r in t["rcpts"]:
            sent.setdefault(r, []).append(t["at"])
    lost = ["r%d@sink.test" % k for k in range(n)
            if "r%d@sink.test" % k not in sent]
    assert lost == [], (lost, p.log())
    dups = {r: at for r, at in sent.items() if len(at) > 1}
    # Only a 250 sent before the runner died can have gone unseen.
    bad = {r: at for r, at in dups.items() if min(at) > killed}
    assert bad == {}, (bad, killed)
    assert all(len(at) == 2 for at in dups.values()), dups
    print("# kill -9 after %d of %d accepted; remote duplicates: %d" %
          (before, n, len(dups)))
    local = files(a, "bob")
    assert len(local) == 1, local
    assert b"Subject: batch %d" % (n // 2) in open(local[0], "rb").read()
    sink.close()


def _dns_setup(env, mx, hosts):
    env.dns.zone["mx"] += mx
    env.dns.zone["host"] += hosts
    env.dns.restart()


def test_null_mx(env):
    _dns_setup(env, [("nomail.test", ".", 0)], [])
    a, b, p = setup(env)
    send(ALPHA, "bob@alpha.test", ["x@nomail.test"], b"Subject: n\r\n\r\nx\r\n")
    env.wait_for_log(p, r"to=<x@nomail.test> relay=none status=bounced "
                     r".*dsn=5\.1\.10")
    got = wait_files(a, "bob", 1)
    _, _, per_rcpt, _ = dsn_of(got[0])
    assert per_rcpt[0]["Status"] == "5.1.10"


def test_a_fallback_and_preference(env):
    s_a = Sink(ip="127.0.0.2", port=25)
    s_lo = Sink(ip="127.0.0.3", port=25)
    s_hi = Sink(ip="127.0.0.4", port=25)
    _dns_setup(env, [("pref.test", "mx-b.pref.test", 20),
                     ("pref.test", "mx-a.pref.test", 10)],
               [("noMX.test", ["127.0.0.2"]),
                ("mx-a.pref.test", ["127.0.0.3"]),
                ("mx-b.pref.test", ["127.0.0.4"])])
    a, b, p = setup(env)
    send(ALPHA, "bob@alpha.test", ["x@nomx.test"], b"Subject: a\r\n\r\nx\r\n")
    send(ALPHA, "bob@alpha.test", ["y@pref.test"], b"Subject: p\r\n\r\nx\r\n")
    assert wait_empty(a) == [], p.log()
    assert [t["rcpts"] for t in s_a.log] == [["x@nomx.test"]]
    assert [t["rcpts"] for t in s_lo.log] == [["y@pref.test"]]
    assert s_hi.conns == 0
    for s in (s_a, s_lo, s_hi):
        s.close()


def test_unreachable_then_second_mx(env):
    s2 = Sink(ip="127.0.0.6", port=25)
    _dns_setup(env, [("two.test", "mx1.two.test", 10),
                     ("two.test", "mx2.two.test", 20)],
               [("mx1.two.test", ["127.0.0.5"]),      # nothing listens
                ("mx2.two.test", ["127.0.0.6"])])
    a, b, p = setup(env)
    send(ALPHA, "bob@alpha.test", ["z@two.test"], b"Subject: u\r\n\r\nx\r\n")
    assert wait_empty(a) == [], p.log()
    env.wait_for_log(p, r"relay=mx1.two.test\[127.0.0.5\]:25 failed")
    env.wait_for_log(p, r"to=<z@two.test> relay=mx2.two.test\[127.0.0.6\]"
                     r":25 status=sent")
    assert [t["rcpts"] for t in s2.log] == [["z@two.test"]]
    s2.close()


def test_loop_to_own_address(env):
    _dns_setup(env, [("loop.test", "mx.alpha.test", 10)], [])
    a, b, p = setup(env)
    send(ALPHA, "bob@alpha.test", ["x@loop.test"], b"Subject: l\r\n\r\nx\r\n")
    env.wait_for_log(p, r"to=<x@loop.test> relay=none status=bounced .*"
                     r"dsn=5\.4\.6 reason=\"mail for loop.test loops back "
                     r"to myself\"")
    got = wait_files(a, "bob", 1)
    assert len(got) == 1
    assert b"Subject: l" not in open(got[0], "rb").read().split(
        b"text/rfc822-headers")[0]
    assert wait_empty(a) == []


def _ctl(dom, line):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(dom.path("var/spool/virtmail/control"))
    s.sendall(line.encode() + b"\n")
    r = s.makefile("rb").readline().decode()
    s.close()
    return r.rstrip("\n")


def test_control_socket(env):
    sink = Sink(rcpt=lambda a: "451 4.3.0 later")
    a, b, p = _route_setup(env, sink)
    env.wait_for_log(p, r"domain=alpha.test runner started")
    st = os.stat(a.path("var/spool/virtmail/control"))
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == a.uids["virtmail"]
    send(ALPHA, "bob@alpha.test", ["x@sink.test"], b"Subject: c1\r\n\r\nx\r\n")
    send(ALPHA, "bob@alpha.test", ["y@sink.test"], b"Subject: c2\r\n\r\nx\r\n")
    deadline = time.monotonic() + 10
    while len(queue_ids(a)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    ids = queue_ids(a)
    assert len(ids) == 2
    assert _ctl(a, "flush") == "ok"
    assert _ctl(a, "delete 0000000000000000") == "error no such message"
    assert _ctl(a, "frobnicate") == "error unknown command"
    assert _ctl(a, "delete %s" % ids[0]) == "ok"
    assert ids[0] not in queue_ids(a)
    assert _ctl(a, "bounce %s" % ids[1]) == "ok"
    assert queue_ids(a) == [] or wait_empty(a) == []
    got = wait_files(a, "bob", 1)
    assert len(got) == 1
    _, _, per_rcpt, _ = dsn_of(got[0])
    assert "bounced by administrator" in per_rcpt[0]["Diagnostic-Code"]
    sink.close()


def test_delay_warning_once_across_restarts(env):
    """delay_warning: one "delayed" DSN to the sender while the message
    waits, and no second one from a restarted daemon (the envelope
    remembers it)."""
    sink = Sink(rcpt=lambda a: "451 4.3.0 try later")
    a, b, p = _route_setup(env, sink, gconf_extra="delay_warning 1s\n")
    send(ALPHA, "bob@alpha.test", ["slow@sink.test"],
         b"Subject: slow\r\nMessage-ID: <d1@client.test>\r\n\r\nx\r\n")
    got = wait_files(a, "bob", 1, timeout=15)
    assert len(got) == 1, p.log()
    msg, per_msg, per_rcpt, headers = dsn_of(got[0])
    assert per_rcpt[0]["Action"] == "delayed", per_rcpt[0].items()
    assert per_rcpt[0]["Final-Recipient"] == "rfc822; slow@sink.test"
    env.wait_for_log(p, r"dsn delay to=<bob@alpha.test>")
    # A new daemon retries the same message several times.
    p.stop()
    p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f",
                           env.path("virtual.conf"), "-C",
                           env.path("virtmail.conf")], name="smtpd2")
    env.wait_for_port(ALPHA, 25, proc=p)
    before = sink.conns
    deadline = time.monotonic() + 15
    while sink.conns < before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sink.conns >= before + 2, (sink.conns, p.log())
    assert len(files(a, "bob")) == 1, p.log()
    assert "dsn delay" not in p.log(), p.log()
    sink.close()
