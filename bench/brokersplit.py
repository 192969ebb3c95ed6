"""The broker's cost per call of a traffic split (SPEC 2.14), on both brokers.

Sequential calls through one broker to a service ``work`` and its port
``work.py3`` (one py3 worker each), in three setups: no split file, a split of
0% (the service is migrating, every call stays), and a split of 50% (the
broker reads each header's sticky key and hashes it). Reported: the mean and
p99 round trip per call; the split rows' ratios to "no split" are the cost.
The smoke run also checks that the 50% split sent exactly the calls whose
bucket is below 50.

::

    python -m bench brokersplit      # or --smoke; figures are for a quiet machine
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import zlib
from typing import Any

from bench.brokerfaults import IMPLEMENTATIONS, REPO, _broker, _processes, _stats, _wait
from bench.report import Table
from protocol.client import Client

SETUPS = {"no split": None, "split 0%": 0, "split 50%": 50}


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def measure(impl: str, percent: int | None, calls: int, seconds: float) -> dict[str, Any]:
    """Round trips of up to ``calls`` sequential calls (at most ``seconds``) in one setup."""
    with tempfile.TemporaryDirectory(prefix="bench-split-") as run, _processes() as procs:
        endpoint = "ipc://" + os.path.join(run, "broker.ipc")
        splits = os.path.join(run, "splits")
        if percent is not None:
            with open(splits, "w", encoding="utf-8") as fh:
                fh.write(f"work work.py3 {percent}\n")
        procs.append(_broker(impl, endpoint, "--splits", splits))
        for service in ("work", "work.py3"):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "protocol.worker", "--broker", endpoint, "--service",
                 service, "tests.integration.rpc.services:TABLE"],
                cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO)))
        _wait(lambda: all((_stats(endpoint) or {}).get("services", {}).get(s, {})
                          .get("workers") == 1 for s in ("work", "work.py3")), 20, "workers")
        client = Client(endpoint, timeout=10.0)
        times: list[float] = []
        sides: list[str] = []
        try:
            for i in range(20):  # warm up both sides' connections (counted by the split too)
                client.call("work", "runtime", rid=f"warm-{i}")
                sides.append(f"warm-{i}")
            end = time.monotonic() + seconds
            while len(times) < calls and time.monotonic() < end:
                key = f"user-{len(times)}"
                started = time.perf_counter()
                client.call("work", "echo", {"value": key}, rid=key)
                times.append(time.perf_counter() - started)
                sides.append(key)
        finally:
            client.close()
        stats = _stats(endpoint) or {}
    return {"times": times, "keys": sides, "split": stats.get("splits", {}).get("work")}


def run(smoke: bool) -> list[Table]:
    """Every setup on both brokers (``smoke``: 200 calls each, checked)."""
    table = Table("broker traffic split: sequential calls, one worker per side",
                  unit="us per call (mean)", baseline="python: no split",
                  higher_is_better=False)
    calls, seconds = (200, 5.0) if smoke else (5000, 20.0)
    for impl in IMPLEMENTATIONS:
        for name, percent in SETUPS.items():
            r = measure(impl, percent, calls, seconds)
            times = r["times"]
            if percent == 50:
                want = sum(zlib.crc32(f"work:{k}".encode()) % 100 < 50 for k in r["keys"])
                got = r["split"]["sent"] if r["split"] else -1
                if got != want:
                    raise AssertionError(f"{impl}: {got} calls split off, expected {want}")
            mean = 1e6 * sum(times) / len(times)
            table.add(f"{impl}: {name}", mean, "",
                      f"p99 {1e6 * _percentile(times, 0.99):.0f} us over {len(times)} calls")
    table.notes.append("the split rows minus the no-split row are the broker's cost of a "
                       "split; 50% also crosses to the other worker half the time")
    table.notes.append(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return [table]


if __name__ == "__main__":
    for t in run("--smoke" in sys.argv):
        print(t.markdown())
