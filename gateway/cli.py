"""The ``gateway`` command: the only module that reads argv, the environment and files.

::

    gateway up [-c gateway.toml] [--log-format json]   # run the estate in the foreground
    gateway status [--json]                            # ask the running arbiter
    gateway reload [SERVICE]                           # apply the changed config, no downtime
    gateway stop                                       # graceful stop
    gateway check                                      # validate the config; exit 1 on error
    gateway export systemd|supervisord [-o DIR]        # production configs
    gateway migrate status|shadow|canary|promote|rollback|report|... (gateway.migration.cli)

``-c`` defaults to ``./gateway.toml`` when it exists, else the embedded default
(:data:`gateway.config.DEFAULT_TOML`). ``python -m gateway ...`` is the same.
``gateway front --fd N`` is what the arbiter runs for the HTTP front; it reads
the arbiter's resolved config from ``$GATEWAY_CONFIG``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from gateway import config as gwconfig
from gateway.arbiter import control
from gateway.config import GatewayConfig
from gateway.errors import ConfigError, GatewayError

CHILD_ENV_DROP = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
                  "GATEWAY_CONFIG")


def config_path(given: str | None) -> str | None:
    """The config file to use: ``-c``, else ./gateway.toml if present, else None (embedded)."""
    if given:
        return os.path.abspath(given)
    return os.path.abspath("gateway.toml") if os.path.exists("gateway.toml") else None


def load_config(path: str | None) -> GatewayConfig:
    """Read and validate a TOML (or the arbiter's resolved JSON) config; None = embedded."""
    if path is None:
        return gwconfig.parse(gwconfig.DEFAULT_TOML, base_dir=os.getcwd(), source="<default>")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    base = os.path.dirname(os.path.abspath(path))
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path}: invalid JSON: {exc}") from None
        return gwconfig.from_dict(data, base_dir=base, source=path)
    return gwconfig.parse(text, base_dir=base, source=path)


# -- the HTTP front (run by the arbiter in its own process) --------------------------------------


def http_config(cfg: GatewayConfig) -> Any:
    """The HTTP front's own config (gateway.http.config.GatewayHttpConfig) from ours."""
    from gateway.http.config import GatewayHttpConfig

    routes = []
    for r in cfg.routes:
        route: dict[str, Any] = {"prefix": r.prefix, "backend": r.backend,
                                 "timeout": r.timeout_ms / 1000.0,
                                 "idle_timeout": r.idle_timeout_ms / 1000.0,
                                 "max_concurrency": r.max_concurrency,
                                 "queue_timeout": r.queue_timeout_ms / 1000.0}
        if r.backend == "http":
            route.update(upstream=r.target, strip_prefix=r.strip_prefix,
                         rewrite_redirects=r.rewrite_redirects,
                         rewrite_cookie_path=r.rewrite_cookie_path)
        elif r.backend == "static":
            route["directory"] = r.target
        elif r.backend == "wsgi":
            route["service"] = r.service
        routes.append(route)
    http = {k: v for k, v in cfg.http.items() if k not in gwconfig.FRONT_ONLY_HTTP_KEYS}
    return GatewayHttpConfig.from_dict(
        {"routes": routes, "broker": cfg.broker.endpoint, **http,
         "migration": cfg.migration_settings})


def cmd_front(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Run the HTTP front on an inherited socket; the arbiter starts this."""
    from gateway.arbiter.front import SupervisedFront
    from gateway.arbiter.sockets import systemd_fds

    if os.environ.get("GATEWAY_CONFIG"):
        cfg = load_config(os.environ["GATEWAY_CONFIG"])
    fds = systemd_fds(os.environ, os.getpid())
    for key in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)  # the front's workers must not see them as their own
    fd = args.fd if args.fd is not None else (fds[0] if fds else None)
    if fd is None:
        raise ConfigError("front: no socket: pass --fd N or start it socket-activated")
    return SupervisedFront(cfg, http_config(cfg), fd).run()


# -- commands -----------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Run the estate in the foreground until Ctrl-C."""
    from gateway.arbiter import Arbiter, LogSink
    from gateway.arbiter.plan import require_broker
    from gateway.arbiter.sockets import systemd_fds
    require_broker(cfg)  # before any socket or process exists
    fmt = args.log_format or cfg.gateway.log_format
    color = fmt == "text" and not args.no_color and sys.stdout.isatty() and \
        "NO_COLOR" not in os.environ
    sink = LogSink(sys.stdout, fmt=fmt, color=color)
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROP}
    arbiter = Arbiter(cfg, loader=lambda: load_config(path), python3=sys.executable,
                      sink=sink, inherited_fds=systemd_fds(os.environ, os.getpid()),
                      env=env, config_source=path or "<default>")
    return arbiter.run()


