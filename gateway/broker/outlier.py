"""Outlier ejection (SPEC 2.13): a worker that keeps missing deadlines gets no new work for a while.

Modelled on Envoy's outlier detection (``consecutive_gateway_failure`` with
``base_ejection_time``, ``max_ejection_time`` and ``max_ejection_percent``)::

    outliers = Outliers(OutlierPolicy(consecutive=5), registry, counters)
    outliers.replied(worker, request, head)    # on a request's first reply part
    for service in outliers.sweep(): ...       # once per heartbeat; dispatch those

A worker *fails* a request when the request's deadline passes while that worker
holds it with no reply part sent (the sweep notices) or when its first reply part
comes after the deadline; with ``count_errors`` an ``internal`` error reply is a
failure too (Envoy's ``consecutive_5xx``). A first part in time resets the count:
a stream may outlive its deadline (SPEC 2.7). After
``consecutive`` failures in a row the worker is ejected: it stays registered and
heartbeated, keeps what it holds, and gets no new request until
``base_ejection_ms`` x (times ejected) has passed (at most ``max_ejection_ms``).
The last routable worker of a service is never ejected, nor more than
``max_ejection_percent`` of its workers, though one of two or more always may be.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass

from gateway.broker.registry import Registry, Request, Service, Worker
from protocol import mdp

log = logging.getLogger("gateway.broker")

# Canonical JSON sorts keys, so an error envelope's header starts with its error object.
INTERNAL_ERROR = b'{"error":{"code":"internal"'


@dataclass(frozen=True)
class OutlierPolicy:
    """When a worker counts as an outlier and for how long it is left out (0 disables)."""

    consecutive: int = 5
    base_ejection_ms: int = 30_000
    max_ejection_ms: int = 300_000
    max_ejection_percent: int = 50
    count_errors: bool = False

    @property
    def enabled(self) -> bool:
        """False when ``consecutive`` is 0: no failure is counted, no worker ejected."""
        return self.consecutive > 0


class Outliers:
    """Counts each worker's failures in a row and ejects and returns workers."""

    def __init__(self, policy: OutlierPolicy, registry: Registry,
                 counters: Counter[str]) -> None:
        self.policy = policy
        self.registry = registry
        self.counters = counters

    def replied(self, worker: Worker, request: Request, head: bytes) -> None:
        """The first reply part came from ``worker``: a failure when late (or an error),
        else a reset."""
        if not self.policy.enabled or request.failed:
            return
        if request.deadline <= mdp.now_ms() or (
                self.policy.count_errors and head.startswith(INTERNAL_ERROR)):
            request.failed = True
            self._failed(worker, time.monotonic())
        else:
            worker.failures = 0

    def sweep(self) -> set[bytes]:
        """Return workers whose ejection is over, then count requests held past their deadline.

        Runs once per heartbeat interval, so it costs the reply path nothing; the
        services returned got a worker back and should be dispatched.
        """
        back: set[bytes] = set()
        if not self.policy.enabled:
            return back
        now, now_ms = time.monotonic(), mdp.now_ms()
        for worker in list(self.registry.workers.values()):
            if worker.ejected_until and worker.ejected_until <= now:
                self._return(worker, now)
                back.add(worker.service)
        for worker in list(self.registry.workers.values()):
            for request in list(worker.inflight.values()):
                if not (request.failed or request.replied) and request.deadline <= now_ms:
                    request.failed = True
                    self._failed(worker, now)
        return back

    def ejected(self) -> int:
        """Workers ejected now, over every service."""
        return sum(svc.ejected for svc in list(self.registry.services.values()))

    def _failed(self, worker: Worker, now: float) -> None:
        self.counters["worker_failures"] += 1
        worker.failures += 1
        if worker.failures < self.policy.consecutive or worker.ejected_until:
            return
        svc = self.registry.services.get(worker.service)
        if svc is not None and worker.identity in svc.workers and self._may_eject(svc):
            self._eject(svc, worker, now)

    def _may_eject(self, svc: Service) -> bool:
        """Never the last routable worker; beyond the first, at most the configured share."""
        total = len(svc.workers)
        if total - svc.ejected < 2:
            return False
        return svc.ejected == 0 or (svc.ejected + 1) * 100 <= total * \
            self.policy.max_ejection_percent

    def _eject(self, svc: Service, worker: Worker, now: float) -> None:
        policy = self.policy
        if worker.returned_at and (now - worker.returned_at) * 1000 > policy.max_ejection_ms:
            # Healthy for longer than the longest ejection: the multiplier starts over.
            worker.ejections = 0
        worker.ejections += 1
        span_ms = min(policy.base_ejection_ms * worker.ejections,
                      max(policy.base_ejection_ms, policy.max_ejection_ms))
        worker.ejected_until = now + span_ms / 1000.0
        worker.failures = 0
        svc.idle.pop(worker.identity, None)
        svc.ejected += 1
        self.counters["ejections"] += 1
        log.warning("worker %s of %r ejected for %d ms after %d failures in a row "
                    "(ejection %d)", worker.identity.hex(), worker.service, span_ms,
                    self.policy.consecutive, worker.ejections)

    def _return(self, worker: Worker, now: float) -> None:
        worker.ejected_until = 0.0
        worker.returned_at = now
        worker.failures = 0
        svc = self.registry.services.get(worker.service)
        if svc is None:
            return
        svc.ejected -= 1
        if worker.free > 0:
            svc.idle[worker.identity] = None
        log.info("worker %s of %r is back from ejection", worker.identity.hex(), worker.service)
