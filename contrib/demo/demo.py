#!/usr/bin/python3
"""virtmail demo (make run): two domains on two addresses, built with
the virtmail admin command.

By default the demo runs inside a private network namespace that it
creates through tests/netns.py: alpha.test is served on 192.0.2.10 and
2001:db8::10, beta.test on 192.0.2.20, and a dnsmasq on 127.0.0.1 in the
namespace answers for both.  Where no namespace can be created (no
privilege for "ip netns add", as in many containers) it falls back to
the host's loopback: alpha.test on 127.0.0.2, beta.test on 127.0.0.3
(127.0.0.0/8 never leaves the host), with no DNS: alpha routes mail for
beta.test to [127.0.0.3]:25.  The standard ports are used in both
modes; on the loopback the demo first checks that they are free on
those two addresses and otherwise says what holds them and stops,
leaving host services alone.  VIRTMAIL_DEMO_MODE=netns or loopback
forces a mode (auto is the default).

The demo creates both domains with "virtmail domain add", a user in
each with "virtmail user add" (alice@alpha.test, bob@beta.test), a
self-signed certificate per domain, and starts virtmail-smtpd and
virtmail-pop3d.  alice then sends to bob through submission on port 465
(TLS, AUTH PLAIN); alpha's queue runner delivers to beta's MX over SMTP
from alpha's own address, the remote path between sibling domains; the
demo fetches the message over POP3 on 995 and prints it, then keeps
serving until Ctrl-C and removes everything.
"""

import errno
import os
import poplib
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
sys.path.insert(0, os.path.join(SRC, "tests"))
import netns  # noqa: E402
import vmtest  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(SRC, "build"))
MODES = ("auto", "netns", "loopback")
# Per mode: alpha's addresses, beta's addresses.
ADDRS = {
    "netns": (["192.0.2.10", "2001:db8::10"], ["192.0.2.20"]),
    "loopback": (["127.0.0.2"], ["127.0.0.3"]),
}
# The daemons' default ports (virtmail.conf(5), virtmail-pop3d(8)).
PORTS = (("smtp", 25), ("submission", 587), ("smtps", 465), ("pop3", 110),
         ("pop3s", 995))
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


