"""Restart policy: exponential backoff and systemd-style start limiting.

:class:`RestartPolicy` is the one place that decides what follows an unexpected
exit of a replica: restart now, restart after a backoff, or give up (FATAL)::

    policy = RestartPolicy(burst=5, interval=10.0)
    policy.started(now)                      # each start counts
    policy.after_exit(now, was_ready=False)  # Restart(delay=0.1), or None: FATAL
    policy.ready()                           # a run that got ready forgets past failures

Its parts, usable alone:


    backoff = Backoff(initial=0.1, factor=2.0, maximum=5.0)
    backoff.next()       # 0.1, then 0.2, 0.4, ... capped at 5.0
    backoff.reset()      # after a run that stayed up

    limit = StartLimit(burst=5, interval=10.0)
    limit.record(now)    # each start
    limit.hit(now)       # True once `burst` starts fell within `interval` seconds

The arbiter uses ``Backoff`` only after a failed start (the process died before
it was ready); a replica that dies after it was ready restarts at once, and
``StartLimit`` alone catches one that keeps doing so.

``StartLimit`` follows systemd's ``StartLimitBurst=`` / ``StartLimitIntervalSec=``:
every start counts, whether or not the previous run looked healthy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


class Backoff:
    """Exponential delays between restarts of one replica."""

    def __init__(self, initial: float = 0.1, factor: float = 2.0, maximum: float = 5.0) -> None:
        self.initial = initial
        self.factor = factor
        self.maximum = maximum
        self.failures = 0

    def next(self) -> float:
        """The delay before the next restart; each call doubles the following one."""
        delay = min(self.maximum, self.initial * self.factor ** self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        """Forget past failures (the process stayed up long enough)."""
        self.failures = 0


class StartLimit:
    """Counts starts in a sliding window; ``hit`` means the program is flapping."""

    def __init__(self, burst: int = 5, interval: float = 10.0) -> None:
        self.burst = burst
        self.interval = interval
        self.starts: deque[float] = deque()

    def record(self, now: float) -> None:
        """Note one start at monotonic time ``now``."""
        self.starts.append(now)
        self._trim(now)

    def hit(self, now: float) -> bool:
        """True when another start now would exceed ``burst`` starts in ``interval`` s."""
        self._trim(now)
        return len(self.starts) >= self.burst

    def _trim(self, now: float) -> None:
        while self.starts and now - self.starts[0] > self.interval:
            self.starts.popleft()


@dataclass(frozen=True)
class Restart:
    """The policy's answer to an exit: start the replica again after ``delay`` seconds."""

    delay: float


class RestartPolicy:
    """Backoff plus start limit for one replica: decides restart-after-delay or FATAL."""

    def __init__(self, burst: int = 5, interval: float = 10.0,
                 backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self.limit = StartLimit(burst, interval)

    def started(self, now: float) -> None:
        """Count one start at monotonic time ``now``."""
        self.limit.record(now)

    def ready(self) -> None:
        """The replica got ready: its next failed start begins the backoff again."""
        self.backoff.reset()

    def after_exit(self, now: float, was_ready: bool) -> Restart | None:
        """What follows an unexpected exit at ``now``; None means FATAL (it flaps).

        A run that got READY was not a failed start: it restarts at once, and only
        the start limit can stop it. A failed start waits out the backoff.
        """
        if self.limit.hit(now):
            return None
        return Restart(0.0 if was_ready else self.backoff.next())

    def retune(self, burst: int, interval: float) -> None:
        """New start limits from a reload; the starts already counted stay counted."""
        self.limit.burst, self.limit.interval = burst, interval

    def describe_limit(self) -> str:
        """``5 starts within 10s``, for the FATAL log line."""
        return f"{self.limit.burst} starts within {self.limit.interval:g}s"
