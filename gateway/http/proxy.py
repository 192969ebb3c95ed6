"""The ``http`` backend: a streaming reverse proxy over pooled urllib3 connections.

::

    backend = HttpBackend(route, limits, forwarding, pool_size=16)
    return backend(call, start_response)     # inside the gateway's WSGI app

The request body goes upstream as it arrives (Content-Length kept, chunked
re-chunked) and the response body comes back as it arrives: each piece is
what one read returns (``read1``, at most 64 KiB), passed on at once, so a
slow drip reaches the client byte by byte, as through nginx with
``proxy_buffering off``; a head that came alone is let out at once (an
empty first piece). Small answers stay one piece without waiting for
anything: a body that had wholly arrived with the head goes out as a
single-item list. The path and query are forwarded byte-exact, the upstream
comes from the route only; on a route that strips its prefix the
upstream's redirects and cookie paths are mapped back under the mount
(:mod:`gateway.http.rewrite`). Transport errors are translated at this
boundary: connect/read timeouts give 504, anything else (refused, reset,
garbage) 502.
"""

from __future__ import annotations

import collections
import http.client
import logging
import socket
import urllib.parse
from collections.abc import Iterable, Iterator

import urllib3
from urllib3 import exceptions as uerr
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util import SKIP_HEADER

from gateway.http.bodies import CHUNK, BoundedBody, parse_length, request_body
from gateway.http.config import HttpLimits, Route
from gateway.http.context import Call
from gateway.http.forwarding import Forwarding
from gateway.http.paths import raw_tail
from gateway.http.problems import Problem
from gateway.http.rewrite import ReverseMap
from gateway.http.wsgitypes import StartResponse

log = logging.getLogger(__name__)

_SMALL = CHUNK
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# RFC 9110 9.2.2: only these may be sent again after a failure without changing the outcome.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class ConnectionPool:
    """A LIFO of idle keep-alive urllib3 connections to one upstream.

    urllib3's own pool re-encodes the request target (it upper-cases percent
    escapes), which a byte-exact intermediary must not do; its connections
    send the target as given. ``deque`` append/pop are atomic, so gthread
    workers share one pool without a lock.
    """

    def __init__(self, scheme: str, host: str, port: int | None, maxsize: int,
                 connect_timeout: float, read_timeout: float) -> None:
        self.cls = HTTPSConnection if scheme == "https" else HTTPConnection
        self.host = host
        self.port = port
        self.maxsize = maxsize
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: collections.deque[HTTPConnection] = collections.deque()

    def get(self) -> tuple[HTTPConnection, bool]:
        """An open connection and whether it was reused from the pool."""
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                break
            if conn.is_connected:
                return conn, True
            conn.close()
        conn = self.cls(self.host, self.port, timeout=self.connect_timeout, blocksize=CHUNK)
        conn.connect()
        conn.timeout = self.read_timeout
        return conn, False

    def put(self, conn: HTTPConnection) -> None:
        """Return a connection whose response was read to its end."""
        if len(self._idle) < self.maxsize:
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        while self._idle:
            self._idle.pop().close()


