"""peers — private Postfix and Dovecot instances that make bench measures
beside virtmail on the same machine, under the same load.

Run by bench.py and bench_pop3.py as root, inside the namespace that
tests/netns.py creates.  Each instance lives in a directory of the
caller's temporary work directory (configuration, queue or state,
logs, the Maildir it delivers to or serves) and listens on one
192.0.2.x address of the namespace only.  The system's main.cf,
master.cf and dovecot.conf are not read, and nothing is written outside
the work directory.

The configurations keep each server's defaults wherever the benchmark
allows (fsync, process limits, Dovecot's one login process per
connection) and change only what isolation needs: addresses, paths,
no chroot, no DNS lookups.  Install the binaries with
`make bench-peers-deps`; without them the callers print "-".
"""

import fcntl
import grp
import os
import signal
import struct
import subprocess
import time

INSTALL_HINT = "make bench-peers-deps installs Postfix and Dovecot"

POSTCONF = "/usr/sbin/postconf"
POSTFIX = "/usr/sbin/postfix"
DOVECOT = "/usr/sbin/dovecot"


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _output(argv):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if p.returncode != 0:
        return None
    return p.stdout.decode("utf-8", "replace").strip()


def _run_on_pty(argv, timeout=120):
    """Run argv with a pseudo-terminal as its output: (rc, text)."""
    import pty
    import select
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave,
                             stderr=slave, start_new_session=True)
    finally:
        os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    b = os.read(master, 4096)
                except OSError:         # EIO: every writer has gone
                    break
                if not b:
                    break
                chunks.append(b)
            elif p.poll() is not None:
                break
    finally:
        os.close(master)
    try:
        rc = p.wait(max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _killpg(p.pid, signal.SIGKILL)
        rc = p.wait()
    return rc, b"".join(chunks).decode("utf-8", "replace")


def _mkdir(path, mode=0o755, uid=0, gid=0):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    os.chown(path, uid, gid)


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def make_maildir(path, uid, gid):
    """path/{cur,new,tmp}, owned by uid."""
    _mkdir(path, 0o700, uid, gid)
    for sub in ("cur", "new", "tmp"):
        _mkdir(os.path.join(path, sub), 0o700, uid, gid)


class Peer:
    """A server process started in its own process group."""

    name = "peer"

    def __init__(self, work):
        self.dir = work
        self.proc = None
        self.log_path = os.path.join(work, "%s.out" % self.name)

    def _spawn(self, argv):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log,
                                         start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def wait_ready(self, ip, port, timeout=30):
        import socket
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited (%s) before listening; %s" %
                                   (self.name, self.proc.poll(),
                                    self.log_tail()))
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(1)
            try:
                s.connect((ip, port))
                # A greeting means the service behind the port is up.
                if s.recv(100):
                    return
            except OSError:
                pass
            finally:
                s.close()
            time.sleep(0.1)
        raise RuntimeError("%s: nothing answers on %s:%d after %ds; %s" %
                           (self.name, ip, port, timeout, self.log_tail()))

    def log_tail(self, n=15):
        text = []
        for path in self.log_files():
            try:
                with open(path, "rb") as f:
                    lines = f.read().decode("utf-8", "replace").splitlines()
                text.append("%s:\n%s" % (os.path.basename(path),
                                         "\n".join(lines[-n:])))
            except OSError:
                pass
        return "\n".join(text) or "no log"

    def log_files(self):
        return [self.log_path]

    def stop(self):
        """SIGTERM the process group, SIGKILL what is left.  Safe to call
        twice, and when start() failed half-way."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        # Children that outlive the leader keep its process group.
        _killpg(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


class Postfix(Peer):
    """Postfix's master(8) in the foreground with its own configuration
    directory: smtpd(8) on ip:port, virtual(8) delivery of
    user@domain into a Maildir, queue and data directories here."""

    name = "postfix"

    @staticmethod
    def available():
        return all(os.access(p, os.X_OK) for p in (POSTCONF, POSTFIX)) \
            and Postfix.master() is not None

    @staticmethod
    def master():
        d = _output([POSTCONF, "-d", "-h", "daemon_directory"])
        if d and os.access(os.path.join(d, "master"), os.X_OK):
            return os.path.join(d, "master")
        return None

    @staticmethod
    def version():
        return _output([POSTCONF, "-d", "-h", "mail_version"]) or "?"

    def __init__(self, work, ip, port, domain, user, uid, gid):
        os.makedirs(work, exist_ok=True)
        os.chmod(work, 0o755)
        super().__init__(work)
        self.ip, self.port = ip, port
        self.conf = os.path.join(work, "etc")
        self.queue = os.path.join(work, "queue")
        self.data = os.path.join(work, "data")
        self.mailbase = os.path.join(work, "mail")
        self.maillog = os.path.join(work, "maillog")
        self.maildir = os.path.join(self.mailbase, user, "Maildir")
        self.domain, self.user, self.uid, self.gid = domain, user, uid, gid

    def log_files(self):
        return [self.log_path, self.maillog]

    def _configure(self):
        _mkdir(self.conf)
        _mkdir(self.queue)
        _mkdir(self.mailbase)
        _mkdir(os.path.join(self.mailbase, self.user), 0o700, self.uid,
               self.gid)
        make_maildir(self.maildir, self.uid, self.gid)
        _write(os.path.join(self.conf, "vmailbox"),
               "%s@%s %s/Maildir/\n" % (self.user, self.domain, self.user))
        # The domain is a virtual mailbox domain, so it must not be in
        # mydestination as well (Postfix refuses a domain in both).
        _write(os.path.join(self.conf, "main.cf"), """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
