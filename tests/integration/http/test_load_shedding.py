"""Load shedding at the real front (issue 14, item 6): admission control per route and service.

A burst of slow requests at a route with ``max_concurrency = 2`` and
``queue_timeout = 0.2 s``: the admitted ones succeed, the rest are answered
503 ``overloaded`` with ``Retry-After`` while the admitted ones are still
running (so from the queue, not after a deadline), and every health probe
answers meanwhile, with the front's threads all busy. Both paths of the
front are covered: a ``wsgi`` route on the event-loop fast path (a py2 and a
py3 worker) and an ``http`` route in the front's threads.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.http.client import fetch
from tests.integration.http.conftest import (
    UPSTREAM,
    start_broker,
    start_gateway,
    start_gunicorn,
    start_wsgi_worker,
    wait_for_service,
)
from tests.integration.http.slowclients import probe_health
from tests.support.procs import python2

LIMITS = {"max_concurrency": 2, "queue_timeout": 0.2}


@dataclass
class Answer:
    """One response of a burst, with its place in the order of completion."""

    status: int
    headers: dict[str, str]
    body: bytes
    done: int


def burst(port: int, target: str, count: int) -> list[Future[Answer]]:
    """``count`` concurrent GETs of ``target``, each on its own connection."""
    order = iter(range(10 ** 6))
    lock = threading.Lock()

    def one() -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", target)
            resp = conn.getresponse()
            body = resp.read()
            with lock:
                done = next(order)
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body, done)
        finally:
            conn.close()

    pool = ThreadPoolExecutor(max_workers=count)
    futures = [pool.submit(one) for _ in range(count)]
    pool.shutdown(wait=False)
    return futures


def check_shedding(port: int, target: str, count: int = 20) -> None:
    """Run a burst at ``target`` with health probes alongside and check what each got."""
    futures = burst(port, target, count)
    probes = []
    while not all(f.done() for f in futures):
        probes.append(probe_health(port))
    answers = [f.result() for f in futures]
    ok = [a for a in answers if a.status == 200]
    shed = [a for a in answers if a.status == 503]
    assert len(ok) + len(shed) == count, [a.status for a in answers]
    assert len(ok) >= LIMITS["max_concurrency"], "the admitted requests must succeed"
    assert shed, "a burst past the limit must be shed"
    for answer in shed:
        assert answer.headers["retry-after"] == "1"
        assert answer.headers["content-type"] == "application/problem+json"
        assert json.loads(answer.body)["code"] == "overloaded"
    # Shed from the queue, while the admitted requests were still running.
    assert max(a.done for a in shed) < min(a.done for a in ok)
    assert probes and all(probes), probes


@pytest.fixture
def estate(procs: Any, workdir: str) -> dict[str, Any]:
    endpoint = start_broker(procs)
    upstream = start_gunicorn(procs, UPSTREAM, threads=16)
    gw = start_gateway(procs, workdir, {
        "broker": endpoint,
        "routes": [
            {"prefix": "/slow2", "backend": "wsgi", "service": "slow2", "timeout": 20.0,
             **LIMITS},
            {"prefix": "/slow3", "backend": "wsgi", "service": "slow3", "timeout": 20.0,
             **LIMITS},
            {"prefix": "/up", "backend": "http", "upstream": upstream.url, "strip_prefix": True,
             **LIMITS},
            {"prefix": "/free", "backend": "http", "upstream": upstream.url,
             "strip_prefix": True},
        ]}, workers=1, threads=4)
    return {"procs": procs, "endpoint": endpoint, "gateway": gw}


@pytest.mark.parametrize("runtime", ["py2", "py3"])
def test_a_burst_at_a_wsgi_route_is_shed_on_the_fast_path(estate: dict[str, Any],
                                                          runtime: str) -> None:
    try:
        python = python2() if runtime == "py2" else sys.executable
    except RuntimeError as exc:
        pytest.skip(str(exc))
    service = "slow2" if runtime == "py2" else "slow3"
    start_wsgi_worker(estate["procs"], estate["endpoint"], service,
                      "tests.integration.http.slow_app:app", python=python)
    wait_for_service(estate["endpoint"], service)
    check_shedding(estate["gateway"].port, f"/{service}/x?ms=1500")


def test_a_burst_at_an_http_route_is_shed_with_every_thread_busy(
        estate: dict[str, Any]) -> None:
    port = estate["gateway"].port
    # Fill the front's 4 threads with an unlimited route first: health must not wait on them.
    busy = burst(port, "/free/slow?s=4", 6)
    try:
        check_shedding(port, "/up/slow?s=1.5")
        # The gateway's other endpoints run in a pool of their own: they answer while
        # the request threads are all still held by the slow route.
        answer = fetch(port, "GET", "/_gateway/openapi.json")
        assert answer.status == 200 and json.loads(answer.body)["openapi"].startswith("3.")
        assert not all(f.done() for f in busy), "the slow requests must still be running"
    finally:
        deadline = time.monotonic() + 30
        for future in busy:
            future.result(timeout=max(0.1, deadline - time.monotonic()))
