"""vmtest — helpers for virtmail's end-to-end tests.

Everything here runs inside the private network namespace that
tests/run.py creates; inside.py calls check_isolated() before anything
sends a packet.  Standard library only.

What a test gets (an Env, see below):
  env.tmp                 a fresh directory, removed after the test
  env.build               the build directory (binaries)
  env.src                 the source tree
  env.dns                 the dnsmasq instance; env.dns.zone is editable,
                          then env.dns.restart()
  env.make_domain_root()  a domain root with passwd, shadow, maildirs ...
  env.write_virtual_conf()
  env.start_process()     tracked, killed at the end of the test
  env.run()               run to completion: (rc, stdout, stderr)
  env.wait_for_port(), env.wait_for_log(), env.tcp_exchange()
"""

import copy
import os
import re
import signal
import socket
import stat
import struct
import subprocess
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# Documentation addresses the namespace's loopback carries.
ALPHA_IP4 = "192.0.2.10"
BETA_IP4 = "192.0.2.20"
NOWHERE_IP4 = "192.0.2.30"      # on lo, but in no domain
ALPHA_IP6 = "2001:db8::10"
BETA_IP6 = "2001:db8::20"

# The test zone.  Tests may add to a copy (env.dns.zone) and restart.
#   mx:   (domain, exchange, preference)
#   host: (name, [addresses])           A and AAAA
#   txt:  (name, text)                 no commas: dnsmasq splits there
DEFAULT_ZONE = {
    "mx": [
        ("alpha.test", "mx.alpha.test", 10),
        ("beta.test", "mx.beta.test", 10),
    ],
    "host": [
        ("mx.alpha.test", [ALPHA_IP4, ALPHA_IP6]),
        ("alpha.test", [ALPHA_IP4]),
        ("mx.beta.test", [BETA_IP4, BETA_IP6]),
    ],
    "txt": [
        ("alpha.test",
         "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all"),
        ("beta.test", "v=spf1 ip4:192.0.2.20 -all"),
    ],
}

# Per-domain uid blocks: the run_as account "virtmail" gets the first uid
# of the block, users the following ones, so the same name has a
# different uid in each domain.
UID_BLOCKS = {"alpha.test": 2000, "beta.test": 3000, "gamma.test": 4000}
_next_block = [5000]

_hash_cache = {}


class IsolationError(Exception):
    pass