maillog_file = {maillog}
maillog_file_prefixes = {work}
inet_interfaces = {ip}
inet_protocols = ipv4
myhostname = mx.{domain}
mydomain = {domain}
myorigin = $mydomain
mydestination =
mynetworks = 127.0.0.0/8 192.0.2.0/24
relay_domains =
alias_maps =
alias_database =
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {mailbase}
virtual_mailbox_maps = texthash:{conf}/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
biff = no
""".format(queue=self.queue, data=self.data, maillog=self.maillog,
           work=self.dir,
           ip=self.ip, domain=self.domain, mailbase=self.mailbase,
           conf=self.conf, uid=self.uid, gid=self.gid))
        # Upstream's master.cf with no chroot (a chroot would need copies
        # of /etc files in the queue directory) and smtpd on our port.
        _write(os.path.join(self.conf, "master.cf"), """\
{port:<9} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
""".format(port=str(self.port)))

    def start(self):
        self._configure()
        # "postfix check" creates the queue and data directories with
        # the owners and modes Postfix wants (post-install
        # create-missing), then checks the configuration.
        # Postfix commands print their errors only to a terminal.
        rc, out = _run_on_pty([POSTFIX, "-c", self.conf, "check"])
        if rc != 0:
            raise RuntimeError("postfix check: %s" % out.strip())
        # -d: stay in the foreground, in the process group we made, so
        # that stop() reaches master and every child it forks.
        self._spawn([self.master(), "-d", "-c", self.conf])
        self.wait_ready(self.ip, self.port)

    def reset_maildir(self):
        # Set aside, not deleted: see bench.py's set_aside().
        set_aside(os.path.join(self.maildir, "new"), self.uid, self.gid)


def spread_subdirs(path):
    """Ask ext4 to place each directory made in path in a block group
    of its own choosing, as it does for top-level directories (the
    TOPDIR flag, chattr +T), instead of beside path.  The two servers'
    folders and the disk yardstick's then rarely share a group: on
    ext4 without a journal, each file creation scans the inodes its
    group freed in the last minutes (docs/performance.md), so one
    server's deletions (Postfix removes each queue file after
    delivery) or an earlier run's cleanup would slow the other's
    creations.  Does nothing on other file systems."""
    FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
    FS_TOPDIR_FL = 0x00020000
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = bytearray(struct.pack("l", 0))
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
        flags = struct.unpack("l", buf)[0] | FS_TOPDIR_FL
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("l", flags))
    except OSError:
        pass
    finally:
        os.close(fd)


def set_aside(new, uid, gid):
    """Give a Maildir an empty new/ without deleting anything before
    the benchmark ends.  On ext4 without a journal, every inode freed
    in the last 60 s or more is scanned by each later file creation in
    its group (docs/performance.md): deleting a run's thousands of
    files would slow down whichever server runs next, and say nothing
    about it.  The rename keeps them until the work directory goes."""
    n = 0
    while os.path.exists("%s.old%d" % (new, n)):
        n += 1
    os.rename(new, "%s.old%d" % (new, n))
    os.mkdir(new, 0o700)
    os.chown(new, uid, gid)


DOVECOT_CONF = """\
# Private instance for make bench: POP3 only, on one address.
base_dir = {base}
instance_name = {instance}
state_dir = {state}
log_path = {log}
protocols = pop3
listen = {ip}
ssl = no
disable_plaintext_auth = no
auth_verbose = no
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 100
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {ip}
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  # One login process per connection is Dovecot's default; allow
  # enough of them for the idle-connection measurement.
  process_limit = {login_limit}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


class Dovecot(Peer):
    """dovecot -F with its own configuration, base_dir and passwd-file:
    POP3 on ip:port for one user whose Maildir is here."""

    name = "dovecot"

    @staticmethod
    def available():
        return os.access(DOVECOT, os.X_OK) and \
            os.path.exists("/usr/lib/dovecot/pop3")

    @staticmethod
    def version():
        v = _output([DOVECOT, "--version"])
        return v.split()[0] if v else "?"

    def __init__(self, work, ip, port, user, password_hash, uid, gid,
                 login_limit=100):
        os.makedirs(work, exist_ok=True)
        os.chmod(work, 0o755)
        super().__init__(work)
        self.ip, self.port = ip, port
        self.user, self.hash, self.uid, self.gid = user, password_hash, \
            uid, gid
        self.home = os.path.join(work, "home", user)
        self.maildir = os.path.join(self.home, "Maildir")
        self.conf = os.path.join(work, "dovecot.conf")
        self.dlog = os.path.join(work, "dovecot.log")
        self.login_limit = max(100, login_limit)

    def log_files(self):
        return [self.log_path, self.dlog]

    def start(self):
        _mkdir(os.path.join(self.dir, "home"))
        _mkdir(self.home, 0o700, self.uid, self.gid)
        make_maildir(self.maildir, self.uid, self.gid)
        base = os.path.join(self.dir, "run")
        state = os.path.join(self.dir, "state")
        _mkdir(base)
        _mkdir(state)
        users = os.path.join(self.dir, "users")
        _write(users, "%s:{SHA512-CRYPT}%s:%d:%d::%s::\n" % (
            self.user, self.hash, self.uid, self.gid, self.home), 0o640)
        # The auth process runs as the internal user.
        os.chown(users, 0, grp.getgrnam("dovecot").gr_gid)
        _write(self.conf, DOVECOT_CONF.format(
            base=base, state=state, log=self.dlog, ip=self.ip,
            port=self.port, users=users, login_limit=self.login_limit,
            instance="virtmail-bench-%d" % os.getpid()))
        self._spawn([DOVECOT, "-F", "-c", self.conf])
        self.wait_ready(self.ip, self.port)
