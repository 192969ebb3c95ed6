"""Streamed responses: time to first byte, many tiny chunks, and recovery from abandoned streams.

One streaming app (:mod:`tests.integration.stream.apps`) sits behind every
path: gunicorn direct (the baseline), the gateway's http backend in front of
that gunicorn, and the gateway's wsgi backend to the app hosted by py3 and
py2 workers. Measured over raw HTTP/1.0 sockets (the body is read in bulk,
so the client's own chunk parsing is not what is timed):

- time to first byte of ``/ticks``: the app yields its first chunk at once
  and the next one ``GAP`` seconds later, so a bridge that holds a chunk back
  until the next shows ``GAP`` here;
- 100 KiB yielded as 1-byte chunks (``/bytes``);
- recovery: as many clients as the mount has replicas start a 30 s stream,
  read its head and hang up; then the time until a plain request to that
  mount answers. Without cancels the replicas stay busy for the whole 30 s
  (and the plain request runs into its 5 s deadline: 504).

``--smoke`` runs one round of each; otherwise medians of 5 rounds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.report import Table
from tests.support.procs import (
    ProcessGroup,
    free_port,
    port_open,
    python2,
    python3,
    wait_until,
)

APP = "tests.integration.stream.apps:app"
GAP = 0.3
TINY = 100 * 1024
REPLICAS = 2
DIRECT = "gunicorn direct"
HTTP = "gateway http -> gunicorn"
PY3 = "gateway wsgi -> py3 worker"
PY2 = "gateway wsgi -> py2 worker"


def get(port: int, target: str, timeout: float = 60.0) -> tuple[int, float, int, float]:
    """(status, seconds to the first body byte, body length, seconds in all) of one GET."""
    started = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
        data = b""
        first = 0.0
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
            if not first and b"\r\n\r\n" in data and data.index(b"\r\n\r\n") + 4 < len(data):
                first = time.perf_counter() - started
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head else 0
        return status, first, len(body), time.perf_counter() - started
    finally:
        sock.close()


def abandon(port: int, target: str, timeout: float = 10.0) -> None:
    """Start a GET, read its head and first body byte, then hang up with a reset."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data or data.index(b"\r\n\r\n") + 4 >= len(data):
            piece = sock.recv(4096)
            if not piece:
                raise RuntimeError(f"the stream ended before its first byte: {data[:200]!r}")
            data += piece
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


