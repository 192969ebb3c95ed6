"""The ``static`` backend: files below ``directory`` (:mod:`gateway.http.static`).

::

    [[routes]]  prefix = "/assets"  backend = "static"  target = "/srv/assets"
"""

from __future__ import annotations

from gateway.http.backends.base import BackendSpec, Parts
from gateway.http.config import Route
from gateway.http.static import StaticBackend
from gateway.http.wsgitypes import Backend


def build(route: Route, parts: Parts) -> Backend:
    """Files need nothing shared."""
    return StaticBackend(route)


FRONT = BackendSpec(build)
