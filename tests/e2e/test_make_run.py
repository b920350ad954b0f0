"""make run, as a user would: start it, wait for the demo message
(alice@alpha.test to bob@beta.test over submission, the remote path,
POP3), stop it with Ctrl-C (SIGINT to its process group), and check
that its network namespace and its temporary directory are gone."""

import os
import re
import signal
import subprocess
import time

import vmtest


def test_make_run(env):
    out_path = env.path("make-run.out")
    argv = ["make", "-s", "--no-print-directory", "-C", env.src, "run",
            "BUILD=" + env.build]
    # make run builds what changed: with the same flags as this build.
    with open(env.bin("virtmail"), "rb") as f:
        if b"__asan_init" in f.read():
            argv.append("SAN=1")
    with open(out_path, "wb") as out:
        p = subprocess.Popen(argv,
                             stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT,
                             start_new_session=True)

    def text():
        with open(out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    try:
        vmtest.wait_for_text(text, r"Ctrl-C stops the demo", timeout=40,
                             what="make run's output")
        t = text()
        assert "Subject: hello from alpha.test" in t, t
        assert re.search(r"by mx\.beta\.test \(virtmail\) with ESMTPS", t), t
        assert re.search(r"by mx\.alpha\.test \(virtmail\) with ESMTPSA",
                         t), t
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
