"""``gateway status``: the arbiter's status document, broker registrations, migration states.

::

    status = control.call(cfg.control_socket, {"cmd": "status"}, timeout=5.0)
    status["registrations"] = registrations(status)
    status["migrations"] = migration_states(cfg)
    print(render_status(status))
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import zmq

from gateway.arbiter import control
from gateway.arbiter.ready import mmi_service
from gateway.config import GatewayConfig
from gateway.migration import stores
from gateway.migration.store import StoreError


def run(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Ask the running arbiter for its status."""
    status = control.call(cfg.control_socket, {"cmd": "status"}, timeout=args.timeout)
    status["registrations"] = registrations(status)
    status["migrations"] = migration_states(cfg)
    print(json.dumps(status, indent=2, sort_keys=True) if args.json else render_status(status))
    return 0


def registrations(status: dict[str, Any], timeout: float = 0.3) -> dict[str, str | None]:
    """mmi.service answers for every broker service in ``status`` (asked from here)."""
    out: dict[str, str | None] = {}
    endpoint = status["arbiter"]["broker"]
    for prog in status["programs"]:
        if prog["service"] and prog["runtime"] not in ("command", "infra"):
            try:
                out[prog["service"]] = mmi_service(endpoint, prog["service"], timeout)
            except zmq.ZMQError:
                out[prog["service"]] = None
    return out


def render_status(status: dict[str, Any]) -> str:
    """The human status table."""
    a = status["arbiter"]
    w = max([14] + [len(p["name"]) + 2 for p in status["programs"]])
    lines = [f"arbiter pid {a['pid']}  up {a['uptime_s']:.0f}s  guard {a['guard_pid']}  "
             f"config {a['config']}",
             f"listen {a['listen']}  broker {a['broker']}  redis {a.get('redis') or '-'}"]
    writes = a.get("write_errors") or {}
    if writes.get("total"):
        failing = ", ".join(writes["failing"]) or "none now"
        lines.append(f"write errors {writes['total']} (failing: {failing})")
    lines += ["",
             f"{'PROGRAM':<{w}}{'STATE':<10}{'RUNTIME':<22}{'READY':<7}{'BROKER':<8}"
             f"{'REPLICA':<10}{'PID':<9}{'UPTIME':<10}RESTARTS"]
    regs = status.get("registrations", {})
    for p in status["programs"]:
        runtime = p["runtime"] + (f" {p['version']}" if p["version"] else "")
        reg = regs.get(p["service"]) or "-"
        head = (f"{p['name']:<{w}}{p['state']:<10}{runtime:<22}"
                f"{p['ready']}/{p['replicas_wanted']:<5}{reg:<8}")
        reps = p["replicas"] or [None]
        for i, r in enumerate(reps):
            prefix = head if i == 0 else " " * len(head)
            if r is None:
                lines.append(prefix)
                continue
            up = f"{r['uptime_s']:.1f}s" if r["uptime_s"] is not None else "-"
            name = f".{r['index']}" + (f"@{r['generation']}" if r["generation"] else "")
            lines.append(f"{prefix}{name:<10}{r['pid'] or '-'!s:<9}{up:<10}{r['restarts']}"
                         f"  {r['state']}")
    if status["routes"]:
        lines += ["", f"{'ROUTE':<24}{'BACKEND':<9}{'SERVICE/TARGET':<32}STATE"]
        for r in status["routes"]:
            lines.append(f"{r['prefix']:<24}{r['backend']:<9}"
                         f"{(r['service'] or r['target']):<32}{r['state']}")
    if status.get("migrations"):
        lines += ["", f"{'MIGRATION':<24}{'TARGET':<24}STATE"]
        for name, m in sorted(status["migrations"].items()):
            lines.append(f"{name:<24}{m['target']:<24}{m['label']}")
    return "\n".join(lines)


def migration_states(cfg: GatewayConfig) -> dict[str, Any]:
    """Each configured migration's target and state, read from the store ({} before it exists)."""
    settings = cfg.migration_settings
    if not settings.migrations or not stores.exists(settings):
        return {}
    try:
        store = stores.open_store(settings, cfg.gateway.run_dir)
    except StoreError:
        return {}
    try:
        states = store.all()
    except StoreError:
        return {}
    finally:
        store.close()
    return {m.name: {"target": m.target, "label": states[m.name].to_json()["label"],
                     "mode": states[m.name].mode, "percent": states[m.name].percent}
            for m in settings.migrations if m.name in states}
