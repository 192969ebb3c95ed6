"""The ``redirect`` backend's routes: a moved route answers with a redirect.

::

    [[routes]]
    prefix = "/old"  backend = "redirect"  target = "/new"             # same host
    prefix = "/v1"   backend = "redirect"  target = "https://api.example.com/v2"  status = 301

``target`` is an absolute path or an http(s) URL without query or fragment;
``status`` is 301, 302, 307 or 308 (default 308: method and body are kept,
as RFC 9110 15.4.9 says). Its front part is :mod:`gateway.http.backends.redirect`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from gateway.config.backends.base import RouteContext, RouteSpec
from gateway.config.values import integer
from gateway.errors import ConfigError

STATUSES = (301, 302, 307, 308)


def load(table: Mapping[str, Any], p: str, ctx: RouteContext) -> dict[str, Any]:
    """A target is required; its form and the status are checked by :func:`validate`."""
    if not ctx.target:
        raise ConfigError(f"{p}.target: a URL or path is required for backend = 'redirect'")
    return {"target": ctx.target, "status": integer(table, p, "status", 0, 0)}


def refuse(table: Mapping[str, Any], p: str, strip_prefix: bool) -> None:
    """Only a redirect has a status."""
    if table.get("status", 0):
        raise ConfigError(f"{p}.status: only the redirect backend has a status")
    integer(table, p, "status", 0, 0)


def to_file(route: Any) -> dict[str, Any]:
    """Where to, and with which status."""
    return {"target": route.target, "status": route.status}


def validate(route: Any, where: str) -> None:
    """``target`` is an absolute path or an http(s) URL; ``status`` one of :data:`STATUSES`."""
    target = route.target
    parts = urllib.parse.urlsplit(target)
    if parts.scheme:
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}.target: an http:// or https:// URL or a path like /new")
    elif not target.startswith("/") or target.startswith("//"):
        raise ConfigError(f"{where}.target: the redirect backend needs a URL or a path like /new")
    if parts.query or parts.fragment or any(c in target for c in " \r\n\t"):
        raise ConfigError(f"{where}.target: no query, fragment or whitespace allowed")
    status = route.status or 308
    if isinstance(status, bool) or status not in STATUSES:
        raise ConfigError(f"{where}.status: one of {', '.join(map(str, STATUSES))}, "
                          f"got {route.status!r}")
    object.__setattr__(route, "status", status)


SPEC = RouteSpec("redirect", "gateway.http.backends.redirect:FRONT", keys=("status",),
                 load=load, refuse=refuse, to_file=to_file, validate=validate)
