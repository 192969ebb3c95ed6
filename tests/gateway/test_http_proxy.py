"""The http backend against a real loopback upstream that drops a reused connection."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from werkzeug.test import Client

from gateway.http.app import GatewayApp, make_app
from gateway.http.config import GatewayHttpConfig, HttpLimits, Route


class DroppingUpstream:
    """Answers the first request of each connection; drops the connection on the second.

    The second request was read (so it may have run) before the drop: the
    case where only an idempotent request may be sent again.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)  # so that close() is noticed within 0.1 s
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        with conn:
            data = b""
            for answered in (True, False):
                while b"\r\n\r\n" not in data:
                    try:
                        more = conn.recv(65536)
                    except OSError:
                        return
                    if not more:
                        return
                    data += more
                head, _, data = data.partition(b"\r\n\r\n")
                self.requests.append(head.split(b" ", 1)[0].decode())
                if answered:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self) -> None:
        self._stop = True
        self._thread.join(5.0)
        self.sock.close()


@pytest.fixture
def upstream() -> Iterator[DroppingUpstream]:
    server = DroppingUpstream()
    yield server
    server.close()


@pytest.fixture
def client(upstream: DroppingUpstream) -> Iterator[Client]:
    config = GatewayHttpConfig(
        routes=(Route("/", "http", upstream=f"http://127.0.0.1:{upstream.port}"),),
        limits=HttpLimits(connect_timeout=2.0, timeout=5.0))
    app = make_app(config)
    yield Client(app)
    assert isinstance(app.app, GatewayApp)
    app.app.close()


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_non_idempotent_request_is_not_sent_twice(upstream: DroppingUpstream,
                                                    client: Client, method: str) -> None:
    with client.get("/warm") as warm:
        assert warm.data == b"ok"
    with client.open("/act", method=method) as resp:
        assert resp.status_code == 502
    assert upstream.requests == ["GET", method]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_idempotent_request_is_retried_on_a_fresh_connection(
        upstream: DroppingUpstream, client: Client, method: str) -> None:
    with client.get("/warm") as warm:
        assert warm.data == b"ok"
    with client.open("/again", method=method) as resp:
        assert (resp.status_code, resp.data) == (200, b"ok")
    assert upstream.requests == ["GET", method, method]
