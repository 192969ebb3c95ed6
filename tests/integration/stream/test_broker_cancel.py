"""The broker's side of cancels (SPEC 2.11), with hand-driven MDP workers on a real broker.

A queued request is dropped, an in-flight one is forwarded to a worker that
said ``"cancel": true`` (without using its credit) and ignored for one that
did not; the broker never answers a cancel itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from gateway.broker import Broker, BrokerConfig
from protocol import codec, mdp
from tests.support.procs import wait_until


class HandWorker:
    """A DEALER speaking MDPW01 by hand; it answers only when told to."""

    def __init__(self, endpoint: str, meta: dict[str, Any] | None) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        self.sock.send_multipart(mdp.worker_ready(b"web", meta))

    def next_request(self, timeout: float = 5.0) -> tuple[bytes, list[bytes]]:
        deadline = time.time() + timeout
        while (left := deadline - time.time()) > 0:
            if self.sock.poll(max(1, int(left * 1000))):
                command, rest = mdp.split_worker(self.sock.recv_multipart())
                if command == mdp.REQUEST:
                    return mdp.split_address(rest)
                self.sock.send_multipart(mdp.heartbeat())
        raise AssertionError("no request reached the worker")

    def reply(self, client: bytes, env: codec.Envelope) -> None:
        self.sock.send_multipart(mdp.worker_reply(client, codec.encode(env)))

    def close(self) -> None:
        self.sock.close(linger=0)


class HandClient:
    """A DEALER speaking MDPC01 by hand."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)

    def send(self, env: codec.Envelope) -> None:
        self.sock.send_multipart(mdp.client_request(b"web", codec.encode(env)))

    def recv(self, timeout: float = 5.0) -> codec.Envelope:
        if not self.sock.poll(int(timeout * 1000)):
            raise AssertionError("no reply reached the client")
        return codec.decode(self.sock.recv_multipart()[3:])

    def close(self) -> None:
        self.sock.close(linger=0)


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker(BrokerConfig(endpoints=("tcp://127.0.0.1:*",), heartbeat_ms=200))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def hands(broker: Broker) -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for sock in made:
        sock.close()


def _request() -> codec.Envelope:
    return codec.Envelope("http", deadline=mdp.deadline_in(10), http={"method": "GET"},
                          payload=codec.Bytes(b""))


def _cancel(env: codec.Envelope) -> codec.Envelope:
    return codec.Envelope("cancel", id=env.id)


def _counter(broker: Broker, name: str) -> int:
    return int(broker.stats()["counters"].get(name, 0))


def _wait(predicate: Any, what: str) -> None:
    wait_until(predicate, 5, what=what)


def test_a_cancel_reaches_a_worker_that_honours_them_without_using_credit(
        broker: Broker, hands: list[Any]) -> None:
    worker = HandWorker(broker.endpoints[0], {"cancel": True})
    client = HandClient(broker.endpoints[0])
    hands += [worker, client]
    first, second = _request(), _request()
    client.send(first)
    address, body = worker.next_request()
    assert codec.decode(body).id == first.id
    client.send(second)  # queued: the worker's one credit is taken
    _wait(lambda: broker.stats()["services"]["web"]["waiting"] == 1, "the second queued")
    client.send(_cancel(first))
    cancel_address, cancel_body = worker.next_request()
    cancel = codec.decode(cancel_body)
    assert (cancel_address, cancel.kind, cancel.id) == (address, "cancel", first.id)
    assert _counter(broker, "cancels_forwarded") == 1
    # The cancelled request still holds the credit until the worker's final part.
    assert broker.stats()["services"]["web"]["waiting"] == 1
    worker.reply(address, codec.Envelope("error", id=first.id, error={
        "code": "cancelled", "message": "the client cancelled the request"}))
    assert client.recv().error["code"] == "cancelled"
    assert codec.decode(worker.next_request()[1]).id == second.id


def test_a_cancel_is_not_sent_to_a_worker_that_did_not_ask_for_them(
        broker: Broker, hands: list[Any]) -> None:
    worker = HandWorker(broker.endpoints[0], None)  # a plain RFC 7 worker
    client = HandClient(broker.endpoints[0])
    hands += [worker, client]
    env = _request()
    client.send(env)
    address, _ = worker.next_request()
    client.send(_cancel(env))
    _wait(lambda: _counter(broker, "cancels_ignored") == 1, "the cancel ignored")
    assert _counter(broker, "cancels_forwarded") == 0
    worker.reply(address, codec.Envelope("result", id=env.id, payload="done"))
    assert client.recv().payload == "done"  # the first thing the client gets: no cancel reply


def test_a_queued_request_that_is_cancelled_is_never_dispatched(
        broker: Broker, hands: list[Any]) -> None:
    worker = HandWorker(broker.endpoints[0], {"cancel": True})
    client = HandClient(broker.endpoints[0])
    hands += [worker, client]
    busy, queued, later = _request(), _request(), _request()
    client.send(busy)
    address, _ = worker.next_request()
    client.send(queued)
    client.send(later)
    _wait(lambda: broker.stats()["services"]["web"]["waiting"] == 2, "two queued")
    client.send(_cancel(queued))
    _wait(lambda: _counter(broker, "cancelled") == 1, "the queued request dropped")
    assert broker.stats()["services"]["web"]["waiting"] == 1
    worker.reply(address, codec.Envelope("result", id=busy.id, payload=1))
    assert client.recv().id == busy.id
    assert codec.decode(worker.next_request()[1]).id == later.id  # never the cancelled one
