"""From config to programs: what to run, in which order, and how to tell it is ready.

A *program* is one supervised unit with N identical replicas: the broker, the
HTTP front (one master process that owns its ``[gateway] workers`` processes), the private
redis-server, and each ``[services.<name>]``. Dependency order is
broker -> HTTP front -> redis -> services; a program starts once every program
it ``needs`` has been ready once::

    programs = build(config, python3="/usr/bin/python3")
    [p.name for p in programs]      # ["broker", "http", "redis", "highlight", ...]

Argv may contain ``{fd}`` and ``{port}``: the arbiter substitutes the descriptor
and port of the program's own listening socket when it spawns a replica.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace

from gateway.config import GatewayConfig, ServiceConfig, hosts
from gateway.errors import ConfigError

# The checkout holding gateway/ and protocol/: children import both from here.
CODE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The compiled broker, built from gateway/broker/native by scripts/bootstrap.sh.
NATIVE_BROKER = os.path.join(CODE_ROOT, "build", "gateway-broker")


@dataclass(frozen=True)
class Program:
    """One supervised unit: its argv, environment, replica count and policies."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"
    replicas: int = 1
    ready: str = "none"  # see gateway.arbiter.ready.make_check, plus "notify", "broker-up"
    runtime: str = "command"  # "py2" | "py3" | a [runtimes] name | "command" | "infra"
    interpreter: str = ""  # the Python that runs it, for status
    needs: tuple[str, ...] = ()
    listen: str = ""  # an arbiter-owned socket handed to every replica
    grace: float = 10.0
    burst: int = 5
    interval: float = 10.0
    infra: bool = False
    service: str = ""  # the broker service it serves, if any
    front_processes: int = 0  # the front's processes to wait for ("notify" readiness)
    ready_timeout: float = 60.0  # killed if not ready this long after its start

    @property
    def signature(self) -> str:
        """A digest of everything that, when changed, needs new replicas."""
        doc = [self.argv, sorted(self.env.items()), self.cwd, self.replicas, self.ready,
               self.listen]
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]


def python_env(config: GatewayConfig) -> dict[str, str]:
    """The environment every Python child gets: the repo importable, unbuffered output."""
    path = CODE_ROOT if config.base_dir == CODE_ROOT else f"{CODE_ROOT}:{config.base_dir}"
    return {"PYTHONPATH": path, "PYTHONUNBUFFERED": "1",
            "GATEWAY_BROKER": hosts.service_brokers(config), "GATEWAY_REDIS_URL": config.redis_url,
            **hosts.curve_env(config)}


def service_env(config: GatewayConfig, svc: ServiceConfig) -> dict[str, str]:
    """A service's environment: :func:`python_env`, then its own ``env``.

    Its ``env.PYTHONPATH`` goes in front of the gateway's entries instead of
    replacing them: a service that brings its own packages still finds the
    ``protocol`` library its worker host needs. Relative entries are relative to
    the config file's directory, like every other path in the config.
    """
    env = python_env(config) | {"GATEWAY_SERVICE": svc.name} | dict(svc.env)
    own = svc.env.get("PYTHONPATH", "")
    if own:
        entries = [e if os.path.isabs(e) else os.path.normpath(os.path.join(config.base_dir, e))
                   for e in own.split(":") if e]
        env["PYTHONPATH"] = ":".join([*entries, python_env(config)["PYTHONPATH"]])
    return env


def effective_config_path(config: GatewayConfig) -> str:
    """Where the arbiter writes the resolved config for its children (JSON)."""
    return os.path.join(config.gateway.run_dir, "config.json")


def require_broker(config: GatewayConfig) -> None:
    """Refuse a configuration whose broker cannot run: the compiled one is not built."""
    b = config.broker
    if b.enabled and b.implementation == "native" and not os.access(NATIVE_BROKER, os.X_OK):
        raise ConfigError(
            f"broker.implementation: the compiled broker {NATIVE_BROKER} is not built; "
            "run `make setup` (scripts/bootstrap.sh) to build it, or set "
            'implementation = "python" in [broker]')


def broker_program(config: GatewayConfig, python3: str) -> Program:
    """The MDP broker: ``build/gateway-broker``, or ``python -m gateway.broker``.

    Both take the same arguments and behave the same (one conformance suite runs
    against both); ``[broker] implementation`` chooses.
    """
    b = config.broker
    require_broker(config)
    args = (*hosts.broker_binds(config), "--heartbeat-ms", str(b.heartbeat_ms),
            "--events-pub", b.events_pub, "--events-sub", b.events_sub,
            "--startup-grace-ms", str(b.startup_grace_ms),
            "--max-deadline-ms", str(b.max_deadline_ms), "--max-queued", str(b.max_queued),
            "--max-queued-total", str(b.max_queued_total),
            "--max-queued-bytes", str(b.max_queued_bytes),
            "--max-queued-bytes-total", str(b.max_queued_bytes_total),
            "--outlier-consecutive", str(b.outlier_consecutive),
            "--outlier-base-ejection-ms", str(b.outlier_base_ejection_ms),
            "--outlier-max-ejection-ms", str(b.outlier_max_ejection_ms),
            "--outlier-max-ejection-percent", str(b.outlier_max_ejection_percent),
            # Service migrations: the front writes this file and pokes mmi.split (SPEC 2.14);
            # the comparer subscribes to the shadow pairs.
            "--splits", config.migration_settings.splits_file,
            "--shadow-pub", config.migration_settings.pairs_endpoint,
            *(("--outlier-count-errors",) if b.outlier_count_errors else ()))
    if b.implementation == "native":
        head: tuple[str, ...] = (NATIVE_BROKER,)
        interpreter = ""
    else:
        head, interpreter = (python3, "-m", "gateway.broker"), python3
    return Program("broker", head + args, python_env(config), config.base_dir, 1, "broker-up",
                   "infra", interpreter, (), "", config.gateway.stop_grace_s, infra=True,
                   ready_timeout=config.gateway.ready_timeout_s)


