# ruff: noqa: UP010
"""A WSGI app that answers after a pause, for the load-shedding tests (2.7 and 3.x).

::

    python -m protocol.wsgi --broker EP --service slow tests.integration.http.slow_app:app
    GET /anything?ms=1500   ->  200 {"slept_ms": 1500}
"""
from __future__ import absolute_import, division, print_function

import json
import sys
import time


def app(environ, start_response):
    # type: (dict, object) -> list
    """Sleep ``ms`` milliseconds (query string ``ms=N``), then answer JSON."""
    query = dict(p.partition("=")[::2] for p in environ.get("QUERY_STRING", "").split("&") if p)
    ms = int(query.get("ms", "0") or 0)
    time.sleep(ms / 1000.0)
    body = json.dumps({"slept_ms": ms, "python": sys.version_info[0]}).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
