#!/usr/bin/python3
"""virtmail demo: two domains on two addresses, on an embedded default
configuration, inside the private network namespace that
tests/netns.py creates (make run).

alpha.test is served on 192.0.2.10 and 2001:db8::10, beta.test on
192.0.2.20; each has a user bob with his own uid and password.  The demo
sends one message to each bob, shows where it landed and who owns it,
shows that alpha's address refuses to relay to its sibling beta, then
keeps serving until Ctrl-C.
"""

import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import vmtest  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(SRC, "build"))

GLOBAL_CONF = """\
# virtmail.conf for the demo: the defaults, with short retry times.
retry_min 10s
retry_max 1m
"""


def say(text):
    print("demo: " + text, flush=True)


def wait_for_mail(maildir, timeout=15):
    new = os.path.join(maildir, "new")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = os.listdir(new)
        if names:
            return os.path.join(new, sorted(names)[-1])
        time.sleep(0.1)
    return None


def send(ip, rcpt, subject):
    with smtplib.SMTP(ip, 25, timeout=15) as s:
        s.ehlo("demo.example")
        msg = ("From: <demo@example.org>\r\nTo: <%s>\r\n"
               "Subject: %s\r\n\r\nHello from the virtmail demo.\r\n" %
               (rcpt, subject))
        return s.sendmail("demo@example.org", [rcpt], msg)


def main():
    try:
        vmtest.check_isolated()
    except vmtest.IsolationError as e:
        print("demo: refusing to run outside a private namespace: %s" % e,
              file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="virtmail-demo.")
    os.chmod(work, 0o755)
    dns = vmtest.Dns(work)
    smtpd = None
    try:
        dns.start()
        roots = os.path.join(work, "domains")
        alpha = vmtest.make_domain_root(roots, "alpha.test",
                                        ["192.0.2.10", "2001:db8::10"])
        beta = vmtest.make_domain_root(roots, "beta.test", ["192.0.2.20"])
        vc = vmtest.write_virtual_conf(os.path.join(work, "virtual.conf"), [
            ("192.0.2.10", alpha.root), ("2001:db8::10", alpha.root),
            ("192.0.2.20", beta.root)])
        gc = os.path.join(work, "virtmail.conf")
        with open(gc, "w") as f:
            f.write(GLOBAL_CONF)
        say("domain roots in %s" % roots)
        say("virtual.conf:\n" + open(vc).read())
        smtpd = subprocess.Popen([os.path.join(BUILD, "virtmail-smtpd"),
                                  "-d", "-f", vc, "-C", gc],
                                 start_new_session=True)
        for ip in ("192.0.2.10", "192.0.2.20"):
            vmtest.wait_for_port(ip, 25, timeout=15)

        for dom, ip in ((alpha, "192.0.2.10"), (beta, "192.0.2.20")):
            send(ip, "bob@%s" % dom.name, "hello %s" % dom.name)
            path = wait_for_mail(dom.maildir("bob"))
            if path is None:
                say("no delivery to bob@%s yet (see the log above)" %
                    dom.name)
                continue
            st = os.stat(path)
            say("bob@%s got %s (uid %d, mode %o)" % (
                dom.name, path, st.st_uid, st.st_mode & 0o777))
        try:
            send("192.0.2.10", "bob@beta.test", "sibling")
            say("unexpected: alpha relayed to beta")
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients["bob@beta.test"]
            say("alpha's address refuses its sibling: %d %s" %
                (code, text.decode()))

        ns = os.environ.get("VIRTMAIL_NETNS", "the demo namespace")
        say("serving; try from another terminal (as root):")
        say("  ip netns exec %s swaks --server 192.0.2.10 "
            "--to bob@alpha.test" % ns)
        say("Ctrl-C stops the demo and removes everything")
        while smtpd.poll() is None:
            time.sleep(0.5)
        say("virtmail-smtpd exited %d" % smtpd.returncode)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if smtpd is not None and smtpd.poll() is None:
            os.killpg(smtpd.pid, signal.SIGTERM)
            try:
                smtpd.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(smtpd.pid, signal.SIGKILL)
        dns.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
