"""Writes the arbiter makes to its run dir, and what happens when the disk says no.

A supervisor must never take the estate down because it cannot write a file:
a full or read-only run dir turns a state-file, pid-file or effective-config
write into an ``OSError``. Each such write goes through :class:`WriteLog`, which
logs the first failure (and the recovery), counts every failed attempt, lets
the caller retry no more than once per ``retry_s``, and reports the lot in the
status document (``arbiter.write_errors``), the way systemd keeps supervising
when a unit's journal write fails::

    writes = WriteLog(log=arbiter.log)
    if writes.due("state") and writes.attempt("state", path, lambda: write_state(...)):
        published = key            # otherwise the next due tick tries again
    status["arbiter"]["write_errors"] = writes.describe()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Failure:
    """One write target's failure record."""

    path: str
    count: int = 0
    failing: bool = False
    last_error: str = ""
    last_failed: float = 0.0
    last_attempt: float = 0.0


class WriteLog:
    """Runs run-dir writes: a failure is logged, counted and retried, never raised."""

    def __init__(self, log: Callable[[str], None], retry_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.retry_s = retry_s
        self.clock = clock
        self.targets: dict[str, Failure] = {}

    def due(self, what: str) -> bool:
        """False while ``what`` failed less than ``retry_s`` ago (no retry spinning)."""
        f = self.targets.get(what)
        return f is None or not f.failing or self.clock() - f.last_attempt >= self.retry_s

    def failing(self, what: str) -> bool:
        """True while the last write of ``what`` failed."""
        f = self.targets.get(what)
        return f is not None and f.failing

    def attempt(self, what: str, path: str, write: Callable[[], None]) -> bool:
        """Run ``write``; True on success, False (logged and counted) on ``OSError``."""
        f = self.targets.setdefault(what, Failure(path))
        f.path = path
        f.last_attempt = self.clock()
        try:
            write()
        except OSError as exc:
            f.count += 1
            f.last_error = f"{type(exc).__name__}: {exc}"
            f.last_failed = time.time()
            if not f.failing:
                self.log(f"cannot write the {what} file {path}: {f.last_error}; "
                         f"supervision goes on, retrying every {self.retry_s:g}s")
            f.failing = True
            return False
        if f.failing:
            self.log(f"the {what} file {path} is written again "
                     f"(after {f.count} failed attempts)")
            f.failing = False
        return True

    @property
    def total(self) -> int:
        """Failed write attempts since the arbiter started."""
        return sum(f.count for f in self.targets.values())

    def describe(self) -> dict[str, Any]:
        """``{"total": N, "failing": [...], "targets": {what: {...}}}`` for the status."""
        return {
            "total": self.total,
            "failing": sorted(w for w, f in self.targets.items() if f.failing),
            "targets": {
                w: {"path": f.path, "count": f.count, "failing": f.failing,
                    "last_error": f.last_error,
                    "last_failed": time.strftime("%Y-%m-%dT%H:%M:%S",
                                                 time.localtime(f.last_failed))
                    if f.last_failed else None}
                for w, f in sorted(self.targets.items()) if f.count
            },
        }
