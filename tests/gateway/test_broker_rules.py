"""The broker rules agreed for protocol version 1 (SPEC 2.4, 2.5, 2.8, 2.11), against both
brokers: cancel, heartbeat grace for plain workers, unknown services, fresh ids, streams
outliving their deadline, and byte-identical broker-made errors."""
# The fixtures come from the conformance suite's module, so their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

import json
import re
import time

import pytest
import zmq

from protocol import codec, mdp
from protocol.client import Client
from protocol.errors import Timeout, UnknownService
from tests.gateway.test_broker import (  # noqa: F401 (fixtures)
    RawWorker,
    broker,
    broker_extra,
    client,
    dealer,
    heartbeat_ms,
    impl,
    live,
    raw_workers,
)
from tests.support.broker import BrokerProcess
from tests.support.procs import wait_until

NO_WINDOW = ("--startup-grace-ms", "0")


def call(rid: str, payload: object = None, timeout: float = 5.0) -> list[bytes]:
    """The body of a call with a chosen id."""
    env = codec.Envelope("call", id=rid, method="echo", payload=payload,
                         deadline=mdp.deadline_in(timeout))
    return codec.encode(env)


def cancel(rid: str) -> list[bytes]:
    """SPEC 2.11: the body of a cancel for request ``rid``."""
    head = json.dumps({"id": rid, "kind": "cancel", "v": 1}, separators=(",", ":"),
                      sort_keys=True).encode()
    return [head, b"null"]


def reply_of(sock: zmq.Socket[bytes], timeout_ms: int = 5000) -> dict[str, object]:
    """The header of the next reply on a raw client socket."""
    assert sock.poll(timeout_ms), "no reply reached the client"
    frames = sock.recv_multipart()
    assert frames[:2] == [b"", mdp.CLIENT]
    head: dict[str, object] = json.loads(frames[3])
    return head


def waiting(broker: BrokerProcess, service: str = "calc") -> int:
    return int(broker.stats()["services"].get(service, {}).get("waiting", 0))


def inflight(broker: BrokerProcess, service: str = "calc") -> int:
    return int(broker.stats()["services"].get(service, {}).get("inflight", 0))


# ------------------------------------------------------------------- cancel --

