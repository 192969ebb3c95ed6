"""``gateway reload [SERVICE]``: apply the changed config to the running estate.

The arbiter answers once the rollout is done; this prints what it did::

    re-read: /etc/gateway.toml (legacy changed)
    restarted: web
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.arbiter import control
from gateway.config import GatewayConfig


def run(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Apply the config file to the running estate; waits until the rollout is done."""
    request: dict[str, Any] = {"cmd": "reload"}
    if args.service:
        request["service"] = args.service
    result = control.call(cfg.control_socket, request, timeout=args.timeout)
    print(render_reload(result))
    return 0


def render_reload(result: dict[str, Any]) -> str:
    """What a reload did, one line per kind of change."""
    reread = result.get("reread") or {}
    lines = [f"re-read: {reread.get('config') or 'the config'}"
             + (f" ({', '.join(reread['migrations'])} changed)"
                if reread.get("migrations") else "")]
    for key in ("added", "removed", "restarted", "updated"):
        names = result.get(key, result.get("changed", []) if key == "restarted" else [])
        if names:
            lines.append(f"{key}: {', '.join(names)}")
    if len(lines) == 1:
        lines.append("nothing else changed")
    return "\n".join(lines)
