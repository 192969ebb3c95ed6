"""The ASGI layer that measures every request and serves ``/_gateway/metrics``.

::

    app = Observed(WsgiBridge(...), obs, http_config)   # one per front worker
    ProblemProtocol.on_refusal = app.refused            # parser-level refusals

It sits outside the front (:class:`gateway.http.asgi.WsgiBridge`), so the
fast path, the WSGI front, streamed answers and the loop's own refusals are
all seen the same way: the clock starts at the request head and stops when
the last body byte is handed to the server, and the bytes are counted as
they pass. The labels come from what the front wrote into the request's
environ (``scope["gateway.environ"]``): the matched route
(``gateway.route``), and for a migrated route the runtime the migration
chose (``gateway.runtime``, ``gateway.service``, ``gateway.migration``).
A route that is not migrated runs on its service's configured runtime.

A finished request is only recorded here (one tuple of the values at hand);
:mod:`gateway.metrics.records` counts the records and formats their log
lines in batches, off the request path, and before anything reads or writes
out the counts or the log.

``/_gateway/metrics`` is answered here, before admission and the request
pool (its collection reads files, so it runs in the loop's default
executor): Prometheus text format, for loopback clients (under the
forwarding rule of the admin API) or with ``Authorization: Bearer <admin
token>``; anyone else gets 403 problem+json.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gateway.http.app import host_allowed
from gateway.http.asgi import environ_from_scope, serve_problem_page
from gateway.http.config import GatewayHttpConfig
from gateway.http.forwarding import Forwarding
from gateway.http.problems import PROBLEM_TYPE, Problem
from gateway.metrics.accesslog import AccessLog
from gateway.metrics.config import ObservabilityConfig
from gateway.metrics.http import FLUSH_S, HttpMetrics
from gateway.metrics.otlp import SpanExporter
from gateway.metrics.records import BATCH, DRAIN_S, Records

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Asgi = Callable[..., Awaitable[None]]
METRICS_PATH = b"/_gateway/metrics"
CLIENT_CLOSED = 499   # nginx's status for a client that left before the answer


class Observed:
    """Measures requests around ``app`` (metrics, access log); serves the metrics endpoint."""

    def __init__(self, app: Asgi, obs: ObservabilityConfig, config: GatewayHttpConfig,
                 estate: Any = None) -> None:
        self.app = app
        self.obs = obs
        self.metrics = HttpMetrics() if obs.metrics else None
        self.log = AccessLog(obs.access_log, obs.access_log_format) if obs.access_log else None
        self.spans = SpanExporter(obs.otlp_endpoint) if obs.otlp_endpoint else None
        self.runtimes = dict(obs.runtimes)
        # A request only appends to this; the counting and the log lines are done in batches
        # (gateway.metrics.records), drained before the counts or the log are read or written.
        self.records = Records(self.metrics, self.log, self.runtimes)
        if self.metrics is not None:
            self.metrics.before = self.drain
        if self.log is not None:
            self.log.before = self.drain
        self.forwarding = Forwarding(config.trusted_proxies, config.via, config.preserve_host)
        self.allowed_hosts = config.allowed_hosts
        self.estate = estate            # the gateway config, for an EstateCollector
        self._registry: Any = None
        self._flusher: asyncio.Task[None] | None = None

    # -- the ASGI side ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("raw_path") == METRICS_PATH and self.metrics is not None:
            await self.serve_metrics(scope, send)
            return
        # Measured here rather than in a method of its own: one coroutine less per request.
        state = _State(receive, send)
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight += 1
        try:
            await self.app(scope, state.receive, state.send)
        finally:
            if metrics is not None:
                metrics.in_flight -= 1
            self.finish(scope, state, time.perf_counter() - state.started)

    def _lifespan_send(self, send: Any) -> Any:
        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self._flusher = asyncio.get_running_loop().create_task(self._flush_often())
            elif message["type"] == "lifespan.shutdown.complete":
                self.close()
            await send(message)
        return lifespan_send

    async def _flush_often(self) -> None:
        ticks = max(1, round(FLUSH_S / DRAIN_S))
        while True:
            for _ in range(ticks):
                await asyncio.sleep(DRAIN_S)
                self.drain()
            self.flush()

    def drain(self) -> None:
        """Count and format the requests recorded so far; never raises."""
        try:
            self.records.drain()
        except Exception:  # a metrics failure must never take the front down
            log.exception("recording requests failed")

    def flush(self) -> None:
        """Write this worker's counts and log lines out; never raises."""
        self.drain()
        try:
            if self.metrics is not None:
                self.metrics.flush()
            if self.log is not None:
                self.log.flush()
        except Exception:  # a metrics failure must never take the front down
            log.exception("flushing metrics failed")

    def close(self) -> None:
        """Stop the timer, flush, close the log (the worker is shutting down)."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        self.flush()
        if self.log is not None:
            self.log.close()
        if self.spans is not None:
            self.spans.close()

    def finish(self, scope: Scope, state: _State, duration: float) -> None:
        """Record one finished request (see :data:`gateway.metrics.records.FIELDS`);
        never raises."""
        try:
            environ: dict[str, Any] = scope.get("gateway.environ") or _NO_ENVIRON
            status = state.status if state.done and state.status else CLIENT_CLOSED
            records = self.records
            if self.metrics is None and self.log is None:
                pass                 # spans only (below)
            elif self.log is None:
                # Only the metrics read this record: the log's fields are not looked up.
                get = environ.get
                records.add((
                    state.when, duration, 0.0, status, state.bytes_in, state.bytes_out,
                    state.code, scope.get("method", ""), "", None, get("gateway.route"),
                    get("gateway.service"), get("gateway.runtime"), get("gateway.upstream"),
                    None, None, None, None, None, None, None, get("PATH_INFO"),
                    "gateway.path" in environ))
            else:
                # Without an environ (refused before the front made one) the headers are
                # read from the scope.
                fields: dict[str, Any] = environ or _headers(scope)
                field = fields.get
                records.add((
                    state.when, duration, state.ttfb, status, state.bytes_in, state.bytes_out,
                    state.code, scope.get("method", ""), scope.get("http_version", "1.1"),
                    scope.get("client"), field("gateway.route"), field("gateway.service"),
                    field("gateway.runtime"), field("gateway.upstream"),
                    field("gateway.migration"), field("gateway.request_id"),
                    field("gateway.trace_id"),
                    field("RAW_URI") or scope.get("raw_path"), field("HTTP_AUTHORIZATION"),
                    field("HTTP_REFERER"), field("HTTP_USER_AGENT"), field("PATH_INFO"),
                    "gateway.path" in environ))
            if len(records.pending) >= BATCH:
                records.drain()
            if self.spans is not None and "gateway.span_id" in environ:
                self.span(environ, scope.get("method", ""), status, state.when, duration,
                          self.labels(environ))
        except Exception:
            log.exception("recording a request failed")

    def span(self, environ: dict[str, Any], method: str, status: int, when: float,
             duration: float, labels: tuple[str, str, str, str, str]) -> None:
        """Queue the gateway's span of a request (OpenTelemetry HTTP server conventions)."""
        assert self.spans is not None
        route, backend, service, runtime, upstream = labels
        self.spans.add(
            environ["gateway.trace_id"], environ["gateway.span_id"],
            environ.get("gateway.parent_span_id", ""),
            f"{method} {route}" if route else method, when, when + duration, status,
            {"http.request.method": method, "http.response.status_code": status,
             "http.route": route, "url.path": environ.get("PATH_INFO", ""),
             "gateway.request_id": environ.get("gateway.request_id", ""),
             "gateway.backend": backend, "gateway.service": service,
             "gateway.runtime": runtime, "gateway.upstream": upstream,
             "gateway.migration": environ.get("gateway.migration", "")})

    def labels(self, environ: dict[str, Any]) -> tuple[str, str, str, str, str]:
        """(route, backend, service, runtime, upstream) of a request."""
        get = environ.get
        return self.records.labels_of(get("gateway.route"), get("gateway.service"),
                                      get("gateway.runtime"), get("gateway.upstream"),
                                      get("PATH_INFO"), "gateway.path" in environ)

    def refused(self, problem: Problem, client: Any = None, rid: str = "") -> None:
        """Count and log a refusal made by the HTTP parser layer (it never reaches the app).

        The line has no request (``"-"``, as nginx logs a request it could not
        read) and no route; ``rid`` is the request id of the problem answered.
        It is recorded like a request, so the log keeps this process's order.
        """
        if self.metrics is None and self.log is None:
            return
        try:
            self.records.add((time.time(), 0.0, 0.0, problem.status, 0, 0, problem.code, None,
                              "", client, None, None, None, None, None, rid, None, None, None,
                              None, None, None, False))
        except Exception:
            log.exception("recording a refusal failed")

    # -- the endpoint ----------------------------------------------------------------------

    async def serve_metrics(self, scope: Scope, send: Any) -> None:
        """``/_gateway/metrics``: the text format, to loopback clients or the admin token."""
        rid = uuid.uuid4().hex
        environ = environ_from_scope(scope)
        if isinstance(environ, Problem):
            await serve_problem_page(send, environ, rid)
            return
        try:
            self.authorise(environ)
            if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
                raise Problem(405, "GET only", headers=[("Allow", "GET, HEAD")])
            loop = asyncio.get_running_loop()
            self.flush()
            body, ctype = await loop.run_in_executor(None, self.render)
        except Problem as problem:
            await serve_problem_page(send, problem, rid)
            return
        head = environ["REQUEST_METHOD"] == "HEAD"
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", ctype.encode("latin-1")),
            (b"content-length", b"%d" % len(body)), (b"cache-control", b"no-store"),
            (b"x-request-id", rid.encode("ascii"))]})
        await send({"type": "http.response.body", "body": b"" if head else body})

    def authorise(self, environ: dict[str, Any]) -> None:
        """403 unless the client is loopback (forwarding rule) or shows the admin token."""
        if self.allowed_hosts and not host_allowed(environ.get("HTTP_HOST", ""),
                                                   self.allowed_hosts):
            raise Problem(400, "the Host header names a host this gateway does not serve "
                          "(http.allowed_hosts)", code="host_not_allowed")
        if all(_loopback(a) for a in self.forwarding.client_chain(environ)):
            return
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip() and self._token_ok(token.strip()):
            return
        raise Problem(403, "the metrics answer loopback clients, or others with "
                      "Authorization: Bearer <admin token>", code="forbidden")

    def _token_ok(self, token: str) -> bool:
        if not self.obs.token_file:
            return False
        try:
            with open(self.obs.token_file, encoding="ascii") as fh:
                expected = fh.read().strip()
        except OSError:
            return False
        return bool(expected) and hmac.compare_digest(token.encode(), expected.encode())

    def render(self) -> tuple[bytes, str]:
        """Every front worker's metrics (and the estate's, when collected), as text."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        if self._registry is None:
            self._registry = build_registry(self.estate)
        return generate_latest(self._registry), CONTENT_TYPE_LATEST


def build_registry(estate_config: Any) -> Any:
    """A registry over the multi-process files, plus the estate's collector for a
    :class:`~gateway.config.GatewayConfig` (the arbiter's front has one; a bare front not)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    if estate_config is not None:
        from gateway.metrics.estate import EstateCollector
        registry.register(EstateCollector(estate_config))
    return registry


class _State:
    """One request's counts; its ``receive`` and ``send`` wrap the server's and count.

    Bound methods of the state, rather than closures made per request: the
    wrappers sit on every message of every request.
    """

    __slots__ = ("_receive", "_send", "bytes_in", "bytes_out", "code", "done", "gone",
                 "headers", "started", "status", "ttfb", "when")

    def __init__(self, receive: Any, send: Any) -> None:
        self._receive = receive
        self._send = send
        self.started = time.perf_counter()
        self.when = time.time()
        self.status = 0
        self.done = False       # the last body message was handed to the server
        self.gone = False       # the client disconnected before that
        self.ttfb = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.headers: Any = ()  # the response head's fields, read only when needed
        self.code = ""          # a problem answer's code, for the rejection counter

    async def receive(self) -> Message:
        message: Message = await self._receive()
        body = message.get("body")
        if body:
            self.bytes_in += len(body)
        elif message["type"] == "http.disconnect" and not self.done and \
                not 0 <= self.length() <= self.bytes_out:
            # 499 unless the whole answer (every declared byte) was handed over already
            self.gone = True
        return message

    def send(self, message: Message) -> Awaitable[None]:
        # Not a coroutine: it counts, then hands back the server's own awaitable, so each
        # message costs no coroutine of its own (the caller awaits the server's send).
        if message["type"] == "http.response.body":
            body = message.get("body", b"")
            self.bytes_out += len(body)
            if not message.get("more_body") and not self.gone:
                self.done = True
            if self.status >= 400 and not self.code and body and self.problem():
                self.code = _problem_code(body)
        elif message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.ttfb = time.perf_counter() - self.started
            self.headers = message.get("headers", ())
        return self._send(message)  # type: ignore[no-any-return]

    def length(self) -> int:
        """The declared Content-Length of the answer, -1 when none (read on a disconnect)."""
        for name, value in self.headers:
            if len(name) == 14 and name.lower() == b"content-length" and value.isdigit():
                return int(value)
        return -1

    def problem(self) -> bool:
        """Whether the answer is problem+json (read for error statuses only)."""
        for name, value in self.headers:
            if len(name) == 12 and name.lower() == b"content-type":
                return bool(value.startswith(_PROBLEM))
        return False


_PROBLEM = PROBLEM_TYPE.encode()
_NO_ENVIRON: dict[str, Any] = {}   # read only: a request the front refused before its environ


def _problem_code(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    code = doc.get("code") if isinstance(doc, dict) else None
    return code if isinstance(code, str) else ""


def _headers(scope: Scope) -> dict[str, str]:
    out = {}
    for name, value in scope.get("headers", ()):
        out["HTTP_" + bytes(name).decode("latin-1").upper().replace("-", "_")] = \
            bytes(value).decode("latin-1")
    return out


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False
