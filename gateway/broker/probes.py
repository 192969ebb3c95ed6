"""Noticing dead workers at once: closed connections trigger routability probes.

A worker process that dies (kill -9, a crash) has its connection closed by the
kernel at once, long before it misses three heartbeats. A ZeroMQ socket
monitor reports each closed connection (``ZMQ_EVENT_DISCONNECTED``), but it
names a file descriptor, not a routing id, and it may arrive before the ROUTER
has dropped the peer's pipe (measured: in about a third of the kills over
ipc://). So each event starts a short burst of probe rounds at
:data:`PROBE_DELAYS`; in each round the broker sends every worker a HEARTBEAT,
and ROUTER_MANDATORY's EHOSTUNREACH marks the dead ones. Heartbeats remain
the net for peers whose host vanished without closing anything::

    schedule = ProbeSchedule()
    if drain_disconnects(monitor):        # the monitor socket is readable
        schedule.start(time.monotonic())
    if schedule.due(time.monotonic()):
        ...                                 # probe every worker
    schedule.wait(time.monotonic())        # seconds until the next round, or None
"""

from __future__ import annotations

import zmq

# Seconds after a closed connection at which every worker is probed. The ROUTER
# usually drops the dead peer's pipe within a millisecond or two of the monitor
# event; a loaded machine may take longer, hence the widening gaps.
PROBE_DELAYS = (0.0, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128)


class ProbeSchedule:
    """The pending probe rounds (monotonic times) after the latest closed connection."""

    def __init__(self, delays: tuple[float, ...] = PROBE_DELAYS) -> None:
        self.delays = delays
        self.times: list[float] = []

    def start(self, now: float) -> None:
        """A connection closed at ``now``: the burst starts over."""
        self.times = [now + delay for delay in self.delays]

    def clear(self) -> None:
        """Nothing left to probe (no workers)."""
        self.times = []

    def due(self, now: float) -> bool:
        """True (once) when a round is due; rounds missed meanwhile collapse into it."""
        fired = False
        while self.times and self.times[0] <= now:
            self.times.pop(0)
            fired = True
        return fired

    def wait(self, now: float) -> float | None:
        """Seconds until the next round, or None when none is pending."""
        return max(0.0, self.times[0] - now) if self.times else None


def drain_disconnects(monitor: zmq.Socket[bytes]) -> int:
    """Read every pending monitor event; how many there were (all are DISCONNECTED)."""
    count = 0
    while True:
        try:
            monitor.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return count
        count += 1
