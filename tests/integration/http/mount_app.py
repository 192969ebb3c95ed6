# ruff: noqa: UP010, UP025, UP031
"""A bare WSGI app that builds its URLs from SCRIPT_NAME, for mount tests (2.7 and 3.x).

::

    python -m protocol.wsgi --broker EP --service mnt tests.integration.http.mount_app:app

    GET /go/<n>      302 to SCRIPT_NAME + "/go/<n-1>" (an absolute path it built);
                     to "done" (a relative reference) at 1
    GET /cookie      302 to SCRIPT_NAME + "/done" with "c=1; Path=" + SCRIPT_NAME
    GET /done        200, JSON of SCRIPT_NAME, PATH_INFO, X-Forwarded-Prefix and Cookie
"""
from __future__ import absolute_import, division, print_function

import json


def app(environ, start_response):
    # type: (dict, object) -> list
    """The routes in the module docstring."""
    script = environ.get("SCRIPT_NAME", "")
    path = environ.get("PATH_INFO", "")
    if path.startswith("/go/") and path[4:].isdigit():
        n = int(path[4:])
        location = "%s/go/%d" % (script, n - 1) if n > 1 else "done"
        start_response("302 Found", [("Location", location), ("Content-Length", "0")])
        return []
    if path == "/cookie":
        start_response("302 Found", [("Location", script + "/done"), ("Content-Length", "0"),
                                     ("Set-Cookie", "c=1; Path=%s" % (script or "/"))])
        return []
    if path in ("/done", "/go/done"):
        body = json.dumps({
            u"script_name": script, u"path_info": path,
            u"prefix": environ.get("HTTP_X_FORWARDED_PREFIX"),
            u"cookie": environ.get("HTTP_COOKIE")}, sort_keys=True).encode("utf-8")
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
