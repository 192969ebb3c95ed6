"""The front's broker link (``http.broker_link``) through a real front, broker and py3 worker:
either kind serves the fast path, and only on ``libzmq`` does each request wake libzmq's I/O
thread in the front worker, the hand-off the ``zmtp`` link exists to remove.

The front worker has that thread either way (the WSGI side's blocking client owns a libzmq
context); what the test counts is how often it is woken: its context switches, read from
``/proc``, across a fixed number of fast-path requests."""

from __future__ import annotations

import os
import sys

import pytest

from tests.integration.http.client import fetch
from tests.integration.http.conftest import start_gateway, start_wsgi_worker
from tests.support.broker import BrokerProcess
from tests.support.procs import ProcessGroup, wait_until

APP = "tests.integration.http.hold_app:app"


def io_thread_switches(pid: int) -> int:
    """Context switches so far of the libzmq I/O threads (``ZMQbg/IO/*``) of ``pid``."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as fh:
                if not fh.read().startswith("ZMQbg/IO"):
                    continue
            with open(f"/proc/{pid}/task/{tid}/status") as fh:
                # voluntary_ctxt_switches and nonvoluntary_ctxt_switches
                total += sum(int(line.split()[1]) for line in fh if "ctxt_switches" in line)
        except FileNotFoundError:
            continue  # the thread ended between the listing and the read
    return total


REQUESTS = 200


@pytest.mark.parametrize(("link", "wakes_io_thread"), [("zmtp", False), ("libzmq", True),
                                                       ("auto", False)])
def test_each_link_serves_and_only_libzmq_wakes_the_io_thread_per_request(
        procs: ProcessGroup, workdir: str, link: str, wakes_io_thread: bool) -> None:
    broker = BrokerProcess(procs, "native", endpoint="ipc://" + os.path.join(workdir, "b.ipc"))
    start_wsgi_worker(procs, broker.endpoint, "hold", APP, python=sys.executable)
    wait_until(lambda: broker.workers("hold") == 1, timeout=20, what="the hold worker")
    gateway = start_gateway(procs, workdir, {"broker": broker.endpoint, "broker_link": link,
                                             "routes": [{"prefix": "/hold", "backend": "wsgi",
                                                         "service": "hold", "timeout": 10}]})
    post = fetch(gateway.port, "POST", "/hold/x?s=0", body=b"b")
    assert (post.status, post.body) == (200, b"POST")
    (front,) = gateway.worker_pids()
    before = io_thread_switches(front)
    for _ in range(REQUESTS):
        answer = fetch(gateway.port, "GET", "/hold/x?s=0")
        assert (answer.status, answer.body) == (200, b"GET")
    woken = io_thread_switches(front) - before
    print(f"{link}: libzmq's I/O thread switched {woken} times in {REQUESTS} requests")
    if wakes_io_thread:
        assert woken >= REQUESTS  # at least once per request: send and reply
    else:
        assert woken < REQUESTS // 10  # its own timers at most; no request goes through it
