"""HTTP/1.0 clients get bodies they can read: close-delimited, never chunked (RFC 9112 6.1).

A streamed answer without Content-Length is sent to an HTTP/1.1 client with
chunked transfer coding; an HTTP/1.0 client does not know that coding, so the
front sends the body as it comes and closes the connection after it.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.integration.http.conftest import UPSTREAM, Server, start_gateway, start_gunicorn


@pytest.fixture(scope="module")
def gateway(module_procs: Any, module_workdir: str) -> Server:
    upstream = start_gunicorn(module_procs, UPSTREAM)
    return start_gateway(module_procs, module_workdir, {
        "routes": [{"prefix": "/", "backend": "http", "upstream": upstream.url}]})


def read_all(port: int, raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send ``raw`` and read until the server closes: (status line, headers, body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(raw)
        data = b""
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {n.strip().lower(): v.strip() for n, _, v in
               (line.partition(":") for line in lines[1:])}
    return lines[0], headers, body


@pytest.mark.parametrize("n,size", [(1, 1), (5, 3), (40, 1000)])
def test_a_streamed_answer_to_http10_is_close_delimited(gateway: Server, n: int,
                                                          size: int) -> None:
    status, headers, body = read_all(
        gateway.port, f"GET /stream?n={n}&size={size} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    assert status.split()[1] == "200"
    assert "transfer-encoding" not in headers and "content-length" not in headers
    assert headers.get("connection") == "close"
    # the upstream's /stream pieces, joined: no chunk-size lines, no trailer
    assert body == b"".join(b"%08d" % i + b"x" * max(0, size - 8) for i in range(n))


def test_http11_still_gets_chunked(gateway: Server) -> None:
    status, headers, body = read_all(
        gateway.port, b"GET /stream?n=3&size=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status.split()[1] == "200"
    assert headers.get("transfer-encoding") == "chunked"
    assert body.endswith(b"0\r\n\r\n")


def test_http10_with_a_length_keeps_it(gateway: Server) -> None:
    status, headers, body = read_all(
        gateway.port, b"GET /download?size=1234 HTTP/1.0\r\nHost: x\r\n\r\n")
    assert status.split()[1] == "200"
    assert headers.get("content-length") == "1234" and len(body) == 1234
