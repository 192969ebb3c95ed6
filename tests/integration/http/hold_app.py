# ruff: noqa: UP010
"""A WSGI app that holds each request for ``?s=`` seconds, then names the method (2.7 and 3.x).

::

    python -m protocol.wsgi --broker EP --service hold tests.integration.http.hold_app:app
"""
from __future__ import absolute_import, division, print_function

import time


def app(environ, start_response):
    """Sleep ``s`` seconds (the query string is ``s=<float>``), then answer the method."""
    query = environ.get("QUERY_STRING", "")
    seconds = float(query[2:]) if query.startswith("s=") else 0.0
    environ["wsgi.input"].read()
    time.sleep(seconds)
    body = environ["REQUEST_METHOD"].encode("ascii")
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
