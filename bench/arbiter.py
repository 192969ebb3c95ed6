"""The arbiter's timing goals, as ratios against baselines measured in the same run.

One estate runs under ``gateway up`` (private temp dir, free loopback port):

- ``web``: ``fdhttp.py`` on an arbiter-owned socket, route ``/web`` (backend http);
- ``legacy``: a WSGI app under ``python2 -m protocol.wsgi``, route ``/legacy`` (wsgi);
- ``crashy``: a command that exits at once, so it goes FATAL; route ``/crashy``;
- ``app`` (not with ``--smoke``): the same WSGI app, 2 replicas, route ``/app``.

Figures:

1. kill -9 recovery, per backend: SIGKILL the replica's PID, then GET its route
   until a 200 comes from a new PID; p50 and p99 over N kills. Baseline: the cold
   start-to-ready time of the same replica (the arbiter's "ready in" for its first
   start). Goal (issue 5): p99 under 2 s.
2. The FATAL route's 503: latency of ``GET /crashy/x``; baseline ``GET /_gateway/health``
   (both through the front, one new connection per request, interleaved).
3. Reload under load (needs wrk; not with ``--smoke``): req/s of wrk on ``/app/`` while
   ``app`` is reloaded (new replicas start, the old ones drain), against the same load
   with no reload; errors must stay 0.

::

    python -m bench arbiter                   # the tables
    python -m bench.arbiter --json            # the result document as JSON
    python -m bench --smoke arbiter           # 3 kills per backend, no reload (CI)

``measure(smoke)`` returns the JSON document; ``run(smoke)`` the tables.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.report import Table
from tests.integration.arbiter.conftest import Estate, alive, fdhttp_service
from tests.support.procs import ProcessGroup, free_port, wait_until

GOAL_P99_S = 2.0
WSGI_APP = "tests.integration.arbiter.wsgiapp:app"


def estate_body(ports: tuple[int, int, int], reload: bool, generation: int = 0) -> str:
    """The services and routes of the benchmark's estate (``web``, crashy's target and ready)."""
    web_port, crashy_port, never_port = ports
    body = f"""
[[routes]]
prefix = "/web"
backend = "http"
target = "http://127.0.0.1:{web_port}"
service = "web"

[[routes]]
prefix = "/legacy"
backend = "wsgi"
service = "legacy"

[[routes]]
prefix = "/crashy"
backend = "http"
target = "http://127.0.0.1:{crashy_port}"
service = "crashy"

[services.legacy]
runtime = "py2"
app = "{WSGI_APP}"
start_limit_burst = 100000

[services.crashy]
runtime = "command"
command = ["false"]
ready = "tcp:127.0.0.1:{never_port}"
start_limit_burst = 2
""" + fdhttp_service("web", web_port, extra="start_limit_burst = 100000")
    if reload:
        body += f"""
[[routes]]
prefix = "/app"
backend = "wsgi"
service = "app"

[services.app]
runtime = "py2"
app = "{WSGI_APP}"
replicas = 2
stop_grace_s = 5
env = {{ BENCH_GENERATION = "{generation}" }}
"""
    return body


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank (the p99 of 50 values is their maximum)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def arbiter_lines(e: Estate, prefix: str) -> list[str]:
    """The arbiter's own log lines starting with ``prefix`` (the whole log)."""
    with open(e.log_path, encoding="utf-8", errors="replace") as fh:
        lines = [json.loads(x) for x in fh if x.startswith('{"ts"')]
    return [x["line"] for x in lines if x["proc"] == "arbiter" and x["line"].startswith(prefix)]


def cold_start(e: Estate, name: str) -> float:
    """Seconds from spawn to READY of ``name.0``'s first start, as the arbiter logged it."""
    first = arbiter_lines(e, f"{name}.0: ready in ")[0]
    return float(first.rsplit(" ", 1)[1].rstrip("s"))


def recoveries(e: Estate, name: str, route: str, kills: int) -> list[float]:
    """Seconds from each SIGKILL of ``name``'s replica to its route's first 200 from a new PID."""
    out = []
    for _ in range(kills):
        pid = e.program(name)["replicas"][0]["pid"]
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda pid=pid: not alive(pid), timeout=2, what="killed")

        def routable(pid: int = pid) -> bool:
            code, body, _ = e.get(route, timeout=2)
            return code == 200 and json.loads(body)["pid"] != pid
        wait_until(routable, timeout=10, interval=0.01, what=f"{route} routable again")
        out.append(time.monotonic() - started)
    return out