class Estate:
    """gunicorn, the broker, py3/py2 workers and one gateway; stopped by PID at the end."""

    def __init__(self) -> None:
        self.procs = ProcessGroup()
        self.dir = tempfile.mkdtemp(prefix="gw-bench-stream-")
        self.paths: dict[str, tuple[int, str]] = {}  # name -> (port, mount prefix)
        self.notes: list[str] = []

    def close(self) -> None:
        """Stop everything and remove the temp dir."""
        self.procs.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _wait(self, port: int, proc: Any, what: str) -> None:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 30, what=what)
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")

    def start(self) -> None:
        """Start every path."""
        port = free_port()
        log = open(os.path.join(self.dir, "gunicorn.log"), "wb")  # noqa: SIM115
        proc = self.procs.spawn(
            [python3(), "-m", "gunicorn", "-k", "gthread", "-w", "2", "--threads", "8",
             "-b", f"127.0.0.1:{port}", "--log-level", "warning", APP], stdout=log, stderr=log)
        self._wait(port, proc, "gunicorn")
        self.paths[DIRECT] = (port, "")
        broker_port = free_port()
        endpoint = f"tcp://127.0.0.1:{broker_port}"
        proc = self.procs.spawn([python3(), "-m", "gateway.broker", "--bind", endpoint],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait(broker_port, proc, "broker")
        runtimes = {"py3": python3()}
        try:
            runtimes["py2"] = python2()
        except RuntimeError:
            self.notes.append("no Python 2.7 environment: the py2 rows are skipped")
        for name, python in runtimes.items():
            for _ in range(REPLICAS):
                self.procs.spawn([python, "-m", "protocol.wsgi", "--broker", endpoint,
                                  "--service", f"stream-{name}", APP],
                                 stderr=subprocess.DEVNULL)
        routes: list[dict[str, Any]] = [
            {"prefix": "/http", "backend": "http", "upstream": f"http://127.0.0.1:{port}",
             "strip_prefix": True}]
        routes += [{"prefix": f"/{n}", "backend": "wsgi", "service": f"stream-{n}",
                    "timeout": 5.0} for n in runtimes]
        front = free_port()
        path = os.path.join(self.dir, "gateway.json")
        with open(path, "w") as fh:
            json.dump({"http": {"routes": routes, "broker": endpoint},
                       "bind": f"127.0.0.1:{front}", "workers": 2, "threads": 8}, fh)
        log = open(os.path.join(self.dir, "gateway.log"), "wb")  # noqa: SIM115
        proc = self.procs.spawn([python3(), "-m", "tests.integration.http.launch", path],
                                stdout=log, stderr=log)
        self._wait(front, proc, "gateway")
        self.paths[HTTP] = (front, "/http")
        self.paths[PY3] = (front, "/py3")
        if "py2" in runtimes:
            self.paths[PY2] = (front, "/py2")
        for name, (port, prefix) in self.paths.items():
            wait_until(lambda p=port, m=prefix: get(p, f"{m}/hello", 5.0)[0] == 200, 30,
                       what=f"{name} answering")


def recovery(port: int, prefix: str) -> tuple[int, float]:
    """(status, seconds) of a plain request sent right after hanging up on every replica."""
    for i in range(REPLICAS):
        abandon(port, f"{prefix}/drip?n=150&gap=0.2&tag=bench-{i}")
    started = time.perf_counter()
    status = get(port, f"{prefix}/hello", 60.0)[0]
    return status, time.perf_counter() - started


def run(smoke: bool) -> list[Table]:
    """Measure every path; return the three tables."""
    rounds = 1 if smoke else 5
    estate = Estate()
    ttfb: dict[str, list[float]] = {}
    tiny: dict[str, list[float]] = {}
    back: dict[str, list[float]] = {}
    statuses: dict[str, set[int]] = {}
    failures: list[str] = []
    try:
        estate.start()
        for _ in range(rounds):
            for name, (port, prefix) in estate.paths.items():
                status, first, _, _ = get(port, f"{prefix}/ticks?n=2&gap={GAP}")
                ttfb.setdefault(name, []).append(first * 1000)
                status, _, length, total = get(port, f"{prefix}/bytes?n={TINY}")
                if (status, length) != (200, TINY):
                    failures.append(f"{name}: /bytes gave {status} with {length} bytes")
                tiny.setdefault(name, []).append(total * 1000)
            for name in (PY3, PY2):
                if name in estate.paths:
                    status, elapsed = recovery(*estate.paths[name])
                    back.setdefault(name, []).append(elapsed * 1000)
                    statuses.setdefault(name, set()).add(status)
        with open("/proc/loadavg") as fh:
            load = fh.read().split()[0]
    finally:
        estate.close()
    return _tables(ttfb, tiny, back, statuses,
                   estate.notes + [f"FAILED {f}" for f in failures], rounds, load)


def _tables(ttfb: dict[str, list[float]], tiny: dict[str, list[float]],
            back: dict[str, list[float]], statuses: dict[str, set[int]], notes: list[str],
            rounds: int,
            load: str) -> list[Table]:
    common = [*notes, f"{rounds} round(s); medians",
              f"load average at the end: {load} on {os.cpu_count()} CPUs"]
    first = Table("stream: time to first byte (next chunk comes "
                  f"{GAP * 1000:.0f} ms later)", "ms", DIRECT, higher_is_better=False)
    for name, values in ttfb.items():
        first.add(name, statistics.median(values),
                  target=f"< {GAP * 1000:.0f} ms" if name != DIRECT else "")
    first.notes += common
    bulk = Table("stream: 100 KiB as 1-byte chunks", "ms", DIRECT, higher_is_better=False)
    for name, values in tiny.items():
        bulk.add(name, statistics.median(values))
    bulk.notes += [*common, "the wsgi workers join chunks that are ready together "
                            "(up to 64 KiB a part); gunicorn writes each one"]
    rec = Table(f"stream: recovery after {REPLICAS} abandoned 30 s streams "
                f"({REPLICAS} replicas)", "ms", PY3, higher_is_better=False)
    for name, values in back.items():
        answered = ", ".join(str(s) for s in sorted(statuses[name]))
        rec.add(name, statistics.median(values), target="< 1000 ms", extra=f"answered {answered}")
    rec.notes += [*common, "time from the last hang-up until a plain request to the same "
                           "mount answers 200; without cancels: 30 s, or 504 at the 5 s "
                           "deadline"]
    return [first, bulk, rec] if back else [first, bulk]


if __name__ == "__main__":
    for t in run("--smoke" in sys.argv):
        print(t.markdown())
