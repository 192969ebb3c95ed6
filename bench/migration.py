"""Shadow isolation: the primary's latency and errors with shadowing off vs on, as ratios.

One ``gateway up`` estate (private temp dir, free loopback port) serves
``/api/notes`` from the Python 2 notes app (two replicas, the primary),
migrating to :func:`bench.apps.slow_notes` (the Python 3 port behind a delay
set per request). wrk (``-t1 -c4 --latency``) loads the primary in each mode
right after its own shadow-off baseline (state ``py2``): shadow on with the
candidate healthy, 10x slower than the baseline p50, hung (SIGSTOP, SIGCONT
after) or killed (SIGKILL, measured at once while the arbiter restarts it);
plus a diagnostic, healthy without the noise copy (``/api/quiet``, a second
migration with ``noise = false``). Every mode runs under a ``saturated`` load
(as fast as wrk goes: shadow work shows as queueing) and a ``paced`` one (a
think time offering a quarter of the saturated rate: headroom). CPU time of
the front, broker, py2 and py3 process groups is read from /proc per run.

Goal (issue 7): the primary's p99 moves by at most 5 ms and its errors stay 0.
Per mode: p50, p99, errors (non-2xx + socket), the p99 delta and ratio vs the
baseline just before it, and the epoch's evidence from the admin API::

    python -m bench migration                 # the tables
    python -m bench.migration --json          # the result document
    python -m bench --smoke migration         # healthy vs off, 1 s each, checked (CI)

``python -m bench migration`` also runs :mod:`bench.brokershadow`, the broker-side
shadowing of service migrations (``python -m bench.brokershadow`` alone).
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
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.apps import set_delay
from bench.report import Table
from tests.integration.arbiter.conftest import group_members
from tests.integration.migration.conftest import MigrationEstate, add_notes
from tests.support.procs import ProcessGroup, wait_until

THREADS, CONNECTIONS = 1, 4
SHADOW_TIMEOUT_MS = 1000
GOAL_DELTA_MS = 5.0
SLOWDOWN = 10.0
PACED_SHARE = 0.25
# mode -> (migration, path, the candidate's condition)
MODES = {"healthy": ("notes", "/api/notes?limit=2", "healthy"),
         "slow": ("notes", "/api/notes?limit=2", "slow"),
         "hung": ("notes", "/api/notes?limit=2", "hung"),
         "killed": ("notes", "/api/notes?limit=2", "killed"),
         "no-noise": ("quiet", "/api/quiet?limit=2", "healthy")}
LABELS = {"off": "shadow off (baseline)", "healthy": "shadow on, healthy candidate",
          "slow": "shadow on, candidate 10x slower", "hung": "shadow on, candidate hung",
          "killed": "shadow on, candidate killed",
          "no-noise": "diagnostic: healthy, no noise copy"}
PROGRAMS = {"broker": "broker", "http": "front", "notes": "py2", "notes3": "py3"}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_PCT = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_COUNT = re.compile(r"^\s*(\d+) requests in ", re.M)
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


@dataclass
class Load:
    """One wrk run: percentiles in ms, requests, errors, rate and CPU ms per request."""

    p50: float
    p99: float
    requests: int
    errors: int
    rps: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)


def wrk(port: int, path: str, seconds: float, script: str | None = None) -> Load:
    """Load ``path`` on 127.0.0.1:``port`` for ``seconds`` with wrk (bounded in time)."""
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s",
            "--timeout", "5s", "--latency"]
    if script:
        argv += ["-s", script]
    out = subprocess.run([*argv, f"http://127.0.0.1:{port}{path}"], capture_output=True,
                         text=True, timeout=seconds + 30, check=True).stdout
    pct = {m.group(1): float(m.group(2)) * _UNITS[m.group(3)] for m in _PCT.finditer(out)}
    count = _COUNT.search(out)
    if set(pct) != {"50", "99"} or count is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    errors = sum(int(n) for n in _NON2XX.findall(out))
    sock = _SOCKET.search(out)
    if sock:
        errors += sum(int(n) for n in sock.groups())
    requests = int(count.group(1))
    return Load(pct["50"], pct["99"], requests, errors, requests / max(1, round(seconds)))


def cpu_ticks(groups: dict[str, list[int]]) -> dict[str, int]:
    """utime + stime (clock ticks) of the live members of each component's process groups."""
    out: dict[str, int] = {}
    for component, pgids in groups.items():
        total = 0
        for pgid in pgids:
            for pid in group_members(pgid):
                try:
                    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                        fields = fh.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                total += int(fields[11]) + int(fields[12])
        out[component] = total
    return out


