"""The ``static`` backend's routes: files below a directory.

::

    [[routes]]  prefix = "/assets"  backend = "static"  target = "/srv/assets"

``target`` is relative to the config file's directory. Its front part is
:mod:`gateway.http.backends.static`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.backends.base import RouteContext, RouteSpec
from gateway.config.values import abspath
from gateway.errors import ConfigError


def load(table: Mapping[str, Any], p: str, ctx: RouteContext) -> dict[str, Any]:
    """A directory is required; it resolves against the config file's directory."""
    if not ctx.target:
        raise ConfigError(f"{p}.target: a directory is required for backend = 'static'")
    return {"directory": abspath(ctx.target, ctx.base_dir)}


def to_file(route: Any) -> dict[str, Any]:
    """The route's directory is the table's target."""
    return {"target": route.directory}


def validate(route: Any, where: str) -> None:
    """A directory is required."""
    if not route.directory:
        raise ConfigError(f"{where}.directory: the static backend needs a directory")


SPEC = RouteSpec("static", "gateway.http.backends.static:FRONT", load=load,
                 to_file=to_file, validate=validate)
