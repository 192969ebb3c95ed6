"""``gateway migrate ...``: drive migrations through the running front's admin API.

The subcommands and their rendering live with the migration package
(:mod:`gateway.migration.cli`); this is its entry in the command table.
"""

from __future__ import annotations

import argparse

from gateway.config import GatewayConfig
from gateway.migration import cli as migrate_cli


def run(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Drive migrations through the running front's admin API."""
    return migrate_cli.run(args, cfg)