def estate_body(db: str, delay_file: str) -> str:
    """The config below ``[gateway]``: two routes to the notes app, its delayed port."""
    port_env = (f'LEGACY_DB = {json.dumps(db)}, NOTES_ROUNDING = "half-up", '
                f"BENCH_DELAY_FILE = {json.dumps(delay_file)}")
    migrations = ""
    for name, prefix, noise in (("notes", "/api/notes", "true"), ("quiet", "/api/quiet",
                                                                  "false")):
        migrations += (f'\n[[routes]]\nprefix = "{prefix}"\nbackend = "wsgi"\nservice = '
                       f'"notes"\ntimeout_ms = 5000\n\n[migrations.{name}]\nroute = "{prefix}"\n'
                       f'py3 = "notes3"\nstate = "py2"\nnoise = {noise}\n'
                       f"shadow_timeout_ms = {SHADOW_TIMEOUT_MS}\nshadow_concurrency = 4\n")
    return f"""{migrations}
[services.notes]
runtime = "py2"
app = "py2_services.notes:app"
replicas = 2
env = {{ LEGACY_DB = {json.dumps(db)} }}

[services.notes3]
runtime = "py3"
app = "bench.apps:slow_notes"
env = {{ {port_env} }}
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
        """Stop the estate (graceful, then SIGKILL of its groups), our own groups, the dir."""
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

    def script(self, think_ms: int) -> str:
        """A wrk script that waits ``think_ms`` before each request of a connection."""
        path = os.path.join(self.dir, f"think-{think_ms}.lua")
        with open(path, "w", encoding="ascii") as fh:
            fh.write(f"function delay()\n  return {think_ms}\nend\n")
        return path

    def load(self, path: str, seconds: float, script: str | None) -> Load:
        """One wrk run with the CPU time each component spent during it."""
        groups: dict[str, list[int]] = {}
        for prog in self.e.status()["programs"]:
            pgids = [r["pgid"] for r in prog["replicas"] if r["pgid"]]
            groups.setdefault(PROGRAMS.get(prog["name"], prog["name"]), []).extend(pgids)
        before = cpu_ticks(groups)
        load = wrk(self.e.port, path, seconds, script)
        after = cpu_ticks(groups)
        load.cpu_ms = {k: max(0, after[k] - before[k]) * _TICK_MS / max(1, load.requests)
                       for k in groups}
        return load

    def shadow(self, name: str, on: bool) -> None:
        """Shadow on (a fresh evidence epoch) or off (state py2), through the admin API."""
        if not on and self.e.report(name)["state"]["mode"] == "py2":
            return
        status, doc = self.e.api("POST", f"/_gateway/api/migrations/{name}/"
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
            f"http://127.0.0.1:{self.e.port}/api/notes?limit=2",
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

    def evidence(self, name: str, served: int) -> dict[str, Any]:
        """The epoch's evidence once every request served (``served``) has its comparison."""
        def settled() -> dict[str, Any] | None:
            ev: dict[str, Any] = self.e.report(name)["evidence"]
            return ev if ev["samples"] + ev["uncompared"] >= served else None
        try:
            found: Any = wait_until(settled, timeout=SHADOW_TIMEOUT_MS / 1000.0 + 10.0,
                                    interval=0.1, what=f"{served} comparisons")
            return dict(found)
        except AssertionError:
            return dict(self.e.report(name)["evidence"], incomplete=True)

    def pair(self, mode: str, seconds: float, script: str | None) -> dict[str, Any]:
        """A shadow-off baseline, then shadow on with the candidate as ``mode`` says."""
        name, path, condition = MODES[mode]
        base = self.load(path, seconds, script)
        pid = self.candidate_pid()
        stopped = False
        if condition == "slow":
            set_delay(self.delay_file, (SLOWDOWN - 1.0) * base.p50)
        elif condition == "hung":
            os.kill(pid, signal.SIGSTOP)
            stopped = True
        try:
            self.shadow(name, True)
            if condition == "killed":
                os.kill(pid, signal.SIGKILL)
            load = self.load(path, seconds, script)
            evidence = self.evidence(name, load.requests)
        finally:
            if stopped:
                os.kill(pid, signal.SIGCONT)
            set_delay(self.delay_file, 0.0)
            self.shadow(name, False)
        self.wait_candidate()
        with open("/proc/loadavg", encoding="ascii") as fh:
            loadavg = float(fh.read().split()[0])
        return {"mode": mode, "off": asdict(base), "on": asdict(load), "evidence": evidence,
                "p99_delta_ms": load.p99 - base.p99,
                "p99_ratio": load.p99 / base.p99 if base.p99 else float("nan"),
                "loadavg": loadavg}


