"""The README's "Bring your own estate", followed block by block on a fresh folder.

The walkthrough's blocks are tagged in README.md with ``<!-- estate: KIND [ARG] -->``
comments: ``file PATH`` (write the block there), ``append gateway.toml``, ``run NAME``
(run it with bash in the folder) and ``up`` (``gateway up``, in the background as
"another terminal"). This test reads them from the README, so the text cannot drift
from what works. It builds the folder's own virtualenvs (six for the py2 side, attrs
for the port, really pip-installed), scaffolds with ``gateway init``, runs ``gateway
check``, the contract tests through tox (which must find the ``ß`` the port changed),
``gateway up`` with real processes, a migration of ``/shop`` from shadow to promote and
a py2 -> py3 (and bash) queue round trip over the private unix-socket Redis.

The only departures from the text: the folder is under a temporary directory, the
front listens on a free port instead of 8080 (``B`` points at it), ``GW`` is this
checkout, and ``python2.7`` on ``PATH`` is the project's Python 2.7.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator

import pytest

from gateway.arbiter import control
from tests.integration.arbiter.conftest import group_members
from tests.support.procs import (
    REPO,
    ProcessGroup,
    child_env,
    free_port,
    python2,
    python3,
    wait_until,
)
from tests.support.walkthrough import steps

# Measured about 90 s on a shared 2-core box: pip and tox build four virtualenvs.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TIMEOUTS = {"venvs": 150.0, "contract": 200.0}


class Walk:
    """The folder, the user's shell environment and the background ``gateway up``."""

    def __init__(self, root: str, procs: ProcessGroup) -> None:
        self.folder = os.path.join(root, "shop")
        os.makedirs(self.folder)
        self.procs = procs
        self.port = free_port()
        # `python2.7` as a user has it on PATH: the project's 2.7 interpreter.
        bindir = os.path.join(root, "bin")
        os.makedirs(bindir)
        os.symlink(os.environ.get("PYTHON2") or python2(), os.path.join(bindir, "python2.7"))
        # The README's `export PATH="$GW/.venv/bin:$PATH"`: the clone's venv, whatever
        # interpreter runs this test (a tox env has no `gateway` script).
        path = os.pathsep.join((os.path.join(REPO, ".venv", "bin"),
                                os.path.dirname(python3()), bindir, os.environ["PATH"]))
        self.env = {"PATH": path, "GW": REPO, "B": f"http://127.0.0.1:{self.port}"}
        self.up: subprocess.Popen[bytes] | None = None
        self.pgids: set[int] = set()

    def write(self, rel: str, text: str, mode: str = "w") -> None:
        path = os.path.join(self.folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, mode, encoding="utf-8") as fh:
            fh.write(("\n" if mode == "a" else "") + text)

    def run(self, name: str, script: str) -> str:
        """Run one block with bash in the folder; its exit status must be 0."""
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=self.folder,
                              env=self.procs_env(), capture_output=True,
                              timeout=TIMEOUTS.get(name, 120.0), check=False)
        out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
        assert done.returncode == 0, f"step {name} exited {done.returncode}:\n{out}\n{err}"
        return out + err

    def procs_env(self) -> dict[str, str]:
        """The user's shell: the clone's .venv on PATH, GW and B set."""
        return child_env(self.env)

    def start(self, script: str) -> None:
        """``gateway up`` in the background; wait until every program is READY."""
        with open(os.path.join(self.folder, "..", "up.log"), "ab") as log:
            self.up = self.procs.spawn(["bash", "-c", script], env=self.env, cwd=self.folder,
                                       stdout=log, stderr=subprocess.STDOUT)
        sock = os.path.join(self.folder, "var", "run", "arbiter.sock")

        def ready() -> bool:
            assert self.up is not None and self.up.poll() is None, self.log()
            try:
                status = control.call(sock, {"cmd": "status"}, timeout=5.0)
            except control.ControlError:
                return False
            for prog in status["programs"]:
                self.pgids.update(r["pgid"] for r in prog["replicas"] if r["pgid"])
            states = [p["state"] for p in status["programs"]]
            return bool(states) and all(s == "READY" for s in states)
        wait_until(ready, timeout=90, interval=0.2, what="every program READY")

    def log(self) -> str:
        with open(os.path.join(self.folder, "..", "up.log"), encoding="utf-8",
                  errors="replace") as fh:
            return fh.read()[-4000:]

    def close(self) -> None:
        """Stop what the walkthrough left running (after a failure), by PID and group."""
        if self.up is not None and self.up.poll() is None:
            self.procs.stop(self.up, grace=20.0)
        for pgid in self.pgids:
            if group_members(pgid):
                try:
                    os.killpg(pgid, 9)
                except OSError:
                    pass


