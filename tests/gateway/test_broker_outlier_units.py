"""Outlier ejection's rules on the registry alone (SPEC 2.13): counting, bounds, durations.

The conformance suite (``test_broker_outlier.py``) proves the same rules on both broker
processes; these pin the arithmetic (multiplier, cap, restart of the multiplier) that
would need timing to observe from outside.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter

from gateway.broker.outlier import INTERNAL_ERROR, OutlierPolicy, Outliers
from gateway.broker.registry import Registry, Request, Worker
from protocol import mdp

IDS = itertools.count()


def setup(workers: int, **policy: int) -> tuple[Registry, Outliers, list[Worker], Counter[str]]:
    reg = Registry()
    counters: Counter[str] = Counter()
    made = [reg.add_worker(f"w{i}".encode(), b"calc", credit=10, expiry=1e12)
            for i in range(workers)]
    return reg, Outliers(OutlierPolicy(**policy), reg, counters), made, counters


def held(reg: Registry, worker: Worker, deadline: int) -> Request:
    """A request dispatched to ``worker`` with ``deadline`` (ms)."""
    request = Request(client=b"c", service=b"calc", body=[b"h"], id=f"r{next(IDS)}",
                      deadline=deadline)
    worker.inflight[request.client, request.id] = request
    request.worker = worker.identity
    return request


def fail(reg: Registry, outliers: Outliers, worker: Worker, times: int) -> None:
    """``times`` requests held by ``worker`` past their deadline, then one sweep."""
    for _ in range(times):
        held(reg, worker, mdp.now_ms() - 1)
    outliers.sweep()


def test_failures_in_a_row_eject_and_a_reply_in_time_resets() -> None:
    reg, outliers, (bad, good), counters = setup(2, consecutive=3)
    fail(reg, outliers, bad, 2)
    outliers.replied(bad, held(reg, bad, mdp.now_ms() + 60_000), b"{}")
    assert bad.failures == 0
    fail(reg, outliers, bad, 2)
    assert not bad.ejected_until and counters["worker_failures"] == 4
    outliers.replied(bad, held(reg, bad, mdp.now_ms() - 1), b"{}")  # a late reply
    svc = reg.services[b"calc"]
    assert bad.ejected_until and svc.ejected == 1 and outliers.ejected() == 1
    assert list(svc.idle) == [good.identity] and counters["ejections"] == 1
    # A sweep counts each held request once.
    outliers.sweep()
    assert counters["worker_failures"] == 5


def test_an_ejected_worker_is_not_put_back_in_line_by_a_reply() -> None:
    reg, outliers, (bad, _), _ = setup(2, consecutive=1)
    request = held(reg, bad, mdp.now_ms() - 1)
    outliers.sweep()
    reg.release(bad, request)
    assert bad.identity not in reg.services[b"calc"].idle


def test_an_ejection_ends_and_the_worker_is_back_in_line() -> None:
    reg, outliers, (bad, _), _ = setup(2, consecutive=1)
    fail(reg, outliers, bad, 1)
    bad.ejected_until = time.monotonic() - 0.001
    assert outliers.sweep() == {b"calc"}
    assert not bad.ejected_until and bad.identity in reg.services[b"calc"].idle
    assert reg.services[b"calc"].ejected == 0


def test_ejections_grow_up_to_the_cap_and_start_over_after_a_long_healthy_spell() -> None:
    reg, outliers, (bad, _), _ = setup(2, consecutive=1, base_ejection_ms=1000,
                                       max_ejection_ms=2500)
    spans = []
    for _ in range(4):
        before = time.monotonic()
        fail(reg, outliers, bad, 1)
        after = time.monotonic()
        spans.append((bad.ejected_until - after, bad.ejected_until - before))
        bad.ejected_until = time.monotonic() - 0.001
        outliers.sweep()
    for (low, high), expected in zip(spans, (1.0, 2.0, 2.5, 2.5), strict=True):
        assert low <= expected <= high
    bad.returned_at = time.monotonic() - 3.0  # back for longer than the longest ejection
    before = time.monotonic()
    fail(reg, outliers, bad, 1)
    assert bad.ejections == 1 and bad.ejected_until - before >= 1.0


def test_the_last_routable_worker_is_never_ejected() -> None:
    reg, outliers, (only,), counters = setup(1, consecutive=1)
    fail(reg, outliers, only, 3)
    assert not only.ejected_until and counters["worker_failures"] == 3
    reg, outliers, (a, b), _ = setup(2, consecutive=1, max_ejection_percent=0)
    fail(reg, outliers, a, 1)
    fail(reg, outliers, b, 1)
    # One of two may always go, even at 0 %; the other is then the last routable one.
    assert a.ejected_until and not b.ejected_until


def test_at_most_the_configured_share_is_ejected() -> None:
    reg, outliers, workers, _ = setup(5, consecutive=1, max_ejection_percent=40)
    for worker in workers:
        fail(reg, outliers, worker, 1)
    assert sum(1 for w in workers if w.ejected_until) == 2
    assert reg.services[b"calc"].ejected == 2
    # A removed ejected worker leaves the service's count.
    ejected = next(w for w in workers if w.ejected_until)
    reg.remove_worker(ejected.identity)
    assert reg.services[b"calc"].ejected == 1


def test_internal_errors_count_only_when_asked() -> None:
    error_head = INTERNAL_ERROR + b',"message":"boom"},"id":"x","kind":"error","v":1}'
    for count_errors, failures in ((False, 0), (True, 1)):
        reg, outliers, (worker, _), _ = setup(2, consecutive=5, count_errors=count_errors)
        outliers.replied(worker, held(reg, worker, mdp.now_ms() + 60_000), error_head)
        assert worker.failures == failures


def test_zero_consecutive_counts_nothing() -> None:
    reg, outliers, (bad, _), counters = setup(2, consecutive=0)
    fail(reg, outliers, bad, 5)
    outliers.replied(bad, held(reg, bad, mdp.now_ms() - 1), b"{}")
    assert not bad.ejected_until and bad.failures == 0 and not counters
