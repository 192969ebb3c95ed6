"""Parsing and validating a whole config: TOML text or a TOML-shaped mapping in, one
:class:`~gateway.config.schema.GatewayConfig` out.

::

    cfg = parse(text, base_dir="/srv/gw")      # ConfigError names the offending key
    same = from_dict(cfg.to_dict())            # what the arbiter's children do

Each section's keys are checked by its own function here; ``[[routes]]`` by
:mod:`gateway.config.routes` (which asks the backend registry), ``[migration]``
and the observability keys by :mod:`gateway.config.sections`.
"""

from __future__ import annotations

import os
import shlex
import tomllib
from collections.abc import Mapping
from typing import Any

from gateway.config import hosts
from gateway.config.routes import parse_route
from gateway.config.schema import (
    HTTP_KEYS,
    LOG_FORMATS,
    RESERVED,
    BrokerConfig,
    FrontConfig,
    GatewayConfig,
    RedisConfig,
    RuntimesConfig,
    ServiceConfig,
)
from gateway.config.sections.metrics import check_keys as check_observability
from gateway.config.values import (
    abspath,
    boolean,
    choice,
    integer,
    known_keys,
    number,
    parse_listen,
    string,
    strlist,
    table,
)
from gateway.errors import ConfigError


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
    known_keys(data, "", {"gateway", "runtimes", "broker", "redis", "routes", "services", "http",
                     "base_dir", "migration", "migrations", "metrics", "tracing"})
    front = _front(table(data, "gateway"), base_dir)
    runtimes = _runtimes(table(data, "runtimes"), base_dir)
    broker = _broker(table(data, "broker"), front.run_dir, base_dir)
    redis_t = table(data, "redis")
    known_keys(redis_t, "redis", {"url", "appendonly", "appendfsync"})
    redis = RedisConfig(url=string(redis_t, "redis", "url", ""),
                        appendonly=boolean(redis_t, "redis", "appendonly", True),
                        appendfsync=choice(redis_t, "redis", "appendfsync", "everysec",
                                            ("everysec", "always", "no")))
    services_t = table(data, "services")
    services = tuple(_service(name, table(services_t, name, "services"), base_dir,
                              runtimes.names())
                     for name in sorted(services_t))
    raw_routes = data.get("routes", [])
    if not isinstance(raw_routes, list):
        raise ConfigError("routes: must be an array of tables ([[routes]])")
    kinds = {s.name: s.kind for s in services}
    routes = tuple(parse_route(i, r, kinds, base_dir) for i, r in enumerate(raw_routes))
    seen: set[str] = set()
    for i, r in enumerate(routes):
        if r.prefix in seen:
            raise ConfigError(f"routes[{i}].prefix: duplicate prefix {r.prefix!r}")
        seen.add(r.prefix)
    http = table(data, "http")
    known_keys(http, "http", HTTP_KEYS)
    migration = table(data, "migration")
    migrations = table(data, "migrations")
    cfg = GatewayConfig(front, runtimes, broker, redis, routes, services, base_dir, dict(http),
                        dict(migration), {k: dict(v) if isinstance(v, Mapping) else v
                                          for k, v in migrations.items()},
                        dict(table(data, "metrics")), dict(table(data, "tracing")))
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



def _front(t: Mapping[str, Any], base_dir: str) -> FrontConfig:
    p = "gateway"
    known_keys(t, p, {"listen", "workers", "threads", "run_dir", "log_format", "stop_grace_s",
                 "front", "ready_timeout_s", "role"})
    listen = string(t, p, "listen", FrontConfig.listen)
    parse_listen(listen, "gateway.listen")
    run_dir = string(t, p, "run_dir", FrontConfig.run_dir)
    if not run_dir:
        raise ConfigError("gateway.run_dir: must not be empty")
    return FrontConfig(
        listen=listen,
        workers=integer(t, p, "workers", FrontConfig.workers, 1),
        threads=integer(t, p, "threads", FrontConfig.threads, 1),
        run_dir=abspath(run_dir, base_dir),
        log_format=choice(t, p, "log_format", FrontConfig.log_format, LOG_FORMATS),
        stop_grace_s=number(t, p, "stop_grace_s", FrontConfig.stop_grace_s, 0.0),
        front=boolean(t, p, "front", True),
        ready_timeout_s=number(t, p, "ready_timeout_s", FrontConfig.ready_timeout_s, 0.1),
        role=choice(t, p, "role", FrontConfig.role, hosts.ROLES),
    )


