"""The CLI against real estates: reload reports (migrations included), stop waits, up refuses
a taken port, options after the subcommand."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.integration.arbiter.conftest import alive
from tests.support.procs import REPO, child_env, free_port, wait_until

pytestmark = pytest.mark.timeout(180)

APPS = """
[[routes]]
prefix = "/app"
backend = "wsgi"
service = "app"

[services.app]
runtime = "py2"
app = "tests.integration.arbiter.wsgiapp:app"

[services.app3]
runtime = "py3"
app = "tests.integration.arbiter.wsgiapp:app"
"""

MIGRATION = """
[migrations.app]
route = "/app"
py3 = "app3"
state = "shadow"
ignore_pointers = [{pointers}]
"""


def gateway(path: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``python -m gateway ARGS -c PATH``: the config option after the subcommand."""
    return subprocess.run([sys.executable, "-m", "gateway", *args, "-c", path], cwd=REPO,
                          env=child_env(), capture_output=True, text=True, timeout=timeout)


def test_reload_applies_migrations_and_says_what_it_did(estate):
    e = estate(APPS)
    e.write(APPS + MIGRATION.format(pointers='"/pid"'))
    out = gateway(e.path, "reload")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"re-read: {e.path} (migrations.app changed)" in out.stdout, out.stdout
    assert "restarted: http" in out.stdout, out.stdout
    status = gateway(e.path, "migrate", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert "app" in {m["name"] for m in json.loads(status.stdout)}

    # A threshold or ignore_pointers change alone is applied too.
    e.write(APPS + MIGRATION.format(pointers='"/pid", "/path"') + "min_samples = 7\n")
    out = gateway(e.path, "reload")
    assert out.returncode == 0 and "migrations.app changed" in out.stdout, out.stdout
    report = gateway(e.path, "migrate", "report", "app", "--json")
    assert report.returncode == 0, report.stderr
    gate = json.loads(report.stdout)[0]["gate"]
    assert any("of 7 samples" in r for r in gate["reasons"]), gate

    # A new service that never comes up: reload waits for it and exits 1.
    e.write(APPS + """
[services.crash]
runtime = "command"
command = ["/bin/sh", "-c", "exit 3"]
start_limit_burst = 2
start_limit_interval_s = 60
""")
    out = gateway(e.path, "reload")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "crash: added, but FATAL" in out.stderr and "removed" not in out.stdout, out.stderr
    assert "Traceback" not in out.stderr


def test_stop_waits_until_the_estate_is_down(estate):
    e = estate(APPS)
    pids = [r["pid"] for p in e.status()["programs"] for r in p["replicas"]]
    out = gateway(e.path, "stop")
    assert out.returncode == 0 and "stopped" in out.stdout, out.stdout + out.stderr
    assert e.proc is not None and e.proc.poll() is not None, "gateway stop returned early"
    assert not [pid for pid in pids if alive(pid)], "a process of the estate still runs"


def test_up_exits_with_a_hint_when_the_port_is_taken(estate, workdir):
    e = estate(APPS, start=False)
    holder = socket.socket()
    holder.bind(("127.0.0.1", e.port))
    holder.listen(1)
    try:
        out = gateway(e.path, "up", timeout=60)
    finally:
        holder.close()
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"cannot listen on 127.0.0.1:{e.port}" in out.stderr, out.stderr
    assert "[gateway] listen" in out.stderr and "Traceback" not in out.stderr
    assert not os.path.exists(os.path.join(e.run_dir, "arbiter.sock"))


def test_a_free_port_is_not_refused(workdir):
    """The check binds nothing it keeps: `gateway check` on the same config passes."""
    path = os.path.join(workdir, "gateway.toml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f'[gateway]\nlisten = "127.0.0.1:{free_port()}"\n'
                 f'run_dir = "{workdir}/run"\n[broker]\nimplementation = "python"\n')
    out = gateway(path, "check")
    assert out.returncode == 0 and "ok:" in out.stdout, out.stderr


def test_a_service_ready_timeout_is_honoured(estate):
    port = free_port()
    e = estate(f"""
[services.mute]
runtime = "command"
command = ["sleep", "60"]
ready = "tcp:127.0.0.1:{port}"
ready_timeout_s = 1
""", front=False, start=False)
    e.launch()
    wait_until(lambda: "mute.0: not ready after 1s, killing it" in e.log(), timeout=30,
               what="the 1 s readiness timeout")
    assert e.proc is not None and e.proc.poll() is None, e.log()
