"""virtmail-smtpd's master: -t, one worker per domain in its own root
and uid, the banner per local address, wildcard mode, SIGHUP, restart
of a crashed worker, SIGTERM, inetd mode.  Only the greeting is needed
from the session engine."""

import os
import re
import signal
import smtplib
import socket
import subprocess
import time

import vmtest

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4
NOWHERE = vmtest.NOWHERE_IP4


def _setup(env, beta=True, global_conf=""):
    a = env.make_domain_root("alpha.test", [ALPHA, vmtest.ALPHA_IP6])
    entries = [(ALPHA, a.root), (vmtest.ALPHA_IP6, a.root)]
    b = None
    if beta:
        b = env.make_domain_root("beta.test", [BETA])
        entries.append((BETA, b.root))
    vc = env.write_virtual_conf(entries)
    gc = env.path("virtmail.conf")
    with open(gc, "w") as f:
        f.write(global_conf)
    return a, b, vc, gc


def _argv(env, vc, gc, *extra):
    return [env.bin("virtmail-smtpd"), "-d", "-f", vc, "-C", gc] + \
        list(extra)


def _banner(ip, port=25):
    s = smtplib.SMTP(timeout=10)
    try:
        code, msg = s.connect(ip, port)
    finally:
        s.close()
    return code, msg.decode("utf-8", "replace")


def _start(env, vc, gc, ips=(ALPHA, BETA)):
    p = env.start_process(_argv(env, vc, gc), name="smtpd")
    for ip in ips:
        env.wait_for_port(ip, 25, proc=p)
    return p


def _worker_pid(env, p, domain, after=0):
    """The pid of the newest worker of domain, waiting for one whose
    pid differs from after."""
    rx = r"%s: worker started pid=(\d+)" % re.escape(domain)
    deadline = time.monotonic() + 15
    while True:
        pids = [int(x) for x in re.findall(rx, p.log())]
        if pids and pids[-1] != after:
            return pids[-1]
        if time.monotonic() > deadline:
            raise AssertionError("no new %s worker; log:\n%s" %
                                 (domain, p.log()))
        time.sleep(0.05)


