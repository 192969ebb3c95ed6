"""The dashboard and ``/_gateway/metrics`` show the same numbers for a migrated route.

A real estate serves a known load on a route in shadow (some requests pinned
to the py3 port with the admin token); a real Prometheus scrapes it. The
admin API the dashboard reads must then give, per runtime, exactly the
request counts the scrape has, and the p50/p99 Prometheus's own
``histogram_quantile`` computes from the scraped buckets.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Callable

import pytest

from tests.integration.arbiter.conftest import Estate
from tests.integration.metrics.conftest import scrape, total
from tests.integration.metrics.test_lifecycle import MIGRATION
from tests.integration.metrics.test_prometheus import query, start_prometheus
from tests.support.procs import ProcessGroup, wait_until

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="prometheus is not installed (bootstrap.sh --test)")

LOAD = {"py2": 9, "py3": 5}


def overview(e: Estate, token: str) -> dict[str, dict[str, object]]:
    """The migration ``two``'s per-runtime numbers, as the dashboard gets them."""
    req = urllib.request.Request(f"http://127.0.0.1:{e.port}/_gateway/api/overview",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5.0) as resp:
        doc = json.load(resp)
    (two,) = [m for m in doc["migrations"] if m["name"] == "two"]
    runtimes: dict[str, dict[str, object]] = two["runtimes"]
    return runtimes


def test_dashboard_numbers_are_the_metrics_numbers(
        metrics_estate: Callable[..., Estate], procs: ProcessGroup, workdir: str) -> None:
    e = metrics_estate(extra=MIGRATION)
    with open(os.path.join(e.run_dir, "admin.token"), encoding="ascii") as fh:
        token = fh.read().strip()
    prom = start_prometheus(procs, workdir, e.port)
    for i in range(LOAD["py3"]):   # pinned to the port with the admin token
        req = urllib.request.Request(f"http://127.0.0.1:{e.port}/two/p/{i}", headers={
            "X-Gateway-Runtime": "py3", "X-Gateway-Token": token})
        with urllib.request.urlopen(req, timeout=5.0) as resp:
            assert b"cpython-3." in resp.read()
    for i in range(LOAD["py2"]):
        assert e.get(f"/two/q/{i}")[0] == 200

    def scraped(text: str) -> dict[str, int]:
        return {rt: int(total(text, "gateway_http_requests_total", route="/two", runtime=rt))
                for rt in LOAD}
    wait_until(lambda: scraped(scrape(e)) == LOAD, timeout=10.0, interval=0.1,
               what="the load in /_gateway/metrics")
    expected = {("/two", rt): float(n) for rt, n in LOAD.items()}
    wait_until(lambda: query(prom, 'sum by (route, runtime) '
                                   '(gateway_http_requests_total{route="/two"})') == expected,
               timeout=30.0, interval=0.5, what="prometheus has every request")

    text = scrape(e)
    numbers = overview(e, token)
    assert {rt: numbers[rt]["requests"] for rt in LOAD} == scraped(text) == LOAD
    for rt in LOAD:
        assert numbers[rt]["source"] == "metrics"
        assert numbers[rt]["errors"] == int(total(
            text, "gateway_http_requests_total", route="/two", runtime=rt, code="500"))
        assert total(text, "gateway_http_request_duration_seconds_count", route="/two",
                     runtime=rt) == LOAD[rt]
        for q, key in ((0.5, "p50_ms"), (0.99, "p99_ms")):
            promql = (f"histogram_quantile({q}, sum by (le, route, runtime) "
                      f'(gateway_http_request_duration_seconds_bucket{{route="/two",'
                      f'runtime="{rt}"}}))')
            (seconds,) = query(prom, promql).values()
            assert numbers[rt][key] == pytest.approx(seconds * 1000.0, rel=1e-9), (rt, q)
    # A later read by the same front worker has a rate (each worker keeps its own earlier
    # reads, so poll): nothing arrived since, so 0 per second.
    rates: dict[str, object] = {}

    def rated() -> bool:
        again = overview(e, token)
        rates.update({rt: again[rt]["rate"] for rt in LOAD})
        return None not in rates.values()
    wait_until(rated, timeout=10.0, interval=0.1, what="a second read with a rate")
    assert rates == {"py2": 0.0, "py3": 0.0}
