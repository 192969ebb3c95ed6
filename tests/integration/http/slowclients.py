"""Slow clients over raw sockets (slowloris heads, stalled bodies) and health probes.

Used by the slow-client tests and by ``bench/faults.py``::

    crowd = SlowCrowd(port)
    crowd.open_heads(500)          # each sent a partial request head
    crowd.open_bodies(100)         # each sent a head declaring 1 MiB and 10 bytes of it
    crowd.drip(crowd.heads)        # one more header byte on every open head
    crowd.collect(1.0)             # read what the server sent; note who it closed
    ok = probe_health(port)        # one GET /_gateway/health, True on 200 {"status":"ok"}
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import time
from dataclasses import dataclass, field

HEAD = b"GET /api/echo HTTP/1.1\r\nHost: x\r\n"
BODY_HEAD = (b"POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream"
             b"\r\nContent-Length: 1048576\r\n\r\n")


@dataclass
class SlowConn:
    """One slow client socket and what the server answered it."""

    sock: socket.socket
    kind: str
    answer: bytes = b""
    closed_at: float = 0.0


@dataclass
class SlowCrowd:
    """Many slow clients against one port; every socket is closed by :meth:`close`."""

    port: int
    host: str = "127.0.0.1"
    heads: list[SlowConn] = field(default_factory=list)
    bodies: list[SlowConn] = field(default_factory=list)

    def _open(self, first: bytes, kind: str) -> SlowConn:
        sock = socket.create_connection((self.host, self.port), timeout=5.0)
        sock.sendall(first)
        sock.setblocking(False)
        return SlowConn(sock, kind)

    def open_heads(self, count: int) -> None:
        """``count`` connections that sent the start of a request head and no end."""
        self.heads += [self._open(HEAD, "head") for _ in range(count)]

    def open_bodies(self, count: int) -> None:
        """``count`` connections that declared a 1 MiB body and sent 10 bytes of it."""
        self.bodies += [self._open(BODY_HEAD + b"x" * 10, "body") for _ in range(count)]

    def all(self) -> list[SlowConn]:
        """Every connection, open or closed."""
        return self.heads + self.bodies

    def open(self) -> list[SlowConn]:
        """The connections the server has not closed yet."""
        return [c for c in self.all() if not c.closed_at]

    def drip(self, conns: list[SlowConn], byte: bytes = b"X") -> None:
        """One byte more on each open connection (a header name grows: never a full line)."""
        for conn in conns:
            if conn.closed_at:
                continue
            try:
                conn.sock.send(byte)
            except BlockingIOError:
                pass
            except OSError:
                self._closed(conn)

    def collect(self, wait: float) -> int:
        """Wait up to ``wait`` s for the server to write or close; the count of open ones."""
        live = {c.sock.fileno(): c for c in self.open()}
        if not live:
            return 0
        poller = select.poll()
        for fd in live:
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        for fd, _ in poller.poll(wait * 1000):
            conn = live[fd]
            while True:
                try:
                    data = conn.sock.recv(65536)
                except BlockingIOError:
                    break
                except OSError:
                    self._closed(conn)
                    break
                if not data:
                    self._closed(conn)
                    break
                conn.answer += data
        return len(self.open())

    def _closed(self, conn: SlowConn) -> None:
        if not conn.closed_at:
            conn.closed_at = time.monotonic()

    def close(self) -> None:
        """Close every socket."""
        for conn in self.all():
            conn.sock.close()


def status_of(answer: bytes) -> int:
    """The status code of a raw response (0 if there is none)."""
    if not answer.startswith(b"HTTP/1.1 "):
        return 0
    return int(answer[9:12])


def problem_of(answer: bytes) -> dict[str, object]:
    """The problem+json body of a raw response."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), head
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


def probe_health(port: int, source: str = "127.0.0.1", timeout: float = 2.0) -> bool:
    """One ``GET /_gateway/health`` on a new connection from ``source``; True on 200 ok."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0))
    try:
        conn.request("GET", "/_gateway/health")
        resp = conn.getresponse()
        return resp.status == 200 and json.loads(resp.read()) == {"status": "ok"}
    except (OSError, http.client.HTTPException, ValueError):
        return False
    finally:
        conn.close()