class ProxiedBody:
    """The upstream's response body, streamed; returns or drops the connection on close.

    Each piece is one ``read1``: whatever the upstream has sent so far (up to
    64 KiB), never a wait for a fixed amount.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse, conn: HTTPConnection,
                 pool: ConnectionPool) -> None:
        self._response = response
        self._conn = conn
        self._pool = pool
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        if _buffered(self._response, self._conn) == b"":
            # The head is here and the body is not: an empty piece lets a server that
            # holds the head back until body data (PEP 3333) send it now if it will
            # (gunicorn and werkzeug do); the others skip empty pieces.
            yield b""
        try:
            while True:
                chunk = self._response.read1(CHUNK, decode_content=False)
                if not chunk:
                    break
                yield chunk
        except (uerr.HTTPError, OSError, http.client.HTTPException, ValueError) as exc:
            # Headers are already out: all that is left is to cut the connection.
            log.warning("upstream body failed mid-stream: %s", exc)
            raise
        self._done = True

    def finished(self) -> None:
        """The body was read to its end elsewhere: give the connection back."""
        self._done = True
        self.close()

    def close(self) -> None:
        """Give the connection back when the body was read to its end, else drop it.

        Dropping shuts the socket down first: the body may still be read by another
        thread (the front's stream pump, blocked on the upstream), and only a
        shutdown wakes a blocked recv; close alone would leave it waiting.
        """
        if self._done and self._response.headers.get("Connection", "").lower() != "close":
            self._pool.put(self._conn)
            return
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._conn.close()


def _buffered(response: urllib3.BaseHTTPResponse, conn: HTTPConnection) -> bytes | None:
    """The body bytes already received, without waiting; None when that cannot be told.

    http.client reads the head through a buffered file, which usually holds
    the body of a small answer too. Peeking at it with the socket briefly
    non-blocking fills it from what the kernel holds and never waits.
    """
    fp = getattr(getattr(response, "_fp", None), "fp", None)
    sock = conn.sock
    if fp is None or sock is None or not hasattr(fp, "peek"):
        return None
    timeout = sock.gettimeout()
    try:
        sock.settimeout(0.0)
        return bytes(fp.peek(1))
    except (OSError, ValueError):
        return None
    finally:
        sock.settimeout(timeout)


def read_arrived(response: urllib3.BaseHTTPResponse, conn: HTTPConnection,
                 length: int | None) -> bytes | None:
    """The whole body when it has already arrived with the head, else None (nothing read).

    Never waits for the upstream, so it cannot delay the head: a body of
    known ``length`` is read only while it is buffered; a chunked one only
    when its last chunk is buffered too (else a read could block on the next
    chunk's size line).
    """
    if length is None:
        if not response.chunked:
            return None  # read to close: its end is not known until the close
        data = _buffered(response, conn)
        if not data or len(data) > _SMALL or not (
                data.endswith(b"\r\n0\r\n\r\n") or data == b"0\r\n\r\n"):
            return None
        pieces = []
        while piece := response.read1(CHUNK, decode_content=False):
            pieces.append(piece)
        return b"".join(pieces)
    if length > _SMALL:
        return None
    data = _buffered(response, conn)
    if data is None or len(data) < length:
        return None
    return response.read(length, decode_content=False)


class HttpBackend:
    """Forwards requests of one route to its upstream over a connection pool."""

    def __init__(self, route: Route, limits: HttpLimits, forwarding: Forwarding,
                 pool_size: int = 16) -> None:
        parts = urllib.parse.urlsplit(route.upstream)
        self.route = route
        self.limits = limits
        self.forwarding = forwarding
        self.base = parts.path.rstrip("/")
        self.upstream_host = parts.netloc
        self.pool = ConnectionPool(parts.scheme, parts.hostname or "", parts.port, pool_size,
                                   limits.connect_timeout, route.timeout or limits.timeout)
        self.reverse = ReverseMap(route.upstream, route.script_name if route.strip_prefix else "")
        self.rewrites = bool(route.rewrite_redirects or route.rewrite_cookie_path)

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool.close()

    def url_for(self, call: Call) -> str:
        """The upstream request target: base path + (maybe stripped) raw path + raw query."""
        raw = call.target.raw_path
        if self.route.strip_prefix:
            raw = raw_tail(raw, self.route.prefix)
        url = self.base + raw
        if call.target.query is not None:
            url = f"{url}?{call.target.query}"
        return url

    def send(self, method: str, url: str, body: BoundedBody | None,
             headers: dict[str, str]) -> tuple[urllib3.BaseHTTPResponse, HTTPConnection]:
        """Send the request and read the response head, on a pooled connection.

        A reused keep-alive connection may have been closed by the upstream a
        moment ago; an idempotent request that has no body is then sent once
        more on a fresh connection. A POST or PATCH never is: the upstream
        may have run it before the connection broke.
        """
        for attempt in (0, 1):
            try:
                conn, reused = self.pool.get()
            except (uerr.HTTPError, OSError) as exc:
                raise _translate(exc) from None
            try:
                conn.request(method, url, body=body, headers=headers,
                             chunked=body is not None and body.length is None,
                             preload_content=False, decode_content=False)
                return conn.getresponse(), conn
            except Problem:
                conn.close()
                raise
            except (uerr.HTTPError, OSError, http.client.HTTPException) as exc:
                conn.close()
                stale = reused and not isinstance(exc, TimeoutError | uerr.TimeoutError)
                if attempt == 0 and stale and body is None and method in IDEMPOTENT:
                    continue
                raise _translate(exc) from None
            except BaseException:
                # The client went away (or was cut off) mid-body: a connection left open
                # would keep the upstream waiting for the rest of the body.
                conn.close()
                raise
        raise AssertionError("unreachable")

    def __call__(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        environ = call.environ
        method = environ["REQUEST_METHOD"]
        body = request_body(environ, self.limits.max_body)
        prefix = self.route.script_name if self.route.strip_prefix else ""
        headers = dict(self.forwarding.request_headers(environ, call.request_id, prefix,
                                                       self.upstream_host))
        if "User-Agent" not in headers:
            headers["User-Agent"] = SKIP_HEADER
        if "Accept-Encoding" not in headers:
            headers["Accept-Encoding"] = SKIP_HEADER
        if body is not None and body.length is not None:
            headers["Content-Length"] = str(body.length)
        elif body is None and method in _BODY_METHODS:
            headers["Content-Length"] = "0"
        response, conn = self.send(method, self.url_for(call), body, headers)
        try:
            length = parse_length(response.headers.get("Content-Length"))
            if method == "HEAD" or response.status in (204, 304) or length == 0:
                # No body to wait for; reading it settles the connection for reuse.
                whole: bytes | None = response.read(decode_content=False)
            else:
                whole = read_arrived(response, conn, length)
        except (uerr.HTTPError, OSError, http.client.HTTPException, ValueError) as exc:
            conn.close()
            raise _translate(exc) from None
        out_headers = self.forwarding.response_headers(
            response.headers.iteritems(), call.request_id)
        if self.rewrites:
            out_headers = self.reverse.headers(
                out_headers, headers["Host"], self.forwarding.public_origin(environ),
                bool(self.route.rewrite_redirects), bool(self.route.rewrite_cookie_path))
        start_response(f"{response.status} {response.reason or ''}".rstrip(), out_headers)
        proxied = ProxiedBody(response, conn, self.pool)
        if whole is None:
            return proxied
        # The whole body came with the head: one piece, and the connection goes back.
        proxied.finished()
        return [whole] if whole else []


def _translate(exc: BaseException | None) -> Problem:
    if isinstance(exc, uerr.NewConnectionError | uerr.NameResolutionError):
        return Problem(502, "the upstream is unreachable", code="bad_gateway")
    if isinstance(exc, uerr.TimeoutError | TimeoutError):
        return Problem(504, "the upstream did not answer in time", code="timeout")
    if isinstance(exc, Problem):
        return exc
    return Problem(502, "the upstream connection failed", code="bad_gateway")
