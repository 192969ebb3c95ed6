"""The one Route type, and ``[[routes]]``: the keys every route has; the backend registry
for the rest.

::

    route = parse_route(0, {"prefix": "/old", "backend": "redirect", "target": "/new"},
                        services={}, base_dir="/srv/gw")
    route.status, route.timeout   # (308, 10.0): one Route type, the config's and the front's
    route_to_dict(route)          # the table again, as from_dict takes it back
    Route("/old", "redirect", target="/new")   # the same, as the front's own API builds it

The common keys (prefix, timeouts, admission) are checked here; everything
a backend means by its route (its own keys, ``target``, ``service``) is
checked by its :class:`~gateway.config.backends.base.RouteSpec`, looked up
by name in :data:`gateway.config.backends.REGISTRY`. A :class:`Route`
checks itself on construction (errors name ``http.routes['/prefix']``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gateway.config.backends import COMMON_KEYS, REGISTRY, RouteContext, names
from gateway.config.values import boolean, integer, known_keys, string
from gateway.errors import ConfigError


@dataclass(frozen=True)
class Route:
    """One mount: requests whose path starts with ``prefix`` go to ``backend``.

    ``http`` needs ``upstream`` (``http://host:port[/base]``); ``wsgi`` needs
    ``service`` (a broker service hosting a WSGI app); ``rpc`` serves
    ``POST <prefix>/<service>/<method>``; ``static`` needs ``directory``.
    ``strip_prefix`` makes the http backend forward the path below the mount
    (and say so in ``X-Forwarded-Prefix``); by default it forwards the whole path.
    ``rewrite_redirects`` (Location, Content-Location, Refresh) and
    ``rewrite_cookie_path`` (Set-Cookie Path) map the upstream's own URLs
    back under the mount, as nginx ``proxy_redirect default`` and
    ``proxy_cookie_path`` do (see :mod:`gateway.http.rewrite`); both default
    to ``strip_prefix``. ``timeout`` overrides the default backend timeout
    for this mount; for a streamed ``wsgi`` reply it bounds the wait for the
    response head, and ``idle_timeout`` (seconds) bounds each gap between
    later parts (SPEC 2.7).

    ``max_concurrency`` (0: no limit) and ``queue_timeout`` (seconds) are the
    mount's admission control (:mod:`gateway.http.admission`): at most
    ``max_concurrency`` requests are in progress at once, per front worker
    process, for each service behind the mount (the mount itself for
    ``http`` and ``static``); a request beyond it waits up to
    ``queue_timeout`` for a slot and is then answered 503 with Retry-After,
    before any work is sent to the backend.

    The config parses a ``[[routes]]`` table into this type
    (:func:`parse_route`) and the front serves it as is; tests and embedders
    make one directly. On a route of a backend that does not call the broker,
    ``service`` names the supervised service behind it (the arbiter's FATAL
    guard and status); :func:`front_route` leaves it out of the front's copy.
    Which keys a backend needs, and their checks, its module in
    :mod:`gateway.config.backends` declares (:class:`~gateway.config.backends.base.RouteSpec`).
    """

    prefix: str
    backend: str
    upstream: str = ""
    service: str = ""
    directory: str = ""
    target: str = ""
    status: int = 0
    strip_prefix: bool = False
    timeout: float | None = None
    rewrite_redirects: bool | None = None
    rewrite_cookie_path: bool | None = None
    idle_timeout: float = 60.0
    max_concurrency: int = 0
    queue_timeout: float = 0.0
    # A registered backend's own keys (gateway.config.backends), checked by it.
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"http.routes[{self.prefix!r}]"
        if not self.prefix.startswith("/") or "//" in self.prefix or "\\" in self.prefix:
            raise ConfigError(f"{where}.prefix: must be an absolute path like /api")
        if (self.prefix + "/").startswith("/_gateway/"):
            raise ConfigError(f"{where}.prefix: /_gateway/ belongs to the gateway itself")
        segments = self.prefix.strip("/").split("/")
        if any(s in (".", "..") or "%" in s for s in segments):
            raise ConfigError(f"{where}.prefix: no dot segments or percent escapes")
        if self.prefix != "/" and self.prefix.endswith("/"):
            object.__setattr__(self, "prefix", self.prefix.rstrip("/"))
        if self.backend not in REGISTRY:
            raise ConfigError(f"{where}.backend: one of {tuple(REGISTRY)}, "
                              f"got {self.backend!r}")
        REGISTRY[self.backend].validate(self, where)
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"{where}.timeout: must be positive")
        if isinstance(self.max_concurrency, bool) or not isinstance(self.max_concurrency, int) \
                or self.max_concurrency < 0:
            raise ConfigError(f"{where}.max_concurrency: must be an integer >= 0")
        if isinstance(self.queue_timeout, bool) or \
                not isinstance(self.queue_timeout, int | float) or self.queue_timeout < 0:
            raise ConfigError(f"{where}.queue_timeout: must be a number of seconds >= 0")
        for name in ("rewrite_redirects", "rewrite_cookie_path"):
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, self.strip_prefix)
            elif not isinstance(value, bool):
                raise ConfigError(f"{where}.{name}: must be true or false")
        if isinstance(self.idle_timeout, bool) or not isinstance(self.idle_timeout, int | float) \
                or self.idle_timeout <= 0:
            raise ConfigError(f"{where}.idle_timeout: must be a positive number of seconds")

    @property
    def destination(self) -> str:
        """What ``target`` names in the route's table: URL, directory or redirect target."""
        return self.upstream or self.directory or self.target

    @property
    def script_name(self) -> str:
        """The mount as a WSGI SCRIPT_NAME ("" for the root mount)."""
        return "" if self.prefix == "/" else self.prefix


_FIELDS = {f.name for f in fields(Route)} - {"options"}


def parse_route(i: int, r: Any, services: Mapping[str, str], base_dir: str) -> Route:
    """Check ``routes[i]``; every error names its key (``routes[2].target: ...``).

    ``services`` maps each configured service's name to its kind (rpc, wsgi,
    command). The route's own checks (:meth:`Route.__post_init__`, naming
    ``http.routes['/prefix']``) run last, as they do for a route the front is given.
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
    own = spec.load(r, p, ctx)
    for other in REGISTRY.values():
        if other is not spec:
            other.refuse(r, p, ctx.strip_prefix)
    return Route(prefix=prefix, backend=backend, service=ctx.service,
                 strip_prefix=ctx.strip_prefix,
                 timeout=integer(r, p, "timeout_ms", 10000, 1) / 1000.0,
                 idle_timeout=integer(r, p, "idle_timeout_ms", 60000, 1) / 1000.0,
                 max_concurrency=integer(r, p, "max_concurrency", 0, 0),
                 queue_timeout=integer(r, p, "queue_timeout_ms", 0, 0) / 1000.0,
                 options={k: v for k, v in own.items() if k not in _FIELDS},
                 **{k: v for k, v in own.items() if k in _FIELDS})


def _ms(seconds: float | None, default: int) -> int:
    return default if seconds is None else round(seconds * 1000)


def route_to_dict(route: Route) -> dict[str, Any]:
    """The ``[[routes]]`` table that :func:`parse_route` turns back into ``route``."""
    return {"prefix": route.prefix, "backend": route.backend, "service": route.service,
            "timeout_ms": _ms(route.timeout, 10000),
            "idle_timeout_ms": _ms(route.idle_timeout, 60000),
            "max_concurrency": route.max_concurrency,
            "queue_timeout_ms": _ms(route.queue_timeout, 0),
            "strip_prefix": route.strip_prefix,
            **REGISTRY[route.backend].to_file(route), **route.options}


def front_route(route: Route) -> Route:
    """The route as the front serves it.

    The front calls a service by name only for a broker backend; on any other
    route ``service`` names the supervised service behind it, which only the
    arbiter reads (FATAL guards, status), so the front's copy leaves it out and
    admission counts per route there.
    """
    if REGISTRY[route.backend].broker or not route.service:
        return route
    return dataclasses.replace(route, service="")
