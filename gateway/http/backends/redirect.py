"""The ``redirect`` backend: a moved route answers with a redirect to where it lives now.

::

    [[routes]]
    prefix = "/old"  backend = "redirect"  target = "/new"             # same host
    prefix = "/v1"   backend = "redirect"  target = "https://api.example.com/v2"  status = 301

``GET /old/a/b?x=1`` answers ``308`` with ``Location: /new/a/b?x=1``: the
path below the mount (as the client spelled it, escapes kept) and the query
are carried over. ``status`` is 301, 302, 307 or 308 (default 308: method
and body are kept, as RFC 9110 15.4.9 says, and clients may cache it).
Its keys and their checks: :mod:`gateway.config.backends.redirect`.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.http.backends.base import BackendSpec, Parts
from gateway.http.config import Route
from gateway.http.context import Call
from gateway.http.paths import raw_tail
from gateway.http.problems import reason
from gateway.http.wsgitypes import Backend, StartResponse


class RedirectBackend:
    """Answers every request below the mount with a redirect under ``route.target``."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.base = route.target.rstrip("/")
        self.status = f"{route.status} {reason(route.status)}"

    def location(self, call: Call) -> str:
        """Where the request's resource lives now."""
        raw, prefix = call.target.raw_path, self.route.prefix
        # The mount itself ("/old", no slash after it) maps to the target itself.
        tail = raw if prefix == "/" or raw.count("/") > prefix.count("/") else ""
        url = (self.base + raw_tail(raw, prefix) if tail else self.base) or "/"
        if call.target.query is not None:
            url = f"{url}?{call.target.query}"
        return url

    def __call__(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        start_response(self.status, [("Location", self.location(call)),
                                     ("Content-Length", "0"),
                                     ("X-Request-ID", call.request_id)])
        return []


def build(route: Route, parts: Parts) -> Backend:
    """Nothing shared."""
    return RedirectBackend(route)


FRONT = BackendSpec(build)
