"""Streamed WSGI replies through the real front, broker and py2/py3 workers (SPEC 2.7, 2.11, 6.3).

- time to first byte is the app's: byte 1 reaches the client before the app
  makes byte 2 (the app waits for a file the test writes after reading byte 1);
- a route's timeout bounds the wait for the head, not the whole stream, and a
  gap longer than its idle timeout cuts the connection (no fake complete body);
- clients that hang up cancel their streams: the app's iterable is closed and
  the replicas are free for the next request;
- a request cancelled while queued at the broker never reaches the app.
"""

from __future__ import annotations

import http.client
import os
import threading
import urllib.parse

import pytest

from protocol import codec
from protocol.client import Client
from protocol.errors import Timeout
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


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_first_byte_arrives_before_the_app_makes_the_second(
        stream: Estate, runtime: str) -> None:
    gate = os.path.join(stream.workdir, f"gate-{runtime}")
    s = Stream(stream.gateway.port, f"/{runtime}/gated?gate={urllib.parse.quote(gate)}")
    try:
        assert s.resp.status == 200
        # Were byte 1 held back until the app yielded again, this read would run into
        # the connection's deadline: the app makes byte 2 only once the gate exists.
        assert s.read(1) == b"1"
        assert not os.path.exists(gate)
        open(gate, "w").close()
        assert s.resp.read() == b"2"
    finally:
        s.hang_up()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_stream_longer_than_the_timeout_is_delivered_whole(
        stream: Estate, runtime: str) -> None:
    # /-short: a 2 s deadline for the head, 3 s gaps allowed; the stream lasts ~4 s.
    answer = fetch(stream.gateway.port, "GET", f"/{runtime}-short/ticks?n=17&gap=0.25",
                   timeout=20)
    assert answer.status == 200
    assert answer.body == b"".join(b"tick%d\n" % i for i in range(17))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_idle_gap_longer_than_the_idle_timeout_cuts_the_connection(
        stream: Estate, runtime: str) -> None:
    # /-idle: 1 s between parts at most; the app pauses 3 s before its third tick.
    s = Stream(stream.gateway.port, f"/{runtime}-idle/ticks?n=4&gap=0.05&stall=2&pause=3",
               timeout=20)
    try:
        assert s.resp.status == 200
        assert s.read(12) == b"tick0\ntick1\n"
        with pytest.raises(http.client.IncompleteRead) as cut:
            s.resp.read()
        assert b"tick2" not in cut.value.partial
    finally:
        s.hang_up()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_abandoned_streams_are_cancelled_and_free_their_replicas(
        stream: Estate, runtime: str) -> None:
    tags = [f"abandoned-{runtime}-{i}" for i in range(REPLICAS)]
    streams = []
    try:
        for tag in tags:  # 150 bytes, 0.2 s apart: 30 s of work for each replica
            s = Stream(stream.gateway.port, f"/{runtime}/drip?n=150&gap=0.2&tag={tag}")
            streams.append(s)
            assert s.resp.status == 200
            assert s.read(1) == b"."
        wait_for_lines(stream, runtime, [f"start {t}" for t in tags], what="every replica busy")
    finally:
        for s in streams:
            s.hang_up()
    wait_for_lines(stream, runtime, [f"close {t}" for t in tags],
                   what="close() of every abandoned stream's iterable")
    # Without cancels every replica would stay busy for 30 s and this would be a 504.
    answer = fetch(stream.gateway.port, "GET", f"/{runtime}/hello", timeout=20)
    assert (answer.status, answer.body) == (200, b"hello")


def _http(target: str) -> codec.Envelope:
    path, _, query = target.partition("?")
    return codec.Envelope("http", http={"method": "GET", "path_info": path,
                                        "query_string": query, "headers": []},
                          payload=codec.Bytes(b""))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_request_cancelled_while_queued_is_never_dispatched(
        stream: Estate, runtime: str) -> None:
    service = "s" + runtime[-1]
    before = broker_stats(stream.broker)["counters"].get("cancelled", 0)
    busy_client = Client(stream.broker, timeout=10.0)
    queued_client = Client(stream.broker, timeout=10.0)
    busy = [busy_client.request(service, _http(f"/drip?n=150&gap=0.2&tag=busy-{runtime}-{i}"))
            for i in range(REPLICAS)]
    queued = _http(f"/drip?n=3&gap=0.01&tag=queued-{runtime}")
    outcome: list[BaseException] = []

    def ask() -> None:
        try:
            list(queued_client.request(service, queued, timeout=4.0))
        except Timeout as exc:  # a cancelled request is never answered
            outcome.append(exc)

    asker = threading.Thread(target=ask)
    try:
        for replies in busy:  # every replica now streams
            assert next(replies).kind == "http-response"
        asker.start()
        wait_until(lambda: broker_stats(stream.broker)["services"][service]["waiting"] == 1,
                   10, what="the request queued behind the busy replicas")
        queued_client.cancel(service, queued.id)
        wait_until(lambda: broker_stats(stream.broker)["counters"].get("cancelled", 0)
                   == before + 1, 10, what="the broker dropping the queued request")
        assert broker_stats(stream.broker)["services"][service]["waiting"] == 0
    finally:
        for replies in busy:
            replies.close()  # cancels the busy streams
        asker.join(15)
        busy_client.close()
        queued_client.close()
    assert len(outcome) == 1
    wait_for_lines(stream, runtime, [f"close busy-{runtime}-{i}" for i in range(REPLICAS)])
    for _ in range(2 * REPLICAS):  # every replica answers again, and none ran the cancelled one
        answer = fetch(stream.gateway.port, "GET", f"/{runtime}/hello", timeout=20)
        assert (answer.status, answer.body) == (200, b"hello")
    assert f"start queued-{runtime}" not in stream.log(runtime)