def latencies(e: Estate, paths: dict[str, tuple[str, int]], count: int) -> dict[str, list[float]]:
    """Seconds per GET of each named path, interleaved; each must answer its expected status."""
    out: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(count):
        for name, (path, status) in paths.items():
            code, body, took = e.get(path)
            if code != status:
                raise RuntimeError(f"GET {path}: {code} {body[:200]!r}, expected {status}")
            out[name].append(took)
    return out


def wrk_run(procs: ProcessGroup, workdir: str, url: str, seconds: int,
            during: Any = None) -> dict[str, float]:
    """wrk (2 threads, 16 connections) on ``url``; ``during()`` runs a third of the way in."""
    out_path = os.path.join(workdir, "wrk.txt")
    wrk = shutil.which("wrk")
    assert wrk is not None
    started = time.monotonic()
    with open(out_path, "wb") as fh:
        proc = procs.spawn([wrk, "-t2", "-c16", f"-d{seconds}s", "--timeout", "5s", url],
                           stdout=fh, stderr=subprocess.STDOUT)
    if during is not None:
        wait_until(lambda: time.monotonic() - started >= seconds / 3, timeout=seconds,
                   what="a third of the load")
        during()
    proc.wait(timeout=seconds + 30)
    with open(out_path, encoding="utf-8") as fh:
        text = fh.read()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if rate is None:
        raise RuntimeError(f"cannot parse wrk output:\n{text}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"rps": float(rate[1]),
            "errors": float(sum(int(x) for x in errors.groups())) if errors else 0.0,
            "non2xx": float(non2xx[1]) if non2xx else 0.0}


def measure_reload(e: Estate, procs: ProcessGroup, workdir: str, ports: tuple[int, int, int],
                   rounds: int, seconds: int) -> dict[str, Any]:
    """Interleaved wrk runs on /app/ without and with a reload of ``app``; medians."""
    url = f"http://127.0.0.1:{e.port}/app/"
    runs: dict[str, list[dict[str, float]]] = {"steady": [], "reload": []}
    generation = 0

    def reload() -> None:
        nonlocal generation
        generation += 1
        e.write(estate_body(ports, True, generation))
        answer = e.reload("app")
        if answer.get("changed") != ["app"]:
            raise RuntimeError(f"reload did not replace app: {answer}")

    wrk_run(procs, workdir, url, 1)  # warm the front's pools and the workers
    for _ in range(rounds):
        runs["steady"].append(wrk_run(procs, workdir, url, seconds))
        runs["reload"].append(wrk_run(procs, workdir, url, seconds, during=reload))
    return {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
            for name, rs in runs.items()} | {"reloads": generation, "rounds": rounds,
                                            "seconds": seconds}


