# ruff: noqa: UP010, UP025
"""A WSGI app for the trace test, on Python 2.7 or 3: it calls a peer and enqueues a job.

Hosted by ``python -m protocol.wsgi``; it reads ``TRACE_BROKER``, ``TRACE_REDIS`` and
``TRACE_QUEUE`` from the environment. Neither the call nor the job names a trace:
both inherit the request's from :func:`protocol.worker.current`, which is the point.
"""
from __future__ import absolute_import, division, print_function

import json
import logging
import os

from protocol.client import Client
from protocol.queue import Queue, connect

log = logging.getLogger("trace_app")
_state = {}


def _parts():
    # type: () -> tuple
    if not _state:
        _state["client"] = Client(os.environ["TRACE_BROKER"], timeout=10.0)
        _state["queue"] = Queue(connect(os.environ["TRACE_REDIS"]),
                                os.environ["TRACE_QUEUE"].decode("ascii")
                                if isinstance(os.environ["TRACE_QUEUE"], bytes)
                                else os.environ["TRACE_QUEUE"])
    return _state["client"], _state["queue"]


def app(environ, start_response):
    """Answer what this worker saw, what the peer saw, and the id of the job it enqueued."""
    client, queue = _parts()
    peer = client.call(u"tracepeer", u"whoami", {})
    job_id = queue.enqueue({u"from": u"trace_app"})
    log.warning("handled %s, enqueued %s", environ["PATH_INFO"], job_id)
    body = json.dumps({
        u"traceparent": environ.get("HTTP_TRACEPARENT"),
        u"tracestate": environ.get("HTTP_TRACESTATE"),
        u"request_id": environ.get("HTTP_X_REQUEST_ID"),
        u"peer": peer, u"job_id": job_id,
    }).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
