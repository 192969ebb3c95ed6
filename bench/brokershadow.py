"""The broker's cost per call of shadow copies (SPEC 2.14), and a hung port's effect.

Sequential calls through one broker to ``tax`` (one py3 worker) while its port
``tax3`` (one py3 worker) is shadowed, in three setups on each broker: shadow
off (a split file with the service at 0%), shadow on with a healthy port (every
call copied, pairs published to a subscriber that reads them), and shadow on
with a hung port (its handler sleeps past every copy's deadline: the copies
fill the per-service cap and the rest are skipped). Reported: the mean and p99
round trip per call; "on, healthy" minus "off" is the broker's cost of a copy
and its pair, "on, hung" p99 minus "off" p99 is the number the issue's goal
bounds (within 5 ms).

::

    python -m bench migration        # with the route shadowing tables, or alone:
    python -m bench.brokershadow     # (--smoke); figures are for a quiet machine

The smoke run checks what the figures rest on: every caller got the primary's
answer, the healthy port answered copies and pairs were published, the hung
port's copies ended failed or skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import zmq

from bench.brokerfaults import IMPLEMENTATIONS, REPO, _broker, _processes, _stats, _wait
from bench.brokersplit import _percentile
from bench.report import Table
from protocol.client import Client

SERVICES = "tests.integration.migration.shadow_services:TAX"
SETUPS = {"off": ("tax tax3 0\n", {}),
          "on, healthy": ("tax tax3 0\nshadow tax tax3 compute\n", {}),
          "on, hung": ("tax tax3 0\nshadow tax tax3 compute\n", {"TAX_HANG": "1"})}
GOAL_P99_DELTA_MS = 5.0


def _drain(endpoint: str, stop: threading.Event, seen: list[int]) -> None:
    """A comparer stand-in: subscribes to the pairs and reads them as fast as they come."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.linger = 0
    sock.connect(endpoint)
    sock.subscribe(b"")
    try:
        while not stop.is_set():
            if sock.poll(100):
                sock.recv_multipart()
                seen[0] += 1
    finally:
        sock.close(linger=0)


def measure(impl: str, setup: str, calls: int, seconds: float) -> dict[str, Any]:
    """Round trips of up to ``calls`` sequential calls (at most ``seconds``) in one setup."""
    text, port_env = SETUPS[setup]
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as run, _processes() as procs:
        endpoint = "ipc://" + os.path.join(run, "broker.ipc")
        pairs = "ipc://" + os.path.join(run, "pairs.ipc")
        splits = os.path.join(run, "splits")
        with open(splits, "w", encoding="utf-8") as fh:
            fh.write(text)
        procs.append(_broker(impl, endpoint, "--splits", splits, "--shadow-pub", pairs))
        for service, extra in (("tax", {}), ("tax3", port_env)):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "protocol.worker", "--broker", endpoint, "--service",
                 service, SERVICES], cwd=REPO,
                env=dict(os.environ, PYTHONPATH=REPO, GATEWAY_BROKER=endpoint, **extra)))
        _wait(lambda: all((_stats(endpoint) or {}).get("services", {}).get(s, {})
                          .get("workers") == 1 for s in ("tax", "tax3")), 20, "workers")
        stop, seen = threading.Event(), [0]
        reader = threading.Thread(target=_drain, args=(pairs, stop, seen), daemon=True)
        reader.start()
        client = Client(endpoint, timeout=10.0)
        times: list[float] = []
        try:
            for i in range(20):  # warm up the connections
                client.call("tax", "compute", {"amount": 100}, rid=f"warm-{i}")
            end = time.monotonic() + seconds
            while len(times) < calls and time.monotonic() < end:
                started = time.perf_counter()
                answer = client.call("tax", "compute", {"amount": 1000}, rid=f"c-{len(times)}")
                times.append(time.perf_counter() - started)
                if answer["currency"] != "EUR" or answer["tax"] != 200:
                    raise AssertionError(f"{impl} {setup}: the caller got {answer!r}")
            _wait(lambda: (_stats(endpoint) or {}).get("shadows", {}).get("tax", {})
                  .get("inflight", 0) == 0, 10, "copies ended")
        finally:
            client.close()
            stats = _stats(endpoint) or {}
            stop.set()
            reader.join(5)
    return {"times": times, "shadow": stats.get("shadows", {}).get("tax"),
            "pairs": stats.get("shadow_pairs", {}), "read": seen[0]}


def _check(impl: str, setup: str, r: dict[str, Any]) -> None:
    shadow = r["shadow"] or {}
    if setup == "on, healthy" and not (shadow.get("answered") and r["pairs"].get("published")):
        raise AssertionError(f"{impl}: the healthy port answered no copy: {r}")
    if setup == "on, hung" and (shadow.get("answered") or not (
            shadow.get("failed") or shadow.get("skipped_cap"))):
        raise AssertionError(f"{impl}: the hung port's copies did not end as failed: {r}")


def run(smoke: bool) -> list[Table]:
    """Every setup on both brokers (``smoke``: 200 calls each, checked)."""
    table = Table("broker shadow copies: sequential calls, one py3 worker per side",
                  unit="us per call (mean)", baseline="native: off", higher_is_better=False)
    calls, seconds = (200, 5.0) if smoke else (5000, 20.0)
    for impl in reversed(IMPLEMENTATIONS):
        p99_off = 0.0
        for setup in SETUPS:
            r = measure(impl, setup, calls, seconds)
            _check(impl, setup, r)
            times = r["times"]
            p99 = 1e3 * _percentile(times, 0.99)
            p99_off = p99 if setup == "off" else p99_off
            shadow = r["shadow"] or {}
            detail = (f"p99 {p99:.2f} ms over {len(times)} calls" +
                      (f"; p99 - off = {p99 - p99_off:+.2f} ms (goal <= "
                       f"{GOAL_P99_DELTA_MS:.0f})" if setup == "on, hung" else "") +
                      (f"; copies {shadow.get('sent', 0)} sent / {shadow.get('answered', 0)} "
                       f"answered / {shadow.get('skipped_cap', 0)} skipped"
                       if shadow else ""))
            table.add(f"{impl}: {setup}", 1e6 * sum(times) / len(times), "", detail)
    table.notes.append("'on, healthy' minus 'off' is the broker's cost of copying a call and "
                       "publishing its pair (plus the port's work competing for the CPUs)")
    table.notes.append(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return [table]


if __name__ == "__main__":
    for t in run("--smoke" in sys.argv):
        print(t.markdown())
