# ruff: noqa: UP010, UP025, UP031 - this file also runs on Python 2.7
"""A WSGI app for the arbiter's reload tests, hosted by protocol.wsgi on 2.7 and on 3.

``GET`` anything -> ``{"impl": "cpython-2.7.18", "pid": ...}``: the answer says
which interpreter served it, so a test sees the py2 -> py3 swap.
"""
from __future__ import absolute_import, division, print_function

import json
import os
import platform

IMPL = u"%s-%s" % (platform.python_implementation().lower(), platform.python_version())


def app(environ, start_response):
    # type: (dict, object) -> list
    """Answer with the implementation and pid."""
    body = json.dumps({u"impl": IMPL, u"pid": os.getpid(),
                       u"path": environ.get("PATH_INFO", u"")}).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),  # type: ignore[operator]
                              ("Content-Length", str(len(body)))])
    return [body]
