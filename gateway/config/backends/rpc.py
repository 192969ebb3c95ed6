"""The ``rpc`` backend's routes: ``POST <prefix>/<service>/<method>`` as one broker call.

::

    [[routes]]  prefix = "/rpc"  backend = "rpc"                     # any contracted service
    [[routes]]  prefix = "/calc"  backend = "rpc"  service = "calc"   # POST /calc/<method>

Its front part is :mod:`gateway.http.backends.rpc`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.backends.base import RouteContext, RouteSpec, check_service_kind


def load(table: Mapping[str, Any], p: str, ctx: RouteContext) -> dict[str, Any]:
    """Without ``service`` the path names it; a configured one must be an rpc service."""
    check_service_kind(ctx, p, "rpc")
    return {}


SPEC = RouteSpec("rpc", "gateway.http.backends.rpc:FRONT", load=load, broker=True)
