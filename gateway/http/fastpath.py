"""The ``wsgi`` backend's hot path on the event loop: HTTP in, one broker round trip, HTTP out.

The WSGI front runs in a thread pool (:mod:`gateway.http.asgi`); for a plain
``wsgi`` route (not migrated, service not FATAL) that costs two thread
hand-offs per request and a blocking client. :class:`FastWsgi` serves such a
request on the worker's event loop instead, with the same checks, envelope,
reply validation and problem answers as :class:`gateway.http.bridge.WsgiBackend`
(whose functions it calls), over :class:`AsyncBroker`: one DEALER socket per
front worker, many requests in flight, replies routed by the id in their
header (SPEC 2.1)::

    fast = FastWsgi(gateway_app, broker_endpoint, retry_after=1, fatal=gate)
    bridge = WsgiBridge(wsgi_front, threads=8, fast=fast)

Timeouts follow SPEC 3.5: the request's deadline bounds the wait for the
response head; after it, the route's idle timeout bounds each gap between
parts. A client that goes away (``http.disconnect``) cancels the request at
the broker (SPEC 2.11), and so does any failure after the request was sent.
When the connection to the broker closes (it died; SPEC 2.1), requests with
no reply part yet are sent again if idempotent (GET, HEAD, ...) and answered
503 ``unavailable`` at once otherwise.
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from gateway.http.app import GatewayApp
from gateway.http.asgi import Receive, Scope, Send, response_start, serve_problem_page
from gateway.http.bridge import BadReply, WsgiBackend, _head
from gateway.http.problems import Problem, from_protocol
from protocol import codec, mdp
from protocol import errors as perrors

log = logging.getLogger(__name__)

GRACE = 0.25          # past the deadline, how long the broker's typed answer is awaited
IDLE_DEFAULT = 60.0   # nginx proxy_read_timeout
_GONE = object()      # the client disconnected

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


class Parts:
    """One request in flight: its reply parts as they arrive (one waiter at a time), and
    what a resend after a broker loss needs (its frames, idempotency, deadline)."""

    __slots__ = ("answered", "deadline", "frames", "idem", "items", "waiter")

    def __init__(self, frames: list[bytes], idem: bool, deadline: float) -> None:
        self.items: collections.deque[Any] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.frames = frames
        self.idem = idem
        self.deadline = deadline
        self.answered = False

    def put(self, item: Any) -> None:
        """A part, ``_GONE`` or a protocol error arrived."""
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


class AsyncBroker:
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
        self.endpoint = endpoint
        self.sock: zmq.Socket[bytes] | None = None
        self.monitor: zmq.Socket[bytes] | None = None
        self.pending: dict[str, Parts] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.linked = False
        self.dropped = 0
        self.broker_losses = 0
        self.resent = 0

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
            self._route(frames)

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

    def _route(self, frames: list[bytes]) -> None:
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

    def forget(self, request_id: str) -> None:
        """Stop routing parts of ``request_id`` (it ended)."""
        self.pending.pop(request_id, None)

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


class FastWsgi:
    """The fast path for plain ``wsgi`` routes; anything else falls back to the WSGI front."""

    def __init__(self, app: GatewayApp, endpoint: str, retry_after: int = 1,
                 fatal: Callable[[str], bool] | None = None) -> None:
        self.app = app
        self.broker = AsyncBroker(endpoint)
        self.retry_after = retry_after
        self.fatal = fatal
        self.served = 0

    async def __call__(self, scope: Scope, environ: dict[str, Any], receive: Receive,
                       send: Send) -> bool:
        try:
            call = self.app.prepare(environ)
        except Problem:
            return False  # the WSGI front answers it, the same way as always
        if call is None:
            return False
        return await self.serve_call(call, receive, send)

    async def serve_call(self, call: Any, receive: Receive, send: Send) -> bool:
        """Serve an already prepared request; False when it is not the fast path's."""
        backend = self.app.backends[call.match.route.prefix]
        if type(backend) is not WsgiBackend:
            return False
        if self.fatal is not None and self.fatal(call.target.path):
            return False
        self.served += 1
        await self.serve(backend, call, receive, send)
        return True

    async def serve(self, backend: WsgiBackend, call: Any, receive: Receive, send: Send) -> None:
        """One request through the broker; errors before the head are problem answers."""
        rid = call.request_id
        try:
            body = await read_body(call.environ, receive, backend.limits.max_body)
        except Problem as problem:
            await serve_problem_page(send, problem, rid)
            return
        if body is None:
            return  # the client left while sending its body
        call.environ["wsgi.input"] = io.BytesIO(body)
        service = backend.route.service.encode("utf-8")
        try:
            env = backend.envelope(call)
            env.deadline = int((time.time() + backend.timeout) * 1000)
            queue = self.broker.send(service, env)
        except Problem as problem:
            await serve_problem_page(send, problem, rid)
            return
        finished = False
        # Under the front's own server a disconnect is a callback; elsewhere a task waits
        # on receive() for it.
        hook = call.environ.get("gateway.disconnect")
        watcher = None
        if hook is not None:
            hook.watch(lambda: queue.put(_GONE))
        else:
            watcher = asyncio.get_running_loop().create_task(_watch(receive, queue))
        try:
            try:
                first = await self.part(queue, env.deadline / 1000.0 - time.time() + GRACE,
                                        head=True)
                if first.kind != "http-response" or not isinstance(first.http, dict):
                    raise BadReply("the worker did not answer http-response")
                try:
                    status, pairs = _head(first.http)
                except (KeyError, TypeError, ValueError) as exc:
                    raise BadReply(f"the worker's http-response is malformed: {exc!r}"[:300]) \
                        from None
            except perrors.UnknownService:
                await self.problem(send, perrors.Unavailable("no live worker for this route"),
                                   rid)
                return
            except perrors.ProtocolError as exc:
                finished = isinstance(exc, perrors.RemoteError | BadReply)
                await self.problem(send, exc, rid)
                return
            except ClientLeft:
                return
            headers = backend.forwarding.response_headers(pairs, rid)
            await send(response_start(status, headers))
            idle = getattr(backend.route, "idle_timeout", None) or IDLE_DEFAULT
            part = first
            while True:
                data = part.payload if isinstance(part.payload, bytes) else b""
                if not part.more:
                    finished = True
                    await send({"type": "http.response.body", "body": data})
                    return
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                try:
                    part = await self.part(queue, idle, head=False)
                    if part.kind != "http-body":
                        raise BadReply(f"a {part.kind} part in the middle of a stream")
                except ClientLeft:
                    return
                except perrors.ProtocolError as exc:
                    # Headers are out: all that is left is to cut the connection (SPEC 6.3).
                    finished = isinstance(exc, perrors.RemoteError)
                    raise ResponseAborted(f"the stream ended with {exc.code}") from None
        finally:
            if watcher is not None:
                watcher.cancel()
            else:
                hook.unwatch()
            if finished:
                self.broker.forget(env.id)
            else:
                self.broker.cancel(service, env.id)

    async def part(self, queue: Parts, timeout: float, head: bool) -> codec.Envelope:
        """The next reply part, or the typed error it carries; Timeout when it does not come."""
        try:
            item = await queue.get(max(0.001, timeout))
        except TimeoutError:
            if head:
                raise perrors.Timeout("the worker did not answer in time") from None
            raise perrors.Timeout("the stream was idle for too long") from None
        if item is _GONE:
            raise ClientLeft()
        if isinstance(item, perrors.ProtocolError):
            raise item
        header, body = item
        try:
            env = codec.decode(body, header=header)
        except perrors.EnvelopeError as exc:
            raise BadReply(f"the worker's reply is not a valid envelope: {exc.message}") \
                from None
        if env.kind == "error":
            raise perrors.from_wire(env.error or {})
        return env

    async def problem(self, send: Send, exc: perrors.ProtocolError, rid: str) -> None:
        """Answer a protocol error as the WSGI front's guard would."""
        await serve_problem_page(send, from_protocol(exc, self.retry_after), rid)

    def close(self) -> None:
        """Close the broker socket."""
        self.broker.close()


