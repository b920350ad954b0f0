#!/usr/bin/python3
"""Run virtmail's unit and end-to-end tests; end with "N passed, N failed".

Unit tests: every executable BUILD/tests/unit/test_*; each prints
"ok - ..." / "not ok - ..." lines.  A binary that exits non-zero without a
"not ok" line (a crash, a sanitizer report) counts as one failure.

End-to-end tests: need root.  A fresh network namespace vmtest-<pid> is
created with the documentation addresses on its loopback, and
tests/e2e/inside.py runs inside it (it checks again that it is isolated
before sending a packet).  The namespace and every process in it are
removed at the end, also on SIGINT/SIGTERM and on timeout.
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

from netns import ns_create, ns_teardown

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
UNIT_TIMEOUT = 120
E2E_TIMEOUT = 1800


def count(lines):
    ok = sum(1 for l in lines if l.startswith("ok - "))
    bad = sum(1 for l in lines if l.startswith("not ok - "))
    return ok, bad


def run_unit(build, substr):
    udir = os.path.join(build, "tests", "unit")
    passed = failed = 0
    if not os.path.isdir(udir):
        print("not ok - unit: no %s (run make first)" % udir)
        return 0, 1
    for name in sorted(os.listdir(udir)):
        path = os.path.join(udir, name)
        if (not name.startswith("test_") or name.endswith((".o", ".d"))
                or not os.access(path, os.X_OK) or not os.path.isfile(path)):
            continue
        if substr and substr not in name:
            continue
        try:
            p = subprocess.run([path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL,
                               timeout=UNIT_TIMEOUT, cwd=os.path.dirname(
                                   os.path.dirname(HERE)))
            out = p.stdout.decode("utf-8", "replace")
            rc = p.returncode
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode("utf-8", "replace")
            out += "\n(timed out after %d s)\n" % UNIT_TIMEOUT
            rc = -1
        lines = out.splitlines()
        ok, bad = count(lines)
        if rc != 0 and bad == 0:
            lines.append("not ok - %s (exit status %d)" % (name, rc))
            bad = 1
        passed += ok
        failed += bad
        if bad:
            print("--- %s: %d failed" % (name, bad))
            for l in lines:
                print("    " + l)
        else:
            print("unit %s: %d passed" % (name, ok))
    return passed, failed


def run_e2e(build, substr, keep):
    if os.geteuid() != 0:
        print("not ok - e2e: skipped, end-to-end tests need root "
              "(network namespaces); run 'sudo make test'")
        return 0, 1
    ns = "vmtest-%d" % os.getpid()
    proc = None

    def on_signal(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    lines = []
    try:
        ns_create(ns)
        argv = ["ip", "netns", "exec", ns, PYTHON,
                os.path.join(HERE, "e2e", "inside.py"), "--build", build]
        if substr:
            argv += ["-k", substr]
        if keep:
            argv += ["--keep"]
        # The daemons chroot into domain roots, which have no /proc:
        # LeakSanitizer cannot run there and would turn every clean
        # exit into a failure.  Leaks are checked by the unit tests;
        # address and undefined-behaviour checks stay on everywhere.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(
            x for x in (env.get("ASAN_OPTIONS"), "detect_leaks=0") if x)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        deadline = time.monotonic() + E2E_TIMEOUT
        # Read line by line so progress shows; a timer bounds the total.
        timed_out = []

        def killer():
            timed_out.append(True)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        t = threading.Timer(max(0, deadline - time.monotonic()), killer)
        t.daemon = True
        t.start()
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            print(line, flush=True)
        rc = proc.wait()
        t.cancel()
        ok, bad = count(lines)
        if timed_out:
            print("not ok - e2e: timed out after %d s" % E2E_TIMEOUT)
            bad += 1
        elif rc != 0 and bad == 0:
            print("not ok - e2e: inside.py exited %d" % rc)
            bad += 1
        elif ok + bad == 0 and not substr:
            print("not ok - e2e: no tests ran")
            bad += 1
        return ok, bad
    except KeyboardInterrupt as e:
        print("not ok - e2e: interrupted (%s)" % e)
        ok, bad = count(lines)
        return ok, bad + 1
    except Exception as e:
        print("not ok - e2e: setup failed: %s" % e)
        ok, bad = count(lines)
        return ok, bad + 1
    finally:
        if proc is not None and proc.poll() is None:
            # Let inside.py stop its processes and remove its files.
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    pass
        ns_teardown(ns)
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--unit-only", action="store_true")
    g.add_argument("--e2e-only", action="store_true")
    ap.add_argument("-k", dest="substr", default=None,
                    help="only tests whose name contains SUBSTR")
    ap.add_argument("--keep", action="store_true",
                    help="keep e2e temporary directories")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    passed = failed = 0
    if not a.e2e_only:
        p, f = run_unit(build, a.substr)
        passed += p
        failed += f
    if not a.unit_only:
        p, f = run_e2e(build, a.substr, a.keep)
        passed += p
        failed += f
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
