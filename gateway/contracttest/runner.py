"""Run the contract cases of a folder under two interpreters, or through tox, or a broker.

Every way runs the same entry point, the ``protocol.contract_pytest`` plugin,
with the label ``py2`` or ``py3``, and leaves one results file per label::

    legs = [Leg("py2", "/srv/legacy/venv/bin/python"), Leg("py3", sys.executable)]
    for leg in legs:
        run_leg(leg, folder, results_dir, contracts=["contracts/textsvc.json"], timeout=300)
    run_tox(folder, ["py27", "py3"], timeout=900)     # the generated tox.ini's legs instead

The protocol library reaches each interpreter through a directory holding only
a link to it (``<results>/lib/protocol``), never through the directory the
gateway is installed in: a Python 2 interpreter must not see Python 3 packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

import protocol
from gateway.errors import GatewayError

OUTPUT_TAIL = 4000


class RunError(GatewayError):
    """A leg could not be run: no interpreter, no tox, or it ran past its deadline."""


@dataclass
class Leg:
    """One implementation to run: its label, the interpreter, and extra plugin arguments."""

    label: str
    python: str
    impls: list[str] = field(default_factory=list)


@dataclass
class LegRun:
    """What one leg's pytest did: exit status and the tail of its output."""

    label: str
    status: int
    output: str
    results: str


def protocol_lib(results_dir: str) -> str:
    """A directory whose only entry links to this gateway's protocol package."""
    lib = os.path.join(results_dir, "lib")
    link = os.path.join(lib, "protocol")
    target = os.path.dirname(os.path.abspath(protocol.__file__))
    os.makedirs(lib, exist_ok=True)
    if os.path.islink(link) and os.readlink(link) != target:
        os.unlink(link)
    if not os.path.lexists(link):
        os.symlink(target, link)
    return lib


def leg_env(folder: str, lib: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a leg: PYTHONPATH is the folder and the protocol library only.

    The gateway's own PYTHONPATH is not passed on: it may name Python 3 packages,
    and everything else a leg needs comes from its interpreter's own site-packages.
    """
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join((folder, lib))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONHOME", None)
    return env


def pytest_args(label: str, results: str, contracts: list[str], impls: list[str],
                seed: int | None, count: int | None,
                call_timeout: float | None = None) -> list[str]:
    """The plugin's arguments for one leg (contract files go last, as the paths to collect)."""
    args = ["-m", "pytest", "-p", "protocol.contract_pytest", "-p", "no:cacheprovider",
            "-q", "-rf", "--contract-label", label, "--contract-results", results]
    for impl in impls:
        args += ["--impl", impl]
    if seed is not None:
        args += ["--contract-seed", str(seed)]
    if count is not None:
        args += ["--contract-count", str(count)]
    if call_timeout is not None:
        args += ["--contract-call-timeout", str(call_timeout)]
    return [*args, *[a for c in contracts for a in ("--contract", c)], *contracts]


def run_leg(leg: Leg, folder: str, results_dir: str, contracts: list[str],
            seed: int | None = None, count: int | None = None,
            timeout: float = 300.0, call_timeout: float | None = None) -> LegRun:
    """Run the plugin under ``leg.python`` in ``folder``; the results file is removed first."""
    results = os.path.join(results_dir, f"{leg.label}.json")
    if os.path.exists(results):
        os.unlink(results)
    lib = protocol_lib(results_dir)
    cmd = [leg.python, *pytest_args(leg.label, results, contracts, leg.impls, seed, count,
                                    call_timeout)]
    try:
        done = subprocess.run(cmd, cwd=folder, env=leg_env(folder, lib), timeout=timeout,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, check=False)
    except FileNotFoundError:
        raise RunError(f"{leg.label}: no interpreter at {leg.python}") from None
    except subprocess.TimeoutExpired:
        raise RunError(f"{leg.label}: the contract run took longer than {timeout:g} s") from None
    text = done.stdout.decode("utf-8", "replace")
    return LegRun(leg.label, done.returncode, text[-OUTPUT_TAIL:], results)


def find_tox() -> str:
    """tox on PATH, else the one installed beside this gateway's Python."""
    beside = os.path.join(os.path.dirname(sys.executable), "tox")
    return shutil.which("tox") or (beside if os.access(beside, os.X_OK) else "tox")


def run_tox(folder: str, envs: list[str], tox: str | None = None,
            timeout: float = 900.0) -> LegRun:
    """Run the folder's tox legs (each writes its own results file, see the generated tox.ini)."""
    tox = tox or find_tox()
    cmd = [tox, "run", "-c", os.path.join(folder, "tox.ini"), "-e", ",".join(envs)]
    # tox 4 reads any TOX_<key> variable as configuration, and a tox run sets some
    # (TOX_WORK_DIR, TOX_ENV_DIR...) in its environments: inherited, they would put the
    # folder's legs into the calling tox's work dir.
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOX_")}
    try:
        done = subprocess.run(cmd, cwd=folder, env=env, timeout=timeout, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    except FileNotFoundError:
        raise RunError(f"no tox at {tox}") from None
    except subprocess.TimeoutExpired:
        raise RunError(f"tox took longer than {timeout:g} s") from None
    text = done.stdout.decode("utf-8", "replace")
    return LegRun("tox", done.returncode, text[-OUTPUT_TAIL:], "")
