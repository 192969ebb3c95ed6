# ruff: noqa: UP010, UP025, UP031
"""A WSGI app that appends what it was sent to ``$RECORD_FILE`` (Python 2.7 and 3).

One JSON line per request: the runtime, ``traceparent``, ``tracestate``,
``X-Shadow`` and ``X-Request-ID`` as the app's environ holds them. The answer
is the same on both runtimes, so a shadow comparison finds no difference.
"""
from __future__ import absolute_import, division, print_function

import json
import os
import sys

RUNTIME = u"py%d" % sys.version_info[0]


def app(environ, start_response):
    """Record the request's trace headers, answer ``{"ok": true}``."""
    line = json.dumps({
        u"runtime": RUNTIME, u"traceparent": environ.get("HTTP_TRACEPARENT"),
        u"tracestate": environ.get("HTTP_TRACESTATE"),
        u"shadow": environ.get("HTTP_X_SHADOW"), u"rid": environ.get("HTTP_X_REQUEST_ID"),
    }, sort_keys=True)
    with open(os.environ["RECORD_FILE"], "a") as fh:
        fh.write(line + "\n")  # one short write in append mode: lines do not interleave
    body = b'{"ok": true}'
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
