"""Services on their own interpreters: ``[runtimes]`` by name, own virtualenvs, untyped rpc.

A team's service lives in a folder outside the repo, on a virtualenv of its
own that holds one dependency nothing else has; ``[runtimes] py3`` points at a
bare virtualenv without the gateway's dependencies. The estate must still come
up (the broker and front run on the gateway's interpreter), the service must
find both its dependency and the protocol library, and ``/rpc`` must reach it
without a contract.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
import zmq

from tests.support.procs import REPO

pytestmark = pytest.mark.timeout(180)

TEAM_SERVICE = '''
"""A team's rpc table: answers with its own dependency and interpreter."""
import sys

import teamdep


def info(word=u""):
    hosts = [m for m in list(sys.modules.values())
             if (getattr(m, "__file__", None) or "").endswith(("protocol/worker.py",
                                                               "protocol/worker.pyc"))]
    return {"dep": teamdep.VALUE, "prefix": sys.prefix, "upper": word.upper(),
            "worker_copies": len(hosts)}


TABLE = {"info": info}
'''


def make_venv(path: str, extra_site: str = "", modules: dict[str, str] | None = None) -> str:
    """A real virtualenv at ``path`` (no pip); its interpreter's path."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", path], check=True,
                   timeout=120, capture_output=True)
    python = os.path.join(path, "bin", "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, timeout=30, capture_output=True,
                          text=True).stdout.strip()
    if extra_site:  # the packages the protocol library needs (pyzmq), as a .pth entry
        with open(os.path.join(site, "gateway-deps.pth"), "w", encoding="utf-8") as fh:
            fh.write(extra_site + "\n")
    for name, text in (modules or {}).items():
        with open(os.path.join(site, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    return python


def post(port: int, path: str, params: Any) -> tuple[int, Any]:
    """POST JSON to the front; (status, decoded body)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 data=json.dumps(params).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        return exc.code, json.loads(body)


def test_a_team_runtime_with_its_own_venv_and_a_bare_py3(estate, workdir):
    team_py = make_venv(os.path.join(workdir, "teamvenv"),
                        os.path.dirname(os.path.dirname(zmq.__file__)),
                        {"teamdep.py": 'VALUE = "team-dep-1"\n'})
    bare_py = make_venv(os.path.join(workdir, "barevenv"))
    lib = os.path.join(workdir, "lib")
    os.makedirs(lib)
    with open(os.path.join(lib, "teamsvc.py"), "w", encoding="utf-8") as fh:
        fh.write(TEAM_SERVICE)
    home = os.path.join(workdir, "home")
    os.makedirs(home)
    body = """
[[routes]]
prefix = "/rpc"
backend = "rpc"

[[routes]]
prefix = "/team"
backend = "rpc"
service = "team"

[services.team]
runtime = "team"
module = "teamsvc:TABLE"
env = { PYTHONPATH = "lib" }
"""
    e = estate(body, start=False)
    header = e.header().replace(f"py3 = {json.dumps(sys.executable)}",
                                f"py3 = {json.dumps(bare_py)}\nteam = {json.dumps(team_py)}")
    with open(e.path, "w", encoding="utf-8") as fh:
        fh.write(header + body)
    e.start(env={"HOME": home})

    http = e.program("http")
    assert http["interpreter"] == sys.executable, http
    team = e.program("team")
    assert team["interpreter"] == team_py and team["runtime"] == "team", team

    status, doc = post(e.port, "/rpc/team/info", {"word": "straße"})
    assert status == 200, doc
    assert doc["dep"] == "team-dep-1" and doc["upper"] == "STRASSE", doc
    assert doc["prefix"] == os.path.join(workdir, "teamvenv"), doc
    assert doc["worker_copies"] == 1, doc  # -m protocol worker: one copy of the host
    status, doc = post(e.port, "/team/info", None)  # the route's service= key
    assert status == 200 and doc["dep"] == "team-dep-1", doc
    status, doc = post(e.port, "/rpc/nosuch/info", {})
    assert status == 404 and doc["code"] == "unknown_service", doc
    assert "contract" in doc["detail"], doc

    out = subprocess.run([sys.executable, "-m", "gateway", "-c", e.path, "check"],
                         capture_output=True, text=True, timeout=120, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.returncode == 0, out.stderr
    assert "services.team: no contract" in out.stderr and "untyped = true" in out.stderr
    e.close()
    log = e.log()
    assert "RuntimeWarning" not in log and "Traceback" not in log, log
    assert os.listdir(home) == [], "the estate wrote into $HOME"
