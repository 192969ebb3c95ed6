"""gateway.metrics.live: PromQL's histogram_quantile, and per-runtime numbers of one route.

The agreement with a real Prometheus over a running estate is checked in
tests/integration/metrics/test_dashboard_numbers.py; these pin the edge cases.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client.samples import Sample

from gateway.metrics.live import LiveNumbers, MetricsOff, histogram_quantile

INF = math.inf


def test_quantile_interpolates_inside_the_bucket_the_rank_falls_in() -> None:
    buckets = [(0.1, 10.0), (0.5, 20.0), (INF, 20.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)     # rank 10: top of first
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.3)    # rank 15: half way
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)   # first bucket from 0
    assert histogram_quantile(1.0, buckets) == pytest.approx(0.5)


def test_quantile_edges_follow_promql() -> None:
    assert histogram_quantile(0.5, [(0.1, 1.0), (INF, 10.0)]) == 0.1   # in +Inf: top finite
    assert histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None   # no observations
    assert histogram_quantile(0.5, [(INF, 4.0)]) is None               # one bucket
    assert histogram_quantile(0.5, [(0.1, 1.0), (0.2, 2.0)]) is None   # no +Inf
    assert histogram_quantile(-0.1, [(0.1, 1.0), (INF, 1.0)]) == -INF
    assert histogram_quantile(1.1, [(0.1, 1.0), (INF, 1.0)]) == INF
    assert histogram_quantile(0.5, [(-1.0, 2.0), (INF, 2.0)]) == -1.0  # non-positive first
    # Non-monotonic counts (float sums) are evened out, as PromQL does.
    uneven = [(0.1, 2.0), (0.2, 1.0), (0.3, 4.0), (INF, 4.0)]
    assert histogram_quantile(0.75, uneven) == pytest.approx(0.25)   # 0.2 counted as 2


def samples(route: str, runtime: str, codes: dict[str, float],
            buckets: dict[str, float]) -> list[Sample]:
    base = {"method": "GET", "route": route, "backend": "wsgi", "service": "s",
            "runtime": runtime}
    out = [Sample("gateway_http_requests_total", dict(base, code=c), n) for c, n in codes.items()]
    out += [Sample("gateway_http_request_duration_seconds_bucket", dict(base, le=le), n)
            for le, n in buckets.items()]
    return out


def test_numbers_of_one_route_per_runtime_with_a_rate() -> None:
    now = [100.0]
    current: list[Any] = []
    live = LiveNumbers(collect=lambda: current, clock=lambda: now[0])
    current[:] = (samples("/a", "py2", {"200": 8, "503": 2},
                          {"0.1": 6, "0.5": 10, "+Inf": 10})
                  + samples("/a", "py3", {"200": 4}, {"0.1": 4, "0.5": 4, "+Inf": 4})
                  + samples("/b", "py2", {"500": 7}, {"0.1": 7, "0.5": 7, "+Inf": 7}))
    first = live.runtimes("/a")
    assert first["py2"] == {"requests": 10, "errors": 2, "error_rate": 0.2,
                            "p50_ms": pytest.approx(83.333333, rel=1e-6),
                            "p99_ms": pytest.approx(490.0), "rate": None, "source": "metrics"}
    assert first["py3"]["requests"] == 4 and first["py3"]["errors"] == 0
    now[0] = 110.0
    current[:] = samples("/a", "py2", {"200": 28, "503": 2}, {"0.1": 26, "0.5": 30, "+Inf": 30})
    second = live.runtimes("/a")
    assert second["py2"]["rate"] == pytest.approx(2.0)    # 20 more in 10 s
    assert second["py3"]["requests"] == 0 and second["py3"]["p99_ms"] is None


def test_no_metrics_directory_is_metrics_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    with pytest.raises(MetricsOff):
        LiveNumbers().runtimes("/a")
