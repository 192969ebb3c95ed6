"""The front's WSGI app: check, route, hand to a backend; every error a problem.

::

    app = make_app(config)                 # a plain WSGI callable
    # served: gateway.http.server.FrontServer(config, sock, ...).run()
    # dev only: werkzeug.serving.run_simple("127.0.0.1", 8080, app)

Per request: request id -> limits (414, 431, 413, CL+TE 400) -> one strict
reading of the path (400 on anything ambiguous) -> longest-prefix route ->
the route's guards (handed in by :mod:`gateway.assemble`) -> backend, built
from the registry (:mod:`gateway.http.backends`). A request prepared on the
event loop already is not checked again. :class:`ProblemGuard` wraps all of
it, so an unexpected exception becomes a 500 problem+json, never a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException

from gateway.http import tracing
from gateway.http.backends import REGISTRY, BackendSpec, Parts
from gateway.http.bodies import check_framing, header_sizes
from gateway.http.config import GatewayHttpConfig, Route
from gateway.http.context import Call
from gateway.http.forwarding import request_id
from gateway.http.paths import BadPath, parse_target
from gateway.http.problems import Problem, from_protocol, reason, render
from gateway.http.routing import Match, RouteTable
from gateway.http.wsgitypes import Backend, BackendFactory, StartResponse, WsgiApp
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

INTERNAL = "/_gateway/"
HEALTH = "/_gateway/health"
BAR_JS = (Path(__file__).with_name("bar.js")).read_bytes()


# (environ, start_response, path, request id) -> body: the admin API and dashboard
# Route guards: a matched request -> None, or raise Problem to refuse it (FATAL services).
Guard = Callable[[Match], None]
AdminHandler = Callable[[dict[str, Any], StartResponse, str, str], Iterable[bytes]]


class GatewayApp:
    """The routing front; see the module docstring for the order of checks."""

    def __init__(self, config: GatewayHttpConfig,
                 factories: dict[str, BackendFactory] | None = None,
                 openapi: dict[str, Any] | None = None, admin: AdminHandler | None = None,
                 parts: Parts | None = None, guards: dict[str, Guard] | None = None) -> None:
        self.config = config
        # prefix -> guard, run after the one route match and before the backend
        self.guards = guards or {}
        self.admin = admin
        self.limits = config.limits
        self.table = RouteTable(config.routes)
        self.parts = parts or Parts(config)
        self.forwarding = self.parts.forwarding
        self.allowed_hosts = config.allowed_hosts
        # Every registered backend, built from the shared parts; ``factories``
        # replaces some by name (the composition root's wrapped ones, tests' own).
        builders: dict[str, BackendFactory] = {
            name: functools.partial(_build, spec, self.parts) for name, spec in REGISTRY.items()}
        builders.update(factories or {})
        self.backends: dict[str, Backend] = {}
        for route in config.routes:
            if route.backend not in builders:
                raise ValueError(f"no factory for backend {route.backend!r} "
                                 f"(route {route.prefix!r})")
            self.backends[route.prefix] = builders[route.backend](route)
        # The user bar (a small script that any page includes) is the
        # gateway's own asset; it reads /api/whoami, which a service answers.
        self._internal = {
            "/_gateway/openapi.json": (json.dumps(openapi or {}, sort_keys=True).encode("utf-8"),
                                       "application/json"),
            "/_gateway/health": (b'{"status":"ok"}', "application/json"),
            "/_gateway/bar.js": (BAR_JS, "application/javascript; charset=utf-8"),
        }

    def close(self) -> None:
        """Release the backends' pools and sockets."""
        closer = getattr(self.admin, "close", None)
        if closer is not None:
            closer()
        for backend in self.backends.values():
            closer = getattr(backend, "close", None)
            if closer is not None:
                closer()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # Prepared on the event loop already (admission, the fast path): checked once.
        call = environ.get("gateway.call") or self.prepare(environ)
        if call is None:
            return self.internal(environ["gateway.path"], environ, start_response,
                                 environ["gateway.request_id"])
        prefix = call.match.route.prefix
        guard = self.guards.get(prefix)
        if guard is not None:
            guard(call.match)
        return self.backends[prefix](call, start_response)

    def refuses(self, path: str) -> bool:
        """True when a route guard refuses the (strictly read) ``path``: the fast path's hook."""
        match = self.table.match(path)
        guard = self.guards.get(match.route.prefix) if match is not None else None
        if guard is None or match is None:
            return False
        try:
            guard(match)
        except Problem:
            return True
        return False

    def prepare(self, environ: dict[str, Any]) -> Call | None:
        """The checks every request passes, once: request id, limits, the strict path, the route.

        Returns the :class:`Call` for a backend, or None for the gateway's own
        endpoints under ``/_gateway/`` (their path is ``environ["gateway.path"]``).
        Raises :class:`Problem` for a request that must be refused.
        """
        # Routed once on the event loop already (admission), then again in a front thread:
        # one request, one id.
        rid = environ.get("gateway.request_id") or request_id(environ)
        environ["gateway.request_id"] = rid
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or _rebuild_uri(environ)
        self.check_limits(environ, raw)
        tracing.begin(environ)
        try:
            target = parse_target(raw)
        except BadPath as exc:
            raise Problem(400, f"ambiguous or malformed path: {exc}", code="bad_path") from None
        if self.allowed_hosts and target.path != HEALTH:
            check_host(environ, self.allowed_hosts)
        if target.path.startswith(INTERNAL) or target.path == INTERNAL[:-1]:
            environ["gateway.path"] = target.path
            return None
        pin = environ.get("HTTP_X_GATEWAY_RUNTIME")
        if pin:
            # Honoured by a migrated route only with the admin token; never forwarded.
            environ["gateway.pin"] = (pin, environ.get("HTTP_X_GATEWAY_TOKEN", ""))
        match = self.table.match(target.path)
        if match is None:
            raise Problem(404, "no route matches this path", code="no_route")
        environ["gateway.route"] = match.route  # the metrics' and access log's labels
        call = environ["gateway.call"] = Call(environ, rid, target, match)
        return call

    def check_limits(self, environ: dict[str, Any], raw: str) -> None:
        """414 on the request target ``raw``, 431, then :func:`check_framing` (400, 413)."""
        limits = self.limits
        if len(raw) > limits.max_uri:
            raise Problem(414, f"the request target exceeds {limits.max_uri} bytes",
                          code="uri_too_long")
        # Measured once, as the client sent them (the ASGI bridge), or here by a walk.
        count, total, longest = environ.get("gateway.header_sizes") or header_sizes(environ)
        if longest > limits.max_header_line:
            raise Problem(431, f"a header field exceeds {limits.max_header_line} bytes",
                          code="header_too_large")
        count = max(count, environ.get("gateway.header_fields", 0))
        if count > limits.max_header_count or total > limits.max_header_total:
            raise Problem(431, "too many or too large header fields", code="headers_too_large")
        check_framing(environ, limits.max_body)

    def internal(self, path: str, environ: dict[str, Any], start_response: StartResponse,
                 rid: str) -> Iterable[bytes]:
        """The gateway's own endpoints under ``/_gateway/``."""
        if self.admin is not None and path not in self._internal:
            return self.admin(environ, start_response, path, rid)
        try:
            body, content_type = self._internal[path]
        except KeyError:
            raise Problem(404, "no such gateway endpoint", code="not_found") from None
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            raise Problem(405, "GET only", headers=[("Allow", "GET, HEAD")])
        start_response("200 OK", [("Content-Type", content_type),
                                  ("Content-Length", str(len(body))), ("X-Request-ID", rid)])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]


