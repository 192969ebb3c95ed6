"""``gateway stop [--no-wait] [--timeout S]``: stop the running estate gracefully.

By default it waits until the arbiter's process is gone: the arbiter exits
last, once every program it runs is down.
"""

from __future__ import annotations

import argparse
import time

from gateway.arbiter import control
from gateway.config import GatewayConfig
from gateway.errors import GatewayError


def run(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Ask the running arbiter to stop gracefully."""
    status = control.call(cfg.control_socket, {"cmd": "status"}, timeout=args.timeout)
    control.call(cfg.control_socket, {"cmd": "stop"}, timeout=args.timeout)
    pid = int(status["arbiter"]["pid"])
    if args.no_wait:
        print(f"stopping (arbiter pid {pid})")
        return 0
    # Every replica gets its grace, and the slowest drains last; then a margin.
    grace = max([cfg.gateway.stop_grace_s] + [s.stop_grace_s for s in cfg.services])
    limit = args.timeout if args.timeout is not None else grace + 15.0
    deadline = time.monotonic() + limit
    while process_alive(pid):  # it exits last, once every program is down
        if time.monotonic() > deadline:
            raise GatewayError(f"the estate is still stopping after {limit:g}s "
                               f"(arbiter pid {pid})")
        time.sleep(0.05)
    print("stopped")
    return 0


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
