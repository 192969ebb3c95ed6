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
naming the offending key. ``Route`` is the one route type,
:class:`gateway.config.routes.Route`: what ``[[routes]]`` parses into.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The one Route type, and each backend's route checks, live below the front.
from gateway.config.backends import REGISTRY as BACKENDS
from gateway.config.routes import Route
from gateway.errors import ConfigError


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
        needs_broker = [r.prefix for r in self.routes if BACKENDS[r.backend].broker]
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
        """Build a config from nested plain mappings, as a TOML table gives (or Routes)."""
        values = dict(data)
        try:
            routes = tuple(r if isinstance(r, Route) else Route(**dict(r))
                           for r in values.pop("routes", ()))
            limits = HttpLimits(**dict(values.pop("limits", {})))
            return cls(routes=routes, limits=limits, **values)
        except TypeError as exc:
            raise ConfigError(f"http: {exc}") from None


__all__ = ["GatewayHttpConfig", "HttpLimits", "Route"]