def registrations(status: dict[str, Any], timeout: float = 0.3) -> dict[str, str | None]:
    """mmi.service answers for every broker service in ``status`` (asked from here)."""
    import zmq

    from gateway.arbiter.ready import mmi_service

    out: dict[str, str | None] = {}
    endpoint = status["arbiter"]["broker"]
    for prog in status["programs"]:
        if prog["service"] and prog["runtime"] in ("py2", "py3"):
            try:
                out[prog["service"]] = mmi_service(endpoint, prog["service"], timeout)
            except zmq.ZMQError:
                out[prog["service"]] = None
    return out


def render_status(status: dict[str, Any]) -> str:
    """The human status table."""
    a = status["arbiter"]
    w = max([14] + [len(p["name"]) + 2 for p in status["programs"]])
    lines = [f"arbiter pid {a['pid']}  up {a['uptime_s']:.0f}s  guard {a['guard_pid']}  "
             f"config {a['config']}", f"listen {a['listen']}  broker {a['broker']}"]
    writes = a.get("write_errors") or {}
    if writes.get("total"):
        failing = ", ".join(writes["failing"]) or "none now"
        lines.append(f"write errors {writes['total']} (failing: {failing})")
    lines += ["",
             f"{'PROGRAM':<{w}}{'STATE':<10}{'RUNTIME':<22}{'READY':<7}{'BROKER':<8}"
             f"{'REPLICA':<10}{'PID':<9}{'UPTIME':<10}RESTARTS"]
    regs = status.get("registrations", {})
    for p in status["programs"]:
        runtime = p["runtime"] + (f" {p['version']}" if p["version"] else "")
        reg = regs.get(p["service"]) or "-"
        head = (f"{p['name']:<{w}}{p['state']:<10}{runtime:<22}"
                f"{p['ready']}/{p['replicas_wanted']:<5}{reg:<8}")
        reps = p["replicas"] or [None]
        for i, r in enumerate(reps):
            prefix = head if i == 0 else " " * len(head)
            if r is None:
                lines.append(prefix)
                continue
            up = f"{r['uptime_s']:.1f}s" if r["uptime_s"] is not None else "-"
            name = f".{r['index']}" + (f"@{r['generation']}" if r["generation"] else "")
            lines.append(f"{prefix}{name:<10}{r['pid'] or '-'!s:<9}{up:<10}{r['restarts']}"
                         f"  {r['state']}")
    if status["routes"]:
        lines += ["", f"{'ROUTE':<24}{'BACKEND':<9}{'SERVICE/TARGET':<32}STATE"]
        for r in status["routes"]:
            lines.append(f"{r['prefix']:<24}{r['backend']:<9}"
                         f"{(r['service'] or r['target']):<32}{r['state']}")
    if status.get("migrations"):
        lines += ["", f"{'MIGRATION':<24}{'TARGET':<24}STATE"]
        for name, m in sorted(status["migrations"].items()):
            lines.append(f"{name:<24}{m['target']:<24}{m['label']}")
    return "\n".join(lines)


def migration_states(cfg: GatewayConfig) -> dict[str, Any]:
    """Each configured migration's target and state, read from the store ({} before it exists)."""
    settings = cfg.migration_settings
    if not settings.migrations or not os.path.exists(settings.db):
        return {}
    from gateway.migration.store import MigrationStore, StoreError
    store = MigrationStore(settings.db)
    try:
        states = store.all()
    except StoreError:
        return {}
    finally:
        store.close()
    return {m.name: {"target": m.target, "label": states[m.name].to_json()["label"],
                     "mode": states[m.name].mode, "percent": states[m.name].percent}
            for m in settings.migrations if m.name in states}


