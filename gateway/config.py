"""The gateway's configuration: one frozen dataclass tree, parsed from TOML.

This module owns the schema, its defaults and its validation. It never reads
files, argv or the environment; :mod:`gateway.cli` does and passes text in::

    from gateway.config import parse, DEFAULT_TOML
    cfg = parse(DEFAULT_TOML, base_dir="/srv/gw")          # GatewayConfig
    cfg.service("highlight").replicas                      # -> 2
    parse('[gateway]\\nworkers = 0\\n')                     # ConfigError:
    #   gateway.workers: must be >= 1

Relative paths resolve against the config file's directory (``base_dir``). The
arbiter hands its children the resolved config as JSON (``GatewayConfig.to_dict``,
with a top-level ``base_dir`` key that :func:`from_dict` honours).

Every error is a :class:`gateway.errors.ConfigError` whose message starts with
the dotted path of the offending key (``services.highlight.replicas: ...``).

Schema (every table and key is optional; shown with its default)::

    [gateway]
    listen = "127.0.0.1:8080"   # HTTP front: "HOST:PORT" or "unix:/path"; the arbiter
                                # owns this socket and hands it to the front as a descriptor
    workers = 2                 # front worker processes (uvicorn, each pinned to a CPU)
    threads = 8                 # threads per worker for the WSGI side of the front
    run_dir = "var/run"         # control socket, pid file, state file, ipc endpoints;
                                # relative paths are relative to the config file's dir
    log_format = "text"         # "text" (colour-prefixed, foreman style) or "json"
    stop_grace_s = 10.0         # SIGTERM -> SIGKILL grace for every process
    front = true                # run the HTTP front (false: supervise services only)
    role = "all"                # on several hosts: "gateway" (front + broker, no services)
                                # or "workers" (services only, on [broker] connect); see
                                # gateway.hosts and `gateway up --role`
    ready_timeout_s = 60.0      # a replica not ready this long after its start is killed
                                # (like systemd's TimeoutStartSec); a reload whose new
                                # replicas are not all ready by then is abandoned

    [runtimes]                  # interpreters that services pick with runtime = "<name>"
    py2 = ".venv2/bin/python"   # interpreter of runtime = "py2"
    py3 = ""                    # interpreter of runtime = "py3"; "" = the gateway's own
    # legacy = "/srv/legacy/venv/bin/python"   # any other name: a service's own virtualenv
                                # (the broker and the HTTP front always run on the
                                # gateway's own interpreter, whatever py3 says)

    [broker]
    enabled = true              # run the broker
    implementation = "native"   # "native": the compiled broker, build/gateway-broker
                                # (built by `make setup`); "python": python -m gateway.broker,
                                # the reference implementation; same options, same behaviour
    endpoint = ""               # "" = ipc://<run_dir>/broker.ipc; tcp:// must be loopback
                                # and needs allow_insecure_tcp (below)
    allow_insecure_tcp = false  # a tcp:// endpoint (broker or events) has no CURVE here, so
                                # any local user could register as a worker for any service
                                # and get its traffic; only with this set to true (the
                                # arbiter logs a warning) is loopback TCP accepted
    heartbeat_ms = 1000
    startup_grace_ms = 5000     # until up this long, a request for a service no worker has
                                # served waits for one; after it, unknown_service at once
    max_deadline_ms = 300000    # a request deadline further out counts as now + this
    max_queued = 10000          # waiting requests per service; beyond: too_busy (503)
    max_queued_total = 50000    # waiting requests over all services
    max_queued_bytes = 134217728        # body bytes waiting per service (128 MiB)
    max_queued_bytes_total = 536870912  # body bytes waiting over all services (512 MiB)
    outlier_consecutive = 5     # a worker that misses this many deadlines in a row gets no
                                # new requests for a while (ejected); 0 = never eject
    outlier_base_ejection_ms = 30000    # an ejection lasts this x times ejected so far
    outlier_max_ejection_ms = 300000    # ... but never longer than this
    outlier_max_ejection_percent = 50   # at most this share of a service's workers out at
                                # once (one of two or more always may be; never the last)
    outlier_count_errors = false        # an "internal" error reply is a failure too
    events_pub = ""             # XSUB side (publishers connect); "" = ipc in run_dir
    events_sub = ""             # XPUB side (subscribers connect); "" = ipc in run_dir
                                # Several hosts (README "Running on several hosts"):
    public_endpoint = ""        # gateway host: also bind this tcp:// for worker hosts,
                                # with CURVE (needs the two keys below); "" = none
    curve_secret_file = ""      # the broker's zmq.auth .key_secret (`gateway keys`)
    curve_clients_dir = ""      # public keys (.key) of the hosts allowed to connect
    connect = []                # worker host: the brokers services register with,
                                # every one of them; [] = this host's own broker
    curve_server_key = ""       # worker host: the brokers' public key (broker.key)
    curve_client_secret = ""    # worker host: its own .key_secret (its .key is in
                                # every gateway host's curve_clients_dir)

    [redis]
    url = ""                    # "" = a private redis-server on a unix socket in run_dir,
                                # started only when some service declares queues
    appendonly = true           # the private server keeps an append-only file in run_dir,
                                # so a crash (kill -9) of it loses no acknowledged job
                                # beyond what appendfsync allows; false = memory only
    appendfsync = "everysec"    # "everysec": fsync once a second, a crash of the machine
                                # can lose up to ~1 s of acknowledged writes; "always":
                                # fsync every write, loses none, costs throughput; "no":
                                # leave it to the kernel (~30 s on Linux). A kill -9 of
                                # redis-server alone (the machine stays up) loses nothing
                                # unless a slow disk made Redis postpone a write

    [http]                      # options of the HTTP front, checked by gateway.http:
                                # limits = {max_body = ..., timeout = ...}, trusted_proxies,
                                # via, preserve_host, contracts_dir, retry_after, pool_size
    # allowed_hosts = ["example.com", "*.example.com"]   # Host names the front answers
                                # (port ignored; "*." = any subdomain); others get 400
                                # host_not_allowed on every route and /_gateway/ (but
                                # /_gateway/health), against DNS rebinding; [] = any
    limits.client_header_timeout = 10.0   # s to send a whole request head: 408, close
    limits.client_body_timeout = 30.0     # s between two body reads: 408 (or close)
    limits.max_connections_per_client = 1024  # per client address, per front (0 = no cap);
                                # each of the N workers allows ceil(cap / N): 429, close
    access_log = ""             # "" = <run_dir>/logs/access.log, "-" = the front's stdout,
                                # "off", or a path (relative to the config file's dir)
    access_log_format = "combined"  # nginx combined + the gateway's fields, or "json"
    broker_link = "auto"        # wsgi fast path to the broker: "zmtp" (ZMTP from the event
                                # loop), "libzmq", or "auto" (zmtp for ipc/loopback tcp)

    [[routes]]                  # matched by longest prefix
    prefix = "/api/highlight"
    backend = "rpc"             # "rpc" | "wsgi" (service over the broker),
                                # "http" (target = base URL), "static" (target = directory),
                                # "redirect" (target = new URL or path prefix)
    service = "highlight"       # rpc / wsgi: a [services.<name>] or any broker service;
                                # http: the supervised service behind target (optional),
                                # so the route answers 503 at once while it is FATAL
    target = ""                 # http: base URL; static: directory; redirect: where to
    status = 308                # redirect: 301, 302, 307 or 308
    timeout_ms = 10000          # wsgi / rpc: the deadline; for a streamed wsgi reply it
                                # bounds the wait for the response head only
    idle_timeout_ms = 60000     # wsgi: the longest gap between two parts of a streamed
                                # reply (as nginx's proxy_read_timeout)
    strip_prefix = false        # http: forward the path below the mount
    rewrite_redirects = false   # http (default: = strip_prefix): put the mount back into
                                # the upstream's Location, Content-Location and Refresh
                                # (an absolute path, or a URL at the upstream's origin or
                                # at the Host it was sent), like nginx proxy_redirect default
    rewrite_cookie_path = false # http (default: = strip_prefix): put the mount back into
                                # Set-Cookie Path, like nginx proxy_cookie_path
    max_concurrency = 0         # admission control (0 = none): requests in progress at
                                # once per front worker, per service behind the route
                                # (per route for http/static); beyond it a request waits
    queue_timeout_ms = 0        # ... this long for a slot, then 503 + Retry-After, before
                                # anything reaches the broker or the upstream

    [services.highlight]
    runtime = "py2"             # "py2" | "py3" | a [runtimes] name | "command"
    module = "py2_services.highlight:TABLE"   # py2/py3: hosted by protocol.worker
    app = ""                    # py2/py3: a WSGI app hosted by protocol.wsgi
    command = []                # runtime = "command": argv (list) or a shell-split string;
                                # "{fd}" and "{port}" expand to the service's socket
    replicas = 1
    ready = "broker"            # "broker" (mmi.service answers 200), "http:URL",
                                # "tcp:HOST:PORT", or "none"; default "broker" for
                                # module/app services, "none" for commands
    listen = ""                 # optional arbiter-owned socket passed to every replica
    queues = []                 # Redis queues it consumes (turns on the private redis)
    env = {}                    # extra environment; env.PYTHONPATH is put in front of
                                # what the gateway sets (the protocol library, the
                                # config's dir), it does not replace it
    cwd = ""                    # working directory ("" = the config file's dir)
    untyped = false             # rpc: no contract on purpose; /rpc passes its JSON as is
                                # and `gateway check` does not warn about it
    stop_grace_s = 0.0          # 0 = [gateway].stop_grace_s
    start_limit_burst = 5       # this many starts within start_limit_interval_s -> FATAL
    start_limit_interval_s = 10.0
    ready_timeout_s = 0.0       # 0 = [gateway].ready_timeout_s

    [metrics]
    enabled = true              # count requests; serve /_gateway/metrics (README)

    [tracing]
    otlp_endpoint = ""          # an OTLP/HTTP traces URL: one span per request (README)

    [migration]                 # the admin API and the migration store; and one
    [migrations.legacy]         # table per migrated route or RPC method: see
                                # gateway.migration.config for every key
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway import hosts
from gateway.errors import ConfigError
from gateway.metrics.config import check_keys as check_observability
from gateway.migration.config import MigrationSettings, parse_settings

RUNTIMES = ("py2", "py3", "command")
# The one list of backend names; gateway.http.backends has a module for each.
BACKENDS = ("rpc", "wsgi", "http", "static", "redirect")
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
    role: str = "all"  # gateway.hosts.ROLES; `gateway up --role` overrides it


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
    # Several hosts (SPEC 2.15), parsed and checked by gateway.hosts.
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
class Route:
    """One ``[[routes]]`` entry: a path prefix and the backend that serves it."""

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
            "routes": [asdict(r) for r in self.routes],
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


def parse(text: str, base_dir: str = "", source: str = "<config>") -> GatewayConfig:
    """Parse and validate TOML ``text``; relative paths resolve against ``base_dir``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    return from_dict(data, base_dir=base_dir)


