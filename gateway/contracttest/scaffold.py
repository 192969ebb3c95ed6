"""``gateway init [DIR]``: a gateway.toml and a tox.ini for a team's own folder.

It looks for what it can find without guessing: contracts (``contracts/*.json``
or ``spec/*.json`` holding ``service`` and ``methods``), modules with a
top-level ``TABLE =`` (RPC tables) or ``app`` (WSGI apps), virtualenvs
(a directory with ``pyvenv.cfg`` or ``bin/activate`` and ``bin/python``) and
requirements files. A module is Python 2 when its path or its virtualenv says
so (``py2``, ``legacy``) or when it does not compile as Python 3; a table and
its port are paired by module name and matched to the contract of that
service. Whatever it cannot tell is written as a commented placeholder.
Existing files are kept unless ``--force``::

    gateway init ~/src/billing            # writes gateway.toml and tox.ini there
    gateway init . --force                # rewrite them
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from gateway.contracttest import runner, templates

SKIP_DIRS = {".git", ".tox", ".contract", "build", "var", "node_modules", "__pycache__"}
MAX_DEPTH = 3
_TABLE = re.compile(r"^TABLE\s*(:[^=\n]*)?=", re.M)
# A WSGI app: `app = Flask(...)`, or a plain function `def app(environ, start_response)`.
_APP = re.compile(r"^(app\s*(:[^=\n]*)?=|def app\s*\()", re.M)
_PY2_HINT = re.compile(r"(^|[/_.-])(py2\w*|python2\w*|legacy|old)([/_.-]|$)")
_PY3_HINT = re.compile(r"(^|[/_.-])(py3\w*|python3\w*|port|new)([/_.-]|$)")


@dataclass
class Found:
    """What :func:`scan` found in a folder."""

    contracts: dict[str, str] = field(default_factory=dict)   # service -> relative path
    tables: dict[str, dict[str, str]] = field(default_factory=dict)  # py2/py3 -> name -> mod
    apps: dict[str, dict[str, str]] = field(default_factory=dict)
    venvs: dict[str, str] = field(default_factory=dict)       # py2/py3 -> relative python
    requirements: dict[str, list[str]] = field(default_factory=dict)  # py2/py3 -> files


def add_parser(sub: Any) -> None:
    """Add ``init`` to the ``gateway`` parser."""
    p = sub.add_parser("init", help="write gateway.toml and tox.ini for your own folder")
    p.add_argument("folder", nargs="?", default=".")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(local_command=cmd_init)


def _venv_major(python: str) -> str | None:
    try:
        done = subprocess.run([python, "-c", "import sys; print(sys.version_info[0])"],
                              capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout.decode("ascii", "replace").strip()
    return {"2": "py2", "3": "py3"}.get(text)


def _is_venv(path: str) -> bool:
    has_python = os.path.exists(os.path.join(path, "bin", "python"))
    return has_python and (os.path.exists(os.path.join(path, "pyvenv.cfg"))
                           or os.path.exists(os.path.join(path, "bin", "activate")))


def _major_of(rel: str, source: str) -> str | None:
    lowered = rel.lower()
    if _PY2_HINT.search(lowered):
        return "py2"
    if _PY3_HINT.search(lowered):
        return "py3"
    try:
        compile(source, rel, "exec")
    except SyntaxError:
        return "py2"
    return None


def _contract_service(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get("service"), str) and "methods" in data:
        return str(data["service"])
    return None


def scan(folder: str) -> Found:
    """Contracts, tables, apps, virtualenvs and requirements files under ``folder``."""
    found = Found()
    for root, dirs, files in os.walk(folder):
        rel_root = os.path.relpath(root, folder)
        depth = 0 if rel_root == "." else rel_root.count(os.sep) + 1
        for d in list(dirs):
            full = os.path.join(root, d)
            if _is_venv(full):
                major = _venv_major(os.path.join(full, "bin", "python"))
                if major and major not in found.venvs:
                    found.venvs[major] = os.path.relpath(os.path.join(full, "bin", "python"),
                                                         folder)
            if d in SKIP_DIRS or d.startswith(".") or _is_venv(full) or depth >= MAX_DEPTH:
                dirs.remove(d)
        dirs.sort()
        for name in sorted(files):
            rel = os.path.normpath(os.path.join(rel_root, name))
            full = os.path.join(root, name)
            if name.endswith(".json") and os.path.basename(root) in ("contracts", "spec"):
                service = _contract_service(full)
                if service:
                    found.contracts[service] = rel
            elif name.startswith("requirements") and name.endswith(".txt"):
                major = _major_of(rel, "")
                for m in ([major] if major else ["py2", "py3"]):
                    found.requirements.setdefault(m, []).append(rel)
            elif name.endswith(".py") and name != "__init__.py":
                _scan_module(found, rel, full)
    return found


def _scan_module(found: Found, rel: str, full: str) -> None:
    try:
        with open(full, encoding="utf-8", errors="replace") as fh:
            source = fh.read(200_000)
    except OSError:
        return
    kinds = [(found.tables, "TABLE")] if _TABLE.search(source) else []
    if _APP.search(source):
        kinds.append((found.apps, "app"))
    if not kinds:
        return
    major = _major_of(rel, source)
    if major is None:
        return
    module = rel[:-3].replace(os.sep, ".")
    for bucket, attr in kinds:
        bucket.setdefault(major, {})[module.rsplit(".", 1)[-1]] = f"{module}:{attr}"


def cmd_init(args: argparse.Namespace) -> int:
    """Write gateway.toml and tox.ini into the folder; never overwrite without --force."""
    folder = os.path.abspath(args.folder)
    if not os.path.isdir(folder):
        print(f"gateway: {folder} is not a directory", file=sys.stderr)
        return 2
    found = scan(folder)
    files = {"gateway.toml": templates.gateway_toml(found), "tox.ini": templates.tox_ini(found)}
    kept = [n for n in files if os.path.exists(os.path.join(folder, n)) and not args.force]
    for name, text in files.items():
        if name in kept:
            continue
        with open(os.path.join(folder, name), "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"wrote {os.path.join(folder, name)}")
    # The tox legs import the protocol library through this link (see templates.tox_ini).
    runner.protocol_lib(os.path.join(folder, ".contract"))
    for name in kept:
        print(f"kept {os.path.join(folder, name)} (exists; --force overwrites it)")
    print(templates.summary(found))
    return 1 if kept else 0
