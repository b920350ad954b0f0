"""virtmail-smtpd's TLS keys and AUTH service, read from the outside.

Two domains with RSA certificates, STARTTLS (25, 587 with AUTH) and
implicit TLS (465) sessions open in each: every process of the
virtmail-smtpd tree is read through /proc/PID/maps and /proc/PID/mem,
and none that serves one domain (by its root directory or its process
title) holds the other domain's private key (the DER, and the private
exponent and primes in both byte orders); the master holds neither key;
the runner, the deliverers and the AUTH service hold none at all.  The
same scan finds each domain's key in its own worker, so it can fail.
Also: the AUTH service is uid 0 with no capability, no_new_privs, and
the host's / as its root; ps names every process's role and domain; a
broken key is reported at start and on reload with its file and reason;
a renewed certificate is served after SIGHUP; inetd mode forks its AUTH
service and deliverer before it loads its key."""

import os
import re
import signal
import smtplib
import socket
import subprocess
import time

import vmtest
from test_isolation import key_patterns, memory_holds, proc_root, status
from test_tls import ctx, make_cert, peer_cn

ALPHA = vmtest.ALPHA_IP4
BETA = vmtest.BETA_IP4
GLOBAL = "retry_min 60\nretry_max 120\ntimeout_command 300s\n"
ROLES = ("worker", "runner", "deliverer", "auth", "inetd")


def setup(env, global_extra="", start=True):
    """alpha.test and beta.test, each with an RSA certificate
    (etc/ssl/main.*) and AUTH; virtmail-smtpd started on both."""
    doms = []
    for name, ip, pw in (("alpha.test", ALPHA, "alpha-pw"),
                         ("beta.test", BETA, "beta-pw")):
        d = env.make_domain_root(name, [ip], users={"bob": pw})
        c, k = make_cert(env, d, "mx." + name, ["mx." + name], kind="rsa")
        with open(d.path("etc/virtmail.conf"), "w") as f:
            f.write("hostname mx.%s\nrun_as virtmail\ntls_cert %s\n"
                    "tls_key %s\nauth_delay 0\n" % (name, c, k))
        doms.append(d)
    vc = env.write_virtual_conf([(ALPHA, doms[0].root),
                                 (BETA, doms[1].root)])
    gc = env.path("virtmail.conf")
    with open(gc, "w") as f:
        f.write(GLOBAL + global_extra)
    p = None
    if start:
        p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vc,
                               "-C", gc], name="smtpd")
        for ip in (ALPHA, BETA):
            for port in (25, 587, 465):
                env.wait_for_port(ip, port, proc=p)
    return doms[0], doms[1], p, vc, gc


