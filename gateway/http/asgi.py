"""The front as an ASGI application: the request's raw target and headers, then the WSGI front.

The HTTP server under the front (:mod:`gateway.http.server`, uvicorn with the
llhttp parser) parses in C and hands over an ASGI scope that keeps the raw
request target (``raw_path``), which a strict intermediary needs: the path is
read once, byte for byte (:mod:`gateway.http.paths`), never after a server
has percent-decoded it. :class:`WsgiBridge` turns the scope into the WSGI
environ the front has always read and runs the front in a thread pool::

    app = WsgiBridge(build_app(config), threads=8)    # an ASGI callable
    await app(scope, receive, send)

- the environ carries ``RAW_URI`` (raw path plus query), ``PATH_INFO``
  (percent-decoded, as ISO-8859-1 text, as PEP 3333 says), the headers as
  ``HTTP_*`` (repeated fields joined with ``,``; names with ``_`` dropped, so
  ``X_Forwarded_For`` cannot pose as ``X-Forwarded-For``), and
  ``wsgi.input_terminated``;
- the request body streams from ASGI ``receive`` into ``wsgi.input``; the
  response streams back as the front's iterable yields it;
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
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.http.admission import Admission, Gate
from gateway.http.bodies import header_sizes
from gateway.http.forwarding import request_id
from gateway.http.problems import Problem, render
from gateway.http.wsgitypes import WsgiApp

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Coroutine[Any, Any, Message]]
Send = Callable[[Message], Awaitable[None]]
# (scope, environ, receive, send) -> True when served, False to fall back to the WSGI front
FastPath = Callable[[Scope, dict[str, Any], Receive, Send], Awaitable[bool]]
HEALTH = b"/_gateway/health"
HEALTH_BODY = b'{"status":"ok"}'

_ERRORS = sys.stderr
SPOOL_MEMORY = 1 << 20   # a buffered chunked body past this goes to a temporary file
SPOOL_PIECE = 1 << 16    # ... and is replayed to the front in pieces of this size


class ClientGone(Exception):
    """The client disconnected; the response cannot be delivered."""


def environ_from_scope(scope: Scope) -> dict[str, Any] | Problem:
    """The WSGI environ of an ASGI http scope (no ``wsgi.input`` yet), or a 400 problem."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    query: bytes = scope.get("query_string") or b""
    extensions = scope.get("extensions") or {}
    target: bytes | None = extensions.get("gateway.target")
    try:
        raw = raw_path.decode("ascii")
        qs = query.decode("ascii")
        uri = target.decode("ascii") if target else (f"{raw}?{qs}" if qs else raw)
    except UnicodeDecodeError:
        return Problem(400, "ambiguous or malformed path: the request target holds bytes "
                            "that must be percent-encoded", code="bad_path")
    server = scope.get("server") or ("", 0)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote_to_bytes(raw).decode("latin-1"),
        "QUERY_STRING": qs,
        "RAW_URI": uri,
        "SERVER_NAME": str(server[0] or ""),
        "SERVER_PORT": str(server[1] or ""),
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "REMOTE_ADDR": str(client[0] or ""),
        "REMOTE_PORT": str(client[1] or ""),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.errors": _ERRORS,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    if "gateway.disconnect" in extensions:  # the fast path's disconnect callback
        environ["gateway.disconnect"] = extensions["gateway.disconnect"]
    hosts = 0
    headers = scope["headers"]
    # Repeated fields are joined below; the limit on header fields counts them as sent.
    environ["gateway.header_fields"] = len(headers)
    fields: list[str] = []   # the HTTP_* keys, for the header limits (header_sizes)
    for name_b, value_b in headers:
        name = name_b.decode("latin-1")
        value = value_b.decode("latin-1")
        if "_" in name:
            continue
        if name == "content-type":
            key = "CONTENT_TYPE"
        elif name == "content-length":
            key = "CONTENT_LENGTH"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
            if key == "HTTP_HOST":
                hosts += 1
        old = environ.get(key)
        if old is None:
            environ[key] = value
            if key[0] == "H":
                fields.append(key)
        else:
            environ[key] = f"{old},{value}"
    environ["gateway.header_sizes"] = header_sizes(environ, fields)
    if hosts > 1:
        return Problem(400, "more than one Host header field (RFC 9112 3.2)", code="bad_request")
    if not hosts and environ["SERVER_PROTOCOL"] == "HTTP/1.1":
        return Problem(400, "HTTP/1.1 requests need a Host header field (RFC 9112 3.2)",
                       code="bad_request")
    expect = environ.get("HTTP_EXPECT")
    if expect is not None and expect.strip().lower() != "100-continue":
        return Problem(417, "the only expectation this server meets is 100-continue",
                       code="expectation_failed")
    if "HTTP_TRANSFER_ENCODING" in environ and environ["SERVER_PROTOCOL"] == "HTTP/1.0":
        # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing.
        return Problem(400, "Transfer-Encoding in an HTTP/1.0 request", code="bad_framing")
    if "CONTENT_LENGTH" in environ and "," in environ["CONTENT_LENGTH"]:
        return Problem(400, "more than one Content-Length", code="bad_framing")
    return environ


