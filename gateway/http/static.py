"""The ``static`` backend: files below one directory, with ETag, Last-Modified and Range.

::

    backend = StaticBackend(Route("/assets", "static", directory="/srv/assets"))
    return backend(call, start_response)

werkzeug's ``send_from_directory`` does the conditional and range logic
(304, 206, 416) and ``safe_join`` keeps paths inside the directory; the
front has already refused dot segments and escaped separators.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from werkzeug.exceptions import NotFound
from werkzeug.utils import send_from_directory

from gateway.http.config import Route
from gateway.http.context import Call
from gateway.http.problems import Problem
from gateway.http.wsgitypes import StartResponse


class StaticBackend:
    """Serves GET and HEAD from ``route.directory``."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.directory = os.path.abspath(route.directory)

    def __call__(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        environ = call.environ
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            raise Problem(405, "static files answer GET and HEAD only",
                          headers=[("Allow", "GET, HEAD")])
        name = call.match.path_info.lstrip("/")
        if not name or name.endswith("/"):
            name += "index.html"
        try:
            response = send_from_directory(self.directory, name, environ, max_age=0)
        except NotFound:
            raise Problem(404, "no such file", code="not_found") from None
        response.headers["X-Request-ID"] = call.request_id
        body: Iterable[bytes] = response(environ, start_response)
        return body