def proc_listeners(port):
    """The local addresses of listening TCP sockets on port, from
    /proc/net/tcp and tcp6 (hex, in host byte order per 32-bit word)."""
    found = []
    for path, fam in (("/proc/net/tcp", socket.AF_INET),
                      ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for l in lines:
            fields = l.split()
            if len(fields) < 4 or fields[3] != "0A":    # TCP_LISTEN
                continue
            addr, hport = fields[1].split(":")
            if int(hport, 16) != port:
                continue
            raw = b"".join(bytes.fromhex(addr[k:k + 8])[::-1]
                           for k in range(0, len(addr), 8))
            text = socket.inet_ntop(fam, raw)
            found.append(("[%s]" % text if fam == socket.AF_INET6
                          else text) + ":%d" % port)
    return found


def proc_owners(port):
    """Who listens on port, as ss(8) tells it; "" when it cannot."""
    try:
        rc, out, _ = vmtest.run(["ss", "-Hltnp", "sport = :%d" % port],
                                timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return " ".join(out.split()) if rc == 0 else ""


def check_ports(ips):
    """True when every demo port can be bound on every address in ips;
    otherwise say what is in the way.  Nothing is touched: the probe
    sockets are closed at once."""
    problems = []
    for ip in ips:
        for name, port in PORTS:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                # As the daemons do (common/listen.c): TIME_WAIT left by
                # an earlier run is no conflict, a listener is.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((ip, port))
            except OSError as e:
                problems.append((ip, name, port, e))
            finally:
                s.close()
    if not problems:
        return True
    for ip, name, port, e in problems:
        if e.errno == errno.EADDRNOTAVAIL:
            say("cannot listen on %s:%d (%s): %s is not an address of "
                "this host" % (ip, port, name, ip))
            continue
        if e.errno != errno.EADDRINUSE:
            say("cannot listen on %s:%d (%s): %s" % (ip, port, name,
                                                   e.strerror))
            continue
        held = proc_listeners(port)
        wild = [a for a in held
                if a.startswith("0.0.0.0:") or a.startswith("[::]:")]
        say("cannot listen on %s:%d (%s): the port is in use, held by "
            "%s" % (ip, port, name, ", ".join(held) or "another socket"))
        if wild:
            say("  %s listens on all addresses, so it also holds "
                "%s:%d (binding 127.0.0.1 only would leave it free)" %
                (wild[0], ip, port))
        owners = proc_owners(port)
        if owners:
            say("  ss: " + owners)
    say("the demo never stops or reconfigures services of the host: "
        "free these ports, or run make run where network namespaces "
        "can be created (then it uses its own addresses)")
    return False


def demo(mode):
    alpha_ips, beta_ips = ADDRS[mode]
    alpha, beta = alpha_ips[0], beta_ips[0]
    if mode == "netns":
        try:
            vmtest.check_isolated()
        except vmtest.IsolationError as e:
            print("demo: refusing to run outside a private namespace: %s"
                  % e, file=sys.stderr)
            return 2
    else:
        say("serving alpha.test on %s and beta.test on %s, on this "
            "host's loopback" % (alpha, beta))
        if not check_ports([alpha, beta]):
            return 1
    work = tempfile.mkdtemp(prefix="virtmail-demo.")
    os.chmod(work, 0o755)
    say("working in %s" % work)
    # On the loopback there is no private DNS: the route replaces it.
    dns = vmtest.Dns(work) if mode == "netns" else None
    d = Demo(work)
    try:
        os.makedirs(d.run_dir)
        with open(d.gconf, "w") as f:
            f.write(GLOBAL_CONF)
        if dns is not None:
            dns.start()
        for name, ips in (("alpha.test", alpha_ips),
                          ("beta.test", beta_ips)):
            d.virtmail("domain", "add", name, *ips, "--root",
                       os.path.join(d.roots, name), "--resolver",
                       "127.0.0.1")
            d.cert(name)
        if mode == "loopback":
            conf = os.path.join(d.roots, "alpha.test", "etc/virtmail.conf")
            say("no DNS on the loopback: alpha.test gets "
                "\"route beta.test [%s]:25\"" % beta)
            with open(conf, "a") as f:
                f.write("route beta.test [%s]:25\n" % beta)
        for user, name in (("alice", "alpha.test"), ("bob", "beta.test")):
            d.virtmail("user", "add", name, user, "--password-stdin",
                       input=PASSWORDS[user] + "\n")
            d.virtmail("alias", "add", name, "postmaster", user)
        d.virtmail("check")
        say("virtual.conf:")
        print(open(d.vconf).read(), end="", flush=True)

        smtpd, slog = d.start("virtmail-smtpd")
        pop3d, plog = d.start("virtmail-pop3d")
        for ip in (alpha, beta):
            vmtest.wait_for_port(ip, 465, timeout=15)
            vmtest.wait_for_port(ip, 995, timeout=15)
        say("virtmail-smtpd and virtmail-pop3d are serving; logs in %s "
            "and %s" % (slog, plog))

        say("alice@alpha.test sends to bob@beta.test: submission on "
            "%s:465 (TLS, AUTH PLAIN)" % alpha)
        with smtplib.SMTP_SSL(alpha, 465, timeout=20,
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
            "fetches over POP3S on %s:995" % (beta, beta))
        text = fetch(beta, "bob", PASSWORDS["bob"])
        if text is None:
            say("no message for bob@beta.test after 30 s; see %s" % slog)
            return 1
        say("the demo message, as bob@beta.test got it:")
        print("-" * 72)
        print(text)
        print("-" * 72, flush=True)

        if mode == "netns":
            ns = os.environ.get("VIRTMAIL_NETNS", "NAMESPACE")
            where = "as root (namespace %s)" % ns
            pre = "ip netns exec %s " % ns
        else:
            where = "on this host (loopback only)"
            pre = ""
        vm = "%s -f %s -C %s -P %s" % (os.path.join(BUILD, "virtmail"),
                                       d.vconf, d.gconf, d.run_dir)
        print("""
Try it yourself, from another terminal, %(where)s:

  %(pre)sswaks --server %(a)s --to alice@alpha.test
  %(pre)sswaks --server %(a)s --port 587 --tls \\
      --auth PLAIN --auth-user alice --auth-password %(pa)s \\
      --from alice@alpha.test --to bob@beta.test
  %(pre)sopenssl s_client -quiet -connect %(b)s:995
      (then: USER bob / PASS %(pb)s / LIST / RETR 1 / QUIT)
  V="%(vm)s"
  $V domain list
  $V user add beta.test carol
  $V user list beta.test
  $V queue

Ctrl-C stops the demo and removes everything.
""" % {"where": where, "pre": pre, "a": alpha, "b": beta,
            "pa": PASSWORDS["alice"], "pb": PASSWORDS["bob"], "vm": vm},
            flush=True)
        while smtpd.poll() is None and pop3d.poll() is None:
            time.sleep(0.5)
        say("a daemon exited; see %s and %s" % (slog, plog))
        return 1
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        d.stop()
        if dns is not None:
            dns.stop()
        shutil.rmtree(work, ignore_errors=True)
        say("removed %s" % work)


def main():
    mode = os.environ.get("VIRTMAIL_DEMO_MODE") or "auto"
    if mode not in MODES:
        print("demo: VIRTMAIL_DEMO_MODE must be one of %s, not %r" %
              (", ".join(MODES), mode), file=sys.stderr)
        return 64
    if os.geteuid() != 0:
        print("demo: needs root (domain roots, chroot, namespaces)",
              file=sys.stderr)
        return 77
    # SIGTERM stops the demo as Ctrl-C does, with the same cleanup.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if sys.argv[1:] == ["--in-netns"]:
        return demo("netns")
    if mode == "loopback":
        return demo("loopback")
    try:
        return netns.run_in_ns([os.path.abspath(__file__), "--in-netns"])
    except netns.NetnsError as e:
        if mode == "netns":
            print("demo: cannot create a network namespace: %s" % e,
                  file=sys.stderr)
            return 1
        say("cannot create a network namespace (%s); falling back to "
            "127.0.0.2 and 127.0.0.3 on this host's loopback" % e)
    except KeyboardInterrupt:
        return 130
    return demo("loopback")


if __name__ == "__main__":
    sys.exit(main())
