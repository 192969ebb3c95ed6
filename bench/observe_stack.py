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
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import time
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
               ) -> dict[str, list[float]]:
    """CPU microseconds per request of the front's stack, per variant, one per block."""
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
                started = time.process_time()
                ok = await _drive(apps[name], count)
                spent = time.process_time() - started
                if ok != count // CALLERS * CALLERS:
                    raise RuntimeError(f"{name}: {ok} of {count} requests answered 200")
                samples[name].append(spent / ok * 1e6)
        for app in apps.values():
            closer = getattr(app, "close", None) or getattr(getattr(app, "app", None),
                                                            "close", None)
            if closer is not None:
                closer()

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(measure())
    finally:
        loop.close()
        gc.unfreeze()
    return samples


def children_cpu() -> float:
    """CPU seconds of this process's reaped children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
