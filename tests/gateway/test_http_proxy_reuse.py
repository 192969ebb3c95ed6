"""Every body shape the http backend streams or sends whole leaves its connection reusable.

A real loopback upstream counts the connections it accepts; one keep-alive
connection must carry every request below, whichever path the backend took
(the whole body with the head, read1 pieces, chunked, no body at all).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from werkzeug.test import Client

from gateway.http.app import GatewayApp, make_app
from gateway.http.config import GatewayHttpConfig, HttpLimits, Route

BIG = bytes(range(256)) * 800  # 200 KiB: more than one read


class Handler(BaseHTTPRequestHandler):
    """/len/<n>, /chunked/<n>, /status/<code>: bodies of every framing."""

    protocol_version = "HTTP/1.1"
    connections: list[int] = []

    def setup(self) -> None:
        super().setup()
        self.connections.append(1)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        kind, _, arg = self.path.strip("/").partition("/")
        if kind == "status":
            self.send_response(int(arg))
            if arg == "200":
                self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = BIG[:int(arg)]
        self.send_response(200)
        if kind == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                for i in range(0, len(body), 70_000):
                    piece = body[i:i + 70_000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@pytest.fixture
def upstream() -> Iterator[tuple[int, list[int]]]:
    counted: list[int] = []
    handler = type("Counted", (Handler,), {"connections": counted})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], counted
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5.0)


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/len/10", BIG[:10]),
    ("GET", "/len/200000", BIG[:200000]),
    ("GET", "/chunked/10", BIG[:10]),
    ("GET", "/chunked/200000", BIG[:200000]),
    ("HEAD", "/len/10", b""),
    ("HEAD", "/chunked/10", b""),
    ("GET", "/status/204", b""),
    ("GET", "/status/304", b""),
    ("GET", "/status/200", b""),
])
def test_one_connection_carries_every_shape(upstream: tuple[int, list[int]], method: str,
                                             path: str, body: bytes) -> None:
    port, connections = upstream
    config = GatewayHttpConfig(
        routes=(Route("/", "http", upstream=f"http://127.0.0.1:{port}"),),
        limits=HttpLimits(connect_timeout=2.0, timeout=5.0))
    app = make_app(config)
    assert isinstance(app.app, GatewayApp)
    client = Client(app)
    try:
        for _ in range(3):
            for probe in ("/len/10", path, "/chunked/200000"):
                verb = method if probe == path else "GET"
                with client.open(probe, method=verb) as response:
                    expected = body if probe == path else BIG[:int(probe.rsplit("/", 1)[1])]
                    assert response.get_data() == expected, (verb, probe)
    finally:
        app.app.close()
    assert len(connections) == 1
