"""Shadow isolation: the primary's latency and errors with shadowing off vs on, as ratios.

One estate runs under ``gateway up`` (private temp dir, free loopback port):
``/api/notes`` is the Python 2 notes app (``py2_services.notes:app``,
the primary) migrating to :func:`bench.apps.slow_notes`, the Python 3 port
behind a delay the benchmark sets per request. wrk (1 thread, 4 connections,
``--latency``) loads the primary in these modes, each right after a shadow-off
baseline (state ``py2``) so drift hits both sides alike:

1. shadow off (the baseline)
2. shadow on, healthy candidate
3. shadow on, candidate 10x slower than the primary's baseline p50
4. shadow on, candidate hung (SIGSTOP of its PID, SIGCONT after)
5. shadow on, candidate killed (SIGKILL; the arbiter restarts it), measured at once

Goal (issue 7): the primary's p99 moves by at most 5 ms and its errors stay 0.
Each mode reports p50, p99, errors (non-2xx + socket errors), the p99 delta and
ratio against the baseline just before it, and the evidence the admin API
recorded for that shadow epoch (samples, candidate_errors, uncompared)::

    python -m bench migration                 # the table
    python -m bench.migration --json          # the result document as JSON
    python -m bench --smoke migration         # modes 1-2, 1 s each, checked (CI)

``measure(smoke)`` returns the JSON document; ``run(smoke)`` the tables.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

from bench.apps import set_delay
from bench.report import Table
from tests.integration.migration.conftest import MigrationEstate, add_notes
from tests.support.procs import ProcessGroup, wait_until

PATH = "/api/notes?limit=2"
NAME = "notes"
THREADS, CONNECTIONS = 1, 4
SHADOW_TIMEOUT_MS = 1000
GOAL_DELTA_MS = 5.0
SLOWDOWN = 10.0
MODES = ("healthy", "slow", "hung", "killed")
LABELS = {"off": "shadow off (baseline)", "healthy": "shadow on, healthy candidate",
          "slow": "shadow on, candidate 10x slower", "hung": "shadow on, candidate hung",
          "killed": "shadow on, candidate killed"}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_PCT = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_COUNT = re.compile(r"^\s*(\d+) requests in ", re.M)
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass
class Load:
    """One wrk run against the primary: percentiles in ms, requests and errors."""

    p50: float
    p99: float
    requests: int
    errors: int


def wrk(port: int, seconds: float) -> Load:
    """Load ``PATH`` on 127.0.0.1:``port`` for ``seconds`` with wrk (bounded in time)."""
    out = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s",
         "--timeout", "5s", "--latency", f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    pct = {m.group(1): float(m.group(2)) * _UNITS[m.group(3)] for m in _PCT.finditer(out)}
    count = _COUNT.search(out)
    if set(pct) != {"50", "99"} or count is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    errors = sum(int(n) for n in _NON2XX.findall(out))
    sock = _SOCKET.search(out)
    if sock:
        errors += sum(int(n) for n in sock.groups())
    return Load(pct["50"], pct["99"], int(count.group(1)), errors)


def estate_body(db: str, delay_file: str) -> str:
    """The config below ``[gateway]``: the notes route, its delayed port, the migration."""
    port_env = (f'LEGACY_DB = {json.dumps(db)}, NOTES_ROUNDING = "half-up", '
                f"BENCH_DELAY_FILE = {json.dumps(delay_file)}")
    return f"""
[[routes]]
prefix = "/api/notes"
backend = "wsgi"
service = "notes"
timeout_ms = 5000

[services.notes]
runtime = "py2"
app = "py2_services.notes:app"
replicas = 2
env = {{ LEGACY_DB = {json.dumps(db)} }}

[services.notes3]
runtime = "py3"
app = "bench.apps:slow_notes"
env = {{ {port_env} }}

