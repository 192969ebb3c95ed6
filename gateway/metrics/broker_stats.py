"""Broker metrics from ``mmi.stats`` (SPEC 2.5; both brokers answer it), for one scrape.

::

    families = list(BrokerStats("tcp://127.0.0.1:5555", timeout=0.5).collect())

The ask is one DEALER round trip bounded by ``timeout``; a broker that does
not answer, or answers something that is not a stats object, yields
``gateway_broker_up 0`` and nothing else, never an exception. Counters the
broker grows later appear under ``gateway_broker_counter_total{counter}``
until they get a family of their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import zmq
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

# Broker counters that say how a request ended, as the ``outcome`` label.
OUTCOMES = {
    "expired": "timeout", "worker_lost": "worker_lost", "retried": "retried",
    "too_busy": "too_busy", "unknown_service": "unknown_service", "cancelled": "cancelled",
}
# Per-service ``outcomes`` in mmi.stats (SPEC 2.9) -> the ``outcome`` label; ``requests``
# (what arrived) has a family of its own, so that summing the outcomes never counts twice.
SERVICE_OUTCOMES = {"ok": "ok", "timeout": "timeout", "unavailable": "unavailable",
                    "worker_lost": "worker_lost", "retried": "retried", "too_busy": "too_busy"}
# Counters with a family of their own: name in mmi.stats -> (metric name, help).
NAMED = {
    "requests": ("gateway_broker_client_requests",
                 "Requests the broker received from clients (mmi.* included)."),
    "dispatched": ("gateway_broker_dispatched", "Requests handed to a worker."),
    "replies": ("gateway_broker_replies", "Reply parts forwarded from workers to clients."),
    "workers_expired": ("gateway_broker_heartbeat_expiries",
                        "Workers declared dead after missed heartbeats."),
    "workers_ready": ("gateway_broker_workers_registered", "READY messages from workers."),
    "workers_closed": ("gateway_broker_workers_closed",
                       "Workers whose connection closed while registered."),
    "disconnects": ("gateway_broker_disconnects", "Peer connections that closed."),
    "deadlines_clamped": ("gateway_broker_deadlines_clamped",
                          "Deadlines believed only up to max-deadline."),
    "cancels_forwarded": ("gateway_broker_cancels_forwarded", "Cancels passed to a worker."),
    "cancels_ignored": ("gateway_broker_cancels_ignored", "Cancels for unknown requests."),
    "memory_trims": ("gateway_broker_memory_trims", "Times freed memory went back to the OS."),
}


def ask_stats(endpoint: str, timeout: float, curve: tuple[bytes, bytes, bytes] | None = None,
              context: zmq.Context[Any] | None = None) -> dict[str, Any] | None:
    """The broker's ``mmi.stats`` object, or None when it does not answer within ``timeout``."""
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        if curve is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = curve
        sock.connect(endpoint)
        sock.send_multipart([b"", b"MDPC01", b"mmi.stats"], zmq.NOBLOCK)
        if not sock.poll(int(timeout * 1000)):
            return None
        frames = sock.recv_multipart(zmq.NOBLOCK)
        doc = json.loads(frames[3].decode("utf-8")) if len(frames) >= 4 else None
    except (zmq.ZMQError, ValueError, UnicodeDecodeError):
        return None
    finally:
        sock.close(linger=0)
    return doc if isinstance(doc, dict) and isinstance(doc.get("counters"), dict) else None


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


class BrokerStats:
    """A prometheus_client custom collector over one broker's ``mmi.stats``."""

    def __init__(self, endpoint: str, timeout: float = 0.5,
                 curve: tuple[bytes, bytes, bytes] | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.curve = curve

    def collect(self) -> Iterator[Metric]:
        """The broker's families; only ``gateway_broker_up 0`` when it cannot be asked."""
        up = GaugeMetricFamily("gateway_broker_up", "1 when the broker answered mmi.stats.")
        try:
            stats = ask_stats(self.endpoint, self.timeout, self.curve)
        except Exception:  # a scrape must never fail on the estate's account
            stats = None
        up.add_metric([], 0.0 if stats is None else 1.0)
        yield up
        if stats is not None:
            yield from families(stats)


def families(stats: dict[str, Any]) -> Iterator[Metric]:
    """Metric families of one ``mmi.stats`` object (exposed for the dashboard and tests)."""
    counters = stats.get("counters") or {}
    outcome = CounterMetricFamily(
        "gateway_broker_request_outcomes",
        "Requests that ended other than with a worker's reply, by outcome.", labels=["outcome"])
    other = CounterMetricFamily(
        "gateway_broker_counter", "Broker counters without a family of their own.",
        labels=["counter"])
    named: dict[str, CounterMetricFamily] = {}
    for name, value in sorted(counters.items()):
        if name in OUTCOMES:
            outcome.add_metric([OUTCOMES[name]], _num(value))
        elif name in NAMED:
            metric, text = NAMED[name]
            named[name] = CounterMetricFamily(metric, text, value=_num(value))
        else:
            other.add_metric([str(name)], _num(value))
    for name in NAMED:  # a counter not counted yet is absent from mmi.stats: show 0
        if name not in named:
            metric, text = NAMED[name]
            named[name] = CounterMetricFamily(metric, text, value=0.0)
    for name in OUTCOMES:
        if name not in counters:
            outcome.add_metric([OUTCOMES[name]], 0.0)
    yield outcome
    yield from named.values()
    if other.samples:
        yield other
    drops = CounterMetricFamily("gateway_broker_drops",
                                "Messages the broker dropped, by reason.", labels=["reason"])
    for reason, value in sorted((stats.get("drops") or {}).items()):
        drops.add_metric([str(reason)], _num(value))
    yield drops
    per_service = {
        "workers": GaugeMetricFamily("gateway_broker_workers",
                                     "Registered workers per service.", labels=["service"]),
        "waiting": GaugeMetricFamily("gateway_broker_queue_depth",
                                     "Requests waiting for a worker, per service.",
                                     labels=["service"]),
        "inflight": GaugeMetricFamily("gateway_broker_inflight",
                                      "Requests held by workers, per service.",
                                      labels=["service"]),
        "queued_bytes": GaugeMetricFamily("gateway_broker_queued_bytes",
                                          "Body bytes of waiting requests, per service.",
                                          labels=["service"]),
        "ejected": GaugeMetricFamily("gateway_broker_workers_ejected",
                                     "Registered workers ejected as outliers (SPEC 2.13), "
                                     "per service.", labels=["service"]),
    }
    by_outcome = CounterMetricFamily(
        "gateway_broker_requests", "Requests per service, by how the broker saw them end "
        "(retried: extra attempts).", labels=["service", "outcome"])
    received = CounterMetricFamily("gateway_broker_service_requests",
                                   "Requests the broker received per service.",
                                   labels=["service"])
    services = stats.get("services") or {}
    for service, entry in sorted(services.items()):
        if isinstance(entry, dict):
            for key, family in per_service.items():
                family.add_metric([str(service)], _num(entry.get(key)))
            counts = entry.get("outcomes")
            if isinstance(counts, dict):   # a broker older than SPEC 2.9's outcomes has none
                received.add_metric([str(service)], _num(counts.get("requests")))
                for key, label in SERVICE_OUTCOMES.items():
                    by_outcome.add_metric([str(service), label], _num(counts.get(key)))
    yield from per_service.values()
    yield by_outcome
    yield received
    yield GaugeMetricFamily("gateway_broker_queued", "Requests waiting over all services.",
                            value=_num(stats.get("queued")))
