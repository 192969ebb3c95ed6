"""The broker conformance suite: every behaviour test runs against both brokers.

Each broker is a real process (``python -m gateway.broker`` and the compiled
``build/gateway-broker``), driven by our client and by raw MDP workers made of
plain pyzmq; its state is read through ``mmi.stats``. Tests of the Python
broker's internals run it in a thread and say so.
"""

from __future__ import annotations

import json
import os
import subprocess
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
from tests.support.broker import IMPLEMENTATIONS, BrokerProcess, broker_argv
from tests.support.procs import ProcessGroup, free_port, wait_until

HB_MS = 100


class RawWorker:
    """An MDP worker written against RFC 7 by hand: it answers only when told to."""

    def __init__(self, endpoint: str, service: bytes = b"calc", credit: int = 1,
                 metadata: dict[str, Any] | None = None) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        meta = dict(metadata or {}, **({"credit": credit} if credit != 1 else {}))
        self.sock.send_multipart(mdp.worker_ready(service, meta or None))

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


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> str:
    """Each conformance test runs against the Python broker and the compiled one."""
    return str(request.param)


@pytest.fixture
def heartbeat_ms(request: pytest.FixtureRequest) -> int:
    """The broker's interval; a test changes it with ``parametrize(..., indirect=True)``."""
    return int(getattr(request, "param", HB_MS))


