"""Dispatch, deadlines and lost workers: what the broker does with queued requests.

::

    dispatcher = Dispatcher(config, registry, counters, wire, shadows, pairs, splits,
                            outliers, probes)
    dispatcher.dispatch(b"calc")            # hand waiting requests to free workers
    dispatcher.expire()                     # queued requests past their deadline
    dispatcher.lose_worker(identity, "missed heartbeats")   # retry, requeue or fail
    dispatcher.beat()                       # once per heartbeat interval

The rules (the module docstring of :mod:`gateway.broker.broker` lists them
all): an expired request is never dispatched and gets a broker-made
``timeout``, ``unavailable`` or ``unknown_service``; a lost worker's
idempotent requests that sent no partial reply yet are retried once within
their deadline, the ones it never started are requeued, every other one gets
``worker_lost``. Shadow copies are only ended, never answered (nobody waits).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from gateway.broker.outlier import Outliers
from gateway.broker.pairs import Pairs
from gateway.broker.probes import ProbeSchedule
from gateway.broker.registry import Registry, Request, Service
from gateway.broker.shadow import Shadows
from gateway.broker.splits import Splits
from gateway.broker.wire import Wire
from protocol import mdp
from protocol.errors import ProtocolError, Timeout, Unavailable, UnknownService, WorkerLost

log = logging.getLogger("gateway.broker")

# Queued requests expire this much before their deadline, so the broker's
# typed answer reaches the client before the client's own clock runs out.
EXPIRY_MARGIN_MS = 50


class Dispatcher:
    """Hands requests to workers, ends the ones that expire, and handles workers lost."""

    def __init__(self, config: Any, registry: Registry, counters: Counter[str], wire: Wire,
                 shadows: Shadows, pairs: Pairs, splits: Splits, outliers: Outliers,
                 probes: ProbeSchedule) -> None:
        self.config = config  # a BrokerConfig (heartbeat_ms)
        self.registry = registry
        self.counters = counters
        self.wire = wire
        self.shadows = shadows
        self.pairs = pairs
        self.splits = splits
        self.outliers = outliers
        self.probes = probes

    def dispatch(self, service: bytes) -> None:
        """Send ``service``'s waiting requests to its free workers, in order."""
        expired: list[Request] = []
        unroutable: bytes | None = None
        for worker, request in self.registry.dispatchable(
                service, mdp.now_ms() + EXPIRY_MARGIN_MS, expired):
            self.counters["dispatched"] += 1
            if not self.wire.send([worker.identity, b"", mdp.WORKER, mdp.REQUEST,
                                   request.client, b"", *request.body], "worker gone"):
                # Never delivered, so the attempt does not count and a retry is safe.
                request.attempts -= 1
                unroutable = worker.identity
                break
        for request in expired:
            self.unavailable(request)
        if unroutable is not None:
            self.lose_worker(unroutable, "unroutable")

    def expire(self) -> None:
        """Answer the queued requests whose deadline (less the margin) has come."""
        for request in self.registry.pop_expired(mdp.now_ms() + EXPIRY_MARGIN_MS):
            self.unavailable(request)

    def unavailable(self, request: Request) -> None:
        """Answer a request that expired in the queue, by why nobody took it."""
        self.counters["expired"] += 1
        live = self.registry.live(request.service)
        outcome(self.registry.services.get(request.service),
                "timeout" if live else "unavailable")
        name = request.service.decode("utf-8", "replace")
        if live:
            self.reply_error(request, Timeout("the deadline passed while every worker was busy"))
        elif self.registry.known(request.service):
            self.reply_error(request, Unavailable(f"no live worker for {name} in time"))
        else:
            self.reply_error(request, UnknownService(f"no worker has ever served {name}"))

    def reply_error(self, request: Request, error: ProtocolError) -> None:
        """Answer ``request`` with a broker-made error (a shadow copy just ends)."""
        if request.shadow:  # nobody waits for a copy: it only ends
            self.shadows.finished(request, None)
            return
        body = mdp.error_body(request.id, error)
        self.wire.send([request.client, b"", mdp.CLIENT, request.asked or request.service,
                        *body], "client gone")

    def lose_worker(self, identity: bytes, why: str, unstarted: bool = False) -> None:
        """Forget a worker; retry, requeue or fail what it held (``unstarted``: it started none)."""
        worker = self.registry.workers.get(identity)
        service = worker.service if worker is not None else b""
        held = self.registry.remove_worker(identity)
        level = logging.INFO if why == "disconnected" and not held else logging.WARNING
        log.log(level, "worker %s left (%s) holding %d request(s)", identity.hex(), why, len(held))
        now = mdp.now_ms()
        for request in held:
            if unstarted and not request.replied:
                request.attempts -= 1  # it never ran: requeued, and the attempt does not count
                self.requeue(request)
            elif request.idem and request.attempts < 2 and not request.replied \
                    and request.deadline - EXPIRY_MARGIN_MS > now:
                self.counters["retried"] += 1
                outcome(self.registry.services.get(service), "retried")
                self.requeue(request)
            elif request.attempts < 1:
                self.requeue(request)  # never reached a worker
            else:
                self.counters["worker_lost"] += 1
                outcome(self.registry.services.get(service), "worker_lost")
                request.done = True
                self.reply_error(request, WorkerLost(
                    f"the worker died while handling it ({why})"))
        if held:
            self.dispatch(service)

    def requeue(self, request: Request) -> None:
        """Put ``request`` back at the head of its queue, its deadline armed again."""
        self.registry.enqueue(request, front=True)
        self.registry.arm(request)

    def probe_workers(self) -> None:
        """One probe round: a HEARTBEAT to every worker; the unroutable ones are gone."""
        for identity in list(self.registry.workers):
            if self.wire.reachable(identity) is False:
                self.counters["workers_closed"] += 1
                self.lose_worker(identity, "connection closed")
        if not self.registry.workers:
            self.probes.clear()

    def beat(self) -> None:
        """Once per interval: splits, shadows, silent workers, outliers, heartbeats out."""
        now = time.monotonic()
        self.splits.changed()  # a missed mmi.split still takes effect within a beat
        if self.shadows.live:
            self.shadows.sweep(mdp.now_ms())
        self.pairs.sweep(mdp.now_ms())
        for identity in self.registry.expired_workers(now):
            self.counters["workers_expired"] += 1
            self.lose_worker(identity, "missed heartbeats")
        for service in self.outliers.sweep():
            self.dispatch(service)
        for identity in list(self.registry.workers):
            if not self.wire.send([identity, *mdp.heartbeat()], "heartbeat"):
                self.lose_worker(identity, "unroutable")


def outcome(svc: Service | None, name: str, received: bool = False) -> None:
    """Count outcome ``name`` for ``svc`` when it has a record (and the request, if
    ``received``: one the broker answers at once, never queued)."""
    if svc is not None:
        if received:
            svc.outcomes["requests"] += 1
        svc.outcomes[name] += 1
