# ruff: noqa: UP010
"""A WSGI app whose replica may lag: it sleeps ``LAGGING_APP_MS`` (its environment) per request.

Two replicas of one service, one started with ``LAGGING_APP_MS=1500``, make a service
with one slow outlier (2.7 and 3.x)::

    LAGGING_APP_MS=1500 python -m protocol.wsgi --broker EP --service lag \\
        tests.integration.http.lagging_app:app
    GET /lag/x  ->  200 {"lagging_ms": 1500, "pid": 4242, "python": 2, "replica": ""}

Under ``gateway up`` every replica of a service has the same environment: with
``LAGGING_APP_REPLICA=N`` only the replica whose ``GATEWAY_REPLICA`` is N lags.
"""
from __future__ import absolute_import, division, print_function

import json
import os
import sys
import time

REPLICA = os.environ.get("GATEWAY_REPLICA", "")
LAG_MS = int(os.environ.get("LAGGING_APP_MS", "0") or 0)
if os.environ.get("LAGGING_APP_REPLICA", REPLICA) != REPLICA:
    LAG_MS = 0


def app(environ, start_response):
    # type: (dict, object) -> list
    """Sleep this replica's lag, then answer which replica answered."""
    environ["wsgi.input"].read()
    time.sleep(LAG_MS / 1000.0)
    body = json.dumps({"lagging_ms": LAG_MS, "pid": os.getpid(), "python": sys.version_info[0],
                       "replica": REPLICA}).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
