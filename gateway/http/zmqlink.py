"""The fast path's broker link over libzmq: a pyzmq DEALER watched from the event loop.

This is the ``libzmq`` kind of :mod:`gateway.http.brokerlink`: any endpoint
ZeroMQ connects to, CURVE included. Each send and receive is handed to
libzmq's I/O thread, which the ``zmtp`` kind (:mod:`gateway.http.zmtplink`)
avoids for a local broker::

    link = AsyncBroker("tcp://10.0.0.5:5555")
    parts = link.send(b"web", envelope)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from gateway.http.brokerlink import Parts, Routing
from protocol import codec, mdp
from protocol import errors as perrors

log = logging.getLogger(__name__)

# pyzmq's constants are enum members: every `&`/`|` on them and every flags argument built
# from them goes through enum.Flag in Python, several times per request. The hot path uses
# plain ints and the compiled socket methods, past the sugar layer that would rebuild them.
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE) | _NOBLOCK
_get: Callable[[Any, int], int] = zmq.backend.Socket.get  # type: ignore[assignment]
_send = zmq.backend.Socket.send
_recv = zmq.backend.Socket.recv


def send_frames(sock: zmq.Socket[bytes], frames: list[bytes]) -> None:
    """``sock.send_multipart(frames, NOBLOCK)`` with int flags; zmq.Again when full.

    libzmq checks the high-water mark on a message's first part only, so a
    multipart message is either refused whole or queued whole.
    """
    last = len(frames) - 1
    for i in range(last):
        _send(sock, frames[i], _MORE_NOBLOCK)
    _send(sock, frames[last], _NOBLOCK)


def recv_frames(sock: zmq.Socket[bytes]) -> list[bytes]:
    """``sock.recv_multipart(NOBLOCK)`` with int flags; zmq.Again when nothing is queued."""
    frames = [_recv(sock, _NOBLOCK)]
    while _get(sock, _RCVMORE):
        frames.append(_recv(sock, _NOBLOCK))
    return frames


class AsyncBroker(Routing):
    """An MDP client on the event loop: one DEALER, replies routed to per-request parts by id.

    The socket is a plain ZeroMQ socket watched with ``loop.add_reader`` on its
    ZMQ_FD: every wake-up reads all queued messages without blocking, and every
    send is a non-blocking send (the high-water mark is far above what a front
    worker keeps in flight). ZMQ_FD is edge-triggered, so ZMQ_EVENTS is checked
    after each send too (libzmq's zmq_getsockopt(3)).

    A socket monitor watches the connection (SPEC 2.1): when it closes after a
    handshake, the broker died with what it held, so the replies that arrived
    are routed first, then idempotent requests with no reply part yet are sent
    again (the DEALER reconnects by itself) and the others fail at once with
    ``unavailable``.
    """

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.sock: zmq.Socket[bytes] | None = None
        self.monitor: zmq.Socket[bytes] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def _ensure(self) -> zmq.Socket[bytes]:
        if self.sock is None:
            sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
            sock.linger = 0
            sock.sndhwm = sock.rcvhwm = 100_000
            # A close counts only after a handshake: a refused one is no broker loss.
            monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED
                                              | zmq.EVENT_HANDSHAKE_SUCCEEDED)
            sock.connect(self.endpoint)
            self.sock, self.monitor = sock, monitor
            self.loop = asyncio.get_running_loop()
            self.loop.add_reader(int(sock.getsockopt(zmq.FD)), self._drain)
            self.loop.add_reader(int(monitor.getsockopt(zmq.FD)), self._watch_connection)
            # ZMQ_FD signals only a change seen since ZMQ_EVENTS was last read: read both
            # once now, or messages already queued (the monitor's first events) never wake us.
            self.loop.call_soon(self._drain)
            self.loop.call_soon(self._watch_connection)
        return self.sock

    def _drain(self) -> None:
        sock = self.sock
        if sock is None:
            return
        while _get(sock, _EVENTS) & _POLLIN:
            try:
                frames = recv_frames(sock)
            except zmq.Again:
                return
            self.route(frames)

    def _watch_connection(self) -> None:
        monitor, sock = self.monitor, self.sock
        if monitor is None or sock is None:
            return
        while int(monitor.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            try:
                event = parse_monitor_message(monitor.recv_multipart(zmq.NOBLOCK))["event"]
            except zmq.Again:
                return
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.linked = True
            elif event == zmq.EVENT_DISCONNECTED and self.linked:
                self.linked = False
                self._drain()  # replies the broker sent before it went are answers
                self.broker_losses += 1
                self._recover(sock)

    def _recover(self, sock: zmq.Socket[bytes]) -> None:
        """Resend idempotent requests without a reply part; fail the others at once."""
        now = time.time()
        lost = perrors.Unavailable("the connection to the broker closed while the request "
                                   "was in flight")
        for rid, held in list(self.pending.items()):
            if held.idem and not held.answered and held.deadline > now:
                try:
                    sock.send_multipart(held.frames, zmq.NOBLOCK)
                    self.resent += 1
                    continue
                except zmq.ZMQError:
                    pass
            del self.pending[rid]
            held.put(lost)

    def _send(self, frames: list[bytes]) -> None:
        sock = self._ensure()
        try:
            # copy=True: for frames this small a zmq.Frame per frame costs more than a memcpy.
            send_frames(sock, frames)
        except zmq.Again:
            raise perrors.Unavailable("the broker connection is full") from None
        finally:
            # A send can consume the edge of ZMQ_FD: look for replies now.
            if _get(sock, _EVENTS) & _POLLIN and self.loop is not None:
                self.loop.call_soon(self._drain)

    def send(self, service: bytes, env: codec.Envelope) -> Parts:
        """Send ``env`` to ``service``; the parts its replies will arrive on.

        A :class:`~protocol.errors.Unavailable` among the parts says the broker
        died with the request (SPEC 2.1).
        """
        frames = mdp.client_request(service, codec.encode(env))
        parts = Parts(frames, bool(env.idem), (env.deadline or 0) / 1000.0)
        self.pending[env.id] = parts
        try:
            self._send(frames)
        except BaseException:
            self.pending.pop(env.id, None)
            raise
        return parts

    def cancel(self, service: bytes, request_id: str) -> None:
        """Tell the broker the answer is no longer wanted (SPEC 2.11); never raises."""
        self.pending.pop(request_id, None)
        if self.sock is None:
            return
        env = codec.Envelope("cancel", id=request_id)
        try:
            self._send(mdp.client_request(service, codec.encode(env)))
        except (zmq.ZMQError, perrors.ProtocolError, ValueError) as exc:
            log.debug("cancel of %s not sent: %r", request_id, exc)

    def close(self) -> None:
        """Stop watching the sockets and close them."""
        open_loop = self.loop is not None and not self.loop.is_closed()
        if self.monitor is not None:
            if open_loop:
                assert self.loop is not None
                self.loop.remove_reader(int(self.monitor.getsockopt(zmq.FD)))
            if self.sock is not None:
                self.sock.disable_monitor()
            self.monitor.close(linger=0)
            self.monitor = None
        if self.sock is not None:
            if open_loop:
                assert self.loop is not None
                self.loop.remove_reader(int(self.sock.getsockopt(zmq.FD)))
            self.sock.close(linger=0)
            self.sock = None
