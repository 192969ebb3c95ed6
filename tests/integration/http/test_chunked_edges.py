"""Malformed chunked bodies sent after the head: 400 before any backend sees the request.

Issue 14, item 7(a). The data files (data/smuggle/037..042) send head and body in one
write; here the body comes only after the front has started reading it (the client
waits for ``100 Continue``), which is when a streaming proxy would already have sent
the request head upstream. Both backends: ``http`` (a gunicorn upstream) and ``wsgi``
(a Python 2.7 worker over the broker).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tests.integration.http.conftest import (
    UPSTREAM,
    start_broker,
    start_gateway,
    start_gunicorn,
    start_wsgi_worker,
)
from tests.integration.http.rawhttp import RawAnswer, exchange
from tests.support.broker import wait_for_service
from tests.support.procs import python2

BAD_BODIES = {
    "size_minus_one": b"-1\r\nhello\r\n0\r\n\r\n",
    "extension_control_chars": b"5;\x01=\x7f\r\nhello\r\n0\r\n\r\n",
    "extension_open_quote": b'5;ext="open\r\nhello\r\n0\r\n\r\n',
    "size_2_pow_96": b"1000000000000000000000000\r\n" + b"x" * 4096,
    "size_trailing_garbage": b"5 x\r\nhello\r\n0\r\n\r\n",
}


@pytest.fixture(scope="module")
def edges(module_procs: Any, module_workdir: str) -> dict[str, Any]:
    api = start_gunicorn(module_procs, UPSTREAM)
    endpoint = start_broker(module_procs)
    start_wsgi_worker(module_procs, endpoint, "echo2", "tests.integration.http.upstream:app",
                      python=python2())
    wait_for_service(endpoint, "echo2")
    gateway = start_gateway(module_procs, module_workdir, {"broker": endpoint, "routes": [
        {"prefix": "/api", "backend": "http", "upstream": api.url},
        {"prefix": "/py2", "backend": "wsgi", "service": "echo2"}]})
    return {"api": api, "gateway": gateway}


def hits(edges: dict[str, Any], backend: str) -> int:
    """Requests the backend has run (the http upstream directly; the py2 app via the front)."""
    if backend == "http":
        answer = exchange(edges["api"].port, b"GET /__hits HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
    else:
        answer = exchange(edges["gateway"].port, b"GET /py2/__hits HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
    return int(json.loads(answer.body)["hits"])


def head_then_body(port: int, path: str, body: bytes) -> RawAnswer:
    """Send a chunked POST's head, wait for 100 Continue, then send ``body``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     "Expect: 100-continue\r\n\r\n".encode())
        got = b""
        while b"\r\n\r\n" not in got:
            piece = sock.recv(4096)
            assert piece, "the front closed before 100 Continue"
            got += piece
        interim, _, rest = got.partition(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100"), interim
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = rest
        while True:
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            data += piece
    finally:
        sock.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return RawAnswer(int(lines[0].split()[1]), headers, payload)


@pytest.mark.parametrize("backend, path", [("http", "/api/upload"), ("wsgi", "/py2/upload")])
@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_a_malformed_chunk_after_the_head_is_a_400_and_never_forwarded(
        edges: dict[str, Any], backend: str, path: str, name: str) -> None:
    before = hits(edges, backend)
    answer = head_then_body(edges["gateway"].port, path, BAD_BODIES[name])
    assert answer.status == 400
    problem = answer.problem()
    assert problem["status"] == 400 and problem["request_id"]
    assert hits(edges, backend) == before, "the backend was called"


@pytest.mark.parametrize("backend, path", [("http", "/api/upload"), ("wsgi", "/py2/upload")])
def test_a_good_chunked_body_after_the_head_still_arrives_whole(
        edges: dict[str, Any], backend: str, path: str) -> None:
    body = b"".join(b"%x\r\n%s\r\n" % (n, b"y" * n) for n in (1, 100, 5000)) + b"0\r\n\r\n"
    answer = head_then_body(edges["gateway"].port, path, body)
    assert answer.status == 200
    assert json.loads(answer.body)["body_len"] == 5101
