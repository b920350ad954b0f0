#!/usr/bin/python3
"""Run virtmail's end-to-end tests inside the test network namespace.

Started by tests/run.py through "ip netns exec".  Refuses to run (exit 2)
unless the namespace has no interface but lo and no route off it: outside
one, the documentation addresses the tests use may leave the machine.

Starts dnsmasq with the test zone (vmtest.DEFAULT_ZONE), then runs every
test_* function of every tests/e2e/test_*.py module, in file order, each
with a fresh vmtest.Env and a time limit, and prints "ok - module.func" or
"not ok - module.func" with the traceback as "# " lines.
"""

import argparse
import importlib.util
import inspect
import os
import shutil
import signal
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vmtest  # noqa: E402

TEST_TIMEOUT = 60


class TestTimeout(Exception):
    pass


class Stop(Exception):
    pass


def on_alarm(sig, frame):
    raise TestTimeout("test took longer than %d s" % TEST_TIMEOUT)


def on_stop(sig, frame):
    raise Stop("signal %d" % sig)


def discover(substr):
    """[(name, function)] for every test, in file and line order."""
    tests = []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        modname = fn[:-3]
        spec = importlib.util.spec_from_file_location(
            modname, os.path.join(HERE, fn))
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception:
            tests.append(("%s.(import)" % modname, _raiser(
                traceback.format_exc())))
            continue
        funcs = [f for n, f in inspect.getmembers(mod, inspect.isfunction)
                 if n.startswith("test_") and f.__module__ == modname]
        funcs.sort(key=lambda f: f.__code__.co_firstlineno)
        for f in funcs:
            name = "%s.%s" % (modname, f.__name__)
            if substr is None or substr in name:
                tests.append((name, f))
    return tests


def _raiser(text):
    def f(env):
        raise RuntimeError("import failed:\n" + text)
    return f


def report(ok, name, text=""):
    print("%s - %s" % ("ok" if ok else "not ok", name), flush=True)
    for l in text.rstrip("\n").splitlines():
        print("# " + l, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("-k", dest="substr", default=None)
    ap.add_argument("--keep", action="store_true",
                    help="keep each test's temporary directory")
    a = ap.parse_args()
    build = os.path.abspath(a.build)

    try:
        vmtest.check_isolated()
    except vmtest.IsolationError as e:
        print("inside.py: refusing to run: not in an isolated network "
              "namespace (%s)" % e, file=sys.stderr, flush=True)
        print("# refusing to run: not in an isolated network namespace: "
              "%s" % e, flush=True)
        return 2

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGALRM, on_alarm)
    os.umask(0o022)

    tests = discover(a.substr)
    workdir = tempfile.mkdtemp(prefix="vmtest-", dir="/tmp")
    os.chmod(workdir, 0o755)
    dns = vmtest.Dns(workdir)
    failed = 0
    try:
        try:
            dns.start()
        except Exception as e:
            report(False, "harness.dnsmasq", str(e))
            return 1
        for name, func in tests:
            tmp = tempfile.mkdtemp(prefix="t-", dir=workdir)
            os.chmod(tmp, 0o755)
            env = vmtest.Env(tmp, build, dns)
            ok, text = True, ""
            try:
                dns.reset()
                signal.alarm(TEST_TIMEOUT)
                try:
                    func(env)
                finally:
                    signal.alarm(0)
            except Stop:
                raise
            except BaseException:
                ok, text = False, traceback.format_exc()
            finally:
                signal.alarm(0)
                try:
                    env.cleanup()
                except Exception:
                    ok, text = False, text + traceback.format_exc()
            if not ok:
                failed += 1
                text += "(files in %s)\n" % tmp if a.keep else ""
            report(ok, name, text)
            if not a.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    except Stop as e:
        report(False, "harness.interrupted", str(e))
        failed += 1
    finally:
        dns.stop()
        if a.keep:
            print("# kept %s" % workdir, flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
