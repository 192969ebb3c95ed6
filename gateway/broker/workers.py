"""What the broker does with a worker's message: READY, REPLY, HEARTBEAT, DISCONNECT (RFC 7).

::

    workers = WorkerSide(config, registry, counters, wire, dispatcher, outliers, shadows,
                         pairs, splits)
    workers.on_worker(identity, mdp.READY, [b"calc", metadata])

Any message from a registered worker renews its liveness. READY registers it
with its credit (1 to 1000) and its heartbeat: a worker is dead after
3 x max(broker interval, its READY ``heartbeat_ms``) of silence, 2500 ms
standing in for a worker that announced none (SPEC 2.4). A REPLY goes to the
client address the broker recorded, never the one the worker echoes back; its
first part tells the outlier policy whether the worker kept the deadline
(SPEC 2.13), and its final part releases the request (and records a shadow
pair or a split's outcome). READY twice, or any command from an unknown
worker, is answered with DISCONNECT, after which our workers register again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from gateway.broker.dispatch import Dispatcher
from gateway.broker.outlier import Outliers
from gateway.broker.pairs import Pairs
from gateway.broker.registry import Registry, Worker
from gateway.broker.shadow import Shadows
from gateway.broker.splits import Splits
from gateway.broker.wire import Wire
from protocol import mdp

log = logging.getLogger("gateway.broker")

# The customary RFC 7 heartbeat interval: what a worker that announced none is assumed
# to use, so a plain MDP/0.1 worker beating every 2.5 s is not judged dead (SPEC 2.4).
PLAIN_WORKER_HEARTBEAT_MS = 2500


class WorkerSide:
    """The broker's handling of worker messages."""

    def __init__(self, config: Any, registry: Registry, counters: Counter[str], wire: Wire,
                 dispatcher: Dispatcher, outliers: Outliers, shadows: Shadows, pairs: Pairs,
                 splits: Splits) -> None:
        self.config = config  # a BrokerConfig (heartbeat_ms)
        self.registry = registry
        self.counters = counters
        self.wire = wire
        self.dispatcher = dispatcher
        self.outliers = outliers
        self.shadows = shadows
        self.pairs = pairs
        self.splits = splits
        self.interval = config.heartbeat_ms / 1000.0

    def on_worker(self, sender: bytes, command: bytes, args: list[bytes]) -> None:
        """One worker message."""
        worker = self.registry.workers.get(sender)
        if worker is not None:
            worker.expiry = time.monotonic() + worker.liveness
        if command == mdp.REPLY and worker is not None:
            self.on_reply(worker, args)
        elif command == mdp.HEARTBEAT and worker is not None:
            pass
        elif command == mdp.READY:
            if worker is not None:  # RFC 7: READY twice is a protocol error
                self.dispatcher.lose_worker(sender, "sent READY twice")
                self.wire.send([sender, *mdp.disconnect()], "worker gone")
            elif args:
                self.on_ready(sender, args)
            else:
                self.wire.drop("malformed", "READY without a service")
        elif command == mdp.DISCONNECT:
            if worker is not None:
                # A worker sends DISCONNECT only once it has answered everything it started
                # (SPEC 2.2), so what it still holds crossed the DISCONNECT on the wire.
                self.dispatcher.lose_worker(sender, "disconnected", unstarted=True)
        elif worker is None:
            # An unknown worker (e.g. after a broker restart): RFC 7 says disconnect it,
            # and our worker then re-registers with READY.
            self.wire.drop("unknown_worker", "command from an unregistered worker")
            self.wire.send([sender, *mdp.disconnect()], "worker gone")
        else:
            self.wire.drop("malformed", f"worker command {command[:4]!r}")

    def on_ready(self, sender: bytes, args: list[bytes]) -> None:
        """Register a worker with its credit and heartbeat, then give it work."""
        service = args[0]
        meta = mdp.parse_metadata(args)
        credit = meta.get("credit", 1)
        if not isinstance(credit, int) or isinstance(credit, bool):
            credit = 1
        credit = min(max(credit, 1), 1000)
        beat_ms = meta.get("heartbeat_ms")
        if not isinstance(beat_ms, int) or isinstance(beat_ms, bool) or beat_ms <= 0:
            beat_ms = PLAIN_WORKER_HEARTBEAT_MS
        liveness = mdp.LIVENESS * max(self.interval, beat_ms / 1000.0)
        self.registry.add_worker(sender, service, credit, time.monotonic() + liveness, meta,
                                 liveness, meta.get("cancel") is True)
        self.counters["workers_ready"] += 1
        log.info("worker %s ready for %r (credit %d)", sender.hex(), service, credit)
        self.wire.send([sender, *mdp.heartbeat(self.config.heartbeat_ms)], "worker gone")
        self.dispatcher.dispatch(service)

    def on_reply(self, worker: Worker, args: list[bytes]) -> None:
        """Pass a reply part on to its client; a final part releases the request."""
        if len(args) < 2 or args[1] != b"":
            self.wire.drop("malformed", "REPLY without [client, empty]")
            return
        client, body = args[0], args[2:]
        head = body[0] if body else b""
        rid: str | None = None
        more = False
        # The common case (one request in flight, a final reply) needs no parse at all:
        # canonical JSON has the bytes "more" only as a key.
        if len(worker.inflight) != 1:
            rid, more = mdp.reply_fields(head)
        elif b'"more"' in head:
            more = mdp.reply_fields(head)[1]
        request = self.registry.match(worker, client, rid)
        if request is None:
            self.wire.drop("late_reply", "reply for a request the broker no longer holds")
            return
        self.counters["replies"] += 1
        if not request.replied:  # the first part tells whether the worker kept the deadline
            self.outliers.replied(worker, request, head)
        request.replied = True
        if request.shadow:
            if not more:
                self.shadows.finished(request, body)
        else:
            # The address the broker recorded, not the one the worker echoed back.
            self.wire.send([request.client, b"", mdp.CLIENT, request.asked or worker.service,
                            *body], "client gone")
        if not more:
            if self.pairs.pending and not request.shadow:
                self.pairs.primary(request, body)
            if self.splits.table and not request.shadow:
                self.splits.replied(request.asked or request.service, request.asked is not None,
                                    head)
            self.registry.release(worker, request)
            self.registry.service(worker.service).outcomes["ok"] += 1
            if self.registry.waiting(worker.service):
                self.dispatcher.dispatch(worker.service)
