"""The Majordomo broker loop: one ROUTER socket for clients and workers (RFC 7, RFC 8).

::

    broker = Broker(BrokerConfig(endpoints=("tcp://127.0.0.1:5555",)))
    broker.start()                 # in a thread (tests); broker.run() blocks (the CLI)
    broker.stats()["drops"]        # every dropped message, counted by reason
    broker.stop()

The loop reads only the header frame of a request (id, deadline, idem) and
forwards bodies untouched. Rules it enforces:

- a request waits for a worker of its service at most until its deadline,
  then gets a broker-made ``unavailable`` error; an expired request is never
  dispatched;
- when a worker dies (missed heartbeats, DISCONNECT, unroutable, or its
  connection closed, which :mod:`gateway.broker.probes` notices at once) its
  idempotent requests that sent no partial reply yet are retried once on
  another worker within their deadline; every other request gets
  ``worker_lost``: never a silent drop, never a second execution;
- every drop (unroutable peer, full queue, malformed frames, unknown worker,
  late reply) is counted in :meth:`Broker.stats` and logged;
- a worker is dead after 3 x max(broker interval, its READY ``heartbeat_ms``)
  of silence, 2500 ms standing in for a worker that sent none (SPEC 2.4);
- a request for a service no worker has ever served is answered
  ``unknown_service`` at once once the broker is past its start-up window,
  and waits as any other inside it (SPEC 2.5);
- a cancel (header kind ``cancel``) removes a queued request, or is forwarded
  to the worker holding it when that worker said ``"cancel": true`` (SPEC 2.11);
- only queued requests expire: one in flight is bounded by its worker and
  by the receiver's own timeouts, never by the broker;
- memory is bounded (SPEC 2.5): a deadline further out than ``max_deadline_ms``
  counts as now + that; a request that would take its service's queue, or all
  queues together, past a cap on count or body bytes is answered ``too_busy``;
  once a burst has drained, freed memory goes back to the system
  (:mod:`gateway.broker.memory`);
- a worker that keeps missing deadlines is left out of dispatch for a while,
  longer each time, never the last of its service (SPEC 2.13,
  :mod:`gateway.broker.outlier`).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from gateway.broker.events import EventProxy
from gateway.broker.header import request_fields
from gateway.broker.memory import MemoryTrim
from gateway.broker.outlier import OutlierPolicy, Outliers
from gateway.broker.pairs import Pairs
from gateway.broker.probes import ProbeSchedule, drain_disconnects
from gateway.broker.registry import Registry, Request, Service, Worker
from gateway.broker.security import CurveKeys, apply_curve, check_bind, start_authenticator
from gateway.broker.shadow import Shadows
from gateway.broker.splits import Splits
from gateway.errors import BrokerError
from protocol import codec, mdp
from protocol.errors import (
    ProtocolError,
    Timeout,
    TooBusy,
    Unavailable,
    UnknownService,
    WorkerLost,
)

log = logging.getLogger("gateway.broker")

# Queued requests expire this much before their deadline, so the broker's
# typed answer reaches the client before the client's own clock runs out.
EXPIRY_MARGIN_MS = 50
BATCH = 256
# The customary RFC 7 heartbeat interval: what a worker that announced none is assumed
# to use, so a plain MDP/0.1 worker beating every 2.5 s is not judged dead (SPEC 2.4).
PLAIN_WORKER_HEARTBEAT_MS = 2500
MMI_SPLIT = b"mmi.split"


@dataclass(frozen=True)
class BrokerConfig:
    """Everything the broker needs, passed in (the CLI builds it from argv)."""

    endpoints: tuple[str, ...] = ("tcp://127.0.0.1:5555",)
    # Bound before the CURVE keys are applied, so plain even when ``curve`` is set
    # (SPEC 2.15): the gateway host's own front and services on ipc://, beside a
    # CURVE endpoint for remote worker hosts. Loopback or ipc only.
    local_endpoints: tuple[str, ...] = ()
    # The events proxy stays plain too (its endpoints must then be loopback).
    events_local: bool = False
    heartbeat_ms: int = mdp.DEFAULT_INTERVAL_MS
    default_timeout_ms: int = 30_000
    max_msg_size: int = 64 * 1024 * 1024 + 4096
    hwm: int = 100_000
    events_pub: str | None = None
    events_sub: str | None = None
    curve: CurveKeys | None = None
    # Until the broker has been up this long, workers may still be registering, so a
    # request for a service never seen waits instead of failing unknown_service.
    startup_grace_ms: int = 5000
    # Memory bounds (SPEC 2.5). A client's deadline is believed up to this far out.
    max_deadline_ms: int = 300_000
    # Waiting requests, per service and over all services; sized for a small host:
    # the byte caps together stay well under a gigabyte.
    max_queued: int = 10_000
    max_queued_total: int = 50_000
    max_queued_bytes: int = 128 * 1024 * 1024
    max_queued_bytes_total: int = 512 * 1024 * 1024
    # Outlier ejection (SPEC 2.13, gateway.broker.outlier).
    outliers: OutlierPolicy = field(default_factory=OutlierPolicy)
    # The split file of migrated services (SPEC 2.14, gateway.broker.splits); None: no splits.
    splits_file: str | None = None
    # Shadow copies (SPEC 2.14, gateway.broker.shadow): at most this many out per
    # service, each with at most this deadline.
    shadow_max_inflight: int = 8
    shadow_timeout_ms: int = 2000
    # Where shadow pairs are published for the comparer (gateway.broker.pairs); None: not.
    shadow_pub: str | None = None
    shadow_pub_hwm: int = 1000


class Broker:
    """Routes MDP requests to workers; see the module docstring for its rules."""

    def __init__(self, config: BrokerConfig,
                 ctx: zmq.Context[zmq.Socket[bytes]] | None = None) -> None:
        if not config.endpoints and not config.local_endpoints:
            raise BrokerError("the broker needs at least one endpoint to bind")
        for endpoint in config.endpoints:
            check_bind(endpoint, config.curve)
        for endpoint in config.local_endpoints:
            check_bind(endpoint, None)  # plain: loopback only, whatever the keys
        if config.shadow_pub:  # pairs carry whole requests and answers in the clear
            check_bind(config.shadow_pub, None)
        self.config = config
        self.ctx = ctx or zmq.Context.instance()
        self.registry = Registry()
        self.counters: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.endpoints: list[str] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._started = time.monotonic()
        self._interval = config.heartbeat_ms / 1000.0
        self._sock: zmq.Socket[bytes] | None = None
        self._events: EventProxy | None = None
        self._probes = ProbeSchedule()
        self._trim = MemoryTrim()
        self._outliers = Outliers(config.outliers, self.registry, self.counters)
        self.pairs = Pairs(config.shadow_pub, config.shadow_pub_hwm)
        self.shadows = Shadows(config.shadow_max_inflight, config.shadow_timeout_ms,
                               self.pairs)
        self.splits = Splits(config.splits_file, self.shadows)
        self.splits.reload()

    # ---------------------------------------------------------- lifecycle --
    def start(self, timeout: float = 10.0) -> None:
        """Bind and run the loop in a daemon thread; raise BrokerError if binding fails."""
        self._thread = threading.Thread(target=self._guarded_run, name="broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise BrokerError("broker did not become ready in time")
        if self._error is not None:
            raise BrokerError(str(self._error)) from self._error

    def _guarded_run(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # before ready: start() raises it; after: logged
            self._error = exc
            if self._ready.is_set():
                log.critical("broker loop died", exc_info=exc)
            self._ready.set()

    def _bind_all(self, sock: zmq.Socket[bytes], endpoints: tuple[str, ...]) -> None:
        for endpoint in endpoints:
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as exc:
                raise BrokerError(f"cannot bind {endpoint}: {exc}") from exc
            self.endpoints.append(sock.getsockopt_string(zmq.LAST_ENDPOINT))

    def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Bind and serve until :meth:`stop`; sockets are created and closed in this thread.

        ``on_ready`` runs once every endpoint is bound. Binding failures raise
        :class:`BrokerError`; anything else that ends the loop propagates.
        """
        sock = self.ctx.socket(zmq.ROUTER)
        monitor: zmq.Socket[bytes] | None = None
        auth = None
        try:
            sock.router_mandatory = 1
            sock.linger = 0
            sock.maxmsgsize = self.config.max_msg_size
            sock.sndhwm = sock.rcvhwm = self.config.hwm
            # libzmq copies the security options into each listener at bind time, so
            # the local endpoints bound first stay plain (NULL mechanism).
            self._bind_all(sock, self.config.local_endpoints)
            if self.config.curve is not None:
                auth = start_authenticator(self.ctx, self.config.curve)
                apply_curve(sock, self.config.curve)
            self._bind_all(sock, self.config.endpoints)
            if self.config.events_pub and self.config.events_sub:
                self._events = EventProxy(self.config.events_pub, self.config.events_sub,
                                          self.ctx,
                                          None if self.config.events_local else self.config.curve)
                self._events.start()
            try:
                self.pairs.open(self.ctx)
            except zmq.ZMQError as exc:
                raise BrokerError(f"cannot bind {self.config.shadow_pub}: {exc}") from exc
            monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            self._sock = sock
            self._started = time.monotonic()
            self._ready.set()
            log.info("broker ready on %s", ", ".join(self.endpoints))
            if on_ready is not None:
                on_ready()
            self._loop(sock, monitor)
        finally:
            self._sock = None
            if monitor is not None:
                sock.disable_monitor()
                monitor.close(linger=0)
            sock.close(linger=0)
            self.pairs.close()
            if self._events is not None:
                self._events.stop()
            if auth is not None:
                auth.stop()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to finish and wait for its thread (when started with start())."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        """Counters, drops by reason and gauges; safe to call from any thread."""
        # The loop thread mutates these while we read: look each worker up once.
        workers = self.registry.workers
        services = {
            svc.name.decode("utf-8", "replace"): {
                "workers": len(svc.workers), "waiting": svc.queued,
                "inflight": sum(len(worker.inflight) for worker in
                                (workers.get(w) for w in list(svc.workers))
                                if worker is not None),
                "queued_bytes": svc.queued_bytes, "ejected": svc.ejected,
                "outcomes": dict(svc.outcomes),
            } for svc in list(self.registry.services.values())}
        stats = {"counters": dict(self.counters), "drops": dict(self.drops),
                 "dropped": sum(self.drops.values()), "workers": len(self.registry.workers),
                 "ejected": self._outliers.ejected(),
                 "services": services, "heartbeat_ms": self.config.heartbeat_ms,
                 "queued": self.registry.queued, "queued_bytes": self.registry.queued_bytes,
                 "splits": self.splits.to_json()}
        # Only when in use, so a broker that shadows nothing reports the common shape.
        if self.shadows.table:
            stats["shadows"] = self.shadows.to_json()
        if self.config.shadow_pub:
            stats["shadow_pairs"] = self.pairs.to_json()
        return stats

    # --------------------------------------------------------------- loop --
    def _loop(self, sock: zmq.Socket[bytes], monitor: zmq.Socket[bytes]) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        monotonic = time.monotonic
        next_beat = monotonic() + self._interval
        stopping = self._stop.is_set
        while not stopping():
            now = monotonic()
            timeout = max(0.0, min(next_beat - now, 0.1))
            probe_in = self._probes.wait(now)
            if probe_in is not None:
                timeout = min(timeout, probe_in)
            due = self.registry.next_deadline()
            if due is not None:
                timeout = min(timeout, max(0.0, (due - EXPIRY_MARGIN_MS - mdp.now_ms()) / 1000))
            # Round up: a zero-ms poll on a probe due in 0.4 ms would spin.
            events = dict(poller.poll(math.ceil(timeout * 1000)))
            if sock in events:
                self._read(sock)
            if monitor in events:
                closed = drain_disconnects(monitor)
                self.counters["disconnects"] += closed
                if closed and self.registry.workers:
                    self._probes.start(time.monotonic())
            now = monotonic()
            if self._probes.times and self._probes.due(now):
                self._probe_workers()
            if self.registry.armed():
                self._expire_requests()
            if now >= next_beat:
                self._beat()
                next_beat = monotonic() + self._interval
            if self._trim.due(self.registry.queued_bytes, now):
                self.counters["memory_trims"] += 1
                self._trim.run()

    def _read(self, sock: zmq.Socket[bytes]) -> None:
        """Handle up to BATCH queued messages.

        After the first, ZMQ_EVENTS says whether more are queued: in the
        one-message case that is cheaper than the Again an empty read raises.
        """
        for i in range(BATCH):
            try:
                frames = mdp.recv_frames(sock, mdp.NOBLOCK)
            except zmq.Again:
                return
            self._handle(frames)
            if i == 0 and not mdp.readable(sock):
                return

    def _handle(self, frames: list[bytes]) -> None:
        # One peer's bad message must never end the loop that serves everyone else.
        try:
            self._dispatch_message(frames)
        except Exception as exc:  # counted and logged; the loop goes on
            log.exception("message handling failed")
            self._drop("malformed", f"{type(exc).__name__}: {exc}"[:200])

    def _dispatch_message(self, frames: list[bytes]) -> None:
        if len(frames) < 4 or frames[1] != b"":
            self._drop("malformed", "short or unframed message")
            return
        sender, proto = frames[0], frames[2]
        if proto == mdp.CLIENT:
            self._on_client(sender, frames[3], frames[4:])
        elif proto == mdp.WORKER:
            self._on_worker(sender, frames[3], frames[4:])
        else:
            self._drop("malformed", f"unknown protocol {proto[:8]!r}")

    # ------------------------------------------------------------ clients --
    def _on_client(self, client: bytes, service: bytes, body: list[bytes]) -> None:
        self.counters["requests"] += 1
        if service.startswith(b"mmi."):
            self._mmi(client, service, body)
            return
        now = mdp.now_ms()
        fields = request_fields(body[0]) if body else None
        if fields is not None:
            rid, deadline, idem, kind = fields
            if kind == "cancel":
                self._cancel(client, service, rid, body)
                return
            deadline = deadline or now + self.config.default_timeout_ms
            if deadline > now + self.config.max_deadline_ms:
                # A client may not pin memory for longer than the broker allows.
                self.counters["deadlines_clamped"] += 1
                deadline = now + self.config.max_deadline_ms
        else:
            # SPEC 3.4: a broker-made error for a header-less request still has a proper id.
            rid = codec.new_id()
            deadline, idem = now + self.config.default_timeout_ms, False
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
        if deadline - EXPIRY_MARGIN_MS <= now:
            self.counters["expired"] += 1
            _outcome(svc, "timeout", received=True)
            self._reply_error(request, Timeout("the deadline passed before the broker got it"))
            return
        if not self.registry.known(service) and \
                (time.monotonic() - self._started) * 1000 > self.config.startup_grace_ms:
            self.counters["unknown_service"] += 1
            _outcome(svc, "unavailable", received=True)
            name = service.decode("utf-8", "replace")
            self._reply_error(request, UnknownService(f"no worker has ever served {name}"))
            return
        request.size = sum(map(len, body))
        full = self._queue_full(service, request.size)
        if full is not None:
            self.counters["too_busy"] += 1
            _outcome(svc, "too_busy", received=True)
            self._reply_error(request, TooBusy(full))
            return
        self.registry.enqueue(request)
        self.registry.services[service].outcomes["requests"] += 1
        self._trim.grew(request.size)
        self._dispatch(service)
        self.registry.arm(request)
        if self.shadows.table:  # after the primary: the caller waits for nothing more
            self._shadow(request, now)

    def _shadow(self, request: Request, now: int) -> None:
        """Queue a shadow copy of ``request`` for its service's candidate, when one is due."""
        copy = self.shadows.copy(request, self.registry.live, now)
        if copy is None:
            return
        if self._queue_full(copy.service, copy.size) is not None:
            self.shadows.skipped(copy)
            return
        self.pairs.expect(request, copy, self.shadows.method)
        self.registry.enqueue(copy)
        # Counted as the candidate's request, so its outcomes (ok, timeout...) add up.
        self.registry.services[copy.service].outcomes["requests"] += 1
        self._dispatch(copy.service)
        self.registry.arm(copy)

    def _queue_full(self, service: bytes, size: int) -> str | None:
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

    def _cancel(self, client: bytes, service: bytes, rid: str, body: list[bytes]) -> None:
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
            self._send([held[0].identity, b"", mdp.WORKER, mdp.REQUEST, client, b"", *body],
                       "worker gone")
            return
        self.counters["cancels_ignored"] += 1

    def _mmi(self, client: bytes, service: bytes, body: list[bytes]) -> None:
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
        self._send([client, b"", mdp.CLIENT, service, *answer], "client gone")

    def _reply_error(self, request: Request, error: ProtocolError) -> None:
        if request.shadow:  # nobody waits for a copy: it only ends
            self.shadows.finished(request, None)
            return
        body = mdp.error_body(request.id, error)
        self._send([request.client, b"", mdp.CLIENT, request.asked or request.service, *body],
                   "client gone")

    # ------------------------------------------------------------ workers --
    def _on_worker(self, sender: bytes, command: bytes, args: list[bytes]) -> None:
        worker = self.registry.workers.get(sender)
        if worker is not None:
            worker.expiry = time.monotonic() + worker.liveness
        if command == mdp.REPLY and worker is not None:
            self._on_reply(worker, args)
        elif command == mdp.HEARTBEAT and worker is not None:
            pass
        elif command == mdp.READY:
            if worker is not None:  # RFC 7: READY twice is a protocol error
                self._lose_worker(sender, "sent READY twice")
                self._send([sender, *mdp.disconnect()], "worker gone")
            elif args:
                self._on_ready(sender, args)
            else:
                self._drop("malformed", "READY without a service")
        elif command == mdp.DISCONNECT:
            if worker is not None:
                # A worker sends DISCONNECT only once it has answered everything it started
                # (SPEC 2.2), so what it still holds crossed the DISCONNECT on the wire.
                self._lose_worker(sender, "disconnected", unstarted=True)
        elif worker is None:
            # An unknown worker (e.g. after a broker restart): RFC 7 says disconnect it,
            # and our worker then re-registers with READY.
            self._drop("unknown_worker", "command from an unregistered worker")
            self._send([sender, *mdp.disconnect()], "worker gone")
        else:
            self._drop("malformed", f"worker command {command[:4]!r}")

    def _on_ready(self, sender: bytes, args: list[bytes]) -> None:
        service = args[0]
        meta = mdp.parse_metadata(args)
        credit = meta.get("credit", 1)
        if not isinstance(credit, int) or isinstance(credit, bool):
            credit = 1
        credit = min(max(credit, 1), 1000)
        beat_ms = meta.get("heartbeat_ms")
        if not isinstance(beat_ms, int) or isinstance(beat_ms, bool) or beat_ms <= 0:
            beat_ms = PLAIN_WORKER_HEARTBEAT_MS
        liveness = mdp.LIVENESS * max(self._interval, beat_ms / 1000.0)
        self.registry.add_worker(sender, service, credit, time.monotonic() + liveness, meta,
                                 liveness, meta.get("cancel") is True)
        self.counters["workers_ready"] += 1
        log.info("worker %s ready for %r (credit %d)", sender.hex(), service, credit)
        self._send([sender, *mdp.heartbeat(self.config.heartbeat_ms)], "worker gone")
        self._dispatch(service)

    def _on_reply(self, worker: Worker, args: list[bytes]) -> None:
        if len(args) < 2 or args[1] != b"":
            self._drop("malformed", "REPLY without [client, empty]")
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
            self._drop("late_reply", "reply for a request the broker no longer holds")
            return
        self.counters["replies"] += 1
        if not request.replied:  # the first part tells whether the worker kept the deadline
            self._outliers.replied(worker, request, head)
        request.replied = True
        if request.shadow:
            if not more:
                self.shadows.finished(request, body)
        else:
            # The address the broker recorded, not the one the worker echoed back.
            self._send([request.client, b"", mdp.CLIENT, request.asked or worker.service,
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
                self._dispatch(worker.service)

    # ----------------------------------------------------------- dispatch --
    def _dispatch(self, service: bytes) -> None:
        expired: list[Request] = []
        unroutable: bytes | None = None
        for worker, request in self.registry.dispatchable(
                service, mdp.now_ms() + EXPIRY_MARGIN_MS, expired):
            self.counters["dispatched"] += 1
            if not self._send([worker.identity, b"", mdp.WORKER, mdp.REQUEST,
                               request.client, b"", *request.body], "worker gone"):
                # Never delivered, so the attempt does not count and a retry is safe.
                request.attempts -= 1
                unroutable = worker.identity
                break
        for request in expired:
            self._unavailable(request)
        if unroutable is not None:
            self._lose_worker(unroutable, "unroutable")

    def _expire_requests(self) -> None:
        for request in self.registry.pop_expired(mdp.now_ms() + EXPIRY_MARGIN_MS):
            self._unavailable(request)

    def _unavailable(self, request: Request) -> None:
        self.counters["expired"] += 1
        live = self.registry.live(request.service)
        _outcome(self.registry.services.get(request.service), "timeout" if live else "unavailable")
        if live:
            self._reply_error(request, Timeout("the deadline passed while every worker was busy"))
        elif self.registry.known(request.service):
            name = request.service.decode("utf-8", "replace")
            self._reply_error(request, Unavailable(f"no live worker for {name} in time"))
        else:
            name = request.service.decode("utf-8", "replace")
            self._reply_error(request, UnknownService(f"no worker has ever served {name}"))

    def _lose_worker(self, identity: bytes, why: str, unstarted: bool = False) -> None:
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
                self.registry.enqueue(request, front=True)
                self.registry.arm(request)
            elif request.idem and request.attempts < 2 and not request.replied \
                    and request.deadline - EXPIRY_MARGIN_MS > now:
                self.counters["retried"] += 1
                _outcome(self.registry.services.get(service), "retried")
                self.registry.enqueue(request, front=True)
                self.registry.arm(request)
            elif request.attempts < 1:
                self.registry.enqueue(request, front=True)  # never reached a worker
                self.registry.arm(request)
            else:
                self.counters["worker_lost"] += 1
                _outcome(self.registry.services.get(service), "worker_lost")
                request.done = True
                self._reply_error(request, WorkerLost(
                    f"the worker died while handling it ({why})"))
        if held:
            self._dispatch(service)

    def _probe_workers(self) -> None:
        """One probe round: a HEARTBEAT to every worker; the unroutable ones are gone."""
        assert self._sock is not None
        for identity in list(self.registry.workers):
            try:
                mdp.send_frames(self._sock, [identity, *mdp.heartbeat()], mdp.NOBLOCK)
            except zmq.Again:
                continue  # full, not gone
            except zmq.ZMQError as exc:
                if exc.errno != errno.EHOSTUNREACH:
                    raise
                self.counters["workers_closed"] += 1
                self._lose_worker(identity, "connection closed")
        if not self.registry.workers:
            self._probes.clear()

    def _beat(self) -> None:
        now = time.monotonic()
        self.splits.changed()  # a missed mmi.split still takes effect within a beat
        if self.shadows.live:
            self.shadows.sweep(mdp.now_ms())
        self.pairs.sweep(mdp.now_ms())
        for identity in self.registry.expired_workers(now):
            self.counters["workers_expired"] += 1
            self._lose_worker(identity, "missed heartbeats")
        for service in self._outliers.sweep():
            self._dispatch(service)
        for identity in list(self.registry.workers):
            if not self._send([identity, *mdp.heartbeat()], "heartbeat"):
                self._lose_worker(identity, "unroutable")

    # ---------------------------------------------------------------- I/O --
    def _send(self, frames: list[bytes], what: str) -> bool:
        assert self._sock is not None
        try:
            mdp.send_frames(self._sock, frames, mdp.NOBLOCK)
            return True
        except zmq.Again:
            self._drop("hwm", f"peer {frames[0].hex()} is full")
        except zmq.ZMQError as exc:
            if exc.errno != errno.EHOSTUNREACH:
                raise
            self._drop("unroutable", f"{what}: {frames[0].hex()}")
        return False

    def _drop(self, reason: str, detail: str) -> None:
        self.drops[reason] += 1
        log.warning("drop (%s): %s [total %d]", reason, detail, self.drops[reason])


def _outcome(svc: Service | None, outcome: str, received: bool = False) -> None:
    """Count ``outcome`` for ``svc`` when it has a record (and the request, if ``received``:
    one the broker answers at once, never queued)."""
    if svc is not None:
        if received:
            svc.outcomes["requests"] += 1
        svc.outcomes[outcome] += 1
