"""``gateway comparer`` (internal): compare the broker's shadow pairs into the migration store.

The arbiter starts it with its resolved config in ``$GATEWAY_CONFIG``; SIGTERM
or SIGINT ends it after the pair in hand.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

from gateway.commands.configfile import load_config
from gateway.config import GatewayConfig
from gateway.migration.comparer import run as run_comparer


def run(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Compare the broker's shadow pairs into the migration store; the arbiter starts this."""
    if os.environ.get("GATEWAY_CONFIG"):
        cfg = load_config(os.environ["GATEWAY_CONFIG"])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return run_comparer(cfg.migration_settings, cfg.broker.endpoint, stop)
