"""The dashboard's per-runtime numbers, read from the same counters ``/_gateway/metrics`` serves.

::

    live = LiveNumbers()                        # one per front worker
    live.runtimes("/api/notes")                 # {"py2": {...}, "py3": {...}}
                                                # MetricsOff when the front counts nothing

Why here and not in the migration store: the store samples observations for
the promotion gate, while Prometheus reads the front's counters; two sources
would show two different p99s for the same traffic. This reads the front's
multi-process files (the very registry the endpoint renders) and sums the
series of one route per ``runtime`` label:

- ``requests`` and ``errors`` (status 5xx) from ``gateway_http_requests_total``;
- ``p50_ms`` and ``p99_ms`` from ``gateway_http_request_duration_seconds``,
  estimated from the buckets as PromQL's ``histogram_quantile`` does (see
  :func:`histogram_quantile`), so Grafana over the same series shows the same
  figure;
- ``rate``: requests per second from this process's oldest read within the
  last ``RATE_WINDOW_S`` to now (None on the first read).

Like a scrape from another front worker, a read sees this worker's counts as
of its last flush (at most ``gateway.metrics.http.FLUSH_S`` old).

The counts are the front's since it started (a reload starts from zero, as
the counters do); the quantiles are over those same counts, i.e. what
``histogram_quantile(q, sum by (le) (..._bucket{route=R, runtime=RT}))``
answers for a scrape taken at the same moment.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

REQUESTS = "gateway_http_requests_total"
BUCKET = "gateway_http_request_duration_seconds_bucket"
RUNTIMES = ("py2", "py3")
RATE_WINDOW_S = 300.0


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative ``(upper bound, count)`` buckets, as PromQL computes it.

    Prometheus (``promql/quantile.go``, ``bucketQuantile``): buckets sorted by
    bound, the last one ``+Inf``; the rank ``q * total`` falls into the first
    bucket whose count reaches it, and the answer is interpolated linearly
    inside that bucket (from 0 for the first bucket when its bound is
    positive); a rank in the ``+Inf`` bucket answers the highest finite bound.
    None where PromQL answers NaN (no observations, fewer than two buckets, no
    ``+Inf`` bucket).
    """
    if math.isnan(q):
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None
    # Counts summed over processes can be non-monotonic after float rounding; PromQL
    # evens that out the same way (each count at least the one before).
    fixed: list[tuple[float, float]] = []
    for bound, count in ordered:
        fixed.append((bound, max(count, fixed[-1][1]) if fixed else count))
    total = fixed[-1][1]
    if total == 0:
        return None
    rank = q * total
    index = next(i for i, (_, count) in enumerate(fixed) if count >= rank)
    if index == len(fixed) - 1:
        return fixed[-2][0]
    if index == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start, below = (0.0, 0.0) if index == 0 else fixed[index - 1]
    end, count = fixed[index]
    return start + (end - start) * ((rank - below) / (count - below))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def summarise(samples: Iterable[Any], match: Callable[[dict[str, str]], bool]
              ) -> dict[str, dict[str, Any]]:
    """Per-runtime requests, errors and buckets of the samples whose labels ``match``."""
    out: dict[str, dict[str, Any]] = {
        rt: {"requests": 0.0, "errors": 0.0, "buckets": {}} for rt in RUNTIMES}
    for s in samples:
        if s.name not in (REQUESTS, BUCKET) or not match(s.labels):
            continue
        entry = out.get(s.labels.get("runtime", ""))
        if entry is None:
            continue
        if s.name == REQUESTS:
            entry["requests"] += s.value
            if s.labels.get("code", "").startswith("5"):
                entry["errors"] += s.value
        else:
            bound = float(s.labels["le"])
            entry["buckets"][bound] = entry["buckets"].get(bound, 0.0) + s.value
    return out


class LiveNumbers:
    """Reads one route's per-runtime numbers from the front's multi-process metrics."""

    def __init__(self, collect: Callable[[], Iterable[Any]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._collect = collect or _multiprocess_samples
        self._clock = clock
        # route -> earlier reads (when, requests per runtime), for the rate.
        self._seen: dict[str, deque[tuple[float, dict[str, float]]]] = {}
        self._lock = threading.Lock()   # the admin API answers from several request threads

    def read(self) -> list[Any]:
        """One reading of every sample (:class:`MetricsOff` when there are no metrics)."""
        return list(self._collect())

    def runtimes(self, route: str, samples: list[Any] | None = None
                 ) -> dict[str, dict[str, Any]]:
        """``{"py2": {...}, "py3": {...}}`` for the requests the front counted on ``route``
        (from ``samples`` of one :meth:`read`, so several routes cost one read)."""
        if samples is None:
            samples = self.read()
        per = summarise(samples, lambda labels: labels.get("route") == route)

        with self._lock:
            return self._numbers(route, per)

    def _numbers(self, route: str, per: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        now = self._clock()
        history = self._seen.setdefault(route, deque())
        while len(history) > 1 and now - history[1][0] >= RATE_WINDOW_S:
            history.popleft()   # keep one read older than the window as the baseline
        out = {}
        for rt, entry in per.items():
            requests, errors = int(entry["requests"]), int(entry["errors"])
            buckets = sorted(entry["buckets"].items())
            rate = None
            if history:
                then, counts = history[0]
                if now > then:
                    rate = max(0.0, (entry["requests"] - counts.get(rt, 0.0)) / (now - then))
            out[rt] = {
                "requests": requests, "errors": errors,
                "error_rate": errors / requests if requests else 0.0,
                "p50_ms": _ms(histogram_quantile(0.5, buckets)),
                "p99_ms": _ms(histogram_quantile(0.99, buckets)),
                "rate": rate, "source": "metrics",
            }
        history.append((now, {rt: per[rt]["requests"] for rt in RUNTIMES}))
        return out


class MetricsOff(Exception):
    """The front keeps no metrics (``[metrics] enabled = false``): nothing to read."""


def _multiprocess_samples() -> list[Any]:
    """Every sample in the front's multi-process files (prometheus_client's own reader)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector
    registry = CollectorRegistry()
    try:
        # Finds the directory the front's master exported, as the endpoint's collector does.
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    except ValueError as exc:   # no multi-process directory: metrics are off
        raise MetricsOff(str(exc)) from None
    return [s for family in registry.collect() for s in family.samples]
