"""Slow clients against the real front (issue 14, item 2): timeouts, a per-client cap, health.

- 500 slowloris connections (a header byte every second, never a whole head)
  and 100 stalled bodies against a front with 2 threads: every health probe
  succeeds meanwhile, and the front closes every slow connection after its
  timeout, with a 408 problem;
- a client address past ``max_connections_per_client`` gets 429 and a close,
  while another address is served, and it is served again once it holds fewer.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from tests.integration.http.client import fetch
from tests.integration.http.conftest import UPSTREAM, start_gateway, start_gunicorn
from tests.integration.http.slowclients import (
    SlowCrowd,
    probe_health,
    problem_of,
    status_of,
)
from tests.support.procs import wait_until

HEADER_TIMEOUT = 3.0
BODY_TIMEOUT = 2.0


def test_slowloris_and_stalled_bodies_are_cut_off_and_health_answers(
        procs: Any, workdir: str) -> None:
    upstream = start_gunicorn(procs, UPSTREAM)
    gw = start_gateway(procs, workdir, {
        "routes": [{"prefix": "/api", "backend": "http", "upstream": upstream.url}],
        "limits": {"client_header_timeout": HEADER_TIMEOUT,
                   "client_body_timeout": BODY_TIMEOUT}}, workers=1, threads=2)
    crowd = SlowCrowd(gw.port)
    try:
        crowd.open_heads(500)
        crowd.open_bodies(100)
        probes: list[tuple[int, bool]] = []   # (slow connections open, probe answered)
        deadline = time.monotonic() + HEADER_TIMEOUT + 20.0
        while crowd.open() and time.monotonic() < deadline:
            crowd.drip(crowd.heads)            # a header byte a second: only the total counts
            probes.append((len(crowd.open()), probe_health(gw.port)))
            crowd.collect(1.0)
        assert not crowd.open(), f"{len(crowd.open())} slow connections still open"
        assert probes and all(ok for _, ok in probes), probes
        assert probes[0][0] == 600, "the first probe ran with every slow connection open"
        answered = [c for c in crowd.all() if c.answer]
        assert answered, "no slow connection got an answer before its close"
        for conn in answered:
            assert status_of(conn.answer) == 408, conn.answer[:200]
            assert problem_of(conn.answer)["code"] == "request_timeout"
        # The front still serves ordinary requests afterwards.
        assert fetch(gw.port, "GET", "/api/echo").status == 200
    finally:
        crowd.close()


def test_connections_past_the_per_client_cap_get_429(procs: Any, workdir: str) -> None:
    upstream = start_gunicorn(procs, UPSTREAM)
    gw = start_gateway(procs, workdir, {
        "routes": [{"prefix": "/api", "backend": "http", "upstream": upstream.url}],
        "limits": {"max_connections_per_client": 4, "client_header_timeout": 60.0}},
        workers=1)
    held = [socket.create_connection(("127.0.0.1", gw.port), timeout=5.0) for _ in range(4)]
    try:
        # The front accepts in its own time: wait until it counts all four.
        extra = wait_until(lambda: _refused(gw.port), 10, what="the fifth connection refused")
        assert status_of(extra) == 429
        head = extra.partition(b"\r\n\r\n")[0].lower()
        assert b"retry-after: " in head and b"connection: close" in head
        assert problem_of(extra)["code"] == "too_many_connections"
        # Another client address is not affected.
        assert probe_health(gw.port, source="127.0.0.2")
        held.pop().close()
        wait_until(lambda: probe_health(gw.port), 10, what="a slot for 127.0.0.1 again")
    finally:
        for sock in held:
            sock.close()


def _refused(port: int) -> bytes:
    """The answer to one request on a fifth connection, if it was refused; else b""."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(b"GET /_gateway/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    return data if status_of(data) == 429 else b""
