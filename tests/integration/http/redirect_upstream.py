"""An upstream that redirects and sets cookies the way httpbin does, unaware of any mount.

::

    python -m tests.integration.http.redirect_upstream PORT

    GET /redirect/<n>            302 to /relative-redirect/<n-1> (absolute path); /get at 0
    GET /relative-redirect/<n>   302 to /relative-redirect/<n-1>; /get at 0
    GET /absolute-redirect/<n>   302 to http://<Host>/absolute-redirect/<n-1>; .../get at 0
    GET /origin-redirect/<n>     302 to http://127.0.0.1:PORT/origin-redirect/<n-1> (its own
                                 address, whatever Host said); .../get at 0
    GET /ref/a/<n>               302 to "<n-1>" (a relative reference); "../../get" at 0
    GET /cookies/set?k=v         302 to /cookies with "k=v; Path=/"
    GET /cookies/scoped?k=v      302 to /cookies with "k=v; Path=/cookies"
    GET /cookies                 200, JSON {"cookies": {...}} of the Cookie header
    GET /get                     200, JSON {"path", "host", "prefix" (X-Forwarded-Prefix)}
"""

from __future__ import annotations

import json
import logging
import sys
import urllib.parse
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from typing import Any

from werkzeug.serving import make_server

PORT = [0]


def _redirect(start_response: Callable[..., Any], location: str,
              cookies: Iterable[str] = ()) -> list[bytes]:
    headers = [("Location", location), ("Content-Length", "0")]
    headers += [("Set-Cookie", c) for c in cookies]
    start_response("302 Found", headers)
    return []


def _json(start_response: Callable[..., Any], obj: object) -> list[bytes]:
    body = json.dumps(obj, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The routes in the module docstring."""
    path = environ.get("PATH_INFO", "")
    host = environ.get("HTTP_HOST", "")
    query = urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""))
    head, _, tail = path.rpartition("/")
    n = int(tail) if tail.isdigit() else -1
    if head in ("/redirect", "/relative-redirect") and n >= 0:
        return _redirect(start_response, f"/relative-redirect/{n - 1}" if n > 1 else "/get")
    if head == "/absolute-redirect" and n >= 0:
        nxt = f"/absolute-redirect/{n - 1}" if n > 1 else "/get"
        return _redirect(start_response, f"http://{host}{nxt}")
    if head == "/origin-redirect" and n >= 0:
        nxt = f"/origin-redirect/{n - 1}" if n > 1 else "/get"
        return _redirect(start_response, f"http://127.0.0.1:{PORT[0]}{nxt}")
    if head == "/ref/a" and n >= 0:
        return _redirect(start_response, str(n - 1) if n > 1 else "../../get")
    if path in ("/cookies/set", "/cookies/scoped"):
        where = "/" if path == "/cookies/set" else "/cookies"
        return _redirect(start_response, "/cookies",
                         [f"{k}={v}; Path={where}; HttpOnly" for k, v in query])
    if path == "/cookies":
        jar = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        return _json(start_response, {"cookies": {k: m.value for k, m in jar.items()}})
    if path == "/get":
        return _json(start_response, {"path": path, "host": host,
                                      "prefix": environ.get("HTTP_X_FORWARDED_PREFIX")})
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


def main(argv: list[str]) -> int:
    """Serve on 127.0.0.1:argv[1] until killed."""
    PORT[0] = int(argv[1])
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    make_server("127.0.0.1", PORT[0], app, threaded=True).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
