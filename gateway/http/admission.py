"""Admission control: a concurrency limit and a queue time per route and per service.

Each front worker process runs one event loop, and every request passes it
before it goes to the fast path or to a front thread
(:class:`gateway.http.asgi.WsgiBridge`). Admission is decided there, on the
loop, so the counters need no lock and a request that waits for a slot
holds a coroutine, never a thread::

    admission = Admission.from_routes(config.routes, retry_after=1)
    slot = admission.slot(call)            # None: the route has no limit
    if slot is not None and not await slot.acquire():
        ...answer slot.refusal(): 503 problem+json with Retry-After...
    try:
        ...serve...
    finally:
        slot.release()

A route's ``max_concurrency`` applies to each service behind it: a ``wsgi``
route's service, or each service named below an ``rpc`` mount, so one slow
service cannot take the slots of another behind the same mount; ``http`` and
``static`` routes are limited as a whole. Two routes that name one service
share its :class:`Gate` with the smaller limit. A request beyond the limit
waits up to the route's ``queue_timeout`` for a slot (first come, first
served), then gets 503 ``overloaded`` with ``Retry-After``, before any work
is sent to the broker or the upstream (what Envoy's circuit breaker and
nginx's ``limit_conn`` answer; the gateway's own endpoints are never limited).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

from gateway.http.config import Route
from gateway.http.context import Call
from gateway.http.problems import Problem


class Gate:
    """One concurrency limit with a FIFO queue of waiters; event-loop only."""

    __slots__ = ("active", "admitted", "limit", "name", "queue_timeout", "queued", "refused",
                 "waiters")

    def __init__(self, name: str, limit: int, queue_timeout: float) -> None:
        self.name = name
        self.limit = limit
        self.queue_timeout = queue_timeout
        self.active = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.admitted = 0
        self.refused = 0
        self.queued = 0

    async def acquire(self) -> bool:
        """Take a slot, waiting up to ``queue_timeout``; False when none freed in time."""
        if self.active < self.limit and not self.waiters:
            self.active += 1
            self.admitted += 1
            return True
        if self.queue_timeout <= 0:
            self.refused += 1
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        self.queued += 1
        try:
            await asyncio.wait_for(waiter, self.queue_timeout)
        except TimeoutError:
            # wait_for cancelled the waiter, so release() skips it; drop it now anyway.
            self._forget(waiter)
            self.refused += 1
            return False
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as the task was cancelled
            self._forget(waiter)
            raise
        self.admitted += 1
        return True

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        try:
            self.waiters.remove(waiter)
        except ValueError:
            pass

    def release(self) -> None:
        """Give the slot back: to the oldest waiter still waiting, else to the pool."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to it; ``active`` stays
                return
        self.active -= 1

    def refusal(self, retry_after: int) -> Problem:
        """The 503 for a request that got no slot."""
        wait = f" and none freed within {self.queue_timeout * 1000:.0f} ms" \
            if self.queue_timeout > 0 else ""
        return Problem(503, f"{self.name} is at its concurrency limit ({self.limit}){wait}",
                       code="overloaded", headers=[("Retry-After", str(retry_after))])


class Admission:
    """The gates of one front worker, by route prefix and by service."""

    def __init__(self, routes: Iterable[Route], retry_after: int = 1) -> None:
        self.retry_after = retry_after
        self.routes: dict[str, Route] = {}
        self.services: dict[str, Gate] = {}   # wsgi / named rpc services
        self.mounts: dict[str, Gate] = {}     # http / static mounts
        self.per_service: dict[str, Route] = {}  # rpc mounts without a service: one gate each
        for route in routes:
            if route.max_concurrency <= 0:
                continue
            self.routes[route.prefix] = route
            if route.backend in ("http", "static"):
                self.mounts[route.prefix] = Gate(f"the route {route.prefix}",
                                                 route.max_concurrency, route.queue_timeout)
            elif route.service:
                self._service_gate(route.service, route)
            else:
                self.per_service[route.prefix] = route

    def __bool__(self) -> bool:
        return bool(self.routes)

    def _service_gate(self, service: str, route: Route) -> Gate:
        gate = self.services.get(service)
        if gate is None:
            gate = self.services[service] = Gate(f"the service {service}",
                                                 route.max_concurrency, route.queue_timeout)
        elif route.prefix in self.routes and gate.limit > route.max_concurrency:
            gate.limit = route.max_concurrency
            gate.queue_timeout = min(gate.queue_timeout, route.queue_timeout)
        return gate

    def route_gate(self, route: Route) -> Gate | None:
        """The gate of every request to ``route`` (None: no limit), for a route whose gate
        does not depend on the path (not an rpc mount without a service)."""
        if route.prefix not in self.routes:
            return None
        gate = self.mounts.get(route.prefix)
        if gate is not None:
            return gate
        return self.services[route.service] if route.service else None

    def gate(self, call: Call) -> Gate | None:
        """The gate ``call`` must pass, or None when its route has no limit."""
        route = call.match.route
        if route.prefix not in self.routes:
            return None
        if route.service or route.prefix in self.mounts:
            return self.route_gate(route)
        service = call.match.path_info.strip("/").split("/", 1)[0]
        if not service:
            return None  # the rpc backend answers 404 for a path without a service
        gate = self.services.get(service)
        if gate is None:
            gate = self._service_gate(service, route)
        return gate

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters per gate (active, queued now, admitted, refused), for metrics and tests."""
        out = {}
        for gate in [*self.mounts.values(), *self.services.values()]:
            out[gate.name] = {"active": gate.active, "waiting": len(gate.waiters),
                              "admitted": gate.admitted, "refused": gate.refused,
                              "limit": gate.limit}
        return out
