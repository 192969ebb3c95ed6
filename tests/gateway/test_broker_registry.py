"""The broker's registry alone: expiry of queued requests and dispatch past them."""

from __future__ import annotations

from gateway.broker.registry import Registry, Request


def queued(reg: Registry, rid: str, deadline: int) -> Request:
    request = Request(client=b"c", service=b"calc", body=[b"h"], id=rid, deadline=deadline)
    reg.enqueue(request)
    reg.arm(request)
    return request


def test_expired_requests_are_answered_once_and_never_dispatched() -> None:
    reg = Registry()
    doomed = [queued(reg, f"old-{i}", deadline=1_000 + i) for i in range(500)]
    survivor = queued(reg, "new", deadline=10_000)
    expired = reg.pop_expired(5_000)
    assert expired == doomed and all(r.done for r in doomed)
    assert reg.services[b"calc"].queued == 1
    assert reg.pop_expired(5_000) == []
    reg.add_worker(b"w", b"calc", credit=10, expiry=1e9)
    late: list[Request] = []
    pairs = list(reg.dispatchable(b"calc", 5_000, late))
    assert [r for _, r in pairs] == [survivor] and late == []
    assert reg.services[b"calc"].queued == 0 and not reg.services[b"calc"].waiting


def test_expired_requests_in_the_middle_are_compacted_away() -> None:
    reg = Registry()
    first = queued(reg, "first", deadline=10_000)
    for i in range(200):
        queued(reg, f"old-{i}", deadline=1_000)
    assert len(reg.pop_expired(5_000)) == 200
    svc = reg.services[b"calc"]
    assert svc.queued == 1 and list(svc.waiting) == [first]
