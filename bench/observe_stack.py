"""The observing layer's cost inside the real front, measured in this process.

wrk's req/s on a 2-core machine swings by more than the 3% this layer may
cost (the paired per-round ratios of ``bench observe`` show it), so the cost
is also measured where other processes cannot blur it: the front's real
ASGI stack (:meth:`gateway.http.server.FrontServer.asgi_app`: the fast path
on uvloop, a real broker and py3 workers) is driven in this process by 32
concurrent callers, with observing off, with metrics and the combined log,
and with metrics and the JSON log, in interleaved blocks; the CPU time of
this process per request is the front's (HTTP parsing aside, which is the
same for all three). Divided by the whole path's CPU per request under wrk
(every process of the estate plus wrk itself), the difference predicts what
the layer costs in throughput on a machine whose CPUs are the limit.

Run alone (no wrk; the broker and workers are started here)::

    python -m bench.observe_stack [--smoke]

prints the same in-stack table, with the broker's and the workers' CPU per
request (read from /proc around each block) added to the front's as the
denominator: the path without HTTP parsing and without a load generator,
smaller than wrk's whole path, so the percentage it gives is an upper bound.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from gateway.assemble import observer
from gateway.http.config import GatewayHttpConfig, HttpLimits, Route
from gateway.http.server import FrontServer
from gateway.metrics.config import ObservabilityConfig

CALLERS = 32


def _scope() -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8080),
            "headers": [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk")]}


async def _drive(app: Any, count: int) -> int:
    """``count`` GET / requests through ``app`` from CALLERS concurrent callers; 200s."""
    ok = 0
    never = asyncio.Event()

    async def caller(n: int) -> None:
        nonlocal ok
        for _ in range(n):
            sent = False
            status = 0

            async def receive() -> dict[str, Any]:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                await never.wait()   # the client stays until the answer is done
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]

            await app(_scope(), receive, send)
            ok += status == 200

    await asyncio.gather(*(caller(count // CALLERS) for _ in range(CALLERS)))
    return ok


def stack_cost(endpoint: str, directory: str, blocks: int = 6, count: int = 4000,
               variants: dict[str, ObservabilityConfig | None] | None = None,
               others: Callable[[], float] | None = None,
               ) -> dict[str, list[float]]:
    """CPU microseconds per request of the front's stack, per variant, one per block.

    With ``others`` (CPU seconds of the other processes of the path, read
    outside the timed span), their CPU per request is sampled too, under the
    variant's name plus ``" (others)"``.
    """
    import uvloop

    from bench.observe import OFF, ON, ON_JSON
    config = GatewayHttpConfig(
        broker=endpoint, routes=(Route("/", "wsgi", service="hello3"),),
        limits=HttpLimits(max_connections_per_client=0))
    variants = variants or {
        OFF: None,
        ON: ObservabilityConfig(access_log=os.path.join(directory, "stack.log"),
                                metrics_dir=directory),
        ON_JSON: ObservabilityConfig(access_log=os.path.join(directory, "stack.json.log"),
                                     access_log_format="json", metrics_dir=directory)}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    if others is not None:
        samples.update({f"{name} (others)": [] for name in variants})

    async def measure() -> None:
        apps = {}
        for name, obs in variants.items():
            server = FrontServer(config, None)  # type: ignore[arg-type]  # no socket: no serving
            server.observer = observer(obs)
            apps[name] = server.asgi_app()
        for app in apps.values():
            await _drive(app, 320)                # sockets, pools, caches
        # As a front worker does before it serves (gateway.http.server): what exists now lives
        # as long as the process, and the collector leaves it alone.
        gc.collect()
        gc.freeze()
        for block in range(blocks):
            names = list(apps)
            names = names[block % len(names):] + names[:block % len(names)]  # who goes first
            for name in names:
                other = others() if others is not None else 0.0
                started = time.process_time()
                ok = await _drive(apps[name], count)
                spent = time.process_time() - started
                if others is not None:
                    samples[f"{name} (others)"].append((others() - other) / count * 1e6)
                if ok != count // CALLERS * CALLERS:
                    raise RuntimeError(f"{name}: {ok} of {count} requests answered 200")
                samples[name].append(spent / ok * 1e6)
        for app in apps.values():
            # Every layer: the observing layer's close flushes, the front's below it
            # releases the broker link.
            layer: Any = app
            while layer is not None:
                closer = getattr(layer, "close", None)
                if closer is not None:
                    closer()
                layer = getattr(layer, "app", None)
        # A closed broker link cancels its reconnect task: let the cancellation run
        # before the loop closes, or the task dies pending.
        await asyncio.sleep(0)

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(measure())
    finally:
        loop.close()
        gc.unfreeze()
    return samples


def added(samples: dict[str, list[float]], name: str, base: str) -> float:
    """The median of per-block paired differences ``name - base``, in microseconds.

    Each block ran its variants back to back, so a slow spell of the machine
    moves both sides of a difference alike.
    """
    return statistics.median(v - o for v, o in zip(samples[name], samples[base], strict=True))


def main(argv: list[str]) -> int:
    """Start a compiled broker and two py3 workers, measure, print the table."""
    import tempfile

    from bench.http import NATIVE_BROKER, Estate, cpu_seconds
    from bench.observe import OFF
    from bench.report import Table
    from tests.support.procs import python3

    smoke = "--smoke" in argv
    estate = Estate(smoke)
    try:
        endpoint = estate.broker(os.access(NATIVE_BROKER, os.X_OK))
        estate.wsgi_workers(endpoint, "hello3", python3(), 2)
        pids = list(estate.pids.values()) + estate.workers["hello3"]
        with tempfile.TemporaryDirectory() as tmp:
            stack = stack_cost(endpoint, tmp, blocks=2 if smoke else 12,
                               count=640 if smoke else 2000,
                               others=lambda: cpu_seconds(pids))
    finally:
        estate.close()
    names = [n for n in stack if not n.endswith(" (others)")]
    path = statistics.median(stack[OFF]) + statistics.median(stack[f"{OFF} (others)"])
    table = Table("observe: the layer in the real front stack, in-process CPU per request",
                  "us", OFF, higher_is_better=False)
    for name in names:
        cost = added(stack, name, OFF)
        table.add(name, statistics.median(stack[name]),
                  extra="" if name == OFF else
                  f"{cost:+.1f} us (median of paired blocks) = {cost / path:.1%} of the path")
    table.notes.append("blocks (us per request): " + "; ".join(
        f"{name}: " + ", ".join(f"{v:.1f}" for v in stack[name]) for name in names))
    table.notes.append(
        f"the path with observing off: front stack {statistics.median(stack[OFF]):.0f} us + "
        f"broker and workers {statistics.median(stack[f'{OFF} (others)']):.0f} us = "
        f"{path:.0f} us CPU per request (no HTTP parsing, no load generator: an upper "
        "bound on the percentage)")
    print(table.markdown())
    return 0


def children_cpu() -> float:
    """CPU seconds of this process's reaped children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