def measure(smoke: bool) -> dict[str, Any]:
    """Run every mode under every load; the result document (JSON-safe)."""
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt-get install wrk): nothing measured"}
    seconds, rounds = (1.0, 1) if smoke else (5.0, 2)
    modes = ["healthy"] if smoke else list(MODES)
    bench = ShadowBench()
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    try:
        bench.start()
        warm = bench.load(MODES["healthy"][1], 2.0, None)  # warms pools; sets the pace
        think = max(1, round(CONNECTIONS / (PACED_SHARE * warm.rps) * 1000.0 - warm.p50))
        loads = {"saturated": None} if smoke else {"saturated": None,
                                                   "paced": bench.script(think)}
        for rnd in range(rounds):
            for style, script in loads.items():
                for mode in modes:
                    runs.append(dict(bench.pair(mode, seconds, script), round=rnd, load=style))
        errors = {n: bench.e.report(n)["runtimes"]["py2"].get("errors") for n in ("notes",
                                                                                  "quiet")}
    finally:
        bench.close()
    doc = {"loads": {style: summarise([r for r in runs if r["load"] == style], modes)
                     for style in loads},
           "seconds": seconds, "rounds": rounds, "threads": THREADS, "connections": CONNECTIONS,
           "think_ms": think, "saturated_rps": warm.rps, "smoke": smoke, "runs": runs,
           "primary_errors_recorded": errors, "elapsed_s": time.monotonic() - started,
           "cpus": os.cpu_count()}
    if smoke:
        check(doc)
    return doc


def _median_cpu(loads: list[dict[str, Any]]) -> dict[str, float]:
    keys = sorted({k for ld in loads for k in ld["cpu_ms"]})
    return {k: statistics.median(ld["cpu_ms"].get(k, 0.0) for ld in loads) for k in keys}


def summarise(runs: list[dict[str, Any]], modes: list[str]) -> dict[str, Any]:
    """Per mode: medians of p50/p99/delta/ratio/CPU over rounds, summed errors and evidence."""
    offs = [r["off"] for r in runs]
    out: dict[str, Any] = {"off": {
        "p50": statistics.median(o["p50"] for o in offs),
        "p99": statistics.median(o["p99"] for o in offs),
        "errors": sum(o["errors"] for o in offs), "requests": sum(o["requests"] for o in offs),
        "rps": statistics.median(o["rps"] for o in offs), "cpu_ms": _median_cpu(offs)}}
    for name in modes:
        mine = [r for r in runs if r["mode"] == name]
        ons = [r["on"] for r in mine]
        m = out[name] = {
            "p50": statistics.median(o["p50"] for o in ons),
            "p99": statistics.median(o["p99"] for o in ons),
            "errors": sum(o["errors"] for o in ons), "requests": sum(o["requests"] for o in ons),
            "rps": statistics.median(o["rps"] for o in ons), "cpu_ms": _median_cpu(ons),
            "off_cpu_ms": _median_cpu([r["off"] for r in mine]),
            "p99_delta_ms": statistics.median(r["p99_delta_ms"] for r in mine),
            "p99_deltas_ms": [round(r["p99_delta_ms"], 2) for r in mine],
            "p99_ratio": statistics.median(r["p99_ratio"] for r in mine),
            "evidence": {k: sum(r["evidence"][k] for r in mine)
                         for k in ("samples", "candidate_errors", "uncompared", "regressions")},
        }
        m["goal_met"] = m["p99_delta_ms"] <= GOAL_DELTA_MS and m["errors"] == 0
    return out


