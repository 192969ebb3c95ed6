"""CPU per request by process on the gateway's ``wsgi`` paths, from a fixed count of requests.

Throughput on a shared machine measures the neighbours as much as the
gateway; the CPU time each process spends per request does not. This bench
starts the compiled broker, one py3 and one py2 ``protocol.wsgi`` worker
hosting the hello app, and a gateway front per runtime, sends a fixed number
of keep-alive requests over a few connections, and divides each process's
user + system CPU (``bench.http.cpu_seconds``) by the requests::

    python -m bench.cpu [--smoke] [--requests 6000] [--rounds 3] [--pids] [--link zmtp]
    python -m bench.cpu --rounds 1 --profile /tmp/prof     # then where each front's CPU goes
    BENCH_BROKER_LINK=libzmq python -m bench cpu

``--link`` (or ``BENCH_BROKER_LINK``) picks the fronts' broker link
(``http.broker_link``: ``zmtp``, ``libzmq`` or ``auto``, the default), so the
front's CPU can be compared across the two in separate runs. ``--pids`` prints
each process's PID before the load starts, for a profiler to attach to
(``py-spy record --pid``); ``--profile DIR`` does that itself after the
table (:mod:`bench.cpuprofile`): one more load per path under py-spy, its
folded stacks in ``DIR``, and the functions with the largest share of each
front's samples. Every load is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

from bench import cpuprofile
from bench.http import NATIVE_BROKER, WSGI2, WSGI3, Estate, cpu_seconds
from bench.report import Table
from tests.support.procs import python2, python3

CONNECTIONS = 8
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench-cpu\r\n\r\n"
LIMIT_S = 120.0   # no round may run longer than this, whatever the machine does


async def _connection(port: int, count: int, deadline: float) -> int:
    """``count`` sequential keep-alive GETs on one connection; how many got a 200."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), timeout=5.0)
    ok = 0
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            writer.write(REQUEST)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await asyncio.wait_for(reader.readexactly(length), timeout=5.0)
            ok += head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    return ok


def load(port: int, requests: int, connections: int = CONNECTIONS) -> int:
    """Send ``requests`` GETs to ``port`` over ``connections`` connections; the 200s."""
    deadline = time.monotonic() + LIMIT_S

    async def run() -> int:
        each = requests // connections
        done = await asyncio.gather(*(_connection(port, each, deadline)
                                      for _ in range(connections)))
        return sum(done)
    return asyncio.run(run())


def start(estate: Estate, link: str = "auto") -> dict[str, dict[str, list[int]]]:
    """Broker, one worker per runtime, a front per runtime; path -> part -> PIDs."""
    native = os.access(NATIVE_BROKER, os.X_OK)
    if not native:
        estate.notes.append("the compiled broker is not built: the Python broker is measured")
    endpoint = estate.broker(native)
    broker_pid = estate.pids[-int(endpoint.rsplit(":", 1)[1])]
    paths: dict[str, dict[str, list[int]]] = {}
    runtimes = [(WSGI3, "hello3", python3())]
    try:
        runtimes.append((WSGI2, "hello2", python2()))
    except RuntimeError:
        estate.notes.append("no Python 2.7 environment: the py2 row is skipped")
    for name, service, python in runtimes:
        estate.wsgi_workers(endpoint, service, python, 1)
        port = estate.gateway({"broker": endpoint, "broker_link": link, "routes": [
            {"prefix": "/", "backend": "wsgi", "service": service}]})
        estate.add(name, port)
        paths[name] = {"front": [estate.pids[port]], "broker": [broker_pid],
                       "worker": estate.workers[service]}
    return paths


def measure(estate: Estate, paths: dict[str, dict[str, list[int]]], requests: int,
            rounds: int) -> dict[str, dict[str, float]]:
    """Median CPU µs per request by part, over ``rounds`` interleaved rounds."""
    samples: dict[str, dict[str, list[float]]] = {}
    for name in paths:
        load(estate.paths[name], max(CONNECTIONS, requests // 10))  # warm up
    for _ in range(rounds):
        for name, parts in paths.items():
            before = {part: cpu_seconds(pids) for part, pids in parts.items()}
            ok = load(estate.paths[name], requests)
            if ok < requests * 0.99:
                raise RuntimeError(f"{name}: only {ok} of {requests} requests answered 200")
            for part, pids in parts.items():
                used = cpu_seconds(pids) - before[part]
                samples.setdefault(name, {}).setdefault(part, []).append(used / ok * 1e6)
    return {n: {p: statistics.median(v) for p, v in parts.items()}
            for n, parts in samples.items()}


def profile(estate: Estate, paths: dict[str, dict[str, list[int]]], requests: int,
            out_dir: str) -> list[Table]:
    """Each front under py-spy for ``requests`` more GETs: its top functions, one table each."""
    os.makedirs(out_dir, exist_ok=True)
    tables = []
    for name, parts in paths.items():
        port = estate.paths[name]
        out = os.path.join(out_dir, name.replace(" ", "_").replace(">", "") + ".txt")
        cpuprofile.record(parts["front"][0], out, lambda port=port: load(port, requests))
        table = Table(f"{name}: where the front's CPU goes (py-spy, inclusive)",
                      "% of samples", "all samples", higher_is_better=False)
        table.add("all samples", 100.0)
        for share, function in cpuprofile.top(out, 30):
            table.add(function.replace("|", "/"), share * 100)
        table.notes.append(f"folded stacks in {out}; each function counted once per stack")
        tables.append(table)
    return tables


def run(smoke: bool, requests: int = 6000, rounds: int = 3, pids: bool = False,
        link: str | None = None, profile_dir: str | None = None) -> list[Table]:
    """Start the estate, measure, stop it; one table (and the profiles, if asked)."""
    if smoke:
        requests, rounds = 400, 1
    link = link or os.environ.get("BENCH_BROKER_LINK", "auto")
    estate = Estate(smoke)
    try:
        paths = start(estate, link)
        if pids:
            for name, parts in paths.items():
                print(f"{name}: port {estate.paths[name]} {parts}", flush=True)
        cpu = measure(estate, paths, requests, rounds)
        profiles = profile(estate, paths, requests, profile_dir) if profile_dir else []
    finally:
        estate.close()
    table = Table(f"wsgi paths: CPU per request by process (broker link: {link})", "us",
                  f"{WSGI3}: total", higher_is_better=False)
    for name, by_part in cpu.items():
        for part, value in by_part.items():
            table.add(f"{name}: {part}", value)
        table.add(f"{name}: total", sum(by_part.values()))
    table.notes.append(f"{requests} keep-alive GETs over {CONNECTIONS} connections, median of "
                       f"{rounds} rounds; CPU ticks are {1e6 / os.sysconf('SC_CLK_TCK'):.0f} "
                       "µs, so figures move by a few µs between runs")
    table.notes += estate.notes
    return [table, *profiles]


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    p = argparse.ArgumentParser(prog="python -m bench.cpu")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--requests", type=int, default=6000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pids", action="store_true",
                   help="print the PIDs (for a profiler) before measuring")
    p.add_argument("--link", choices=("auto", "zmtp", "libzmq"), default=None,
                   help="the fronts' broker link (default: $BENCH_BROKER_LINK or auto)")
    p.add_argument("--profile", metavar="DIR", default=None,
                   help="after the table, record each front with py-spy into DIR")
    args = p.parse_args(argv)
    for table in run(args.smoke, args.requests, args.rounds, args.pids, args.link,
                     args.profile):
        print(table.markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
