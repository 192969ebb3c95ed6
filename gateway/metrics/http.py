"""The front's HTTP metrics: counted per process on the event loop, written out on a timer.

::

    m = HttpMetrics()
    m.request(("GET", "200", "/v2", "wsgi", "v2", "py3"), seconds=0.004,
              bytes_in=0, bytes_out=512)
    m.rejection("too_large", "413")
    m.flush()                # into prometheus_client's (multi-process) values

Names and labels follow what operators already query: Traefik's
``*_requests_total{code,method,...}`` with the exact status code (as
Traefik, so a 429 and a 404 are told apart; a status class is one
``code=~"5.."`` away), and OpenTelemetry's ``http.server.request.duration``
histogram in seconds. The series:

==========================================  ===========================================
``gateway_http_requests_total``             method, code, route, backend, service, runtime
``gateway_http_request_duration_seconds``   method, route, backend, service, runtime
``gateway_http_request_bytes_total``        route, backend, service, runtime
``gateway_http_response_bytes_total``       route, backend, service, runtime
``gateway_http_requests_in_flight``         (none; summed over live front workers)
``gateway_http_rejections_total``           reason, code
==========================================  ===========================================

Why aggregate here: a prometheus_client value in multi-process mode takes a
process-wide lock and writes an mmap on every change, six times per
request; a dict increment on the loop is a fraction of that. ``flush`` runs
every ``FLUSH_S`` on the loop, before a scrape this worker serves, and at
shutdown, so another worker's numbers are at most ``FLUSH_S`` old. The
histogram is written bucket by bucket through its child's values (the
multi-process collector sums the same files ``observe`` would write).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

FLUSH_S = 0.5
# Seconds; OpenTelemetry's default boundaries for http.server.request.duration, plus 30, 60.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
           30.0, 60.0)
LABELS = ("method", "code", "route", "backend", "service", "runtime")
TIMED = ("method", "route", "backend", "service", "runtime")
SIZED = ("route", "backend", "service", "runtime")
# Request methods kept as sent; anything else is "other" (an unbounded label is a leak).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
                     "CONNECT"})

Key = tuple[str, str, str, str, str, str]


class HttpMetrics:
    """One process's HTTP counters; event-loop only (no locks)."""

    def __init__(self) -> None:
        # Per full label key, one list: [requests, bytes in, bytes out, bucket counts...,
        # sum of seconds]; one dict lookup per request, split by label subset at flush.
        self.counts: dict[Key, list[float]] = {}
        self._rejections: dict[tuple[str, str], int] = {}
        # Called before the counts are read or written out: whoever buffers requests
        # (gateway.metrics.records) counts them first, so a read is exact.
        self.before: Callable[[], None] = _nothing
        self.in_flight = 0
        self._written_in_flight: int | None = None
        self._family: dict[str, Any] | None = None

    def slots(self, key: Key) -> list[float]:
        """The counts of ``key`` since the last flush: [requests, bytes in, bytes out,
        bucket counts..., sum of seconds]; the same list until the next flush."""
        slots = self.counts.get(key)
        if slots is None:
            slots = self.counts[key] = [0] * (len(BUCKETS) + 5)
        return slots

    def request(self, key: Key, seconds: float, bytes_in: int, bytes_out: int) -> None:
        """Count one finished request (``key`` in the order of ``LABELS``)."""
        slots = self.slots(key)
        slots[0] += 1
        slots[1] += bytes_in
        slots[2] += bytes_out
        slots[3 + bisect.bisect_left(BUCKETS, seconds)] += 1
        slots[-1] += seconds

    @property
    def requests(self) -> dict[Key, int]:
        """Requests counted since the last flush, per label key."""
        self.before()
        return {key: int(slots[0]) for key, slots in self.counts.items()}

    @property
    def durations(self) -> dict[tuple[str, ...], list[float]]:
        """Bucket counts and [sum] since the last flush, per method, route, ... (no code)."""
        self.before()
        out: dict[tuple[str, ...], list[float]] = {}
        for key, slots in self.counts.items():
            timed = (key[0], *key[2:])
            into = out.setdefault(timed, [0.0] * (len(BUCKETS) + 2))
            for i, value in enumerate(slots[3:]):
                into[i] += value
        return out

    def _sized(self, index: int) -> dict[tuple[str, ...], int]:
        self.before()
        out: dict[tuple[str, ...], int] = {}
        for key, slots in self.counts.items():
            if slots[index]:
                out[key[2:]] = out.get(key[2:], 0) + int(slots[index])
        return out

    @property
    def bytes_in(self) -> dict[tuple[str, ...], int]:
        """Request body bytes since the last flush, per route, backend, service, runtime."""
        return self._sized(1)

    @property
    def bytes_out(self) -> dict[tuple[str, ...], int]:
        """Response body bytes since the last flush, per route, backend, service, runtime."""
        return self._sized(2)

    def rejection(self, reason: str, code: str) -> None:
        """Count one request the front refused itself (``reason``: the problem's code)."""
        key = (reason, code)
        self._rejections[key] = self._rejections.get(key, 0) + 1

    @property
    def rejections(self) -> dict[tuple[str, str], int]:
        """Refusals counted since the last flush, per (reason, code)."""
        self.before()
        return self._rejections

    def families(self) -> dict[str, Any]:
        """The prometheus_client metrics (made on first use, after the fork)."""
        if self._family is None:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
            # Not the default registry: the values live in the multi-process files, and the
            # endpoint collects those; nothing should collect these objects twice.
            reg = CollectorRegistry(auto_describe=False)
            self._family = {
                "requests": Counter("gateway_http_requests", "HTTP requests the front answered",
                                    LABELS, registry=reg),
                "duration": Histogram("gateway_http_request_duration_seconds",
                                      "Time from the request head to the last response byte",
                                      TIMED, buckets=BUCKETS, registry=reg),
                "bytes_in": Counter("gateway_http_request_bytes",
                                    "Request body bytes read from clients", SIZED, registry=reg),
                "bytes_out": Counter("gateway_http_response_bytes",
                                     "Response body bytes sent to clients", SIZED,
                                     registry=reg),
                "rejections": Counter("gateway_http_rejections",
                                      "Requests the front refused itself, by problem code",
                                      ("reason", "code"), registry=reg),
                "in_flight": Gauge("gateway_http_requests_in_flight",
                                   "Requests in progress in the front", registry=reg,
                                   multiprocess_mode="livesum"),
            }
        return self._family

    def flush(self) -> None:
        """Write the counts gathered since the last flush into the shared values."""
        self.before()
        if not (self.counts or self._rejections or self.in_flight != self._written_in_flight):
            return
        fam = self.families()
        requests, durations, bytes_in, bytes_out = (self.requests, self.durations,
                                                    self.bytes_in, self.bytes_out)
        self.counts = {}
        rejections, self._rejections = self._rejections, {}
        for key, n in requests.items():
            fam["requests"].labels(*key).inc(n)
        for timed, slots in durations.items():
            child = fam["duration"].labels(*timed)
            for i, hits in enumerate(slots[:-1]):
                if hits:
                    child._buckets[i].inc(hits)
            child._sum.inc(slots[-1])
        for sized, n in bytes_in.items():
            fam["bytes_in"].labels(*sized).inc(n)
        for sized, n in bytes_out.items():
            fam["bytes_out"].labels(*sized).inc(n)
        for rkey, n in rejections.items():
            fam["rejections"].labels(*rkey).inc(n)
        if self.in_flight != self._written_in_flight:
            fam["in_flight"].set(self.in_flight)
            self._written_in_flight = self.in_flight


def _nothing() -> None:
    return None
