"""The ``gateway`` command: the only module that reads argv, the environment and files.

::

    gateway up [--log-format json]            # run the estate in the foreground; exit 1
                                              # at once if the listen address is taken
               [--role all|gateway|workers]   # one host's part of a multi-host estate
    gateway status [--json]                   # ask the running arbiter
    gateway reload [SERVICE]                  # apply the changed config (services, routes,
                                              # migrations), no downtime; print what it did;
                                              # exit 1 if a reload failed or a new service
                                              # went FATAL
    gateway stop [--no-wait] [--timeout S]    # graceful stop; waits until the estate is down
    gateway check                             # interpreters, imports, migrations, contracts
    gateway export systemd|supervisord [-o DIR] [--role R]  # production configs
    gateway keys DIR [NAME ...]               # CURVE key pairs: the broker's and NAME's
    gateway migrate status|shadow|canary|promote|rollback|report|... (gateway.migration.cli)
    gateway init [DIR] [--force]                       # gateway.toml + tox.ini for a folder
    gateway contract test [DIR] [--tox|--ingest|--broker EP]  # py2/py3 parity verdict

Every command takes ``-c FILE``, before or after its name (``gateway up -c x.toml``);
options of a command group likewise (``gateway migrate report --json``). ``-c``
defaults to ``./gateway.toml`` when it exists, else the embedded default
(:data:`gateway.config.DEFAULT_TOML`). ``python -m gateway ...`` is the same.
Output piped into ``head`` ends quietly when the reader goes away.
``gateway front --fd N`` is what the arbiter runs for the HTTP front; it reads
the arbiter's resolved config from ``$GATEWAY_CONFIG``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from gateway import config as gwconfig
from gateway.arbiter import control
from gateway.commands.frontcfg import http_config
from gateway.commands.status import migration_states, registrations, render_status
from gateway.config import GatewayConfig, hosts
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


def cmd_comparer(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Compare the broker's shadow pairs into the migration store; the arbiter starts this."""
    import signal
    import threading

    from gateway.migration.comparer import run

    if os.environ.get("GATEWAY_CONFIG"):
        cfg = load_config(os.environ["GATEWAY_CONFIG"])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return run(cfg.migration_settings, cfg.broker.endpoint, stop)


# -- commands -----------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Run the estate in the foreground until Ctrl-C."""
    from gateway.arbiter import Arbiter, LogSink
    from gateway.arbiter.plan import require_broker
    from gateway.arbiter.sockets import systemd_fds
    from gateway.migration.evidence import restart_evidence
    role = args.role
    cfg = hosts.apply_role(cfg, role)
    require_broker(cfg)  # before any socket or process exists
    fmt = args.log_format or cfg.gateway.log_format
    color = fmt == "text" and not args.no_color and sys.stdout.isatty() and \
        "NO_COLOR" not in os.environ
    sink = LogSink(sys.stdout, fmt=fmt, color=color)
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROP}
    arbiter = Arbiter(cfg, loader=lambda: hosts.apply_role(load_config(path), role),
                      python3=sys.executable,
                      sink=sink, inherited_fds=systemd_fds(os.environ, os.getpid()),
                      env=env, config_source=path or "<default>",
                      on_replaced=restart_evidence)
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
    print(render_reload(result))
    return 0


def render_reload(result: dict[str, Any]) -> str:
    """What a reload did, one line per kind of change."""
    reread = result.get("reread") or {}
    lines = [f"re-read: {reread.get('config') or 'the config'}"
             + (f" ({', '.join(reread['migrations'])} changed)"
                if reread.get("migrations") else "")]
    for key in ("added", "removed", "restarted", "updated"):
        names = result.get(key, result.get("changed", []) if key == "restarted" else [])
        if names:
            lines.append(f"{key}: {', '.join(names)}")
    if len(lines) == 1:
        lines.append("nothing else changed")
    return "\n".join(lines)


