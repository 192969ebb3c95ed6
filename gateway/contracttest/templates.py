"""The text ``gateway init`` writes: gateway.toml, tox.ini and the summary it prints.

Pure functions of what :func:`gateway.contracttest.scaffold.scan` found. The
tox legs install the folder's own requirements files plus what the contract
plugin needs on each interpreter (pinned for 2.7 to the last releases that
support it, the versions the gateway's own py27 leg uses).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.contracttest.scaffold import Found

# What protocol/ and its pytest plugin need in a leg (constraints/py27.txt for 2.7).
PY2_DEPS = ("pytest==4.6.11", "jsonschema==3.2.0", "pyzmq==19.0.2")
PY3_DEPS = ("pytest", "jsonschema", "pyzmq")


def pairs(found: Found) -> list[tuple[str, str | None, str | None]]:
    """(service, py2 table, py3 port) for every contract; a table is found by module name."""
    out = []
    py2, py3 = found.tables.get("py2", {}), found.tables.get("py3", {})
    for service in sorted(found.contracts):
        out.append((service, py2.get(service), py3.get(service)))
    return out


def _python(found: Found, major: str) -> str:
    if major in found.venvs:
        return found.venvs[major]
    if major == "py2":
        return os.environ.get("GATEWAY_PY2", "python2.7")
    return os.environ.get("GATEWAY_PY3") or sys.executable


def gateway_toml(found: Found) -> str:
    """A gateway.toml serving every table found on its interpreter, with the ports beside."""
    contracts_dir = "contracts"
    if found.contracts:
        contracts_dir = os.path.dirname(next(iter(sorted(found.contracts.values()))))
    lines = [
        "# Written by `gateway init`. `gateway check` validates it; `gateway up` runs it.",
        "[gateway]",
        'listen = "127.0.0.1:8080"',
        'run_dir = "var/run"',
        "",
        "[runtimes]",
        f'py2 = "{_python(found, "py2")}"',
        f'py3 = "{_python(found, "py3")}"',
        "",
        "[http]",
        f'contracts_dir = "{contracts_dir}"',
        "",
        "# POST /rpc/<service>/<method> with the JSON params.",
        "[[routes]]",
        'prefix = "/rpc"',
        'backend = "rpc"',
        "",
    ]
    migrations = []
    for service, old, new in pairs(found):
        for name, runtime, target in ((service, "py2", old), (f"{service}3", "py3", new)):
            lines.append(f"[services.{name}]" if target else f"# [services.{name}]")
            lines.append(f'{"" if target else "# "}runtime = "{runtime}"')
            lines.append(f'module = "{target}"' if target else '# module = "package.module:TABLE"')
            lines.append("")
        if old and new:
            migrations += [f"# [migrations.{service}]", f'# rpc = "{service}/METHOD"',
                           f'# py3 = "{service}3"', '# state = "shadow"', ""]
    lines += _apps(found)
    if not found.contracts:
        lines += ["# No contracts found: put one per service in contracts/<service>.json",
                  "# (protocol/SPEC.md section 10), then run `gateway init --force`.", ""]
    return "\n".join(lines + migrations).rstrip("\n") + "\n"


def _apps(found: Found) -> list[str]:
    """Commented services for the WSGI apps; an app and its port get a route and migration.

    The port of an app is named like a table's (``web`` -> ``web3``), so uncommenting
    both never gives two tables the same name.
    """
    py2, py3 = found.apps.get("py2", {}), found.apps.get("py3", {})
    lines = []
    for major, apps in (("py2", py2), ("py3", py3)):
        for name, target in sorted(apps.items()):
            service = f"{name}3-web" if major == "py3" and name in py2 else f"{name}-web"
            lines += [f"# [services.{service}]   # a WSGI app; mount it with a wsgi route",
                      f'# runtime = "{major}"', f'# app = "{target}"', ""]
    for name in sorted(set(py2) & set(py3)):
        lines += [f"# [[routes]]   # SCRIPT_NAME /{name}, PATH_INFO the rest",
                  f'# prefix = "/{name}"',
                  '# backend = "wsgi"', f'# service = "{name}-web"', "",
                  f"# [migrations.{name}]", f'# route = "/{name}"', f'# py3 = "{name}3-web"',
                  '# state = "shadow"', ""]
    return lines


def _deps(found: Found, major: str) -> list[str]:
    base = PY2_DEPS if major == "py2" else PY3_DEPS
    return [*base, *[f"-r {{toxinidir}}/{r}" for r in found.requirements.get(major, [])]]


def tox_ini(found: Found) -> str:
    """A tox.ini whose py27 and py3 legs run the contract cases and leave results files."""
    contracts = [found.contracts[s] for s in sorted(found.contracts)] or [
        "contracts/SERVICE.json"]
    impls = []
    for service, old, new in pairs(found):
        impls.append(f"    py2: {service}={old}" if old else
                     f"#   py2: {service}=package.module:TABLE")
        impls.append(f"    py3: {service}={new}" if new else
                     f"#   py3: {service}=package.module:TABLE")
    if not impls:
        impls = ["    py2: SERVICE=package.module:TABLE", "    py3: SERVICE=package.module:TABLE"]
    cmd = ("pytest -p protocol.contract_pytest -p no:cacheprovider -q "
           "--contract-label {label} --contract-results {toxinidir}/.contract/{label}.json "
           "{posargs:" + " ".join(contracts) + "}")

    def leg(env: str, label: str, major: str, python: str) -> list[str]:
        return [f"[testenv:{env}]", f"basepython = {python}", "deps =",
                *[f"    {d}" for d in _deps(found, major)], "commands =",
                "    " + cmd.replace("{label}", label), ""]
    return "\n".join([
        "# Written by `gateway init`: the contract tests of this folder, once per interpreter.",
        "#   tox                                   # both legs, results in .contract/",
        "#   gateway contract test --ingest        # compare them: field diffs, parity table",
        "#   gateway contract test                 # or both steps without tox",
        "[tox]",
        "env_list = py27, py3",
        "skip_missing_interpreters = false",
        "",
        "[testenv]",
        "skip_install = true",
        "package = skip",
        "# The protocol library comes from the gateway through .contract/lib (a link that",
        "# `gateway contract test` and `gateway init` make); the folder itself is importable.",
        "setenv =",
        "    PYTHONPATH = {toxinidir}{:}{toxinidir}/.contract/lib",
        "    PYTHONDONTWRITEBYTECODE = 1",
        "passenv = HOME, LANG",
        "",
        *leg("py27", "py2", "py2", "python2.7"),
        *leg("py3", "py3", "py3", "python3"),
        "[pytest]",
        "contract_files =",
        *[f"    {c}" for c in contracts],
        "contract_impls =",
        *impls,
        "",
    ])


def summary(found: Found) -> str:
    """What was found, in a few lines, so the user knows what to check."""
    lines = [f"contracts: {', '.join(sorted(found.contracts)) or 'none found'}"]
    for service, old, new in pairs(found):
        lines.append(f"  {service}: py2 {old or '(not found)'}; py3 {new or '(not found)'}")
    for major in ("py2", "py3"):
        lines.append(f"{major}: {found.venvs.get(major) or _python(found, major)}; "
                     f"requirements: {', '.join(found.requirements.get(major, [])) or 'none'}")
    lines.append("next: gateway contract test   (or: tox, then gateway contract test --ingest)")
    return "\n".join(lines)
