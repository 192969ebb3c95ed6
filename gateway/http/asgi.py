"""The front as an ASGI application: the request's raw target and headers, then the WSGI front.

The HTTP server under the front (:mod:`gateway.http.server`, uvicorn with the
llhttp parser) parses in C and hands over an ASGI scope that keeps the raw
request target (``raw_path``), which a strict intermediary needs: the path is
read once, byte for byte (:mod:`gateway.http.paths`), never after a server
has percent-decoded it. :class:`WsgiBridge` turns the scope into the WSGI
environ the front has always read and runs the front in a thread pool::

    app = WsgiBridge(build_app(config), threads=8)    # an ASGI callable
    await app(scope, receive, send)

- the environ carries ``RAW_URI``, ``PATH_INFO`` and the headers as
  ``HTTP_*``, read once (:mod:`gateway.http.environ`);
- the request body streams from ASGI ``receive`` into ``wsgi.input``; the
  response streams back as the front's iterable yields it
  (:mod:`gateway.http.pump`; a chunked request body is read ahead,
  :mod:`gateway.http.chunked`);
- a client that goes away (``http.disconnect``, or a failed send) closes the
  front's iterable, so a backend stops (a broker request is cancelled).

Backends that have an asyncio implementation (``fast`` below) are served on
the event loop without the thread hop; everything else runs the WSGI front.

Overload never reaches the gateway's own endpoints: ``/_gateway/health`` is
answered on the event loop, before admission and the thread pool, and the
rest of ``/_gateway/`` (the admin API, the dashboard) runs in a small pool of
its own, so neither waits behind requests for saturated backends. Requests
for routes pass admission control (:mod:`gateway.http.admission`) on the
loop before any thread or broker work: beyond a route's concurrency limit
and queue time they are answered 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.http.admission import Admission, Gate
from gateway.http.asgitypes import Message, Receive, Scope, Send
from gateway.http.chunked import SPOOL_MEMORY, SPOOL_PIECE, buffer_chunked, declared_length
from gateway.http.environ import AsgiInput, ClientGone, environ_from_scope
from gateway.http.forwarding import request_id
from gateway.http.problems import Problem, render
from gateway.http.pump import Pump, consume, quiet_close, watch_disconnect
from gateway.http.wsgitypes import WsgiApp

# The scope reader, the body pump and the chunked buffer have modules of their own
# (environ.py, pump.py, chunked.py); their names stay importable from here.
__all__ = ["HEALTH", "HEALTH_BODY", "SPOOL_MEMORY", "SPOOL_PIECE", "AsgiInput", "ClientGone",
           "FastPath", "Message", "Pump", "Receive", "Scope", "Send", "WsgiBridge",
           "buffer_chunked", "declared_length", "environ_from_scope", "response_start",
           "serve_problem_page"]

log = logging.getLogger(__name__)

# (scope, environ, receive, send) -> True when served, False to fall back to the WSGI front
FastPath = Callable[[Scope, dict[str, Any], Receive, Send], Awaitable[bool]]
# (scope, receive, send) -> True when served, before any environ is made
ScopePath = Callable[[Scope, Receive, Send], Awaitable[bool]]
HEALTH = b"/_gateway/health"
HEALTH_BODY = b'{"status":"ok"}'


class WsgiBridge:
    """An ASGI app that serves each request with a WSGI app in a thread pool.

    ``gateway`` (the :class:`gateway.http.app.GatewayApp` inside ``app``) lets
    the bridge route a request on the loop, once, for ``admission`` and for
    ``fast`` paths that take the prepared call (``fast.serve_call``).
    """

    def __init__(self, app: WsgiApp, threads: int = 8,
                 fast: FastPath | None = None, gateway: Any = None,
                 admission: Admission | None = None, admin_threads: int = 2,
                 chunked_cap: int = 0, onepass: ScopePath | None = None) -> None:
        self.app = app
        # Plain wsgi routes, read from the scope straight to their envelope
        # (gateway.http.onepass); what it declines takes the path below.
        self.onepass = onepass
        self.fast = fast
        self.gateway = gateway
        self.admission = admission if admission else None
        # A chunked request body is read whole (up to this many bytes) before any backend
        # sees the request, as nginx's proxy_request_buffering does: a malformed chunk
        # (size -1, a bad extension, a size past 2^64) is refused with 400 by the parser
        # before a single byte went upstream. 0 streams it instead.
        self.chunked_cap = chunked_cap
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="front")
        # The admin API and dashboard: never queued behind requests for the backends.
        self.admin_pool = ThreadPoolExecutor(max_workers=max(1, admin_threads),
                                             thread_name_prefix="front-admin")
        self._serve_call = getattr(fast, "serve_call", None)
        self._route_on_loop = gateway is not None and (
            self.admission is not None or self._serve_call is not None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.lifespan(receive, send)
            return
        if kind != "http":
            return  # websockets are not carried
        if self.onepass is not None and await self.onepass(scope, receive, send):
            return
        environ = environ_from_scope(scope)
        if isinstance(environ, Problem):
            await self.problem(environ, send)
            return
        scope["gateway.environ"] = environ  # what gateway.metrics labels the request with
        if scope.get("raw_path") == HEALTH and environ["REQUEST_METHOD"] in ("GET", "HEAD"):
            await self.health(environ, send)
            return
        if self.chunked_cap and "HTTP_TRANSFER_ENCODING" in environ:
            buffered = await buffer_chunked(receive, self.chunked_cap)
            if buffered is None:
                return  # the parser refused the body (it answered 400) or the client left
            if isinstance(buffered, Problem):
                await self.problem(buffered, send)
                return
            receive = buffered
        if not self._route_on_loop:
            if self.fast is not None and await self.fast(scope, environ, receive, send):
                return
            await self.run_wsgi(environ, receive, send, self._pool_for(environ, None))
            return
        try:
            call = self.gateway.prepare(environ)
        except Problem:
            call = None  # the WSGI front answers it, the same way as always
        gate: Gate | None = None
        if call is not None and self.admission is not None:
            gate = self.admission.gate(call)
            if gate is not None and not await gate.acquire():
                await self.problem(gate.refusal(self.admission.retry_after), send,
                                   call.request_id)
                return
        try:
            if call is not None and self._serve_call is not None and \
                    await self._serve_call(call, receive, send):
                return
            await self.run_wsgi(environ, receive, send, self._pool_for(environ, call))
        finally:
            if gate is not None:
                gate.release()

    def _pool_for(self, environ: dict[str, Any], call: Any) -> ThreadPoolExecutor:
        """The admin pool for the gateway's own endpoints, the request pool for the rest."""
        if call is not None:
            return self.pool
        # Routed on the loop: its strict path; else the raw target (the front still reads it
        # strictly; a misread only picks the other pool).
        path = environ.get("gateway.path") or environ["RAW_URI"]
        return self.admin_pool if path.startswith("/_gateway/") else self.pool

    async def health(self, environ: dict[str, Any], send: Send) -> None:
        """``/_gateway/health`` on the loop: it answers while every thread is busy."""
        head = environ["REQUEST_METHOD"] == "HEAD"
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(HEALTH_BODY)),
            (b"cache-control", b"no-store"),
            (b"x-request-id", request_id(environ).encode("ascii"))]})
        await send({"type": "http.response.body", "body": b"" if head else HEALTH_BODY})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Answer the server's startup and shutdown messages; close the front at shutdown."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                # The fast path's broker link cancels its reconnect task: let that run
                # on this loop before the server closes it, or the task dies pending.
                await asyncio.sleep(0)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """Release the front's backends and the thread pool."""
        # The front may sit inside wrappers (the FATAL gate, the problem guard): close the
        # first layer that can release the backends.
        layer: Any = self.app
        while layer is not None:
            closer = getattr(layer, "close", None)
            if closer is not None:
                closer()
                break
            layer = getattr(layer, "app", None)
        closer = getattr(self.fast, "close", None)
        if closer is not None:
            closer()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.admin_pool.shutdown(wait=False, cancel_futures=True)

    async def problem(self, problem: Problem, send: Send, rid: str = "") -> None:
        """Answer ``problem`` from the loop (errors found before the front runs)."""
        import uuid
        await serve_problem_page(send, problem, rid or uuid.uuid4().hex)

    async def run_wsgi(self, environ: dict[str, Any], receive: Receive, send: Send,
                       pool: ThreadPoolExecutor | None = None) -> None:
        """Run the WSGI front for one request (in ``pool``), streaming both bodies."""
        loop = asyncio.get_running_loop()
        pool = pool or self.pool
        # The body is read as the front asks for it, never ahead: the front answers
        # 413, 404 or 401 before a client sends a body it would refuse.
        has_body = bool(environ.get("HTTP_TRANSFER_ENCODING")) or \
            environ.get("CONTENT_LENGTH", "0") not in ("", "0")
        # Kept here: a front layer may replace wsgi.input (a migrated route reads the body
        # ahead to replay it to the candidate), and the stream asks this one.
        body_in = environ["wsgi.input"] = AsgiInput(loop, receive, b"", has_body)
        head: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info is not None and head and head[0] is True:
                raise exc_info[1].with_traceback(exc_info[2])
            head[:] = [status, headers]
            return _no_write

        def begin() -> tuple[Iterable[bytes], Iterator[bytes], bytes | None, bool]:
            result = self.app(environ, start_response)
            if isinstance(result, list):
                return result, iter(()), b"".join(result), True
            iterator = iter(result)
            if head:
                # The head is known: it goes out now, whatever the body does next.
                return result, iterator, None, False
            # The head comes with the first chunk (PEP 3333 lets start_response wait for it).
            for chunk in iterator:
                if chunk or head:
                    return result, iterator, chunk, False
            return result, iterator, b"", True

        try:
            result, iterator, first, done = await loop.run_in_executor(pool, begin)
        except ClientGone:
            return
        closed: list[bool] = []

        def close_once() -> None:
            # The body is closed once: by the stream when it stops early (to release a
            # thread waiting on the backend), else here when the response is over.
            if not closed:
                closed.append(True)
                closer = getattr(result, "close", None)
                if closer is not None:
                    quiet_close(closer)

        try:
            status, headers = head
            head.insert(0, True)
            await send(response_start(status, headers))
            if done:
                await send({"type": "http.response.body", "body": first or b""})
                return
            if first:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            await self.stream(loop, pool, iterator, body_in, receive, send,
                              close_once, declared_length(headers) - len(first or b""))
        except ClientGone as exc:  # the client went away while its body was read
            log.debug("client gone mid-request: %r", exc)
        finally:
            await loop.run_in_executor(pool, close_once)

    async def stream(self, loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor,
                     iterator: Iterator[bytes], body_in: AsgiInput, receive: Receive,
                     send: Send, release: Callable[[], None], left: int = -1) -> None:
        """Send the rest of a streamed body: a pool thread iterates, the loop sends.

        Chunks that are ready together go out as one write, and a lone chunk goes
        at once; the thread waits once ``Pump.LIMIT`` bytes are queued and not
        sent. A client that disconnects (seen by a watcher once the request body
        is read) stops the stream at its next chunk; a thread still waiting on
        the backend is released by closing the body from another thread. A
        client that leaves once it has every byte of a declared ``Content-Length``
        (``left`` bytes still to send at the start; -1 when none was declared)
        has not abandoned anything: the body is read to its end and closed as
        usual, which is what a migration waits for before it sends its shadow copy.
        """
        pump = Pump(loop)
        running = loop.run_in_executor(pool, pump.run, iterator)
        watcher = None
        sent = [0]
        if not body_in.more:
            watcher = loop.create_task(watch_disconnect(
                receive, pump, lambda: 0 <= left <= sent[0]))
        try:
            while True:
                chunks, finished = await pump.take()
                if pump.gone:
                    return
                if chunks:
                    data = b"".join(chunks)
                    sent[0] += len(data)
                    await send({"type": "http.response.body", "body": data,
                                "more_body": True})
                if finished:
                    await send({"type": "http.response.body", "body": b""})
                    return
        finally:
            if watcher is not None:
                watcher.cancel()
            if not pump.finished:
                pump.stop()
                # The thread may be blocked on the backend: closing the body (a
                # connection, a broker request) from another thread releases it. The
                # thread is not waited for: it ends at its next chunk or error.
                await loop.run_in_executor(pool, release)
            running.add_done_callback(consume)


def _no_write(data: bytes) -> None:
    raise NotImplementedError("the front never uses the write() callable")


def response_start(status: str, headers: list[tuple[str, str]]) -> Message:
    """The ASGI ``http.response.start`` message of a WSGI status line and header pairs."""
    return {"type": "http.response.start", "status": int(status.split(" ", 1)[0]),
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]}


async def serve_problem_page(send: Send, problem: Problem, rid: str) -> None:
    """Send ``problem`` as a complete response (errors found on the event loop)."""
    status, headers, body = render(problem, rid)
    await send(response_start(status, headers))
    await send({"type": "http.response.body", "body": body})
