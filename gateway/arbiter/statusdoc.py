"""The status document ``gateway status`` shows: arbiter, programs and replicas, routes.

Built from explicit values, so it needs no running arbiter to test::

    doc = status_document(config, units, arbiter={"pid": ..., ...}, versions={}, now=now)
    doc["arbiter"]["run_dir"]   # the config's part of the arbiter entry is filled in
"""

from __future__ import annotations

import subprocess
from typing import Any

from gateway.arbiter.units import Unit
from gateway.config import GatewayConfig


def status_document(config: GatewayConfig, units: list[Unit], arbiter: dict[str, Any],
                    versions: dict[str, str], now: float) -> dict[str, Any]:
    """The whole document: ``arbiter`` (given, plus its config), ``programs``, ``routes``."""
    by_name = {u.program.name: u for u in units}
    routes = []
    for route in config.routes:
        unit = by_name.get(route.service) if route.service else None
        state = "up" if unit is None else (
            "fatal" if unit.fatal else "up" if unit.ready_count else "down")
        routes.append({"prefix": route.prefix, "backend": route.backend,
                       "service": route.service, "target": route.destination, "state": state})
    arbiter = arbiter | {
        "run_dir": config.gateway.run_dir, "listen": config.gateway.listen,
        "broker": config.broker.endpoint, "state_file": config.state_file,
        # What services get as GATEWAY_REDIS_URL ("" when no Redis is used).
        "redis": config.redis_url if (config.redis.url or config.wants_private_redis) else ""}
    return {"arbiter": arbiter, "programs": [u.describe(now, versions) for u in units],
            "routes": routes}


def interpreter_version(interpreter: str) -> str:
    """``cpython-2.7.18``-style version of a Python interpreter, or "" if it does not run."""
    code = ("import platform,sys;"
            "print('%s-%s' % (platform.python_implementation().lower(), "
            "platform.python_version()))")
    try:
        out = subprocess.run([interpreter, "-c", code], capture_output=True, timeout=10,
                             check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.decode("ascii", "replace").strip()
