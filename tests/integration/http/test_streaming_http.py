"""The ``http`` backend passes a response on as it arrives, small or large, through the front.

The upstream (``gated_upstream``) sends the head and the first body byte,
then holds the rest until the test releases it, which the test does only
once its client has read that byte. A gateway that waits for more of the
body before sending anything cannot pass: the read of byte 1 runs into its
deadline. Nothing here measures time.
"""

from __future__ import annotations

import http.client
import sys
import uuid
from typing import Any

import pytest

from tests.integration.http.client import fetch
from tests.integration.http.conftest import Server, start_gateway
from tests.integration.http.gated_upstream import body_of
from tests.support.procs import free_port, port_open, wait_until

DEADLINE = 15.0  # seconds for each network wait; the upstream's gate holds 60


@pytest.fixture(scope="module")
def gated(module_procs: Any) -> int:
    """The gated upstream's port."""
    port = free_port()
    proc = module_procs.spawn([sys.executable, "-m", "tests.integration.http.gated_upstream",
                               str(port)])
    wait_until(lambda: port_open(port) or proc.poll() is not None, 20, what="gated upstream")
    assert proc.poll() is None, "the gated upstream exited"
    return port


@pytest.fixture(scope="module", params=["front", "dev"])
def gateway(request: Any, module_procs: Any, module_workdir: str, gated: int) -> Server:
    """The gateway on its production front server, and on the development server."""
    return start_gateway(module_procs, module_workdir, {"routes": [
        {"prefix": "/g", "backend": "http", "upstream": f"http://127.0.0.1:{gated}",
         "strip_prefix": True}]}, dev=request.param == "dev")


def _release(port: int, key: str) -> None:
    answer = fetch(port, "POST", f"/release/{key}", body=b"", timeout=DEADLINE)
    assert answer.status == 204


@pytest.mark.parametrize("framing,size", [
    ("length", 8),          # the reported case: a small body with Content-Length
    ("length", 1),          # all of it arrives with the head
    ("length", 200_000),    # larger than one read
    ("chunked", 1),
    ("chunked", 8),
    ("chunked", 200_000),
])
def test_first_byte_arrives_before_the_rest_exists(gateway: Server, gated: int, framing: str,
                                                   size: int) -> None:
    key = uuid.uuid4().hex
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=DEADLINE)
    try:
        conn.request("GET", f"/g/gated/{key}?framing={framing}&size={size}")
        try:
            response = conn.getresponse()
            first = response.read(1)
        except TimeoutError:
            pytest.fail("the gateway held the head and first byte back, waiting for more body")
        assert response.status == 200
        assert first == b"x"
        # Only now does the rest of the body exist.
        if size > 1:
            _release(gated, key)
        rest = response.read()
    finally:
        conn.close()
    assert first + rest == body_of(size)
    if framing == "length":
        assert response.getheader("Content-Length") == str(size)



@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_the_head_is_not_held_for_the_body(gateway: Server, gated: int, framing: str) -> None:
    # The upstream sends its head alone and the body only when released, which
    # happens once the client has the status line.
    key = uuid.uuid4().hex
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=DEADLINE)
    try:
        conn.request("GET", f"/g/gated/{key}?framing={framing}&size=8&first=0")
        try:
            response = conn.getresponse()
        except TimeoutError:
            pytest.fail("the gateway held the response head back until body data came")
        assert response.status == 200
        _release(gated, key)
        assert response.read() == body_of(8)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def front(module_procs: Any, module_workdir: str, gated: int) -> Server:
    """The gateway on its production front server only (the dev server has no such duty)."""
    return start_gateway(module_procs, module_workdir, {"routes": [
        {"prefix": "/g", "backend": "http", "upstream": f"http://127.0.0.1:{gated}",
         "strip_prefix": True}]})


def test_a_client_that_hangs_up_closes_the_upstream_connection(front: Server,
                                                               gated: int) -> None:
    """The front sees the client leave mid-stream and lets go of the upstream at once.

    The upstream holds its response after the first byte until its client (the
    gateway) closes the connection, and says when that happened. A front that
    only notices a gone client when it next writes would hold it for the whole
    gate (60 s): the wait below would run into its deadline.
    """
    key = uuid.uuid4().hex
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=DEADLINE)
    conn.request("GET", f"/g/gated/{key}?framing=chunked&size=1000&watch=1")
    response = conn.getresponse()
    assert response.status == 200 and response.read1(1) == b"x"
    conn.close()

    def upstream_saw_close() -> bool:
        check = http.client.HTTPConnection("127.0.0.1", gated, timeout=DEADLINE)
        try:
            check.request("GET", f"/closed/{key}")
            return check.getresponse().read() == b"yes"
        finally:
            check.close()

    wait_until(upstream_saw_close, DEADLINE, what="the upstream connection closed")
