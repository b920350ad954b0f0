#!/usr/bin/python3
"""virtmail demo (make run): two domains on two addresses, built with
the virtmail admin command, inside the private network namespace that
tests/netns.py creates.

alpha.test is served on 192.0.2.10 and 2001:db8::10, beta.test on
192.0.2.20.  The demo creates both with "virtmail domain add", a user in
each with "virtmail user add" (alice@alpha.test, bob@beta.test), a
self-signed certificate per domain, and starts virtmail-smtpd and
virtmail-pop3d.  alice then sends to bob through submission on port 465
(TLS, AUTH PLAIN); alpha's queue runner delivers to beta's MX over SMTP
from alpha's own address, the remote path between sibling domains; the
demo fetches the message over POP3 on 995 and prints it, then keeps
serving until Ctrl-C and removes everything.
"""

import os
import poplib
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import vmtest  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(SRC, "build"))
ALPHA, BETA = "192.0.2.10", "192.0.2.20"
PASSWORDS = {"alice": "alice-demo", "bob": "bob-demo"}

GLOBAL_CONF = """\
# virtmail.conf for the demo: the defaults, with short retry times.
retry_min 10s
retry_max 1m
"""


def say(text):
    print("demo: " + text, flush=True)


class Demo:
    def __init__(self, work):
        self.work = work
        self.vconf = os.path.join(work, "virtual.conf")
        self.gconf = os.path.join(work, "virtmail.conf")
        self.run_dir = os.path.join(work, "run")
        self.roots = os.path.join(work, "domains")
        self.procs = []

    def virtmail(self, *args, input=None, show=True):
        argv = [os.path.join(BUILD, "virtmail"), "-f", self.vconf, "-C",
                self.gconf, "-P", self.run_dir] + list(args)
        if show:
            say("$ virtmail " + " ".join(args))
        rc, out, err = vmtest.run(argv, input=input, timeout=60)
        for line in (out + err).splitlines():
            if show:
                print("      " + line, flush=True)
        if rc != 0:
            raise RuntimeError("virtmail %s failed (%s):\n%s%s" %
                               (" ".join(args), rc, out, err))
        return out

    def cert(self, name):
        root = os.path.join(self.roots, name)
        ssl_dir = os.path.join(root, "etc/ssl")
        os.makedirs(ssl_dir, exist_ok=True)
        host = "mx." + name
        rc, _, err = vmtest.run(
            ["openssl", "req", "-x509", "-nodes", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-keyout", os.path.join(ssl_dir, host + ".key"),
             "-out", os.path.join(ssl_dir, host + ".crt"),
             "-days", "2", "-subj", "/CN=" + host,
             "-addext", "subjectAltName=DNS:" + host])
        if rc != 0:
            raise RuntimeError("openssl req: " + err)
        os.chmod(os.path.join(ssl_dir, host + ".key"), 0o600)
        conf = os.path.join(root, "etc/virtmail.conf")
        with open(conf, "a") as f:
            f.write("tls_cert /etc/ssl/%s.crt\ntls_key /etc/ssl/%s.key\n"
                    "auth_delay 0\n" % (host, host))

    def start(self, prog):
        log = os.path.join(self.work, prog + ".log")
        with open(log, "wb") as f:
            p = subprocess.Popen(
                [os.path.join(BUILD, prog), "-d", "-f", self.vconf, "-C",
                 self.gconf, "-p",
                 os.path.join(self.run_dir, prog + ".pid")],
                stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                start_new_session=True)
        self.procs.append(p)
        return p, log

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def client_ctx():
    # The demo's certificates are self-signed: encrypt, don't verify.
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def fetch(ip, user, password, timeout=30):
    """Poll the mailbox over POP3S until a message is there; its text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = poplib.POP3_SSL(ip, 995, timeout=10, context=client_ctx())
        try:
            p.user(user)
            p.pass_(password)
            count, _ = p.stat()
            if count:
                _, lines, _ = p.retr(1)
                p.quit()
                return b"\n".join(lines).decode("utf-8", "replace")
            p.quit()
        finally:
            p.close()
        time.sleep(0.5)
    return None


def main():
    try:
        vmtest.check_isolated()
    except vmtest.IsolationError as e:
        print("demo: refusing to run outside a private namespace: %s" % e,
              file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="virtmail-demo.")
    os.chmod(work, 0o755)
    say("working in %s" % work)
    dns = vmtest.Dns(work)
    d = Demo(work)
    try:
        os.makedirs(d.run_dir)
        with open(d.gconf, "w") as f:
            f.write(GLOBAL_CONF)
        dns.start()
        for name, ips in (("alpha.test", [ALPHA, "2001:db8::10"]),
                          ("beta.test", [BETA])):
            d.virtmail("domain", "add", name, *ips, "--root",
                       os.path.join(d.roots, name), "--resolver",
                       "127.0.0.1")
            d.cert(name)
        for user, name in (("alice", "alpha.test"), ("bob", "beta.test")):
            d.virtmail("user", "add", name, user, "--password-stdin",
                       input=PASSWORDS[user] + "\n")
            d.virtmail("alias", "add", name, "postmaster", user)
        d.virtmail("check")
        say("virtual.conf:")
        print(open(d.vconf).read(), end="", flush=True)

        smtpd, slog = d.start("virtmail-smtpd")
        pop3d, plog = d.start("virtmail-pop3d")
        for ip in (ALPHA, BETA):
            vmtest.wait_for_port(ip, 465, timeout=15)
            vmtest.wait_for_port(ip, 995, timeout=15)
        say("virtmail-smtpd and virtmail-pop3d are serving; logs in %s "
            "and %s" % (slog, plog))

        say("alice@alpha.test sends to bob@beta.test: submission on "
            "%s:465 (TLS, AUTH PLAIN)" % ALPHA)
        with smtplib.SMTP_SSL(ALPHA, 465, timeout=20,
                              context=client_ctx()) as s:
            s.login("alice", PASSWORDS["alice"])
            s.sendmail("alice@alpha.test", ["bob@beta.test"],
                       "From: Alice <alice@alpha.test>\r\n"
                       "To: Bob <bob@beta.test>\r\n"
                       "Subject: hello from alpha.test\r\n\r\n"
                       "Hello Bob, this crossed from alpha.test to "
                       "beta.test over SMTP,\r\nfrom alpha's own address "
                       "to beta's MX.\r\n")
        say("alpha's queue runner delivers to mx.beta.test (%s); bob "
            "fetches over POP3S on %s:995" % (BETA, BETA))
        text = fetch(BETA, "bob", PASSWORDS["bob"])
        if text is None:
            say("no message for bob@beta.test after 30 s; see %s" % slog)
            return 1
        say("the demo message, as bob@beta.test got it:")
        print("-" * 72)
        print(text)
        print("-" * 72, flush=True)

        ns = os.environ.get("VIRTMAIL_NETNS", "NAMESPACE")
        vm = "%s -f %s -C %s -P %s" % (os.path.join(BUILD, "virtmail"),
                                       d.vconf, d.gconf, d.run_dir)
        print("""
Try it yourself, from another terminal, as root (namespace %(ns)s):

  ip netns exec %(ns)s swaks --server %(a)s --to alice@alpha.test
  ip netns exec %(ns)s swaks --server %(a)s --port 587 --tls \\
      --auth PLAIN --auth-user alice --auth-password %(pa)s \\
      --from alice@alpha.test --to bob@beta.test
  ip netns exec %(ns)s openssl s_client -quiet -connect %(b)s:995
      (then: USER bob / PASS %(pb)s / LIST / RETR 1 / QUIT)
  V="%(vm)s"
  $V domain list
  $V user add beta.test carol
  $V user list beta.test
  $V queue

Ctrl-C stops the demo and removes everything.
""" % {"ns": ns, "a": ALPHA, "b": BETA, "pa": PASSWORDS["alice"],
            "pb": PASSWORDS["bob"], "vm": vm}, flush=True)
        while smtpd.poll() is None and pop3d.poll() is None:
            time.sleep(0.5)
        say("a daemon exited; see %s and %s" % (slog, plog))
        return 1
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        d.stop()
        dns.stop()
        shutil.rmtree(work, ignore_errors=True)
        say("removed %s" % work)


if __name__ == "__main__":
    sys.exit(main())
