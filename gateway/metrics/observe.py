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
from gateway.metrics.accesslog import AccessLog, Entry
from gateway.metrics.config import ObservabilityConfig
from gateway.metrics.http import FLUSH_S, METHODS, HttpMetrics
from gateway.metrics.otlp import SpanExporter

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Asgi = Callable[..., Awaitable[None]]
METRICS_PATH = b"/_gateway/metrics"
# Problem codes the front answers when it refuses a request itself (limits, framing, a
# strict path, Host, admission, slow or greedy clients): gateway_http_rejections_total.
REFUSALS = frozenset({"too_large", "uri_too_long", "header_too_large", "headers_too_large",
                      "bad_framing", "bad_path", "bad_request", "truncated_body",
                      "host_not_allowed", "expectation_failed", "overloaded",
                      "request_timeout", "too_many_connections"})
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
        await self.measure(scope, receive, send)

    def _lifespan_send(self, send: Any) -> Any:
        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self._flusher = asyncio.get_running_loop().create_task(self._flush_often())
            elif message["type"] == "lifespan.shutdown.complete":
                self.close()
            await send(message)
        return lifespan_send

    async def _flush_often(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            self.flush()

    def flush(self) -> None:
        """Write this worker's counts and log lines out; never raises."""
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

    async def measure(self, scope: Scope, receive: Any, send: Any) -> None:
        """Serve one request through ``app``, counting what passes."""
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

    def finish(self, scope: Scope, state: _State, duration: float) -> None:
        """Count and log one finished request; never raises."""
        try:
            environ: dict[str, Any] = scope.get("gateway.environ") or {}
            route, backend, service, runtime, upstream = self.labels(environ)
            status = state.status if state.done and state.status else CLIENT_CLOSED
            method = scope.get("method", "")
            if self.metrics is not None:
                self.metrics.request(
                    (method if method in METHODS else "other", str(status), route, backend,
                     service, runtime), duration, state.bytes_in, state.bytes_out)
                if state.code in REFUSALS:
                    self.metrics.rejection(state.code, str(status))
            if self.log is not None:
                self.log.write(self.entry(scope, environ, state, duration, status,
                                          (route, backend, service, runtime, upstream)))
            if self.spans is not None and "gateway.span_id" in environ:
                self.span(environ, method, status, state.when, duration,
                          (route, backend, service, runtime, upstream))
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
        route = environ.get("gateway.route")
        if route is None:
            if "gateway.path" in environ:
                return "/_gateway", "gateway", "", "gateway", ""
            return "", "", "", "", ""   # refused before a route matched (400, 404, 414, ...)
        backend = route.backend
        service = environ.get("gateway.service") or route.service
        if backend == "rpc" and not service:
            # POST <prefix>/<service>/<method>: only configured names, so the label is bounded.
            rest = environ.get("PATH_INFO", "")[len(route.prefix.rstrip("/")):]
            name = rest.lstrip("/").split("/", 1)[0]
            service = name if name in self.runtimes else ("other" if name else "")
        runtime = environ.get("gateway.runtime") or self.runtimes.get(service) or \
            ("http" if backend == "http" else backend)
        if backend == "http":
            upstream = environ.get("gateway.upstream") or route.upstream
        elif backend == "static":
            upstream = ""
        else:
            upstream = f"broker:{service}" if service else "broker"
        return route.prefix, backend, service, runtime, upstream

    def entry(self, scope: Scope, environ: dict[str, Any], state: _State, duration: float,
              status: int, labels: tuple[str, str, str, str, str]) -> Entry:
        """The access-log entry of a finished request."""
        headers = environ or _headers(scope)
        target = environ.get("RAW_URI") or (scope.get("raw_path") or b"").decode("latin-1")
        client = scope.get("client") or ("", 0)
        auth = headers.get("HTTP_AUTHORIZATION")
        # Positional: keyword arguments to a 21-field constructor cost more than the line.
        return Entry(
            str(client[0] or ""), _basic_user(auth) if auth else "", state.when,
            scope.get("method", ""), target, _PROTOCOLS.get(scope.get("http_version", "1.1"))
            or "HTTP/" + scope.get("http_version", "1.1"), status, state.bytes_out,
            headers.get("HTTP_REFERER", ""), headers.get("HTTP_USER_AGENT", ""),
            environ.get("gateway.request_id", ""), *labels,
            environ.get("gateway.migration", ""), duration, state.ttfb, state.bytes_in,
            environ.get("gateway.trace_id", ""))

    def refused(self, problem: Problem, client: Any = None, rid: str = "") -> None:
        """Count and log a refusal made by the HTTP parser layer (it never reaches the app).

        The line has no request (``"-"``, as nginx logs a request it could not
        read) and no route; ``rid`` is the request id of the problem answered.
        """
        try:
            if self.metrics is not None:
                self.metrics.rejection(problem.code, str(problem.status))
            if self.log is not None:
                self.log.write(Entry(
                    remote=str(client[0]) if client else "", user="", when=time.time(),
                    method="", target="", protocol="", status=problem.status, bytes_out=0,
                    referer="", agent="", request_id=rid, route="",
                    backend="", service="", runtime="", upstream="", migration="",
                    duration=0.0, ttfb=0.0, bytes_in=0, trace_id=""))
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

    async def send(self, message: Message) -> None:
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
        await self._send(message)

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
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2"}


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


def _basic_user(auth: str) -> str:
    """The user name of HTTP Basic credentials (nginx's ``$remote_user``), else ""."""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "basic":
        return ""
    import base64
    import binascii
    try:
        return base64.b64decode(value.strip(), validate=True).decode("latin-1").split(":")[0]
    except (binascii.Error, ValueError):
        return ""


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False
