"""``gateway check``: validate a config beyond its schema, without starting the estate.

What it verifies, each as a :class:`~gateway.errors.ConfigError` naming the key:

- every interpreter a service uses, and every named ``[runtimes]`` entry, runs;
- every ``module`` / ``app`` target imports in its own runtime, with the
  service's environment and working directory, together with the protocol
  host that will run it (``protocol.worker`` or ``protocol.wsgi``), in a
  subprocess with a deadline;
- every migration's ``py3`` names a configured service (or, for an http
  route, a URL);
- every contract in ``http.contracts_dir`` loads.

An rpc service that no contract describes and that is not declared
``untyped = true`` is a warning, not an error: ``/rpc`` calls it untyped::

    problems, warnings = check_estate(cfg, python3=sys.executable)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from gateway.arbiter.plan import require_broker, service_env
from gateway.commands.frontcfg import http_config
from gateway.config import GatewayConfig, ServiceConfig
from gateway.errors import ConfigError
from protocol import contract

# Deadlines of the subprocesses check starts: an interpreter that hangs, or a module
# whose import blocks (a database connect at import time), must not hang `check`.
RUN_TIMEOUT = 15.0
IMPORT_TIMEOUT = 30.0

def run(args: argparse.Namespace, cfg: GatewayConfig, path: str | None) -> int:
    """Validate the config beyond its schema: interpreters, imports, migrations, contracts."""
    require_broker(cfg)
    http_config(cfg)  # the front's own schema, as the front will build it
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


# Runs in the service's interpreter (2.7 or 3): import the target and its host.
_IMPORT = (
    "import importlib, sys\n"
    "host, spec = sys.argv[1], sys.argv[2]\n"
    "importlib.import_module(host)\n"
    "mod, _, name = spec.partition(':')\n"
    "obj = importlib.import_module(mod)\n"
    "for part in name.split('.'):\n"
    "    obj = getattr(obj, part)\n"
)


def check_contracts(directory: str) -> None:
    """Every service contract in ``directory`` must load (protocol.contract checks it)."""
    if not os.path.isdir(directory):
        raise ConfigError(f"http.contracts_dir: {directory} is not a directory")
    for name in contract.available(directory):
        try:
            contract.load(name, directory=directory)
        except contract.ContractError as exc:
            raise ConfigError(f"http.contracts_dir: {exc}") from None


def contracts_dir(cfg: GatewayConfig) -> str:
    """The directory of the service contracts: ``http.contracts_dir`` or protocol/spec."""
    given = str(cfg.http.get("contracts_dir", ""))
    return os.path.join(cfg.base_dir, given) if given else contract.SPEC_DIR


def check_interpreters(cfg: GatewayConfig, python3: str) -> list[str]:
    """Run each interpreter in use once; a list of errors (empty: all ran)."""
    users: dict[str, list[str]] = {name: [] for name in cfg.runtimes.named}
    for svc in cfg.services:
        if svc.runtime != "command":
            users.setdefault(svc.runtime, []).append(svc.name)
    errors = []
    for runtime, services in users.items():
        interp = cfg.runtimes.interpreter(runtime, python3)
        needed = f" (needed by services.{', services.'.join(services)})" if services else ""
        if "/" in interp and not os.path.exists(interp):
            errors.append(f"runtimes.{runtime}: {interp} does not exist{needed}")
            continue
        try:
            subprocess.run([interp, "-c", "import sys"], capture_output=True, check=True,
                           timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            errors.append(f"runtimes.{runtime}: {interp} does not run: {exc}{needed}")
    return errors


def check_import(cfg: GatewayConfig, svc: ServiceConfig, python3: str) -> str | None:
    """Import ``svc``'s target in its runtime; None if it imports, else the error."""
    interp = cfg.runtimes.interpreter(svc.runtime, python3)
    host = "protocol.worker" if svc.kind == "rpc" else "protocol.wsgi"
    key = "module" if svc.module else "app"
    spec = svc.module or svc.app
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | service_env(cfg, svc)
    try:
        out = subprocess.run([interp, "-c", _IMPORT, host, spec], capture_output=True,
                             timeout=IMPORT_TIMEOUT, env=env, cwd=svc.cwd or cfg.base_dir,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return (f"services.{svc.name}.{key}: importing {spec!r} in runtime {svc.runtime} "
                f"took over {IMPORT_TIMEOUT:g}s")
    except OSError as exc:
        return f"services.{svc.name}.{key}: cannot run {interp}: {exc.strerror}"
    if out.returncode != 0:
        lines = out.stderr.decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else f"exit status {out.returncode}"
        return f"services.{svc.name}.{key}: {spec!r} does not import in runtime " \
               f"{svc.runtime} ({interp}): {last}"
    return None


def check_migrations(cfg: GatewayConfig) -> list[str]:
    """Each migration's ``py3`` names a configured service (an http route's is a URL)."""
    names = {s.name for s in cfg.services}
    return [f"migrations.{m.name}.py3: {m.py3!r} is not a [services.*] entry"
            for m in cfg.migration_settings.migrations
            if not m.py3.startswith(("http://", "https://")) and m.py3 not in names]


def untyped_warnings(cfg: GatewayConfig) -> list[str]:
    """Rpc services with no contract that are not declared ``untyped = true``."""
    directory = contracts_dir(cfg)
    have = set(contract.available(directory)) if os.path.isdir(directory) else set()
    # The py3 port of an rpc migration answers to its py2 service's contract.
    ports = {m.py3 for m in cfg.migration_settings.migrations
             if m.kind == "rpc" and m.rpc_service in have}
    return [f"services.{s.name}: no contract in {directory}; POST /rpc/{s.name}/<method> "
            f"passes its JSON unchecked (add {s.name}.json there, or set untyped = true)"
            for s in cfg.services
            if s.kind == "rpc" and not s.untyped and s.name not in have | ports]


def check_estate(cfg: GatewayConfig, python3: str) -> tuple[list[str], list[str]]:
    """Every error and every warning about ``cfg``'s runtimes, targets and migrations."""
    errors = check_interpreters(cfg, python3)
    broken = {e.split(":")[0].split(".", 1)[1] for e in errors}
    targets = [s for s in cfg.services if s.runtime != "command" and s.runtime not in broken]
    # Imports run in parallel: each is a fresh interpreter, mostly waiting on disk.
    with ThreadPoolExecutor(max_workers=4) as pool:
        errors += [e for e in pool.map(lambda s: check_import(cfg, s, python3), targets) if e]
    errors += check_migrations(cfg)
    directory = contracts_dir(cfg)
    if cfg.http.get("contracts_dir"):
        check_contracts(directory)
    return errors, untyped_warnings(cfg)