def cmd_stop(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Ask the running arbiter to stop gracefully."""
    status = control.call(cfg.control_socket, {"cmd": "status"}, timeout=args.timeout)
    control.call(cfg.control_socket, {"cmd": "stop"}, timeout=args.timeout)
    pid = int(status["arbiter"]["pid"])
    if args.no_wait:
        print(f"stopping (arbiter pid {pid})")
        return 0
    # Every replica gets its grace, and the slowest drains last; then a margin.
    grace = max([cfg.gateway.stop_grace_s] + [s.stop_grace_s for s in cfg.services])
    limit = args.timeout if args.timeout is not None else grace + 15.0
    deadline = time.monotonic() + limit
    while process_alive(pid):  # it exits last, once every program is down
        if time.monotonic() > deadline:
            raise GatewayError(f"the estate is still stopping after {limit:g}s "
                               f"(arbiter pid {pid})")
        time.sleep(0.05)
    print("stopped")
    return 0


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmd_check(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Validate the config beyond its schema: interpreters, imports, migrations, contracts."""
    from gateway.arbiter.plan import require_broker
    from gateway.commands.check import check_estate
    require_broker(cfg)
    try:
        import gateway.http.config  # noqa: F401
    except ImportError:
        pass  # the front is not installed here; our own schema was checked
    else:
        http_config(cfg)
    errors, warnings = check_estate(cfg, python3=sys.executable)
    for line in warnings:
        print(f"gateway: warning: {line}", file=sys.stderr)
    if errors:
        for line in errors[:-1]:
            print(f"gateway: config error: {line}", file=sys.stderr)
        raise ConfigError(errors[-1])
    print(f"ok: {path or '<default>'}: {len(cfg.services)} services, {len(cfg.routes)} routes, "
          f"{len(cfg.migration_settings.migrations)} migrations")
    return 0


def cmd_export(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Write systemd units or a supervisord config for this estate."""
    from gateway.arbiter import export

    outdir = os.path.abspath(args.output or cfg.gateway.run_dir)
    cfg = hosts.apply_role(cfg, args.role)
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
            "migrate": cmd_migrate, "comparer": cmd_comparer}


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``gateway``."""
    p = argparse.ArgumentParser(prog="gateway", description=__doc__.split("\n")[0])
    p.add_argument("-c", "--config", help="gateway.toml (default: ./gateway.toml or built-in)")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the estate in the foreground")
    up.add_argument("--log-format", choices=gwconfig.LOG_FORMATS)
    up.add_argument("--no-color", action="store_true")
    up.add_argument("--role", choices=hosts.ROLES, default=None,
                    help="gateway: front + broker; workers: the services only, on the "
                         "brokers of [broker] connect; all: everything (default: "
                         "[gateway] role, itself all by default)")
    st = sub.add_parser("status", help="processes, PIDs, readiness, routes")
    st.add_argument("--json", action="store_true")
    rl = sub.add_parser("reload", help="apply the changed config without downtime")
    rl.add_argument("service", nargs="?")
    sp = sub.add_parser("stop", help="stop the running estate gracefully")
    sp.add_argument("--no-wait", action="store_true",
                    help="return once the arbiter has the request, do not wait")
    sub.add_parser("check", help="validate the config")
    ex = sub.add_parser("export", help="write production configs")
    ex.add_argument("kind", choices=("systemd", "supervisord"))
    ex.add_argument("-o", "--output", help="directory to write into (default: stdout)")
    ex.add_argument("--user", default="", help="run the services as this user")
    ex.add_argument("--role", choices=hosts.ROLES, default=None,
                    help="the units of one host role (as gateway up --role)")
    from gateway.commands.keys import add_parser as add_keys
    add_keys(sub)
    from gateway.migration.cli import add_parser as add_migrate
    add_migrate(sub)
    from gateway.contracttest.cli import add_parsers as add_contract
    add_contract(sub)  # init, contract test: they work on a folder, not on a running config
    fr = sub.add_parser("front", help="(internal) run the HTTP front on an inherited socket")
    fr.add_argument("--fd", type=int)
    sub.add_parser("comparer", help="(internal) compare the broker's shadow pairs")
    st.add_argument("--timeout", type=float, default=10.0)
    rl.add_argument("--timeout", type=float, default=120.0)
    sp.add_argument("--timeout", type=float, default=None,
                    help="seconds to wait for the estate to stop (default: grace + 15)")
    inherit_options(p)
    return p


def inherit_options(parser: argparse.ArgumentParser,
                    inherited: Sequence[argparse.Action] = ()) -> None:
    """Accept a parser's options after its subcommands too: ``gateway up -c x.toml``.

    Each subcommand gets a copy of every option of the parsers above it, with
    the default suppressed, so a value given before the subcommand is kept
    unless it is given again after it.
    """
    passed = list(inherited)
    for opt in parser._actions:
        seen = {s for a in passed for s in a.option_strings}
        if opt.option_strings and opt.dest != "help" and not seen & set(opt.option_strings):
            passed.append(opt)
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in dict.fromkeys(action.choices.values()):
            taken = {s for a in child._actions for s in a.option_strings}
            for opt in passed:
                if not taken & set(opt.option_strings):
                    clone = copy.copy(opt)
                    clone.default = argparse.SUPPRESS
                    clone.required = False
                    child._add_action(clone)
            inherit_options(child, passed)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gateway`` console script."""
    args = parser().parse_args(argv)
    try:
        if getattr(args, "local_command", None) is not None:
            status = int(args.local_command(args))
        else:
            path = config_path(args.config)
            status = COMMANDS[args.command](args, load_config(path), path)
        # Output to a pipe is buffered: a reader that is gone shows at this flush,
        # which must happen here and not in the interpreter's exit.
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # The reader went away (`gateway status | head`): stop quietly, like other CLIs.
        # Python would report the pipe again when it flushes stdout at exit: point
        # stdout at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141  # 128 + SIGPIPE, the status of a CLI that SIGPIPE ended
    except ConfigError as exc:
        print(f"gateway: config error: {exc}", file=sys.stderr)
        return 1
    except GatewayError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
