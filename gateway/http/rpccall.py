"""How the ``rpc`` backend makes one call: a callable handed in by the composition root.

The backend (:class:`gateway.http.bridge.RpcBackend`) checks the request at
the edge (path, method, media type, params against the contract) and then
asks its ``caller`` for the call of ``(service, method)``::

    caller = direct(client)                        # the default: straight to the broker
    result = caller("highlight", "render")(call, params, timeout=10.0, idem=True, schema=None)

What stands behind a call (a FATAL check, a migration's shadow engine) is
composed by :mod:`gateway.assemble`, so the backend knows neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gateway.http import tracing
from gateway.http.context import Call
from protocol.client import Client


class RpcCall(Protocol):
    """One ``(service, method)`` call: the result, or a protocol error raised."""

    def __call__(self, call: Call, params: Any, *, timeout: float, idem: bool,
                 schema: Any) -> Any: ...


# (service, method) -> the call to make for it.
RpcCaller = Callable[[str, str], RpcCall]


class DirectCall:
    """The plain broker call of one ``(service, method)``."""

    __slots__ = ("client", "method", "service")

    def __init__(self, client: Client, service: str, method: str) -> None:
        self.client = client
        self.service = service
        self.method = method

    def __call__(self, call: Call, params: Any, *, timeout: float, idem: bool,
                 schema: Any) -> Any:
        return self.client.call(self.service, self.method, params, timeout=timeout, idem=idem,
                                rid=call.request_id, schema=schema,
                                **tracing.rpc_fields(call.environ))


def direct(client: Client) -> RpcCaller:
    """The caller that sends every call straight to the broker through ``client``."""
    return lambda service, method: DirectCall(client, service, method)
