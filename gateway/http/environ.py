"""The WSGI environ of an ASGI scope, and ``wsgi.input`` fed by ASGI ``receive``.

::

    environ = environ_from_scope(scope)          # or a 400 Problem (bad framing, bad path)
    environ["wsgi.input"] = AsgiInput(loop, receive)

The raw request target (``raw_path``) is read once, byte for byte
(:mod:`gateway.http.paths`). The environ carries ``RAW_URI`` (raw path plus
query), ``PATH_INFO`` (percent-decoded, as ISO-8859-1 text, as PEP 3333
says), the headers as ``HTTP_*`` (repeated fields joined with ``,``; names
with ``_`` dropped, so ``X_Forwarded_For`` cannot pose as
``X-Forwarded-For``), and ``wsgi.input_terminated``. :class:`AsgiInput` is
read from a front thread and waits on the event loop for each chunk.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any

from gateway.http.asgitypes import Message, Receive, Scope
from gateway.http.bodies import header_sizes
from gateway.http.problems import Problem

_ERRORS = sys.stderr


class ClientGone(Exception):
    """The client disconnected; the response cannot be delivered."""


def environ_from_scope(scope: Scope) -> dict[str, Any] | Problem:
    """The WSGI environ of an ASGI http scope (no ``wsgi.input`` yet), or a 400 problem."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    query: bytes = scope.get("query_string") or b""
    extensions = scope.get("extensions") or {}
    target: bytes | None = extensions.get("gateway.target")
    try:
        raw = raw_path.decode("ascii")
        qs = query.decode("ascii")
        uri = target.decode("ascii") if target else (f"{raw}?{qs}" if qs else raw)
    except UnicodeDecodeError:
        return Problem(400, "ambiguous or malformed path: the request target holds bytes "
                            "that must be percent-encoded", code="bad_path")
    server = scope.get("server") or ("", 0)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote_to_bytes(raw).decode("latin-1"),
        "QUERY_STRING": qs,
        "RAW_URI": uri,
        "SERVER_NAME": str(server[0] or ""),
        "SERVER_PORT": str(server[1] or ""),
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "REMOTE_ADDR": str(client[0] or ""),
        "REMOTE_PORT": str(client[1] or ""),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.errors": _ERRORS,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    if "gateway.disconnect" in extensions:  # the fast path's disconnect callback
        environ["gateway.disconnect"] = extensions["gateway.disconnect"]
    hosts = 0
    headers = scope["headers"]
    # Repeated fields are joined below; the limit on header fields counts them as sent.
    environ["gateway.header_fields"] = len(headers)
    fields: list[str] = []   # the HTTP_* keys, for the header limits (header_sizes)
    for name_b, value_b in headers:
        name = name_b.decode("latin-1")
        value = value_b.decode("latin-1")
        if "_" in name:
            continue
        if name == "content-type":
            key = "CONTENT_TYPE"
        elif name == "content-length":
            key = "CONTENT_LENGTH"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
            if key == "HTTP_HOST":
                hosts += 1
        old = environ.get(key)
        if old is None:
            environ[key] = value
            if key[0] == "H":
                fields.append(key)
        else:
            environ[key] = f"{old},{value}"
    environ["gateway.header_sizes"] = header_sizes(environ, fields)
    if hosts > 1:
        return Problem(400, "more than one Host header field (RFC 9112 3.2)", code="bad_request")
    if not hosts and environ["SERVER_PROTOCOL"] == "HTTP/1.1":
        return Problem(400, "HTTP/1.1 requests need a Host header field (RFC 9112 3.2)",
                       code="bad_request")
    expect = environ.get("HTTP_EXPECT")
    if expect is not None and expect.strip().lower() != "100-continue":
        return Problem(417, "the only expectation this server meets is 100-continue",
                       code="expectation_failed")
    if "HTTP_TRANSFER_ENCODING" in environ and environ["SERVER_PROTOCOL"] == "HTTP/1.0":
        # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing.
        return Problem(400, "Transfer-Encoding in an HTTP/1.0 request", code="bad_framing")
    if "CONTENT_LENGTH" in environ and "," in environ["CONTENT_LENGTH"]:
        return Problem(400, "more than one Content-Length", code="bad_framing")
    return environ


class AsgiInput:
    """``wsgi.input`` fed by ASGI ``receive``: read from a front thread, waiting on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Receive,
                 preloaded: bytes = b"", more: bool = True) -> None:
        self._loop = loop
        self._receive = receive
        self._buffer = bytearray(preloaded)
        self._more = more
        self.disconnected = False

    @property
    def more(self) -> bool:
        """True while body messages may still come from the client."""
        return self._more

    def _fill(self) -> bool:
        if not self._more:
            return False
        message: Message = asyncio.run_coroutine_threadsafe(self._receive(),
                                                             self._loop).result()
        if message["type"] == "http.disconnect":
            self.disconnected = True
            self._more = False
            raise ClientGone("the client went away while sending its body")
        self._buffer += message.get("body", b"")
        self._more = bool(message.get("more_body", False))
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (everything left when negative); b"" at the end."""
        if size is None or size < 0:
            while self._fill():
                pass
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        while len(self._buffer) < size and self._fill():
            pass
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def readline(self, size: int = -1) -> bytes:
        """One line (PEP 3333 asks for it; the front itself never calls it)."""
        while b"\n" not in self._buffer and self._fill():
            pass
        end = self._buffer.find(b"\n")
        cut = len(self._buffer) if end < 0 else end + 1
        if size is not None and size >= 0:
            cut = min(cut, size)
        data = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line
