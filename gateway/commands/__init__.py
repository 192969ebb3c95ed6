"""The ``gateway`` subcommands, one module per command, and the table that finds them.

:mod:`gateway.cli` owns argv and the parser; it looks the parsed command up
in :data:`COMMANDS` and imports only that command's module (pip's
``pip._internal.commands`` does the same). ``gateway status`` therefore never
imports the arbiter's supervisor or the migration comparer, and each module
here imports what it needs at its top::

    run = load("status")              # gateway.commands.status.run
    sys.exit(run(args, cfg, path))

Every ``run`` takes the parsed arguments, the loaded config and the config
file's path (None: the embedded default) and returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from gateway.config import GatewayConfig

Command = Callable[[argparse.Namespace, GatewayConfig, "str | None"], int]

# name -> (module, function). Imported by name on dispatch: importing them all
# up front would cost every command the arbiter, the front and the stores.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("gateway.commands.up", "run"),
    "status": ("gateway.commands.status", "run"),
    "reload": ("gateway.commands.reload", "run"),
    "stop": ("gateway.commands.stop", "run"),
    "check": ("gateway.commands.check", "run"),
    "export": ("gateway.commands.export", "run"),
    "front": ("gateway.commands.front", "run"),
    "migrate": ("gateway.commands.migrate", "run"),
    "comparer": ("gateway.commands.comparer", "run"),
}


def load(name: str) -> Command:
    """The ``run`` function of command ``name`` (KeyError if there is none)."""
    module, attr = COMMANDS[name]
    run: Command = getattr(importlib.import_module(module), attr)
    return run


LocalCommand = Callable[[argparse.Namespace], int]


def local(command: LocalCommand | tuple[str, str]) -> LocalCommand:
    """A command that needs no config (``init``, ``contract test``), imported by name if named.

    A parser may name its command as (module, function) so that building the
    parser does not import the command's module (``gateway contract test``
    needs jsonschema, which no other command should pay for).
    """
    if isinstance(command, tuple):
        found: LocalCommand = getattr(importlib.import_module(command[0]), command[1])
        return found
    return command
