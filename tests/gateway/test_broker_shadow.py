"""Shadow copies of a migrated service's calls inside the broker (SPEC 2.14).

A ``shadow SERVICE CANDIDATE METHODS`` line in the split file makes the broker send
a copy of each listed call that stays on SERVICE to CANDIDATE, flagged ``shadow``
and with its own deadline. The caller only ever gets the primary's answer; copies
are capped per service, and a hung or dead candidate never touches the primary.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator

import pytest
import zmq

from gateway.broker.shadow import parse_shadows
from protocol import codec, mdp
from protocol.client import Client
from protocol.worker import Worker
from tests.gateway.test_broker import HB_MS, RawWorker
from tests.gateway.test_broker_split import set_split
from tests.support.broker import IMPLEMENTATIONS, BrokerProcess
from tests.support.procs import ProcessGroup, wait_until

SHADOW_MS = 1500  # long enough that a loaded machine makes five calls within it


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> str:
    """Every test runs against the Python broker and the compiled one."""
    return str(request.param)


@pytest.fixture
def split_file(tmp_path: object) -> str:
    return os.path.join(str(tmp_path), "broker-splits")


@pytest.fixture
def broker(procs: ProcessGroup, impl: str, split_file: str) -> BrokerProcess:
    return BrokerProcess(procs, impl, heartbeat_ms=HB_MS, extra=(
        "--splits", split_file, "--shadow-max-inflight", "3",
        "--shadow-timeout-ms", str(SHADOW_MS)))


@pytest.fixture
def client(broker: BrokerProcess) -> Iterator[Client]:
    c = Client(broker.endpoint, timeout=5.0)
    yield c
    c.close()


@pytest.fixture
def primary(broker: BrokerProcess) -> Iterator[Worker]:
    """``tax`` answers "py2" to ``side`` and to ``write``."""
    w = Worker(broker.endpoint, "tax", {"side": lambda *a: "py2", "write": lambda: "wrote"},
               credit=10)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    wait_until(w.connected.is_set, timeout=5, what="tax registered")
    yield w
    w.stop()
    t.join(5)


@pytest.fixture
def candidate(broker: BrokerProcess) -> Iterator[RawWorker]:
    """A hand-driven ``tax.py3`` worker with credit for 10 calls: it answers when told."""
    w = RawWorker(broker.endpoint, b"tax.py3", credit=10)
    wait_until(lambda: broker.workers("tax.py3") == 1, timeout=5, what="tax.py3 registered")
    yield w
    w.close()


def shadows(broker: BrokerProcess) -> dict[str, object]:
    return dict(broker.stats()["shadows"]["tax"])


def test_shadow_lines_parse_and_bad_ones_are_reported() -> None:
    table, errors = parse_shadows(
        "tax tax.py3 0\nshadow tax tax.py3 side,quote\n"
        "shadow fee fee.py3 *  # all\nshadow x x m\nshadow a b\n"
        "shadow vat vat3 q sample=0.25 timeout_ms=900 max_inflight=2\n"
        "shadow a b m sample=1.5\nshadow a b m timeout_ms=0\nshadow a b m sample=1 sample=1\n"
        "shadow a b m colour=red\n")
    assert table == {b"tax": (b"tax.py3", frozenset({"side", "quote"}), 10000, None, None),
                     b"fee": (b"fee.py3", None, 10000, None, None),
                     b"vat": (b"vat3", frozenset({"q"}), 2500, 900, 2)}
    assert [e.partition(":")[0] for e in errors] == [
        "line 4", "line 7", "line 8", "line 9", "line 10"]


def test_a_listed_call_is_copied_with_the_flag_and_the_caller_gets_the_primary(
        broker: BrokerProcess, client: Client, split_file: str, primary: Worker,
        candidate: RawWorker) -> None:
    set_split(broker, split_file, "tax tax.py3 0\nshadow tax tax.py3 side\n")
    assert client.call("tax", "side", rid="user-1") == "py2"
    addr, body = candidate.next_request()
    copy = codec.decode(body)
    assert copy.shadow is True
    assert copy.method == "side" and copy.rid == "user-1"
    # Its own deadline: no later than the broker's shadow timeout from now.
    assert copy.deadline <= mdp.now_ms() + SHADOW_MS
    candidate.answer(addr, body, "py3")
    wait_until(lambda: shadows(broker)["answered"] == 1, timeout=5, what="copy answered")
    outcomes = broker.stats()["services"]["tax.py3"]["outcomes"]
    assert outcomes["requests"] == 1 and outcomes["ok"] == 1
    # A method not on the list is never copied.
    assert client.call("tax", "write") == "wrote"
    stats = shadows(broker)
    assert stats["sent"] == 1 and stats["methods"] == ["side"]
    assert candidate.commands_for(0.3).count(mdp.REQUEST) == 0


def test_a_hung_candidate_caps_the_copies_and_never_holds_the_caller(
        broker: BrokerProcess, client: Client, split_file: str, primary: Worker,
        candidate: RawWorker) -> None:
    set_split(broker, split_file, "shadow tax tax.py3 *\n")
    # The candidate never answers: every caller still gets the primary's answer.
    assert [client.call("tax", "side") for _ in range(5)] == ["py2"] * 5
    stats = shadows(broker)
    assert stats["sent"] == 3 and stats["skipped_cap"] == 2 and stats["inflight"] == 3
    # The copies end by their own deadline, which frees the cap.
    wait_until(lambda: shadows(broker)["inflight"] == 0, timeout=5, what="copies expired")
    assert shadows(broker)["failed"] == 3
    assert client.call("tax", "side") == "py2"
    assert shadows(broker)["sent"] == 4


def test_a_dead_candidate_takes_no_copies_and_the_primary_is_untouched(
        broker: BrokerProcess, client: Client, split_file: str, primary: Worker,
        candidate: RawWorker) -> None:
    set_split(broker, split_file, "shadow tax tax.py3 side\n")
    assert client.call("tax", "side") == "py2"
    candidate.next_request()  # holds one copy, then dies without a word
    candidate.close()
    # The broker loses it within its liveness; the copy it held fails, the callers never.
    wait_until(lambda: broker.workers("tax.py3") == 0, timeout=10, what="candidate lost")
    assert [client.call("tax", "side") for _ in range(3)] == ["py2"] * 3
    stats = shadows(broker)
    assert stats["failed"] == 1 and stats["skipped_down"] == 3 and stats["inflight"] == 0


def test_a_call_the_split_moved_to_the_candidate_is_not_copied(
        broker: BrokerProcess, dealer_sock: zmq.Socket[bytes], split_file: str,
        primary: Worker, candidate: RawWorker) -> None:
    set_split(broker, split_file, "tax tax.py3 100\nshadow tax tax.py3 side\n")
    head = codec.encode(codec.Envelope("call", id="c1", method="side", payload=None))
    dealer_sock.send_multipart([b"", mdp.CLIENT, b"tax", *head])
    addr, body = candidate.next_request()
    assert not codec.decode(body).shadow
    candidate.answer(addr, body, "py3")
    assert dealer_sock.poll(5000)
    assert codec.decode(dealer_sock.recv_multipart()[3:]).payload == "py3"
    assert shadows(broker)["sent"] == 0


@pytest.fixture
def dealer_sock(broker: BrokerProcess) -> Iterator[zmq.Socket[bytes]]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(broker.endpoint)
    yield sock
    sock.close(linger=0)


@pytest.fixture
def paired_broker(procs: ProcessGroup, impl: str, split_file: str,
                  tmp_path: object) -> tuple[BrokerProcess, str]:
    pub = f"ipc://{tmp_path}/shadow-pairs.sock"
    return BrokerProcess(procs, impl, heartbeat_ms=HB_MS, extra=(
        "--splits", split_file, "--shadow-pub", pub)), pub


def test_pairs_are_published_with_request_and_both_replies(
        paired_broker: tuple[BrokerProcess, str], split_file: str) -> None:
    broker, pub = paired_broker
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.linger = 0
    sub.connect(pub)
    sub.subscribe(b"tax")
    made: list[tuple[Worker, threading.Thread]] = []
    try:
        for name, answer in (("tax", "py2"), ("tax.py3", "py3")):
            w = Worker(broker.endpoint, name, {"side": lambda a=answer: a}, credit=5)
            t = threading.Thread(target=w.run, daemon=True)
            t.start()
            made.append((w, t))
            wait_until(w.connected.is_set, timeout=5, what=f"{name} registered")
        set_split(broker, split_file, "shadow tax tax.py3 side\n")
        wait_until(lambda: broker.stats()["shadow_pairs"]["subscriptions"] == 1, timeout=5,
                   what="the subscription reached the broker")
        with Client(broker.endpoint, timeout=5.0) as client:
            assert client.call("tax", "side", rid="r-7") == "py2"
        assert sub.poll(5000), "no pair published"
        frames = sub.recv_multipart()
        assert frames[0] == b"tax"
        meta = json.loads(frames[1])
        n_req, n_pri, n_can = meta["frames"]
        assert meta["candidate"] == "tax.py3" and meta["method"] == "side"
        assert len(frames) == 2 + n_req + n_pri + n_can
        request = codec.decode(frames[2:2 + n_req])
        assert request.method == "side" and request.rid == "r-7" and not request.shadow
        assert codec.decode(frames[2 + n_req:2 + n_req + n_pri]).payload == "py2"
        assert codec.decode(frames[2 + n_req + n_pri:]).payload == "py3"
        stats = broker.stats()["shadow_pairs"]
        assert stats["published"] == 1 and stats["pending"] == 0 and stats["dropped"] == 0
    finally:
        sub.close(linger=0)
        for w, t in made:
            w.stop()
            t.join(5)


def test_a_slow_subscriber_makes_the_broker_drop_and_count_pairs(
        procs: ProcessGroup, impl: str, split_file: str, tmp_path: object) -> None:
    pub = f"ipc://{tmp_path}/shadow-pairs.sock"
    broker = BrokerProcess(procs, impl, heartbeat_ms=HB_MS, extra=(
        "--splits", split_file, "--shadow-pub", pub, "--shadow-pub-hwm", "1"))
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.linger = 0
    sub.rcvhwm = 1
    sub.connect(pub)
    sub.subscribe(b"")  # and never reads
    made: list[tuple[Worker, threading.Thread]] = []
    try:
        for name in ("tax", "tax.py3"):
            w = Worker(broker.endpoint, name, {"echo": lambda x: x}, credit=5)
            t = threading.Thread(target=w.run, daemon=True)
            t.start()
            made.append((w, t))
            wait_until(w.connected.is_set, timeout=5, what=f"{name} registered")
        set_split(broker, split_file, "shadow tax tax.py3 echo\n")
        wait_until(lambda: broker.stats()["shadow_pairs"]["subscriptions"] == 1, timeout=5,
                   what="the subscription reached the broker")
        big = "x" * 256 * 1024
        with Client(broker.endpoint, timeout=5.0) as client:
            # Bounded: each pair is ~768 KiB, so the socket buffers fill within a few.
            for _ in range(100):
                assert client.call("tax", "echo", big) == big
                if broker.stats()["shadow_pairs"]["dropped"]:
                    break
        stats = broker.stats()["shadow_pairs"]
        assert stats["dropped"] >= 1 and stats["published"] >= 1
    finally:
        sub.close(linger=0)
        for w, t in made:
            w.stop()
            t.join(5)


def raw_stats(broker: BrokerProcess) -> bytes:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(broker.endpoint)
        sock.send_multipart([b"", mdp.CLIENT, b"mmi.stats"])
        assert sock.poll(5000), "no answer to mmi.stats"
        return sock.recv_multipart()[3]
    finally:
        sock.close(linger=0)


def test_the_copy_header_is_the_request_header_reencoded_with_flag_and_deadline(
        broker: BrokerProcess, dealer_sock: zmq.Socket[bytes], split_file: str,
        primary: Worker, candidate: RawWorker) -> None:
    set_split(broker, split_file, "shadow tax tax.py3 side\n")
    far = mdp.now_ms() + 60_000
    head = codec.dumps({"deadline": far, "id": "h1", "idem": True, "kind": "call",
                        "method": "side", "rid": "r-1", "shadow": False, "sticky": "k",
                        "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "v": 1})
    body = [head, b'{"$b":0}', b"\x00raw bytes\xff"]
    dealer_sock.send_multipart([b"", mdp.CLIENT, b"tax", *body])
    _, copy = candidate.next_request()
    fields = json.loads(copy[0])
    assert far > fields["deadline"] >= mdp.now_ms() - SHADOW_MS
    # Byte for byte what the reference re-encoding gives, payload frames untouched.
    assert copy[0] == codec.dumps(dict(json.loads(head), shadow=True,
                                       deadline=fields["deadline"]))
    assert copy[1:] == body[1:]
    assert dealer_sock.poll(5000)
    assert codec.decode(dealer_sock.recv_multipart()[3:]).payload == "py2"
    # Without deadline and shadow members: both are put where sorted keys have them.
    bare = codec.dumps({"id": "h0", "kind": "call", "method": "side", "v": 1})
    dealer_sock.send_multipart([b"", mdp.CLIENT, b"tax", bare, b"null"])
    _, copy = candidate.next_request()
    fields = json.loads(copy[0])
    assert copy[0] == codec.dumps(dict(json.loads(bare), shadow=True,
                                       deadline=fields["deadline"]))
    assert dealer_sock.poll(5000)
    dealer_sock.recv_multipart()
    # A request flagged shadow already is never copied again.
    again = dict(json.loads(head), id="h2", shadow=True)
    dealer_sock.send_multipart([b"", mdp.CLIENT, b"tax", codec.dumps(again), body[1]])
    assert dealer_sock.poll(5000)
    dealer_sock.recv_multipart()
    assert shadows(broker)["sent"] == 2
    assert candidate.commands_for(0.3).count(mdp.REQUEST) == 0


def test_a_late_reply_after_the_copy_timed_out_reaches_no_one(
        broker: BrokerProcess, client: Client, split_file: str, primary: Worker,
        candidate: RawWorker) -> None:
    set_split(broker, split_file, "shadow tax tax.py3 side\n")
    assert client.call("tax", "side") == "py2"
    addr, body = candidate.next_request()
    wait_until(lambda: shadows(broker)["failed"] == 1, timeout=5, what="copy timed out")
    candidate.answer(addr, body, "late")
    # The broker takes the late answer quietly, and both services still serve.
    assert client.call("tax", "side") == "py2"
    addr, body = candidate.next_request()
    candidate.answer(addr, body, "py3")
    wait_until(lambda: shadows(broker)["answered"] == 1, timeout=5, what="second copy answered")
    stats = shadows(broker)
    assert stats["failed"] == 1 and stats["sent"] == 2 and stats["inflight"] == 0


def test_pair_frames_and_stats_are_the_reference_bytes(
        paired_broker: tuple[BrokerProcess, str], split_file: str) -> None:
    broker, pub = paired_broker
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.linger = 0
    sub.connect(pub)
    sub.subscribe(b"tax")
    tax, port = RawWorker(broker.endpoint, b"tax"), RawWorker(broker.endpoint, "tax\u00e9".encode())
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(broker.endpoint)
    try:
        wait_until(lambda: broker.workers("tax") == 1 and broker.workers("tax\u00e9") == 1,
                   timeout=5, what="both registered")
        set_split(broker, split_file, "shadow tax tax\u00e9 side,quote\n")
        wait_until(lambda: broker.stats()["shadow_pairs"]["subscriptions"] == 1, timeout=5,
                   what="the subscription reached the broker")
        request = [codec.dumps({"id": "p-\u00fc1", "kind": "call", "method": "side", "v": 1}),
                   b"[1.0]"]
        dealer.send_multipart([b"", mdp.CLIENT, b"tax", *request])
        replies = []
        for worker, payload in ((tax, b"10"), (port, b"10.0")):
            addr, _ = worker.next_request()
            reply = [codec.dumps({"id": "p-\u00fc1", "kind": "result", "v": 1}), payload]
            worker.sock.send_multipart(mdp.worker_reply(addr, reply))
            replies.append(reply)
        assert dealer.poll(5000) and dealer.recv_multipart()[3:] == replies[0]
        assert sub.poll(5000), "no pair published"
        frames = sub.recv_multipart()
        meta = json.dumps({"candidate": "tax\u00e9", "frames": [2, 2, 2], "id": "p-\u00fc1",
                           "method": "side"}, sort_keys=True).encode()
        assert frames == [b"tax", meta, *request, *replies[0], *replies[1]]
        raw = raw_stats(broker)
        stats = json.loads(raw)
        assert raw == json.dumps(stats, sort_keys=True).encode()
        assert stats["shadows"] == {"tax": {
            "answered": 1, "candidate": "tax\u00e9", "failed": 0, "inflight": 0,
            "methods": ["quote", "side"], "sent": 1, "skipped_cap": 0, "skipped_down": 0}}
        assert stats["shadow_pairs"] == {"dropped": 0, "pending": 0, "published": 1,
                                         "subscriptions": 1, "unpaired": 0}
    finally:
        for sock in (sub, dealer):
            sock.close(linger=0)
        tax.close()
        port.close()


def test_a_non_loopback_pair_endpoint_is_refused(procs: ProcessGroup, impl: str) -> None:
    with pytest.raises(AssertionError, match="exited with 2"):
        BrokerProcess(procs, impl, extra=("--shadow-pub", "tcp://0.0.0.0:1"), timeout=10)


def test_a_line_s_sample_and_caps_override_the_broker_s(
        broker: BrokerProcess, client: Client, split_file: str, primary: Worker,
        candidate: RawWorker) -> None:
    # Counted, not drawn: exactly every fourth listed call is copied, in both brokers.
    set_split(broker, split_file, "shadow tax tax.py3 side sample=0.25 max_inflight=1 "
                                  "timeout_ms=3000\n")
    assert [client.call("tax", "side") for _ in range(8)] == ["py2"] * 8
    stats = shadows(broker)
    # Calls 4 and 8 were due; the first copy is still held, so the second passes the cap of 1.
    assert stats["sent"] == 1 and stats["skipped_cap"] == 1
    _, body = candidate.next_request()
    assert json.loads(body[0])["deadline"] <= mdp.now_ms() + 3000
    set_split(broker, split_file, "shadow tax tax.py3 side sample=1.5\n", expect=b"400")
    assert "shadows" not in broker.stats()


def test_a_copy_cannot_be_cancelled_by_a_client_posing_as_its_address(
        broker: BrokerProcess, split_file: str, primary: Worker) -> None:
    port = RawWorker(broker.endpoint, b"tax.py3", credit=10, metadata={"cancel": True})
    ctx = zmq.Context.instance()
    caller, impostor = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    caller.setsockopt(zmq.ROUTING_ID, b"caller-1")
    impostor.setsockopt(zmq.ROUTING_ID, b"\x01shadow:caller-1")
    try:
        for sock in (caller, impostor):
            sock.linger = 0
            sock.connect(broker.endpoint)
        wait_until(lambda: broker.workers("tax.py3") == 1, timeout=5, what="port registered")
        set_split(broker, split_file, "shadow tax tax.py3 side\n")
        head = codec.encode(codec.Envelope("call", id="k1", method="side", payload=None))
        caller.send_multipart([b"", mdp.CLIENT, b"tax", *head])
        assert caller.poll(5000)
        port.next_request()  # the copy is in flight on the port
        cancel = codec.encode(codec.Envelope("cancel", id="k1", payload=None))
        impostor.send_multipart([b"", mdp.CLIENT, b"tax.py3", *cancel])
        wait_until(lambda: broker.stats()["counters"].get("cancels_ignored") == 1, timeout=5,
                   what="the cancel was ignored")
        assert port.commands_for(0.3).count(mdp.REQUEST) == 0  # nothing forwarded
    finally:
        caller.close(linger=0)
        impostor.close(linger=0)
        port.close()
