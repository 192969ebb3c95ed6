"""Outlier ejection (SPEC 2.13), against both brokers: a worker that keeps missing
deadlines gets no new requests for a while, longer each time; the last worker of a
service and more than the allowed share are never ejected; a reply in time resets the
count; ``--outlier-consecutive 0`` turns it off.

The healthy worker is our protocol worker; the failing ones are raw MDP workers that
hold their requests (or answer after the deadline) on the test's say-so.
"""
# The fixtures come from the conformance suite's module, so their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import zmq

from protocol import codec, mdp
from protocol.worker import Worker
from tests.gateway.test_broker import (  # noqa: F401 (fixtures)
    RawWorker,
    broker,
    broker_extra,
    dealer,
    heartbeat_ms,
    impl,
    raw_workers,
    table_worker,
)
from tests.support.broker import BrokerProcess
from tests.support.procs import wait_until

# Short enough that a hung request fails quickly, long enough for a loaded loopback.
DEADLINE_MS = 300
BASE_MS = 600


def policy(consecutive: int, base_ms: int = BASE_MS, *more: str) -> tuple[str, ...]:
    return ("--outlier-consecutive", str(consecutive), "--outlier-base-ejection-ms",
            str(base_ms), *more)


class Traffic:
    """Requests one at a time from a raw client, and which worker each one reached."""

    def __init__(self, dealer: zmq.Socket[bytes], broker: BrokerProcess) -> None:
        self.dealer = dealer
        self.broker = broker
        self.sent = 0

    def round(self, watched: list[RawWorker]) -> tuple[int, float, list[bytes]]:
        """Send one request; the index in ``watched`` of the raw worker it reached
        (-1 when it was answered by another worker), its send time and its deadline."""
        self.sent += 1
        rid = f"r{self.sent}"
        sent_at = time.time()
        deadline = mdp.now_ms() + DEADLINE_MS
        body = codec.encode(codec.Envelope("call", id=rid, method="echo", payload=[rid],
                                           deadline=deadline))
        self.dealer.send_multipart(mdp.client_request(b"calc", body))
        poller = zmq.Poller()
        poller.register(self.dealer, zmq.POLLIN)
        for raw in watched:
            poller.register(raw.sock, zmq.POLLIN)
        end = time.time() + 10
        while (left := end - time.time()) > 0:
            for sock, _ in poller.poll(int(left * 1000) + 1):
                if sock is self.dealer:
                    head = json.loads(sock.recv_multipart()[3])
                    if head["id"] == rid:
                        return -1, sent_at, []
                    continue  # a late answer to an earlier request
                command, rest = mdp.split_worker(sock.recv_multipart())
                if command == mdp.REQUEST:
                    client, request = mdp.split_address(rest)
                    index = [raw.sock for raw in watched].index(sock)
                    return index, sent_at, [client, *request]
        raise AssertionError(f"request {rid} reached no worker")

    def until(self, watched: list[RawWorker], index: int, times: int = 1,
              rounds: int = 200) -> list[tuple[float, list[bytes]]]:
        """Rounds until raw worker ``index`` has got ``times`` requests; those requests."""
        got: list[tuple[float, list[bytes]]] = []
        for _ in range(rounds):
            where, sent_at, request = self.round(watched)
            if where == index:
                got.append((sent_at, request))
                if len(got) == times:
                    return got
        raise AssertionError(f"raw worker {index} got {len(got)} of {times} requests")

    def stat(self, key: str) -> int:
        return int(self.broker.stats().get(key, 0))

    def counter(self, name: str) -> int:
        return self.broker.counter(name)


@pytest.fixture
def traffic(dealer: zmq.Socket[bytes], broker: BrokerProcess) -> Iterator[Traffic]:
    yield Traffic(dealer, broker)


def hung(broker: BrokerProcess, raw_workers: list[RawWorker], credit: int = 100) -> RawWorker:
    """A raw worker with room for many requests that answers none unless told to.

    It announces a long heartbeat so the broker keeps it while the test ignores it.
    """
    raw = RawWorker(broker.endpoint, credit=credit, metadata={"heartbeat_ms": 60_000})
    raw_workers.append(raw)
    return raw


