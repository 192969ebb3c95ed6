"""The HTTP front's configuration: frozen dataclasses built from plain values.

Nothing here reads files or the environment; the TOML loader (or a test)
builds these objects and passes them to :func:`gateway.http.make_app`::

    from gateway.http.config import GatewayHttpConfig, HttpLimits, Route
    config = GatewayHttpConfig(routes=(
        Route("/api", "http", upstream="http://127.0.0.1:9000"),
        Route("/legacy", "wsgi", service="legacy"),
        Route("/rpc", "rpc"),
        Route("/assets", "static", directory="/srv/assets"),
        Route("/old", "redirect", target="/api", status=308),
    ), limits=HttpLimits(max_body=8 << 20), trusted_proxies=0)

``GatewayHttpConfig.from_dict`` accepts the same values as nested mappings
(what a TOML table gives) and raises :class:`gateway.errors.ConfigError`
naming the offending key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ConfigError

# backend name -> (its route checks, whether it needs the broker). Filled by the registry,
# gateway.http.backends, which the gateway.http package imports before anyone can make a
# Route: its modules build on this one, so this one does not import them.
BACKEND_CHECKS: dict[str, tuple[Callable[[Route, str], None], bool]] = {}


@dataclass(frozen=True)
class HttpLimits:
    """Request size limits (413 body, 414 URI, 431 headers), client and backend timeouts.

    ``client_header_timeout`` is the time a client has to send a whole request
    head, from its first byte (or from the connection's start): past it the
    front answers 408 and closes, as nginx's ``client_header_timeout`` does.
    ``client_body_timeout`` is the longest gap between two reads of a request
    body (nginx ``client_body_timeout``): past it, 408 and close, or only
    close once the response has started. Both are seconds, and smaller than
    nginx's 60 s defaults: a slow client holds a connection, not a thread,
    but it should not hold it for a minute.

    ``max_connections_per_client`` caps the connections one client address
    holds open at once on this front (0: no cap); extra ones are answered
    429 and closed. Each front worker process counts its own connections and
    allows ``ceil(cap / workers)`` of them, so a client that lands mostly on
    one worker is refused a little before it holds ``cap`` in all. Behind a
    trusted proxy the address is the proxy's: raise the cap or set 0.
    """

    max_body: int = 64 * 1024 * 1024
    max_uri: int = 4094
    max_header_count: int = 100
    max_header_line: int = 8190
    max_header_total: int = 64 * 1024
    connect_timeout: float = 5.0
    timeout: float = 30.0
    client_header_timeout: float = 10.0
    client_body_timeout: float = 30.0
    max_connections_per_client: int = 1024

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            floor_ok = f.name == "max_connections_per_client" and value == 0
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    (value <= 0 and not floor_ok):
                raise ConfigError(f"http.limits.{f.name}: must be a positive number, got {value!r}")
        if not isinstance(self.max_connections_per_client, int):
            raise ConfigError("http.limits.max_connections_per_client: must be an integer")


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
        if self.backend not in BACKEND_CHECKS:
            raise ConfigError(f"{where}.backend: one of {tuple(BACKEND_CHECKS)}, "
                              f"got {self.backend!r}")
        BACKEND_CHECKS[self.backend][0](self, where)
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
    def script_name(self) -> str:
        """The mount as a WSGI SCRIPT_NAME ("" for the root mount)."""
        return "" if self.prefix == "/" else self.prefix


@dataclass(frozen=True)
class GatewayHttpConfig:
    """Everything the HTTP front needs, as plain frozen values.

    ``trusted_proxies`` is how many proxies in front of the gateway may set
    X-Forwarded-* (0: the client's copies are replaced). ``broker`` is the
    ZeroMQ endpoint of the broker for the wsgi and rpc backends.
    ``broker_link`` is how the event-loop fast path of ``wsgi`` routes talks
    to it (:mod:`gateway.http.brokerlink`): ``zmtp`` from the event loop,
    ``libzmq`` through a pyzmq socket, ``auto`` zmtp for a local endpoint.
    ``contracts_dir`` holds the ``*.json`` service contracts behind the
    OpenAPI document and the rpc parameter checks.
    """

    routes: tuple[Route, ...] = ()
    limits: HttpLimits = field(default_factory=HttpLimits)
    trusted_proxies: int = 0
    via: str = "gateway"
    preserve_host: bool = True
    broker: str = ""
    broker_link: str = "auto"
    contracts_dir: str = ""
    retry_after: int = 1
    pool_size: int = 16
    # Host names the front answers (DNS rebinding defence, like Django's ALLOWED_HOSTS):
    # "example.com" exactly, "*.example.com" any subdomain of it; () answers any Host.
    allowed_hosts: tuple[str, ...] = ()
    # gateway.migration.config.MigrationSettings: migrations, the admin API and the
    # dashboard; None serves neither.
    migration: Any = None
    # Configured rpc services (``module = ...``) that ``POST <prefix>/<service>/<method>``
    # may name although no contract describes them: their calls go through untyped.
    rpc_services: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        prefixes = [r.prefix for r in self.routes]
        dupes = sorted({p for p in prefixes if prefixes.count(p) > 1})
        if dupes:
            raise ConfigError(f"http.routes: prefix {dupes[0]!r} is mounted twice")
        if self.trusted_proxies < 0:
            raise ConfigError("http.trusted_proxies: must be >= 0")
        needs_broker = [r.prefix for r in self.routes if BACKEND_CHECKS[r.backend][1]]
        if needs_broker and not self.broker:
            raise ConfigError(f"http.broker: required by the route {needs_broker[0]!r}")
        if self.broker_link not in ("auto", "zmtp", "libzmq"):
            raise ConfigError("http.broker_link: one of 'auto', 'zmtp', 'libzmq', "
                              f"got {self.broker_link!r}")
        if not self.via or any(c in self.via for c in " ,\r\n"):
            raise ConfigError("http.via: one token, like 'gateway'")
        hosts = self.allowed_hosts
        if isinstance(hosts, str) or not all(isinstance(h, str) and h for h in hosts):
            raise ConfigError("http.allowed_hosts: must be a list of host names")
        for h in hosts:
            name = h[2:] if h.startswith("*.") else h
            bracketed = name.startswith("[") and name.endswith("]")
            if not name or any(c in name for c in "*/@ \t") or (":" in name and not bracketed):
                raise ConfigError(f"http.allowed_hosts: {h!r} is not a host name or "
                                  "*.domain (no ports, paths or inner wildcards)")
        object.__setattr__(self, "allowed_hosts", tuple(h.lower() for h in hosts))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GatewayHttpConfig:
        """Build a config from nested plain mappings, as a TOML table gives."""
        values = dict(data)
        try:
            routes = tuple(Route(**dict(r)) for r in values.pop("routes", ()))
            limits = HttpLimits(**dict(values.pop("limits", {})))
            return cls(routes=routes, limits=limits, **values)
        except TypeError as exc:
            raise ConfigError(f"http: {exc}") from None
