"""The broker's memory bounds (SPEC 2.5), against both brokers: deadlines clamped to a
maximum, caps on waiting requests and bytes per service and in total answered
``too_busy``, and memory given back once a burst of large frames has drained."""
# The fixtures come from the conformance suite's module, so their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

import json

import pytest
import zmq

from protocol import codec, mdp
from protocol.errors import TooBusy, UnknownService
from tests.gateway.test_broker import (  # noqa: F401 (fixtures)
    broker,
    broker_extra,
    dealer,
    heartbeat_ms,
    impl,
)
from tests.support.broker import BrokerProcess
from tests.support.procs import wait_until

MIB = 1024 * 1024
# A long start-up window: every service here is unknown, and its requests must queue.
WINDOW = ("--startup-grace-ms", "600000")


def call(rid: str, deadline: int, payload: object = None) -> list[bytes]:
    """The body of a call with a chosen id and absolute deadline (ms)."""
    return codec.encode(codec.Envelope("call", id=rid, method="m", payload=payload,
                                       deadline=deadline))


def answers(sock: zmq.Socket[bytes], n: int, timeout_ms: int = 10_000) -> dict[str, dict]:
    """The next ``n`` replies on a raw client socket, as error objects by request id."""
    out: dict[str, dict] = {}
    for _ in range(n):
        assert sock.poll(timeout_ms), f"only {len(out)} of {n} answers arrived"
        head = json.loads(sock.recv_multipart()[3])
        out[head["id"]] = head["error"]
    return out


def rss_kib(pid: int) -> int:
    """The resident set of process ``pid`` (VmRSS, KiB)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.parametrize("broker_extra", [(*WINDOW, "--max-deadline-ms", "300")],
                         indirect=True)
def test_a_far_deadline_is_clamped_to_the_maximum(broker: BrokerProcess,
                                                  dealer: zmq.Socket[bytes]) -> None:
    dealer.send_multipart(mdp.client_request(b"ghost", call("far", 2 ** 62)))
    # Without the clamp this request would wait for ever: the answer is its expiry.
    error = answers(dealer, 1)["far"]
    assert error["code"] == UnknownService.code
    stats = broker.stats()
    assert stats["counters"]["deadlines_clamped"] == 1
    assert stats["counters"]["expired"] == 1
    assert stats["queued"] == 0


@pytest.mark.parametrize("broker_extra", [(*WINDOW, "--max-queued", "3",
                                           "--max-queued-total", "5")],
                         indirect=True)
def test_waiting_requests_are_capped_per_service_and_in_total(
        broker: BrokerProcess, dealer: zmq.Socket[bytes]) -> None:
    later = mdp.now_ms() + 60_000
    for i in range(4):
        dealer.send_multipart(mdp.client_request(b"one", call(f"one-{i}", later)))
    assert answers(dealer, 1) == {"one-3": {
        "code": TooBusy.code, "message": "3 requests for one are already waiting"}}
    for i in range(3):
        dealer.send_multipart(mdp.client_request(b"two", call(f"two-{i}", later)))
    assert answers(dealer, 1) == {"two-2": {
        "code": TooBusy.code, "message": "the broker is full (5 requests waiting)"}}
    stats = broker.stats()
    assert stats["counters"]["too_busy"] == 2
    assert stats["queued"] == 5
    assert stats["services"]["one"]["waiting"] == 3
    assert stats["services"]["two"]["waiting"] == 2


@pytest.mark.parametrize("broker_extra", [(*WINDOW, "--max-queued-bytes", str(3 * MIB),
                                           "--max-queued-bytes-total", str(4 * MIB))],
                         indirect=True)
def test_waiting_bytes_are_capped_per_service_and_in_total(
        broker: BrokerProcess, dealer: zmq.Socket[bytes]) -> None:
    later = mdp.now_ms() + 60_000
    blob = [b"x" * MIB]
    for i in range(3):
        dealer.send_multipart(mdp.client_request(b"one", call(f"one-{i}", later) + blob))
    assert answers(dealer, 1)["one-2"]["code"] == TooBusy.code
    sizes = broker.stats()
    assert sizes["services"]["one"]["waiting"] == 2
    one_bytes = sizes["services"]["one"]["queued_bytes"]
    assert 2 * MIB < one_bytes < 3 * MIB
    for i in range(3):
        dealer.send_multipart(mdp.client_request(b"two", call(f"two-{i}", later) + blob))
    full = answers(dealer, 2)
    assert set(full) == {"two-1", "two-2"}
    assert all(error["message"].startswith("the broker is full (") for error in full.values())
    stats = broker.stats()
    assert stats["counters"]["too_busy"] == 3
    assert stats["queued"] == 3
    assert stats["queued_bytes"] == one_bytes + stats["services"]["two"]["queued_bytes"]


# Eleven 8 MiB frames to a service no worker has registered, inside the start-up window:
# four fit under the 36 MiB byte cap, the other seven are answered too_busy at once.
@pytest.mark.parametrize("broker_extra", [(*WINDOW, "--max-queued-bytes", str(36 * MIB))],
                         indirect=True)
def test_a_burst_of_large_frames_is_capped_and_its_memory_returned(
        broker: BrokerProcess, dealer: zmq.Socket[bytes]) -> None:
    wait_until(lambda: broker.stats()["counters"].get("requests", 0) >= 1, timeout=5,
               what="the broker serving")
    idle = rss_kib(broker.pid)
    frame = b"\x00" * (8 * MIB)
    deadline = mdp.now_ms() + 3000
    for i in range(11):
        dealer.send_multipart([*mdp.client_request(b"ghost", call(f"big-{i}", deadline)), frame])
    del frame
    refused = answers(dealer, 7)
    assert {error["code"] for error in refused.values()} == {TooBusy.code}
    stats = broker.stats()
    assert stats["services"]["ghost"]["waiting"] == 4
    assert stats["queued_bytes"] > 32 * MIB
    # The four queued ones expire, answered as requests for a service never served.
    expired = answers(dealer, 4)
    assert {error["code"] for error in expired.values()} == {UnknownService.code}
    assert set(refused) | set(expired) == {f"big-{i}" for i in range(11)}
    wait_until(lambda: broker.stats()["queued_bytes"] == 0, timeout=5, what="queue empty")
    wait_until(lambda: rss_kib(broker.pid) <= 2 * idle, timeout=10,
               what=f"the broker's RSS back within 2x of its idle {idle} KiB")
    counters = broker.stats()["counters"]
    assert counters["too_busy"] == 7 and counters["memory_trims"] >= 1