def http_program(config: GatewayConfig, python3: str) -> Program:
    """The HTTP front (uvicorn workers) serving the arbiter's socket, passed as ``--fd {fd}``."""
    g = config.gateway
    argv = (python3, "-m", "gateway", "front", "--fd", "{fd}")
    # Routes and [http] reach the front through the config file, not argv: the digest makes
    # a change of them a change of the program, so a reload rolls the front.
    # [migration] and [migrations.*] too: the front reads them when it starts, so a reload
    # that changes a migration (a new one, its thresholds, ignore_pointers) rolls it.
    front_doc = {k: v for k, v in config.to_dict().items()
                 if k in ("gateway", "routes", "http", "migration", "migrations")}
    digest = hashlib.sha256(json.dumps(front_doc, sort_keys=True).encode()).hexdigest()[:16]
    env = python_env(config) | {"GATEWAY_CONFIG": effective_config_path(config),
                                "GATEWAY_FRONT_DIGEST": digest}
    return Program("http", argv, env, config.base_dir, 1, "notify", "infra", python3,
                   ("broker",), g.listen, g.stop_grace_s, infra=True, front_processes=g.workers,
                   ready_timeout=g.ready_timeout_s)


def comparer_program(config: GatewayConfig, python3: str) -> Program:
    """The comparer of service migrations' shadow pairs (gateway.migration.comparer)."""
    # Like the front, it reads the migrations when it starts: the digest rolls it on a
    # reload that changes them.
    doc = {k: v for k, v in config.to_dict().items() if k in ("migration", "migrations")}
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    env = python_env(config) | {"GATEWAY_CONFIG": effective_config_path(config),
                                "GATEWAY_COMPARER_DIGEST": digest}
    return Program("comparer", (python3, "-m", "gateway", "comparer"), env, config.base_dir, 1,
                   "none", "infra", python3, ("broker",), "", config.gateway.stop_grace_s,
                   infra=True, ready_timeout=config.gateway.ready_timeout_s)


def redis_program(config: GatewayConfig) -> Program:
    """A private redis-server on a unix socket in the run dir, no TCP port.

    It persists with an append-only file in the run dir (``[redis] appendonly``,
    ``appendfsync``; SPEC 8.7): the arbiter restarts a crashed server, which
    reloads the AOF, so jobs that were acknowledged (queued, or finished with a
    result) survive. No RDB snapshots: the AOF is the one source.
    """
    run = config.gateway.run_dir
    r = config.redis
    aof = ("--appendonly", "yes", "--appendfsync", r.appendfsync,
           "--appendfilename", "redis.aof") if r.appendonly else ("--appendonly", "no")
    argv = ("redis-server", "--port", "0", "--unixsocket", os.path.join(run, "redis.sock"),
            "--unixsocketperm", "700", "--dir", run, "--save", "", *aof,
            "--daemonize", "no", "--loglevel", "warning")
    return Program("redis", argv, {}, run, 1, "redis:" + os.path.join(run, "redis.sock"),
                   "infra", "", ("broker",), "", config.gateway.stop_grace_s, infra=True,
                   ready_timeout=config.gateway.ready_timeout_s)


def service_program(config: GatewayConfig, svc: ServiceConfig, python3: str) -> Program:
    """One ``[services.<name>]``: a protocol worker host, or any command."""
    needs = ("broker", "http") + (("redis",) if config.wants_private_redis else ())
    env = service_env(config, svc)
    if svc.runtime == "command":
        argv, interpreter = svc.command, ""
    else:
        interpreter = config.runtimes.interpreter(svc.runtime, python3)
        # `-m protocol <host>` imports the host module once (`-m protocol.worker` would
        # run a second copy of it beside the one the package import loaded).
        host = "worker" if svc.kind == "rpc" else "wsgi"
        argv = (interpreter, "-m", "protocol", host, "--broker", hosts.service_brokers(config),
                "--service", svc.name, svc.module or svc.app)
    return Program(svc.name, tuple(argv), env, svc.cwd or config.base_dir, svc.replicas,
                   svc.ready, svc.runtime, interpreter, needs, svc.listen,
                   svc.stop_grace_s or config.gateway.stop_grace_s, svc.start_limit_burst,
                   svc.start_limit_interval_s, service=svc.name,
                   ready_timeout=svc.ready_timeout_s or config.gateway.ready_timeout_s)


def build(config: GatewayConfig, python3: str) -> list[Program]:
    """Every program of the estate, in start order.

    ``python3`` is the gateway's own interpreter (the arbiter's ``sys.executable``).
    The broker and the HTTP front always run on it: ``[runtimes] py3`` may name a
    team's virtualenv that has none of the gateway's dependencies.
    """
    programs: list[Program] = []
    if config.broker.enabled:
        programs.append(broker_program(config, python3))
    if config.gateway.front:
        programs.append(http_program(config, python3))
    if config.broker.enabled and any(m.kind == "service"
                                     for m in config.migration_settings.migrations):
        programs.append(comparer_program(config, python3))
    if config.wants_private_redis:
        programs.append(redis_program(config))
    if config.gateway.role != "gateway":  # a gateway host's services run on worker hosts
        programs += [service_program(config, s, python3) for s in config.services]
    names = {p.name for p in programs}
    return [p if all(n in names for n in p.needs) else
            replace(p, needs=tuple(n for n in p.needs if n in names))
            for p in programs]
