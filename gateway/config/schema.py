"""The parsed configuration's frozen dataclasses, one per TOML table.

::

    cfg.gateway.workers, cfg.broker.endpoint, cfg.service("notes").kind
    from_dict(cfg.to_dict()) == cfg        # the arbiter hands its children this dict
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.config.routes import Route, route_to_dict
from gateway.config.sections.migration import MigrationSettings, parse_settings

RUNTIMES = ("py2", "py3", "command")
LOG_FORMATS = ("text", "json")
RESERVED = {"broker", "http", "redis", "arbiter", "guard", "comparer"}
# Passed through to the HTTP front (gateway.http.config.GatewayHttpConfig), which checks them.
HTTP_KEYS = {"limits", "trusted_proxies", "via", "preserve_host", "contracts_dir",
             "retry_after", "pool_size", "allowed_hosts", "access_log", "access_log_format",
             "broker_link"}
# Read by the front itself (gateway.metrics), not passed to gateway.http.
FRONT_ONLY_HTTP_KEYS = ("access_log", "access_log_format")

DEFAULT_TOML = """\
# The embedded default: the HTTP front and the broker on this machine.
[gateway]
listen = "127.0.0.1:8080"
"""


@dataclass(frozen=True)
class FrontConfig:
    """``[gateway]``: the HTTP front and the arbiter itself."""

    listen: str = "127.0.0.1:8080"
    workers: int = 2
    threads: int = 8
    run_dir: str = "var/run"
    log_format: str = "text"
    stop_grace_s: float = 10.0
    front: bool = True
    ready_timeout_s: float = 60.0
    role: str = "all"  # gateway.config.hosts.ROLES; `gateway up --role` overrides it


@dataclass(frozen=True)
class RuntimesConfig:
    """``[runtimes]``: the interpreter behind each Python runtime, by name."""

    py2: str = ".venv2/bin/python"
    py3: str = ""
    # Any further names (a team's own virtualenvs): name -> absolute interpreter path.
    named: Mapping[str, str] = field(default_factory=dict)

    def names(self) -> tuple[str, ...]:
        """Every runtime name a service may pick, but ``command``."""
        return ("py2", "py3", *sorted(self.named))

    def interpreter(self, name: str, own: str) -> str:
        """The interpreter of runtime ``name``; ``own`` (the gateway's) for an empty py3."""
        if name == "py2":
            return self.py2
        if name == "py3":
            return self.py3 or own
        return self.named[name]


@dataclass(frozen=True)
class BrokerConfig:
    """``[broker]``: which broker runs, where it binds and how often it heartbeats."""

    endpoint: str = ""
    heartbeat_ms: int = 1000
    enabled: bool = True
    events_pub: str = ""
    events_sub: str = ""
    implementation: str = "native"
    startup_grace_ms: int = 5000
    # Memory bounds (SPEC 2.5); the broker's own defaults.
    max_deadline_ms: int = 300_000
    max_queued: int = 10_000
    max_queued_total: int = 50_000
    max_queued_bytes: int = 128 * 1024 * 1024
    max_queued_bytes_total: int = 512 * 1024 * 1024
    allow_insecure_tcp: bool = False
    # Outlier ejection (SPEC 2.13); the broker's own defaults.
    outlier_consecutive: int = 5
    outlier_base_ejection_ms: int = 30_000
    outlier_max_ejection_ms: int = 300_000
    outlier_max_ejection_percent: int = 50
    outlier_count_errors: bool = False
    # Several hosts (SPEC 2.15), parsed and checked by gateway.config.hosts.
    public_endpoint: str = ""
    curve_secret_file: str = ""
    curve_clients_dir: str = ""
    connect: tuple[str, ...] = ()
    curve_server_key: str = ""
    curve_client_secret: str = ""

    def tcp_endpoints(self) -> list[str]:
        """The broker and events endpoints that are plain (CURVE-less) TCP."""
        return [e for e in (self.endpoint, self.events_pub, self.events_sub)
                if e.startswith("tcp://")]


@dataclass(frozen=True)
class RedisConfig:
    """``[redis]``: an external Redis URL, or empty for a private server (and its AOF)."""

    url: str = ""
    appendonly: bool = True
    appendfsync: str = "everysec"


@dataclass(frozen=True)
class ServiceConfig:
    """One ``[services.<name>]`` table: how to run a service's replicas."""

    name: str
    runtime: str = "py3"
    module: str = ""
    app: str = ""
    command: tuple[str, ...] = ()
    replicas: int = 1
    ready: str = "none"
    listen: str = ""
    queues: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = ""
    stop_grace_s: float = 0.0
    start_limit_burst: int = 5
    start_limit_interval_s: float = 10.0
    untyped: bool = False
    ready_timeout_s: float = 0.0

    @property
    def kind(self) -> str:
        """``"rpc"`` (module), ``"wsgi"`` (app) or ``"command"``."""
        if self.runtime == "command":
            return "command"
        return "wsgi" if self.app else "rpc"


@dataclass(frozen=True)
class GatewayConfig:
    """The whole configuration; paths are absolute once parsed with a ``base_dir``."""

    gateway: FrontConfig = FrontConfig()
    runtimes: RuntimesConfig = RuntimesConfig()
    broker: BrokerConfig = BrokerConfig()
    redis: RedisConfig = RedisConfig()
    routes: tuple[Route, ...] = ()
    services: tuple[ServiceConfig, ...] = ()
    base_dir: str = ""
    http: Mapping[str, Any] = field(default_factory=dict)
    migration: Mapping[str, Any] = field(default_factory=dict)
    migrations: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    tracing: Mapping[str, Any] = field(default_factory=dict)

    def service(self, name: str) -> ServiceConfig:
        """The service called ``name``; ``KeyError`` if there is none."""
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)

    @property
    def wants_private_redis(self) -> bool:
        """True when queues are configured and no Redis URL is given."""
        return not self.redis.url and any(s.queues for s in self.services)

    @property
    def redis_url(self) -> str:
        """The Redis URL services use: the configured one, or the private server's socket."""
        if self.redis.url:
            return self.redis.url
        return "unix://" + os.path.join(self.gateway.run_dir, "redis.sock")

    @property
    def migration_settings(self) -> MigrationSettings:
        """``[migration]`` and ``[migrations.*]``, parsed (validated once by :func:`from_dict`)."""
        return parse_settings(self.migration, self.migrations, self.gateway.run_dir,
                              self.base_dir, self.state_file, self.redis.url)

    @property
    def control_socket(self) -> str:
        """The arbiter's control channel (a unix socket speaking JSON lines)."""
        return os.path.join(self.gateway.run_dir, "arbiter.sock")

    @property
    def state_file(self) -> str:
        """The JSON file in which the arbiter publishes service states to the HTTP front."""
        return os.path.join(self.gateway.run_dir, "state.json")

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-shaped dict that :func:`from_dict` turns back into an equal config."""
        out: dict[str, Any] = {
            "gateway": asdict(self.gateway),
            "runtimes": {"py2": self.runtimes.py2, "py3": self.runtimes.py3,
                         **self.runtimes.named},
            "broker": asdict(self.broker),
            "redis": asdict(self.redis),
            "routes": [route_to_dict(r) for r in self.routes],
            "services": {},
            "http": dict(self.http),
            "migration": dict(self.migration),
            "migrations": {k: dict(v) for k, v in self.migrations.items()},
            "metrics": dict(self.metrics),
            "tracing": dict(self.tracing),
            "base_dir": self.base_dir,
        }
        for svc in self.services:
            d = asdict(svc)
            del d["name"]
            d["command"] = list(svc.command)
            d["queues"] = list(svc.queues)
            d["env"] = dict(svc.env)
            out["services"][svc.name] = d
        return out

