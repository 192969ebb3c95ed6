"""Per-service request outcomes in ``mmi.stats`` (SPEC 2.9), against both brokers.

Every request a broker holds a record for ends in exactly one of ``ok``,
``timeout``, ``unavailable``, ``worker_lost`` or ``too_busy`` under its
service's ``outcomes``; ``retried`` counts the extra attempts on the way;
``requests`` counts what arrived. Names no worker ever served are not
recorded (a client must not be able to grow ``mmi.stats``).
"""
# The fixtures come from the conformance suite's module, so their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

import pytest
import zmq

from protocol import codec, mdp
from protocol.client import Client
from protocol.errors import Timeout, TooBusy, Unavailable, UnknownService, WorkerLost
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

WINDOW = ("--startup-grace-ms", "600000")
NO_WINDOW = ("--startup-grace-ms", "0")


def outcomes(broker: BrokerProcess, service: str = "calc") -> dict[str, int]:
    """The service's outcome counters, with the zero ones left out (easier to compare)."""
    counts = broker.stats()["services"][service]["outcomes"]
    return {name: n for name, n in counts.items() if n}


def test_answered_requests_count_once_each_even_when_streamed(
        broker: BrokerProcess, dealer: zmq.Socket[bytes],
        raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    for n in range(3):
        env = codec.Envelope("call", id=f"c{n}", method="m", deadline=mdp.deadline_in(5))
        dealer.send_multipart(mdp.client_request(b"calc", codec.encode(env)))
        address, _ = raw.next_request()
        for part in range(2):  # two reply parts: one request, one outcome
            body = codec.encode(codec.Envelope("result", id=f"c{n}", payload=part,
                                               more=part == 0))
            raw.sock.send_multipart(mdp.worker_reply(address, body))
            assert dealer.poll(5000), "no reply part"
            dealer.recv_multipart()
    wait_until(lambda: outcomes(broker).get("ok") == 3, timeout=5, what="three ok")
    assert outcomes(broker) == {"requests": 3, "ok": 3}
    assert broker.stats()["counters"]["replies"] == 6


def test_deadlines_end_as_timeout_or_unavailable(
        broker: BrokerProcess, client: Client, raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    late = codec.Envelope("call", method="x", deadline=mdp.now_ms() - 10)
    with pytest.raises(Timeout):
        list(client.request("calc", late))   # past its deadline on arrival
    assert outcomes(broker) == {"requests": 1, "timeout": 1}
    busy = client.submit("calc", "hold", timeout=5.0)
    held = raw.next_request()
    with pytest.raises(Timeout):
        client.call("calc", "wait", timeout=0.3)   # queued behind a busy worker
    raw.answer(*held, "done")
    assert busy.result() == "done"
    raw.sock.send_multipart(mdp.disconnect())
    wait_until(lambda: not live(broker, "calc"), timeout=5, what="worker gone")
    with pytest.raises(Unavailable) as info:
        client.call("calc", "x", timeout=0.3)   # known, but no live worker in time
    assert not isinstance(info.value, UnknownService)
    assert outcomes(broker) == {"requests": 4, "timeout": 2, "ok": 1, "unavailable": 1}
    assert broker.stats()["counters"]["expired"] == 3


# Raw workers beat only while reading: a 500 ms heartbeat keeps them alive during set-up.
@pytest.mark.parametrize("heartbeat_ms", [500], indirect=True)
def test_a_dying_worker_loses_one_request_and_retries_the_idempotent_one(
        broker: BrokerProcess, client: Client, raw_workers: list[RawWorker]) -> None:
    doomed = RawWorker(broker.endpoint, credit=2)
    raw_workers.append(doomed)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    lost = client.submit("calc", "write", "v", idem=False)
    again = client.submit("calc", "read", "v", idem=True)
    doomed.next_request()
    doomed.next_request()
    backup = RawWorker(broker.endpoint)
    raw_workers.append(backup)
    wait_until(lambda: live(broker, "calc", 2), timeout=5, what="backup worker")
    doomed.close()   # dies holding both
    backup.answer(*backup.next_request(), "retried")
    assert again.result() == "retried"
    with pytest.raises(WorkerLost):
        lost.result()
    assert outcomes(broker) == {"requests": 2, "retried": 1, "ok": 1, "worker_lost": 1}


@pytest.mark.parametrize("broker_extra", [(*WINDOW, "--max-queued", "1")], indirect=True)
def test_a_full_queue_counts_too_busy(broker: BrokerProcess, client: Client,
                                      raw_workers: list[RawWorker]) -> None:
    raw = RawWorker(broker.endpoint)
    raw_workers.append(raw)
    wait_until(lambda: live(broker, "calc"), timeout=5, what="worker")
    first = client.submit("calc", "a", timeout=5.0)
    held = raw.next_request()
    second = client.submit("calc", "b", timeout=5.0)
    wait_until(lambda: broker.stats()["services"]["calc"]["waiting"] == 1, timeout=5,
               what="the second request queued")
    with pytest.raises(TooBusy):
        client.call("calc", "c", timeout=5.0)
    raw.answer(*held, 1)
    raw.answer(*raw.next_request(), 2)
    assert (first.result(), second.result()) == (1, 2)
    wait_until(lambda: outcomes(broker).get("ok") == 2, timeout=5, what="two ok")
    assert outcomes(broker) == {"requests": 3, "ok": 2, "too_busy": 1}


@pytest.mark.parametrize("broker_extra", [NO_WINDOW], indirect=True)
def test_names_no_worker_served_are_not_recorded(broker: BrokerProcess,
                                                 client: Client) -> None:
    for n in range(3):
        with pytest.raises(UnknownService):
            client.call(f"ghost{n}", "x", timeout=2.0)
    stats = broker.stats()
    assert stats["services"] == {}
    assert stats["counters"]["unknown_service"] == 3