def _uids(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line")


def _gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(") ")[-1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_check_ok(env):
    a, b, vc, gc = _setup(env)
    rc, out, err = env.run(_argv(env, vc, gc, "-t"))
    assert rc == 0, (rc, out, err)
    assert "domain alpha.test" in out and "domain beta.test" in out, out
    assert "192.0.2.10 2001:db8::10" in out, out
    assert "hostname mx.alpha.test" in out, out
    assert "hostname mx.beta.test" in out, out
    assert "local domains alpha.test" in out, out
    assert "run_as virtmail (uid 2000, gid 2000)" in out, out
    assert "run_as virtmail (uid 3000, gid 3000)" in out, out
    assert "configuration OK" in out, out


def test_check_missing_run_as(env):
    a, b, vc, gc = _setup(env)
    with open(b.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.beta.test\n")
    rc, out, err = env.run(_argv(env, vc, gc, "-t"))
    assert rc == 1, (rc, out, err)
    assert b.path("etc/virtmail.conf") + ": run_as not set" in err, err
    # The good domain is still shown.
    assert "domain alpha.test" in out and "domain beta.test" not in out


def test_check_bad_lines(env):
    a, b, vc, gc = _setup(env, global_conf="smtp_port 99999\n")
    with open(b.path("etc/virtmail.conf"), "a") as f:
        f.write("spf maybe\nrelay_from 10.0.0.0/33\n")
    rc, out, err = env.run(_argv(env, vc, gc, "-t"))
    assert rc == 1, (rc, out, err)
    assert gc + ":1: smtp_port: too large" in err, err
    with open(gc, "w") as f:
        f.write("")
    rc, out, err = env.run(_argv(env, vc, gc, "-t"))
    assert rc == 1, (rc, out, err)
    conf = b.path("etc/virtmail.conf")
    assert conf + ":3: spf: must be off, tag or reject" in err, err
    assert conf + ":4: relay_from: invalid network" in err, err


def test_check_unsafe_root(env):
    a, b, vc, gc = _setup(env)
    os.chmod(b.root, 0o777)
    rc, out, err = env.run(_argv(env, vc, gc, "-t"))
    assert rc == 1, (rc, out, err)
    assert "unsafe domain root" in err and b.root in err, err
    assert "domain alpha.test" in out


def test_banner_per_ip_and_privileges(env):
    a, b, vc, gc = _setup(env)
    # A third domain without run_as must not keep the others down.
    g = env.make_domain_root("gamma.test", ["192.0.2.30"])
    with open(g.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.gamma.test\n")
    with open(vc, "a") as f:
        f.write("%s\t%s\n" % (NOWHERE, g.root))
    p = _start(env, vc, gc)
    code, msg = _banner(ALPHA)
    assert code == 220 and msg.startswith("mx.alpha.test"), (code, msg)
    code, msg = _banner(BETA)
    assert code == 220 and msg.startswith("mx.beta.test"), (code, msg)
    code, msg = _banner(vmtest.ALPHA_IP6)
    assert code == 220 and msg.startswith("mx.alpha.test"), (code, msg)
    code, msg = _banner(BETA, 587)
    assert code == 220 and msg.startswith("mx.beta.test"), (code, msg)
    assert "run_as not set" in p.log(), p.log()
    for dom, d, uid in (("alpha.test", a, 2000), ("beta.test", b, 3000)):
        pid = _worker_pid(env, p, dom)
        assert _uids(pid) == [uid] * 4, (dom, _uids(pid))
        assert os.readlink("/proc/%d/root" % pid) == \
            os.path.realpath(d.root)
        # The worker holds no listener of the other domain.
        other = BETA if dom == "alpha.test" else ALPHA
        fds = os.listdir("/proc/%d/fd" % pid)
        inodes = set()
        for fd in fds:
            try:
                inodes.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
            except OSError:
                pass
        mine = _listen_inodes(other)
        assert not (mine & inodes), (dom, mine & inodes)


# CAP_CHOWN 0, CAP_KILL 5, CAP_SETGID 6, CAP_SETUID 7, CAP_SYS_CHROOT 18.
DELIVERER_CAPS = (1 << 0) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 18)


def _caps(pid):
    """{"CapEff": int, "CapPrm": ..., "CapBnd": ..., "CapInh": ...}."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Cap"):
                k, v = line.split(":")
                out[k] = int(v, 16)
    return out


def test_root_processes_keep_few_capabilities(env):
    """The processes that stay uid 0 keep only what their job needs: the
    deliverers (the runner's parent, the worker's child) stay outside
    the domain's root with what delivery needs: becoming a user inside
    the root (SETUID, SETGID, SYS_CHROOT for their children), a new mbox
    (CHOWN), stopping a child (KILL), no DAC_OVERRIDE; the AUTH service,
    outside any root too, nothing at all, not even in its bounding set.
    None can mknod, mount or ptrace.  (Processes inside the roots:
    test_isolation.py, test_isolation_delivery.py.)"""
    a, b, vc, gc = _setup(env, beta=False)
    p = _start(env, vc, gc, ips=(ALPHA,))
    worker = _worker_pid(env, p, "alpha.test")
    m = env.wait_for_log(p, r"alpha.test: runner started pid=(\d+)")

    def look():
        # The worker forks its AUTH service and deliverer before it
        # enters the root; each limits its capabilities first thing.
        return [(pid, _uids(pid)[1], os.readlink("/proc/%d/root" % pid),
                 _caps(pid)) for pid in [int(m.group(1))] +
                vmtest.child_pids(worker)]
    want = [(0, "/"), (DELIVERER_CAPS, "/"), (DELIVERER_CAPS, "/")]
    deadline = time.monotonic() + 10
    while True:
        procs = look()
        seen = sorted((c["CapEff"], root) for _, _, root, c in procs)
        if seen == want or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert seen == want, [(hex(c), r) for c, r in seen]
    for pid, euid, root, c in procs:
        assert euid == 0, pid
        assert c["CapInh"] == 0, (pid, c)
        assert c["CapEff"] == c["CapPrm"] == c["CapBnd"], \
            (pid, {k: hex(v) for k, v in c.items()})


def _listen_inodes(ip):
    """socket:[inode] names of the TCP listeners on ip (v4)."""
    out = set()
    want = "".join("%02X" % int(x) for x in reversed(ip.split(".")))
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[1].split(":")[0] == want and parts[3] == "0A":
                out.add("socket:[%s]" % parts[9])
    return out


def test_wildcard_mode(env):
    a, b, vc, gc = _setup(env, global_conf="listen_any yes\n")
    p = _start(env, vc, gc, ips=(ALPHA,))
    code, msg = _banner(ALPHA)
    assert code == 220 and msg.startswith("mx.alpha.test"), (code, msg)
    code, msg = _banner(BETA)
    assert code == 220 and msg.startswith("mx.beta.test"), (code, msg)
    code, msg = _banner(vmtest.ALPHA_IP6, 587)
    assert code == 220 and msg.startswith("mx.alpha.test"), (code, msg)
    data = env.tcp_exchange(NOWHERE, 25)
    assert data.startswith(b"421 4.3.0 "), data
    env.wait_for_log(p, r"no service for this address local=192\.0\.2\.30")


def test_sighup_adds_domain(env):
    a, b, vc, gc = _setup(env, beta=False)
    p = _start(env, vc, gc, ips=(ALPHA,))
    apid = _worker_pid(env, p, "alpha.test")
    s = smtplib.SMTP(timeout=10)
    code, msg = s.connect(ALPHA, 25)
    assert code == 220
    b = env.make_domain_root("beta.test", [BETA])
    with open(vc, "a") as f:
        f.write("%s\t%s\n" % (BETA, b.root))
    p.signal(signal.SIGHUP)
    env.wait_for_log(p, r"reload: done kept=1 added=1")
    env.wait_for_port(BETA, 25, proc=p)
    code, msg = _banner(BETA)
    assert code == 220 and msg.startswith("mx.beta.test"), (code, msg)
    # The alpha session opened before the reload still answers.
    code, msg = s.noop()
    assert code == 250, (code, msg)
    s.quit()
    assert _worker_pid(env, p, "alpha.test") == apid

    # A broken new configuration keeps the running one.
    with open(b.path("etc/virtmail.conf"), "w") as f:
        f.write("hostname mx.beta.test\n")
    bpid = _worker_pid(env, p, "beta.test")
    p.signal(signal.SIGHUP)
    env.wait_for_log(p, r"beta.test: bad configuration; keeping")
    code, msg = _banner(BETA)
    assert code == 220 and msg.startswith("mx.beta.test"), (code, msg)
    assert _worker_pid(env, p, "beta.test") == bpid

    # Removing beta stops its worker and frees its address.
    with open(vc, "w") as f:
        f.write("%s\t%s\n" % (ALPHA, a.root))
    p.signal(signal.SIGHUP)
    env.wait_for_log(p, r"removed=1")
    assert _gone(bpid), "beta worker still running"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            _banner(BETA)
        except OSError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("beta still listening after removal")


def test_worker_restart(env):
    a, b, vc, gc = _setup(env)
    p = _start(env, vc, gc)
    pid = _worker_pid(env, p, "alpha.test")
    os.kill(pid, signal.SIGKILL)
    env.wait_for_log(p, r"alpha.test: worker pid=%d killed by signal 9.*"
                     r"restart in 1s" % pid)
    new = _worker_pid(env, p, "alpha.test", after=pid)
    assert new != pid
    deadline = time.monotonic() + 10
    while True:
        try:
            code, msg = _banner(ALPHA)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert code == 220 and msg.startswith("mx.alpha.test"), (code, msg)
    # The other domain was not touched.
    assert "beta.test: worker pid" not in p.log()


def test_sigterm(env):
    a, b, vc, gc = _setup(env)
    p = _start(env, vc, gc)
    pids = [_worker_pid(env, p, "alpha.test"),
            _worker_pid(env, p, "beta.test")]
    p.signal(signal.SIGTERM)
    assert p.wait(15) == 0, p.log()
    for pid in pids:
        assert _gone(pid, 5), pid


def _inetd(env, vc, gc, ip):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, 0))
    ls.listen(1)
    c = socket.create_connection((ip, ls.getsockname()[1]), timeout=10)
    conn, _ = ls.accept()
    ls.close()
    proc = subprocess.Popen([env.bin("virtmail-smtpd"), "-i", "-f", vc,
                             "-C", gc], stdin=conn, stdout=conn,
                            stderr=subprocess.PIPE, start_new_session=True)
    conn.close()
    try:
        c.sendall(b"QUIT\r\n")
        data = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        rc = proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        c.close()
    return rc, data


def test_inetd(env):
    a, b, vc, gc = _setup(env)
    rc, data = _inetd(env, vc, gc, ALPHA)
    assert data.startswith(b"220 mx.alpha.test"), data
    assert rc == 0, (rc, data)
    rc, data = _inetd(env, vc, gc, NOWHERE)
    assert data.startswith(b"421 4.3.0 no service"), data
    assert rc != 0
