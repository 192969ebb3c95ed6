"""A byte-exact HTTP/1.1 client for the end-to-end tests (http.client, no re-quoting)."""

from __future__ import annotations

import http.client
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class Answer:
    """A response as received: status, headers in order, raw body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of ``name`` (case-insensitive)."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return [v for k, v in self.headers if k.lower() == name.lower()]


def fetch(port: int, method: str, target: str, headers: dict[str, str] | None = None,
          body: bytes | Iterable[bytes] | None = None, chunked: bool = False,
          timeout: float = 30.0) -> Answer:
    """Send one request to 127.0.0.1:``port`` and read the whole answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        hdrs = {"Host": "example.test", **(headers or {})}
        if chunked:
            hdrs["Transfer-Encoding"] = "chunked"
        elif isinstance(body, bytes):
            hdrs["Content-Length"] = str(len(body))
        for key, value in hdrs.items():
            conn.putheader(key, value)
        conn.endheaders()
        if isinstance(body, bytes):
            conn.send(body)
        elif body is not None:
            for piece in body:
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        data = resp.read()
        return Answer(resp.status, list(resp.getheaders()), data)
    finally:
        conn.close()
