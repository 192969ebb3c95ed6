"""The broker in a thread, driven by our client and by raw MDP workers made of plain pyzmq."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
import zmq.auth

from gateway.broker import Broker, BrokerConfig, CurveKeys, is_loopback
from gateway.broker.security import check_bind
from gateway.errors import BrokerError
from protocol import codec, mdp
from protocol.client import Client
from protocol.errors import Timeout, Unavailable, UnknownService, WorkerLost
from protocol.events import Publisher, Subscriber
from protocol.worker import Worker
from tests.support.procs import wait_until

HB_MS = 100


class RawWorker:
    """An MDP worker written against RFC 7 by hand: it answers only when told to."""

    def __init__(self, endpoint: str, service: bytes = b"calc", credit: int = 1) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        meta = {"credit": credit} if credit != 1 else None
        self.sock.send_multipart(mdp.worker_ready(service, meta))

    def next_request(self, timeout: float = 5.0) -> tuple[bytes, list[bytes]]:
        deadline = time.time() + timeout
        while self.sock.poll(max(1, int((deadline - time.time()) * 1000))):
            command, rest = mdp.split_worker(self.sock.recv_multipart())
            if command == mdp.REQUEST:
                return mdp.split_address(rest)
            self.sock.send_multipart(mdp.heartbeat())
        raise AssertionError("no request reached the raw worker")

    def commands_for(self, seconds: float = 0.3) -> list[bytes]:
        """Every command the broker sends in the next ``seconds`` (beating back meanwhile)."""
        seen: list[bytes] = []
        deadline = time.time() + seconds
        while (left := deadline - time.time()) > 0:
            if self.sock.poll(max(1, int(left * 1000))):
                seen.append(mdp.split_worker(self.sock.recv_multipart())[0])
                self.sock.send_multipart(mdp.heartbeat())
        return seen

    def answer(self, client: bytes, body: list[bytes], value: Any) -> None:
        env = codec.decode(body)
        reply = codec.encode(codec.Envelope("result", id=env.id, payload=value))
        self.sock.send_multipart(mdp.worker_reply(client, reply))

    def close(self) -> None:
        self.sock.close(linger=0)


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    heartbeat_ms = getattr(request, "param", HB_MS)
    b = Broker(BrokerConfig(endpoints=("tcp://127.0.0.1:*",), heartbeat_ms=heartbeat_ms))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def client(broker: Broker) -> Iterator[Client]:
    c = Client(broker.endpoints[0], timeout=5.0)
    yield c
    c.close()


@pytest.fixture
def raw_workers(broker: Broker) -> Iterator[list[RawWorker]]:
    made: list[RawWorker] = []
    yield made
    for w in made:
        w.close()


@pytest.fixture
def table_worker(broker: Broker) -> Iterator[Worker]:
    w = Worker(broker.endpoints[0], "calc", {"add": lambda a, b: a + b,
                                             "echo": lambda x: x})
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    wait_until(w.connected.is_set, timeout=5, what="worker registered")
    yield w
    w.stop()
    t.join(5)


def live(broker: Broker, service: str, count: int = 1) -> bool:
    return bool(broker.stats()["services"].get(service, {}).get("workers", 0) >= count)


def test_round_trip_and_mmi(client: Client, table_worker: Worker, broker: Broker) -> None:
    assert client.call("calc", "add", {"a": 2, "b": 40}) == 42
    assert client.mmi("calc") == "200"
    assert client.mmi("nothing") == "404"
    stats = broker.stats()
    assert stats["counters"]["replies"] >= 1
    assert stats["services"]["calc"]["workers"] == 1


def test_mmi_stats_and_unknown_mmi(broker: Broker) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(broker.endpoints[0])
        sock.send_multipart(mdp.client_request(b"mmi.stats", []))
        assert sock.poll(5000)
        stats = json.loads(sock.recv_multipart()[3])
        assert stats["heartbeat_ms"] == HB_MS
        sock.send_multipart(mdp.client_request(b"mmi.nope", []))
        assert sock.poll(5000)
        assert sock.recv_multipart()[3] == b"501"
    finally:
        sock.close(linger=0)


def test_lru_dispatch_alternates(broker: Broker, client: Client,
                                 raw_workers: list[RawWorker]) -> None:
    raw_workers += [RawWorker(broker.endpoints[0]), RawWorker(broker.endpoints[0])]
    wait_until(lambda: live(broker, "calc", 2), timeout=5, what="two workers")
    first = client.submit("calc", "echo", 1)
    second = client.submit("calc", "echo", 2)
    a, b = raw_workers[0].next_request(), raw_workers[1].next_request()
    raw_workers[0].answer(*a, "a")
    raw_workers[1].answer(*b, "b")
    assert sorted([first.result(), second.result()]) == ["a", "b"]


def test_no_worker_gets_unavailable_at_the_deadline(client: Client) -> None:
    started = time.time()
    with pytest.raises(UnknownService):
        client.call("ghost", "x", timeout=0.4)
    assert 0.3 <= time.time() - started < 1.4


def test_known_service_without_workers_is_unavailable(
        broker: Broker, client: Client, raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoints[0])
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    raw.sock.send_multipart(mdp.disconnect())
    wait_until(lambda: not live(broker, "calc"), timeout=5, what="worker gone")
    with pytest.raises(Unavailable) as info:
        client.call("calc", "x", timeout=0.4)
    assert not isinstance(info.value, UnknownService)


def test_expired_request_is_never_dispatched(
        broker: Broker, client: Client, raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoints[0])
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    env = codec.Envelope("call", method="x", deadline=mdp.now_ms() - 10)
    with pytest.raises(Timeout):
        list(client.request("calc", env))
    assert mdp.REQUEST not in raw.commands_for(0.3)
    assert broker.stats()["counters"]["expired"] == 1


# Raw workers beat only while reading, so the heartbeat is slow enough (1.5 s to expire)
# for them to stay alive while the test sets up the second worker.
@pytest.mark.parametrize("broker", [500], indirect=True)
@pytest.mark.parametrize("idem", [False, True])
def test_worker_death_mid_request(broker: Broker, client: Client,
                                  raw_workers: list[RawWorker], idem: bool) -> None:
    doomed = RawWorker(broker.endpoints[0])
    raw_workers.append(doomed)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    pending = client.submit("calc", "echo", "v", idem=idem)
    doomed.next_request()
    backup = RawWorker(broker.endpoints[0])
    raw_workers.append(backup)
    wait_until(lambda: live(broker, "calc", 2), timeout=5, what="backup worker")
    doomed.close()  # dies holding the request
    if idem:
        backup.answer(*backup.next_request(), "retried")
        assert pending.result() == "retried"
        assert broker.stats()["counters"]["retried"] == 1
    else:
        with pytest.raises(WorkerLost):
            pending.result()
        assert mdp.REQUEST not in backup.commands_for(0.3)



def first_and_backup(broker: Broker,
                     raw_workers: list[RawWorker]) -> tuple[RawWorker, RawWorker]:
    """Two raw workers for calc, registered in this order (the first is first in LRU)."""
    first = RawWorker(broker.endpoints[0])
    raw_workers.append(first)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    backup = RawWorker(broker.endpoints[0])
    raw_workers.append(backup)
    wait_until(lambda: live(broker, "calc", 2), timeout=5, what="backup worker")
    return first, backup


# A 10 s heartbeat: neither a beat (every 10 s) nor liveness (30 s) can notice the death
# within the 3 s the client waits, so an answer proves the closed connection was seen.
@pytest.mark.parametrize("broker", [10_000], indirect=True)
@pytest.mark.parametrize("idem", [False, True])
def test_closed_worker_connection_is_noticed_without_heartbeats(
        broker: Broker, client: Client, raw_workers: list[RawWorker], idem: bool) -> None:
    doomed, backup = first_and_backup(broker, raw_workers)
    pending = client.submit("calc", "echo", "v", idem=idem, timeout=3.0)
    doomed.next_request()  # first in the LRU line
    doomed.close()  # the process "dies": its connection closes, no DISCONNECT is sent
    if idem:
        backup.answer(*backup.next_request(), "retried")
        assert pending.result() == "retried"
    else:
        with pytest.raises(WorkerLost):
            pending.result()
        assert mdp.REQUEST not in backup.commands_for(0.3)
    wait_until(lambda: broker.stats()["services"]["calc"]["workers"] == 1, timeout=3,
               what="the dead worker forgotten")
    assert broker.stats()["counters"]["workers_closed"] == 1


@pytest.mark.parametrize("idem", [False, True])
def test_request_crossing_a_disconnect_is_requeued_even_if_not_idempotent(
        broker: Broker, client: Client, raw_workers: list[RawWorker], idem: bool) -> None:
    leaving, backup = first_and_backup(broker, raw_workers)
    pending = client.submit("calc", "write", "v", idem=idem, timeout=3.0)
    leaving.next_request()  # dispatched to it while it was deciding to leave...
    leaving.sock.send_multipart(mdp.disconnect())  # ...so it never starts it (SPEC 2.2)
    backup.answer(*backup.next_request(), "once")
    assert pending.result() == "once"
    counters = broker.stats()["counters"]
    assert counters.get("worker_lost", 0) == 0 and counters.get("retried", 0) == 0


DEEP = b'{"id":"x","a":' + b"[" * 200000
GARBAGE = {
    "too_few_frames": ([b""], True),
    "unknown_protocol": ([b"", b"MDPX99", b"calc", b"x"], True),
    "deeply_nested_header": (mdp.client_request(b"calc", [DEEP, b"null"]), False),
    "ready_with_bad_metadata": ([*mdp.worker_ready(b"calc"), DEEP], False),
    "reply_without_empty_frame": ([b"", mdp.WORKER, mdp.REPLY, b"client", b"x"], True),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_never_stops_the_broker(broker: Broker, client: Client, name: str) -> None:
    frames, counted = GARBAGE[name]
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(broker.endpoints[0])
        if name == "reply_without_empty_frame":  # a registered worker, so the REPLY is read
            sock.send_multipart(mdp.worker_ready(b"calc"))
            wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
        before = broker.stats()["drops"].get("malformed", 0)
        sock.send_multipart(frames)
        if counted:
            wait_until(lambda: broker.stats()["drops"].get("malformed", 0) > before,
                       timeout=5, what="the drop counted")
        assert client.mmi("mmi.service") == "404"
        assert broker._thread is not None and broker._thread.is_alive()
    finally:
        sock.close(linger=0)


def test_a_handling_bug_is_a_counted_drop(broker: Broker, client: Client,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(broker, "_on_client", boom)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(broker.endpoints[0])
        sock.send_multipart(mdp.client_request(b"calc", [b"x"]))
        wait_until(lambda: broker.stats()["drops"].get("malformed", 0) >= 1,
                   timeout=5, what="the failure counted")
        monkeypatch.undo()
        assert client.mmi("calc") == "404"
        assert broker._thread is not None and broker._thread.is_alive()
    finally:
        sock.close(linger=0)


def test_same_id_from_two_clients_on_one_worker(broker: Broker,
                                                raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoints[0], credit=2)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    socks = [zmq.Context.instance().socket(zmq.DEALER) for _ in range(2)]
    try:
        for i, sock in enumerate(socks):
            sock.linger = 0
            sock.connect(broker.endpoints[0])
            env = codec.Envelope("call", id="same-id", method="echo", payload=i,
                                 deadline=mdp.deadline_in(5))
            sock.send_multipart(mdp.client_request(b"calc", codec.encode(env)))
        first, second = raw.next_request(), raw.next_request()
        for client, body in (second, first):  # answered out of order
            raw.answer(client, body, codec.decode(body).payload)
        answers = []
        for sock in socks:
            assert sock.poll(5000), "a client never got its answer"
            answers.append(codec.decode(sock.recv_multipart()[3:]).payload)
        assert answers == [0, 1]
        assert broker.stats()["drops"].get("late_reply", 0) == 0
    finally:
        for sock in socks:
            sock.close(linger=0)


def test_unknown_worker_is_disconnected_and_counted(broker: Broker) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(broker.endpoints[0])
        sock.send_multipart(mdp.heartbeat())
        assert sock.poll(5000)
        assert mdp.split_worker(sock.recv_multipart())[0] == mdp.DISCONNECT
        assert broker.stats()["drops"]["unknown_worker"] == 1
    finally:
        sock.close(linger=0)


def test_non_loopback_bind_needs_curve() -> None:
    with pytest.raises(BrokerError, match="CURVE"):
        Broker(BrokerConfig(endpoints=("tcp://0.0.0.0:5555",)))
    with pytest.raises(BrokerError, match="CURVE"):
        check_bind("tcp://192.0.2.1:5555", None)
    assert is_loopback("tcp://127.0.0.1:1") and is_loopback("tcp://[::1]:1")
    assert is_loopback("ipc:///tmp/x") and not is_loopback("tcp://example.org:1")


def test_curve_keys_are_accepted_and_used(workdir: str) -> None:
    public_file, secret_file = zmq.auth.create_certificates(workdir, "broker")
    keys = CurveKeys.load(secret_file)
    check_bind("tcp://192.0.2.1:5555", keys)  # allowed now, nothing is bound
    b = Broker(BrokerConfig(endpoints=("tcp://127.0.0.1:*",), curve=keys))
    b.start()
    try:
        cpub, csec = zmq.curve_keypair()
        c = Client(b.endpoints[0], timeout=3.0, curve=(keys.public, cpub, csec))
        try:
            assert c.mmi("calc") == "404"
        finally:
            c.close()
    finally:
        b.stop()
    with pytest.raises(BrokerError):
        CurveKeys.load(os.path.join(workdir, "missing.key_secret"))
    with pytest.raises(BrokerError, match="secret"):
        CurveKeys.load(public_file)


def test_events_publish_subscribe(workdir: str) -> None:
    pub_ep, sub_ep = f"ipc://{workdir}/pub", f"ipc://{workdir}/sub"
    b = Broker(BrokerConfig(endpoints=(f"ipc://{workdir}/rpc",), events_pub=pub_ep,
                            events_sub=sub_ep))
    b.start()
    pub, sub = Publisher(pub_ep), Subscriber(sub_ep, ["thumbs."])
    try:
        def delivered() -> bool:
            pub.publish("thumbs.done", {"id": 7, "png": b"\x89PNG"})
            pub.publish("other.topic", {"id": 0})
            event = sub.recv(timeout=0.05)
            return event is not None and event.topic == "thumbs.done" \
                and event.payload == {"id": 7, "png": b"\x89PNG"}
        wait_until(delivered, timeout=5, what="event through the proxy")
    finally:
        pub.close()
        sub.close()
        b.stop()
