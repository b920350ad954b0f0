"""make run, as a user would: start it, wait for the demo message
(alice@alpha.test to bob@beta.test over submission, the remote path,
POP3), stop it with Ctrl-C (SIGINT to its process group), and check
that its network namespace and its temporary directory are gone.

The loopback mode (VIRTMAIL_DEMO_MODE=loopback, the fallback where no
namespace can be created) runs here inside the test namespace, so its
127.0.0.2 and 127.0.0.3 are private to the test; so does the automatic
fallback, with an ip(8) that refuses "netns add", against a port held
on all addresses."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import vmtest

LOOPBACK = ("127.0.0.2", "127.0.0.3")
PORTS = (25, 110, 465, 587, 995)


def start_make_run(env, out_path, mode=None, path=None):
    argv = ["make", "-s", "--no-print-directory", "-C", env.src, "run",
            "BUILD=" + env.build]
    # make run builds what changed: with the same flags as this build.
    with open(env.bin("virtmail"), "rb") as f:
        if b"__asan_init" in f.read():
            argv.append("SAN=1")
    penv = dict(os.environ)
    penv.pop("VIRTMAIL_DEMO_MODE", None)
    if mode is not None:
        penv["VIRTMAIL_DEMO_MODE"] = mode
    if path is not None:
        penv["PATH"] = path + ":" + penv.get("PATH", "/usr/bin:/bin")
    with open(out_path, "wb") as out:
        return subprocess.Popen(argv, env=penv,
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)


def reader(out_path):
    def text():
        with open(out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    return text


def check_message(t):
    assert "Subject: hello from alpha.test" in t, t
    assert re.search(r"by mx\.beta\.test \(virtmail\) with ESMTPS", t), t
    assert re.search(r"by mx\.alpha\.test \(virtmail\) with ESMTPSA", t), t


def test_make_run(env):
    out_path = env.path("make-run.out")
    p = start_make_run(env, out_path)
    text = reader(out_path)
    try:
        vmtest.wait_for_text(text, r"Ctrl-C stops the demo", timeout=40,
                             what="make run's output")
        t = text()
        check_message(t)
        ns = re.search(r"namespace (vmtest-\d+)", t).group(1)
        work = re.search(r"working in (\S+)", t).group(1)
        assert os.path.isdir(work)
        os.killpg(p.pid, signal.SIGINT)
        p.wait(30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    t = text()
    assert "demo: removed %s" % work in t, t
    assert not os.path.exists(work)
    deadline = time.monotonic() + 10
    while True:
        rc, listed, _ = vmtest.run(["ip", "netns", "list"])
        names = [l.split()[0] for l in listed.splitlines() if l.strip()]
        if ns not in names:
            break
        assert time.monotonic() < deadline, "%s still there" % ns
        time.sleep(0.2)


def bindable(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_make_run_loopback(env):
    out_path = env.path("make-run-loopback.out")
    p = start_make_run(env, out_path, "loopback")
    text = reader(out_path)
    pids = []
    try:
        vmtest.wait_for_text(text, r"Ctrl-C stops the demo", timeout=40,
                             what="make run's output")
        t = text()
        check_message(t)
        # beta saw the connection come from alpha's own address.
        assert re.search(r"from mx\.alpha\.test \([^)]*\[127\.0\.0\.2\]",
                         t), t
        assert "route beta.test [127.0.0.3]:25" in t, t
        assert "namespace" not in t.split("Try it yourself")[1], t
        assert "ip netns exec" not in t, t
        assert "\n  swaks --server 127.0.0.2 --to alice@alpha.test\n" in t, t
        assert "openssl s_client -quiet -connect 127.0.0.3:995" in t, t
        work = re.search(r"working in (\S+)", t).group(1)
        for prog in ("virtmail-smtpd", "virtmail-pop3d"):
            with open(os.path.join(work, "run", prog + ".pid")) as f:
                pids.append(int(f.read().split()[0]))
        for ip in LOOPBACK:
            for port in PORTS:
                assert not bindable(ip, port), (ip, port)
        os.killpg(p.pid, signal.SIGINT)
        p.wait(30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    t = text()
    assert "demo: removed %s" % work in t, t
    assert not os.path.exists(work)
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid), (pid, t)
    for ip in LOOPBACK:
        for port in PORTS:
            assert bindable(ip, port), (ip, port)


# An ip(8) that cannot create namespaces, as in a container without
# CAP_SYS_ADMIN; everything else goes to the real one.
FAKE_IP = """#!/bin/sh
if [ "$1" = netns ] && [ "$2" = add ]; then
	echo "mount --make-shared /run/netns failed: Operation not permitted" >&2
	exit 1
fi
exec %s "$@"
"""


def test_make_run_fallback_port_in_use(env):
    # No namespace: make run falls back to the loopback by itself.  A
    # host service on all addresses also holds 127.0.0.2:110: the demo
    # says so and stops, and the service keeps working.
    bindir = env.path("fake-bin")
    os.makedirs(bindir)
    real_ip = shutil.which("ip")
    assert real_ip is not None
    with open(os.path.join(bindir, "ip"), "w") as f:
        f.write(FAKE_IP % real_ip)
    os.chmod(os.path.join(bindir, "ip"), 0o755)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 110))
    srv.listen(5)
    try:
        out_path = env.path("make-run-busy.out")
        p = start_make_run(env, out_path, path=bindir)
        try:
            rc = p.wait(60)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        t = reader(out_path)()
        assert rc != 0, t
        assert "cannot create a network namespace (ip netns add" in t, t
        assert "falling back to 127.0.0.2 and 127.0.0.3" in t, t
        assert "cannot listen on 127.0.0.2:110 (pop3)" in t, t
        assert "cannot listen on 127.0.0.3:110 (pop3)" in t, t
        assert "0.0.0.0:110 listens on all addresses" in t, t
        assert "working in" not in t, t
        c = socket.create_connection(("127.0.0.2", 110), timeout=5)
        c.close()
    finally:
        srv.close()
