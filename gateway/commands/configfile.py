"""Which config file a command uses, and reading it: ``-c``, ./gateway.toml or the embedded one.

::

    path = config_path(args.config)      # None: the embedded default
    cfg = load_config(path)              # a validated GatewayConfig, or ConfigError

The arbiter hands its own children its resolved config as JSON
(``$GATEWAY_CONFIG``); :func:`load_config` reads that form too.
"""

from __future__ import annotations

import json
import os

from gateway import config as gwconfig
from gateway.config import GatewayConfig
from gateway.errors import ConfigError


def config_path(given: str | None) -> str | None:
    """The config file to use: ``-c``, else ./gateway.toml if present, else None (embedded)."""
    if given:
        return os.path.abspath(given)
    return os.path.abspath("gateway.toml") if os.path.exists("gateway.toml") else None


def load_config(path: str | None) -> GatewayConfig:
    """Read and validate a TOML (or the arbiter's resolved JSON) config; None = embedded."""
    if path is None:
        return gwconfig.parse(gwconfig.DEFAULT_TOML, base_dir=os.getcwd(), source="<default>")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    base = os.path.dirname(os.path.abspath(path))
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path}: invalid JSON: {exc}") from None
        return gwconfig.from_dict(data, base_dir=base, source=path)
    return gwconfig.parse(text, base_dir=base, source=path)
