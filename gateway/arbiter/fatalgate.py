"""WSGI middleware: answer 503 at once for routes whose service the arbiter marked FATAL.

The arbiter publishes service states in its state file
(:mod:`gateway.arbiter.statefile`). In front of the HTTP front's app, this
middleware finds the request's route (longest prefix) and its service, for
``rpc`` mounts the first path segment below the prefix, and if that service
is FATAL answers ``503`` with ``Retry-After`` without touching the backend::

    app = FatalGate(make_app(http_config), ServiceStates(state_file),
                    [("/api/highlight", "rpc", ""), ("/", "wsgi", "legacy")])
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from gateway.arbiter.statefile import ServiceStates
from gateway.http.wsgitypes import StartResponse

WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class FatalGate:
    """Wraps a WSGI app; FATAL services get an immediate problem+json 503."""

    def __init__(self, app: WSGIApp, states: ServiceStates,
                 routes: list[tuple[str, str, str]], retry_after: int = 5,
                 migrated: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.states = states
        # Route prefixes and rpc "service/method"s under migration: which service
        # answers depends on the migration's state, so the migration checks FATAL itself.
        self.migrated = migrated
        # longest prefix first, so "/api/x" wins over "/api" and "/"
        self.routes = sorted(routes, key=lambda r: len(r[0]), reverse=True)
        self.retry_after = retry_after

    def service_for(self, path: str) -> str:
        """The supervised service behind ``path``, or "" if none."""
        for prefix, backend, service in self.routes:
            base = prefix.rstrip("/")
            if path == base or path.startswith(base + "/") or prefix == "/":
                if prefix in self.migrated:
                    return ""
                if service:
                    return service
                if backend == "rpc":
                    below = path[len(base):].strip("/")
                    if below in self.migrated:
                        return ""
                    return below.split("/", 1)[0]
                return ""
        return ""

    def fatal_path(self, path: str) -> bool:
        """True when the service behind ``path`` is FATAL (the request gets the gate's 503)."""
        service = self.service_for(path)
        return bool(service) and self.states.fatal(service)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Pass through unless the route's service is FATAL."""
        service = self.service_for(environ.get("PATH_INFO", "") or "/")
        if service and self.states.fatal(service):
            body = json.dumps({"type": "about:blank", "title": "Service Unavailable",
                               "status": 503, "code": "unavailable",
                               "detail": f"service {service!r} is down (FATAL)"}).encode()
            start_response("503 Service Unavailable", [
                ("Content-Type", "application/problem+json"),
                ("Content-Length", str(len(body))), ("Retry-After", str(self.retry_after))])
            return [body]
        return self.app(environ, start_response)
