"""The exported production configs work: a real supervisord runs the estate; systemd verifies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from tests.integration.arbiter.conftest import FDHTTP, group_members
from tests.support.procs import REPO, child_env, free_port, python2, wait_until

SUPERVISORD = os.path.join(os.path.dirname(sys.executable), "supervisord")
SUPERVISORCTL = os.path.join(os.path.dirname(sys.executable), "supervisorctl")
# CI installs supervisor (tox, scripts/bootstrap.sh): there a missing one is a failure.
needs_supervisor = pytest.mark.skipif(not os.path.exists(SUPERVISORD) and not os.environ.get("CI"),
                                      reason="supervisor is not installed")


def estate_toml(workdir: str, front_port: int, web_port: int) -> str:
    return f"""
[gateway]
listen = "127.0.0.1:{front_port}"
run_dir = "{workdir}/run"
stop_grace_s = 2
[runtimes]
py2 = {json.dumps(python2())}
py3 = {json.dumps(sys.executable)}

[[routes]]
prefix = "/app"
backend = "wsgi"
service = "app"

[[routes]]
prefix = "/web"
backend = "http"
target = "http://127.0.0.1:{web_port}"
service = "web"

[services.app]
runtime = "py2"
app = "tests.integration.arbiter.wsgiapp:app"
replicas = 2

[services.web]
runtime = "command"
command = [{json.dumps(sys.executable)}, {json.dumps(FDHTTP)}, "--fd", "{{fd}}"]
listen = "127.0.0.1:{web_port}"
"""


def export(workdir: str, kind: str, body: str) -> str:
    path = os.path.join(workdir, "gateway.toml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(body)
    out = os.path.join(workdir, kind)
    subprocess.run([sys.executable, "-m", "gateway", "-c", path, "export", kind, "-o", out],
                   check=True, cwd=REPO, env=child_env(), capture_output=True, timeout=60)
    return out


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read()
    except OSError:
        return 0, b""


@pytest.mark.slow
@needs_supervisor
def test_exported_supervisord_config_runs_the_estate(procs, workdir):
    front, web = free_port(), free_port()
    out = export(workdir, "supervisord", estate_toml(workdir, front, web))
    os.makedirs(os.path.join(workdir, "run"), exist_ok=True)
    conf = os.path.join(out, "supervisord.conf")
    with open(conf, encoding="utf-8") as fh:
        text = fh.read()
    assert "killasgroup=true" in text and "[fcgi-program:http]" in text
    out_path = os.path.join(workdir, "supervisord.out")
    with open(out_path, "wb") as log:
        proc = procs.spawn([SUPERVISORD, "-c", conf], stdout=log, stderr=subprocess.STDOUT)

    def output() -> str:
        with open(out_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()[-5000:]

    def serving() -> bool:
        assert proc.poll() is None, output()
        code, body = get(front, "/app/x")
        return code == 200 and json.loads(body)["impl"].startswith("cpython-2.7")
    wait_until(serving, timeout=30, interval=0.1, what="the front answers through the broker")
    wait_until(lambda: get(front, "/web/y")[0] == 200, timeout=10, what="the web service")
    code, body = get(front, "/web/y")
    assert code == 200 and json.loads(body)["path"] == "/web/y"
    ctl = [SUPERVISORCTL, "-c", conf]

    def running() -> int:
        out = subprocess.run([*ctl, "status"], capture_output=True, text=True, timeout=20).stdout
        return out.count("RUNNING")
    wait_until(lambda: running() == 5, timeout=10, what="5 programs RUNNING")  # + app x2
    pids = subprocess.run([*ctl, "pid", "all"], capture_output=True, text=True,
                          timeout=20).stdout.split()
    groups = [int(p) for p in pids if p.isdigit() and int(p) > 0]
    assert len(groups) == 5, pids
    # supervisord's own ordered shutdown (priorities, stopwaitsecs, killasgroup), waited
    # for in full: a short SIGTERM-then-SIGKILL of supervisord could leave its children.
    subprocess.run([*ctl, "shutdown"], capture_output=True, timeout=30, check=True)
    proc.wait(timeout=60)
    wait_until(lambda: not any(group_members(g) for g in groups), timeout=10,
               what="every program's process group empty")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_exported_systemd_units_pass_systemd_analyze_verify(workdir):
    out = export(workdir, "systemd", estate_toml(workdir, free_port(), free_port()))
    units = sorted(f for f in os.listdir(out) if f.endswith((".service", ".socket", ".target")))
    assert "gateway-http.socket" in units and "gateway-app@.service" in units
    # verify wants instances for templates
    args = [u.replace("@.service", "@0.service") for u in units]
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *args], cwd=out,
                            capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (result.stdout + result.stderr).splitlines()
                if ln.strip() and "gateway" in ln]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
