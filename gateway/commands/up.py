"""``gateway up``: run the estate in the foreground until Ctrl-C (or ``gateway stop``).

The arbiter gets a loader that re-reads the same file for ``gateway reload``,
with the same ``--role`` applied, and an environment for its children without
the variables that belong to this process (socket activation, notify socket).
"""

from __future__ import annotations

import argparse
import os
import sys

from gateway.arbiter import Arbiter, LogSink
from gateway.arbiter.plan import require_broker
from gateway.arbiter.sockets import systemd_fds
from gateway.commands.configfile import load_config
from gateway.config import GatewayConfig, hosts
from gateway.migration.evidence import restart_evidence

CHILD_ENV_DROP = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
                  "GATEWAY_CONFIG")


def run(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Run the estate in the foreground until Ctrl-C."""
    role = args.role
    cfg = hosts.apply_role(cfg, role)
    require_broker(cfg)  # before any socket or process exists
    fmt = args.log_format or cfg.gateway.log_format
    color = fmt == "text" and not args.no_color and sys.stdout.isatty() and \
        "NO_COLOR" not in os.environ
    sink = LogSink(sys.stdout, fmt=fmt, color=color)
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROP}
    arbiter = Arbiter(cfg, loader=lambda: hosts.apply_role(load_config(path), role),
                      python3=sys.executable,
                      sink=sink, inherited_fds=systemd_fds(os.environ, os.getpid()),
                      env=env, config_source=path or "<default>",
                      on_replaced=restart_evidence)
    return arbiter.run()
