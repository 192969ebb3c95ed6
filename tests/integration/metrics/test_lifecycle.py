"""Metrics across front worker deaths and front reloads.

A front worker that dies keeps its counts (its files stay in the front's
multi-process directory) and stops counting as in flight; a reloaded front
serves its own directory, and the old front's is removed once it is gone.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from tests.integration.arbiter.conftest import Estate, alive
from tests.integration.metrics.conftest import access_lines, scrape, total
from tests.support.procs import wait_until


def front_workers(master: int) -> set[int]:
    """The live worker processes of the front master ``master``."""
    with open(f"/proc/{master}/task/{master}/children", encoding="ascii") as fh:
        return {int(p) for p in fh.read().split() if alive(int(p))}


def requests_of(e: Estate, route: str) -> float:
    return total(scrape(e), "gateway_http_requests_total", route=route)


def load(e: Estate, route: str, count: int) -> None:
    for i in range(count):
        assert e.get(f"{route}/n/{i}")[0] == 200


def test_a_killed_front_worker_keeps_its_counts(metrics_estate: Callable[..., Estate]) -> None:
    e = metrics_estate()
    master = e.program("http")["replicas"][0]["pid"]
    metrics_dir = os.path.join(e.run_dir, "metrics", f"front-{master}")
    assert os.path.isdir(metrics_dir)
    load(e, "/two", 12)
    # Counts reach the files within FLUSH_S; only then is a SIGKILL free to lose nothing.
    wait_until(lambda: requests_of(e, "/two") == 12, timeout=10.0, interval=0.1,
               what="12 requests counted")
    workers = front_workers(master)
    assert len(workers) == 2
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in front_workers(master) and len(front_workers(master)) == 2,
               timeout=15.0, what="the front worker replaced")
    wait_until(lambda: e.get("/_gateway/health")[0] == 200, timeout=10.0, what="front up")
    load(e, "/two", 8)
    wait_until(lambda: requests_of(e, "/two") == 20, timeout=10.0, interval=0.1,
               what="20 requests counted after the restart")
    assert total(scrape(e), "gateway_http_requests_in_flight") == 0


def test_a_reloaded_front_counts_afresh_and_cleans_up(
        metrics_estate: Callable[..., Estate]) -> None:
    e = metrics_estate()
    old = e.program("http")["replicas"][0]["pid"]
    load(e, "/three", 5)
    wait_until(lambda: requests_of(e, "/three") == 5, timeout=10.0, interval=0.1,
               what="5 requests counted")
    with open(e.path, encoding="utf-8") as fh:
        text = fh.read().replace("threads = 4", "threads = 6")
    with open(e.path, "w", encoding="utf-8") as fh:
        fh.write(text)
    assert e.reload()["changed"] == ["http"]
    new = e.program("http")["replicas"][0]["pid"]
    assert new != old
    wait_until(lambda: not alive(old), timeout=30.0, what="the old front gone")
    parent = os.path.join(e.run_dir, "metrics")
    wait_until(lambda: os.listdir(parent) == [f"front-{new}"], timeout=10.0,
               what="only the new front's directory left")
    load(e, "/three", 3)
    # A new front is a counter reset for Prometheus (rate() and increase() expect them).
    wait_until(lambda: requests_of(e, "/three") == 3, timeout=10.0, interval=0.1,
               what="the new front's 3 requests counted")


MIGRATION = """
[migrations.two]
route = "/two"
py3 = "three"
state = "shadow"
"""


def test_a_migrated_route_is_labelled_with_the_runtime_that_answered(
        metrics_estate: Callable[..., Estate]) -> None:
    import urllib.request
    e = metrics_estate(extra=MIGRATION)
    with open(os.path.join(e.run_dir, "admin.token"), encoding="ascii") as fh:
        token = fh.read().strip()
    for i in range(4):   # pinned to the port with the admin token
        req = urllib.request.Request(f"http://127.0.0.1:{e.port}/two/p/{i}", headers={
            "X-Gateway-Runtime": "py3", "X-Gateway-Token": token})
        with urllib.request.urlopen(req, timeout=5.0) as resp:
            assert b"cpython-3." in resp.read()
    load(e, "/two", 6)

    def counted() -> bool:
        text = scrape(e)
        return (total(text, "gateway_http_requests_total", route="/two", runtime="py3",
                      service="three") == 4
                and total(text, "gateway_http_requests_total", route="/two", runtime="py2",
                          service="two") == 6)
    wait_until(counted, timeout=10.0, interval=0.1, what="requests counted per runtime")
    text = scrape(e)
    assert total(text, "gateway_http_request_duration_seconds_count", route="/two") == 10
    wait_until(lambda: len(access_lines(e)) >= 10, timeout=10.0, what="10 access-log lines")
    served = [ln for ln in access_lines(e) if " route=/two " in ln]
    assert sum("runtime=py3 upstream=broker:three migration=shadow" in ln for ln in served) == 4
    assert sum("runtime=py2 upstream=broker:two migration=shadow" in ln for ln in served) == 6


STREAMS = """
[[routes]]
prefix = "/s2"
backend = "wsgi"
service = "s2"

[[routes]]
prefix = "/s3"
backend = "wsgi"
service = "s3"

[services.s2]
runtime = "py2"
app = "tests.integration.stream.apps:app"

[services.s3]
runtime = "py3"
app = "tests.integration.stream.apps:app"
"""


def test_streamed_answers_are_counted_whole(metrics_estate: Callable[..., Estate]) -> None:
    e = metrics_estate(extra=STREAMS)
    got = {}
    for route in ("/s2", "/s3"):
        status, body, _ = e.get(f"{route}/ticks?n=40&gap=0.001")
        assert status == 200 and body.count(b"tick") == 40
        got[route] = len(body)

    def counted() -> bool:
        text = scrape(e)
        return all(total(text, "gateway_http_response_bytes_total", route=r) == n
                   and total(text, "gateway_http_request_duration_seconds_count", route=r) == 1
                   for r, n in got.items())
    wait_until(counted, timeout=10.0, interval=0.1, what="the streamed bytes counted")
    wait_until(lambda: len(access_lines(e)) >= 2, timeout=10.0, what="two access-log lines")
    for line in access_lines(e):
        route = line.split(" route=")[1].split(" ")[0]
        assert f'HTTP/1.1" 200 {got[route]} ' in line


def test_in_flight_counts_requests_held_open(
        metrics_estate: Callable[..., Estate], workdir: str) -> None:
    import threading
    e = metrics_estate(extra=STREAMS)
    gate = os.path.join(workdir, "gate")
    results: list[int] = []
    clients = [threading.Thread(target=lambda: results.append(
        e.get(f"/s3/gated?gate={gate}", timeout=30.0)[0])) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        wait_until(lambda: total(scrape(e), "gateway_http_requests_in_flight") == 4,
                   timeout=15.0, interval=0.1, what="4 requests in flight")
    finally:
        open(gate, "w").close()
        for client in clients:
            client.join(timeout=30.0)
    assert results == [200] * 4
    wait_until(lambda: total(scrape(e), "gateway_http_requests_in_flight") == 0,
               timeout=10.0, interval=0.1, what="none in flight")