def check_isolated():
    """Raise IsolationError unless we are in a namespace with only lo and
    no default route: outside one, 192.0.2.0/24 may leave the machine."""
    try:
        ifaces = sorted(os.listdir("/sys/class/net"))
    except OSError as e:
        raise IsolationError("cannot read /sys/class/net: %s" % e)
    if ifaces != ["lo"]:
        raise IsolationError("interfaces other than lo: %s" %
                             ", ".join(ifaces))
    p = subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    if p.returncode != 0:
        raise IsolationError("ip -o link failed: %s" % p.stderr.decode())
    names = [l.split(":")[1].strip().split("@")[0]
             for l in p.stdout.decode().splitlines() if l.strip()]
    if names != ["lo"]:
        raise IsolationError("ip link shows: %s" % ", ".join(names))
    for fam in ("-4", "-6"):
        p = subprocess.run(["ip", fam, "route", "show", "table", "all"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10)
        if p.returncode != 0:
            raise IsolationError("ip %s route failed" % fam)
        for l in p.stdout.decode().splitlines():
            if l.startswith("default") or " dev " in l and \
                    " dev lo" not in l:
                raise IsolationError("route leaves loopback: %s" % l)


# --------------------------------------------------------------------
# Processes


class Proc:
    """A process started by a test; its stdout/stderr go to files."""

    def __init__(self, popen, name, out_path, err_path):
        self.popen = popen
        self.pid = popen.pid
        self.name = name
        self.out_path = out_path
        self.err_path = err_path

    def log(self):
        """Everything the process wrote to stderr so far."""
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def out(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def poll(self):
        return self.popen.poll()

    def wait(self, timeout=10):
        return self.popen.wait(timeout)

    def signal(self, sig):
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout=5):
        """SIGTERM the process group, SIGKILL it after timeout."""
        if self.popen.poll() is None:
            _killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        _killpg(self.pid, signal.SIGKILL)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run(argv, timeout=30, input=None, env=None, cwd=None):
    """Run argv to completion: (rc, stdout, stderr) as text.  A timeout
    kills it and gives rc None."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None
                         else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, cwd=cwd, start_new_session=True)
    if isinstance(input, str):
        input = input.encode()
    try:
        out, err = p.communicate(input, timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        _killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        rc = None
    except BaseException:
        # The test's own time limit (SIGALRM) or a stop: leave nothing.
        _killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def wait_for_port(ip, port, timeout=10, proc=None):
    """Wait until a TCP connection to ip:port succeeds."""
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("%s exited (%s) before listening on %s:%d;"
                                 " log:\n%s" % (proc.name, proc.poll(), ip,
                                                port, proc.log()))
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect((ip, port))
            return
        except OSError as e:
            last = e
        finally:
            s.close()
        time.sleep(0.05)
    raise AssertionError("nothing listens on %s:%d after %ss (%s)" %
                         (ip, port, timeout, last))


def _children():
    """{ppid: [pid, ...]} of every process, from /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    return children


def child_pids(pid):
    """The direct children of pid, from /proc."""
    return _children().get(pid, [])


def tree_pids(root):
    """root and all its descendants, from /proc."""
    children = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def proc_title(pid):
    """pid's title as ps shows it ("virtmail-smtpd: worker alpha.test"),
    "" when it is gone."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def proc_identity(pid):
    """What /proc says about pid's privilege: root (its root directory,
    as this process sees it), uids and gids (real, effective, saved,
    fs), cap_eff, cap_prm, cap_inh, cap_bnd (ints), no_new_privs (0/1),
    ppid and pid.  None when the process is gone."""
    try:
        root = os.readlink("/proc/%d/root" % pid)
        with open("/proc/%d/status" % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    st = dict(line.split(":", 1) for line in lines if ":" in line)
    return {
        "root": root,
        "uids": [int(x) for x in st["Uid"].split()],
        "gids": [int(x) for x in st["Gid"].split()],
        "groups": [int(x) for x in st["Groups"].split()],
        "cap_eff": int(st["CapEff"], 16),
        "cap_prm": int(st["CapPrm"], 16),
        "cap_inh": int(st["CapInh"], 16),
        "cap_bnd": int(st["CapBnd"], 16),
        "no_new_privs": int(st["NoNewPrivs"]),
        "ppid": int(st["PPid"]),
        "pid": pid,
    }


def group_pids(pgid):
    """The processes of process group pgid, from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == pgid:
                    out.append(int(name))
            except OSError:
                pass
    return out


def alive(pid):
    """Whether pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2:].split()[0] != "Z"


MEM_REGION_MAX = 256 << 20     # larger: a sanitizer's shadow, not data
MEM_CHUNK = 8 << 20


def memory_find(pid, needles):
    """The keys of needles ({name: bytes}) found in pid's readable
    memory (/proc/PID/maps and /proc/PID/mem, read in chunks that
    overlap by the longest needle).  Regions over MEM_REGION_MAX are
    skipped: reading a sanitizer's reserved shadow would fault in
    terabytes."""
    found = set()
    over = max(len(n) for n in needles.values()) - 1
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read().splitlines()
        mem = open("/proc/%d/mem" % pid, "rb", buffering=0)
    except OSError:
        return found
    with mem:
        for line in maps:
            f = line.split()
            if len(f) < 2 or f[1][0] != "r" or \
                    (len(f) > 5 and f[5] in ("[vvar]", "[vsyscall]")):
                continue
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            if hi - lo > MEM_REGION_MAX:
                continue
            tail = b""
            at = lo
            while at < hi:
                try:
                    mem.seek(at)
                    got = mem.read(min(MEM_CHUNK, hi - at))
                except (OSError, OverflowError, ValueError):
                    break
                if not got:
                    break
                at += len(got)          # a short read goes on from there
                data = tail + got
                found.update(k for k, n in needles.items() if n in data)
                tail = data[-over:] if over > 0 else b""
    return found


def pss_kib(pids):
    """The summed proportional set size of pids, KiB."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def wait_for_text(read, regex, timeout=10, what="log"):
    """Poll read() until regex matches; return the match."""
    deadline = time.monotonic() + timeout
    rx = re.compile(regex)
    text = ""
    while True:
        text = read()
        m = rx.search(text)
        if m:
            return m
        if time.monotonic() >= deadline:
            raise AssertionError("no /%s/ in %s after %ss; it has:\n%s" %
                                 (regex, what, timeout, text))
        time.sleep(0.05)


