"""The front's ZMTP broker link (gateway.http.zmtplink) end to end: against a libzmq ROUTER,
and against both real brokers with real py3 workers, including a broker killed with -9
while idempotent and other requests are in flight, and a broker that is not there."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

import pytest
import zmq

from gateway.http.brokerlink import Parts
from gateway.http.zmtplink import ZmtpBroker
from protocol import codec, mdp
from protocol import errors as perrors
from tests.support.procs import wait_until

pytestmark = pytest.mark.slow


def call(method: str, params: Any, deadline_s: float = 10.0, idem: bool = False) -> codec.Envelope:
    """An RPC request envelope for the test table (tests.integration.rpc.services)."""
    return codec.Envelope("call", method=method, payload=params, idem=idem,
                          deadline=int((time.time() + deadline_s) * 1000))


async def answer(parts: Parts, timeout: float = 10.0) -> Any:
    """The reply's payload, or the typed error the link put among the parts."""
    item = await parts.get(timeout)
    if isinstance(item, perrors.ProtocolError):
        raise item
    header, frames = item
    env = codec.decode(frames, header=header)
    if env.kind == "error":
        raise perrors.from_wire(env.error or {})
    return env.payload


class EchoRouter:
    """A libzmq ROUTER in a thread that echoes each MDP request's body back, with
    ZMTP heartbeats on, so the link has to answer libzmq's PINGs to stay up."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, 20)
        self.sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 150)
        self.sock.bind(endpoint)
        self.stop = threading.Event()
        self.seen = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            frames = self.sock.recv_multipart()
            self.seen += 1
            # [identity, "", MDPC01, service, header, payload...] -> the same body back
            self.sock.send_multipart([frames[0], b"", mdp.CLIENT, frames[3], *frames[4:]])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close(linger=0)


def test_against_a_libzmq_router_many_in_flight_long_frames_and_heartbeats(workdir: str) -> None:
    router = EchoRouter("ipc://" + os.path.join(workdir, "router.ipc"))

    async def main() -> None:
        link = ZmtpBroker(router.sock.last_endpoint.decode())
        try:
            envs = [codec.Envelope("result", payload=i, deadline=int((time.time() + 10) * 1000))
                    for i in range(500)]
            big = codec.Envelope("result", payload="x" * 300_000)
            parts = [link.send(b"echo", env) for env in [*envs, big]]
            got = [await answer(p) for p in parts]
            assert got == [*range(500), "x" * 300_000]
            # Idle across several heartbeat timeouts: libzmq cuts a peer that leaves a PING
            # unanswered for 150 ms, so a missing PONG would show as a loss and a reconnect.
            # Idleness is what is under test here, so this waits on the clock.
            await asyncio.sleep(0.6)
            assert await answer(link.send(b"echo", codec.Envelope("result", payload="after"))) \
                == "after"
            assert link.pings >= 3
            assert link.broker_losses == 0 and link.connects == 1 and link.dropped == 0
            assert router.seen == 502
        finally:
            link.close()
    try:
        asyncio.run(main())
    finally:
        router.close()


def test_requests_and_many_in_flight_through_a_real_broker_to_py3_workers(rpc: Any) -> None:
    rpc.broker()  # tcp on loopback: the link's tcp path
    rpc.worker("py3", "work", credit=4)
    rpc.worker("py3", "work", credit=4)
    rpc.wait_workers("work", 2)

    async def main() -> None:
        link = ZmtpBroker(rpc.endpoint)
        try:
            assert await answer(link.send(b"work", call("echo", ["one"]))) == "one"
            parts = [link.send(b"work", call("echo", [i])) for i in range(300)]
            assert [await answer(p) for p in parts] == list(range(300))
            assert await answer(link.send(b"work", call("echo", ["é" * 40_000]))) == "é" * 40_000
            with pytest.raises(perrors.UnknownService):
                await answer(link.send(b"nobody", call("echo", [1], deadline_s=2.0)))
            assert link.pending == {} or all(not p.items for p in link.pending.values())
            assert link.dropped == 0 and link.broker_losses == 0
        finally:
            link.close()
    asyncio.run(main())


def test_a_broker_killed_with_requests_in_flight_resends_idempotent_and_fails_others(
        rpc: Any, workdir: str) -> None:
    rpc.endpoint = "ipc://" + os.path.join(workdir, "broker.ipc")
    broker = rpc.broker(heartbeat_ms=250)
    rpc.worker("py3", "work", credit=2)
    rpc.worker("py3", "work", credit=2)
    rpc.wait_workers("work", 2)

    async def main() -> None:
        link = ZmtpBroker(rpc.endpoint)
        try:
            assert await answer(link.send(b"work", call("echo", [0]))) == 0
            idem = [link.send(b"work", call("sleep", [1.0], deadline_s=30, idem=True))
                    for _ in range(2)]
            plain = [link.send(b"work", call("sleep", [1.0], deadline_s=30)) for _ in range(2)]
            await asyncio.to_thread(wait_until, lambda: _inflight(rpc) == 4, 10,
                                    what="4 calls at workers")
            rpc.kill(broker, signal.SIGKILL)
            started = time.monotonic()
            for parts in plain:
                with pytest.raises(perrors.Unavailable, match="closed"):
                    await answer(parts, timeout=5.0)
            assert time.monotonic() - started < 5.0  # at once, not at the 30 s deadline
            assert link.broker_losses == 1 and not link.linked
            await asyncio.to_thread(rpc.broker, 250)
            # The restarted broker knows no worker until each registers again (RFC 7).
            assert [await answer(p, timeout=20) for p in idem] == ["woke", "woke"]
            assert link.resent == 2 and link.broker_losses == 1 and link.linked
            assert await answer(link.send(b"work", call("echo", ["after"]))) == "after"
        finally:
            link.close()
    asyncio.run(main())


def test_no_broker_at_start_costs_requests_their_deadline_and_a_late_broker_serves(
        rpc: Any, workdir: str) -> None:
    rpc.endpoint = "ipc://" + os.path.join(workdir, "late.ipc")

    async def main() -> None:
        link = ZmtpBroker(rpc.endpoint)
        try:
            parts = link.send(b"work", call("echo", [1], deadline_s=0.5))
            started = time.monotonic()
            with pytest.raises(TimeoutError):  # what the fast path answers 504
                await answer(parts, timeout=0.5)
            assert time.monotonic() - started < 2.0 and not link.linked
            link.forget(next(iter(link.pending)))
            await asyncio.to_thread(rpc.broker, 250)
            rpc.worker("py3", "work")
            await asyncio.to_thread(rpc.wait_workers, "work", 1)
            assert await answer(link.send(b"work", call("echo", ["late"])), 20) == "late"
            assert link.linked and link.broker_losses == 0 and link.attempts > 1
        finally:
            link.close()
    asyncio.run(main())


def _inflight(rpc: Any) -> int:
    stats = rpc.stats()
    return 0 if stats is None else int(stats["services"].get("work", {}).get("inflight", 0))
