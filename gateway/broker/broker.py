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

:class:`Broker` owns the socket, the loop and its timers; what happens to a
message is its collaborators': :class:`~gateway.broker.clients.ClientSide`
(requests, cancels, ``mmi.*``), :class:`~gateway.broker.workers.WorkerSide`
(READY, REPLY, DISCONNECT), :class:`~gateway.broker.dispatch.Dispatcher`
(dispatch, deadlines, retries, heartbeats) over the socket-free
:class:`~gateway.broker.registry.Registry`, and
:class:`~gateway.broker.wire.Wire` (sends and drops).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from gateway.broker.clients import MMI_SPLIT, ClientSide
from gateway.broker.dispatch import EXPIRY_MARGIN_MS, Dispatcher
from gateway.broker.events import EventProxy
from gateway.broker.memory import MemoryTrim
from gateway.broker.outlier import OutlierPolicy, Outliers
from gateway.broker.pairs import Pairs
from gateway.broker.probes import ProbeSchedule, drain_disconnects
from gateway.broker.registry import Registry
from gateway.broker.security import CurveKeys, apply_curve, check_bind, start_authenticator
from gateway.broker.shadow import Shadows
from gateway.broker.splits import Splits
from gateway.broker.wire import Wire
from gateway.broker.workers import PLAIN_WORKER_HEARTBEAT_MS, WorkerSide
from gateway.errors import BrokerError
from protocol import mdp

# Constants that lived here before the handlers had modules of their own.
__all__ = ["BATCH", "EXPIRY_MARGIN_MS", "MMI_SPLIT", "PLAIN_WORKER_HEARTBEAT_MS", "Broker",
           "BrokerConfig"]

log = logging.getLogger("gateway.broker")

BATCH = 256  # messages read per wake-up before the timers get a look in


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
        self.wire = Wire()
        self.drops = self.wire.drops
        self.endpoints: list[str] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._interval = config.heartbeat_ms / 1000.0
        self._events: EventProxy | None = None
        self._probes = ProbeSchedule()
        self._trim = MemoryTrim()
        self._outliers = Outliers(config.outliers, self.registry, self.counters)
        self.pairs = Pairs(config.shadow_pub, config.shadow_pub_hwm)
        self.shadows = Shadows(config.shadow_max_inflight, config.shadow_timeout_ms,
                               self.pairs)
        self.splits = Splits(config.splits_file, self.shadows)
        self.splits.reload()
        # What happens to each message is the collaborators'; the loop only reads and times.
        self.dispatcher = Dispatcher(config, self.registry, self.counters, self.wire,
                                     self.shadows, self.pairs, self.splits, self._outliers,
                                     self._probes)
        self.clients = ClientSide(config, self.registry, self.counters, self.wire,
                                  self.dispatcher, self.splits, self.shadows, self.pairs,
                                  self._trim, self.stats)
        self.workers = WorkerSide(config, self.registry, self.counters, self.wire,
                                  self.dispatcher, self._outliers, self.shadows, self.pairs,
                                  self.splits)

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
            self.wire.sock = sock
            self.clients.started = time.monotonic()
            self._ready.set()
            log.info("broker ready on %s", ", ".join(self.endpoints))
            if on_ready is not None:
                on_ready()
            self._loop(sock, monitor)
        finally:
            self.wire.sock = None
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
                self.dispatcher.probe_workers()
            if self.registry.armed():
                self.dispatcher.expire()
            if now >= next_beat:
                self.dispatcher.beat()
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
            self.wire.drop("malformed", f"{type(exc).__name__}: {exc}"[:200])

    def _dispatch_message(self, frames: list[bytes]) -> None:
        if len(frames) < 4 or frames[1] != b"":
            self.wire.drop("malformed", "short or unframed message")
            return
        sender, proto = frames[0], frames[2]
        if proto == mdp.CLIENT:
            self.clients.on_client(sender, frames[3], frames[4:])
        elif proto == mdp.WORKER:
            self.workers.on_worker(sender, frames[3], frames[4:])
        else:
            self.wire.drop("malformed", f"unknown protocol {proto[:8]!r}")
