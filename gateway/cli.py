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
from gateway.commands.check import check_contracts
from gateway.commands.frontcfg import http_config
from gateway.commands.status import migration_states, registrations, render_status
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
