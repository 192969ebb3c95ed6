"""The front's HTTP metrics: per-process counting, flushes into prometheus_client's
multi-process files, and what a scrape sums over live and dead workers.

The multi-process part runs in a child interpreter that forks real worker
processes: prometheus_client picks its value class once per process, and
this test process must not be switched to mmap values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gateway.metrics.http import BUCKETS, HttpMetrics
from gateway.metrics.multiproc import PREFIX, fresh_dir

KEY = ("GET", "200", "/v2", "wsgi", "v2", "py3")

SCRIPT = r"""
import json, os, sys
from gateway.metrics.multiproc import prepare_metrics_dir, process_dead
parent = sys.argv[1]
path = prepare_metrics_dir(parent)
durations = [0.001, 0.005, 0.0051, 0.3, 2.0, 99.0]
pids = []
for worker in range(2):
    pid = os.fork()
    if pid == 0:
        from gateway.metrics.http import HttpMetrics
        m = HttpMetrics()
        for i, d in enumerate(durations):
            m.request(("GET", "200", "/r", "wsgi", "s", "py%d" % (2 + worker)), d, 10, 100)
        m.rejection("too_large", "413")
        m.flush()
        m.request(("POST", "503", "/r", "wsgi", "s", "py2"), 0.02, 0, 5)
        m.in_flight = 3
        m.flush()
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
reg = CollectorRegistry()
MultiProcessCollector(reg, path=path)
before = generate_latest(reg).decode()
process_dead(path, pids[0])
after = generate_latest(reg).decode()
print(json.dumps({"before": before, "after": after, "path": path}))
"""


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the text format (labels in any order)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        series, value = line.rsplit(" ", 1)
        got = dict(kv.split("=", 1) for kv in series[len(name) + 1:-1].split(",") if kv)
        if {k: v.strip('"') for k, v in got.items()} == labels:
            return float(value)
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    parent = str(tmp_path_factory.mktemp("metrics"))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT, parent], capture_output=True,
                         timeout=60, env=env, check=True)
    doc: dict[str, str] = json.loads(out.stdout)
    return doc


def test_counts_are_summed_over_worker_processes(scraped: dict[str, str]) -> None:
    text = scraped["before"]
    labels = {"method": "GET", "code": "200", "route": "/r", "backend": "wsgi", "service": "s"}
    assert sample(text, "gateway_http_requests_total", **labels, runtime="py2") == 6
    assert sample(text, "gateway_http_requests_total", **labels, runtime="py3") == 6
    assert sample(text, "gateway_http_requests_total", method="POST", code="503", route="/r",
                  backend="wsgi", service="s", runtime="py2") == 2
    assert sample(text, "gateway_http_rejections_total", reason="too_large", code="413") == 2
    sized = {"route": "/r", "backend": "wsgi", "service": "s", "runtime": "py2"}
    assert sample(text, "gateway_http_request_bytes_total", **sized) == 60
    assert sample(text, "gateway_http_response_bytes_total", **sized) == 600 + 5 + 5
    assert sample(text, "gateway_http_requests_in_flight") == 6


def test_histogram_buckets_match_observe_semantics(scraped: dict[str, str]) -> None:
    text = scraped["before"]
    durations = [0.001, 0.005, 0.0051, 0.3, 2.0, 99.0]
    timed = {"method": "GET", "route": "/r", "backend": "wsgi", "service": "s",
             "runtime": "py3"}
    for bound in BUCKETS:
        le = repr(bound) if bound != int(bound) else f"{bound:.1f}"
        want = sum(1 for d in durations if d <= bound)   # le is inclusive, as observe()
        assert sample(text, "gateway_http_request_duration_seconds_bucket", **timed,
                      le=le) == want, le
    assert sample(text, "gateway_http_request_duration_seconds_bucket", **timed,
                  le="+Inf") == 6
    assert sample(text, "gateway_http_request_duration_seconds_count", **timed) == 6
    assert sample(text, "gateway_http_request_duration_seconds_sum", **timed) == \
        pytest.approx(sum(durations))


def test_a_dead_worker_keeps_its_counts_but_not_its_in_flight(scraped: dict[str, str]) -> None:
    text = scraped["after"]
    assert sample(text, "gateway_http_requests_in_flight") == 3
    assert sample(text, "gateway_http_rejections_total", reason="too_large", code="413") == 2


def test_prepare_removes_dead_masters_and_keeps_live_ones(tmp_path: object) -> None:
    parent = str(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for pid in (dead.pid, live.pid):
            os.makedirs(os.path.join(parent, f"{PREFIX}{pid}"))
            open(os.path.join(parent, f"{PREFIX}{pid}", "counter_1.db"), "wb").close()
        mine = fresh_dir(parent, os.getpid())
        left = sorted(os.listdir(parent))
        assert left == sorted([f"{PREFIX}{live.pid}", os.path.basename(mine)])
        assert os.listdir(mine) == []
    finally:
        live.kill()
        live.wait()


def test_aggregation_in_process() -> None:
    m = HttpMetrics()
    m.request(KEY, 0.004, 0, 10)
    m.request(KEY, 0.004, 7, 10)
    assert m.requests == {KEY: 2}
    slots = m.durations[("GET", "/v2", "wsgi", "v2", "py3")]
    assert slots[0] == 2 and sum(slots[:-1]) == 2 and slots[-1] == pytest.approx(0.008)
    assert m.bytes_in == {("/v2", "wsgi", "v2", "py3"): 7}
    assert m.bytes_out == {("/v2", "wsgi", "v2", "py3"): 20}
