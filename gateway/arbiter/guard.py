"""The orphan guard: kills the estate's process groups when the arbiter dies.

``PR_SET_PDEATHSIG`` reaches only the arbiter's direct children. The guard is
a small separate process (its own session, no death signal) that reads the
live process-group ids from a pipe whose write end only the arbiter holds.
End of file without a goodbye means the arbiter died: the guard SIGTERMs
every group it knows, then SIGKILLs them after ``--grace`` seconds, and exits.

Pipe protocol (ASCII lines): ``+PGID`` a group to watch, ``-PGID`` forget it,
``bye`` a clean shutdown (the arbiter already stopped everything)::

    guard = Guard.start()        # in the arbiter
    guard.watch(child.pgid)
    guard.forget(child.pgid)
    guard.close()                # says bye

    python -m gateway.arbiter.guard --grace 2.0    # what Guard.start runs
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from gateway.arbiter.child import group_alive


class Guard:
    """The arbiter's handle on its guard process."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        """The guard's PID."""
        return self.proc.pid

    @classmethod
    def start(cls, python: str, grace: float = 2.0, cwd: str = "/",
              env: dict[str, str] | None = None) -> Guard:
        """Start the guard in its own session, reading pgids on its stdin."""
        proc = subprocess.Popen(
            [python, "-m", "gateway.arbiter.guard", "--grace", str(grace)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True,
            cwd=cwd, env=env, close_fds=True)
        return cls(proc)

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line.encode("ascii") + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the guard is gone; PDEATHSIG still covers direct children

    def watch(self, pgid: int) -> None:
        """Add a process group to kill should the arbiter die."""
        self._send(f"+{pgid}")

    def forget(self, pgid: int) -> None:
        """Drop a process group that has been stopped and reaped."""
        self._send(f"-{pgid}")

    def close(self) -> None:
        """Tell the guard the estate was stopped cleanly, and reap it."""
        self._send("bye")
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def run(stream: object, grace: float) -> int:
    """Read the pipe until EOF; on an unannounced EOF, kill every known group."""
    groups: set[int] = set()
    readline = stream.readline  # type: ignore[attr-defined]
    while True:
        line = readline()
        if not line:
            break
        text = line.decode("ascii", "replace").strip()
        if text == "bye":
            return 0
        if text[:1] in "+-" and text[1:].isdigit():
            pgid = int(text[1:])
            if text[0] == "+":
                groups.add(pgid)
            else:
                groups.discard(pgid)
    for pgid in groups:
        _killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(group_alive(g) for g in groups):
        time.sleep(0.05)
    for pgid in groups:
        _killpg(pgid, signal.SIGKILL)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m gateway.arbiter.guard``."""
    parser = argparse.ArgumentParser(prog="gateway.arbiter.guard")
    parser.add_argument("--grace", type=float, default=2.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return run(sys.stdin.buffer, args.grace)


if __name__ == "__main__":
    sys.exit(main())
