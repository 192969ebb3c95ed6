"""The value checks every config section uses: each names the dotted key it checks.

::

    string(table, "gateway", "listen", "127.0.0.1:8080")   # ConfigError
    #   gateway.listen: must be a string
    parse_listen("127.0.0.1:8080", "gateway.listen")         # ("127.0.0.1", 8080)
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any

from gateway.errors import ConfigError


def parse_listen(value: str, where: str) -> tuple[str, int] | str:
    """``"HOST:PORT"`` -> ``(host, port)``; ``"unix:/path"`` -> ``"/path"``."""
    if value.startswith("unix:"):
        path = value[5:]
        if not path:
            raise ConfigError(f"{where}: empty unix socket path")
        return path
    host, sep, port_s = value.rpartition(":")
    host = host.strip("[]")
    # isdigit() alone accepts any Unicode digit ("８０" or "٨٠"): ports are ASCII.
    if (not sep or not host or not (port_s.isascii() and port_s.isdigit())
            or not 0 <= int(port_s) <= 65535):
        raise ConfigError(f"{where}: expected HOST:PORT or unix:/path, got {value!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConfigError(f"{where}: host must be an IP address, got {host!r}") from None
    return host, int(port_s)


def dotted(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def known_keys(table: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{dotted(prefix, key)}: unknown key")


def table(data: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{dotted(prefix, key)}: must be a table")
    return value


def string(t: Mapping[str, Any], prefix: str, key: str, default: str) -> str:
    value = t.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{dotted(prefix, key)}: must be a string")
    return value


def integer(t: Mapping[str, Any], prefix: str, key: str, default: int, minimum: int) -> int:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{dotted(prefix, key)}: must be an integer")
    if value < minimum:
        raise ConfigError(f"{dotted(prefix, key)}: must be >= {minimum}")
    return value


def number(t: Mapping[str, Any], prefix: str, key: str, default: float, minimum: float) -> float:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{dotted(prefix, key)}: must be a number")
    if value < minimum:
        raise ConfigError(f"{dotted(prefix, key)}: must be >= {minimum}")
    return float(value)


def boolean(t: Mapping[str, Any], prefix: str, key: str, default: bool) -> bool:
    value = t.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{dotted(prefix, key)}: must be true or false")
    return value


def choice(t: Mapping[str, Any], prefix: str, key: str, default: str,
            choices: tuple[str, ...]) -> str:
    value = string(t, prefix, key, default)
    if value not in choices:
        raise ConfigError(f"{dotted(prefix, key)}: must be one of {', '.join(choices)}")
    return value


def strlist(t: Mapping[str, Any], prefix: str, key: str) -> tuple[str, ...]:
    value = t.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{dotted(prefix, key)}: must be a list of strings")
    return tuple(value)


def abspath(path: str, base_dir: str) -> str:
    return path if not path or os.path.isabs(path) else os.path.normpath(
        os.path.join(base_dir, path))