def calc_workers(broker: BrokerProcess, count: int) -> None:
    wait_until(lambda: broker.workers("calc") == count, timeout=10, what=f"{count} workers")


@pytest.mark.parametrize("broker_extra", [policy(3)], indirect=True)
def test_a_hung_worker_is_ejected_and_returns_later_each_time(
        broker: BrokerProcess, traffic: Traffic, table_worker: Worker,
        raw_workers: list[RawWorker]) -> None:
    bad = [hung(broker, raw_workers)]
    calc_workers(broker, 2)
    first = traffic.until(bad, 0, times=3)
    wait_until(lambda: traffic.stat("ejected") == 1, timeout=10, what="the first ejection")
    stats = broker.stats()
    assert stats["counters"]["ejections"] == 1 and stats["counters"]["worker_failures"] == 3
    calc = stats["services"]["calc"]
    # Still registered, and what it holds is left alone.
    assert calc["workers"] == 2 and calc["ejected"] == 1 and calc["inflight"] >= 3
    for _ in range(20):
        assert traffic.round(bad)[0] == -1, "an ejected worker got a new request"
    wait_until(lambda: traffic.stat("ejected") == 0, timeout=10, what="the worker's return")
    # It went out no earlier than its last failing request was sent.
    assert time.time() - first[-1][0] >= BASE_MS / 1000
    again = traffic.until(bad, 0, times=3)
    wait_until(lambda: traffic.counter("ejections") == 2, timeout=10,
               what="the second ejection")
    for _ in range(5):
        assert traffic.round(bad)[0] == -1
    wait_until(lambda: traffic.stat("ejected") == 0, timeout=10, what="the second return")
    # The second ejection lasts twice the base.
    assert time.time() - again[-1][0] >= 2 * BASE_MS / 1000
    traffic.until(bad, 0)


@pytest.mark.parametrize("broker_extra", [policy(2)], indirect=True)
def test_the_last_worker_of_a_service_is_never_ejected(
        broker: BrokerProcess, traffic: Traffic, raw_workers: list[RawWorker]) -> None:
    bad = [hung(broker, raw_workers)]
    calc_workers(broker, 1)
    traffic.until(bad, 0, times=4)
    wait_until(lambda: traffic.counter("worker_failures") == 4, timeout=10,
               what="four failures")
    assert traffic.stat("ejected") == 0 and traffic.counter("ejections") == 0
    assert traffic.round(bad)[0] == 0


@pytest.mark.parametrize("broker_extra", [policy(1, 60_000)], indirect=True)
def test_no_more_than_the_allowed_share_is_ejected(
        broker: BrokerProcess, traffic: Traffic, table_worker: Worker,
        raw_workers: list[RawWorker]) -> None:
    bad = [hung(broker, raw_workers) for _ in range(3)]
    calc_workers(broker, 4)
    for index in range(3):
        traffic.until(bad, index)
    # Every hung worker has failed at least once (some maybe more: the line rotates).
    wait_until(lambda: traffic.counter("worker_failures") >= 3
               and traffic.stat("ejected") == 2, timeout=10, what="three failures")
    # 50 % of 4 workers: two are out, the third hung one still gets work.
    stats = broker.stats()
    assert stats["ejected"] == 2 and stats["services"]["calc"]["ejected"] == 2
    assert stats["counters"]["ejections"] == 2
    assert any(traffic.round(bad)[0] >= 0 for _ in range(10))


@pytest.mark.parametrize("broker_extra", [policy(3)], indirect=True)
def test_a_reply_in_time_resets_the_count_and_a_late_one_counts(
        broker: BrokerProcess, traffic: Traffic, table_worker: Worker,
        raw_workers: list[RawWorker]) -> None:
    slow = [hung(broker, raw_workers, credit=1)]

    def answer(in_time: bool) -> None:
        [(_, (client, *body))] = traffic.until(slow, 0)
        if not in_time:
            deadline = codec.decode(body).deadline
            wait_until(lambda: mdp.now_ms() > deadline, timeout=5, what="the deadline")
        slow[0].answer(client, body, "done")

    calc_workers(broker, 2)
    for in_time in (False, False, True, False, False):
        answer(in_time)
    wait_until(lambda: traffic.counter("worker_failures") == 4, timeout=10,
               what="four late answers counted")
    assert traffic.counter("ejections") == 0
    answer(False)
    wait_until(lambda: traffic.stat("ejected") == 1, timeout=10, what="the ejection")
    assert traffic.counter("worker_failures") == 5