def cmd_status(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Ask the running arbiter for its status."""
    status = control.call(cfg.control_socket, {"cmd": "status"}, timeout=args.timeout)
    status["registrations"] = registrations(status)
    status["migrations"] = migration_states(cfg)
    print(json.dumps(status, indent=2, sort_keys=True) if args.json else render_status(status))
    return 0


def cmd_reload(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Apply the config file to the running estate; waits until the rollout is done."""
    request: dict[str, Any] = {"cmd": "reload"}
    if args.service:
        request["service"] = args.service
    result = control.call(cfg.control_socket, request, timeout=args.timeout)
    changed = ", ".join(result.get("changed", [])) or "nothing changed"
    print(f"reloaded: {changed}")
    return 0


def cmd_stop(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Ask the running arbiter to stop gracefully."""
    control.call(cfg.control_socket, {"cmd": "stop"}, timeout=args.timeout)
    print("stopping")
    return 0


def cmd_check(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Validate the config beyond its schema: interpreters, broker, HTTP front, contracts."""
    from gateway.arbiter.plan import require_broker
    require_broker(cfg)
    for svc in cfg.services:
        if svc.runtime == "py2" and not os.path.exists(cfg.runtimes.py2):
            raise ConfigError(f"runtimes.py2: {cfg.runtimes.py2} does not exist "
                              f"(needed by services.{svc.name})")
    try:
        import gateway.http.config  # noqa: F401
    except ImportError:
        pass  # the front is not installed here; our own schema was checked
    else:
        http_config(cfg)
    contracts = str(cfg.http.get("contracts_dir", ""))
    if contracts:
        check_contracts(os.path.join(cfg.base_dir, contracts))
    print(f"ok: {path or '<default>'}: {len(cfg.services)} services, {len(cfg.routes)} routes, "
          f"{len(cfg.migration_settings.migrations)} migrations")
    return 0


def check_contracts(directory: str) -> None:
    """Every service contract in ``directory`` must load (protocol.contract checks it)."""
    from protocol import contract

    if not os.path.isdir(directory):
        raise ConfigError(f"http.contracts_dir: {directory} is not a directory")
    for name in contract.available(directory):
        try:
            contract.load(name, directory=directory)
        except contract.ContractError as exc:
            raise ConfigError(f"http.contracts_dir: {exc}") from None


def cmd_export(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Write systemd units or a supervisord config for this estate."""
    from gateway.arbiter import export

    outdir = os.path.abspath(args.output or cfg.gateway.run_dir)
    files = export.export(args.kind, cfg, python3=sys.executable, outdir=outdir,
                          user=args.user)
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        for name, text in files.items():
            with open(os.path.join(args.output, name), "w", encoding="utf-8") as fh:
                fh.write(text)
            print(os.path.join(args.output, name))
    else:
        for name, text in files.items():
            print(f"# --- {name}\n{text}")
    return 0


def cmd_migrate(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Drive migrations through the running front's admin API."""
    from gateway.migration import cli as migrate_cli
    return migrate_cli.run(args, cfg)


COMMANDS = {"up": cmd_up, "status": cmd_status, "reload": cmd_reload, "stop": cmd_stop,
            "check": cmd_check, "export": cmd_export, "front": cmd_front,
            "migrate": cmd_migrate}


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``gateway``."""
    p = argparse.ArgumentParser(prog="gateway", description=__doc__.split("\n")[0])
    p.add_argument("-c", "--config", help="gateway.toml (default: ./gateway.toml or built-in)")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the estate in the foreground")
    up.add_argument("--log-format", choices=gwconfig.LOG_FORMATS)
    up.add_argument("--no-color", action="store_true")
    st = sub.add_parser("status", help="processes, PIDs, readiness, routes")
    st.add_argument("--json", action="store_true")
    rl = sub.add_parser("reload", help="apply the changed config without downtime")
    rl.add_argument("service", nargs="?")
    sub.add_parser("stop", help="stop the running estate gracefully")
    sub.add_parser("check", help="validate the config")
    ex = sub.add_parser("export", help="write production configs")
    ex.add_argument("kind", choices=("systemd", "supervisord"))
    ex.add_argument("-o", "--output", help="directory to write into (default: stdout)")
    ex.add_argument("--user", default="", help="run the services as this user")
    from gateway.migration.cli import add_parser as add_migrate
    add_migrate(sub)
    fr = sub.add_parser("front", help="(internal) run the HTTP front on an inherited socket")
    fr.add_argument("--fd", type=int)
    for s in (st, rl, sub.choices["stop"]):
        s.add_argument("--timeout", type=float, default=120.0 if s is rl else 10.0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gateway`` console script."""
    args = parser().parse_args(argv)
    try:
        path = config_path(args.config)
        cfg = load_config(path)
        return COMMANDS[args.command](args, cfg, path)
    except ConfigError as exc:
        print(f"gateway: config error: {exc}", file=sys.stderr)
        return 1
    except GatewayError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