def tcp_exchange(ip, port, send=b"", timeout=10, shut=True):
    """Connect, send, half-close, read until EOF; return the bytes."""
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        if send:
            s.sendall(send)
        if shut:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()


def free_port(ip="127.0.0.1"):
    """A TCP port free on ip right now."""
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((ip, 0))
        return s.getsockname()[1]
    finally:
        s.close()


# --------------------------------------------------------------------
# DNS


class Dns:
    """dnsmasq on 127.0.0.1:53 serving self.zone (a copy of
    DEFAULT_ZONE that tests may change before restart())."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.zone = copy.deepcopy(DEFAULT_ZONE)
        self.proc = None
        self.log_path = os.path.join(workdir, "dnsmasq.log")
        self.pid_path = os.path.join(workdir, "dnsmasq.pid")

    def argv(self):
        a = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null",
             "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1",
             "--bind-interfaces", "--port=53", "--user=root",
             "--pid-file=" + self.pid_path, "--local=/test/",
             "--log-facility=" + self.log_path, "--log-queries"]
        for dom, mx, pref in self.zone["mx"]:
            a.append("--mx-host=%s,%s,%d" % (dom, mx, pref))
        for name, addrs in self.zone["host"]:
            a.append("--host-record=%s,%s" % (name, ",".join(addrs)))
        for name, text in self.zone["txt"]:
            a.append("--txt-record=%s,%s" % (name, text))
        # Optional: (domain, "ADDR#PORT") forwarded elsewhere.
        for dom, server in self.zone.get("server", []):
            a.append("--server=/%s/%s" % (dom, server))
        return a

    def start(self, timeout=10):
        err = open(os.path.join(self.workdir, "dnsmasq.err"), "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=err, stderr=err,
                                     start_new_session=True)
        err.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited %d: %s" % (
                    self.proc.returncode, open(os.path.join(
                        self.workdir, "dnsmasq.err")).read()))
            try:
                if dns_query("mx.alpha.test", "A", timeout=0.5) is not None:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("dnsmasq does not answer")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            _killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                _killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def reset(self):
        """Back to DEFAULT_ZONE (restarting only if it was changed)."""
        if self.zone != DEFAULT_ZONE or self.proc is None or \
                self.proc.poll() is not None:
            self.zone = copy.deepcopy(DEFAULT_ZONE)
            self.restart()


QTYPES = {"A": 1, "MX": 15, "TXT": 16, "AAAA": 28}


def dns_query(name, qtype, server="127.0.0.1", timeout=2):
    """Ask server for name/qtype over UDP.  Returns a list of answers
    (str for A/AAAA/TXT, (pref, host) for MX), [] for NXDOMAIN/empty,
    None when there is no reply."""
    qid = os.getpid() & 0xffff
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", QTYPES[qtype], 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, (server, 53))
        r, _ = s.recvfrom(4096)
    except socket.timeout:
        return None
    finally:
        s.close()
    rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", r[:12])
    if rid != qid:
        return None
    off = 12
    for _ in range(qd):
        off = _dns_skip_name(r, off) + 4
    out = []
    for _ in range(an):
        off = _dns_skip_name(r, off)
        t, _, _, rdlen = struct.unpack(">HHIH", r[off:off + 10])
        off += 10
        rd = r[off:off + rdlen]
        if t == 1:
            out.append(socket.inet_ntop(socket.AF_INET, rd))
        elif t == 28:
            out.append(socket.inet_ntop(socket.AF_INET6, rd))
        elif t == 15:
            out.append((struct.unpack(">H", rd[:2])[0],
                        _dns_read_name(r, off + 2)))
        elif t == 16:
            txt, i = b"", 0
            while i < len(rd):
                txt += rd[i + 1:i + 1 + rd[i]]
                i += 1 + rd[i]
            out.append(txt.decode())
        off += rdlen
    return out


def _dns_skip_name(msg, off):
    while True:
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xc0 == 0xc0:
            return off + 2
        off += 1 + n


def _dns_read_name(msg, off):
    labels = []
    for _ in range(128):
        n = msg[off]
        if n == 0:
            break
        if n & 0xc0 == 0xc0:
            off = ((n & 0x3f) << 8) | msg[off + 1]
            continue
        labels.append(msg[off + 1:off + 1 + n].decode())
        off += 1 + n
    return ".".join(labels)


# --------------------------------------------------------------------
# Domain roots


class Domain:
    """What make_domain_root built."""

    def __init__(self, name, root, ips, uids):
        self.name = name
        self.root = root          # == DIR in virtual.conf
        self.dir = root
        self.ips = list(ips)
        self.uids = uids          # account name -> uid (== gid)

    def path(self, rel):
        return os.path.join(self.root, rel.lstrip("/"))

    def maildir(self, user):
        return self.path("home/%s/Maildir" % user)

    def __repr__(self):
        return "Domain(%s at %s)" % (self.name, self.root)


def uid_base(name):
    if name not in UID_BLOCKS:
        UID_BLOCKS[name] = _next_block[0]
        _next_block[0] += 1000
    return UID_BLOCKS[name]


def hash_password(password):
    """sha512-crypt hash via openssl passwd -6 (cached per password)."""
    if password not in _hash_cache:
        rc, out, err = run(["openssl", "passwd", "-6", "-stdin"],
                           input=password + "\n")
        if rc != 0 or not out.startswith("$6$"):
            raise RuntimeError("openssl passwd failed: %s" % err)
        _hash_cache[password] = out.strip()
    return _hash_cache[password]


def _write(path, text, mode=0o644, uid=0, gid=0):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)
    os.chown(path, uid, gid)


def _mkdir(path, mode=0o755, uid=0, gid=0):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    os.chown(path, uid, gid)


def make_domain_root(base, name, ip_list, users=None, extra_files=None):
    """Build base/name as the root of domain name; returns a Domain.

    users: {name: password} (default {"bob": "password"}); uids come from
    the domain's own block (alpha.test 2000+, beta.test 3000+, ...):
    virtmail (run_as) = base, users base+1, base+2, ... in sorted order.
    extra_files: {relative path: str/bytes or (content, mode[, uid])}.
    """
    if users is None:
        users = {"bob": "password"}
    if extra_files is None:
        extra_files = {}
    root = os.path.join(base, name)
    _mkdir(base)
    _mkdir(root)
    ub = uid_base(name)
    uids = {"root": 0, "virtmail": ub}
    for i, u in enumerate(sorted(users)):
        uids[u] = ub + 1 + i

    for d in ("etc", "bin", "usr", "usr/bin", "usr/sbin", "home", "var",
              "var/spool", "var/spool/mail", "dev"):
        _mkdir(os.path.join(root, d))
    _mkdir(os.path.join(root, "tmp"), 0o1777)
    _mkdir(os.path.join(root, "var/spool/virtmail"), 0o700, ub, ub)

    pw = ["root:x:0:0:root:/root:/bin/sh",
          "virtmail:x:%d:%d:virtmail:/var/spool/virtmail:/bin/false" %
          (ub, ub)]
    sh = ["root:*:19000:0:99999:7:::", "virtmail:*:19000:0:99999:7:::"]
    gr = ["root:x:0:", "virtmail:x:%d:" % ub]
    for u in sorted(users):
        uid = uids[u]
        pw.append("%s:x:%d:%d:%s:/home/%s:/bin/sh" % (u, uid, uid, u, u))
        sh.append("%s:%s:19000:0:99999:7:::" % (u, hash_password(users[u])))
        gr.append("%s:x:%d:" % (u, uid))
        home = os.path.join(root, "home", u)
        _mkdir(home, 0o700, uid, uid)
        for sub in ("Maildir", "Maildir/new", "Maildir/cur", "Maildir/tmp"):
            _mkdir(os.path.join(home, sub), 0o700, uid, uid)
    etc = os.path.join(root, "etc")
    _write(os.path.join(etc, "passwd"), "\n".join(pw) + "\n")
    _write(os.path.join(etc, "shadow"), "\n".join(sh) + "\n", 0o600)
    _write(os.path.join(etc, "group"), "\n".join(gr) + "\n")
    _write(os.path.join(etc, "mailname"), name + "\n")
    _write(os.path.join(etc, "virtmail.conf"),
           "hostname mx.%s\nrun_as virtmail\n" % name)
    _write(os.path.join(etc, "aliases"), "postmaster: root\n")
    _write(os.path.join(etc, "resolv.conf"), "nameserver 127.0.0.1\n")
    hosts = ["127.0.0.1 localhost", "::1 localhost"]
    for ip in ip_list:
        hosts.append("%s mx.%s %s" % (ip, name, name))
    _write(os.path.join(etc, "hosts"), "\n".join(hosts) + "\n")
    null = os.path.join(root, "dev/null")
    if not os.path.exists(null):
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.chmod(null, 0o666)

    for rel, spec in extra_files.items():
        mode, uid = 0o644, 0
        if isinstance(spec, tuple):
            content, mode = spec[0], spec[1]
            if len(spec) > 2:
                uid = spec[2]
        else:
            content = spec
        _write(os.path.join(root, rel.lstrip("/")), content, mode, uid, uid)
    return Domain(name, root, ip_list, uids)


def write_virtual_conf(path, entries, ranges=True):
    """Write virtual.conf from [(ip, dir), ...] (tab-separated).  A DIR
    built by make_domain_root gets its uid block as "uids=BASE-BASE+999"
    unless ranges is False (plain legacy lines)."""
    lines = []
    for ip, d in entries:
        base = UID_BLOCKS.get(os.path.basename(d.rstrip("/")))
        if ranges and base is not None:
            lines.append("%s\t%s\tuids=%d-%d\n" % (ip, d, base, base + 999))
        else:
            lines.append("%s\t%s\n" % (ip, d))
    _write(path, "".join(lines))
    return path


# --------------------------------------------------------------------
# The per-test environment


class Env:
    def __init__(self, tmp, build, dns):
        self.tmp = tmp
        self.build = build
        self.src = SRC
        self.dns = dns
        self.procs = []

    def sanitized(self):
        """Whether the programs under test are a sanitizer build (which
        keeps stderr open in every process for its reports)."""
        with open(self.bin("virtmail-smtpd"), "rb") as f:
            return b"__asan_init" in f.read()

    def bin(self, name):
        """Path of a built program, e.g. env.bin("virtuald")."""
        return os.path.join(self.build, name)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def make_domain_root(self, name, ip_list, users=None, extra_files=None,
                         base=None):
        return make_domain_root(base or self.path("domains"), name, ip_list,
                                users, extra_files)

    def write_virtual_conf(self, entries, path=None, ranges=True):
        return write_virtual_conf(path or self.path("virtual.conf"), entries,
                                  ranges)

    def start_process(self, argv, name=None, env=None, cwd=None,
                      pass_fds=(), stdin=None):
        """Start argv in its own process group; stdout and stderr go to
        files (proc.out(), proc.log()).  Killed at the end of the test."""
        name = name or os.path.basename(argv[0])
        n = len(self.procs)
        out_path = self.path("%s.%d.out" % (name, n))
        err_path = self.path("%s.%d.err" % (name, n))
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            p = subprocess.Popen(argv, stdin=stdin if stdin is not None
                                 else subprocess.DEVNULL, stdout=out,
                                 stderr=err, env=env, cwd=cwd,
                                 pass_fds=pass_fds, start_new_session=True)
        proc = Proc(p, name, out_path, err_path)
        self.procs.append(proc)
        return proc

    def run(self, argv, timeout=30, input=None, env=None, cwd=None):
        return run(argv, timeout, input, env, cwd)

    def wait_for_port(self, ip, port, timeout=10, proc=None):
        wait_for_port(ip, port, timeout, proc)

    def wait_for_log(self, proc, regex, timeout=10):
        """Wait until proc's stderr (daemons run with -d) matches."""
        return wait_for_text(proc.log, regex, timeout, "%s's log" %
                             proc.name)

    def wait_for_file_text(self, path, regex, timeout=10):
        def read():
            try:
                with open(path, "rb") as f:
                    return f.read().decode("utf-8", "replace")
            except FileNotFoundError:
                return ""
        return wait_for_text(read, regex, timeout, path)

    def tcp_exchange(self, ip, port, send=b"", timeout=10):
        return tcp_exchange(ip, port, send, timeout)

    def free_port(self, ip="127.0.0.1"):
        return free_port(ip)

    def cleanup(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs = []
