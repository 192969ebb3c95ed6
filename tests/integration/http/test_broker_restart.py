"""The broker's bad days behind a real gateway front (``wsgi`` route), against both brokers.

- Killed with -9 and restarted on the same endpoint, with py2 and py3 workers: a POST in
  flight gets 503 with Retry-After while the broker is still down, and a GET in flight
  completes on the restarted broker (SPEC 2.1).
- Its queue full (SPEC 2.5): a request beyond the cap is 503 ``too_busy`` with Retry-After.
- Not there when the front starts: a request gets 504 ``timeout`` at its deadline, and
  the broker that comes up later serves the next one.

The first and last run on both kinds of the front's broker link (``http.broker_link``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.http.client import fetch
from tests.integration.http.conftest import start_gateway, start_wsgi_worker
from tests.support.broker import IMPLEMENTATIONS, BrokerProcess
from tests.support.procs import ProcessGroup, wait_until

APP = "tests.integration.http.hold_app:app"


def inflight(broker: BrokerProcess) -> int:
    return int(broker.stats()["services"].get("hold", {}).get("inflight", 0))


LINKS = ("zmtp", "libzmq")


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_get_survives_a_broker_restart_and_post_fails_fast(
        procs: ProcessGroup, workdir: str, py2: str, impl: str, link: str) -> None:
    # ipc: a TCP port left free while the broker is down may be taken by another process,
    # or by a reconnecting peer's own ephemeral port (a loopback self-connect).
    endpoint = "ipc://" + os.path.join(workdir, "broker.ipc")
    broker = BrokerProcess(procs, impl, endpoint=endpoint, heartbeat_ms=250)
    for python in (py2, sys.executable):
        start_wsgi_worker(procs, broker.endpoint, "hold", APP, python=python)
    wait_until(lambda: broker.workers("hold") == 2, timeout=20, what="2 hold workers")
    gateway = start_gateway(procs, workdir, {"broker": broker.endpoint, "broker_link": link,
                                             "routes": [{"prefix": "/hold", "backend": "wsgi",
                                                         "service": "hold", "timeout": 30}]})
    with ThreadPoolExecutor(2) as pool:
        get = pool.submit(fetch, gateway.port, "GET", "/hold/x?s=1.5")
        post: Any = pool.submit(fetch, gateway.port, "POST", "/hold/x?s=1.5", body=b"once")
        wait_until(lambda: inflight(broker) == 2, timeout=15, what="both requests at workers")
        procs.signal(broker.proc, signal.SIGKILL)
        broker.proc.wait(timeout=10)
        # Answered while no broker runs at all: long before the route's 30 s timeout.
        refused = post.result(timeout=20)
        assert refused.status == 503
        assert refused.header("Retry-After") is not None
        assert b'"unavailable"' in refused.body
        assert not get.done()
        BrokerProcess(procs, impl, endpoint=broker.endpoint, heartbeat_ms=250)
        served = get.result(timeout=25)
    assert (served.status, served.body) == (200, b"GET")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_full_broker_queue_is_503_too_busy(procs: ProcessGroup, workdir: str,
                                              impl: str) -> None:
    endpoint = "ipc://" + os.path.join(workdir, "broker.ipc")
    broker = BrokerProcess(procs, impl, endpoint=endpoint, extra=("--max-queued", "1"))
    start_wsgi_worker(procs, broker.endpoint, "hold", APP)
    wait_until(lambda: broker.workers("hold") == 1, timeout=20, what="the hold worker")
    gateway = start_gateway(procs, workdir, {"broker": broker.endpoint, "routes": [
        {"prefix": "/hold", "backend": "wsgi", "service": "hold", "timeout": 30}]})
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(fetch, gateway.port, "GET", "/hold/x?s=1")
        wait_until(lambda: inflight(broker) == 1, timeout=15, what="one request at the worker")
        queued = pool.submit(fetch, gateway.port, "GET", "/hold/x?s=0")
        wait_until(lambda: broker.stats()["services"]["hold"]["waiting"] == 1, timeout=15,
                   what="one request queued")
        refused = fetch(gateway.port, "GET", "/hold/x?s=0")
        assert refused.status == 503 and refused.header("Retry-After") is not None
        assert b'"too_busy"' in refused.body
        assert running.result(timeout=20).status == 200
        assert queued.result(timeout=20).status == 200
    assert broker.counter("too_busy") == 1


@pytest.mark.parametrize("link", LINKS)
def test_no_broker_when_the_front_starts_is_504_at_the_deadline_then_a_late_broker_serves(
        procs: ProcessGroup, workdir: str, link: str) -> None:
    endpoint = "ipc://" + os.path.join(workdir, "late.ipc")
    gateway = start_gateway(procs, workdir, {"broker": endpoint, "broker_link": link,
                                             "routes": [{"prefix": "/hold", "backend": "wsgi",
                                                         "service": "hold", "timeout": 1}]})
    started = time.monotonic()
    late = fetch(gateway.port, "GET", "/hold/x?s=0")
    took = time.monotonic() - started
    assert late.status == 504 and b'"timeout"' in late.body
    assert late.header("Content-Type") == "application/problem+json"
    assert took < 10  # the 1 s deadline and its grace, never a hang
    broker = BrokerProcess(procs, "native", endpoint=endpoint, heartbeat_ms=250)
    start_wsgi_worker(procs, broker.endpoint, "hold", APP)
    wait_until(lambda: broker.workers("hold") == 1, timeout=20, what="the hold worker")
    wait_until(lambda: fetch(gateway.port, "GET", "/hold/x?s=0").status == 200, timeout=20,
               what="the front served by the late broker")
