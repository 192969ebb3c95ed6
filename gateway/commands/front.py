"""``gateway front --fd N`` (internal): the HTTP front on a socket the arbiter hands down.

The arbiter starts it with its resolved config in ``$GATEWAY_CONFIG``; under
systemd socket activation the socket comes from ``LISTEN_FDS`` instead of ``--fd``.
"""

from __future__ import annotations

import argparse
import os

from gateway.arbiter.front import SupervisedFront
from gateway.arbiter.sockets import systemd_fds
from gateway.commands.configfile import load_config
from gateway.commands.frontcfg import http_config
from gateway.config import GatewayConfig
from gateway.errors import ConfigError


def run(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Run the HTTP front on an inherited socket; the arbiter starts this."""
    if os.environ.get("GATEWAY_CONFIG"):
        cfg = load_config(os.environ["GATEWAY_CONFIG"])
    fds = systemd_fds(os.environ, os.getpid())
    for key in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)  # the front's workers must not see them as their own
    fd = args.fd if args.fd is not None else (fds[0] if fds else None)
    if fd is None:
        raise ConfigError("front: no socket: pass --fd N or start it socket-activated")
    return SupervisedFront(cfg, http_config(cfg), fd).run()
