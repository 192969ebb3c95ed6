"""One broker, py2 and py3 replicas of the streaming apps, and a gateway front in front of them.

The estate is shared by a test module (``stream``); every process goes through
a ProcessGroup and is killed by PID afterwards. Each runtime has its own
service (``s2``, ``s3``) with :data:`REPLICAS` replicas, mounted at several
prefixes that differ only in their timeouts.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import zmq

from tests.integration.http.conftest import Server, start_gateway
from tests.support.broker import start_broker, wait_for_service
from tests.support.procs import ProcessGroup, python2, wait_until

APP = "tests.integration.stream.apps:app"
REPLICAS = 2
RUNTIMES = ("py2", "py3")

# prefix suffix -> (timeout s, idle_timeout s)
MOUNTS = {
    "": (5.0, 5.0),         # everyday: a 5 s deadline for the head
    "-short": (2.0, 3.0),   # a deadline far shorter than the streams it serves
    "-idle": (5.0, 1.0),    # gaps longer than a second end the stream
}


@dataclass
class Estate:
    """What the tests talk to."""

    broker: str
    gateway: Server
    logs: dict[str, str]
    workdir: str

    def log(self, runtime: str) -> list[str]:
        """The apps' event lines for ``runtime`` (without the pid)."""
        try:
            with open(self.logs[runtime]) as fh:
                return [line.split(" ", 1)[1].rstrip("\n") for line in fh]
        except FileNotFoundError:
            return []


@pytest.fixture(scope="module")
def stream(module_procs: ProcessGroup, module_workdir: str) -> Estate:
    """The shared estate; skips when there is no Python 2.7."""
    try:
        py2 = python2()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    endpoint = start_broker(module_procs)
    logs = {}
    for runtime, python in (("py2", py2), ("py3", sys.executable)):
        logs[runtime] = os.path.join(module_workdir, f"{runtime}.log")
        for _ in range(REPLICAS):
            module_procs.spawn([python, "-m", "protocol.wsgi", "--broker", endpoint,
                                "--service", "s" + runtime[-1], APP],
                               env={"STREAM_LOG": logs[runtime]})
    routes = [{"prefix": f"/{runtime}{suffix}", "backend": "wsgi", "service": "s" + runtime[-1],
               "timeout": timeout, "idle_timeout": idle}
              for runtime in RUNTIMES for suffix, (timeout, idle) in MOUNTS.items()]
    gateway = start_gateway(module_procs, module_workdir, {"routes": routes, "broker": endpoint})
    for runtime in RUNTIMES:
        wait_for_service(endpoint, "s" + runtime[-1])
    return Estate(endpoint, gateway, logs, module_workdir)


@pytest.fixture(scope="module")
def module_procs() -> Iterator[ProcessGroup]:
    group = ProcessGroup()
    try:
        yield group
    finally:
        group.close()


@pytest.fixture(scope="module")
def module_workdir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("stream"))


class Stream:
    """One streamed GET, read as it arrives (every read has the connection's deadline)."""

    def __init__(self, port: int, target: str, timeout: float = 10.0) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", target)
        self.resp = self.conn.getresponse()

    def read(self, n: int) -> bytes:
        """Exactly ``n`` body bytes (fewer only at the end of the body)."""
        return self.resp.read(n)

    def hang_up(self) -> None:
        """Go away mid-body, with a reset (SO_LINGER 0), as a client that was killed."""
        sock = self.conn.sock
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.resp.close()
        self.conn.close()


def broker_stats(endpoint: str, timeout: float = 5.0) -> dict[str, Any]:
    """The broker's ``mmi.stats`` answer (counters, services), read with a deadline."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send_multipart([b"", b"MDPC01", b"mmi.stats"])
        deadline = time.time() + timeout
        while (left := deadline - time.time()) > 0:
            if sock.poll(int(left * 1000) + 1):
                frames = sock.recv_multipart()
                return dict(json.loads(frames[3]))
        raise AssertionError("the broker did not answer mmi.stats in time")
    finally:
        sock.close(linger=0)


def wait_for_lines(estate: Estate, runtime: str, lines: list[str], timeout: float = 15.0,
                   what: str = "log lines") -> None:
    """Wait until every one of ``lines`` is in ``runtime``'s app log."""
    wait_until(lambda: all(line in estate.log(runtime) for line in lines), timeout,
               what=what)
