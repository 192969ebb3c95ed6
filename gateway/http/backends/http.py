"""The ``http`` backend: a reverse proxy to ``upstream`` (:mod:`gateway.http.proxy`).

::

    [[routes]]  prefix = "/api"  backend = "http"  target = "http://127.0.0.1:9000"
"""

from __future__ import annotations

from gateway.http.backends.base import BackendSpec, Parts
from gateway.http.config import Route
from gateway.http.proxy import HttpBackend
from gateway.http.wsgitypes import Backend


def build(route: Route, parts: Parts) -> Backend:
    """One connection-pooled proxy per route."""
    return HttpBackend(route, parts.limits, parts.forwarding, parts.config.pool_size)


FRONT = BackendSpec(build)
