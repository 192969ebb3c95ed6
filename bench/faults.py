"""Bad-day figures (issue 14): the front under slow clients and under overload.

``python -m bench faults`` measures, each against a baseline taken in the same run:

- ``slowloris_*``: health-probe success and latency while 500 slowloris
  connections (a header byte every 5 s) and 100 stalled bodies hold the
  front, against the same probes with no slow client; and how long the front
  takes to close them, against its configured ``client_header_timeout`` /
  ``client_body_timeout``. Target: 100% of probes.
- ``shed_*``: 1,000 connections (wrk) at a py3 ``wsgi`` route whose worker
  serves fewer requests than arrive: the 503 share and the p99 latency with
  admission control (``max_concurrency``, ``queue_timeout_ms``) against the
  same load without it, with health probes alongside. Target: probes at 100%,
  p99 bounded by the queue time rather than by the backlog. And the fast
  path's cost of admission (a limit that never binds) against no limit.

``--smoke`` shrinks every count and timeout to prove the code paths run.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.report import Table
from tests.integration.http.conftest import (
    UPSTREAM,
    start_gateway,
    start_gunicorn,
    start_wsgi_worker,
)
from tests.integration.http.slowclients import SlowCrowd, probe_health
from tests.support.broker import start_broker, wait_for_service
from tests.support.procs import ProcessGroup, python3

NATIVE_BROKER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "build", "gateway-broker")
SLOW_APP = "tests.integration.http.slow_app:app"


@contextmanager
def _estate() -> Iterator[tuple[ProcessGroup, str]]:
    procs = ProcessGroup()
    workdir = tempfile.mkdtemp(prefix="bench-faults-")
    try:
        yield procs, workdir
    finally:
        procs.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Probes:
    """Health probes taken in a background thread until stopped."""

    port: int
    interval: float = 0.2
    ok: int = 0
    sent: int = 0

    def __post_init__(self) -> None:
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            good = probe_health(self.port, timeout=2.0)
            self.latencies.append((time.perf_counter() - started) * 1000)
            self.sent += 1
            self.ok += good
            self._stop.wait(self.interval)

    def __enter__(self) -> Probes:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def share(self) -> float:
        """Percentage of probes answered 200 within 2 s."""
        return 100.0 * self.ok / self.sent if self.sent else float("nan")


# -- slow clients ----------------------------------------------------------------------------


def slowloris_probe(port: int, seconds: float) -> Probes:
    """Health probes for ``seconds`` with nothing else going on (the baseline)."""
    with Probes(port) as probes:
        time.sleep(seconds)  # the measuring window: probes run in their thread meanwhile
    return probes


def slowloris_attack(port: int, heads: int, bodies: int, drip_s: float,
                     deadline_s: float) -> tuple[Probes, float, int, int]:
    """(probes, seconds until the last slow connection was closed, still open, sent)."""
    crowd = SlowCrowd(port)
    try:
        started = time.monotonic()
        crowd.open_heads(heads)
        crowd.open_bodies(bodies)
        opened = len(crowd.all())
        last_drip = started
        with Probes(port) as probes:
            while crowd.open() and time.monotonic() - started < deadline_s:
                if time.monotonic() - last_drip >= drip_s:
                    crowd.drip(crowd.heads)
                    last_drip = time.monotonic()
                crowd.collect(0.5)
        closed = [c.closed_at for c in crowd.all() if c.closed_at]
        last = (max(closed) - started) if closed else float("nan")
        return probes, last, len(crowd.open()), opened
    finally:
        crowd.close()


def slowloris_tables(smoke: bool) -> list[Table]:
    """Health probes under slowloris against idle; the time to cut the slow ones off."""
    heads, bodies = (50, 10) if smoke else (500, 100)
    header_timeout, body_timeout = (1.0, 1.0) if smoke else (10.0, 10.0)
    drip = 0.5 if smoke else 5.0
    with _estate() as (procs, workdir):
        upstream = start_gunicorn(procs, UPSTREAM)
        gw = start_gateway(procs, workdir, {
            "routes": [{"prefix": "/api", "backend": "http", "upstream": upstream.url}],
            "limits": {"client_header_timeout": header_timeout,
                       "client_body_timeout": body_timeout}}, workers=2, threads=8)
        probe_health(gw.port)  # warm-up: the first connection of each worker
        idle = slowloris_probe(gw.port, 2.0 if smoke else 10.0)
        attacked, last, left, opened = slowloris_attack(
            gw.port, heads, bodies, drip, header_timeout + body_timeout + 30.0)
    share = Table(f"faults: health probes under {heads} slowloris + {bodies} stalled bodies",
                  "% answered", "no slow clients")
    share.add("no slow clients", idle.share, extra=f"{idle.ok}/{idle.sent}")
    share.add("under slow clients", attacked.share, target="100%",
              extra=f"{attacked.ok}/{attacked.sent} "
                    f"{'met' if attacked.ok == attacked.sent else 'missed'}")
    lat = Table("faults: health probe p99 under slow clients", "ms", "no slow clients",
                higher_is_better=False)
    lat.add("no slow clients", _percentile(idle.latencies, 0.99))
    lat.add("under slow clients", _percentile(attacked.latencies, 0.99))
    cut = Table("faults: time until the front closed every slow connection", "s",
                "client_header_timeout", higher_is_better=False)
    cut.add("client_header_timeout", header_timeout)
    cut.add("last slow connection closed", last,
            extra=f"{opened - left}/{opened} closed, a header byte every {drip:g} s")
    cut.notes.append("a slow head is cut at client_header_timeout from its start; a stalled "
                     "body at client_body_timeout after its last byte")
    return [share, lat, cut]


# -- load shedding ---------------------------------------------------------------------------

_RATE = re.compile(r"(\d+) requests in")
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_P99 = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class WrkResult:
    """What wrk saw: requests, non-2xx answers, timeouts and the p99 latency."""

    requests: int
    non2xx: int
    timeouts: int
    p99_ms: float

    @property
    def shed_share(self) -> float:
        """Percentage of answers that were not 2xx (the 503s)."""
        return 100.0 * self.non2xx / self.requests if self.requests else float("nan")


def shed_wrk(port: int, path: str, connections: int, seconds: int) -> WrkResult:
    """wrk with ``connections`` against ``path``, 10 s socket timeout."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    total = _RATE.search(out)
    p99 = _P99.search(out)
    if total is None or p99 is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    non2xx = _NON2XX.search(out)
    errors = _ERRORS.search(out)
    return WrkResult(int(total.group(1)), int(non2xx.group(1)) if non2xx else 0,
                     int(errors.group(4)) if errors else 0,
                     float(p99.group(1)) * _UNITS[p99.group(2)])