def _build(spec: BackendSpec, parts: Parts, route: Route) -> Backend:
    return spec.build(route, parts)


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """True when ``host`` (a Host field value, port and case ignored) is in ``allowed``."""
    host = host.strip().lower()
    if host.startswith("["):
        name = host[:host.find("]") + 1] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".")
    if not name:
        return False
    for pattern in allowed:
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]) and len(name) > len(pattern) - 1:
                return True
        elif name == pattern:
            return True
    return False


def check_host(environ: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """400 ``host_not_allowed`` unless the request's Host is in ``[http] allowed_hosts``.

    A DNS-rebound page in a browser reaches the gateway with the attacker's
    name in Host; only names the operator listed are answered (Django's
    ALLOWED_HOSTS). An HTTP/1.0 request without Host has no name to vouch for.
    """
    host = environ.get("HTTP_HOST") or ""
    if not host_allowed(host, allowed):
        raise Problem(400, "the Host header names a host this gateway does not serve "
                      "(http.allowed_hosts)", code="host_not_allowed")


def _rebuild_uri(environ: dict[str, Any]) -> str:
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    uri = urllib.parse.quote(path.encode("latin-1"), safe="/;=,:@!$&'()*+~")
    query = environ.get("QUERY_STRING")
    return f"{uri}?{query}" if query else uri


class ProblemGuard:
    """Wraps an app so that every failure, expected or not, answers problem+json.

    Errors raised before the first body byte replace the response (WSGI
    ``exc_info``); after it, the connection can only be cut.
    """

    def __init__(self, app: WsgiApp, retry_after: int = 1) -> None:
        self.app = app
        self.retry_after = retry_after

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started: list[bool] = []

        def tracking_start_response(status: str, headers: list[tuple[str, str]],
                                    exc_info: Any = None) -> Any:
            started.append(True)
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, tracking_start_response)
        except BaseException as exc:
            return self.answer(exc, environ, start_response,
                               sys.exc_info() if started else None)
        if isinstance(result, list):
            return result
        return GuardedBody(self, result, environ, start_response, started)

    def answer(self, exc: BaseException, environ: dict[str, Any], start_response: StartResponse,
               exc_info: Any) -> list[bytes]:
        """The problem response for ``exc``."""
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise exc
        if getattr(environ.get("wsgi.input"), "disconnected", False):
            # The client went away (or was cut off by the body timeout) while sending its
            # body: there is nobody to answer, and nothing unexpected happened.
            raise exc
        if isinstance(exc, Problem):
            problem = exc
        elif isinstance(exc, ProtocolError):
            problem = from_protocol(exc, self.retry_after)
        elif isinstance(exc, HTTPException) and exc.code is not None:
            # werkzeug's own answers (416 with its Content-Range, ...), kept as problems.
            extra = [(k, v) for k, v in exc.get_headers(environ)
                     if k.lower() not in ("content-type", "content-length")]
            problem = Problem(exc.code, exc.description or reason(exc.code), headers=extra)
        else:
            log.error("unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
            problem = Problem(500, "the gateway failed to handle this request",
                              code="internal")
        rid = environ.get("gateway.request_id") or request_id(environ)
        status, headers, body = render(problem, rid)
        start_response(status, headers, exc_info)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


class GuardedBody:
    """A response body that turns a failure before its first byte into a problem.

    A class, not a generator: a server may call :meth:`close` without ever
    iterating, and the wrapped body (an upstream connection, a broker
    request) must be closed then too.
    """

    def __init__(self, guard: ProblemGuard, result: Iterable[bytes], environ: dict[str, Any],
                 start_response: StartResponse, called: list[bool]) -> None:
        self._guard = guard
        self._result = result
        self._environ = environ
        self._start_response = start_response
        self._called = called
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        started = False
        try:
            for chunk in self._result:
                started = True
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            if started:
                log.warning("response failed after its first byte: %r", exc)
                raise
            yield from self._guard.answer(exc, self._environ, self._start_response,
                                          sys.exc_info() if self._called else None)

    def close(self) -> None:
        """Close the wrapped body (once), whether or not it was iterated."""
        if self._closed:
            return
        self._closed = True
        closer = getattr(self._result, "close", None)
        if closer is not None:
            closer()


def make_app(config: GatewayHttpConfig, factories: dict[str, BackendFactory] | None = None,
             openapi: dict[str, Any] | None = None,
             admin: AdminHandler | None = None, parts: Parts | None = None,
             guards: dict[str, Guard] | None = None) -> ProblemGuard:
    """The complete front: :class:`GatewayApp` inside a :class:`ProblemGuard`.

    Every backend in :mod:`gateway.http.backends` is built from ``parts``
    (one :class:`~gateway.http.backends.Parts` per process: the broker
    client, contracts, forwarding); ``factories`` replaces builders by
    backend name. ``guards`` (by route prefix) refuse requests before their backend runs.
    """
    return ProblemGuard(GatewayApp(config, factories, openapi, admin, parts, guards),
                        config.retry_after)