def measure(smoke: bool) -> dict[str, Any]:
    """Run the estate and every figure; the result document (JSON-ready)."""
    kills, gets = (3, 10) if smoke else (50, 200)
    with_reload = not smoke and shutil.which("wrk") is not None
    procs = ProcessGroup()
    workdir = tempfile.mkdtemp(prefix="gw-bench-arbiter-")
    ports = (free_port(), free_port(), free_port())
    e = Estate(procs, workdir, estate_body(ports, with_reload), heartbeat_ms=1000)
    doc: dict[str, Any] = {"smoke": smoke, "kills": kills, "gets": gets,
                           "cpus": os.cpu_count(), "goal_p99_s": GOAL_P99_S}
    try:
        started = time.monotonic()
        e.launch()
        wanted = {"broker": "READY", "http": "READY", "web": "READY", "legacy": "READY",
                  "crashy": "FATAL"} | ({"app": "READY"} if with_reload else {})
        wait_until(lambda: e.states() == wanted, timeout=60, what=f"estate {wanted}")
        doc["estate_start_s"] = time.monotonic() - started
        doc["recovery"] = {}
        for backend, name, route in (("http", "web", "/web/"), ("wsgi", "legacy", "/legacy/")):
            times = recoveries(e, name, route, kills)
            doc["recovery"][backend] = {
                "cold_start_ms": cold_start(e, name) * 1000,
                "p50_ms": statistics.median(times) * 1000,
                "p99_ms": percentile(times, 0.99) * 1000, "max_ms": max(times) * 1000,
                "immediate_restarts": sum(1 for line in arbiter_lines(e, f"{name}.0: killed")
                                          if line.endswith("restarting in 0.00s"))}
        lat = latencies(e, {"health": ("/_gateway/health", 200),
                            "fatal": ("/crashy/x", 503)}, gets)
        doc["latency_ms"] = {name: {"p50": statistics.median(v) * 1000,
                                    "p99": percentile(v, 0.99) * 1000}
                             for name, v in lat.items()}
        doc["reload"] = (measure_reload(e, procs, workdir, ports, 2, 10)
                         if with_reload else None)
        if not with_reload:
            doc["reload_skipped"] = ("--smoke" if smoke else
                                     "wrk is not installed (apt-get install wrk)")
        with open("/proc/loadavg", encoding="ascii") as fh:
            doc["loadavg"] = float(fh.read().split()[0])
    finally:
        e.close()
        procs.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return doc


def tables(doc: dict[str, Any]) -> list[Table]:
    """The result document as markdown tables."""
    out = []
    for backend, r in doc["recovery"].items():
        t = Table(f"arbiter: kill -9 recovery, {backend} backend, {doc['kills']} kills", "ms",
                  "cold start-to-ready", higher_is_better=False)
        t.add("cold start-to-ready", r["cold_start_ms"],
              extra="first start, as the arbiter logged it (10 ms resolution)")
        t.add("recovery p50", r["p50_ms"], extra="SIGKILL to the first 200 from a new PID")
        goal = "met" if r["p99_ms"] < doc["goal_p99_s"] * 1000 else "MISSED"
        t.add("recovery p99", r["p99_ms"], target=f"< {doc['goal_p99_s']:g} s: {goal}")
        t.add("recovery max", r["max_ms"])
        t.notes.append(f"{r['immediate_restarts']} of {doc['kills']} restarts were immediate "
                       "(the replica had been READY); the others waited out a backoff")
        out.append(t)
    lat = doc["latency_ms"]
    t = Table("arbiter: the FATAL route's 503 through the front", "ms", "/_gateway/health p50",
              higher_is_better=False)
    t.add("/_gateway/health p50", lat["health"]["p50"])
    t.add("/_gateway/health p99", lat["health"]["p99"])
    t.add("FATAL route 503 p50", lat["fatal"]["p50"], target="no wait for a worker")
    t.add("FATAL route 503 p99", lat["fatal"]["p99"])
    t.notes.append(f"{doc['gets']} GETs each, interleaved, one new connection per GET")
    out.append(t)
    if doc["reload"] is not None:
        rl = doc["reload"]
        t = Table("arbiter: reload under load (wrk, 16 connections, /app/ py2 wsgi x2)",
                  "req/s", "no reload")
        t.add("no reload", rl["steady"]["rps"],
              extra=f"errors {rl['steady']['errors']:.0f}, non-2xx {rl['steady']['non2xx']:.0f}")
        t.add("reload mid-run", rl["reload"]["rps"], target="errors = 0",
              extra=f"errors {rl['reload']['errors']:.0f}, non-2xx {rl['reload']['non2xx']:.0f}")
        t.notes.append(f"{rl['rounds']} interleaved round(s) of {rl['seconds']} s; medians")
        out.append(t)
    if "reload_skipped" in doc:
        out[-1].notes.append(f"reload under load skipped: {doc['reload_skipped']}")
    out[-1].notes.append(f"load average at the end {doc['loadavg']:.2f} on {doc['cpus']} CPUs"
                         " (other load skews every figure); estate up in "
                         f"{doc['estate_start_s']:.1f} s")
    return out


def run(smoke: bool) -> list[Table]:
    """Measure (briefly with ``smoke``); the tables."""
    return tables(measure(smoke))


if __name__ == "__main__":
    result = measure("--smoke" in sys.argv)
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for table in tables(result):
            print(table.markdown())
