#!/usr/bin/python3
"""netns — the private network namespace that tests, the demo and the
benchmark run in.

A namespace "vmtest-<pid>" gets its loopback up with the documentation
addresses the domains use.  Nothing in it can reach the host's network:
outside it, 192.0.2.0/24 may leave the machine.  ns_teardown() kills
every process inside and deletes it.

As a command: netns.py SCRIPT [ARGS...] runs /usr/bin/python3 SCRIPT
inside a fresh namespace with the terminal attached, and always tears
the namespace down afterwards (also on Ctrl-C); run_in_ns() does the
same for a caller that wants to fall back when no namespace can be
created (NetnsError).
"""

import os
import signal
import subprocess
import sys
import time

PYTHON = "/usr/bin/python3"
NS_ADDRS = [
    ("inet", "192.0.2.10/32"),
    ("inet", "192.0.2.20/32"),
    ("inet", "192.0.2.30/32"),    # belongs to no domain
    ("inet6", "2001:db8::10/128"),
    ("inet6", "2001:db8::20/128"),
]


def ip(*args, check=True):
    p = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args),
                                          p.stderr.decode().strip()))
    return p.stdout.decode()


def ns_create(ns):
    """Create ns with lo up and the test addresses on it."""
    ip("netns", "add", ns)
    ip("-n", ns, "link", "set", "lo", "up")
    for fam, addr in NS_ADDRS:
        extra = ["nodad"] if fam == "inet6" else []
        ip("-n", ns, "-f", fam, "addr", "add", addr, "dev", "lo", *extra)


def ns_teardown(ns):
    """Kill everything in ns, then delete it.  Safe to call twice."""
    try:
        # "ip netns list" prints "name (id: N)"; match the name.
        names = [l.split()[0] for l in
                 ip("netns", "list", check=False).splitlines() if l.strip()]
        if ns not in names:
            return
        for _ in range(10):
            pids = [int(x) for x in
                    ip("netns", "pids", ns, check=False).split()
                    if x.isdigit()]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        ip("netns", "del", ns, check=False)
    except Exception as e:  # teardown must not hide the results
        print("# teardown of %s: %s" % (ns, e), file=sys.stderr)


class NetnsError(RuntimeError):
    """The namespace could not be created (no privilege, no ip(8))."""


def run_in_ns(args, env=None):
    """Run PYTHON ARGS in a fresh namespace with the terminal attached;
    its exit status.  The namespace is always torn down afterwards (also
    on Ctrl-C).  Raises NetnsError when it cannot be created."""
    ns = "vmtest-%d" % os.getpid()
    old = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        try:
            ns_create(ns)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            raise NetnsError(str(e))
        env = dict(env if env is not None else os.environ,
                   VIRTMAIL_NETNS=ns)
        p = subprocess.Popen(["ip", "netns", "exec", ns, PYTHON] +
                             list(args), env=env)
        try:
            return p.wait()
        except KeyboardInterrupt:
            # The script got the same Ctrl-C; give it time to clean up.
            try:
                return p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                return 130
    finally:
        ns_teardown(ns)
        signal.signal(signal.SIGTERM, old)


def main():
    if len(sys.argv) < 2:
        print("usage: netns.py SCRIPT [ARGS...]", file=sys.stderr)
        return 64
    if os.geteuid() != 0:
        print("netns.py: needs root (network namespaces)", file=sys.stderr)
        return 77
    try:
        return run_in_ns(sys.argv[1:])
    except NetnsError as e:
        print("netns.py: cannot create a network namespace: %s" % e,
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
