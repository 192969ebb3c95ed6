"""Fixtures for end-to-end tests of ``gateway up``: a whole estate per test, always torn down.

::

    def test_x(estate):
        e = estate(SERVICES_TOML)          # writes gateway.toml, runs `gateway up`, waits READY
        e.get("/web/")                     # through the HTTP front
        e.status()["programs"]             # over the control channel
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gateway.arbiter import control
from tests.support.procs import ProcessGroup, free_port, python2, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
FDHTTP = os.path.join(HERE, "fdhttp.py")


def fdhttp_service(name: str, port: int, runtime: str = "py3", replicas: int = 1,
                   extra: str = "") -> str:
    """A ``[services.NAME]`` table running fdhttp.py under ``runtime`` on an owned socket."""
    python = python2() if runtime == "py2" else sys.executable
    return f"""
[services.{name}]
runtime = "command"
command = [{json.dumps(python)}, {json.dumps(FDHTTP)}, "--fd", "{{fd}}", "--name", "{runtime}"]
listen = "127.0.0.1:{port}"
ready = "http:http://127.0.0.1:{port}/health"
replicas = {replicas}
stop_grace_s = 5
{extra}
"""


class Estate:
    """One running ``gateway up`` and its config file."""

    def __init__(self, procs: ProcessGroup, workdir: str, body: str, front: bool = True,
                 heartbeat_ms: int = 500) -> None:
        self.procs = procs
        self.workdir = workdir
        self.port = free_port()
        self.run_dir = os.path.join(workdir, "run")
        self.path = os.path.join(workdir, "gateway.toml")
        self.front = front
        self.heartbeat_ms = heartbeat_ms
        self.write(body)
        self.log_path = os.path.join(workdir, "arbiter.log")
        self.pgids: set[int] = set()
        self.proc: subprocess.Popen[bytes] | None = None

    def header(self) -> str:
        """The ``[gateway]`` table every test config starts with."""
        front = "true" if self.front else "false"
        return (f'[gateway]\nlisten = "127.0.0.1:{self.port}"\nrun_dir = "{self.run_dir}"\n'
                f"workers = 2\nthreads = 4\nstop_grace_s = 3\nfront = {front}\n"
                f"[broker]\nenabled = {front}\nheartbeat_ms = {self.heartbeat_ms}\n"
                f"[runtimes]\npy2 = {json.dumps(python2())}\npy3 = {json.dumps(sys.executable)}\n")

    def write(self, body: str) -> None:
        """(Re)write the config file."""
        with open(self.path, "w", encoding="utf-8") as fh:
            fh.write(self.header() + body)

    def launch(self, env: dict[str, str] | None = None) -> Estate:
        """Run ``gateway up`` without waiting for anything."""
        with open(self.log_path, "ab") as log:
            self.proc = self.procs.spawn(
                [sys.executable, "-m", "gateway", "-c", self.path, "up", "--log-format", "json"],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def start(self, env: dict[str, str] | None = None, timeout: float = 60.0) -> Estate:
        """Run ``gateway up`` and wait until every program is READY."""
        self.launch(env)
        self.wait_ready(timeout)
        return self

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """The arbiter's status document; remembers every process group it shows."""
        result: dict[str, Any] = control.call(os.path.join(self.run_dir, "arbiter.sock"),
                                              {"cmd": "status"}, timeout=timeout)
        for prog in result["programs"]:
            self.pgids.update(r["pgid"] for r in prog["replicas"] if r["pgid"])
        if result["arbiter"]["guard_pid"]:  # the guard leads its own session
            self.pgids.add(result["arbiter"]["guard_pid"])
        return result

    def program(self, name: str) -> dict[str, Any]:
        """One program's entry in the status."""
        return next(p for p in self.status()["programs"] if p["name"] == name)

    def states(self) -> dict[str, str]:
        """Program name -> state."""
        try:
            return {p["name"]: p["state"] for p in self.status()["programs"]}
        except control.ControlError:
            return {}

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Every program READY (fails early if the arbiter exits)."""
        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            states = self.states()
            return bool(states) and all(s == "READY" for s in states.values())
        wait_until(ready, timeout=timeout, what="every program READY")

    def reload(self, service: str | None = None, timeout: float = 60.0) -> Any:
        """``gateway reload [service]`` through the control channel."""
        request: dict[str, Any] = {"cmd": "reload"}
        if service:
            request["service"] = service
        return control.call(os.path.join(self.run_dir, "arbiter.sock"), request, timeout)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes, float]:
        """GET through the front: status (0 if no HTTP answer), body and seconds taken."""
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=timeout) as resp:
                return resp.status, resp.read(), time.monotonic() - t0
        except urllib.error.HTTPError as exc:
            body = exc.read()
            exc.close()
            return exc.code, body, time.monotonic() - t0
        except OSError as exc:  # refused, reset or timed out: status 0
            return 0, str(exc).encode(), time.monotonic() - t0

    def log(self) -> str:
        """The arbiter's output so far (for assertion messages)."""
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()[-6000:]

    def close(self) -> None:
        """Graceful stop, then SIGKILL what is left of the process groups the estate showed.

        Only groups that still have live members are signalled: a recorded id whose
        group is empty may since have been reused by an unrelated process.
        """
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.status()
            except control.ControlError:
                pass
            self.procs.stop(self.proc, grace=20.0)
        for pgid in self.pgids:
            if group_members(pgid):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except OSError:
                    pass


@pytest.fixture
def estate(procs: ProcessGroup, workdir: str) -> Iterator[Callable[..., Estate]]:
    """Factory: ``estate(body, front=True, start=True)`` -> a running :class:`Estate`."""
    made: list[Estate] = []

    def make(body: str, front: bool = True, start: bool = True,
             env: dict[str, str] | None = None, heartbeat_ms: int = 500) -> Estate:
        e = Estate(procs, workdir, body, front, heartbeat_ms)
        made.append(e)
        return e.start(env) if start else e

    try:
        yield make
    finally:
        for e in made:
            e.close()


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def group_members(pgid: int) -> list[int]:
    """PIDs of live (non-zombie) processes whose process group is ``pgid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry))
    return out
