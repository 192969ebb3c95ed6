"""What the broker does with a client's message: admit, split, shadow, cancel or answer mmi.*.

::

    clients = ClientSide(config, registry, counters, wire, dispatcher, splits, shadows,
                         pairs, trim, stats=broker.stats)
    clients.on_client(client_identity, b"calc", body_frames)

Only the header frame is read (id, deadline, idem, kind); bodies are
forwarded untouched. A request past its deadline is answered ``timeout``; one
for a service no worker ever served, once the start-up window (``started``
plus ``startup_grace_ms``) is over, ``unknown_service`` (SPEC 2.5); one that
would take a queue past a cap on count or bytes, ``too_busy``. A split
service's call may go to its candidate (SPEC 2.14), and a shadow copy of it
is queued after the primary. A cancel (SPEC 2.11) removes a queued request
or is forwarded to the worker holding it when that worker said it
understands cancels. ``mmi.service``, ``mmi.stats`` and ``mmi.split`` are
answered here (RFC 8).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from gateway.broker.dispatch import EXPIRY_MARGIN_MS, Dispatcher, outcome
from gateway.broker.header import request_fields
from gateway.broker.memory import MemoryTrim
from gateway.broker.pairs import Pairs
from gateway.broker.registry import Registry, Request
from gateway.broker.shadow import Shadows
from gateway.broker.splits import Splits
from gateway.broker.wire import Wire
from protocol import codec, mdp
from protocol.errors import Timeout, TooBusy, UnknownService

MMI_SPLIT = b"mmi.split"


class ClientSide:
    """The broker's handling of client messages (requests, cancels, mmi.*)."""

    def __init__(self, config: Any, registry: Registry, counters: Counter[str], wire: Wire,
                 dispatcher: Dispatcher, splits: Splits, shadows: Shadows, pairs: Pairs,
                 trim: MemoryTrim, stats: Callable[[], dict[str, Any]]) -> None:
        self.config = config  # a BrokerConfig
        self.registry = registry
        self.counters = counters
        self.wire = wire
        self.dispatcher = dispatcher
        self.splits = splits
        self.shadows = shadows
        self.pairs = pairs
        self.trim = trim
        self.stats = stats
        self.started = time.monotonic()  # the loop resets it once bound

    def on_client(self, client: bytes, service: bytes, body: list[bytes]) -> None:
        """One client message: a request, a cancel or an mmi.* question."""
        self.counters["requests"] += 1
        if service.startswith(b"mmi."):
            self.mmi(client, service, body)
            return
        config = self.config
        now = mdp.now_ms()
        fields = request_fields(body[0]) if body else None
        if fields is not None:
            rid, deadline, idem, kind = fields
            if kind == "cancel":
                self.cancel(client, service, rid, body)
                return
            deadline = deadline or now + config.default_timeout_ms
            if deadline > now + config.max_deadline_ms:
                # A client may not pin memory for longer than the broker allows.
                self.counters["deadlines_clamped"] += 1
                deadline = now + config.max_deadline_ms
        else:
            # SPEC 3.4: a broker-made error for a header-less request still has a proper id.
            rid = codec.new_id()
            deadline, idem = now + config.default_timeout_ms, False
        request = Request(client, service, body, rid, deadline, idem)
        if self.splits.table and body:
            candidate = self.splits.route(service, body[0], self.registry.live)
            if candidate is not None:
                # Decided once, on arrival: a later change of the split (a rollback)
                # leaves this call where it started.
                request.asked, request.service = service, candidate
                service = candidate
        # Counted per service only under a name the broker holds already: a client naming
        # services no worker serves must not grow mmi.stats (they count in unknown_service).
        # A split call counts under the side that takes it.
        svc = self.registry.services.get(service)
        reply_error = self.dispatcher.reply_error
        if deadline - EXPIRY_MARGIN_MS <= now:
            self.counters["expired"] += 1
            outcome(svc, "timeout", received=True)
            reply_error(request, Timeout("the deadline passed before the broker got it"))
            return
        if not self.registry.known(service) and \
                (time.monotonic() - self.started) * 1000 > config.startup_grace_ms:
            self.counters["unknown_service"] += 1
            outcome(svc, "unavailable", received=True)
            name = service.decode("utf-8", "replace")
            reply_error(request, UnknownService(f"no worker has ever served {name}"))
            return
        request.size = sum(map(len, body))
        full = self.queue_full(service, request.size)
        if full is not None:
            self.counters["too_busy"] += 1
            outcome(svc, "too_busy", received=True)
            reply_error(request, TooBusy(full))
            return
        self.registry.enqueue(request)
        self.registry.services[service].outcomes["requests"] += 1
        self.trim.grew(request.size)
        self.dispatcher.dispatch(service)
        self.registry.arm(request)
        if self.shadows.table:  # after the primary: the caller waits for nothing more
            self.shadow(request, now)

    def shadow(self, request: Request, now: int) -> None:
        """Queue a shadow copy of ``request`` for its service's candidate, when one is due."""
        copy = self.shadows.copy(request, self.registry.live, now)
        if copy is None:
            return
        if self.queue_full(copy.service, copy.size) is not None:
            self.shadows.skipped(copy)
            return
        self.pairs.expect(request, copy, self.shadows.method)
        self.registry.enqueue(copy)
        # Counted as the candidate's request, so its outcomes (ok, timeout...) add up.
        self.registry.services[copy.service].outcomes["requests"] += 1
        self.dispatcher.dispatch(copy.service)
        self.registry.arm(copy)

    def queue_full(self, service: bytes, size: int) -> str | None:
        """Why queueing ``size`` more bytes for ``service`` would pass a cap, or None."""
        config, registry = self.config, self.registry
        svc = registry.services.get(service)
        queued, queued_bytes = (svc.queued, svc.queued_bytes) if svc else (0, 0)
        name = service.decode("utf-8", "replace")
        if queued + 1 > config.max_queued:
            return f"{queued} requests for {name} are already waiting"
        if queued_bytes + size > config.max_queued_bytes:
            return f"the queue of {name} is full ({queued_bytes} bytes waiting)"
        if registry.queued + 1 > config.max_queued_total:
            return f"the broker is full ({registry.queued} requests waiting)"
        if registry.queued_bytes + size > config.max_queued_bytes_total:
            return f"the broker is full ({registry.queued_bytes} bytes waiting)"
        return None

    def cancel(self, client: bytes, service: bytes, rid: str, body: list[bytes]) -> None:
        """SPEC 2.11: drop the request if queued, else tell its worker if it understands."""
        split = self.splits.table.get(service)
        if split is not None and self.registry.find_queued(service, client, rid) is None \
                and self.registry.find_inflight(service, client, rid) is None:
            service = split.candidate  # the call was split off to the port (SPEC 2.14)
        queued = self.registry.find_queued(service, client, rid)
        # A shadow copy is nobody's to cancel (its client address is the broker's own).
        if queued is not None and not queued.shadow:
            self.registry.drop_queued(queued)
            self.counters["cancelled"] += 1
            return
        held = self.registry.find_inflight(service, client, rid)
        if held is not None and held[0].cancel and not held[1].shadow:
            # Not a dispatch: the worker's credit is untouched, and its final reply
            # (a "cancelled" error) releases the request as usual.
            self.counters["cancels_forwarded"] += 1
            self.wire.send([held[0].identity, b"", mdp.WORKER, mdp.REQUEST, client, b"",
                            *body], "worker gone")
            return
        self.counters["cancels_ignored"] += 1

    def mmi(self, client: bytes, service: bytes, body: list[bytes]) -> None:
        """RFC 8 service discovery, the broker's stats, and a re-read of the split file."""
        if service == mdp.MMI_SERVICE:
            name = body[0] if body else b""
            answer = [b"200" if self.registry.live(name) else b"404"]
        elif service == mdp.MMI_STATS:
            answer = [json.dumps(self.stats(), sort_keys=True).encode()]
        elif service == MMI_SPLIT:
            # Only a re-read of the file the broker was started with (SPEC 2.14).
            answer = [b"200" if self.splits.reload() and not self.splits.errors else b"400"]
        else:
            answer = [b"501"]
        self.wire.send([client, b"", mdp.CLIENT, service, *answer], "client gone")
