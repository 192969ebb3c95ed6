"""``gateway export systemd|supervisord [-o DIR] [--role R]``: production configs for the estate.

Without ``-o`` every file goes to stdout under a ``# --- NAME`` header; with
it, each file is written into DIR and its path printed.
"""

from __future__ import annotations

import argparse
import os
import sys

from gateway.arbiter import export
from gateway.config import GatewayConfig, hosts


def run(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Write systemd units or a supervisord config for this estate."""
    outdir = os.path.abspath(args.output or cfg.gateway.run_dir)
    cfg = hosts.apply_role(cfg, args.role)
    files = export.export(args.kind, cfg, python3=sys.executable, outdir=outdir,
                          user=args.user)
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        for name, text in files.items():
            with open(os.path.join(args.output, name), "w", encoding="utf-8") as fh:
                fh.write(text)
            print(os.path.join(args.output, name))
    else:
        for name, text in files.items():
            print(f"# --- {name}\n{text}")
    return 0
