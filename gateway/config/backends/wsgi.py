"""The ``wsgi`` backend's routes: a WSGI app in a broker service, over ZeroMQ.

::

    [[routes]]  prefix = "/legacy"  backend = "wsgi"  service = "legacy"

Its front part is :mod:`gateway.http.backends.wsgi`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.backends.base import RouteContext, RouteSpec, check_service_kind
from gateway.errors import ConfigError


def load(table: Mapping[str, Any], p: str, ctx: RouteContext) -> dict[str, Any]:
    """``service`` is required, and a configured one must host a WSGI app."""
    if not ctx.service:
        raise ConfigError(f"{p}.service: required for backend = 'wsgi'")
    check_service_kind(ctx, p, "wsgi")
    return {}


def validate(route: Any, where: str) -> None:
    """A broker service name is required."""
    if not route.service:
        raise ConfigError(f"{where}.service: the wsgi backend needs a broker service name")


SPEC = RouteSpec("wsgi", "gateway.http.backends.wsgi:FRONT", load=load, validate=validate,
                 broker=True)
