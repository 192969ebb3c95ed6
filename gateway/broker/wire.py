"""The broker's ROUTER as its handlers see it: non-blocking sends, and every drop counted.

::

    wire = Wire()
    wire.sock = router                       # set by the loop once bound, None after
    if not wire.send([identity, *frames], "worker gone"):
        ...                                  # full or unroutable: counted and logged
    wire.drop("malformed", "short or unframed message")
    wire.drops                               # Counter by reason, for mmi.stats

A send never blocks the loop: a full peer (its high-water mark) is a drop of
reason ``hwm``, an unroutable one (``ROUTER_MANDATORY``: gone) of reason
``unroutable``. Any other socket error propagates: it is the broker's bug.
"""

from __future__ import annotations

import errno
import logging
from collections import Counter

import zmq

from protocol import mdp

log = logging.getLogger("gateway.broker")


class Wire:
    """Sends on the broker's ROUTER socket and counts what is dropped, by reason."""

    def __init__(self) -> None:
        self.sock: zmq.Socket[bytes] | None = None
        self.drops: Counter[str] = Counter()

    def send(self, frames: list[bytes], what: str) -> bool:
        """Send without blocking; False (and a drop counted) when the peer is full or gone."""
        assert self.sock is not None
        try:
            mdp.send_frames(self.sock, frames, mdp.NOBLOCK)
            return True
        except zmq.Again:
            self.drop("hwm", f"peer {frames[0].hex()} is full")
        except zmq.ZMQError as exc:
            if exc.errno != errno.EHOSTUNREACH:
                raise
            self.drop("unroutable", f"{what}: {frames[0].hex()}")
        return False

    def reachable(self, identity: bytes) -> bool | None:
        """Probe ``identity`` with a HEARTBEAT: False when its connection is gone, None if full."""
        assert self.sock is not None
        try:
            mdp.send_frames(self.sock, [identity, *mdp.heartbeat()], mdp.NOBLOCK)
        except zmq.Again:
            return None  # full, not gone
        except zmq.ZMQError as exc:
            if exc.errno != errno.EHOSTUNREACH:
                raise
            return False
        return True

    def drop(self, reason: str, detail: str) -> None:
        """Count and log one dropped message."""
        self.drops[reason] += 1
        log.warning("drop (%s): %s [total %d]", reason, detail, self.drops[reason])
