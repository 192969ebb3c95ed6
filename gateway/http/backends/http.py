"""The ``http`` backend: a reverse proxy to ``upstream`` (:mod:`gateway.http.proxy`).

::

    [[routes]]  prefix = "/api"  backend = "http"  target = "http://127.0.0.1:9000"
"""

from __future__ import annotations

import urllib.parse

from gateway.errors import ConfigError
from gateway.http.backends.base import BackendSpec, Parts
from gateway.http.config import Route
from gateway.http.proxy import HttpBackend
from gateway.http.wsgitypes import Backend


def validate(route: Route, where: str) -> None:
    """``upstream`` is an http(s) URL with a host and no query or fragment."""
    parts = urllib.parse.urlsplit(route.upstream)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}.upstream: an http:// or https:// URL is required")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}.upstream: no query or fragment allowed")


def build(route: Route, parts: Parts) -> Backend:
    """One connection-pooled proxy per route."""
    return HttpBackend(route, parts.limits, parts.forwarding, parts.config.pool_size)


SPEC = BackendSpec("http", ("upstream", "strip_prefix", "rewrite_redirects",
                            "rewrite_cookie_path"), validate, build)
