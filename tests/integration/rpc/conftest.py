"""Fixtures for the RPC end-to-end tests: a broker process and worker processes per interpreter.

Every test runs once per broker implementation (the Python reference and the
compiled ``build/gateway-broker``)::

    def test_x(rpc):
        broker = rpc.broker()                       # rpc.impl: "python" or "native"
        rpc.worker("py2", "calc")                   # python2 -m protocol.worker ...
        rpc.wait_workers("calc", 1)
        with rpc.client() as c: ...
"""

import json
import os
import signal
import subprocess

import pytest
import zmq

from protocol import mdp
from protocol.client import Client
from tests.support.broker import IMPLEMENTATIONS, broker_argv
from tests.support.procs import ProcessGroup, free_port, python2, python3, wait_until

TABLE = "tests.integration.rpc.services:TABLE"


class Rpc:
    """Starts the broker and workers through a ProcessGroup (stopped by PID)."""

    def __init__(self, procs: ProcessGroup, workdir: str, impl: str = "python",
                 link: str = "auto") -> None:
        self.impl = impl
        self.link = link  # the workers' link to the broker (python -m protocol.worker --link)
        self.procs = procs
        self.workdir = workdir
        self.port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.broker_proc: subprocess.Popen | None = None
        self.clients: list[Client] = []
        self.ctx = zmq.Context.instance()

    @staticmethod
    def interpreter(which: str) -> str:
        """The interpreter path for "py2" or "py3"."""
        return python2() if which == "py2" else python3()

    def broker(self, heartbeat_ms: int = 250, extra: tuple[str, ...] = ()) -> subprocess.Popen:
        """Start the broker on this harness's port and wait until it answers."""
        argv = broker_argv(self.impl, ["--bind", self.endpoint,
                                       "--heartbeat-ms", str(heartbeat_ms), *extra])
        self.broker_proc = self.procs.spawn(argv, stdout=subprocess.DEVNULL)
        wait_until(lambda: self.stats() is not None, timeout=15, what="broker answering")
        return self.broker_proc

    def worker(self, which: str, service: str, target: str = TABLE, credit: int = 1,
               env: dict | None = None) -> subprocess.Popen:
        """Start ``python -m protocol.worker`` under ``which`` for ``service``."""
        argv = [self.interpreter(which), "-m", "protocol.worker", "--broker", self.endpoint,
                "--service", service, "--credit", str(credit), "--link", self.link, target]
        return self.procs.spawn(argv, env=env)

    def stats(self, timeout: float = 0.5) -> dict | None:
        """The broker's ``mmi.stats`` answer, or None when it does not answer in time."""
        sock = self.ctx.socket(zmq.DEALER)
        sock.linger = 0
        try:
            sock.connect(self.endpoint)
            sock.send_multipart(mdp.client_request(mdp.MMI_STATS, []))
            if not sock.poll(int(timeout * 1000)):
                return None
            return json.loads(sock.recv_multipart()[3])
        finally:
            sock.close(linger=0)

    def workers(self, service: str) -> int:
        """How many live workers the broker has for ``service`` (0 when it is down)."""
        stats = self.stats()
        if stats is None:
            return 0
        return int(stats["services"].get(service, {}).get("workers", 0))

    def wait_workers(self, service: str, count: int, timeout: float = 20.0) -> None:
        """Poll until exactly ``count`` workers serve ``service``."""
        wait_until(lambda: self.workers(service) == count, timeout=timeout,
                   what=f"{count} worker(s) for {service}")

    def client(self, timeout: float = 10.0) -> Client:
        """A py3 client on the broker, closed after the test."""
        c = Client(self.endpoint, timeout=timeout, probe_interval=0.5)
        self.clients.append(c)
        return c

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one process by PID."""
        self.procs.signal(proc, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            proc.wait(timeout=10)

    def close(self) -> None:
        """Close the clients this harness made (processes belong to the ProcessGroup)."""
        for c in self.clients:
            c.close()


@pytest.fixture
def worker_link() -> str:
    """The workers' broker link; a module that tests both overrides this with params."""
    return "auto"


@pytest.fixture(params=IMPLEMENTATIONS)
def rpc(request: pytest.FixtureRequest, procs: ProcessGroup, workdir: str, worker_link: str):
    """An :class:`Rpc` harness per broker; its processes are stopped by PID after the test."""
    harness = Rpc(procs, workdir, str(request.param), worker_link)
    try:
        yield harness
    finally:
        harness.close()
        for proc in procs.procs:  # a SIGSTOPped child would ignore SIGTERM until resumed
            procs.signal(proc, signal.SIGCONT)


def exec_log(workdir: str) -> str:
    """Path of the per-test file where ``work`` records each execution."""
    return os.path.join(workdir, "executions.log")
