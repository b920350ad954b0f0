"""Every man page in docs/ renders without a warning (mandoc -T lint, or
groff -ww where mandoc is missing), and every program has one."""

import glob
import os
import shutil

import vmtest

PROGRAMS = ["virtmail", "virtmail-pop3d", "virtmail-postdrop",
            "virtmail-sendmail", "virtmail-smtpd", "virtuald"]


def pages(env):
    return sorted(glob.glob(os.path.join(env.src, "docs", "*.[58]")))


def test_manpages_lint_clean(env):
    found = pages(env)
    assert found, "no man pages"
    for p in found:
        if shutil.which("mandoc"):
            rc, out, err = vmtest.run(["mandoc", "-T", "lint", "-W",
                                       "warning", p])
        else:
            rc, out, err = vmtest.run(["groff", "-ww", "-mandoc", "-z", p])
        assert rc == 0 and out + err == "", "%s:\n%s%s" % (p, out, err)
        rc, out, err = vmtest.run(["groff", "-ww", "-mandoc", "-Tutf8", p])
        assert rc == 0 and err == "" and len(out) > 200, "%s:\n%s" % (
            p, err)


def test_every_program_has_a_page(env):
    names = {os.path.basename(p) for p in pages(env)}
    for prog in PROGRAMS:
        assert prog + ".8" in names, prog
    for conf in ("virtual.conf.5", "virtmail.conf.5"):
        assert conf in names, conf
