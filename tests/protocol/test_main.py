"""``python -m protocol worker|wsgi``: the worker hosts, each imported once (2.7 and 3)."""
from __future__ import absolute_import, division, print_function

import subprocess
import sys

from tests.support.procs import REPO, child_env


def run(*args):
    # type: (*str) -> tuple
    proc = subprocess.Popen([sys.executable, "-W", "default", "-m", "protocol"] + list(args),
                            cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = proc.communicate()
    return proc.returncode, out.decode("utf-8"), err.decode("utf-8")


def test_each_host_runs_without_a_double_import_warning():
    for host in ("worker", "wsgi"):
        code, out, err = run(host, "--help")
        assert code == 0, err
        assert "--broker" in out and "RuntimeWarning" not in err, err


def test_an_unknown_host_is_a_usage_error():
    code, _, err = run("nosuch")
    assert code == 2 and "usage: python -m protocol {worker|wsgi}" in err