class AsgiInput:
    """``wsgi.input`` fed by ASGI ``receive``: read from a front thread, waiting on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Receive,
                 preloaded: bytes = b"", more: bool = True) -> None:
        self._loop = loop
        self._receive = receive
        self._buffer = bytearray(preloaded)
        self._more = more
        self.disconnected = False

    @property
    def more(self) -> bool:
        """True while body messages may still come from the client."""
        return self._more

    def _fill(self) -> bool:
        if not self._more:
            return False
        message: Message = asyncio.run_coroutine_threadsafe(self._receive(),
                                                             self._loop).result()
        if message["type"] == "http.disconnect":
            self.disconnected = True
            self._more = False
            raise ClientGone("the client went away while sending its body")
        self._buffer += message.get("body", b"")
        self._more = bool(message.get("more_body", False))
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (everything left when negative); b"" at the end."""
        if size is None or size < 0:
            while self._fill():
                pass
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        while len(self._buffer) < size and self._fill():
            pass
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def readline(self, size: int = -1) -> bytes:
        """One line (PEP 3333 asks for it; the front itself never calls it)."""
        while b"\n" not in self._buffer and self._fill():
            pass
        end = self._buffer.find(b"\n")
        cut = len(self._buffer) if end < 0 else end + 1
        if size is not None and size >= 0:
            cut = min(cut, size)
        data = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line