def title(pid):
    """The process title, as ps shows it."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def role_of(pid):
    """(role, domain name) from "virtmail-smtpd: ROLE DOMAIN"."""
    m = re.match(r"virtmail-smtpd: (\S+)(?: (\S+))?$", title(pid))
    return (m.group(1), m.group(2)) if m else (None, None)


def pids_by_role(root_pid):
    """{(role, domain): [pid, ...]} for the tree under root_pid."""
    out = {}
    for pid in vmtest.tree_pids(root_pid):
        out.setdefault(role_of(pid), []).append(pid)
    return out


def wait_roles(root_pid, want, timeout=20):
    """Wait until every (role, domain) in want has a process."""
    deadline = time.monotonic() + timeout
    while True:
        have = pids_by_role(root_pid)
        if all(w in have for w in want):
            return have
        if time.monotonic() > deadline:
            raise AssertionError("missing roles %s in %s" % (
                [w for w in want if w not in have],
                {p: title(p) for p in vmtest.tree_pids(root_pid)}))
        time.sleep(0.05)


def open_sessions(doms):
    """STARTTLS on 25, STARTTLS and AUTH on 587, implicit TLS on 465, a
    message delivered, for each domain; the sessions stay open."""
    keep = []
    for d, ip, pw in ((doms[0], ALPHA, "alpha-pw"),
                      (doms[1], BETA, "beta-pw")):
        s = smtplib.SMTP(ip, 25, timeout=20)
        s.starttls(context=ctx())
        s.sendmail("x@example.test", ["bob@" + d.name],
                   b"Subject: keys\r\n\r\nkeys\r\n")
        keep.append(s)
        s = smtplib.SMTP(ip, 587, timeout=20)
        s.starttls(context=ctx())
        s.login("bob", pw)
        keep.append(s)
        t = ctx().wrap_socket(socket.create_connection((ip, 465), 20))
        assert t.recv(512).startswith(b"220 mx." + d.name.encode())
        t.sendall(b"EHLO client.test\r\n")
        assert b"250" in t.recv(4096)
        keep.append(t)
    return keep


def close_all(keep):
    for k in keep:
        try:
            k.close()
        except Exception:
            pass


def serving(pid, doms):
    """The domain pid serves, by its root directory, else by the domain
    its title names; None when it shows neither."""
    root = proc_root(pid)
    for d in doms:
        if root == os.path.realpath(d.root):
            return d
    name = role_of(pid)[1]
    for d in doms:
        if name == d.name:
            return d
    return None


def scan_tree(master, doms, pats):
    """Check every process under master; returns {pid: set of domain
    names whose key it holds}."""
    held = {}
    for pid in vmtest.tree_pids(master):
        held[pid] = {d.name for d in doms
                     if memory_holds(pid, pats[d.name])}
    return held


def test_no_smtpd_process_holds_another_domains_key(env):
    a, b, p, vc, gc = setup(env)
    doms = [a, b]
    pats = {d.name: key_patterns(d) for d in doms}
    keep = open_sessions(doms)
    try:
        want = [(r, d.name) for r in ("worker", "runner", "deliverer",
                                      "auth") for d in doms]
        roles = wait_roles(p.pid, want)
        held = scan_tree(p.pid, doms, pats)
        bad = []
        for pid, names in held.items():
            role, dname = role_of(pid)
            if pid == p.pid:
                if names:
                    bad.append("master %d holds %s" % (pid, names))
                continue
            d = serving(pid, doms)
            if d is None and not vmtest.alive(pid):
                continue            # gone since the scan: it held nothing
            if d is None:
                bad.append("pid %d (%r) serves no domain" % (pid,
                                                             title(pid)))
                continue
            other = {x.name for x in doms} - {d.name}
            if names & other:
                bad.append("pid %d (%r) of %s holds %s" %
                           (pid, title(pid), d.name, names & other))
            # Forked before any key was loaded, or never given one.
            if role in ("runner", "deliverer", "auth") and names:
                bad.append("pid %d (%r) holds %s" % (pid, title(pid),
                                                     names))
        assert not bad, "\n".join(bad)
        # The scan can fail: each worker holds its own key.
        for d in doms:
            (w,) = roles[("worker", d.name)]
            assert held[w] == {d.name}, (d.name, held[w])
    finally:
        close_all(keep)


def test_wildcard_mode_keys(env):
    """listen_any: the master accepts for everyone and still holds no
    key; 465 works for both domains from their own workers."""
    a, b, p, vc, gc = setup(env, global_extra="listen_any yes\n")
    doms = [a, b]
    pats = {d.name: key_patterns(d) for d in doms}
    keep = open_sessions(doms)
    try:
        roles = wait_roles(p.pid, [("worker", d.name) for d in doms])
        held = scan_tree(p.pid, doms, pats)
        assert held[p.pid] == set(), held[p.pid]
        for d in doms:
            (w,) = roles[("worker", d.name)]
            assert held[w] == {d.name}, (d.name, held[w])
    finally:
        close_all(keep)


def test_auth_service_has_nothing(env):
    a, b, p, vc, gc = setup(env)
    keep = open_sessions([a, b])
    try:
        roles = wait_roles(p.pid, [("auth", "alpha.test"),
                                   ("auth", "beta.test")])
        for name in ("alpha.test", "beta.test"):
            (pid,) = roles[("auth", name)]
            st = status(pid)
            assert st["Uid"].split() == ["0"] * 4, st["Uid"]
            for k in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
                assert int(st[k], 16) == 0, (name, k, st[k])
            assert st["NoNewPrivs"] == "1", st["NoNewPrivs"]
            assert proc_root(pid) == "/", proc_root(pid)
            # Only stdio, its socket (3) and the syslog socket.
            fds = sorted(int(x) for x in os.listdir("/proc/%d/fd" % pid))
            assert fds[:4] == [0, 1, 2, 3] and len(fds) <= 5, fds
            for fd in fds[3:]:
                assert os.readlink("/proc/%d/fd/%d" % (pid, fd)).startswith(
                    "socket:"), fd
        # It still answers: a right and a wrong password, per domain.
        s = smtplib.SMTP(BETA, 587, timeout=20)
        s.starttls(context=ctx())
        try:
            s.login("bob", "alpha-pw")
            raise AssertionError("alpha's password worked in beta")
        except smtplib.SMTPAuthenticationError as e:
            assert e.smtp_code == 535, e
        s.quit()
        env.wait_for_log(p, r"smtp auth ok user=bob client=")
        env.wait_for_log(p, r"smtp auth failed user=bob client=")
    finally:
        close_all(keep)


def test_auth_reads_shadow_inside_the_root(env):
    """A domain whose etc/shadow is a symlink to the host's /etc/shadow
    reads its own etc/shadow in its root, not the host's."""
    a, b, p, vc, gc = setup(env, start=False)
    host = env.path("host-shadow")
    with open(a.path("etc/shadow")) as f:
        alpha_shadow = f.read()
    # The host file holds beta's hash for alpha's bob.
    with open(b.path("etc/shadow")) as f:
        with open(host, "w") as g:
            g.write(f.read())
    os.chmod(host, 0o600)
    os.rename(a.path("etc/shadow"), a.path("etc/shadow.real"))
    os.symlink(host, a.path("etc/shadow"))
    p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vc,
                           "-C", gc], name="smtpd")
    env.wait_for_port(ALPHA, 587, proc=p)
    s = smtplib.SMTP(ALPHA, 587, timeout=20)
    s.starttls(context=ctx())
    try:
        s.login("bob", "beta-pw")
        raise AssertionError("the host's file was read through a symlink")
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code == 535, e
    s.quit()
    assert "bob" in alpha_shadow