def _runtimes(t: Mapping[str, Any], base_dir: str) -> RuntimesConfig:
    py2 = string(t, "runtimes", "py2", RuntimesConfig.py2)
    py3 = string(t, "runtimes", "py3", RuntimesConfig.py3)
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
        value = string(t, "runtimes", name, "")
        if not value:
            raise ConfigError(f"{p}: must be the path of a Python interpreter")
        # A bare name ("python3.12") is looked up on PATH when spawned; a path with a
        # slash is relative to the config file.
        named[name] = abspath(value, base_dir) if "/" in value else value
    return RuntimesConfig(py2=abspath(py2, base_dir), py3=abspath(py3, base_dir),
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
    known_keys(t, p, {"endpoint", "heartbeat_ms", "events_pub", "events_sub", "enabled",
                 "implementation", "startup_grace_ms", "allow_insecure_tcp", *LIMITS,
                 *OUTLIER, *hosts.KEYS})
    allow_tcp = boolean(t, p, "allow_insecure_tcp", False)

    def ep(key: str, default_name: str) -> str:
        value = string(t, p, key, "")
        if not value:
            return "ipc://" + os.path.join(run_dir, default_name)
        return _endpoint(value, f"{p}.{key}", allow_tcp)

    limits: dict[str, Any] = {key: integer(t, p, key, getattr(BrokerConfig, key), 1)
                              for key in LIMITS}
    broker = BrokerConfig(
        endpoint=ep("endpoint", "broker.ipc"),
        heartbeat_ms=integer(t, p, "heartbeat_ms", BrokerConfig.heartbeat_ms, 10),
        events_pub=ep("events_pub", "events-in.ipc"),
        events_sub=ep("events_sub", "events-out.ipc"),
        enabled=boolean(t, p, "enabled", True),
        implementation=choice(t, p, "implementation", BrokerConfig.implementation,
                               ("native", "python")),
        startup_grace_ms=integer(t, p, "startup_grace_ms", BrokerConfig.startup_grace_ms, 0),
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
    percent = integer(t, p, "outlier_max_ejection_percent",
                   BrokerConfig.outlier_max_ejection_percent, 0)
    if percent > 100:
        raise ConfigError(f"{p}.outlier_max_ejection_percent: must be <= 100")
    return {"outlier_consecutive": integer(t, p, "outlier_consecutive",
                                        BrokerConfig.outlier_consecutive, 0),
            "outlier_base_ejection_ms": integer(t, p, "outlier_base_ejection_ms",
                                             BrokerConfig.outlier_base_ejection_ms, 1),
            "outlier_max_ejection_ms": integer(t, p, "outlier_max_ejection_ms",
                                            BrokerConfig.outlier_max_ejection_ms, 1),
            "outlier_max_ejection_percent": percent,
            "outlier_count_errors": boolean(t, p, "outlier_count_errors", False)}


def _service(name: str, t: Mapping[str, Any], base_dir: str,
             runtimes: tuple[str, ...] = ("py2", "py3")) -> ServiceConfig:
    p = f"services.{name}"
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("mmi."):
        raise ConfigError(f"{p}: service names use letters, digits, '-', '_', '.'")
    if name in RESERVED:
        raise ConfigError(f"{p}: {name!r} is reserved for the gateway's own processes")
    known_keys(t, p, {"runtime", "module", "app", "command", "replicas", "ready", "listen",
                 "queues", "env", "cwd", "stop_grace_s", "start_limit_burst",
                 "start_limit_interval_s", "untyped", "ready_timeout_s"})
    runtime = choice(t, p, "runtime", "py3", (*runtimes, "command"))
    module = string(t, p, "module", "")
    app = string(t, p, "app", "")
    raw_cmd = t.get("command", [])
    if isinstance(raw_cmd, str):
        command = tuple(shlex.split(raw_cmd))
    else:
        command = strlist(t, p, "command")
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
    ready = string(t, p, "ready", "none" if runtime == "command" else "broker")
    if not (ready in ("broker", "none") or ready.startswith(("http:", "tcp:"))):
        raise ConfigError(f"{p}.ready: must be broker, none, http:URL or tcp:HOST:PORT")
    if ready.startswith("tcp:"):
        parse_listen(ready[4:], f"{p}.ready")
    if ready.startswith("http:") and not ready[5:].startswith(("http://", "https://")):
        raise ConfigError(f"{p}.ready: expected http:http://HOST:PORT/PATH, got {ready!r}")
    listen = string(t, p, "listen", "")
    if listen:
        parse_listen(listen, f"{p}.listen")
    env = table(t, "env", p)
    for key, value in env.items():
        if not isinstance(value, str):
            raise ConfigError(f"{p}.env.{key}: must be a string")
    cwd = abspath(string(t, p, "cwd", ""), base_dir) or base_dir
    untyped = boolean(t, p, "untyped", False)
    if untyped and not module:
        raise ConfigError(f"{p}.untyped: only an rpc service (module = ...) has a contract")
    return ServiceConfig(
        name=name, runtime=runtime, module=module, app=app, command=command,
        replicas=integer(t, p, "replicas", 1, 1), ready=ready, listen=listen,
        queues=strlist(t, p, "queues"), env=dict(env), cwd=cwd,
        stop_grace_s=number(t, p, "stop_grace_s", 0.0, 0.0),
        start_limit_burst=integer(t, p, "start_limit_burst", 5, 1),
        start_limit_interval_s=number(t, p, "start_limit_interval_s", 10.0, 0.0),
        untyped=untyped,
        ready_timeout_s=number(t, p, "ready_timeout_s", 0.0, 0.0),
    )