def from_dict(data: Mapping[str, Any], base_dir: str = "",
              source: str = "<config>") -> GatewayConfig:
    """Validate a TOML-shaped mapping (as from :meth:`GatewayConfig.to_dict`)."""
    if not isinstance(data, Mapping):  # e.g. a JSON file holding an array
        raise ConfigError(f"{source}: the config must be a table (a JSON object), "
                          f"got {type(data).__name__}")
    # The arbiter's resolved config carries its base_dir; a TOML file's is its directory.
    base_dir = os.path.abspath(str(data.get("base_dir") or base_dir or os.getcwd()))
    _keys(data, "", {"gateway", "runtimes", "broker", "redis", "routes", "services", "http",
                     "base_dir", "migration", "migrations", "metrics", "tracing"})
    front = _front(_table(data, "gateway"), base_dir)
    runtimes = _runtimes(_table(data, "runtimes"), base_dir)
    broker = _broker(_table(data, "broker"), front.run_dir, base_dir)
    redis_t = _table(data, "redis")
    _keys(redis_t, "redis", {"url", "appendonly", "appendfsync"})
    redis = RedisConfig(url=_str(redis_t, "redis", "url", ""),
                        appendonly=_bool(redis_t, "redis", "appendonly", True),
                        appendfsync=_choice(redis_t, "redis", "appendfsync", "everysec",
                                            ("everysec", "always", "no")))
    services_t = _table(data, "services")
    services = tuple(_service(name, _table(services_t, name, "services"), base_dir,
                              runtimes.names())
                     for name in sorted(services_t))
    raw_routes = data.get("routes", [])
    if not isinstance(raw_routes, list):
        raise ConfigError("routes: must be an array of tables ([[routes]])")
    routes = tuple(_route(i, r, services, base_dir) for i, r in enumerate(raw_routes))
    seen: set[str] = set()
    for i, r in enumerate(routes):
        if r.prefix in seen:
            raise ConfigError(f"routes[{i}].prefix: duplicate prefix {r.prefix!r}")
        seen.add(r.prefix)
    http = _table(data, "http")
    _keys(http, "http", HTTP_KEYS)
    migration = _table(data, "migration")
    migrations = _table(data, "migrations")
    cfg = GatewayConfig(front, runtimes, broker, redis, routes, services, base_dir, dict(http),
                        dict(migration), {k: dict(v) if isinstance(v, Mapping) else v
                                          for k, v in migrations.items()},
                        dict(_table(data, "metrics")), dict(_table(data, "tracing")))
    _check_migrations(cfg)
    check_observability(cfg.http, cfg.metrics, cfg.tracing)
    return cfg