def check(doc: dict[str, Any]) -> None:
    """The smoke run's proof that the machinery works: no errors, evidence recorded."""
    for style, modes in doc["loads"].items():
        errors = {k: v["errors"] for k, v in modes.items() if v["errors"]}
        if errors:
            raise RuntimeError(f"the primary answered errors under {style} load: {errors}")
        healthy = modes["healthy"]["evidence"]
        if healthy["samples"] < 1:
            raise RuntimeError(f"shadowing recorded no comparisons: {healthy}")


def _cpu(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items()))


def tables(doc: dict[str, Any]) -> list[Table]:
    """The result document as markdown tables: one per load, plus CPU per request."""
    if "skipped" in doc:
        table = Table("migration: skipped", "ms", "none")
        table.notes.append(doc["skipped"])
        return [table]
    out = []
    for style in ("saturated", "paced"):
        if style not in doc["loads"]:
            continue
        modes = doc["loads"][style]
        off = modes["off"]
        how = ("as fast as it goes" if style == "saturated" else
               f"think {doc['think_ms']} ms, ~{PACED_SHARE:.0%} of {doc['saturated_rps']:.0f} "
               "req/s")
        table = Table(f"migration: primary p99, shadow off vs on, {style} (wrk -t{THREADS} "
                      f"-c{CONNECTIONS}, {how})", "p99 ms", LABELS["off"],
                      higher_is_better=False)
        table.add(LABELS["off"], off["p99"], extra=f"p50 {off['p50']:.2f} ms; {off['rps']:.0f} "
                  f"req/s; errors {off['errors']} of {off['requests']}")
        cpu = Table(f"migration: CPU ms per primary request, {style}", "CPU ms/req",
                    LABELS["off"], higher_is_better=False)
        cpu.add(LABELS["off"], sum(off["cpu_ms"].values()), extra=_cpu(off["cpu_ms"]))
        for name in (n for n in MODES if n in modes):
            m, ev = modes[name], modes[name]["evidence"]
            table.add(LABELS[name], m["p99"],
                      target=f"delta <= {GOAL_DELTA_MS:.0f} ms, errors = 0: "
                             f"{'met' if m['goal_met'] else 'MISSED'}",
                      extra=f"p50 {m['p50']:.2f} ms; p99 {m['p99_delta_ms']:+.2f} ms "
                            f"(rounds {m['p99_deltas_ms']}), {m['p99_ratio']:.2f}x vs the off "
                            f"run before it; {m['rps']:.0f} req/s; errors {m['errors']} of "
                            f"{m['requests']}; evidence samples {ev['samples']}, "
                            f"candidate_errors {ev['candidate_errors']}, uncompared "
                            f"{ev['uncompared']}")
            cpu.add(LABELS[name], sum(m["cpu_ms"].values()),
                    extra=f"{_cpu(m['cpu_ms'])} (off before it: {_cpu(m['off_cpu_ms'])})")
        table.notes += [
            f"{doc['rounds']} round(s) of {doc['seconds']:.0f} s per mode, each right after its "
            "own shadow-off run; medians over rounds (ratio column: vs the median baseline)",
            f"candidate 10x slower = sleeps {SLOWDOWN - 1:.0f}x the baseline p50 before "
            f"answering; copies capped at {SHADOW_TIMEOUT_MS} ms, 4 in flight per front worker",
            f"{doc['cpus']} CPUs shared by wrk, the front (2 workers), the broker and the "
            f"services; load average {min(r['loadavg'] for r in doc['runs']):.1f}.."
            f"{max(r['loadavg'] for r in doc['runs']):.1f} during the runs"]
        cpu.notes.append("utime+stime of each component's process groups during the run, "
                         "divided by the primary requests wrk completed")
        out += [table, cpu]
    return out


def run(smoke: bool) -> list[Table]:
    """Measure (briefly and checked with ``smoke``); the tables.

    Then the same question for calls between services, shadowed inside the
    broker (:mod:`bench.brokershadow`): its cost per call with shadowing off
    and on, and the callers' p99 with a hung port.
    """
    from bench import brokershadow
    return tables(measure(smoke)) + brokershadow.run(smoke)


if __name__ == "__main__":
    result = measure("--smoke" in sys.argv)
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for t in tables(result):
            print(t.markdown())
