"""``gateway contract test``: one contract, two implementations, a parity verdict.

::

    gateway contract test [DIR]                  # both interpreters, directly
    gateway contract test DIR --tox              # the legs of DIR/tox.ini instead
    gateway contract test DIR --ingest           # compare the results already there
    gateway contract test DIR --broker tcp://127.0.0.1:5555 \\
        --py2-service textsvc --py3-service textsvc3   # through a running estate

The contracts and implementations come from ``DIR/tox.ini``'s ``[pytest]``
section (``contract_files``, ``contract_impls``; ``gateway init`` writes it) or
from ``--contract`` and ``--py2-impl``/``--py3-impl``. The interpreters are
``--py2``/``--py3``, else ``[runtimes]`` of ``DIR/gateway.toml``, else
``$GATEWAY_PY2``/``python2.7`` and this gateway's own Python. Exit status: 0
when every case agrees and keeps its contract, 1 when not, 2 when a leg could
not run. The parity table goes where the dashboard reads it: ``--parity``, else
``[migration].parity_file`` of DIR/gateway.toml, else ``DIR/build/parity.json``.
"""

from __future__ import annotations

import argparse
import configparser
import glob
import json
import os
import sys
import tomllib

from gateway.contracttest import report as rep
from gateway.contracttest import runner
from gateway.errors import GatewayError
from gateway.migration.compare import Rules
from protocol import contract


def ini_contracts(folder: str) -> list[str]:
    """``contract_files`` of DIR/tox.ini's [pytest] section, else DIR/contracts/*.json."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(os.path.join(folder, "tox.ini"), encoding="utf-8")
    if ini.has_option("pytest", "contract_files"):
        return [line.strip() for line in ini.get("pytest", "contract_files").splitlines()
                if line.strip()]
    return sorted(os.path.relpath(p, folder)
                  for p in glob.glob(os.path.join(folder, "contracts", "*.json")))


def folder_config(folder: str) -> dict[str, str]:
    """``[runtimes]`` and ``[migration].parity_file`` of DIR/gateway.toml, against DIR.

    Only these keys are read, so a half-written gateway.toml does not stop a contract
    run; ``gateway check`` is what validates the whole file.
    """
    path = os.path.join(folder, "gateway.toml")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    out = {}
    for name, value in (data.get("runtimes") or {}).items():
        if isinstance(value, str):
            out[name] = os.path.join(folder, value) if os.sep in value else value
    parity = (data.get("migration") or {}).get("parity_file")
    if isinstance(parity, str) and parity:
        out["parity_file"] = os.path.join(folder, parity)
    return out


def cmd_contract(args: argparse.Namespace) -> int:
    """Run (or ingest) both legs, print the verdict, write the parity table."""
    folder = os.path.abspath(args.folder)
    results = os.path.abspath(args.results or os.path.join(folder, ".contract"))
    known = folder_config(folder)
    parity = os.path.abspath(args.parity or known.get("parity_file")
                             or os.path.join(folder, "build", "parity.json"))
    contracts = args.contract or ini_contracts(folder)
    py2 = args.py2 or known.get("py2") or os.environ.get("GATEWAY_PY2") or "python2.7"
    py3 = args.py3 or known.get("py3") or sys.executable
    legs = [runner.Leg("py2", py2, list(args.py2_impl)),
            runner.Leg("py3", py3, list(args.py3_impl))]
    try:
        if args.broker:
            legs = broker_legs(args, contracts, folder)
        if args.tox:
            run = runner.run_tox(folder, args.tox_envs.split(","), timeout=args.timeout * 2)
            missing = [p for p in ("py2.json", "py3.json")
                       if not os.path.exists(os.path.join(results, p))]
            if missing:
                print(f"gateway: tox left no {', '.join(missing)} in {results}:\n{run.output}",
                      file=sys.stderr)
                return 2
        elif not args.ingest:
            if not contracts:
                raise GatewayError(f"{folder}: no contracts (tox.ini [pytest] contract_files, "
                                   "contracts/*.json or --contract)")
            os.makedirs(results, exist_ok=True)
            for leg in legs:
                run = runner.run_leg(leg, folder, results, contracts, args.seed, args.count,
                                     args.timeout, args.call_timeout)
                if not os.path.exists(run.results):
                    print(f"gateway: the {leg.label} leg ({leg.python}) wrote no results:\n"
                          f"{run.output}", file=sys.stderr)
                    return 2
        left = rep.load_results(os.path.join(results, "py2.json"))
        right = rep.load_results(os.path.join(results, "py3.json"))
    except GatewayError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    verdict = rep.compare_runs(left, right, Rules(ignore_pointers=tuple(args.ignore)))
    rep.write_parity(parity, verdict)
    if args.json:
        print(json.dumps(rep.report_json(verdict), indent=1, ensure_ascii=False))
    else:
        print(rep.format_report(verdict))
        print(f"parity table: {parity}")
    return 0 if verdict.ok else 1


def broker_legs(args: argparse.Namespace, contracts: list[str], folder: str) -> list[runner.Leg]:
    """Both legs on this gateway's Python, each calling one service on the broker."""
    if len(contracts) != 1 or not (args.py2_service and args.py3_service):
        raise GatewayError("--broker needs one contract and --py2-service and --py3-service")
    service = contract.load(os.path.join(folder, contracts[0])).service
    return [runner.Leg(label, sys.executable, [f"{service}=broker:{args.broker}#{name}"])
            for label, name in (("py2", args.py2_service), ("py3", args.py3_service))]
