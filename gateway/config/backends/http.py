"""The ``http`` backend's routes: a reverse proxy to an upstream base URL.

::

    [[routes]]
    prefix = "/api"  backend = "http"  target = "http://127.0.0.1:9000"
    strip_prefix = true          # forward the path below the mount
    rewrite_redirects = true     # (default: = strip_prefix) the mount back into Location
    rewrite_cookie_path = true   # (default: = strip_prefix) ... and into Set-Cookie Path

``service`` (optional) names the supervised service behind the URL, so the
route answers 503 at once while it is FATAL. Its front part is
:mod:`gateway.http.backends.http`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from gateway.config.backends.base import RouteContext, RouteSpec
from gateway.config.values import boolean
from gateway.errors import ConfigError

REWRITES = ("rewrite_redirects", "rewrite_cookie_path")


def load(table: Mapping[str, Any], p: str, ctx: RouteContext) -> dict[str, Any]:
    """``target`` is an http(s) URL; the rewrites default to ``strip_prefix``."""
    if not ctx.target.startswith(("http://", "https://")):
        raise ConfigError(f"{p}.target: expected an http:// URL for backend = 'http'")
    return {"upstream": ctx.target,
            **{k: boolean(table, p, k, ctx.strip_prefix) for k in REWRITES}}


def refuse(table: Mapping[str, Any], p: str, strip_prefix: bool) -> None:
    """Only this backend rewrites: a rewrite that is on (set, or by strip_prefix) is an error."""
    for key in REWRITES:
        if boolean(table, p, key, strip_prefix):
            raise ConfigError(f"{p}.{key}: only the http backend rewrites upstream URLs")


def to_file(route: Any) -> dict[str, Any]:
    """The route's upstream is the table's target."""
    return {"target": route.upstream, **{k: getattr(route, k) for k in REWRITES}}


def validate(route: Any, where: str) -> None:
    """``upstream`` is an http(s) URL with a host and no query or fragment."""
    parts = urllib.parse.urlsplit(route.upstream)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}.upstream: an http:// or https:// URL is required")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}.upstream: no query or fragment allowed")


SPEC = RouteSpec("http", "gateway.http.backends.http:FRONT", keys=REWRITES, load=load,
                 refuse=refuse, to_file=to_file, validate=validate)
