"""A broker killed with -9 and restarted on the same endpoint, against both brokers, with
py2 and py3 workers: the client notices the connection closing (SPEC 2.1), so calls that
must not run twice fail with Unavailable at once, and idempotent ones complete on the
restarted broker within their deadline."""

import os
import signal
import time

import pytest

from protocol.errors import Unavailable
from tests.support.procs import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(params=["zmtp", "libzmq"])
def worker_link(request: pytest.FixtureRequest) -> str:
    """Every fault here is survived on both worker links (SPEC 2.2)."""
    return str(request.param)


def inflight(rpc, service):
    stats = rpc.stats()
    return 0 if stats is None else stats["services"].get(service, {}).get("inflight", 0)


def test_calls_in_flight_across_a_broker_restart(rpc, workdir):
    # ipc: a TCP port left free while the broker is down may be taken by another process,
    # or by a reconnecting peer's own ephemeral port (a loopback self-connect).
    rpc.endpoint = "ipc://" + os.path.join(workdir, "broker.ipc")
    broker = rpc.broker(heartbeat_ms=250)
    rpc.worker("py3", "work", credit=2)
    rpc.worker("py2", "work", credit=2)
    rpc.wait_workers("work", 2)
    # Lazy Pirate probes are out of the way: only the socket monitor can act in time.
    client = rpc.client(timeout=30.0)
    client.probe_interval = 60.0
    idem = [client.submit("work", "sleep", 1.0, idem=True) for _ in range(2)]
    plain = [client.submit("work", "sleep", 1.0) for _ in range(2)]
    wait_until(lambda: inflight(rpc, "work") == 4, timeout=10, what="4 calls at workers")
    rpc.kill(broker, signal.SIGKILL)
    for call in plain:
        with pytest.raises(Unavailable):
            call.result()
        # Failed while the broker was still down, long before the 30 s deadline.
        assert time.time() < call.deadline
    assert client.broker_losses == 1 and client.resent == 2
    rpc.broker(heartbeat_ms=250)
    # The restarted broker knows no worker until each registers again (RFC 7).
    assert [call.result() for call in idem] == ["woke", "woke"]
    assert all(time.time() < call.deadline for call in idem)
    assert client.reconnects == 0
    assert client.call("work", "echo", ["after"]) == "after"
