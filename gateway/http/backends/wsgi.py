"""The ``wsgi`` backend: a WSGI app in a broker service, over ZeroMQ.

The backend itself is :class:`gateway.http.bridge.WsgiBackend`.

::

    [[routes]]  prefix = "/legacy"  backend = "wsgi"  service = "legacy"
"""

from __future__ import annotations

from gateway.http.backends.base import BackendSpec, Parts
from gateway.http.bridge import WsgiBackend
from gateway.http.config import Route
from gateway.http.wsgitypes import Backend


def build(route: Route, parts: Parts) -> Backend:
    """Shares the process's broker client."""
    return WsgiBackend(route, parts.client, parts.limits, parts.forwarding)


FRONT = BackendSpec(build)
