"""Real processes for the HTTP front's end-to-end tests: upstreams, gateway, broker, workers.

Every process goes through the ``procs`` fixture (killed by PID in teardown);
readiness is polled with deadlines, never slept for.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.broker import start_broker, wait_for_service
from tests.support.procs import ProcessGroup, free_port, port_open, python2, wait_until

__all__ = ["start_broker", "wait_for_service"]  # the tests import them from here

UPSTREAM = "tests.integration.http.upstream:app"


@dataclass
class Server:
    """A started server: its base URL, port and process."""

    url: str
    port: int
    proc: Any

    def worker_pids(self) -> list[int]:
        """The PIDs of the gunicorn workers under this master."""
        path = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"
        with open(path) as fh:
            return [int(p) for p in fh.read().split()]


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def start_gunicorn(procs: ProcessGroup, app: str, workers: int = 1, threads: int = 8,
                   python: str = sys.executable) -> Server:
    """gunicorn (gthread) serving ``app`` on a free loopback port."""
    port = free_port()
    proc = procs.spawn([python, "-m", "gunicorn", "-k", "gthread", "-w", str(workers),
                        "--threads", str(threads), "-b", f"127.0.0.1:{port}",
                        "--log-level", "warning", app])
    wait_until(lambda: port_open(port) or proc.poll() is not None, 20, what="gunicorn")
    assert proc.poll() is None, "gunicorn exited"
    return Server(f"http://127.0.0.1:{port}", port, proc)


def start_gateway(procs: ProcessGroup, workdir: str, http: dict[str, Any], workers: int = 1,
                  dev: bool = False, observability: dict[str, Any] | None = None,
                  **gunicorn: Any) -> Server:
    """The gateway (gunicorn unless ``dev``) for the given ``http`` config values.

    ``observability`` holds ObservabilityConfig's fields (an access log, metrics).
    """
    port = free_port()
    spec = {"http": http, "bind": f"127.0.0.1:{port}", "workers": workers, "dev": dev,
            "gunicorn": gunicorn, "threads": gunicorn.get("threads", 8)}
    if observability:
        spec["observability"] = observability
    path = os.path.join(workdir, f"gateway-{port}.json")
    with open(path, "w") as fh:
        json.dump(spec, fh)
    proc = procs.spawn([sys.executable, "-m", "tests.integration.http.launch", path])
    wait_until(lambda: port_open(port) or proc.poll() is not None, 20, what="gateway")
    assert proc.poll() is None, "gateway exited"
    return Server(f"http://127.0.0.1:{port}", port, proc)


def start_wsgi_worker(procs: ProcessGroup, endpoint: str, service: str, app: str,
                      python: str = sys.executable) -> Any:
    """``python -m protocol.wsgi`` hosting ``app`` for ``service``."""
    return procs.spawn([python, "-m", "protocol.wsgi", "--broker", endpoint,
                        "--service", service, app])


@pytest.fixture
def upstream(procs: ProcessGroup) -> Server:
    """The echo upstream under gunicorn (Python 3)."""
    return start_gunicorn(procs, UPSTREAM)


@pytest.fixture(scope="module")
def module_procs() -> Iterator[ProcessGroup]:
    """A ProcessGroup shared by one test module, stopped (by PID) after it."""
    group = ProcessGroup()
    try:
        yield group
    finally:
        group.close()


@pytest.fixture(scope="module")
def module_workdir() -> Iterator[str]:
    """A temporary directory shared by one test module."""
    path = tempfile.mkdtemp(prefix="gw-http-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def gateway_factory(procs: ProcessGroup, workdir: str) -> Callable[..., Server]:
    """Start a gateway for a given http config."""
    def make(http: dict[str, Any], **kwargs: Any) -> Server:
        return start_gateway(procs, workdir, http, **kwargs)
    return make


@pytest.fixture
def broker(procs: ProcessGroup) -> str:
    """A running broker's endpoint."""
    return start_broker(procs)


@pytest.fixture
def py2() -> str:
    """The Python 2.7 interpreter (skips when the environment has none)."""
    try:
        return python2()
    except RuntimeError as exc:
        pytest.skip(str(exc))
