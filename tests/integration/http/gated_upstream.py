"""An upstream that sends a response head and its first byte, then waits for the test's word.

::

    python -m tests.integration.http.gated_upstream PORT

    GET  /gated/<key>?framing=length|chunked&size=N&first=1|0
         head + the first body byte (first=0: the head alone) at once; the rest
         only after /release/<key> (or nothing more, and the connection closed,
         after 60 s)
    POST /release/<key>   lets the gated response with that key finish; 204
    GET  /closed/<key>    "yes" once the client of /gated/<key>?watch=1 closed its
                          connection while the response was held, else "no"

The gate is what makes streaming testable without clocks: a proxy that waits
for more of the body before passing the first byte on can never deliver it,
because the rest is only sent once the client has that byte.
"""

from __future__ import annotations

import socket
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GATE_TIMEOUT = 60.0
_GATES: dict[str, threading.Event] = {}
_CLOSED: set[str] = set()
_LOCK = threading.Lock()


def _gate(key: str) -> threading.Event:
    with _LOCK:
        return _GATES.setdefault(key, threading.Event())


def body_of(size: int) -> bytes:
    """The body a gated response of ``size`` bytes carries: "x" then a repeating pattern."""
    return (b"x" + bytes(range(33, 127)) * (size // 94 + 1))[:size]


class Handler(BaseHTTPRequestHandler):
    """/gated/<key> and /release/<key>."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if not parts.path.startswith("/release/"):
            self.send_error(404)
            return
        _gate(parts.path[len("/release/"):]).set()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if parts.path.startswith("/closed/"):
            with _LOCK:
                answer = b"yes" if parts.path[len("/closed/"):] in _CLOSED else b"no"
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            return
        if not parts.path.startswith("/gated/"):
            self.send_error(404)
            return
        query = dict(urllib.parse.parse_qsl(parts.query))
        size = int(query.get("size", "8"))
        chunked = query.get("framing") == "chunked"
        body = body_of(size)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        held = 1 if query.get("first", "1") == "1" else 0
        self._piece(body[:held], chunked)
        if query.get("watch") == "1":
            self._watch(parts.path[len("/gated/"):])
        # Nothing more to hold back: a body of one byte is complete at once.
        if len(body) > held and not _gate(parts.path[len("/gated/"):]).wait(GATE_TIMEOUT):
            self.close_connection = True
            return
        self._piece(body[held:], chunked)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _watch(self, key: str) -> None:
        """Hold the response until the client closes the connection (or the gate timeout)."""
        self.connection.settimeout(GATE_TIMEOUT)
        try:
            closed = self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            closed = True
        if closed:
            with _LOCK:
                _CLOSED.add(key)

    def _piece(self, data: bytes, chunked: bool) -> None:
        if chunked and data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        elif data:
            self.wfile.write(data)
        self.wfile.flush()


def main(argv: list[str]) -> int:
    """Serve on 127.0.0.1:argv[1] until killed."""
    server = ThreadingHTTPServer(("127.0.0.1", int(argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
