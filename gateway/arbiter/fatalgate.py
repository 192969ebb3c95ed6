"""Route guards: refuse requests at once for routes whose service the arbiter marked FATAL.

The arbiter publishes service states in its state file
(:mod:`gateway.arbiter.statefile`). The composition root
(:mod:`gateway.assemble`) puts one guard on each route that names a
service, run after the front's one strict parse and one route match; for
``rpc`` mounts without a service the service is the first path segment
below the prefix. A FATAL service's request gets a ``503`` problem (with
``Retry-After`` and the request id, as every problem) without touching the
backend::

    fatal = FatalGuards(ServiceStates(state_file), {"/api": "api"}, frozenset({"/api/notes"}))
    guards = fatal.guards(http_config.routes)          # prefix -> guard, for make_app
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from gateway.arbiter.statefile import ServiceStates
from gateway.http.config import Route
from gateway.http.problems import Problem
from gateway.http.routing import Match


class FatalGuards:
    """Builds the per-route FATAL guards of one front process."""

    def __init__(self, states: ServiceStates, services: Mapping[str, str] | None = None,
                 migrated: frozenset[str] = frozenset(), retry_after: int = 5) -> None:
        self.states = states
        # prefix -> the supervised service behind it as ``[[routes]]`` names it (an http
        # route's too, which the front's own route does not carry).
        self.services = dict(services or {})
        # Route prefixes and rpc "service/method"s under migration: which service
        # answers depends on the migration's state, so the migration checks FATAL itself.
        self.migrated = migrated
        self.retry_after = retry_after

    def service_for(self, route: Route, path_info: str) -> str:
        """The supervised service behind a request below ``route``, or "" if none."""
        if route.prefix in self.migrated:
            return ""
        service = self.services.get(route.prefix) or route.service
        if service:
            return service
        if route.backend == "rpc":
            below = path_info.strip("/")
            if below in self.migrated:
                return ""
            return below.split("/", 1)[0]
        return ""

    def for_route(self, route: Route) -> Callable[[Match], None] | None:
        """The guard of ``route``, or None when no service can be behind it."""
        named = self.services.get(route.prefix) or route.service
        if route.prefix in self.migrated or not (named or route.backend == "rpc"):
            return None

        def guard(match: Match) -> None:
            service = self.service_for(match.route, match.path_info)
            if service and self.states.fatal(service):
                raise Problem(503, f"service {service!r} is down (FATAL)", code="unavailable",
                              headers=[("Retry-After", str(self.retry_after))])
        return guard

    def guards(self, routes: Iterable[Route]) -> dict[str, Callable[[Match], None]]:
        """prefix -> guard for every route that can have a FATAL service behind it."""
        out = {}
        for route in routes:
            guard = self.for_route(route)
            if guard is not None:
                out[route.prefix] = guard
        return out
