"""The ``http`` backend: a streaming reverse proxy over pooled urllib3 connections.

::

    backend = HttpBackend(route, limits, forwarding, pool_size=16)
    return backend(call, start_response)     # inside the gateway's WSGI app

The request body goes upstream as it arrives (Content-Length kept, chunked
re-chunked) and the response body comes back in 64 KiB pieces: neither is
held whole. The path and query are forwarded byte-exact, the upstream comes
from the route only. Transport errors are translated at this boundary:
connect/read timeouts give 504, anything else (refused, reset, garbage) 502.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import urllib3
from urllib3 import exceptions as uerr
from urllib3.util import SKIP_HEADER

from gateway.http.bodies import CHUNK, request_body
from gateway.http.config import HttpLimits, Route
from gateway.http.context import Call
from gateway.http.forwarding import Forwarding
from gateway.http.paths import raw_tail
from gateway.http.problems import Problem

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
_SMALL = CHUNK
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class ProxiedBody:
    """The upstream's response body, streamed; returns or drops the connection on close."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._response.stream(CHUNK, decode_content=False):
                if chunk:
                    yield chunk
        except (uerr.HTTPError, OSError) as exc:
            # Headers are already out: all that is left is to cut the connection.
            log.warning("upstream body failed mid-stream: %s", exc)
            raise
        self._done = True

    def close(self) -> None:
        """Give the connection back when the body was read to its end, else drop it."""
        if not self._done:
            self._response.close()
        self._response.release_conn()


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
        kwargs: dict[str, Any] = {
            "maxsize": pool_size, "block": False, "retries": False,
            "timeout": urllib3.Timeout(connect=limits.connect_timeout,
                                       read=route.timeout or limits.timeout),
            "blocksize": CHUNK,
        }
        pool_cls = (urllib3.HTTPSConnectionPool if parts.scheme == "https"
                    else urllib3.HTTPConnectionPool)
        self.pool = pool_cls(parts.hostname or "", parts.port, **kwargs)
        # A pooled keep-alive connection may have been closed by the upstream
        # a moment ago; one retry of an idempotent, bodiless request covers it.
        self.retry_idempotent = urllib3.Retry(total=1, connect=1, read=1, redirect=False,
                                              status=0, other=0, raise_on_redirect=False)

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
        retries: urllib3.Retry | bool = (
            self.retry_idempotent if body is None and method in _IDEMPOTENT else False)
        try:
            response = self.pool.urlopen(
                method, self.url_for(call), body=body, headers=headers, retries=retries,
                redirect=False, assert_same_host=False, preload_content=False,
                decode_content=False, release_conn=False,
                chunked=body is not None and body.length is None)
        except uerr.MaxRetryError as exc:
            raise _translate(exc.reason or exc) from None
        except (uerr.HTTPError, OSError) as exc:
            raise _translate(exc) from None
        out_headers = self.forwarding.response_headers(
            response.headers.iteritems(), call.request_id)
        start_response(f"{response.status} {response.reason or ''}".rstrip(), out_headers)
        length = response.headers.get("Content-Length", "")
        if method == "HEAD" or response.status in (204, 304) or (
                length.isdigit() and int(length) <= _SMALL):
            try:
                data = response.read(decode_content=False)
            except (uerr.HTTPError, OSError) as exc:
                response.close()
                response.release_conn()
                raise _translate(exc) from None
            response.release_conn()
            return [data] if data else []
        return ProxiedBody(response)


def _translate(exc: BaseException | None) -> Problem:
    if isinstance(exc, uerr.NewConnectionError | uerr.NameResolutionError):
        return Problem(502, "the upstream is unreachable", code="bad_gateway")
    if isinstance(exc, uerr.TimeoutError | TimeoutError):
        return Problem(504, "the upstream did not answer in time", code="timeout")
    if isinstance(exc, Problem):
        return exc
    return Problem(502, "the upstream connection failed", code="bad_gateway")
