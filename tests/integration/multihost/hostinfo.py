"""The multi-host test's service: a WSGI app saying which host and interpreter answered.

Runs unchanged on 2.7 (the py2 worker host) and 3.x (the py3 one)::

    GET /whoami          -> {"host": "w2", "py": "2.7.18", "pid": 1234}
    GET /whoami?ms=50    -> the same after 50 ms (a request that is in flight a while)

and the same as an RPC table (``TABLE``), for service-to-service calls:
``whoami(ms=0)``.
"""

import json
import os
import platform
import time


def whoami(ms=0):
    """Which host, interpreter and process answered, after ``ms`` milliseconds."""
    if ms:
        time.sleep(min(2000, int(ms)) / 1000.0)
    return {"host": os.environ.get("MULTIHOST_NAME", ""),
            "py": platform.python_version(), "pid": os.getpid()}


TABLE = {"whoami": whoami}


def app(environ, start_response):
    """The whole service."""
    query = environ.get("QUERY_STRING", "")
    ms = 0
    for part in query.split("&"):
        if part.startswith("ms="):
            ms = int(part[3:] or 0)
    body = json.dumps(whoami(ms)).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