[migrations.notes]
route = "/api/notes"
py3 = "notes3"
state = "py2"
shadow_timeout_ms = {SHADOW_TIMEOUT_MS}
shadow_concurrency = 4
"""


class ShadowBench:
    """The estate, the candidate's controls and the measurements, stopped by PID at the end."""

    def __init__(self) -> None:
        self.procs = ProcessGroup()
        self.dir = tempfile.mkdtemp(prefix="gw-bench-migration-")
        self.delay_file = os.path.join(self.dir, "delay_ms")
        self.estate: MigrationEstate | None = None

    def start(self) -> MigrationEstate:
        """Seed the database, run ``gateway up``, wait for every program and the token."""
        db = os.path.join(self.dir, "legacy.sqlite3")
        add_notes(db)
        set_delay(self.delay_file, 0.0)
        e = MigrationEstate(self.procs, self.dir, estate_body(db, self.delay_file))
        self.estate = e
        e.start(timeout=90)
        wait_until(lambda: os.path.exists(os.path.join(e.run_dir, "admin.token")),
                   timeout=20, what="the admin token")
        self.wait_candidate()
        return e

    def close(self) -> None:
        """Resume a stopped candidate, stop the estate's groups and our own, drop the dir."""
        try:
            if self.estate is not None:
                self.estate.close()
        finally:
            self.procs.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def e(self) -> MigrationEstate:
        """The running estate."""
        assert self.estate is not None, "start() first"
        return self.estate

    def shadow(self, on: bool) -> None:
        """Shadow on (a fresh evidence epoch) or off (state py2), through the admin API."""
        mode = self.e.report(NAME)["state"]["mode"]
        if not on and mode == "py2":
            return
        status, doc = self.e.api("POST", f"/_gateway/api/migrations/{NAME}/"
                                 f"{'shadow' if on else 'rollback'}",
                                 {"reason": "shadow isolation bench"})
        if status != 200:
            raise RuntimeError(f"cannot turn shadow {'on' if on else 'off'}: {status} {doc}")

    def candidate_pid(self) -> int:
        """The candidate replica's PID from the arbiter's status."""
        pid = self.e.program("notes3")["replicas"][0]["pid"]
        if not pid:
            raise RuntimeError("the candidate has no running replica")
        return int(pid)

    def candidate_ok(self) -> bool:
        """True when a request pinned to py3 is answered 200 by the candidate."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.e.port}{PATH}",
            headers={"X-Gateway-Runtime": "py3", "X-Gateway-Token": self.e.token})
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                resp.read()
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_candidate(self, timeout: float = 60.0) -> None:
        """Wait until the candidate answers again (after a restart or a SIGCONT)."""
        wait_until(self.candidate_ok, timeout=timeout, interval=0.1, what="the candidate")

    def evidence(self, served: int) -> dict[str, Any]:
        """The epoch's evidence once every request served (``served``) has its comparison."""
        def settled() -> dict[str, Any] | None:
            ev: dict[str, Any] = self.e.report(NAME)["evidence"]
            return ev if ev["samples"] + ev["uncompared"] >= served else None
        try:
            found: Any = wait_until(
                settled, timeout=SHADOW_TIMEOUT_MS / 1000.0 + 10.0, interval=0.1,
                what=f"{served} comparisons")
            return dict(found)
        except AssertionError:
            return dict(self.e.report(NAME)["evidence"], incomplete=True)

    def mode(self, name: str, seconds: float, base_p50: float) -> tuple[Load, dict[str, Any]]:
        """Shadow on with the candidate in condition ``name``; the load and the evidence."""
        pid = self.candidate_pid()
        stopped = False
        if name == "slow":
            set_delay(self.delay_file, (SLOWDOWN - 1.0) * base_p50)
        elif name == "hung":
            os.kill(pid, signal.SIGSTOP)
            stopped = True
        try:
            self.shadow(True)
            if name == "killed":
                os.kill(pid, signal.SIGKILL)
            load = wrk(self.e.port, seconds)
            evidence = self.evidence(load.requests)
        finally:
            if stopped:
                os.kill(pid, signal.SIGCONT)
            set_delay(self.delay_file, 0.0)
            self.shadow(False)
        self.wait_candidate()
        return load, evidence


def measure(smoke: bool) -> dict[str, Any]:
    """Run the modes; the result document (JSON-safe)."""
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt-get install wrk): nothing measured"}
    seconds, rounds = (1.0, 1) if smoke else (5.0, 2)
    modes = MODES[:1] if smoke else MODES
    bench = ShadowBench()
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    try:
        bench.start()
        bench.shadow(False)
        wrk(bench.e.port, 1.0)  # warm the pools, sockets and caches of every process
        for rnd in range(rounds):
            for name in modes:
                base = wrk(bench.e.port, seconds)
                load, evidence = bench.mode(name, seconds, base.p50)
                runs.append({"round": rnd, "mode": name, "off": asdict(base),
                             "on": asdict(load), "evidence": evidence,
                             "p99_delta_ms": load.p99 - base.p99,
                             "p99_ratio": load.p99 / base.p99 if base.p99 else float("nan")})
        report = bench.e.report(NAME)
    finally:
        bench.close()
    doc = summarise(runs, modes)
    doc.update({"seconds": seconds, "rounds": rounds, "threads": THREADS,
                "connections": CONNECTIONS, "smoke": smoke, "runs": runs,
                "primary_errors_recorded": report["runtimes"]["py2"].get("errors"),
                "elapsed_s": time.monotonic() - started, "cpus": os.cpu_count()})
    if smoke:
        check(doc)
    return doc


