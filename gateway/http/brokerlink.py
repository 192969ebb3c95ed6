"""The fast path's link to the broker: what both kinds share, and which kind a front uses.

A link is an MDP client on the event loop (SPEC 2.1): ``send`` puts one
request on the wire and returns its :class:`Parts`, where the replies arrive,
routed by the id in their header. Two kinds keep the same contract:

- ``zmtp`` (:class:`gateway.http.zmtplink.ZmtpBroker`): ZMTP spoken straight
  from the event loop over the ipc or loopback tcp socket. No libzmq I/O
  thread, so no thread hand-off (an eventfd wake-up and a context switch)
  per message in either direction.
- ``libzmq`` (:class:`gateway.http.zmqlink.AsyncBroker`): a pyzmq DEALER
  watched through its ZMQ_FD. It is the one for CURVE or non-local brokers.

::

    link_kind("ipc:///run/broker.ipc")                  # "zmtp"
    parts = link.send(b"web", envelope)                 # link: gateway.http.fastpath.open_link
    header, body_frames = await parts.get(timeout=5.0)
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Protocol

from protocol import codec, mdp
from protocol import errors as perrors
from protocol.brokers import is_loopback

LINKS = ("auto", "zmtp", "libzmq")


class Parts:
    """One request in flight: its reply parts as they arrive (one waiter at a time), and
    what a resend after a broker loss needs (its wire form, idempotency, deadline)."""

    __slots__ = ("answered", "deadline", "frames", "idem", "items", "waiter")

    def __init__(self, frames: Any, idem: bool, deadline: float) -> None:
        self.items: collections.deque[Any] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.frames = frames  # what the link sends again: frames (libzmq) or bytes (zmtp)
        self.idem = idem
        self.deadline = deadline
        self.answered = False

    def put(self, item: Any) -> None:
        """A part, the client's departure or a protocol error arrived."""
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self, timeout: float) -> Any:
        """The next item; TimeoutError after ``timeout`` seconds without one."""
        if not self.items:
            loop = asyncio.get_running_loop()
            waiter = self.waiter = loop.create_future()
            # A bare timer, not asyncio.timeout(): that context manager costs about as
            # much again as the wait itself, once per reply part.
            timer = loop.call_later(timeout, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self.waiter = None
            if not self.items:
                raise TimeoutError()
        return self.items.popleft()


def _wake(waiter: asyncio.Future[None]) -> None:
    """A part's wait timed out: wake its reader, which finds nothing queued."""
    if not waiter.done():
        waiter.set_result(None)


class Routing:
    """Reply routing and the counters both kinds of link keep."""

    def __init__(self) -> None:
        self.pending: dict[str, Parts] = {}
        self.linked = False
        self.dropped = 0        # replies for no request in flight, or not MDP at all
        self.broker_losses = 0  # connections closed after a handshake
        self.resent = 0         # idempotent requests sent again after a loss

    def route(self, frames: list[bytes]) -> None:
        """One MDP reply from the broker to the request it answers."""
        if len(frames) < 4 or frames[1] != mdp.CLIENT:
            self.dropped += 1
            return
        try:
            header = codec.decode_header(frames[3])
        except perrors.EnvelopeError:
            self.dropped += 1
            return
        parts = self.pending.get(header["id"])
        if parts is None:
            self.dropped += 1  # a late part of a request that ended here
            return
        parts.answered = True
        parts.put((header, frames[3:]))

    def forget(self, request_id: str) -> None:
        """Stop routing parts of ``request_id`` (it ended)."""
        self.pending.pop(request_id, None)


class BrokerLink(Protocol):
    """What the fast path needs of a link (both kinds provide it)."""

    pending: dict[str, Parts]
    linked: bool
    dropped: int
    broker_losses: int
    resent: int

    def send(self, service: bytes, env: codec.Envelope) -> Parts: ...

    def forget(self, request_id: str) -> None: ...

    def cancel(self, service: bytes, request_id: str) -> None: ...

    def close(self) -> None: ...


def link_kind(endpoint: str, setting: str = "auto") -> str:
    """``zmtp`` or ``libzmq`` for ``endpoint``: ``auto`` picks zmtp for one local endpoint.

    The front's link never carries CURVE keys, so what decides is locality:
    an ipc endpoint, or tcp on a loopback address. A list of endpoints
    (failover) or anything else stays on libzmq.
    """
    if setting not in LINKS:
        raise ValueError(f"broker link: one of {LINKS}, got {setting!r}")
    if setting != "auto":
        return setting
    local = "," not in endpoint and endpoint.startswith(("ipc://", "tcp://")) \
        and is_loopback(endpoint)
    return "zmtp" if local else "libzmq"

