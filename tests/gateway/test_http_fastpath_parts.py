"""The fast path's reply queue (brokerlink.Parts) on a real event loop: order, waking, timeouts."""

from __future__ import annotations

import asyncio

import pytest

from gateway.http.brokerlink import Parts


def test_parts_queued_before_the_wait_come_back_in_order_without_waiting() -> None:
    async def main() -> list[str]:
        parts = Parts([b"f"], True, 0.0)
        parts.put("head")
        parts.put("body")
        return [await parts.get(0.001), await parts.get(0.001)]
    assert asyncio.run(main()) == ["head", "body"]


def test_a_part_put_while_waiting_wakes_the_reader_and_clears_its_waiter() -> None:
    async def main() -> tuple[str, bool]:
        loop = asyncio.get_running_loop()
        parts = Parts([b"f"], True, 0.0)
        loop.call_soon(parts.put, "head")
        got = await parts.get(5.0)
        return got, parts.waiter is None
    assert asyncio.run(main()) == ("head", True)


def test_no_part_within_the_timeout_is_a_timeout_error_and_a_later_part_still_queues() -> None:
    async def main() -> str:
        parts = Parts([b"f"], True, 0.0)
        with pytest.raises(TimeoutError):
            await parts.get(0.01)
        assert parts.waiter is None
        parts.put("late")  # no reader now: kept for the next get
        return str(await parts.get(0.01))
    assert asyncio.run(main()) == "late"


def test_a_cancelled_reader_leaves_no_waiter_and_no_timer_behind() -> None:
    async def main() -> tuple[bool, int]:
        loop = asyncio.get_running_loop()
        parts = Parts([b"f"], True, 0.0)
        reader = loop.create_task(parts.get(30.0))
        await asyncio.sleep(0)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        # A 30 s timer left armed would still be scheduled on the loop.
        pending = [h for h in getattr(loop, "_scheduled", []) if not h.cancelled()]
        return parts.waiter is None, len(pending)
    assert asyncio.run(main()) == (True, 0)
