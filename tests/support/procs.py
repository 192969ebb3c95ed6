"""Process, port and readiness helpers shared by every test package (2.7 and 3.x).

::

    from tests.support.procs import ProcessGroup, free_port, wait_until
    procs = ProcessGroup()
    p = procs.spawn([sys.executable, "-m", "http.server", str(port)])
    wait_until(lambda: port_open(port), timeout=5, what="http.server")
    procs.close()      # SIGTERM, then SIGKILL after a grace period, by PID

Everything here waits on a condition with a deadline; nothing sleeps in
place of synchronisation.
"""
from __future__ import absolute_import, division, print_function

import errno
import os
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class WaitTimeout(AssertionError):
    """A condition did not become true before its deadline."""


def wait_until(predicate, timeout=10.0, interval=0.01, what="condition"):
    # type: (object, float, float, str) -> object
    """Poll ``predicate`` until it returns a truthy value; raise after ``timeout`` s."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() >= deadline:
            raise WaitTimeout("%s not reached within %.1fs" % (what, timeout))
        time.sleep(interval)


def free_port(host="127.0.0.1"):
    # type: (str) -> int
    """A TCP port that was free a moment ago on ``host``."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def port_open(port, host="127.0.0.1"):
    # type: (int, str) -> bool
    """True when something accepts TCP connections on ``host:port``."""
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except (OSError, socket.error):
        return False


def python2():
    # type: () -> str
    """The Python 2.7 interpreter with the project's py27 dependencies."""
    path = os.environ.get("GATEWAY_PY2") or os.path.join(REPO, ".venv2", "bin", "python")
    if not os.path.exists(path):
        raise RuntimeError("no Python 2.7 environment at %s; run `make setup`" % path)
    return path


def python3():
    # type: () -> str
    """The Python 3 interpreter with the project's dependencies."""
    if sys.version_info[0] >= 3:
        return sys.executable
    path = os.environ.get("GATEWAY_PY3") or os.path.join(REPO, ".venv", "bin", "python")
    if not os.path.exists(path):
        raise RuntimeError("no Python 3 environment at %s; run `make setup`" % path)
    return path


def child_env(extra=None):
    # type: (dict) -> dict
    """An environment in which both ``protocol`` and ``gateway`` import from the repo."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no stray 2.7 .pyc beside the sources
    env.pop("PYTHONHOME", None)
    if extra:
        env.update(extra)
    return env


class ProcessGroup(object):
    """Starts processes in their own process groups and always cleans them up."""

    def __init__(self):
        # type: () -> None
        self.procs = []  # type: list

    def spawn(self, argv, env=None, **kwargs):
        # type: (list, dict, object) -> subprocess.Popen
        """Start ``argv`` in a new session (its own process group) with the repo on PYTHONPATH."""
        kwargs.setdefault("cwd", REPO)
        proc = subprocess.Popen(argv, env=child_env(env), preexec_fn=os.setsid, **kwargs)
        self.procs.append(proc)
        return proc

    def signal(self, proc, sig):
        # type: (subprocess.Popen, int) -> None
        """Send ``sig`` to one process by PID, ignoring one that already exited."""
        try:
            os.kill(proc.pid, sig)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise

    def stop(self, proc, grace=3.0):
        # type: (subprocess.Popen, float) -> int
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds, and reap."""
        if proc.poll() is None:
            _killpg(proc.pid, signal.SIGTERM)
            try:
                wait_until(lambda: proc.poll() is not None, grace, what="exit after SIGTERM")
            except WaitTimeout:
                pass  # SIGKILL below
        _killpg(proc.pid, signal.SIGKILL)  # stragglers in the group, if any
        if proc.poll() is None:
            proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        return proc.returncode

    def close(self):
        # type: () -> None
        """Stop every process started by this group."""
        while self.procs:
            self.stop(self.procs.pop())


def _killpg(pgid, sig):
    # type: (int, int) -> None
    try:
        os.killpg(pgid, sig)
    except OSError as exc:
        if exc.errno not in (errno.ESRCH, errno.EPERM):
            raise