@pytest.fixture
def walk(workdir: str, procs: ProcessGroup) -> Iterator[Walk]:
    w = Walk(workdir, procs)
    assert not w.folder.startswith(REPO)
    try:
        yield w
    finally:
        w.close()


def check_step(walk: Walk, name: str, out: str) -> None:
    """What each run block must have done, checked from its output and the folder."""
    folder = walk.folder
    if name == "venvs":
        # Their own virtualenvs: their own dependency, the protocol's, no gateway.
        for venv, dep in (("venv2", "six"), ("venv3", "attrs")):
            python = os.path.join(folder, venv, "bin", "python")
            env = {k: v for k, v in walk.procs_env().items() if k != "PYTHONPATH"}
            subprocess.run([python, "-c", f"import {dep}, zmq, redis"], env=env, check=True,
                           timeout=60)
            gone = subprocess.run([python, "-c", "import gateway"], env=env, cwd="/",
                                  capture_output=True, timeout=60, check=False)
            assert gone.returncode != 0, f"{venv} sees the gateway's packages"
    elif name == "init":
        with open(os.path.join(folder, "gateway.toml"), encoding="utf-8") as fh:
            toml = fh.read()
        assert 'py2 = "venv2/bin/python"' in toml and 'py3 = "venv3/bin/python"' in toml
        assert "[services.textsvc3]" in toml
        # The one departure from the text: a free port, not 8080.
        assert toml.count('listen = "127.0.0.1:8080"') == 1
        walk.write("gateway.toml",
                   toml.replace("127.0.0.1:8080", f"127.0.0.1:{walk.port}"))
    elif name == "check":
        assert "5 services, 2 routes, 2 migrations" in out
        assert "warning" not in out, out
    elif name == "contract":
        assert "contract differences: exit 1" in out, out
        assert "0 contract failures" in out
        diffs = re.findall(r"^  (\S+)  params (.*)$", out, re.M)
        assert diffs, out
        for case, params in diffs:
            assert case.startswith("upper/gen/"), out
            assert "\u00df" in json.loads(params)["text"] or "\ufb01" in params, out
        with open(os.path.join(folder, "build", "parity.json"), encoding="utf-8") as fh:
            assert json.load(fh)["services"]["textsvc"]["parity"]["status"] == "different"
    elif name == "traffic":
        first, second = out.splitlines()[:2]
        assert json.loads(first) == {"greeting": "hello ada", "next": "/shop/hello",
                                     "path_info": "/hello", "script_name": "/shop"}
        assert json.loads(second) == "STRA\u00dfE"
    elif name == "migrate":
        assert "result: changed: 'STRA\u00dfE' -> 'STRASSE'" in out, out
        assert "shop: now canary 50%" in out and "shop: now py3" in out, out
        assert "x-python: 3" in out.lower(), out
    elif name == "queue":
        results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert {"python": 3, "text": "HELLO FROM 2"} in results, out
        assert {"by": "bash", "text": "HELLO BASH"} in results, out
    elif name == "stop":
        assert walk.up is not None
        assert walk.up.wait(timeout=30) == 0, walk.log()


def test_the_readme_walkthrough_from_an_empty_folder_to_a_migrated_route(walk):
    """Every tagged block, in order; each run block's effect is checked before the next."""
    ran = []
    for kind, arg, text in steps():
        if kind == "file":
            walk.write(arg, text)
        elif kind == "append":
            walk.write(arg, text, mode="a")
        elif kind == "up":
            walk.start(text)
            ran.append("up")
        else:
            assert kind == "run", kind
            check_step(walk, arg, walk.run(arg, text))
            ran.append(arg)
    assert ran == ["layout", "venvs", "init", "check", "contract", "up", "traffic", "migrate",
                   "queue", "stop"]
