#!/usr/bin/python3
"""make bench: throughput and memory of virtmail-smtpd, in the private
namespace that tests/netns.py creates.

For 1 KiB and 100 KiB messages at concurrency 1, 10 and 50, it measures
messages per second accepted (250 after DATA, from smtp_source) and
accepted-and-delivered (until the last file appears in the Maildir),
then the memory of 1000 idle connections.  When Postfix is installed
(make bench-peers-deps), a private Postfix instance (peers.py) gets the
same load from the same smtp_source on the same address, in turns with
virtmail (--repeat runs of each, default 3, so that a disturbance of
this shared machine hits both alike), and the medians are printed
side by side ("postfix here").
Postfix 3.7's figures from the issue that asked for this benchmark
stay in their own column ("issue ref"): they were measured on another
machine.  Figures only: nothing here passes or fails.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import vmtest  # noqa: E402
import peers  # noqa: E402

IP = vmtest.ALPHA_IP4
PEER_PORT = 2525        # Postfix's smtpd, beside virtmail's port 25
# Postfix 3.7, virtual Maildir, fsync on, smtp-source (msg/s).
POSTFIX = {(1024, 1): 573, (1024, 10): 882, (1024, 50): 735,
           (102400, 1): 327, (102400, 10): 474, (102400, 50): 488}
GLOBAL_CONF = """\
max_sessions 20000
max_sessions_per_ip 20000
"""


def worker_pid(log_path):
    with open(log_path) as f:
        m = re.findall(r"alpha.test: worker started pid=(\d+)", f.read())
    return int(m[-1]) if m else None


def cpu_times(pids):
    """{pid: (name, seconds)}: own plus reaped children's CPU time."""
    hz = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        f = st[st.rindex(")") + 2:].split()
        out[pid] = (name, sum(int(x) for x in f[11:15]) / hz)
    return out


def count_new(maildir):
    return len(os.listdir(os.path.join(maildir, "new")))


def disk_yardstick(build, work):
    """The issue's yardstick for this disk, after the runs (its files
    are removed with the work directory, at the very end)."""
    prog = os.path.join(build, "fsync_loop")
    if not os.path.exists(prog):
        return
    d = os.path.join(work, "fsync-loop")
    os.mkdir(d)
    out = subprocess.run([prog, d, "2000", "1024"], stdout=subprocess.PIPE,
                         timeout=300).stdout.decode()
    m = re.search(r"per_second=(\d+)", out)
    print("disk: create+write+fsync+rename+fsync-dir of 1 KiB files: %s/s "
          "here (issue's machine: about 2,260/s)" % (
              m.group(1) if m else "?"), flush=True)


