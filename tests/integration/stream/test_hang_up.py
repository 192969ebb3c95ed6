"""A client that hangs up before its response head: the request is cancelled at the broker.

The front learns of the lost connection from its HTTP server (a callback,
:mod:`gateway.http.disconnect`) while the request waits in the broker's queue
behind busy replicas; the broker must drop it unanswered and no worker may run it.
"""

from __future__ import annotations

import socket
import struct

import pytest

from tests.integration.http.client import fetch
from tests.integration.stream.conftest import (
    REPLICAS,
    RUNTIMES,
    Estate,
    Stream,
    broker_stats,
    wait_for_lines,
)
from tests.support.procs import wait_until


def _cancelled(stream: Estate) -> int:
    return int(broker_stats(stream.broker)["counters"].get("cancelled", 0))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_client_that_hangs_up_while_queued_cancels_its_request(
        stream: Estate, runtime: str) -> None:
    service = "s" + runtime[-1]
    port = stream.gateway.port
    before = _cancelled(stream)
    busy: list[Stream] = []
    try:
        for i in range(REPLICAS):  # every replica streams for 30 s
            s = Stream(port, f"/{runtime}/drip?n=150&gap=0.2&tag=hold-{runtime}-{i}")
            busy.append(s)
            assert s.resp.status == 200
            assert s.read(1) == b"."
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            sock.sendall(f"GET /{runtime}/drip?n=3&gap=0.01&tag=gone-{runtime} HTTP/1.1\r\n"
                         "Host: 127.0.0.1\r\n\r\n".encode("ascii"))
            wait_until(lambda: broker_stats(stream.broker)["services"][service]["waiting"] == 1,
                       10, what="the request queued behind the busy replicas")
        finally:
            # A reset, as from a client that was killed; no response head was sent yet.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        wait_until(lambda: _cancelled(stream) == before + 1, 10,
                   what="the broker dropping the request of the client that left")
        assert broker_stats(stream.broker)["services"][service]["waiting"] == 0
    finally:
        for s in busy:
            s.hang_up()
    wait_for_lines(stream, runtime, [f"close hold-{runtime}-{i}" for i in range(REPLICAS)])
    answer = fetch(port, "GET", f"/{runtime}/hello", timeout=20)
    assert (answer.status, answer.body) == (200, b"hello")
    assert f"start gone-{runtime}" not in stream.log(runtime)
