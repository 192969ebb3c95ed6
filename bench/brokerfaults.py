"""Fault figures for the broker: a restart under load and a memory attack, on both brokers.

- ``broker_restart_*``: calls in flight at py3 workers while the broker is killed
  with -9 and started again on the same endpoint. Counted: calls still waiting more
  than 1 s after the broker is back (target 0), how soon the non-idempotent calls
  fail after the kill, and how soon the idempotent ones complete after the restart.
- ``broker_memory_*``: eleven 8 MiB frames to a service no worker has registered,
  inside the start-up window, with a 36 MiB per-service byte cap; the broker's RSS
  idle, at the peak, and once the queued requests have expired (target: within 2x of
  idle).
- ``broker_outlier_*``: a service with two replicas, one of them hung (it takes
  requests and never answers); sequential calls with a short deadline. Counted: the
  share of calls that time out before the broker ejects the hung replica (SPEC 2.13)
  and after it (target 0).

::

    python -m bench brokerfaults      # or --smoke; figures are for a quiet machine
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import zmq

from bench.report import Table
from protocol import codec, mdp
from protocol.client import Client, Pending
from protocol.errors import ProtocolError, Timeout, Unavailable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE = os.path.join(REPO, "build", "gateway-broker")
IMPLEMENTATIONS = ("python", "native")
MIB = 1024 * 1024
# Each call's own work: short, so the figure is the recovery, not the workers' backlog.
WORK_MS = 50


def _broker(impl: str, endpoint: str, *extra: str) -> subprocess.Popen[str]:
    head = [NATIVE] if impl == "native" else [sys.executable, "-m", "gateway.broker"]
    proc = subprocess.Popen([*head, "--bind", endpoint, "--heartbeat-ms", "250", *extra],
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), text=True,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20.0)
    if not ready or not proc.stdout.readline().startswith("broker ready"):
        proc.kill()
        raise RuntimeError(f"the {impl} broker did not start")
    return proc


@contextmanager
def _processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Every process started in the block is stopped (by PID) at its end."""
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _stats(endpoint: str, timeout: float = 2.0) -> dict | None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send_multipart(mdp.client_request(mdp.MMI_STATS, []))
        if not sock.poll(int(timeout * 1000)):
            return None
        return dict(json.loads(sock.recv_multipart()[3]))
    finally:
        sock.close(linger=0)


def _wait(predicate: object, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not predicate():  # type: ignore[operator]
        if time.time() > deadline:
            raise RuntimeError(f"{what}: not reached within {seconds}s")
        time.sleep(0.01)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def broker_restart_recovery(impl: str, calls: int) -> dict[str, float]:
    """Kill -9 the broker with ``calls`` calls in flight (half idempotent), restart it."""
    # ipc: a TCP port left free while the broker is down may be taken meanwhile.
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as run, _processes() as procs:
        return _restart(impl, calls, "ipc://" + os.path.join(run, "broker.ipc"), procs)


def _restart(impl: str, calls: int, endpoint: str,
             procs: list[subprocess.Popen[str]]) -> dict[str, float]:
    """One restart round on ``endpoint``; ``procs`` are stopped by the caller."""
    procs.append(_broker(impl, endpoint))
    for _ in range(2):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "protocol.worker", "--broker", endpoint, "--service",
             "work", "--credit", str(calls), "tests.integration.rpc.services:TABLE"],
            cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO)))
    _wait(lambda: (_stats(endpoint) or {}).get("services", {}).get("work", {})
          .get("workers") == 2, 20, "two workers")
    client = Client(endpoint, timeout=30.0, probe_interval=60.0)
    try:
        pending: list[tuple[Pending, bool]] = [
            (client.submit("work", "work", {"ms": WORK_MS}, idem=i % 2 == 0), i % 2 == 0)
            for i in range(calls)]
        _wait(lambda: (_stats(endpoint) or {}).get("services", {}).get("work", {})
              .get("inflight") == calls, 20, "every call at a worker")
        killed = time.time()
        procs[0].kill()
        procs[0].wait()
        failed_after = []
        for call, idem in pending:
            if not idem:
                try:
                    call.result()
                except Unavailable:
                    failed_after.append(time.time() - killed)
        procs.append(_broker(impl, endpoint))
        back = time.time()
        waits, errors = [], 0
        for call, idem in pending:
            if idem:
                try:
                    call.result()
                except ProtocolError:
                    errors += 1
                waits.append(time.time() - back)
    finally:
        client.close()
    return {"waiting_over_1s": float(sum(w > 1.0 for w in waits)),
            "idem_errors": float(errors),
            "fail_fast_max_ms": 1000 * max(failed_after, default=float("nan")),
            "failed": float(len(failed_after)),
            "complete_after_back_max_ms": 1000 * max(waits, default=float("nan"))}


