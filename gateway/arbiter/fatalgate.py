"""Service guards: refuse requests at once for services the arbiter marked FATAL.

The arbiter publishes service states in its state file
(:mod:`gateway.arbiter.statefile`). The composition root
(:mod:`gateway.assemble`) decides per route what applies: a route that
names a service gets :meth:`FatalGuards.for_route`, run after the front's
one strict parse and one route match; an ``rpc`` mount's calls are checked
per ``(service, method)`` with :meth:`FatalGuards.check` in the caller it
composes; a migrated target gets the migration's own check instead. A FATAL
service's request gets a ``503`` problem (with ``Retry-After`` and the
request id, as every problem) without touching the backend::

    fatal = FatalGuards(ServiceStates(state_file), {"/api": "api"})
    guard = fatal.for_route(route)                 # None: no service named by the route
    fatal.check("highlight")                       # raises the 503 Problem when FATAL
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.arbiter.statefile import ServiceStates
from gateway.http.config import Route
from gateway.http.problems import Problem
from gateway.http.routing import Match


class FatalGuards:
    """The FATAL checks of one front process."""

    def __init__(self, states: ServiceStates, services: Mapping[str, str] | None = None,
                 retry_after: int = 5) -> None:
        self.states = states
        # prefix -> the supervised service behind it as ``[[routes]]`` names it (an http
        # route's too, which the front's own route does not carry).
        self.services = dict(services or {})
        self.retry_after = retry_after

    def check(self, service: str) -> None:
        """Raise the 503 problem when ``service`` is FATAL ("" is no service)."""
        if service and self.states.fatal(service):
            raise Problem(503, f"service {service!r} is down (FATAL)", code="unavailable",
                          headers=[("Retry-After", str(self.retry_after))])

    def for_route(self, route: Route) -> Callable[[Match], None] | None:
        """The guard of ``route``, or None when the route names no service."""
        service = self.services.get(route.prefix) or route.service
        if not service:
            return None

        def guard(match: Match) -> None:
            self.check(service)
        return guard