@pytest.mark.parametrize("broker_extra", [policy(0)], indirect=True)
def test_zero_consecutive_turns_ejection_off(
        broker: BrokerProcess, traffic: Traffic, table_worker: Worker,
        raw_workers: list[RawWorker]) -> None:
    bad = [hung(broker, raw_workers)]
    calc_workers(broker, 2)
    traffic.until(bad, 0, times=4)
    latest = mdp.now_ms() + DEADLINE_MS
    # Several sweeps (one per heartbeat) have run once every held deadline is well past.
    wait_until(lambda: mdp.now_ms() > latest + 5 * 100, timeout=5, what="sweeps")
    traffic.until(bad, 0, times=2, rounds=10)
    stats = broker.stats()
    assert stats["ejected"] == 0
    assert "ejections" not in stats["counters"] and "worker_failures" not in stats["counters"]


@pytest.mark.parametrize("broker_extra", [policy(1)], indirect=True)
def test_a_stream_begun_in_time_may_end_after_its_deadline(
        broker: BrokerProcess, traffic: Traffic, raw_workers: list[RawWorker]) -> None:
    streamer = [hung(broker, raw_workers, credit=1)]
    calc_workers(broker, 1)
    [(_, (client, *body))] = traffic.until(streamer, 0)
    env = codec.decode(body)
    first = codec.encode(codec.Envelope("result", id=env.id, payload=0, more=True))
    streamer[0].sock.send_multipart(mdp.worker_reply(client, first))
    wait_until(lambda: mdp.now_ms() > env.deadline + 5 * 100, timeout=5,
               what="sweeps past the deadline")
    last = codec.encode(codec.Envelope("result", id=env.id, payload=1))
    streamer[0].sock.send_multipart(mdp.worker_reply(client, last))
    wait_until(lambda: broker.stats()["services"]["calc"]["inflight"] == 0, timeout=5,
               what="the stream's end")
    assert traffic.counter("worker_failures") == 0


@pytest.mark.parametrize("broker_extra", [policy(2, BASE_MS, "--outlier-count-errors")],
                         indirect=True)
def test_internal_errors_count_when_asked(
        broker: BrokerProcess, traffic: Traffic, table_worker: Worker,
        raw_workers: list[RawWorker]) -> None:
    failing = [hung(broker, raw_workers, credit=1)]
    calc_workers(broker, 2)
    for _ in range(2):
        [(_, (client, *body))] = traffic.until(failing, 0)
        error = codec.Envelope("error", id=codec.decode(body).id,
                               error={"code": "internal", "message": "boom"})
        failing[0].sock.send_multipart(mdp.worker_reply(client, codec.encode(error)))
    wait_until(lambda: traffic.stat("ejected") == 1, timeout=10, what="the ejection")
    assert traffic.counter("worker_failures") == 2


@pytest.mark.parametrize("broker_extra", [policy(1, 60_000)], indirect=True)
def test_an_ejected_worker_that_dies_leaves_the_counts(
        broker: BrokerProcess, traffic: Traffic, table_worker: Worker,
        raw_workers: list[RawWorker]) -> None:
    bad = [hung(broker, raw_workers)]
    calc_workers(broker, 2)
    traffic.until(bad, 0)
    wait_until(lambda: traffic.stat("ejected") == 1, timeout=10, what="the ejection")
    bad[0].close()  # its connection closes: the broker forgets it (SPEC 2.6)
    wait_until(lambda: broker.workers("calc") == 1, timeout=10, what="the worker gone")
    stats = broker.stats()
    assert stats["ejected"] == 0 and stats["services"]["calc"]["ejected"] == 0
    assert traffic.round(bad[:0])[0] == -1  # the healthy worker serves on
