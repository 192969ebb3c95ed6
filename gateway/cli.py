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

This module builds the parser and dispatches; each command's body is a module
of :mod:`gateway.commands`, imported only when that command runs.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Sequence

from gateway import config as gwconfig
from gateway.commands import load, local
from gateway.commands.configfile import config_path, load_config
from gateway.commands.keys import add_parser as add_keys
from gateway.config import hosts
from gateway.contracttest.parsers import add_parsers as add_contract
from gateway.errors import ConfigError, GatewayError
from gateway.migration.cli import add_parser as add_migrate

__all__ = ["config_path", "load_config", "main", "parser"]


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
    add_keys(sub)
    add_migrate(sub)
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
            status = int(local(args.local_command)(args))
        else:
            path = config_path(args.config)
            status = load(args.command)(args, load_config(path), path)
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
