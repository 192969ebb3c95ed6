"""A real MDP broker for integration tests, and waiting for a service's workers.

Shared by the integration conftests (http, estate); the broker is started
through the test's ProcessGroup, so teardown kills it by PID::

    endpoint = start_broker(procs)                                 # tcp on a free port
    endpoint = start_broker(procs, "ipc://" + path, heartbeat_ms=250)
    wait_for_service(endpoint, "echo")                             # mmi.service says 200
"""

from __future__ import absolute_import, division, print_function

import os

from tests.support.procs import free_port, port_open, python3, wait_until


def start_broker(procs, endpoint=None, heartbeat_ms=500):
    # type: (object, str, int) -> str
    """``python -m gateway.broker`` on ``endpoint`` (default: loopback TCP, a free port).

    Returns once it is bound (the ipc path exists, or the port accepts).
    """
    if endpoint is None:
        endpoint = "tcp://127.0.0.1:%d" % free_port()
    proc = procs.spawn([python3(), "-m", "gateway.broker", "--bind", endpoint,  # type: ignore
                        "--heartbeat-ms", str(heartbeat_ms)])
    if endpoint.startswith("ipc://"):
        path = endpoint[len("ipc://"):]
        bound = lambda: os.path.exists(path)  # noqa: E731
    else:
        port = int(endpoint.rsplit(":", 1)[1])
        bound = lambda: port_open(port)  # noqa: E731
    wait_until(lambda: bound() or proc.poll() is not None, timeout=20, what="broker bound")
    assert proc.poll() is None, "the broker exited with %s" % proc.returncode
    return endpoint


def wait_for_service(endpoint, service, timeout=20.0):
    # type: (str, str, float) -> None
    """Poll mmi.service until ``service`` has a live worker at the broker."""
    from protocol.client import Client
    client = Client(endpoint, timeout=1.0)
    try:
        wait_until(lambda: client.mmi(service, timeout=1.0) == u"200", timeout,
                   what="a worker for %s" % service)
    finally:
        client.close()