def test_ps_names_roles(env):
    a, b, p, vc, gc = setup(env)
    keep = open_sessions([a, b])
    try:
        want = [(r, d) for r in ("worker", "runner", "deliverer", "auth")
                for d in ("alpha.test", "beta.test")]
        roles = wait_roles(p.pid, want)
        r = subprocess.run(["ps", "-o", "pid=,args=", "-p",
                            ",".join(str(x) for x in
                                     vmtest.tree_pids(p.pid))],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        shown = {int(l.split(None, 1)[0]): l.split(None, 1)[1].strip()
                 for l in r.stdout.splitlines() if l.strip()}
        assert shown[p.pid] == "virtmail-smtpd: master", shown[p.pid]
        for role, name in want:
            for pid in roles[(role, name)]:
                assert shown[pid] == "virtmail-smtpd: %s %s" % (role,
                                                                 name), \
                    shown[pid]
        # Workers: their domain's run_as, no capability, no_new_privs.
        for name in ("alpha.test", "beta.test"):
            (w,) = roles[("worker", name)]
            st = status(w)
            assert "0" not in st["Uid"].split(), st["Uid"]
            assert int(st["CapEff"], 16) == 0 == int(st["CapPrm"], 16)
            assert st["NoNewPrivs"] == "1", (name, st["NoNewPrivs"])
        # The worker's deliverer and the runner's (with its delivery
        # agents, which keep the name), and one worker per domain.
        for name in ("alpha.test", "beta.test"):
            assert len(roles[("deliverer", name)]) >= 2, roles
            assert len(roles[("worker", name)]) == 1, roles
    finally:
        close_all(keep)


def _replace_key(env, dom, cert=True):
    """Give dom a new key (and, with cert, a matching new certificate)
    in place of etc/ssl/main.*, as new files renamed over the old."""
    tmp = env.path("renew-" + dom.name)
    os.makedirs(tmp, exist_ok=True)
    key, crt = os.path.join(tmp, "k"), os.path.join(tmp, "c")
    rc, out, err = vmtest.run(
        ["openssl", "req", "-x509", "-nodes", "-newkey", "rsa:2048",
         "-keyout", key, "-out", crt, "-days", "30", "-subj",
         "/O=renewed/CN=mx." + dom.name])
    assert rc == 0, err
    os.chmod(key, 0o600)
    os.rename(key, dom.path("etc/ssl/main.key"))
    if cert:
        os.rename(crt, dom.path("etc/ssl/main.crt"))


def test_broken_key_reported_at_start_and_reload(env):
    a, b, p, vc, gc = setup(env, start=False)
    # At start: beta's key no longer matches its certificate.
    _replace_key(env, b, cert=False)
    r = subprocess.run([env.bin("virtmail-smtpd"), "-t", "-f", vc,
                        "-C", gc], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"/etc/ssl/main\.key: private key does not match "
                     r"the certificate", r.stderr), r.stderr
    assert "tls certificate /O=alpha.test/CN=mx.alpha.test" in r.stdout, \
        r.stdout
    p = env.start_process([env.bin("virtmail-smtpd"), "-d", "-f", vc,
                           "-C", gc], name="smtpd")
    env.wait_for_port(ALPHA, 465, proc=p)
    env.wait_for_log(p, r"/etc/ssl/main\.key: private key does not match "
                     r"the certificate")
    env.wait_for_log(p, r"starting: 1 domain,")
    # Renewed: a reload starts beta, which serves the new certificate.
    _replace_key(env, b)
    p.signal(signal.SIGHUP)
    env.wait_for_log(p, r"reload: done kept=1 added=1")
    env.wait_for_port(BETA, 465, proc=p)
    t = ctx().wrap_socket(socket.create_connection((BETA, 465), 20))
    assert "O = renewed" in peer_cn(t), peer_cn(t)
    t.close()
    # Broken on reload: reported, and the running beta kept.
    old = wait_roles(p.pid, [("worker", "beta.test")])[("worker",
                                                         "beta.test")]
    with open(b.path("etc/ssl/main.key"), "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n"
                "-----END PRIVATE KEY-----\n")
    p.signal(signal.SIGHUP)
    env.wait_for_log(p, r"main\.key: not a PEM private key")
    env.wait_for_log(p, r"reload: beta.test: bad configuration; keeping "
                     r"the running one")
    assert wait_roles(p.pid, [("worker", "beta.test")])[
        ("worker", "beta.test")] == old


def test_renewed_certificate_replaces_worker(env):
    a, b, p, vc, gc = setup(env)
    t = ctx().wrap_socket(socket.create_connection((ALPHA, 465), 20))
    assert "O = alpha.test" in peer_cn(t)
    t.close()
    _replace_key(env, a)
    p.signal(signal.SIGHUP)
    env.wait_for_log(p, r"reload: done kept=1 added=0 replaced=1")
    deadline = time.monotonic() + 20
    while True:
        try:
            t = ctx().wrap_socket(socket.create_connection((ALPHA, 465),
                                                           20))
            cn = peer_cn(t)
            t.close()
            if "O = renewed" in cn:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "old certificate still served"
        time.sleep(0.05)


def test_inetd_children_hold_no_key(env):
    """-i: the AUTH service and the deliverer are forked before the
    session's process loads its key; that process holds its own."""
    a, b, p, vc, gc = setup(env, start=False)
    pats = {d.name: key_patterns(d) for d in (a, b)}
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ALPHA, 0))
    ls.listen(1)
    c = socket.create_connection((ALPHA, ls.getsockname()[1]), timeout=20)
    conn, _ = ls.accept()
    ls.close()
    proc = subprocess.Popen([env.bin("virtmail-smtpd"), "-i", "-f", vc,
                             "-C", gc], stdin=conn, stdout=conn,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True)
    conn.close()
    try:
        f = c.makefile("rb")
        assert f.readline().startswith(b"220 mx.alpha.test")
        c.sendall(b"EHLO client.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        c.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220")
        t = ctx().wrap_socket(c)
        t.sendall(b"EHLO client.test\r\n")
        assert b"250" in t.recv(4096)
        roles = wait_roles(proc.pid, [("inetd", "alpha.test"),
                                      ("auth", "alpha.test"),
                                      ("deliverer", "alpha.test")])
        held = scan_tree(proc.pid, [a, b], pats)
        # The process inetd started stays as the log relay: no key.
        (inetd,) = roles[("inetd", "alpha.test")]
        assert held[inetd] == {"alpha.test"}, held
        assert held[proc.pid] == set(), held
        for role in ("auth", "deliverer"):
            (pid,) = roles[(role, "alpha.test")]
            assert held[pid] == set(), (role, held[pid])
        (auth,) = roles[("auth", "alpha.test")]
        assert proc_root(auth) == "/"
        assert int(status(auth)["CapEff"], 16) == 0
        t.sendall(b"QUIT\r\n")
        t.recv(512)
        t.close()
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        c.close()