def median(pairs):
    """The median of each figure of (accepted, delivered) pairs."""
    return tuple(sorted(p[k] for p in pairs)[len(pairs) // 2]
                 for k in range(2))


def one_run(source, maildir, size, conc, count, port=25):
    before = count_new(maildir)
    t0 = time.monotonic()
    p = subprocess.run([source, "-c", str(conc), "-m", str(count), "-s",
                        str(size), IP, str(port)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=600)
    out = p.stdout.decode()
    m = re.search(r"sent=(\d+) failed=(\d+) seconds=([\d.]+)", out)
    if not m:
        raise RuntimeError("smtp_source: %s %s" % (out, p.stderr.decode()))
    sent, failed, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
    deadline = time.monotonic() + 600
    while count_new(maildir) - before < sent and time.monotonic() < deadline:
        time.sleep(0.01)
    delivered_secs = time.monotonic() - t0
    return sent, failed, sent / secs, sent / delivered_secs


def start_postfix(a, work, dom):
    """A private Postfix on IP:PEER_PORT delivering bob@ the domain to
    a Maildir of its own, with bob's uid; (peer or None, note)."""
    if a.no_peers:
        return None, "postfix here: not measured (--no-peers)"
    if not peers.Postfix.available():
        return None, "postfix here: - (not installed; %s)" % \
            peers.INSTALL_HINT
    uid = dom.uids["bob"]
    pf = peers.Postfix(os.path.join(work, "postfix"), IP, PEER_PORT,
                       dom.name, "bob", uid, uid)
    try:
        pf.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        pf.stop()
        return None, "postfix here: - (did not start: %s)" % e
    return pf, ("postfix here: Postfix %s on %s:%d, same load in turns "
                "with virtmail, virtual(8) Maildir delivery, fsync on, "
                "default limits" % (pf.version(), IP, PEER_PORT))


def postfix_idle(pf, source, idle):
    """PSS per idle connection of the private Postfix.  One smtpd per
    connection, at most default_process_limit (100) of them: measure
    with fewer than that."""
    n = min(idle, 90)
    base = vmtest.pss_kib(vmtest.group_pids(pf.pid))
    p = subprocess.Popen([source, "-i", str(n), "-w", "8", IP,
                          str(PEER_PORT)], stdout=subprocess.PIPE)
    line = p.stdout.readline().decode().strip()
    time.sleep(1)
    with_idle = vmtest.pss_kib(vmtest.group_pids(pf.pid))
    p.wait(30)
    return ("postfix here: %.0f KiB per idle connection (%s; all its "
            "processes %.1f MiB -> %.1f MiB)" % (
                (with_idle - base) / max(1, n), line, base / 1024,
                with_idle / 1024))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--small", type=int, default=2000,
                    help="messages per 1 KiB run")
    ap.add_argument("--large", type=int, default=500,
                    help="messages per 100 KiB run")
    ap.add_argument("--idle", type=int, default=1000,
                    help="idle connections (0: skip)")
    ap.add_argument("--cpu", action="store_true",
                    help="print CPU seconds per daemon process, all "
                    "runs of a row together")
    ap.add_argument("--dir", default=None,
                    help="where the domain, the queues and the mailboxes "
                    "go (another file system; default: the temporary "
                    "directory)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per row and server, in turns; the median "
                    "is printed")
    ap.add_argument("--only", default="",
                    help="comma-separated SIZE:CONC runs, e.g. 1024:10")
    ap.add_argument("--no-peers", action="store_true",
                    help="measure virtmail only, even if Postfix is here")
    a = ap.parse_args()
    vmtest.check_isolated()
    # A plain kill still runs the finally clause below.
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(143))
    work = tempfile.mkdtemp(prefix="virtmail-bench.", dir=a.dir)
    os.chmod(work, 0o755)
    peers.spread_subdirs(work)
    proc = None
    pf = None
    try:
        alpha = vmtest.make_domain_root(os.path.join(work, "d"),
                                        "alpha.test", [IP])
        vc = vmtest.write_virtual_conf(os.path.join(work, "virtual.conf"),
                                       [(IP, alpha.root)])
        gc = os.path.join(work, "virtmail.conf")
        with open(gc, "w") as f:
            f.write(GLOBAL_CONF)
        log_path = os.path.join(work, "smtpd.log")
        log = open(log_path, "w")
        proc = subprocess.Popen([os.path.join(a.build, "virtmail-smtpd"),
                                 "-d", "-f", vc, "-C", gc], stdout=log,
                                stderr=log, start_new_session=True)
        vmtest.wait_for_port(IP, 25, timeout=15)
        source = os.path.join(a.build, "smtp_source")
        maildir = alpha.maildir("bob")
        pf, pf_note = start_postfix(a, work, alpha)

        print("virtmail-smtpd, fsync on, one domain, local Maildir delivery")
        print(pf_note)
        print("%-20s %23s   %23s   %9s" % (
            "", "------ virtmail ------", "---- postfix here ----",
            "issue ref"))
        print("%-8s %5s %5s %11s %11s   %11s %11s   %9s" % (
            "size", "conc", "msgs", "accepted/s", "delivered/s",
            "accepted/s", "delivered/s", "postfix/s"))
        runs = [(size, conc) for size in (1024, 102400)
                for conc in (1, 10, 50)]
        if a.only:
            runs = [tuple(int(x) for x in r.split(":"))
                    for r in a.only.split(",")]
        for size, conc in runs:
            count = a.small if size <= 10240 else a.large
            ours, theirs = [], []
            failed = pf_failed = 0
            pf_cols, pf_cpu = ("-", "-"), None
            cpu0 = cpu_times(vmtest.group_pids(proc.pid))
            if pf is not None:
                pcpu0 = cpu_times(vmtest.group_pids(pf.pid))
            # Turns: ours, then the same load against Postfix, --repeat
            # times, so that a disturbance hits both alike.
            for _ in range(a.repeat):
                sent, f, acc, dlv = one_run(source, maildir, size, conc,
                                            count)
                ours.append((acc, dlv))
                failed += f
                # An empty new/ for the next run (nothing deleted yet).
                peers.set_aside(os.path.join(maildir, "new"),
                                alpha.uids["bob"], alpha.uids["bob"])
                if pf is not None:
                    psent, f, pacc, pdlv = one_run(
                        source, pf.maildir, size, conc, count, PEER_PORT)
                    theirs.append((pacc, pdlv))
                    pf_failed += f
                    pf.reset_maildir()
            cpu1 = cpu_times(vmtest.group_pids(proc.pid))
            acc, dlv = median(ours)
            if pf is not None:
                pcpu1 = cpu_times(vmtest.group_pids(pf.pid))
                pf_cols = tuple("%.0f" % x for x in median(theirs))
                pf_cpu = sum(t - pcpu0.get(pid, (n, 0))[1]
                             for pid, (n, t) in pcpu1.items())
            ref = POSTFIX.get((size, conc))
            notes = []
            if failed:
                notes.append("%d failed" % failed)
            if pf_failed:
                notes.append("postfix: %d failed" % pf_failed)
            print("%-8s %5d %5d %11.0f %11.0f   %11s %11s   %9s%s" % (
                "%d KiB" % (size // 1024), conc, sent, acc, dlv,
                pf_cols[0], pf_cols[1], ref if ref else "-",
                "  (%s)" % ", ".join(notes) if notes else ""),
                flush=True)
            if a.cpu:
                wpid = worker_pid(log_path)
                print("   cpu s: " + ", ".join(
                    "%s%d %.2f" % ("worker " if pid == wpid else "",
                                   pid, t - cpu0.get(pid, (n, 0))[1])
                    for pid, (n, t) in sorted(cpu1.items())))
                if pf_cpu is not None:
                    # master's figure includes its reaped children.
                    print("   postfix cpu s, all processes: %.2f" % pf_cpu)

        disk_yardstick(a.build, work)
        if a.idle == 0:
            return 0
        wpid = worker_pid(log_path)
        base_worker = vmtest.pss_kib([wpid]) if wpid else 0
        base_all = vmtest.pss_kib(vmtest.group_pids(proc.pid))
        idle = subprocess.Popen([source, "-i", str(a.idle), "-w", "8", IP,
                                 "25"], stdout=subprocess.PIPE)
        line = idle.stdout.readline().decode().strip()
        time.sleep(1)
        with_worker = vmtest.pss_kib([wpid]) if wpid else 0
        with_all = vmtest.pss_kib(vmtest.group_pids(proc.pid))
        idle.wait(30)
        print()
        print("idle connections: %s" % line)
        print("worker PSS %.1f MiB -> %.1f MiB (%.1f KiB per connection); "
              "all daemon processes %.1f MiB -> %.1f MiB" % (
                  base_worker / 1024, with_worker / 1024,
                  (with_worker - base_worker) / max(1, a.idle),
                  base_all / 1024, with_all / 1024))
        if pf is not None:
            print(postfix_idle(pf, source, a.idle))
        print("issue ref, postfix 3.7: about 1.3 MiB per idle connection "
              "(PSS)")
        return 0
    finally:
        if pf is not None:
            pf.stop()
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
