"""A real Prometheus server scrapes a running estate; its numbers match the load exactly.

The load is a known number of requests per route (py2 and py3, GET and POST
with bodies); Prometheus's HTTP API is then asked for the per-route,
per-runtime sums of ``gateway_http_requests_total`` and of the duration
histogram's ``_count``, which must equal what was sent. Prometheus comes
from the distribution's package (scripts/bootstrap.sh --test installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.arbiter.conftest import Estate
from tests.support.procs import ProcessGroup, free_port, wait_until

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="prometheus is not installed (bootstrap.sh --test)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
LOAD = {"/two": 37, "/three": 23}   # requests per route; every 5th is a POST with a body


def start_prometheus(procs: ProcessGroup, workdir: str, target_port: int) -> int:
    """A Prometheus scraping ``127.0.0.1:target_port/_gateway/metrics`` every second."""
    port = free_port()
    conf = os.path.join(workdir, "prometheus.yml")
    with open(conf, "w", encoding="utf-8") as fh:
        fh.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: gateway
    metrics_path: /_gateway/metrics
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
""")
    log = open(os.path.join(workdir, "prometheus.log"), "ab")  # noqa: SIM115 (the child owns it)
    procs.spawn(["prometheus", f"--config.file={conf}",
                 f"--storage.tsdb.path={os.path.join(workdir, 'tsdb')}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=log, stderr=log)
    log.close()
    wait_until(lambda: _ready(port), timeout=30.0, what="prometheus ready")
    return port


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1.0) as r:
            return r.status == 200
    except OSError:
        return False


def query_raw(port: int, promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector; fails on any error (a bad expression included)."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5.0) as resp:
            doc: dict[str, Any] = json.load(resp)
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{promql}: {exc.read()!r}") from None
    assert doc["status"] == "success", doc
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


def query(port: int, promql: str) -> dict[tuple[str, str], float]:
    """An instant query's vector as {(route, runtime): value}."""
    return {(r["metric"].get("route", ""), r["metric"].get("runtime", "")): float(r["value"][1])
            for r in query_raw(port, promql)}


def shipped_queries() -> list[str]:
    """Every PromQL expression of the Grafana dashboard and of the README's ``promql`` blocks."""
    with open(os.path.join(ROOT, "examples", "grafana-dashboard.json"), encoding="utf-8") as fh:
        dashboard = json.load(fh)
    exprs = [t["expr"].replace("$route", ".*").replace("$__rate_interval", "1m")
             for panel in dashboard["panels"] for t in panel["targets"]]
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    for block in re.findall(r"```promql\n(.*?)```", readme, re.S):
        # A block holds one expression per line, or one spread over lines starting "  /".
        text = re.sub(r"\n\s+(?=[/*+-] )", " ", block.strip())
        exprs += text.splitlines()
    return exprs


def send_load(e: Estate) -> None:
    for prefix, count in LOAD.items():
        for i in range(count):
            if i % 5 == 4:
                req = urllib.request.Request(f"http://127.0.0.1:{e.port}{prefix}/item/{i}",
                                             data=b"x" * 100, method="POST")
                with urllib.request.urlopen(req, timeout=5.0) as resp:
                    assert resp.status == 200
                    resp.read()
            else:
                status, _, _ = e.get(f"{prefix}/item/{i}")
                assert status == 200


def test_prometheus_counts_match_the_load(metrics_estate: Callable[..., Estate],
                                          procs: ProcessGroup, workdir: str) -> None:
    e = metrics_estate()
    prom = start_prometheus(procs, workdir, e.port)
    send_load(e)
    expected = {("/two", "py2"): float(LOAD["/two"]), ("/three", "py3"): float(LOAD["/three"])}
    routes = 'route=~"/two|/three"'
    counts: dict[tuple[str, str], float] = {}

    def counted() -> bool:
        counts.update(query(prom, f"sum by (route, runtime) "
                                  f"(gateway_http_requests_total{{{routes}}})"))
        return counts == expected
    wait_until(counted, timeout=30.0, interval=0.5, what="prometheus has every request")
    assert counts == expected
    by_code = query(prom, f'sum by (route, runtime) (gateway_http_requests_total{{{routes},'
                          f'code="200",backend="wsgi"}})')
    assert by_code == expected
    histogram = query(prom, f"sum by (route, runtime) "
                            f"(gateway_http_request_duration_seconds_count{{{routes}}})")
    assert histogram == expected
    posts = query(prom, f'sum by (route, runtime) (gateway_http_requests_total{{{routes},'
                        f'method="POST"}})')
    assert posts == {k: float(LOAD[k[0]] // 5) for k in expected}
    received = query(prom, f"sum by (route, runtime) "
                           f"(gateway_http_request_bytes_total{{{routes}}})")
    assert received == {k: 100.0 * (LOAD[k[0]] // 5) for k in expected}
    sent = query(prom, f"sum by (route, runtime) "
                       f"(gateway_http_response_bytes_total{{{routes}}})")
    assert set(sent) == set(expected) and all(v > 0 for v in sent.values())
    up = query(prom, 'up{job="gateway"}')
    assert list(up.values()) == [1.0]
    # Behind the front, the broker saw each service's requests end "ok" (the estate may
    # send requests of its own, e.g. readiness checks, so at least the load).
    services = {"two": LOAD["/two"], "three": LOAD["/three"]}

    def by_service() -> dict[str, tuple[float, float]]:
        got: dict[str, tuple[float, float]] = {}
        for svc in services:
            ok = query_raw(prom, f'gateway_broker_requests_total{{service="{svc}",'
                                 f'outcome="ok"}}')
            received = query_raw(prom, f'gateway_broker_service_requests_total{{service="{svc}"}}')
            if ok and received:
                got[svc] = (float(ok[0]["value"][1]), float(received[0]["value"][1]))
        return got
    seen: dict[str, tuple[float, float]] = {}

    def answered() -> bool:
        # Every request the broker got was answered (a scrape may fall between the two).
        seen.clear()
        seen.update(by_service())
        return len(seen) == 2 and all(ok >= services[svc] and ok == received
                                      for svc, (ok, received) in seen.items())
    try:
        wait_until(answered, timeout=30.0, interval=0.5,
                   what="the broker's per-service outcomes scraped")
    except Exception:
        raise AssertionError(f"(ok, received) per service: {seen}, load {services}") from None
    bad = query_raw(prom, 'sum(gateway_broker_requests_total{service=~"two|three",'
                          'outcome!~"ok"})')
    assert float(bad[0]["value"][1]) == 0.0


def test_the_shipped_queries_run_against_real_data(metrics_estate: Callable[..., Estate],
                                                   procs: ProcessGroup, workdir: str) -> None:
    e = metrics_estate()
    prom = start_prometheus(procs, workdir, e.port)
    exprs = shipped_queries()
    assert len(exprs) >= 15, exprs
    totals = 'sum by (route, runtime) (gateway_http_requests_total{route=~"/two|/three"})'
    # The load in two parts, each scraped: rate() then sees the counters grow.
    for prefix in LOAD:
        assert e.get(f"{prefix}/first")[0] == 200
    wait_until(lambda: query(prom, totals) == {("/two", "py2"): 1.0, ("/three", "py3"): 1.0},
               timeout=30.0, interval=0.5, what="the first requests scraped")
    send_load(e)
    want = {("/two", "py2"): LOAD["/two"] + 1.0, ("/three", "py3"): LOAD["/three"] + 1.0}
    wait_until(lambda: query(prom, totals) == want, timeout=30.0, interval=0.5,
               what="the whole load scraped")
    rate = 'sum by (route, runtime) (rate(gateway_http_requests_total{route=~".*"}[1m]))'
    assert rate in exprs
    rates = query(prom, rate)
    assert rates[("/two", "py2")] > 0 and rates[("/three", "py3")] > 0
    for expr in exprs:
        query_raw(prom, expr)   # every expression parses and evaluates
    p99 = query(prom, "histogram_quantile(0.99, sum by (le, route, runtime) (rate("
                      'gateway_http_request_duration_seconds_bucket{route=~".*"}[1m])))')
    assert p99[("/two", "py2")] > 0 and p99[("/three", "py3")] > 0
