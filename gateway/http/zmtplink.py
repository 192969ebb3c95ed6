"""The fast path's broker link in ZMTP, spoken from the event loop: no libzmq I/O thread.

A libzmq DEALER hands every message to its background I/O thread and back
(an eventfd write, a context switch and an epoll round per message), which
measured about 30 us of the front's 160-270 us CPU per request. For a local
broker (ipc://, or tcp:// on loopback, no CURVE) this link is the DEALER
instead: an asyncio protocol on the AF_UNIX or TCP stream that does the ZMTP
3.1 handshake (:mod:`protocol.zmtp`), writes each request with one
``transport.write`` and routes replies from ``data_received``::

    link = ZmtpBroker("ipc:///run/broker.ipc")
    parts = link.send(b"web", envelope)      # queued until the handshake is done
    header, frames = await parts.get(5.0)

It keeps :class:`gateway.http.zmqlink.AsyncBroker`'s contract (SPEC 2.1):

- Before the first handshake, and while the broker is away, requests wait in
  a bounded queue as in a DEALER's pipe; past the bound ``send`` raises
  ``Unavailable``. Requests whose caller gave up are not sent.
- The link reconnects with a bounded backoff (10 ms doubling to 500 ms), so
  a down broker costs requests their deadline, never a hang.
- A connection closed after the handshake is a broker loss: replies already
  read are routed, idempotent requests with no reply part yet are sent again
  on the next connection (within their deadline), the others fail at once
  with ``unavailable``.
- A peer that breaks ZMTP (:class:`protocol.errors.ZmtpError`), sends an ERROR
  command or does not finish its handshake in time is logged and cut, and
  the link reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from gateway.http.brokerlink import Parts, Routing
from protocol import codec, mdp, zmtp
from protocol import errors as perrors
from protocol.errors import ZmtpError
from protocol.zmtp import parse_endpoint

log = logging.getLogger(__name__)

READY = zmtp.READY_DEALER
MAX_MESSAGE = 256 << 20     # a reply frame or message beyond this is a broken peer
MAX_QUEUED = 100_000        # requests waiting for a connection (a DEALER's default HWM is 1000)
MAX_BUFFERED = 64 << 20     # bytes the transport may hold unsent before sends are refused
HANDSHAKE_TIMEOUT = 5.0     # connect + greeting + READY
BACKOFF = (0.01, 0.5)       # first and longest wait between connection attempts


class _Wire(asyncio.Protocol):
    """One connection to the broker: the handshake, then frames in and out."""

    def __init__(self, link: ZmtpBroker) -> None:
        self.link = link
        self.decoder = zmtp.Decoder(link.max_message)
        self.transport: asyncio.Transport | None = None
        self.ready = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        # One write for the whole greeting and READY: ZMTP 3 lets the connecting side send
        # its READY right behind its greeting (RFC 23 section 3.3).
        transport.write(zmtp.GREETING + READY)

    def data_received(self, data: bytes) -> None:
        try:
            items = self.decoder.feed(data)
            route = self.link.route
            for item in items:
                if type(item) is list:
                    if not self.ready:
                        raise ZmtpError("the broker sent a message before its READY")
                    route(item)
                elif type(item) is zmtp.Command:
                    self.command(item)
        except ZmtpError as exc:
            self.fail(exc)

    def command(self, cmd: zmtp.Command) -> None:
        name = cmd.name
        if name == b"READY":
            if self.ready:
                raise ZmtpError("the broker sent READY twice")
            kind = zmtp.parse_properties(cmd.data).get(b"socket-type", b"")
            if kind not in zmtp.PEERS_OF_DEALER:
                raise ZmtpError(f"the broker's socket is a {kind!r}; a DEALER needs a ROUTER")
            self.ready = True
            self.link.linked_on(self)
        elif name == b"PING":
            # RFC 37: answer with the ping's context (after its 2-byte TTL).
            self.link.pings += 1
            if self.transport is not None:
                self.transport.write(zmtp.pong(cmd))
        elif name == b"ERROR":
            raise ZmtpError(f"the broker refused the link: {zmtp.error_reason(cmd)}")
        # PONG and unknown commands are ignored, as RFC 37 asks.

    def fail(self, exc: ZmtpError) -> None:
        """The peer broke the protocol: say so and cut the connection."""
        self.link.protocol_errors += 1
        log.warning("broker link %s: %s; reconnecting", self.link.endpoint, exc)
        if self.transport is not None:
            self.transport.abort()

    def expire(self) -> None:
        """The handshake deadline passed."""
        if not self.ready and self.transport is not None and not self.closed.done():
            self.fail(ZmtpError(f"no ZMTP handshake within {self.link.handshake_timeout} s"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.lost(self)
        if not self.closed.done():
            self.closed.set_result(None)


class ZmtpBroker(Routing):
    """An MDP client link (DEALER) in ZMTP from the event loop; see the module docstring."""

    def __init__(self, endpoint: str, max_queued: int = MAX_QUEUED,
                 max_message: int = MAX_MESSAGE, handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 backoff: tuple[float, float] = BACKOFF) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.address = parse_endpoint(endpoint)
        self.max_queued = max_queued
        self.max_message = max_message
        self.handshake_timeout = handshake_timeout
        self.backoff = backoff
        self.protocol_errors = 0
        self.pings = 0  # the broker's ZMTP heartbeats, each answered
        self.attempts = 0  # connections tried
        self.connects = 0  # connections made
        self.wire: _Wire | None = None  # set while linked (handshake done)
        # (request id, wire bytes, is a resend): sent when the next handshake completes
        self.queue: collections.deque[tuple[str, bytes, bool]] = collections.deque()
        self.task: asyncio.Task[None] | None = None
        self.current: _Wire | None = None
        self.closed = False

    # -- the connection -------------------------------------------------------------------

    def _ensure(self) -> None:
        if self.task is None and not self.closed:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        """Connect, wait for the connection to end, back off, again, until closed."""
        loop = asyncio.get_running_loop()
        kind, host, port = self.address
        delay = self.backoff[0]
        warned = False
        while not self.closed:
            wire: _Wire | None = None
            self.attempts += 1
            try:
                async with asyncio.timeout(self.handshake_timeout):
                    if kind == "unix":
                        _, wire = await loop.create_unix_connection(lambda: _Wire(self), host)
                    else:
                        _, wire = await loop.create_connection(lambda: _Wire(self), host, port)
            except (OSError, TimeoutError) as exc:
                # A broker that restarts is away for a moment: say so once it has been
                # away for a whole backoff cycle, once per outage.
                level = logging.WARNING if delay == self.backoff[1] and not warned \
                    else logging.DEBUG
                warned = warned or level == logging.WARNING
                log.log(level, "broker link %s: cannot connect (%s); retrying every %.1f s",
                        self.endpoint, exc or "timed out", self.backoff[1])
            if wire is not None:
                self.connects += 1
                self.current = wire
                timer = loop.call_later(self.handshake_timeout, wire.expire)
                try:
                    await wire.closed
                finally:
                    timer.cancel()
                    self.current = None
                if wire.ready:
                    delay = self.backoff[0]  # it worked: the next attempt is a restart
                    warned = False
            if self.closed:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    def linked_on(self, wire: _Wire) -> None:
        """The handshake completed: send what waited, in order, in one write."""
        self.wire = wire
        self.linked = True
        now = time.time()
        out: list[bytes] = []
        pending = self.pending
        for rid, data, resend in self.queue:
            held = pending.get(rid)
            if held is None or (held.deadline and held.deadline <= now):
                continue  # its caller gave up, or will before an answer could come
            out.append(data)
            if resend:
                self.resent += 1
        self.queue.clear()
        if out and wire.transport is not None:
            wire.transport.write(b"".join(out))

    def lost(self, wire: _Wire) -> None:
        """A connection ended; after a handshake that is a broker loss (SPEC 2.1)."""
        if wire is not self.wire:
            return  # never linked: its requests are still queued
        self.wire = None
        self.linked = False
        self.broker_losses += 1
        now = time.time()
        gone = perrors.Unavailable("the connection to the broker closed while the request "
                                   "was in flight")
        for rid, held in list(self.pending.items()):
            if held.idem and not held.answered and held.deadline > now:
                self.queue.append((rid, held.frames, True))
                continue
            del self.pending[rid]
            held.put(gone)

    # -- the contract ---------------------------------------------------------------------

    def _write(self, rid: str, data: bytes) -> None:
        wire = self.wire
        if wire is not None and wire.transport is not None:
            if wire.transport.get_write_buffer_size() > MAX_BUFFERED:
                raise perrors.Unavailable("the broker connection is full")
            wire.transport.write(data)
            return
        if self.closed:
            raise perrors.Unavailable("the broker link is closed")
        self._ensure()
        if len(self.queue) >= self.max_queued:
            pending = self.pending
            self.queue = collections.deque(e for e in self.queue if e[0] in pending)
            if len(self.queue) >= self.max_queued:
                raise perrors.Unavailable("the broker connection is full")
        self.queue.append((rid, data, False))

    def send(self, service: bytes, env: codec.Envelope) -> Parts:
        """Send ``env`` to ``service``; the parts its replies will arrive on.

        A :class:`~protocol.errors.Unavailable` among the parts says the broker
        died with the request (SPEC 2.1).
        """
        data = zmtp.encode(mdp.client_request(service, codec.encode(env)))
        parts = Parts(data, bool(env.idem), (env.deadline or 0) / 1000.0)
        self.pending[env.id] = parts
        try:
            self._write(env.id, data)
        except BaseException:
            self.pending.pop(env.id, None)
            raise
        return parts

    def cancel(self, service: bytes, request_id: str) -> None:
        """Tell the broker the answer is no longer wanted (SPEC 2.11); never raises.

        With no connection there is nothing to tell: a queued request is
        dropped at the next handshake, and a broker that died forgot it.
        """
        self.pending.pop(request_id, None)
        wire = self.wire
        if wire is None or wire.transport is None:
            return
        env = codec.Envelope("cancel", id=request_id)
        try:
            wire.transport.write(zmtp.encode(mdp.client_request(service, codec.encode(env))))
        except (OSError, RuntimeError, perrors.ProtocolError, ValueError) as exc:
            log.debug("cancel of %s not sent: %r", request_id, exc)

    def close(self) -> None:
        """Stop reconnecting and cut the connection."""
        self.closed = True
        self.queue.clear()
        task, self.task = self.task, None
        wire = self.current or self.wire
        self.wire = None
        self.linked = False
        if task is not None and not task.get_loop().is_closed():
            task.cancel()
        if wire is not None and wire.transport is not None:
            try:
                wire.transport.abort()
            except RuntimeError:
                pass  # its loop is closed already
