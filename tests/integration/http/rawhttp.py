"""Raw-socket HTTP for hostile requests, and the data-file format they are stored in.

A ``data/smuggle/*.http`` file is one comment line ``# expect: NNN`` and one
line of request text in which ``\\r``, ``\\n``, ``\\xNN`` are escapes and
``{TEXT*N}`` repeats TEXT N times (gunicorn's tests/requests, made compact).
"""

from __future__ import annotations

import codecs
import json
import re
import socket
from dataclasses import dataclass

_REPEAT = re.compile(r"\{(.+?)\*(\d+)\}")


@dataclass
class RawAnswer:
    """Status, lower-cased headers and body of a response read from a raw socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, object]:
        """The problem+json body (asserting it is one)."""
        assert self.headers.get("content-type") == "application/problem+json", self.headers
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


def load_case(path: str) -> tuple[int, bytes]:
    """(expected status, raw request bytes) of one ``.http`` data file."""
    with open(path, encoding="latin-1") as fh:
        header, text = fh.read().split("\n", 1)
    expect = int(header.split(":", 1)[1])
    text = text.rstrip("\n")
    text = _REPEAT.sub(lambda m: m.group(1) * int(m.group(2)), text)
    raw, _ = codecs.escape_decode(text.encode("latin-1"))
    return expect, bytes(raw)


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> RawAnswer:
    """Send ``raw`` to 127.0.0.1:``port`` and read one response."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        data = b""
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
        return RawAnswer(status, headers, body[:length])
    finally:
        sock.close()