def broker_memory_attack(impl: str, frames: int = 11, size: int = 8 * MIB) -> dict[str, float]:
    """RSS of a broker idle, under ``frames`` large frames to an unknown service, after."""
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as run, _processes() as procs:
        endpoint = "ipc://" + os.path.join(run, "broker.ipc")
        proc = _broker(impl, endpoint, "--startup-grace-ms", "600000",
                       "--max-queued-bytes", str(36 * MIB))
        procs.append(proc)
        _stats(endpoint)
        idle = _rss_kib(proc.pid)
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(endpoint)
        try:
            blob = b"\x00" * size
            deadline = mdp.now_ms() + 3000
            for i in range(frames):
                env = codec.Envelope("call", id=f"big-{i}", method="m", deadline=deadline)
                sock.send_multipart([*mdp.client_request(b"ghost", codec.encode(env)), blob])
            codes: list[str] = []
            peak = idle
            while len(codes) < frames:
                if not sock.poll(10_000):
                    raise RuntimeError("the broker stopped answering")
                codes.append(json.loads(sock.recv_multipart()[3])["error"]["code"])
                peak = max(peak, _rss_kib(proc.pid))
        finally:
            sock.close(linger=0)
        # The follow-up trim runs a second after the drain.
        _wait(lambda: (_stats(endpoint) or {}).get("counters", {}).get("memory_trims", 0) >= 2,
              10, "both trims")
        after = _rss_kib(proc.pid)
    return {"idle_kib": float(idle), "peak_kib": float(peak), "after_kib": float(after),
            "too_busy": float(codes.count("too_busy"))}


def broker_outlier_share(impl: str, calls: int, consecutive: int = 5) -> dict[str, float]:
    """Timeouts per call with one hung replica of two, before and after its ejection."""
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as run, _processes() as procs:
        endpoint = "ipc://" + os.path.join(run, "broker.ipc")
        procs.append(_broker(impl, endpoint, "--outlier-consecutive", str(consecutive)))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "protocol.worker", "--broker", endpoint, "--service",
             "work", "tests.integration.rpc.services:TABLE"],
            cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO)))
        # The hung replica: room for every call, a long heartbeat, and never an answer.
        hung = zmq.Context.instance().socket(zmq.DEALER)
        hung.linger = 0
        hung.connect(endpoint)
        hung.send_multipart(mdp.worker_ready(b"work", {"credit": 10 * calls,
                                                       "heartbeat_ms": 600_000}))
        client = Client(endpoint, timeout=0.2, probe_interval=60.0)
        try:
            _wait(lambda: (_stats(endpoint) or {}).get("services", {}).get("work", {})
                  .get("workers") == 2, 20, "two replicas")
            phases = {"before": [0, 0], "after": [0, 0]}
            for _ in range(calls * 10):
                ejected = (_stats(endpoint) or {}).get("ejected", 0)
                phase = phases["after" if ejected else "before"]
                if ejected and phase[0] >= calls:
                    break
                phase[0] += 1
                try:
                    client.call("work", "work", {"ms": 0})
                except Timeout:
                    phase[1] += 1
        finally:
            client.close()
            hung.close(linger=0)
    (before, before_errors), (after, after_errors) = phases["before"], phases["after"]
    return {"before": float(before), "before_share": before_errors / max(before, 1),
            "after": float(after), "after_share": after_errors / max(after, 1)}


def run(smoke: bool) -> list[Table]:
    """Both figures on both brokers (``smoke``: fewer calls in flight)."""
    restart = Table("broker restart: calls in flight at kill -9, broker back at once",
                    unit="calls", baseline="python: waiting > 1 s after back",
                    higher_is_better=False)
    memory = Table("broker memory: 11 x 8 MiB frames to an unknown service",
                   unit="KiB RSS", baseline="python: idle", higher_is_better=False)
    outlier = Table("broker outlier ejection: one hung replica of two, 200 ms calls",
                    unit="% timed out", baseline="python: before ejection",
                    higher_is_better=False)
    calls = 8 if smoke else 40
    for impl in IMPLEMENTATIONS:
        r = broker_restart_recovery(impl, calls)
        restart.add(f"{impl}: waiting > 1 s after back", r["waiting_over_1s"], "0",
                    f"{calls // 2} idempotent, {r['idem_errors']:.0f} failed; last done "
                    f"{r['complete_after_back_max_ms']:.0f} ms after back; "
                    f"{r['failed']:.0f} non-idempotent failed within "
                    f"{r['fail_fast_max_ms']:.0f} ms of the kill")
        m = broker_memory_attack(impl)
        memory.add(f"{impl}: idle", m["idle_kib"])
        memory.add(f"{impl}: peak", m["peak_kib"], "", f"{m['too_busy']:.0f} too_busy")
        ok = "met" if m["after_kib"] <= 2 * m["idle_kib"] else "missed"
        memory.add(f"{impl}: after expiry", m["after_kib"], "<= 2x idle", ok)
        o = broker_outlier_share(impl, calls)
        outlier.add(f"{impl}: before ejection", 100 * o["before_share"], "",
                    f"{o['before']:.0f} calls")
        outlier.add(f"{impl}: after ejection", 100 * o["after_share"], "0",
                    f"{o['after']:.0f} calls")
    restart.notes.append(f"two py3 workers, each call {WORK_MS} ms of work; the workers drop "
                         "what the dead broker sent and register again at once")
    restart.notes.append(f"load average at the end: {os.getloadavg()[0]:.2f}")
    memory.notes.append(f"load average at the end: {os.getloadavg()[0]:.2f}")
    outlier.notes.append("default policy: ejected after 5 timeouts in a row, for 30 s")
    return [restart, memory, outlier]


if __name__ == "__main__":
    for table in run("--smoke" in sys.argv):
        print(table.markdown())