@pytest.fixture
def broker_extra(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """More broker arguments; a test changes them with ``parametrize(..., indirect=True)``."""
    return tuple(getattr(request, "param", ()))


@pytest.fixture
def broker(procs: ProcessGroup, impl: str, heartbeat_ms: int,
           broker_extra: tuple[str, ...]) -> BrokerProcess:
    return BrokerProcess(procs, impl, heartbeat_ms=heartbeat_ms, extra=broker_extra)


@pytest.fixture
def client(broker: BrokerProcess) -> Iterator[Client]:
    c = Client(broker.endpoint, timeout=5.0)
    yield c
    c.close()


@pytest.fixture
def raw_workers(broker: BrokerProcess) -> Iterator[list[RawWorker]]:
    made: list[RawWorker] = []
    yield made
    for w in made:
        w.close()


@pytest.fixture
def table_worker(broker: BrokerProcess) -> Iterator[Worker]:
    w = Worker(broker.endpoint, "calc", {"add": lambda a, b: a + b,
                                         "echo": lambda x: x})
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    wait_until(w.connected.is_set, timeout=5, what="worker registered")
    yield w
    w.stop()
    t.join(5)


@pytest.fixture
def dealer(broker: BrokerProcess) -> Iterator[zmq.Socket[bytes]]:
    """A bare DEALER on the broker, for raw MDP clients."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(broker.endpoint)
    yield sock
    sock.close(linger=0)


def live(broker: BrokerProcess, service: str, count: int = 1) -> bool:
    return broker.workers(service) >= count


def test_round_trip_and_mmi(client: Client, table_worker: Worker, broker: BrokerProcess) -> None:
    assert client.call("calc", "add", {"a": 2, "b": 40}) == 42
    assert client.mmi("calc") == "200"
    assert client.mmi("nothing") == "404"
    stats = broker.stats()
    assert stats["counters"]["replies"] >= 1
    assert stats["services"]["calc"]["workers"] == 1


def test_mmi_stats_and_unknown_mmi(broker: BrokerProcess) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(broker.endpoint)
        sock.send_multipart(mdp.client_request(b"mmi.stats", []))
        assert sock.poll(5000)
        stats = json.loads(sock.recv_multipart()[3])
        assert stats["heartbeat_ms"] == HB_MS
        sock.send_multipart(mdp.client_request(b"mmi.nope", []))
        assert sock.poll(5000)
        assert sock.recv_multipart()[3] == b"501"
    finally:
        sock.close(linger=0)


def test_lru_dispatch_alternates(broker: BrokerProcess, client: Client,
                                 raw_workers: list[RawWorker]) -> None:
    raw_workers += [RawWorker(broker.endpoint), RawWorker(broker.endpoint)]
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
        broker: BrokerProcess, client: Client, raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    raw.sock.send_multipart(mdp.disconnect())
    wait_until(lambda: not live(broker, "calc"), timeout=5, what="worker gone")
    with pytest.raises(Unavailable) as info:
        client.call("calc", "x", timeout=0.4)
    assert not isinstance(info.value, UnknownService)


def test_expired_request_is_never_dispatched(
        broker: BrokerProcess, client: Client, raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    env = codec.Envelope("call", method="x", deadline=mdp.now_ms() - 10)
    with pytest.raises(Timeout):
        list(client.request("calc", env))
    assert mdp.REQUEST not in raw.commands_for(0.3)
    assert broker.stats()["counters"]["expired"] == 1


# Raw workers beat only while reading, so the heartbeat is slow enough (1.5 s to expire)
# for them to stay alive while the test sets up the second worker.
@pytest.mark.parametrize("heartbeat_ms", [500], indirect=True)
@pytest.mark.parametrize("idem", [False, True])
def test_worker_death_mid_request(broker: BrokerProcess, client: Client,
                                  raw_workers: list[RawWorker], idem: bool) -> None:
    doomed = RawWorker(broker.endpoint)
    raw_workers.append(doomed)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    pending = client.submit("calc", "echo", "v", idem=idem)
    doomed.next_request()
    backup = RawWorker(broker.endpoint)
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



def first_and_backup(broker: BrokerProcess,
                     raw_workers: list[RawWorker]) -> tuple[RawWorker, RawWorker]:
    """Two raw workers for calc, registered in this order (the first is first in LRU)."""
    first = RawWorker(broker.endpoint)
    raw_workers.append(first)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    backup = RawWorker(broker.endpoint)
    raw_workers.append(backup)
    wait_until(lambda: live(broker, "calc", 2), timeout=5, what="backup worker")
    return first, backup


# A 10 s heartbeat: neither a beat (every 10 s) nor liveness (30 s) can notice the death
# within the 3 s the client waits, so an answer proves the closed connection was seen.
@pytest.mark.parametrize("heartbeat_ms", [10_000], indirect=True)
@pytest.mark.parametrize("idem", [False, True])
def test_closed_worker_connection_is_noticed_without_heartbeats(
        broker: BrokerProcess, client: Client, raw_workers: list[RawWorker], idem: bool) -> None:
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
        broker: BrokerProcess, client: Client, raw_workers: list[RawWorker], idem: bool) -> None:
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
def test_garbage_never_stops_the_broker(broker: BrokerProcess, client: Client, name: str) -> None:
    frames, counted = GARBAGE[name]
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(broker.endpoint)
        if name == "reply_without_empty_frame":  # a registered worker, so the REPLY is read
            sock.send_multipart(mdp.worker_ready(b"calc"))
            wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
        before = broker.stats()["drops"].get("malformed", 0)
        sock.send_multipart(frames)
        if counted:
            wait_until(lambda: broker.stats()["drops"].get("malformed", 0) > before,
                       timeout=5, what="the drop counted")
        assert client.mmi("mmi.service") == "404"
        assert broker.alive()
    finally:
        sock.close(linger=0)


# The Python broker's own guard around message handling: a bug is a counted drop.
def test_a_handling_bug_is_a_counted_drop(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = Broker(BrokerConfig(endpoints=("tcp://127.0.0.1:*",), heartbeat_ms=HB_MS))
    broker.start()
    client = Client(broker.endpoints[0], timeout=5.0)
    try:
        _handling_bug_is_counted(broker, client, monkeypatch)
    finally:
        client.close()
        broker.stop()


def _handling_bug_is_counted(broker: Broker, client: Client,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(broker.clients, "on_client", boom)
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


def test_same_id_from_two_clients_on_one_worker(broker: BrokerProcess,
                                                raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint, credit=2)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    socks = [zmq.Context.instance().socket(zmq.DEALER) for _ in range(2)]
    try:
        for i, sock in enumerate(socks):
            sock.linger = 0
            sock.connect(broker.endpoint)
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


def test_unknown_worker_is_disconnected_and_counted(broker: BrokerProcess) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(broker.endpoint)
        sock.send_multipart(mdp.heartbeat())
        assert sock.poll(5000)
        assert mdp.split_worker(sock.recv_multipart())[0] == mdp.DISCONNECT
        assert broker.stats()["drops"]["unknown_worker"] == 1
    finally:
        sock.close(linger=0)


def test_loopback_rule() -> None:
    with pytest.raises(BrokerError, match="CURVE"):
        Broker(BrokerConfig(endpoints=("tcp://0.0.0.0:5555",)))
    with pytest.raises(BrokerError, match="CURVE"):
        check_bind("tcp://192.0.2.1:5555", None)
    assert is_loopback("tcp://127.0.0.1:1") and is_loopback("tcp://[::1]:1")
    assert is_loopback("ipc:///tmp/x") and not is_loopback("tcp://example.org:1")


@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:5555", "tcp://192.0.2.1:5555",
                                      "tcp://example.org:5555"])
def test_non_loopback_bind_needs_curve(procs: ProcessGroup, impl: str, endpoint: str) -> None:
    proc = procs.spawn(broker_argv(impl, ["--bind", "tcp://127.0.0.1:0", "--bind", endpoint]),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert b"CURVE" in err and b"Traceback" not in err
    assert b"broker ready" not in out


@pytest.mark.parametrize("restricted", [True, False])
def test_curve_keys_are_accepted_and_used(procs: ProcessGroup, impl: str, workdir: str,
                                          restricted: bool) -> None:
    _, secret_file = zmq.auth.create_certificates(workdir, "broker")
    keys = CurveKeys.load(secret_file)
    check_bind("tcp://192.0.2.1:5555", keys)  # allowed now, nothing is bound
    clients = os.path.join(workdir, "clients")
    os.mkdir(clients)
    allowed_pub, _ = zmq.auth.create_certificates(clients, "allowed")
    apub, asec = zmq.auth.load_certificate(allowed_pub.replace(".key", ".key_secret"))
    assert asec is not None
    extra = ("--curve-secret", secret_file) + (("--curve-clients", clients) if restricted
                                               else ())
    b = BrokerProcess(procs, impl, extra=extra)
    c = Client(b.endpoint, timeout=3.0, curve=(keys.public, apub, asec))
    try:
        assert c.mmi("calc") == "404"
    finally:
        c.close()
    stranger_pub, stranger_sec = zmq.curve_keypair()
    c = Client(b.endpoint, timeout=0.5 if restricted else 3.0,
               curve=(keys.public, stranger_pub, stranger_sec))
    try:
        if restricted:
            with pytest.raises(Timeout):
                c.mmi("calc")  # the ZAP handler refused its key: no handshake, no answer
        else:
            assert c.mmi("calc") == "404"  # without a clients directory any key may connect
    finally:
        c.close()
    plain = Client(b.endpoint, timeout=0.5)
    try:
        with pytest.raises(Timeout):
            plain.mmi("calc")  # no CURVE at all: never served
    finally:
        plain.close()


def test_curve_certificates_are_checked(workdir: str) -> None:
    public_file, _ = zmq.auth.create_certificates(workdir, "broker")
    with pytest.raises(BrokerError):
        CurveKeys.load(os.path.join(workdir, "missing.key_secret"))
    with pytest.raises(BrokerError, match="secret"):
        CurveKeys.load(public_file)


@pytest.mark.parametrize("bad", ["missing.key_secret", "broker.key"])
def test_unusable_curve_certificate_exits_2(procs: ProcessGroup, impl: str, workdir: str,
                                            bad: str) -> None:
    zmq.auth.create_certificates(workdir, "broker")
    argv = broker_argv(impl, ["--bind", f"tcp://127.0.0.1:{free_port()}",
                              "--curve-secret", os.path.join(workdir, bad)])
    proc = procs.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert b"broker: " in err and b"Traceback" not in err and b"broker ready" not in out


def test_events_publish_subscribe(procs: ProcessGroup, impl: str, workdir: str) -> None:
    pub_ep, sub_ep = f"ipc://{workdir}/pub", f"ipc://{workdir}/sub"
    BrokerProcess(procs, impl, endpoint=f"ipc://{workdir}/rpc",
                  extra=("--events-pub", pub_ep, "--events-sub", sub_ep))
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