def test_cancel_removes_a_queued_request(broker: BrokerProcess, dealer: zmq.Socket[bytes],
                                         raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    dealer.send_multipart(mdp.client_request(b"calc", call("busy")))
    busy = raw.next_request()
    dealer.send_multipart(mdp.client_request(b"calc", call("queued")))
    wait_until(lambda: waiting(broker) == 1, timeout=5, what="the second call queued")
    dealer.send_multipart(mdp.client_request(b"calc", cancel("queued")))
    wait_until(lambda: broker.counter("cancelled") == 1, timeout=5, what="the cancel counted")
    assert waiting(broker) == 0
    raw.answer(*busy, "done")
    assert reply_of(dealer)["id"] == "busy"
    assert mdp.REQUEST not in raw.commands_for(0.3)  # the cancelled call never reaches it
    assert not dealer.poll(0)  # and a cancel is never answered


def test_cancel_in_flight_is_forwarded_to_a_worker_that_announced_it(
        broker: BrokerProcess, dealer: zmq.Socket[bytes],
        raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint, metadata={"cancel": True})
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    dealer.send_multipart(mdp.client_request(b"calc", call("job")))
    address, _ = raw.next_request()
    dealer.send_multipart(mdp.client_request(b"calc", cancel("job")))
    forwarded_to, body = raw.next_request()
    assert forwarded_to == address
    assert body == cancel("job")  # the client's frames, untouched
    stats = broker.stats()
    assert stats["counters"]["cancels_forwarded"] == 1
    assert stats["counters"]["dispatched"] == 1  # a cancel is not a dispatch...
    assert stats["services"]["calc"]["inflight"] == 1  # ...and takes no credit
    stop = codec.encode(codec.Envelope("error", id="job", error={
        "code": "cancelled", "message": "cancelled by the client"}))
    raw.sock.send_multipart(mdp.worker_reply(address, stop))
    head = reply_of(dealer)
    assert head["id"] == "job" and head["error"] == {"code": "cancelled",
                                                     "message": "cancelled by the client"}
    wait_until(lambda: inflight(broker) == 0, timeout=5, what="the credit released")
    dealer.send_multipart(mdp.client_request(b"calc", call("next")))
    raw.answer(*raw.next_request(), "again")  # the worker got its credit back
    assert reply_of(dealer)["id"] == "next"


def test_cancel_is_ignored_without_the_worker_flag_or_for_unknown_ids(
        broker: BrokerProcess, dealer: zmq.Socket[bytes],
        raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    dealer.send_multipart(mdp.client_request(b"calc", call("job")))
    job = raw.next_request()
    dealer.send_multipart(mdp.client_request(b"calc", cancel("job")))
    dealer.send_multipart(mdp.client_request(b"calc", cancel("never-sent")))
    wait_until(lambda: broker.counter("cancels_ignored") == 2, timeout=5,
               what="both cancels ignored")
    assert mdp.REQUEST not in raw.commands_for(0.3)
    raw.answer(*job, "finished")
    assert reply_of(dealer)["id"] == "job"
    assert not dealer.poll(0)


def test_cancel_from_another_client_does_not_touch_a_request(
        broker: BrokerProcess, dealer: zmq.Socket[bytes],
        raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    dealer.send_multipart(mdp.client_request(b"calc", call("busy")))
    busy = raw.next_request()
    dealer.send_multipart(mdp.client_request(b"calc", call("mine")))
    wait_until(lambda: waiting(broker) == 1, timeout=5, what="queued")
    other = zmq.Context.instance().socket(zmq.DEALER)
    other.linger = 0
    try:
        other.connect(broker.endpoint)
        other.send_multipart(mdp.client_request(b"calc", cancel("mine")))
        wait_until(lambda: broker.counter("cancels_ignored") == 1, timeout=5, what="ignored")
    finally:
        other.close(linger=0)
    raw.answer(*busy, 1)
    raw.answer(*raw.next_request(), 2)
    assert {reply_of(dealer)["id"], reply_of(dealer)["id"]} == {"busy", "mine"}


# --------------------------------------------------------------- heartbeats --

# At a 50 ms broker interval the old rule (3 broker intervals, 150 ms) dropped a plain
# worker beating every 250 ms; SPEC 2.4 now gives it 3 x 2500 ms.
@pytest.mark.parametrize("heartbeat_ms", [50], indirect=True)
def test_plain_worker_on_a_slower_interval_stays_registered(broker: BrokerProcess) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    seen: list[bytes] = []
    try:
        sock.connect(broker.endpoint)
        sock.send_multipart(mdp.worker_ready(b"calc"))  # no metadata: a plain RFC 7 worker
        wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
        interval, beats = 0.25, 0
        next_beat = time.monotonic() + interval
        while beats < 5:  # at least 4 of its own intervals
            while (left := next_beat - time.monotonic()) > 0:
                if sock.poll(max(1, int(left * 1000))):
                    seen.append(mdp.split_worker(sock.recv_multipart())[0])
            sock.send_multipart(mdp.heartbeat())
            beats += 1
            next_beat += interval
            assert broker.workers("calc") == 1, f"dropped after {beats} beats"
        assert mdp.DISCONNECT not in seen
        assert mdp.HEARTBEAT in seen
        assert broker.stats()["counters"]["workers_ready"] == 1
    finally:
        sock.close(linger=0)


@pytest.mark.parametrize("heartbeat_ms", [50], indirect=True)
def test_announced_heartbeat_sets_the_workers_liveness(
        broker: BrokerProcess, raw_workers: list[RawWorker]) -> None:
    quick = RawWorker(broker.endpoint, metadata={"heartbeat_ms": 100})
    plain = RawWorker(broker.endpoint, service=b"plain")
    raw_workers += [quick, plain]
    wait_until(lambda: live(broker, "calc") and live(broker, "plain"), timeout=5,
               what="both workers")
    # Both stay silent: the one that announced 100 ms is dead after 3 x 100 ms, the plain
    # one is still within its 3 x 2500 ms.
    wait_until(lambda: not live(broker, "calc"), timeout=5, what="the silent quick worker dropped")
    assert live(broker, "plain")


# ---------------------------------------------------------- unknown services --

@pytest.mark.parametrize("broker_extra", [NO_WINDOW], indirect=True)
def test_unknown_service_is_answered_at_once_after_the_window(
        broker: BrokerProcess, client: Client) -> None:
    with pytest.raises(UnknownService):
        client.call("ghost", "x", timeout=60.0)
    stats = broker.stats()
    assert stats["counters"]["unknown_service"] == 1
    assert "expired" not in stats["counters"]  # answered on arrival, not at its deadline
    assert "ghost" not in stats["services"]


def test_unknown_service_waits_inside_the_window(broker: BrokerProcess,
                                                 client: Client) -> None:
    with pytest.raises(UnknownService):
        client.call("ghost", "x", timeout=0.4)
    counters = broker.stats()["counters"]
    assert counters["expired"] == 1 and "unknown_service" not in counters


@pytest.mark.parametrize("broker_extra", [NO_WINDOW], indirect=True)
def test_a_known_service_without_workers_still_waits_after_the_window(
        broker: BrokerProcess, client: Client, raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    raw.sock.send_multipart(mdp.disconnect())
    wait_until(lambda: not live(broker, "calc"), timeout=5, what="worker gone")
    pending = client.submit("calc", "echo", "v", timeout=10.0)
    wait_until(lambda: waiting(broker) == 1, timeout=5, what="the call waiting")
    back = RawWorker(broker.endpoint)  # comes back while the call waits
    raw_workers.append(back)
    back.answer(*back.next_request(), "served")
    assert pending.result() == "served"


# -------------------------------------------------------- broker-made errors --

@pytest.mark.parametrize("broker_extra", [NO_WINDOW], indirect=True)
@pytest.mark.parametrize("body", [[], [b"not a header"], [b'{"id":""}', b"null"],
                                  [b'{"id":1,"v":1}', b"null"], [b'{"id":"a\xff"}'],
                                  [b' {"id":"x"}'], [b'{"id":"x"} x'], [b'{"id":"x",}']],
                         ids=["empty", "text", "empty-id", "numeric-id", "bad-utf8",
                              "leading-space", "trailing-data", "trailing-comma"])
def test_headerless_requests_get_errors_with_fresh_ids(
        broker: BrokerProcess, dealer: zmq.Socket[bytes], body: list[bytes]) -> None:
    ids = []
    for _ in range(2):
        dealer.send_multipart(mdp.client_request(b"ghost", body))
        assert dealer.poll(5000)
        frames = dealer.recv_multipart()
        assert frames[:3] == [b"", mdp.CLIENT, b"ghost"]
        rid = json.loads(frames[3])["id"]
        assert re.fullmatch("[0-9a-f]{32}", rid), rid
        assert frames[3:] == mdp.error_body(rid, UnknownService(
            "no worker has ever served ghost"))
        ids.append(rid)
    assert ids[0] != ids[1]


# The broker re-encodes the id it read: escapes become canonical JSON (SPEC 4.8), and a
# service name that is not UTF-8 is quoted the way Python's "replace" decoding shows it.
@pytest.mark.parametrize("broker_extra", [NO_WINDOW], indirect=True)
@pytest.mark.parametrize("service", [b"ghost", b"gh\xffo\xe2\x82st\xed\xa0\x80", "été".encode()])
def test_broker_errors_are_byte_identical_to_the_reference(
        broker: BrokerProcess, dealer: zmq.Socket[bytes], service: bytes) -> None:
    rid = 'caf\u00e9 "q" \\ / \n\t\x01\u2028\U0001f600'
    head = ('{ "v": 1, "kind": "call", "method": "m", '
            '"id": "caf\\u00e9 \\"q\\" \\\\ \\/ \\n\\t\\u0001\\u2028\\ud83d\\ude00", '
            '"http": {"a": [1, {"b": [true, null, -0.5e3]}], "id": "not this one"}}')
    dealer.send_multipart(mdp.client_request(service, [head.encode(), b"null"]))
    name = service.decode("utf-8", "replace")
    assert dealer.recv_multipart()[3:] == mdp.error_body(
        rid, UnknownService(f"no worker has ever served {name}"))
    late = codec.encode(codec.Envelope("call", id="late", method="m",
                                       deadline=mdp.now_ms() - 1))
    dealer.send_multipart(mdp.client_request(service, late))
    assert dealer.recv_multipart()[3:] == mdp.error_body(
        "late", Timeout("the deadline passed before the broker got it"))


def test_mmi_stats_has_the_reference_shape(broker: BrokerProcess,
                                           raw_workers: list[RawWorker]) -> None:
    raw_workers.append(RawWorker(broker.endpoint))
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    stats = broker.stats()
    assert set(stats) == {"counters", "drops", "dropped", "workers", "services",
                          "heartbeat_ms", "queued", "queued_bytes", "ejected", "splits"}
    assert stats["splits"] == {}  # no split file: nothing is split (SPEC 2.14)
    assert stats["services"] == {"calc": {
        "workers": 1, "waiting": 0, "inflight": 0, "queued_bytes": 0, "ejected": 0,
        "outcomes": {"requests": 0, "ok": 0, "timeout": 0, "unavailable": 0,
                     "worker_lost": 0, "retried": 0, "too_busy": 0}}}
    assert stats["workers"] == 1 and stats["dropped"] == 0
    assert stats["counters"]["workers_ready"] == 1


# ------------------------------------------------------------------ streams --

def test_a_stream_outlives_its_deadline(broker: BrokerProcess, dealer: zmq.Socket[bytes],
                                        raw_workers: list[RawWorker]) -> None:
    """SPEC 2.5 and 2.7: the deadline bounds the wait for a worker, not a running reply."""
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    deadline = mdp.now_ms() + 300
    env = codec.Envelope("call", id="s", method="m", deadline=deadline)
    dealer.send_multipart(mdp.client_request(b"calc", codec.encode(env)))
    address, _ = raw.next_request()
    wait_until(lambda: mdp.now_ms() > deadline + 100, timeout=5, what="the deadline passed")
    for part in range(3):
        more = part < 2
        body = codec.encode(codec.Envelope("result", id="s", payload=part, more=more))
        raw.sock.send_multipart(mdp.worker_reply(address, body))
        head = reply_of(dealer)
        assert head["id"] == "s" and bool(head.get("more")) is more
        if more:
            assert inflight(broker) == 1  # still outstanding between parts
    stats = broker.stats()
    assert "expired" not in stats["counters"] and stats["dropped"] == 0
    assert stats["services"]["calc"]["inflight"] == 0


# What the broker reads from a header (SPEC 2.6): the compiled broker's scanner must agree
# with gateway.broker.header.request_fields (json.loads) on every one of these.
HEADERS = [
    b'{"id":"a"}', b'{ "id" : "a" }\n', b'{"id":"a","id":"b"}', b'{"id":"\\u0041"}',
    b'{"id":"\\ud83d\\ude00 \\/ \\" \\\\"}', '{"id":"\u00e9\u2028"}'.encode(),
    b'{"id":"a","deadline":1}', b'{"id":"a","deadline":-5}', b'{"id":"a","deadline":0}',
    b'{"id":"a","deadline":1.0}', b'{"id":"a","deadline":1e3}', b'{"id":"a","deadline":true}',
    b'{"id":"a","deadline":"1"}', b'{"id":"a","deadline":99999999999999999999999}',
    b'{"id":"a","deadline":-99999999999999999999999}', b'{"id":"a","deadline":-0}',
    b'{"id":"a","x":NaN,"y":-Infinity,"z":Infinity}',
    b'{"id":"a","http":{"id":"b","h":[1,-2.5e-3,{"k":[[],{}]},null,false]}}',
    b'{"id":"a","x":' + b"[" * 300 + b"]" * 300 + b"}",
    b'{"id":"a",}', b'{"id":"a"} x', b'{"id":"a","x":01}', b'{"id":"a","x":"\x01"}',
    b'{"id":"a","x":"\\x"}', b'{"id":"a","x":tru}', b'{"id":"a","x":-}', b'{"id":"a","x":1.}',
    b'{"id":"a","x":.5}', b'{"id":"a","x":1e}', b'{"id":"a"', b'{"id":"a","x":[1,]}',
    b'{"id":"a" "x":1}', b'{"id":null}', b'{"ID":"a"}', b'{"id":["a"]}', b'[{"id":"a"}]',
    b'{"id":"\xed\xa0\x80"}', b'{"id":"\xc0\xaf"}', b'{"id":"a\xff"}', b'{"id":"\\u12"}',
    b'{"id":"a","x":{"y":1,}}', b'{"id":"a","x":{1:2}}', b'{"id":"a","x":"\\uZZZZ"}',
]


@pytest.mark.parametrize("broker_extra", [NO_WINDOW], indirect=True)
@pytest.mark.parametrize("head", HEADERS, ids=range(len(HEADERS)))
def test_header_reading_agrees_with_the_reference(
        broker: BrokerProcess, dealer: zmq.Socket[bytes], head: bytes) -> None:
    from gateway.broker.header import request_fields

    fields = request_fields(head)
    dealer.send_multipart(mdp.client_request(b"ghost", [head, b"null"]))
    assert dealer.poll(5000), "no answer"
    body = dealer.recv_multipart()[3:]
    answer = json.loads(body[0])
    if fields is None:
        assert re.fullmatch("[0-9a-f]{32}", answer["id"]), answer
        assert answer["error"]["code"] == "unknown_service"
        return
    rid, deadline, _, _ = fields
    assert answer["id"] == rid
    if deadline and deadline - 50 <= mdp.now_ms():
        assert body == mdp.error_body(rid, Timeout("the deadline passed before the broker got it"))
    else:
        assert body == mdp.error_body(rid, UnknownService("no worker has ever served ghost"))


def test_bodies_of_many_frames_cross_untouched(broker: BrokerProcess,
                                               dealer: zmq.Socket[bytes],
                                               raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    body = [*call("many"), *[bytes([i]) * i for i in range(60)], b"\x00" * 100_000]
    dealer.send_multipart(mdp.client_request(b"calc", body))
    address, got = raw.next_request()
    assert got == body
    raw.sock.send_multipart(mdp.worker_reply(address, list(reversed(body))))
    assert dealer.poll(5000)
    assert dealer.recv_multipart()[3:] == list(reversed(body))


@pytest.mark.parametrize("broker_extra", [("--max-msg-size", "4096")], indirect=True)
def test_a_message_over_the_size_limit_is_refused_at_the_transport(
        broker: BrokerProcess, dealer: zmq.Socket[bytes], client: Client,
        raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    dealer.send_multipart(mdp.client_request(b"calc", [*call("big"), b"x" * 10_000]))
    assert mdp.REQUEST not in raw.commands_for(0.3)
    pending = client.submit("calc", "echo", "small")
    raw.answer(*raw.next_request(), "fine")
    assert pending.result() == "fine"


def test_ready_twice_disconnects_the_worker(broker: BrokerProcess,
                                            raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    raw.sock.send_multipart(mdp.worker_ready(b"calc"))
    assert mdp.DISCONNECT in raw.commands_for(0.5)
    wait_until(lambda: not live(broker, "calc"), timeout=5, what="the worker forgotten")


@pytest.mark.parametrize("metadata, credit", [
    ({"credit": 0}, 1), ({"credit": True}, 1), ({"credit": "3"}, 1), ({"credit": -7}, 1),
    ({"credit": 3}, 3), ({"credit": 10**30}, 1000), ({"credit": 2.0}, 1)])
def test_credit_is_read_and_clamped(broker: BrokerProcess, dealer: zmq.Socket[bytes],
                                    raw_workers: list[RawWorker],
                                    metadata: dict[str, object], credit: int) -> None:
    raw = RawWorker(broker.endpoint, metadata=metadata)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    sent = min(credit + 1, 5)
    for i in range(sent):
        dealer.send_multipart(mdp.client_request(b"calc", call(f"c{i}")))
    in_flight = min(credit, sent)
    wait_until(lambda: inflight(broker) == in_flight and waiting(broker) == sent - in_flight,
               timeout=5, what=f"{in_flight} in flight")
