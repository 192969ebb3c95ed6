"""What metrics and the access log cost: the gateway's wsgi -> py3 path with them on and off.

Two fronts on one broker and the same two py3 workers, identical but for
observability: "off" counts nothing and writes no log; "on" counts every
request (gateway.metrics) and writes the access log (combined, and JSON in
a third front) to a file. wrk loads each in interleaved rounds at 32
connections, and again at 1 connection for the added latency; the report is
"on" as a ratio of "off" from the same run. Target (issue 16): the access
log and metrics cost the hot path at most 3% of its throughput.

The front's CPU per request (its processes' user + system time over the
requests wrk counted) is reported for each front too: on a shared machine it
is a steadier view of the same cost than req/s. A third table times the
bookkeeping alone in this process (the observing layer around a trivial ASGI
app, 50,000 requests), in microseconds per request.

A fifth table measures the layer inside the real front stack in this process
(:mod:`bench.observe_stack`): what wrk's req/s cannot resolve on a 2-core
machine, where paired rounds swing by more than the 3% at stake. Its
difference to "off", over the whole path's CPU per request under wrk, is the
predicted throughput cost.

``--smoke`` runs one 1 s round, to prove the benchmark works.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import urllib.request
from typing import Any

from bench.http import NATIVE_BROKER, Estate, cpu_seconds, wrk
from bench.observe_stack import children_cpu, stack_cost
from bench.report import Table
from gateway.http.config import GatewayHttpConfig, Route
from tests.support.procs import free_port, python3

OFF = "wsgi -> py3, metrics and access log off"
ON = "wsgi -> py3, metrics + combined access log"
ON_JSON = "wsgi -> py3, metrics + JSON access log"


def observed_gateway(estate: Estate, endpoint: str, obs: dict[str, Any] | None) -> int:
    """A front for the ``hello3`` service, with ``obs`` as its ObservabilityConfig values."""
    port = free_port()
    path = os.path.join(estate.dir, f"gateway-{port}.json")
    spec: dict[str, Any] = {
        "http": {"broker": endpoint, "limits": {"max_connections_per_client": 0},
                 "routes": [{"prefix": "/", "backend": "wsgi", "service": "hello3"}]},
        "bind": f"127.0.0.1:{port}", "workers": 2, "threads": 8}
    if obs is not None:
        spec["observability"] = obs
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(spec, fh)
    log = open(os.path.join(estate.dir, f"gateway-{port}.log"), "wb")  # noqa: SIM115
    proc = estate.procs.spawn([python3(), "-m", "tests.integration.http.launch", path],
                              stdout=log, stderr=log)
    estate._wait(port, proc, "gateway")
    estate.pids[port] = proc.pid
    return port


def run(smoke: bool) -> list[Table]:
    """Measure the three fronts; return the throughput and latency tables."""
    if shutil.which("wrk") is None:
        table = Table("observe: skipped", "req/s", "none")
        table.notes.append("wrk is not installed (apt-get install wrk): nothing measured")
        return [table]
    seconds, rounds = (1.0, 1) if smoke else (5.0, 5)
    estate = Estate(smoke)
    notes: list[str] = []
    try:
        native = os.access(NATIVE_BROKER, os.X_OK)
        endpoint = estate.broker(native)
        estate.wsgi_workers(endpoint, "hello3", python3(), 2)
        logs = {ON: os.path.join(estate.dir, "access.log"),
                ON_JSON: os.path.join(estate.dir, "access.json.log")}
        paths = {
            OFF: observed_gateway(estate, endpoint, None),
            ON: observed_gateway(estate, endpoint, {
                "access_log": logs[ON], "metrics_dir": os.path.join(estate.dir, "m1")}),
            ON_JSON: observed_gateway(estate, endpoint, {
                "access_log": logs[ON_JSON], "access_log_format": "json",
                "metrics_dir": os.path.join(estate.dir, "m2")}),
        }
        for port in paths.values():
            wrk(port, 1.0)  # warm pools, sockets and caches
        rates: dict[str, list[float]] = {n: [] for n in paths}
        p50s: dict[str, list[float]] = {n: [] for n in paths}
        cpu: dict[str, list[float]] = {n: [] for n in paths}
        whole: list[float] = []     # every process of the path, wrk too, with observing off
        errors: list[str] = []
        everything = [p.pid for p in estate.procs.procs]
        for _ in range(rounds):
            for name, port in paths.items():
                front = [estate.pids[port]]
                before, all_before = cpu_seconds(front), cpu_seconds(everything) + children_cpu()
                rate, _ = wrk(port, seconds, errors=errors, label=name)
                cpu[name].append((cpu_seconds(front) - before) / max(1.0, rate * seconds) * 1e6)
                if name == OFF:
                    whole.append((cpu_seconds(everything) + children_cpu() - all_before)
                                 / max(1.0, rate * seconds) * 1e6)
                rates[name].append(rate)
                p50s[name].append(wrk(port, seconds, 1, errors, name)[1])
        # The "on" fronts really measured: their endpoint answers and their logs grew.
        for name in (ON, ON_JSON):
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{paths[name]}/_gateway/metrics", timeout=5) as resp:
                text = resp.read().decode()
            served = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                         if line.startswith("gateway_http_requests_total{"))
            size = os.path.getsize(logs[name]) if os.path.exists(logs[name]) else 0
            notes.append(f"{name}: {served:.0f} requests counted, access log "
                         f"{size / 1e6:.1f} MB")
        notes += [f"errors under load: {e}" for e in errors]
        stack = stack_cost(endpoint, estate.dir, blocks=2 if smoke else 12,
                           count=640 if smoke else 2000)
    finally:
        estate.close()
    rate = {n: statistics.median(v) for n, v in rates.items()}
    p50 = {n: statistics.median(v) for n, v in p50s.items()}
    ratios = [f"{n}: " + ", ".join(f"{on / off:.3f}" for on, off in zip(rates[n], rates[OFF],
                                                                         strict=True))
              for n in (ON, ON_JSON)]
    throughput = Table(f"observe: 32 connections, median of {rounds} x {seconds:.0f} s",
                       "req/s", OFF)
    throughput.add(OFF, rate[OFF])
    throughput.add(ON, rate[ON], target=">= 0.97x")
    throughput.add(ON_JSON, rate[ON_JSON], target=">= 0.97x")
    throughput.notes += ["paired per-round ratios, on/off: " + "; ".join(ratios), *notes]
    latency = Table("observe: p50 at 1 connection", "ms", OFF, higher_is_better=False)
    for name in paths:
        latency.add(name, p50[name])
    front_cpu = Table("observe: front CPU per request (32 connections)", "us", OFF,
                      higher_is_better=False)
    for name in paths:
        front_cpu.add(name, statistics.median(cpu[name]),
                      target="<= 1.03x" if name != OFF else "")
    alone = bookkeeping()
    base = next(r.value for r in alone.rows if r.name == "no observing layer")
    off_cpu = statistics.median(cpu[OFF])
    alone.notes.append("added to the front's CPU per request measured above (" +
                       f"{off_cpu:.0f} us with both off): " + ", ".join(
                           f"{r.name} {(r.value - base) / off_cpu:.1%}" for r in alone.rows
                           if r.name != "no observing layer"))
    path_cpu = statistics.median(whole)
    layer = Table("observe: the layer in the real front stack, in-process CPU per request",
                  "us", OFF, higher_is_better=False)
    for name, blocks in stack.items():
        # The median of per-block differences: each block's variants ran back to back, so a
        # slow spell of the machine moves both sides of a difference alike.
        added = statistics.median(v - o for v, o in zip(blocks, stack[OFF], strict=True))
        extra = "" if name == OFF else (
            f"{added:+.1f} us (median of paired blocks) = {added / path_cpu:.1%} of the whole "
            f"path's CPU per request; predicted throughput {path_cpu / (path_cpu + added):.3f}x")
        layer.add(name, statistics.median(blocks),
                  target="" if name == OFF else "predicted >= 0.97x", extra=extra)
    layer.notes.append("blocks (us per request): " + "; ".join(
        f"{name}: " + ", ".join(f"{v:.1f}" for v in blocks) for name, blocks in stack.items()))
    layer.notes.append(f"whole path under wrk with observing off (front, broker, py3 workers, "
                       f"wrk): {path_cpu:.0f} us CPU per request (median of {len(whole)} rounds)")
    return [throughput, latency, front_cpu, alone, layer]


async def _trivial(scope: Any, receive: Any, send: Any) -> None:
    scope["gateway.environ"] = {"gateway.route": _ROUTE, "gateway.request_id": "0" * 32,
                                "RAW_URI": "/hello", "HTTP_USER_AGENT": "wrk"}
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": b"hello"})


_ROUTE = Route("/", "wsgi", service="hello3")
# The head the wsgi front sends for the hello service's answer.
_HEADERS = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"5"),
            (b"X-Request-Id", b"0" * 32)]


def bookkeeping(count: int = 50_000) -> Table:
    """CPU microseconds per request of the observing layer alone, by what it does."""
    import asyncio
    import tempfile
    import time

    from gateway.metrics.config import ObservabilityConfig
    from gateway.metrics.observe import Observed

    config = GatewayHttpConfig(routes=(_ROUTE,), broker="ipc:///unused")
    scope = {"type": "http", "method": "GET", "http_version": "1.1", "path": "/hello",
             "raw_path": b"/hello", "headers": [], "client": ("127.0.0.1", 1)}
    table = Table(f"observe: bookkeeping alone, CPU per request ({count:,} requests)", "us",
                  "no observing layer", higher_is_better=False)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    with tempfile.TemporaryDirectory() as tmp:
        # Metrics are counted, not flushed: flushing is once per 0.5 s, not per request.
        variants: dict[str, Any] = {
            "no observing layer": _trivial,
            "metrics only": ObservabilityConfig(access_log="", metrics_dir=tmp),
            "metrics + combined access log": ObservabilityConfig(
                access_log=os.path.join(tmp, "a.log"), metrics_dir=tmp),
            "metrics + JSON access log": ObservabilityConfig(
                access_log=os.path.join(tmp, "b.log"), access_log_format="json",
                metrics_dir=tmp),
        }
        for name, variant in variants.items():
            app = variant if callable(variant) else Observed(_trivial, variant, config)

            async def serve(n: int, app: Any = app) -> None:
                for _ in range(n):
                    await app(dict(scope), receive, send)
            asyncio.run(serve(2000))
            started = time.process_time()
            asyncio.run(serve(count))
            table.add(name, (time.process_time() - started) / count * 1e6)
            close = getattr(app, "close", None)
            if close is not None:
                close()
    return table