def summarise(runs: list[dict[str, Any]], modes: tuple[str, ...]) -> dict[str, Any]:
    """Per mode: medians of p50/p99/delta/ratio over rounds, summed errors and evidence."""
    out: dict[str, Any] = {}
    offs = [r["off"] for r in runs]
    out["off"] = {"p50": statistics.median(o["p50"] for o in offs),
                  "p99": statistics.median(o["p99"] for o in offs),
                  "errors": sum(o["errors"] for o in offs),
                  "requests": sum(o["requests"] for o in offs)}
    for name in modes:
        mine = [r for r in runs if r["mode"] == name]
        ev = [r["evidence"] for r in mine]
        out[name] = {
            "p50": statistics.median(r["on"]["p50"] for r in mine),
            "p99": statistics.median(r["on"]["p99"] for r in mine),
            "errors": sum(r["on"]["errors"] for r in mine),
            "requests": sum(r["on"]["requests"] for r in mine),
            "p99_delta_ms": statistics.median(r["p99_delta_ms"] for r in mine),
            "p99_ratio": statistics.median(r["p99_ratio"] for r in mine),
            "evidence": {k: sum(e[k] for e in ev)
                         for k in ("samples", "candidate_errors", "uncompared", "regressions")},
        }
        out[name]["goal_met"] = (out[name]["p99_delta_ms"] <= GOAL_DELTA_MS
                                 and out[name]["errors"] == 0)
    return {"modes": out}


def check(doc: dict[str, Any]) -> None:
    """The smoke run's proof that the machinery works: no errors, evidence recorded."""
    modes = doc["modes"]
    errors = {k: v["errors"] for k, v in modes.items() if v["errors"]}
    if errors:
        raise RuntimeError(f"the primary answered errors: {errors}")
    healthy = modes["healthy"]["evidence"]
    if healthy["samples"] < 1:
        raise RuntimeError(f"shadowing recorded no comparisons: {healthy}")


def tables(doc: dict[str, Any]) -> list[Table]:
    """The result document as a markdown table."""
    if "skipped" in doc:
        table = Table("migration: skipped", "ms", "none")
        table.notes.append(doc["skipped"])
        return [table]
    modes = doc["modes"]
    off = modes["off"]
    table = Table(f"migration: primary p99 with shadow off vs on (wrk -t{THREADS} "
                  f"-c{CONNECTIONS})", "p99 ms", LABELS["off"], higher_is_better=False)
    table.add(LABELS["off"], off["p99"], extra=f"p50 {off['p50']:.2f} ms; errors "
              f"{off['errors']} of {off['requests']}")
    for name, m in modes.items():
        if name == "off":
            continue
        ev = m["evidence"]
        table.add(LABELS[name], m["p99"],
                  target=f"delta <= {GOAL_DELTA_MS:.0f} ms, errors = 0: "
                         f"{'met' if m['goal_met'] else 'MISSED'}",
                  extra=f"p50 {m['p50']:.2f} ms; p99 {m['p99_delta_ms']:+.2f} ms, "
                        f"{m['p99_ratio']:.2f}x vs the off run before it; errors {m['errors']} "
                        f"of {m['requests']}; evidence samples {ev['samples']}, "
                        f"candidate_errors {ev['candidate_errors']}, uncompared "
                        f"{ev['uncompared']}")
    table.notes += [
        f"{doc['rounds']} round(s) of {doc['seconds']:.0f} s per mode, each right after its own "
        "shadow-off run; medians over rounds (ratio column: vs the median baseline)",
        f"candidate 10x slower = sleeps {SLOWDOWN - 1:.0f}x the baseline p50 before answering; "
        f"shadow copies capped at {SHADOW_TIMEOUT_MS} ms, 4 in flight per front worker",
        f"{doc['cpus']} CPUs shared by wrk, the front (2 workers), the broker and the services",
    ]
    return [table]


def run(smoke: bool) -> list[Table]:
    """Measure (briefly and checked with ``smoke``); the tables."""
    return tables(measure(smoke))


if __name__ == "__main__":
    result = measure("--smoke" in sys.argv)
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for t in tables(result):
            print(t.markdown())
