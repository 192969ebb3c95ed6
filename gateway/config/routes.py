"""``[[routes]]``: the keys every route has, and the backend registry for the rest.

::

    route = parse_route(0, {"prefix": "/old", "backend": "redirect", "target": "/new"},
                        services={}, base_dir="/srv/gw")
    route.status                  # 0 here; the front's check makes it 308
    route_to_dict(route)          # the table again, as from_dict takes it back
    front_route(route)            # the keys of the front's route (gateway.http.config)

The common keys (prefix, timeouts, admission) are checked here; everything
a backend means by its route (its own keys, ``target``, ``service``) is
checked by its :class:`~gateway.config.backends.base.RouteSpec`, looked up
by name in :data:`gateway.config.backends.REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gateway.config.backends import COMMON_KEYS, REGISTRY, RouteContext, names
from gateway.config.values import boolean, integer, known_keys, string
from gateway.errors import ConfigError


@dataclass(frozen=True)
class Route:
    """One ``[[routes]]`` entry: a path prefix and the backend that serves it.

    ``options`` holds the keys of a backend that are not fields here (a
    registered backend's own keys), already checked by that backend.
    """

    prefix: str
    backend: str
    service: str = ""
    target: str = ""
    status: int = 0
    timeout_ms: int = 10000
    strip_prefix: bool = False
    rewrite_redirects: bool = False
    rewrite_cookie_path: bool = False
    idle_timeout_ms: int = 60000
    max_concurrency: int = 0
    queue_timeout_ms: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)


_FIELDS = {f.name for f in fields(Route)} - {"options"}


def parse_route(i: int, r: Any, services: Mapping[str, str], base_dir: str) -> Route:
    """Check ``routes[i]``; every error names its key (``routes[2].target: ...``).

    ``services`` maps each configured service's name to its kind (rpc, wsgi, command).
    """
    p = f"routes[{i}]"
    if not isinstance(r, Mapping):
        raise ConfigError(f"{p}: must be a table")
    known_keys(r, p, {*COMMON_KEYS, *(k for s in REGISTRY.values() for k in s.keys)})
    prefix = string(r, p, "prefix", "")
    if not prefix.startswith("/"):
        raise ConfigError(f"{p}.prefix: must start with '/'")
    backend = string(r, p, "backend", "")
    if backend not in REGISTRY:
        raise ConfigError(f"{p}.backend: must be one of {', '.join(names())}")
    spec = REGISTRY[backend]
    ctx = RouteContext(service=string(r, p, "service", ""), target=string(r, p, "target", ""),
                       strip_prefix=boolean(r, p, "strip_prefix", False),
                       services=services, base_dir=base_dir)
    own = {"target": ctx.target, **spec.load(r, p, ctx)}
    for other in REGISTRY.values():
        if other is not spec:
            other.refuse(r, p, ctx.strip_prefix)
    options = {k: v for k, v in own.items() if k not in _FIELDS}
    return Route(prefix=prefix, backend=backend, service=ctx.service,
                 strip_prefix=ctx.strip_prefix,
                 timeout_ms=integer(r, p, "timeout_ms", 10000, 1),
                 idle_timeout_ms=integer(r, p, "idle_timeout_ms", 60000, 1),
                 max_concurrency=integer(r, p, "max_concurrency", 0, 0),
                 queue_timeout_ms=integer(r, p, "queue_timeout_ms", 0, 0),
                 options=options, **{k: v for k, v in own.items() if k in _FIELDS})


def route_to_dict(route: Route) -> dict[str, Any]:
    """The ``[[routes]]`` table that :func:`parse_route` turns back into ``route``."""
    return {**{f: getattr(route, f) for f in _FIELDS}, **route.options}


def front_route(route: Route) -> dict[str, Any]:
    """The keys of the front's route (:class:`gateway.http.config.Route`) for ``route``."""
    return {"prefix": route.prefix, "backend": route.backend,
            "timeout": route.timeout_ms / 1000.0,
            "idle_timeout": route.idle_timeout_ms / 1000.0,
            "max_concurrency": route.max_concurrency,
            "queue_timeout": route.queue_timeout_ms / 1000.0,
            **REGISTRY[route.backend].to_front(route)}
