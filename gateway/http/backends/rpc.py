"""The ``rpc`` backend: ``POST <prefix>/<service>/<method>`` as one broker call.

The backend itself is :class:`gateway.http.bridge.RpcBackend`.

::

    [[routes]]  prefix = "/rpc"  backend = "rpc"            # any contracted service
    [[routes]]  prefix = "/calc"  backend = "rpc"  service = "calc"   # POST /calc/<method>

Its OpenAPI contribution is one POST operation per contracted method.
"""

from __future__ import annotations

from typing import Any

from gateway.http import openapi
from gateway.http.backends.base import BackendSpec, Contracts, Parts
from gateway.http.bridge import RpcBackend
from gateway.http.config import Route
from gateway.http.wsgitypes import Backend


def build(route: Route, parts: Parts) -> Backend:
    """Shares the process's broker client, contracts and the root's rpc caller."""
    return RpcBackend(route, parts.client, parts.limits, parts.contracts, parts.rpc_caller,
                      parts.config.rpc_services)


def paths(route: Route, contracts: Contracts) -> dict[str, Any]:
    """One POST operation per method this route serves."""
    return openapi.rpc_operations(route, contracts)


FRONT = BackendSpec(build, paths)
