"""Starting and killing one child process so that it can never outlive the arbiter.

Every child runs in its own session (so its own process group): terminal Ctrl-C
reaches only the arbiter, and a stop can signal the child's whole group,
grandchildren (gunicorn workers, a shell's commands) included. Each direct
child also asks the kernel for ``PR_SET_PDEATHSIG``: when the arbiter dies,
even by SIGKILL, the child gets SIGTERM. The guard process
(:mod:`gateway.arbiter.guard`) then SIGKILLs the groups, which catches the
grandchildren that PDEATHSIG does not reach::

    child = Child.spawn(["python3", "-m", "http.server"], env, cwd="/srv", pass_fds=(5,))
    child.pid, child.pgid
    child.terminate()          # SIGTERM to the main process: it drains
    child.kill_group()         # SIGKILL to every process of the group
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

from gateway.errors import SpawnError

PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_prctl = _libc.prctl


def _preexec(parent: int) -> None:
    # Runs in the child between fork and exec: only C calls, no allocation-heavy Python.
    os.setsid()
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the arbiter died before prctl took effect
        os._exit(1)


class Child:
    """One running child process with its output pipe."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.pgid = proc.pid  # setsid made it the leader of its own group
        self.returncode: int | None = None

    @classmethod
    def spawn(cls, argv: Sequence[str], env: Mapping[str, str], cwd: str,
              pass_fds: Sequence[int] = ()) -> Child:
        """Start ``argv``; stdout and stderr go to one pipe read by the arbiter."""
        parent = os.getpid()
        try:
            proc = subprocess.Popen(
                list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=tuple(pass_fds),
                preexec_fn=lambda: _preexec(parent), close_fds=True)
        except OSError as exc:
            raise SpawnError(f"cannot start {argv[0]!r}: {exc.strerror}") from None
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        return cls(proc)

    @property
    def output_fd(self) -> int | None:
        """The read end of the child's output pipe, or None once closed."""
        out = self.proc.stdout
        return None if out is None or out.closed else out.fileno()

    def read_output(self) -> bytes | None:
        """Whatever output is available now; ``b""`` at end of file, None if nothing yet."""
        fd = self.output_fd
        if fd is None:
            return b""
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            return None

    def close_output(self) -> None:
        """Close the read end of the output pipe."""
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()

    def poll(self) -> int | None:
        """Reap the child if it exited; its return code (negative: killed by signal)."""
        if self.returncode is None:
            self.returncode = self.proc.poll()
        return self.returncode

    def send(self, sig: int) -> None:
        """Send ``sig`` to the main process, if it still runs."""
        if self.poll() is None:
            _kill(self.pid, sig)

    def terminate(self) -> None:
        """SIGTERM to the main process: a well-behaved child drains and exits."""
        self.send(signal.SIGTERM)

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal every process left in the child's process group."""
        try:
            os.killpg(self.pgid, sig)
        except OSError as exc:
            if exc.errno not in (errno.ESRCH, errno.EPERM):
                raise


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def group_alive(pgid: int) -> bool:
    """True while any process is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True