def _check_migrations(cfg: GatewayConfig) -> None:
    """Each migration names a migratable route (wsgi, http) or an rpc route's method."""
    settings = cfg.migration_settings
    routes = {r.prefix.rstrip("/") or "/": r for r in cfg.routes}
    names = {s.name: s for s in cfg.services}
    for m in settings.migrations:
        p = f"migrations.{m.name}"
        if m.kind == "route":
            route = routes.get(m.route)
            if route is None:
                raise ConfigError(f"{p}.route: no [[routes]] entry has prefix {m.route!r}")
            if route.backend not in ("wsgi", "http"):
                raise ConfigError(f"{p}.route: only wsgi and http routes migrate; "
                                  f"{m.route!r} is {route.backend}")
            if route.backend == "http" and not m.py3.startswith(("http://", "https://")):
                raise ConfigError(f"{p}.py3: the port of an http route is a URL")
            svc = names.get(m.py3)
            if route.backend == "wsgi" and svc is not None and svc.kind != "wsgi":
                raise ConfigError(f"{p}.py3: service {m.py3!r} is not a wsgi service")
        elif m.kind == "service":
            # The broker splits calls by name: both sides must speak the same kind.
            old, new = names.get(m.service), names.get(m.py3)
            if old is not None and new is not None and old.kind != new.kind:
                raise ConfigError(f"{p}.py3: service {m.py3!r} is a {new.kind} service, "
                                  f"{m.service!r} a {old.kind} one")
        else:
            if not any(r.backend == "rpc" for r in cfg.routes):
                raise ConfigError(f"{p}.rpc: there is no rpc route to migrate behind")
            svc = names.get(m.py3)
            if svc is not None and svc.kind != "rpc":
                raise ConfigError(f"{p}.py3: service {m.py3!r} is not an rpc service")


