"""``--bind-local`` and ``--events-local`` (SPEC 2.15) on both brokers, as processes.

A gateway host's broker serves its own front and services over plain ipc://
and remote worker hosts over CURVE TCP, from one ROUTER socket.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import zmq
import zmq.auth

from protocol.client import Client
from protocol.errors import Timeout
from protocol.events import Publisher, Subscriber
from tests.support.broker import IMPLEMENTATIONS, BrokerProcess, broker_argv
from tests.support.procs import ProcessGroup, free_port, wait_until


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> str:
    """Every test runs against the Python broker and the compiled one."""
    return str(request.param)


def test_local_endpoints_stay_plain_beside_a_curve_one(procs: ProcessGroup, impl: str,
                                                       workdir: str) -> None:
    _, secret_file = zmq.auth.create_certificates(workdir, "broker")
    server_public, _ = zmq.auth.load_certificate(secret_file)
    public, secret = zmq.curve_keypair()
    ipc = "ipc://" + os.path.join(workdir, "broker.ipc")
    pub = "ipc://" + os.path.join(workdir, "events-in.ipc")
    sub = "ipc://" + os.path.join(workdir, "events-out.ipc")
    b = BrokerProcess(procs, impl, extra=("--bind-local", ipc, "--curve-secret", secret_file,
                                          "--events-pub", pub, "--events-sub", sub,
                                          "--events-local"))
    assert ipc in b.ready_line and b.endpoint in b.ready_line
    with Client(ipc, timeout=3.0) as local:
        assert local.mmi("calc") == "404"  # plain on the local endpoint
    with Client(b.endpoint, timeout=3.0, curve=(server_public, public, secret)) as remote:
        assert remote.mmi("calc") == "404"  # CURVE on the TCP one
    with Client(b.endpoint, timeout=0.5) as plain, pytest.raises(Timeout):
        plain.mmi("calc")  # and nothing plain there
    # The events proxy stayed plain: a keyless publisher reaches a keyless subscriber.
    subscriber = Subscriber(sub, [b""])
    publisher = Publisher(pub)
    try:
        got: list[object] = []

        def delivered() -> bool:
            publisher.publish("probe.topic", {"n": 1})
            msg = subscriber.recv(timeout=0.1)
            if msg is not None:
                got.append(msg)
            return bool(got)

        wait_until(delivered, 10.0, what="an event through the plain proxy")
    finally:
        publisher.close()
        subscriber.close()


@pytest.mark.parametrize("flags", [("--bind-local", "tcp://192.0.2.1:%d"),
                                   ("--events-local", "--events-pub", "tcp://192.0.2.1:%d",
                                    "--events-sub", "tcp://127.0.0.1:%d")])
def test_plain_endpoints_must_be_loopback_even_with_keys(procs: ProcessGroup, impl: str,
                                                         workdir: str,
                                                         flags: tuple[str, ...]) -> None:
    _, secret_file = zmq.auth.create_certificates(workdir, "broker")
    args = [f % free_port() if "%d" in f else f for f in flags]
    proc = procs.spawn(broker_argv(impl, ["--bind", f"tcp://127.0.0.1:{free_port()}",
                                          "--curve-secret", secret_file, *args]),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert b"192.0.2.1" in err and b"Traceback" not in err
    assert b"broker ready" not in out
