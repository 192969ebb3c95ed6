"""The ``wsgi`` backend's hot path on the event loop: HTTP in, one broker round trip, HTTP out.

The WSGI front runs in a thread pool (:mod:`gateway.http.asgi`); for a plain
``wsgi`` route (not migrated, service not FATAL) that costs two thread
hand-offs per request and a blocking client. :class:`FastWsgi` serves such a
request on the worker's event loop instead, with the same checks, envelope,
reply validation and problem answers as :class:`gateway.http.bridge.WsgiBackend`
(whose functions it calls), over one broker link per front worker
(:mod:`gateway.http.brokerlink`: ZMTP from the event loop for a local broker,
else a libzmq DEALER), many requests in flight, replies routed by the id in
their header (SPEC 2.1)::

    fast = FastWsgi(gateway_app, broker_endpoint, retry_after=1, fatal=gate, link="auto")
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
import io
import logging
import time
from collections.abc import Callable
from typing import Any

from gateway.http.app import GatewayApp
from gateway.http.asgi import Receive, Scope, Send, serve_problem_page
from gateway.http.bridge import BadReply, WsgiBackend, _head
from gateway.http.brokerlink import BrokerLink, Parts, link_kind
from gateway.http.problems import Problem, from_protocol
from gateway.http.zmqlink import AsyncBroker
from gateway.http.zmtplink import ZmtpBroker
from protocol import codec
from protocol import errors as perrors

log = logging.getLogger(__name__)

GRACE = 0.25          # past the deadline, how long the broker's typed answer is awaited
IDLE_DEFAULT = 60.0   # nginx proxy_read_timeout
_GONE = object()      # the client disconnected

def open_link(endpoint: str, setting: str = "auto") -> BrokerLink:
    """The broker link :func:`gateway.http.brokerlink.link_kind` picks for ``endpoint``;
    nothing connects before the first send."""
    if link_kind(endpoint, setting) == "zmtp":
        return ZmtpBroker(endpoint)
    return AsyncBroker(endpoint)


class FastWsgi:
    """The fast path for plain ``wsgi`` routes; anything else falls back to the WSGI front."""

    def __init__(self, app: GatewayApp, endpoint: str, retry_after: int = 1,
                 fatal: Callable[[str], bool] | None = None, link: str = "auto") -> None:
        self.app = app
        self.broker = open_link(endpoint, link)
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
        try:
            env = backend.envelope(call)
        except Problem as problem:
            await serve_problem_page(send, problem, rid)
            return
        await self.exchange(backend, backend.route.service.encode("utf-8"), env, rid,
                            call.environ.get("gateway.disconnect"), receive, send)

    async def exchange(self, backend: WsgiBackend, service: bytes, env: codec.Envelope,
                       rid: str, hook: Any, receive: Receive, send: Send) -> None:
        """Send ``env`` to ``service`` and answer the client with its reply parts.

        ``hook`` is the server's disconnect callback (None elsewhere: a task then
        waits on ``receive`` for the client to leave).
        """
        try:
            env.deadline = int((time.time() + backend.timeout) * 1000)
            queue = self.broker.send(service, env)
        except Problem as problem:
            await serve_problem_page(send, problem, rid)
            return
        finished = False
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
                    _, pairs = _head(first.http)   # the status: checked, an int
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
            await send({"type": "http.response.start", "status": first.http["status"],
                        "headers": backend.forwarding.response_head(pairs, rid)})
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


async def _watch(receive: Receive, queue: Parts) -> None:
    """Wake the request's reader with ``_GONE`` when the client disconnects."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            queue.put(_GONE)
            return


async def read_body(environ: dict[str, Any], receive: Receive, cap: int) -> bytes | None:
    """The whole request body of ``environ`` (None if the client left); see :func:`receive_body`."""
    return await receive_body(receive, cap, environ.get("CONTENT_LENGTH"),
                              bool(environ.get("HTTP_TRANSFER_ENCODING")))


async def receive_body(receive: Receive, cap: int, length: str | None,
                       chunked: bool) -> bytes | None:
    """The whole request body (None if the client left); 413 past ``cap``, 400 if short.

    The front's checks already refused bad framing and a Content-Length over
    the cap; a chunked body is counted as it arrives.
    """
    if not chunked and length in (None, "", "0"):
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