def parse_listen(value: str, where: str) -> tuple[str, int] | str:
    """``"HOST:PORT"`` -> ``(host, port)``; ``"unix:/path"`` -> ``"/path"``."""
    if value.startswith("unix:"):
        path = value[5:]
        if not path:
            raise ConfigError(f"{where}: empty unix socket path")
        return path
    host, sep, port_s = value.rpartition(":")
    host = host.strip("[]")
    # isdigit() alone accepts any Unicode digit ("８０" or "٨٠"): ports are ASCII.
    if (not sep or not host or not (port_s.isascii() and port_s.isdigit())
            or not 0 <= int(port_s) <= 65535):
        raise ConfigError(f"{where}: expected HOST:PORT or unix:/path, got {value!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConfigError(f"{where}: host must be an IP address, got {host!r}") from None
    return host, int(port_s)


# -- helpers: each names the key it checks --------------------------------------------------


def _path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _keys(table: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{_path(prefix, key)}: unknown key")


def _table(data: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{_path(prefix, key)}: must be a table")
    return value


def _str(t: Mapping[str, Any], prefix: str, key: str, default: str) -> str:
    value = t.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{_path(prefix, key)}: must be a string")
    return value


def _int(t: Mapping[str, Any], prefix: str, key: str, default: int, minimum: int) -> int:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{_path(prefix, key)}: must be an integer")
    if value < minimum:
        raise ConfigError(f"{_path(prefix, key)}: must be >= {minimum}")
    return value


def _float(t: Mapping[str, Any], prefix: str, key: str, default: float, minimum: float) -> float:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{_path(prefix, key)}: must be a number")
    if value < minimum:
        raise ConfigError(f"{_path(prefix, key)}: must be >= {minimum}")
    return float(value)


def _bool(t: Mapping[str, Any], prefix: str, key: str, default: bool) -> bool:
    value = t.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{_path(prefix, key)}: must be true or false")
    return value


def _choice(t: Mapping[str, Any], prefix: str, key: str, default: str,
            choices: tuple[str, ...]) -> str:
    value = _str(t, prefix, key, default)
    if value not in choices:
        raise ConfigError(f"{_path(prefix, key)}: must be one of {', '.join(choices)}")
    return value


def _strlist(t: Mapping[str, Any], prefix: str, key: str) -> tuple[str, ...]:
    value = t.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{_path(prefix, key)}: must be a list of strings")
    return tuple(value)


def _abspath(path: str, base_dir: str) -> str:
    return path if not path or os.path.isabs(path) else os.path.normpath(
        os.path.join(base_dir, path))


def _front(t: Mapping[str, Any], base_dir: str) -> FrontConfig:
    p = "gateway"
    _keys(t, p, {"listen", "workers", "threads", "run_dir", "log_format", "stop_grace_s",
                 "front", "ready_timeout_s", "role"})
    listen = _str(t, p, "listen", FrontConfig.listen)
    parse_listen(listen, "gateway.listen")
    run_dir = _str(t, p, "run_dir", FrontConfig.run_dir)
    if not run_dir:
        raise ConfigError("gateway.run_dir: must not be empty")
    return FrontConfig(
        listen=listen,
        workers=_int(t, p, "workers", FrontConfig.workers, 1),
        threads=_int(t, p, "threads", FrontConfig.threads, 1),
        run_dir=_abspath(run_dir, base_dir),
        log_format=_choice(t, p, "log_format", FrontConfig.log_format, LOG_FORMATS),
        stop_grace_s=_float(t, p, "stop_grace_s", FrontConfig.stop_grace_s, 0.0),
        front=_bool(t, p, "front", True),
        ready_timeout_s=_float(t, p, "ready_timeout_s", FrontConfig.ready_timeout_s, 0.1),
        role=_choice(t, p, "role", FrontConfig.role, hosts.ROLES),
    )


def _runtimes(t: Mapping[str, Any], base_dir: str) -> RuntimesConfig:
    py2 = _str(t, "runtimes", "py2", RuntimesConfig.py2)
    py3 = _str(t, "runtimes", "py3", RuntimesConfig.py3)
    if not py2:
        raise ConfigError("runtimes.py2: must not be empty")
    named: dict[str, str] = {}
    for name in t:
        if name in ("py2", "py3"):
            continue
        p = f"runtimes.{name}"
        if name == "command" or not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ConfigError(f"{p}: runtime names use letters, digits, '-', '_', '.' "
                              f"and are not 'command'")
        value = _str(t, "runtimes", name, "")
        if not value:
            raise ConfigError(f"{p}: must be the path of a Python interpreter")
        # A bare name ("python3.12") is looked up on PATH when spawned; a path with a
        # slash is relative to the config file.
        named[name] = _abspath(value, base_dir) if "/" in value else value
    return RuntimesConfig(py2=_abspath(py2, base_dir), py3=_abspath(py3, base_dir),
                          named=named)


def _endpoint(value: str, where: str, allow_tcp: bool = False) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("ipc", "tcp", "inproc"):
        raise ConfigError(f"{where}: expected ipc://PATH or tcp://HOST:PORT, got {value!r}")
    if scheme == "tcp":
        host = rest.rpartition(":")[0].strip("[]")
        if host not in ("127.0.0.1", "::1", "localhost"):
            # DESIGN: binding a non-loopback address needs CURVE keys, not supported here.
            raise ConfigError(f"{where}: tcp endpoints must be loopback, got {host!r}")
        if not allow_tcp:
            # Without CURVE a loopback port is open to every local user: a rogue READY
            # would get a share of a service's traffic, cookies included. ipc:// in the
            # run dir (0700) admits only the estate's own user.
            raise ConfigError(
                f"{where}: a tcp:// endpoint has no CURVE authentication, so any local "
                f"user could register as a worker; use ipc:// (the default) or set "
                f"broker.allow_insecure_tcp = true")
    return value


# [broker] keys that bound the broker's memory; each is a --max-* flag of both brokers.
LIMITS = ("max_deadline_ms", "max_queued", "max_queued_total", "max_queued_bytes",
          "max_queued_bytes_total")


def _broker(t: Mapping[str, Any], run_dir: str, base_dir: str) -> BrokerConfig:
    p = "broker"
    _keys(t, p, {"endpoint", "heartbeat_ms", "events_pub", "events_sub", "enabled",
                 "implementation", "startup_grace_ms", "allow_insecure_tcp", *LIMITS,
                 *OUTLIER, *hosts.KEYS})
    allow_tcp = _bool(t, p, "allow_insecure_tcp", False)

    def ep(key: str, default_name: str) -> str:
        value = _str(t, p, key, "")
        if not value:
            return "ipc://" + os.path.join(run_dir, default_name)
        return _endpoint(value, f"{p}.{key}", allow_tcp)

    limits: dict[str, Any] = {key: _int(t, p, key, getattr(BrokerConfig, key), 1)
                              for key in LIMITS}
    broker = BrokerConfig(
        endpoint=ep("endpoint", "broker.ipc"),
        heartbeat_ms=_int(t, p, "heartbeat_ms", BrokerConfig.heartbeat_ms, 10),
        events_pub=ep("events_pub", "events-in.ipc"),
        events_sub=ep("events_sub", "events-out.ipc"),
        enabled=_bool(t, p, "enabled", True),
        implementation=_choice(t, p, "implementation", BrokerConfig.implementation,
                               ("native", "python")),
        startup_grace_ms=_int(t, p, "startup_grace_ms", BrokerConfig.startup_grace_ms, 0),
        allow_insecure_tcp=allow_tcp,
        **limits,
        **_outlier(t, p),
        **hosts.parse(t, base_dir),
    )
    return broker


# [broker] keys of outlier ejection; each is an --outlier-* flag of both brokers.
OUTLIER = ("outlier_consecutive", "outlier_base_ejection_ms", "outlier_max_ejection_ms",
           "outlier_max_ejection_percent", "outlier_count_errors")


def _outlier(t: Mapping[str, Any], p: str) -> dict[str, Any]:
    percent = _int(t, p, "outlier_max_ejection_percent",
                   BrokerConfig.outlier_max_ejection_percent, 0)
    if percent > 100:
        raise ConfigError(f"{p}.outlier_max_ejection_percent: must be <= 100")
    return {"outlier_consecutive": _int(t, p, "outlier_consecutive",
                                        BrokerConfig.outlier_consecutive, 0),
            "outlier_base_ejection_ms": _int(t, p, "outlier_base_ejection_ms",
                                             BrokerConfig.outlier_base_ejection_ms, 1),
            "outlier_max_ejection_ms": _int(t, p, "outlier_max_ejection_ms",
                                            BrokerConfig.outlier_max_ejection_ms, 1),
            "outlier_max_ejection_percent": percent,
            "outlier_count_errors": _bool(t, p, "outlier_count_errors", False)}


def _service(name: str, t: Mapping[str, Any], base_dir: str,
             runtimes: tuple[str, ...] = ("py2", "py3")) -> ServiceConfig:
    p = f"services.{name}"
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("mmi."):
        raise ConfigError(f"{p}: service names use letters, digits, '-', '_', '.'")
    if name in RESERVED:
        raise ConfigError(f"{p}: {name!r} is reserved for the gateway's own processes")
    _keys(t, p, {"runtime", "module", "app", "command", "replicas", "ready", "listen",
                 "queues", "env", "cwd", "stop_grace_s", "start_limit_burst",
                 "start_limit_interval_s", "untyped", "ready_timeout_s"})
    runtime = _choice(t, p, "runtime", "py3", (*runtimes, "command"))
    module = _str(t, p, "module", "")
    app = _str(t, p, "app", "")
    raw_cmd = t.get("command", [])
    if isinstance(raw_cmd, str):
        command = tuple(shlex.split(raw_cmd))
    else:
        command = _strlist(t, p, "command")
    if runtime == "command":
        if not command:
            raise ConfigError(f"{p}.command: required when runtime = \"command\"")
        if module or app:
            raise ConfigError(f"{p}.module: only for Python runtimes, not command")
    else:
        if command:
            raise ConfigError(f"{p}.command: only for runtime = \"command\"")
        if bool(module) == bool(app):
            raise ConfigError(f"{p}.module: give exactly one of module or app")
        spec = module or app
        if ":" not in spec or not all(spec.partition(":")[::2]):
            key = "module" if module else "app"
            raise ConfigError(f"{p}.{key}: expected 'package.module:NAME', got {spec!r}")
    ready = _str(t, p, "ready", "none" if runtime == "command" else "broker")
    if not (ready in ("broker", "none") or ready.startswith(("http:", "tcp:"))):
        raise ConfigError(f"{p}.ready: must be broker, none, http:URL or tcp:HOST:PORT")
    if ready.startswith("tcp:"):
        parse_listen(ready[4:], f"{p}.ready")
    if ready.startswith("http:") and not ready[5:].startswith(("http://", "https://")):
        raise ConfigError(f"{p}.ready: expected http:http://HOST:PORT/PATH, got {ready!r}")
    listen = _str(t, p, "listen", "")
    if listen:
        parse_listen(listen, f"{p}.listen")
    env = _table(t, "env", p)
    for key, value in env.items():
        if not isinstance(value, str):
            raise ConfigError(f"{p}.env.{key}: must be a string")
    cwd = _abspath(_str(t, p, "cwd", ""), base_dir) or base_dir
    untyped = _bool(t, p, "untyped", False)
    if untyped and not module:
        raise ConfigError(f"{p}.untyped: only an rpc service (module = ...) has a contract")
    return ServiceConfig(
        name=name, runtime=runtime, module=module, app=app, command=command,
        replicas=_int(t, p, "replicas", 1, 1), ready=ready, listen=listen,
        queues=_strlist(t, p, "queues"), env=dict(env), cwd=cwd,
        stop_grace_s=_float(t, p, "stop_grace_s", 0.0, 0.0),
        start_limit_burst=_int(t, p, "start_limit_burst", 5, 1),
        start_limit_interval_s=_float(t, p, "start_limit_interval_s", 10.0, 0.0),
        untyped=untyped,
        ready_timeout_s=_float(t, p, "ready_timeout_s", 0.0, 0.0),
    )


def _route(i: int, r: Any, services: tuple[ServiceConfig, ...], base_dir: str) -> Route:
    p = f"routes[{i}]"
    if not isinstance(r, Mapping):
        raise ConfigError(f"{p}: must be a table")
    _keys(r, p, {"prefix", "backend", "service", "target", "timeout_ms", "strip_prefix",
                 "rewrite_redirects", "rewrite_cookie_path", "idle_timeout_ms",
                 "max_concurrency", "queue_timeout_ms", "status"})
    prefix = _str(r, p, "prefix", "")
    if not prefix.startswith("/"):
        raise ConfigError(f"{p}.prefix: must start with '/'")
    backend = _str(r, p, "backend", "")
    if backend not in BACKENDS:
        raise ConfigError(f"{p}.backend: must be one of {', '.join(BACKENDS)}")
    service = _str(r, p, "service", "")
    target = _str(r, p, "target", "")
    if backend in ("rpc", "wsgi"):
        if not service and backend == "wsgi":
            raise ConfigError(f"{p}.service: required for backend = 'wsgi'")
        names = {s.name: s for s in services}
        svc = names.get(service)
        if svc is not None and svc.runtime != "command" and svc.kind != backend:
            raise ConfigError(
                f"{p}.backend: service {service!r} is a {svc.kind} service, not {backend}")
    elif backend == "http":
        if not target.startswith(("http://", "https://")):
            raise ConfigError(f"{p}.target: expected an http:// URL for backend = 'http'")
    elif backend == "redirect":
        # Its form and status are the redirect backend's to check (gateway.http.backends).
        if not target:
            raise ConfigError(f"{p}.target: a URL or path is required for backend = 'redirect'")
    else:
        if not target:
            raise ConfigError(f"{p}.target: a directory is required for backend = 'static'")
        target = _abspath(target, base_dir)
    strip = _bool(r, p, "strip_prefix", False)
    rewrites = {k: _bool(r, p, k, strip) for k in ("rewrite_redirects", "rewrite_cookie_path")}
    for key, on in rewrites.items():
        if on and backend != "http":
            raise ConfigError(f"{p}.{key}: only the http backend rewrites upstream URLs")
    if r.get("status", 0) and backend != "redirect":
        raise ConfigError(f"{p}.status: only the redirect backend has a status")
    return Route(prefix=prefix, backend=backend, service=service, target=target,
                 status=_int(r, p, "status", 0, 0),
                 timeout_ms=_int(r, p, "timeout_ms", 10000, 1), strip_prefix=strip,
                 idle_timeout_ms=_int(r, p, "idle_timeout_ms", 60000, 1),
                 max_concurrency=_int(r, p, "max_concurrency", 0, 0),
                 queue_timeout_ms=_int(r, p, "queue_timeout_ms", 0, 0), **rewrites)
