"""Admission control's gates on a real event loop: limits, FIFO hand-over, queue time, keys."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import ConfigError
from gateway.http.admission import Admission, Gate
from gateway.http.config import Route
from gateway.http.context import Call
from gateway.http.paths import parse_target
from gateway.http.routing import RouteTable


def call_for(routes: list[Route], path: str) -> Call:
    match = RouteTable(routes).match(path)
    assert match is not None
    return Call({}, "rid", parse_target(path), match)


def test_a_gate_admits_up_to_its_limit_then_refuses_at_once_without_a_queue() -> None:
    async def main() -> list[bool]:
        gate = Gate("g", 2, 0.0)
        return [await gate.acquire() for _ in range(3)]
    assert asyncio.run(main()) == [True, True, False]


def test_a_released_slot_goes_to_the_oldest_waiter() -> None:
    async def main() -> tuple[list[str], int]:
        gate = Gate("g", 1, 5.0)
        assert await gate.acquire()
        order: list[str] = []

        async def wait(name: str) -> None:
            assert await gate.acquire()
            order.append(name)
            gate.release()

        tasks = [asyncio.create_task(wait(n)) for n in ("first", "second")]
        while len(gate.waiters) < 2:
            await asyncio.sleep(0)
        gate.release()
        await asyncio.gather(*tasks)
        return order, gate.active
    order, active = asyncio.run(main())
    assert order == ["first", "second"]
    assert active == 0


def test_a_waiter_is_refused_after_the_queue_time_and_leaves_no_trace() -> None:
    async def main() -> tuple[bool, int, int]:
        gate = Gate("g", 1, 0.05)
        assert await gate.acquire()
        refused = not await gate.acquire()
        gate.release()
        return refused, gate.active, len(gate.waiters)
    assert asyncio.run(main()) == (True, 0, 0)


def test_a_cancelled_waiter_loses_no_slot() -> None:
    async def main() -> int:
        gate = Gate("g", 1, 5.0)
        assert await gate.acquire()
        task = asyncio.create_task(gate.acquire())
        while not gate.waiters:
            await asyncio.sleep(0)
        gate.release()          # the slot is handed to the waiter ...
        task.cancel()           # ... which is cancelled before it runs
        try:
            if await task:      # asyncio.wait_for may keep the result over the cancel:
                gate.release()  # then the slot is the caller's, released as usual
        except asyncio.CancelledError:
            pass
        return gate.active
    assert asyncio.run(main()) == 0


def test_the_refusal_is_a_503_with_retry_after() -> None:
    problem = Gate("the service slow", 2, 0.2).refusal(3)
    assert problem.status == 503 and problem.code == "overloaded"
    assert ("Retry-After", "3") in problem.headers
    assert "200 ms" in problem.detail


def test_gates_are_per_service_behind_an_rpc_mount_and_per_mount_for_http() -> None:
    routes = [Route("/rpc", "rpc", max_concurrency=3, queue_timeout=0.1),
              Route("/a", "wsgi", service="legacy", max_concurrency=4),
              Route("/b", "wsgi", service="legacy", max_concurrency=2),
              Route("/api", "http", upstream="http://127.0.0.1:9", max_concurrency=5),
              Route("/free", "http", upstream="http://127.0.0.1:9")]
    admission = Admission(routes)
    one = admission.gate(call_for(routes, "/rpc/highlight/render"))
    two = admission.gate(call_for(routes, "/rpc/htmldiff/diff"))
    assert one is not None and two is not None and one is not two
    assert one is admission.gate(call_for(routes, "/rpc/highlight/other"))
    assert one.limit == 3
    shared = admission.gate(call_for(routes, "/a/x"))
    assert shared is admission.gate(call_for(routes, "/b/y"))
    assert shared is not None and shared.limit == 2
    api = admission.gate(call_for(routes, "/api/x"))
    assert api is not None and api.limit == 5
    assert admission.gate(call_for(routes, "/free/x")) is None
    assert not Admission([routes[-1]])


@pytest.mark.parametrize("bad", [{"max_concurrency": -1}, {"max_concurrency": 1.5},
                                 {"queue_timeout": -0.1}, {"max_concurrency": True}])
def test_route_admission_values_are_checked(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"http\.routes"):
        Route("/x", "http", upstream="http://127.0.0.1:9", **bad)  # type: ignore[arg-type]


def test_the_slow_client_limits_have_safe_defaults_and_are_checked() -> None:
    from gateway.http.config import HttpLimits
    limits = HttpLimits()
    assert (limits.client_header_timeout, limits.client_body_timeout) == (10.0, 30.0)
    assert limits.max_connections_per_client == 1024
    assert HttpLimits(max_connections_per_client=0).max_connections_per_client == 0
    for bad in ({"client_header_timeout": 0}, {"client_body_timeout": -1.0},
                {"max_connections_per_client": -1}, {"max_connections_per_client": 2.5}):
        with pytest.raises(ConfigError, match=r"http\.limits\."):
            HttpLimits(**bad)  # type: ignore[arg-type]


def test_gateway_toml_routes_carry_admission_to_the_front() -> None:
    from gateway.commands.frontcfg import http_config
    from gateway.config import parse
    cfg = parse('[[routes]]\nprefix = "/slow"\nbackend = "wsgi"\nservice = "slow"\n'
                'max_concurrency = 8\nqueue_timeout_ms = 250\n'
                '[http]\nlimits = {client_header_timeout = 5.0, '
                'max_connections_per_client = 64}\n')
    front = http_config(cfg)
    route = front.routes[0]
    assert (route.max_concurrency, route.queue_timeout) == (8, 0.25)
    assert front.limits.client_header_timeout == 5.0
    assert front.limits.max_connections_per_client == 64
    with pytest.raises(ConfigError, match=r"routes\[0\]\.max_concurrency"):
        parse('[[routes]]\nprefix = "/s"\nbackend = "wsgi"\nservice = "s"\n'
              'max_concurrency = -1\n')
