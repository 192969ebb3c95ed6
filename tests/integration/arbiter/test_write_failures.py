"""A run dir that refuses writes never stops the estate (issue 14, item 1).

Root ignores permission bits, so the state file's write is made to fail the way a full or
read-only disk fails it for anyone: its temp path is a directory, so ``open(tmp, "w")``
raises ``IsADirectoryError`` (an ``OSError``, as ``ENOSPC`` and ``EROFS`` are).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pytest

from tests.integration.arbiter.conftest import alive, fdhttp_service
from tests.integration.arbiter.test_supervise import arbiter_lines, web_route
from tests.support.procs import free_port, wait_until


def test_unwritable_state_file_plus_a_replica_kill_keeps_the_estate_up(estate):
    port = free_port()
    e = estate(web_route(port) + fdhttp_service("web", port))
    status = e.status()
    arbiter_pid = status["arbiter"]["pid"]
    state_file = status["arbiter"]["state_file"]
    assert status["arbiter"].get("write_errors", {"total": 0})["total"] == 0
    blocker = f"{state_file}.{arbiter_pid}.tmp"
    os.mkdir(blocker)
    try:
        old = e.program("web")["replicas"][0]["pid"]
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: not alive(old), timeout=5, what="replica killed")

        def serving_again() -> bool:
            code, body, _ = e.get("/web/", timeout=2)
            return code == 200 and json.loads(body)["pid"] != old
        wait_until(serving_again, timeout=15, interval=0.05, what="served by a new replica")
        assert e.proc is not None and e.proc.poll() is None, e.log()
        # The new replica may answer before the arbiter's readiness probe has seen it.
        wait_until(lambda: e.program("web")["state"] == "READY", timeout=15,
                   what="web READY again")
        assert e.program("web")["replicas"][0]["restarts"] == 1
        writes = e.status()["arbiter"]["write_errors"]
        assert writes["total"] >= 1 and writes["failing"] == ["state"], writes
        assert "IsADirectoryError" in writes["targets"]["state"]["last_error"]
        assert len(arbiter_lines(e, "cannot write the state file")) == 1
    finally:
        os.rmdir(blocker)
    # The write is retried: once the disk takes it, the file is current and status says so.

    def recovered() -> bool:
        return e.status()["arbiter"]["write_errors"]["failing"] == []
    wait_until(recovered, timeout=10, what="state file written again")
    with open(state_file, encoding="utf-8") as fh:
        assert json.load(fh)["services"]["web"] == {"ready": 1, "replicas": 1,
                                                    "state": "READY"}
    assert arbiter_lines(e, "the state file")[-1].startswith(
        f"the state file {state_file} is written again")
    code, _, _ = e.get("/web/")
    assert code == 200


def immutable(path: str, on: bool) -> bool:
    """``chattr +i``/``-i`` on ``path`` (root cannot create, rename or unlink entries in an
    immutable directory); False where chattr or the file system does not support it."""
    if shutil.which("chattr") is None:
        return False
    done = subprocess.run(["chattr", "+i" if on else "-i", path], capture_output=True)
    return done.returncode == 0


def test_an_immutable_run_dir_plus_replica_kills_keeps_the_estate_up(estate):
    port = free_port()
    e = estate(web_route(port) + fdhttp_service("web", port) + """
[[routes]]
prefix = "/py2"
backend = "wsgi"
service = "legacy"

[services.legacy]
runtime = "py2"
app = "tests.integration.arbiter.wsgiapp:app"
""")
    assert e.get("/py2/x")[0] == 200
    if not immutable(e.run_dir, True):
        pytest.skip("chattr +i is not available here")
    try:
        probe = os.path.join(e.run_dir, "probe")
        with pytest.raises(OSError):
            open(probe, "w").close()
        old = {name: e.program(name)["replicas"][0]["pid"] for name in ("web", "legacy")}
        for pid in old.values():
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda pid=pid: not alive(pid), timeout=5, what="killed")

        def serving_again() -> bool:
            web, body, _ = e.get("/web/", timeout=2)
            py2, _, _ = e.get("/py2/x", timeout=2)
            return web == 200 and py2 == 200 and json.loads(body)["pid"] != old["web"]
        wait_until(serving_again, timeout=30, interval=0.1, what="served again")
        assert e.proc is not None and e.proc.poll() is None, e.log()
        for name, pid in old.items():
            # A new replica may answer before the arbiter's readiness probe has seen it.
            wait_until(lambda name=name: e.program(name)["state"] == "READY", timeout=15,
                       what=f"{name} READY again")
            prog = e.program(name)
            assert prog["replicas"][0]["pid"] != pid, prog
        writes = e.status()["arbiter"]["write_errors"]
        assert "state" in writes["failing"] and writes["total"] >= 1, writes
    finally:
        immutable(e.run_dir, False)
    wait_until(lambda: e.status()["arbiter"]["write_errors"]["failing"] == [], timeout=10,
               what="writes recovered")