def shed_estate(procs: ProcessGroup, workdir: str, work_ms: int,
                limit: int, queue_ms: int) -> int:
    """Broker, two py3 slow-app replicas and a front with a shed and an unshed route."""
    impl = "native" if os.access(NATIVE_BROKER, os.X_OK) else "python"
    endpoint = start_broker(procs, impl=impl)
    for _ in range(2):
        start_wsgi_worker(procs, endpoint, "slow", SLOW_APP, python=python3())
    wait_for_service(endpoint, "slow")
    route = {"backend": "wsgi", "service": "slow", "timeout": 30.0}
    gw = start_gateway(procs, workdir, {
        "broker": endpoint,
        # wrk is one client address: the per-client cap would refuse its connections.
        "limits": {"max_connections_per_client": 0},
        "routes": [{"prefix": "/shed", **route, "max_concurrency": limit,
                    "queue_timeout": queue_ms / 1000.0},
                   {"prefix": "/free", **route},
                   {"prefix": "/never", **route, "max_concurrency": 1_000_000}]},
        workers=2, threads=8)
    return gw.port


def shed_tables(smoke: bool) -> list[Table]:
    """503 share and p99 at 1,000 connections with and without admission; its cost."""
    connections, seconds = (100, 2) if smoke else (1000, 10)
    work_ms, limit, queue_ms = 20, 4, 100
    with _estate() as (procs, workdir):
        port = shed_estate(procs, workdir, work_ms, limit, queue_ms)
        # The cost of admission on the fast path first, on an idle estate: a limit that never
        # binds against none, in interleaved rounds, with an instant backend so that the
        # front is what is measured.
        rounds: dict[str, list[float]] = {"no limit": [], "a limit that never binds": []}
        paths = (("no limit", "/free"), ("a limit that never binds", "/never"))
        window = 1 if smoke else 5
        for prefix in ("/free", "/never"):
            shed_wrk(port, prefix + "/x?ms=0", 32, 1)  # warm-up: connections, JIT-free caches
        for _ in range(1 if smoke else 3):
            for name, prefix in paths:
                got = shed_wrk(port, prefix + "/x?ms=0", 32, window)
                rounds[name].append(got.requests / window)
        target = f"/x?ms={work_ms}"
        results: dict[str, tuple[WrkResult, Probes]] = {}
        # Shedding first: the run without it leaves a backlog at the broker behind it.
        for name, prefix in ((f"max_concurrency={limit}, queue_timeout_ms={queue_ms}",
                              "/shed"), ("no admission control", "/free")):
            with Probes(port) as probes:
                result = shed_wrk(port, prefix + target, connections, seconds)
            results[name] = (result, probes)
    base = "no admission control"
    p99 = Table(f"faults: p99 latency, {connections} connections at a {work_ms} ms py3 route "
                f"(2 replicas)", "ms", base, higher_is_better=False)
    share = Table(f"faults: 503 share and health probes, {connections} connections", "% 503",
                  base, higher_is_better=False)
    for name, (result, probes) in results.items():
        p99.add(name, result.p99_ms, extra=f"{result.requests} answers, "
                                           f"{result.timeouts} wrk timeouts")
        share.add(name, result.shed_share,
                  target="probes 100%" if name != base else "",
                  extra=f"health probes {probes.ok}/{probes.sent} "
                        f"({'met' if probes.ok == probes.sent else 'missed'})")
    cost = Table("faults: fast-path throughput with admission on (32 connections, instant "
                 "backend)", "req/s", "no limit")
    for name, values in rounds.items():
        cost.add(name, statistics.median(values), target="a few % at most"
                 if name != "no limit" else "")
    cost.notes.append("median of interleaved wrk rounds; the limit (1,000,000) never refuses, "
                      "so the difference is the admission check itself")
    return [p99, share, cost]


def run(smoke: bool) -> list[Table]:
    """Every fault figure this module measures."""
    if shutil.which("wrk") is None:
        table = Table("faults: shedding skipped", "req/s", "none")
        table.notes.append("wrk is not installed (apt-get install wrk)")
        return [*slowloris_tables(smoke), table]
    return slowloris_tables(smoke) + shed_tables(smoke)