class WsgiBridge:
    """An ASGI app that serves each request with a WSGI app in a thread pool.

    ``gateway`` (the :class:`gateway.http.app.GatewayApp` inside ``app``) lets
    the bridge route a request on the loop, once, for ``admission`` and for
    ``fast`` paths that take the prepared call (``fast.serve_call``).
    """

    def __init__(self, app: WsgiApp, threads: int = 8,
                 fast: FastPath | None = None, gateway: Any = None,
                 admission: Admission | None = None, admin_threads: int = 2,
                 chunked_cap: int = 0) -> None:
        self.app = app
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
                    _quiet_close(closer)

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
            watcher = loop.create_task(_watch_disconnect(
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
            running.add_done_callback(_consume)


class Pump:
    """Hands body chunks from one pool thread to the event loop, with backpressure."""

    LIMIT = 1 << 20

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.cond = threading.Condition()
        self.chunks: list[bytes] = []
        self.size = 0
        self.finished = False
        self.error: BaseException | None = None
        self.stopped = False
        self.gone = False
        self.waiter: asyncio.Future[None] | None = None

    def run(self, iterator: Iterator[bytes]) -> None:
        """The thread's side: iterate the body until it ends, fails or is stopped."""
        try:
            for chunk in iterator:
                if not chunk:
                    continue
                with self.cond:
                    while self.size >= self.LIMIT and not self.stopped:
                        self.cond.wait(1.0)
                    if self.stopped:
                        return
                    self.chunks.append(chunk)
                    self.size += len(chunk)
                    self._wake()
        except BaseException as exc:  # handed to the loop, which cuts the connection
            with self.cond:
                self.error = exc
        finally:
            with self.cond:
                self.finished = True
                self._wake()

    def _wake(self) -> None:
        # Called with the lock held; one call_soon_threadsafe per wait, not per chunk.
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            self.loop.call_soon_threadsafe(_resolve, waiter)

    async def take(self) -> tuple[list[bytes], bool]:
        """(the chunks queued so far, whether the body ended); waits for at least one."""
        while True:
            with self.cond:
                if self.chunks or self.finished or self.gone:
                    chunks, self.chunks, self.size = self.chunks, [], 0
                    self.cond.notify_all()
                    if self.error is not None and not chunks:
                        raise self.error
                    return chunks, self.finished and self.error is None and not self.chunks
                waiter = self.waiter = self.loop.create_future()
            await waiter

    def stop(self) -> None:
        """Ask the thread to stop at its next chunk."""
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def client_gone(self) -> None:
        """The client disconnected (loop side)."""
        self.gone = True
        self.stop()
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            _resolve(waiter)


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _quiet_close(closer: Callable[[], Any]) -> None:
    try:
        closer()
    except ValueError:  # a generator still running in the pump thread; it ends on its own
        pass


async def _watch_disconnect(receive: Receive, pump: Pump,
                            delivered: Callable[[], bool]) -> None:
    """Tell ``pump`` when the client disconnects before ``delivered()`` (the request body
    was read already)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not delivered():
                pump.client_gone()
            return


def declared_length(headers: list[tuple[str, str]]) -> int:
    """The response's ``Content-Length`` as a number, or -1 when it has none (or a bad one)."""
    for name, value in headers:
        if name.lower() == "content-length":
            value = value.strip()
            return int(value) if value.isdigit() and value.isascii() else -1
    return -1


async def buffer_chunked(receive: Receive, cap: int) -> Receive | Problem | None:
    """Read a chunked body ahead, up to ``cap`` + 1 bytes; a ``receive`` that replays it.

    None when the body never completed: llhttp refused a malformed chunk (and
    :class:`~gateway.http.server.ProblemProtocol` answered 400 and closed), or
    the client went away. Past ``cap`` the rest still streams, so the front
    answers its usual 413. The body is held in memory up to ``SPOOL_MEMORY``
    bytes and in an unlinked temporary file beyond (nginx's
    ``client_body_buffer_size`` and ``client_body_temp_path``), so a large
    upload does not grow the worker; a temporary file that cannot be written
    (a full disk) is a 503 problem, never a hang.
    """
    # Not a with-block: the replay below owns the file and closes it once read out; a front
    # that answers without reading the body (404, 401) drops the replay, and the unlinked
    # file goes with it when it is collected.
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
    size = 0
    more = True
    try:
        while more and size <= cap:
            message = await receive()
            if message["type"] == "http.disconnect":
                spool.close()
                return None
            data = message.get("body", b"")
            if data:
                size += len(data)
                spool.write(data)  # page-cache writes of one chunk: short enough for the loop
            more = bool(message.get("more_body", False))
        spool.seek(0)
    except OSError as exc:
        spool.close()
        log.warning("cannot buffer a chunked request body: %s", exc)
        return Problem(503, "the gateway cannot buffer the request body now",
                       code="unavailable", headers=[("Retry-After", "1")])

    async def replaying() -> Message:
        if spool.closed:
            return await receive()
        piece = spool.read(SPOOL_PIECE)
        if piece:
            return {"type": "http.request", "body": piece, "more_body": True}
        spool.close()
        return {"type": "http.request", "body": b"", "more_body": more}
    return replaying


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