class ClientLeft(Exception):
    """The HTTP client disconnected while its request was in flight."""


class ResponseAborted(Exception):
    """A streamed response failed after its head was sent: the connection is cut."""


def _wake(waiter: asyncio.Future[None]) -> None:
    """A part's wait timed out: wake its reader, which finds nothing queued."""
    if not waiter.done():
        waiter.set_result(None)


async def _watch(receive: Receive, queue: Parts) -> None:
    """Wake the request's reader with ``_GONE`` when the client disconnects."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            queue.put(_GONE)
            return


async def read_body(environ: dict[str, Any], receive: Receive, cap: int) -> bytes | None:
    """The whole request body (None if the client left); 413 past ``cap``, 400 if short.

    The front's checks already refused bad framing and a Content-Length over
    the cap; a chunked body is counted as it arrives.
    """
    length = environ.get("CONTENT_LENGTH")
    if not environ.get("HTTP_TRANSFER_ENCODING") and length in (None, "", "0"):
        return b""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        data = message.get("body", b"")
        if data:
            size += len(data)
            if size > cap:
                raise Problem(413, f"the request body exceeds {cap} bytes", code="too_large")
            parts.append(data)
        if not message.get("more_body", False):
            break
    body = b"".join(parts)
    if length and len(body) != int(length):
        raise Problem(400, "the request body ended before its Content-Length",
                      code="truncated_body")
    return body
