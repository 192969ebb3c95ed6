"""Publication of shadow pairs for the comparison off the path (SPEC 2.14).

::

    pairs = Pairs("ipc:///srv/gw/var/run/shadow-pairs.sock", hwm=1000)
    pairs.open(ctx)                       # in the broker's thread; pairs.close() at the end
    pairs.expect(primary, copy)           # a copy of primary was queued
    pairs.primary(primary, reply_body)    # the primary's final reply
    pairs.candidate(copy, reply_body)     # the copy's final reply, or None: it failed

Once a call's primary and candidate replies are both in, the broker publishes one
message on an XPUB socket::

    [SERVICE, META, *request frames, *primary reply frames, *candidate reply frames]

META is JSON ``{"candidate", "method", "id", "frames": [n_request, n_primary,
n_candidate]}``; SERVICE is the topic, so a subscriber may take one service only.
Frames are the bodies as they crossed the broker, undecoded. The socket never
blocks the broker: past its high-water mark (a slow subscriber) a pair is dropped
and counted (``ZMQ_XPUB_NODROP`` makes the send fail instead of dropping silently,
which is what lets the broker count). A pair whose copy failed, or whose primary
never answered by its deadline, is never published and counts as ``unpaired``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import zmq

from gateway.broker.registry import Request
from gateway.broker.shadow import SHADOW_CLIENT

Key = tuple[bytes, str, bytes]


@dataclass(slots=True)
class Pending:
    """One call whose two replies are awaited."""

    candidate: bytes
    method: str
    request: list[bytes]
    expires: int            # ms since the epoch: the primary's deadline
    primary: list[bytes] | None = None
    copy: list[bytes] | None = None
    copy_ended: bool = False


@dataclass(slots=True)
class Pairs:
    """Pairs awaited and published; see the module docstring."""

    endpoint: str | None
    hwm: int = 1000
    pending: dict[Key, Pending] = field(default_factory=dict)
    published: int = 0
    dropped: int = 0        # the subscriber was too slow (high-water mark)
    unpaired: int = 0
    subscriptions: int = 0  # topics subscribed now, over all subscribers
    sock: zmq.Socket[bytes] | None = None

    def open(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        if not self.endpoint:
            return
        sock = ctx.socket(zmq.XPUB)
        sock.linger = 0
        sock.sndhwm = self.hwm
        sock.setsockopt(zmq.XPUB_NODROP, 1)
        sock.bind(self.endpoint)
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    def expect(self, primary: Request, copy: Request, method: str) -> None:
        if self.sock is not None:
            self.pending[(primary.client, primary.id, primary.service)] = Pending(
                copy.service, method, list(primary.body), primary.deadline)

    def primary(self, request: Request, body: list[bytes]) -> None:
        entry = self.pending.get((request.client, request.id, request.asked or request.service))
        if entry is not None and entry.primary is None:
            entry.primary = list(body)
            self._ready((request.client, request.id, request.asked or request.service), entry)

    def candidate(self, copy: Request, body: list[bytes] | None) -> None:
        key = (copy.client[len(SHADOW_CLIENT):], copy.id, copy.asked or b"")
        entry = self.pending.get(key)
        if entry is None or entry.copy_ended:
            return
        entry.copy_ended = True
        if body is None:
            del self.pending[key]
            self.unpaired += 1
            return
        entry.copy = list(body)
        self._ready(key, entry)

    def sweep(self, now_ms: int) -> None:
        """Forget calls whose primary did not answer by its deadline (bounded memory)."""
        for key, entry in list(self.pending.items()):
            if entry.expires < now_ms and entry.primary is None:
                del self.pending[key]
                self.unpaired += 1
        if self.sock is not None:
            # Subscriptions arrive as messages on an XPUB; read them so they never pile up.
            while self.sock.poll(0):
                message = self.sock.recv(zmq.NOBLOCK)
                if message[:1] == b"\x01":
                    self.subscriptions += 1
                elif message[:1] == b"\x00":
                    self.subscriptions = max(0, self.subscriptions - 1)

    def _ready(self, key: Key, entry: Pending) -> None:
        if entry.primary is None or entry.copy is None or self.sock is None:
            return
        del self.pending[key]
        meta = json.dumps({"candidate": entry.candidate.decode("utf-8", "replace"),
                           "method": entry.method, "id": key[1],
                           "frames": [len(entry.request), len(entry.primary),
                                      len(entry.copy)]}, sort_keys=True).encode()
        try:
            self.sock.send_multipart([key[2], meta, *entry.request, *entry.primary,
                                      *entry.copy], zmq.NOBLOCK)
            self.published += 1
        except zmq.Again:
            self.dropped += 1

    def to_json(self) -> dict[str, int]:
        return {"published": self.published, "dropped": self.dropped,
                "unpaired": self.unpaired, "pending": len(self.pending),
                "subscriptions": self.subscriptions}
