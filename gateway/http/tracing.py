"""W3C trace context at the HTTP edge, and the request's ids on the front's log lines.

:func:`begin` runs once per request, in :meth:`GatewayApp.prepare`, on both
the event-loop fast path and the WSGI threads::

    trace_id = tracing.begin(environ)   # environ["gateway.trace_id"], 32 hex digits

A valid client ``traceparent`` (W3C Trace Context level 1) is continued: the
trace id is kept, the client's span becomes the parent of the gateway's own
span, and ``tracestate`` is passed on. A missing or invalid one starts a new
trace; it is never an error. ``environ["HTTP_TRACEPARENT"]`` is then rewritten
to name the gateway's span, so every backend (HTTP, and WSGI or RPC over
ZeroMQ) sees the gateway as its parent. The response does not carry
``traceparent``: level 1 defines no response header (``traceresponse`` is a
level 2 draft), and the response's ``X-Request-ID`` plus the access log's
trace id already tie a client's request to its trace.

:class:`LogContext` puts ``rid`` and ``trace_id`` on every log record the
front writes while it serves that request (a context variable: each asyncio
task and each front thread sees its own request).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import MutableMapping
from typing import Any

from protocol import trace

FORMAT = "%(asctime)s %(name)s %(levelname)s rid=%(rid)s trace_id=%(trace_id)s %(message)s"

_REQUEST: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "gateway_request", default=("-", "-"))


def begin(environ: MutableMapping[str, Any]) -> str:
    """Continue or start the request's trace in ``environ``; return its trace id.

    Sets ``gateway.trace`` (the gateway's :class:`protocol.trace.TraceContext`),
    ``gateway.trace_id``, and ``HTTP_TRACEPARENT``/``HTTP_TRACESTATE`` as the
    backends get them. A second call for the same request (routed on the loop,
    then again in a front thread) keeps the first span.
    """
    span = environ.get("gateway.trace")
    if span is None:
        span = trace.continue_from(environ.get("HTTP_TRACEPARENT"),
                                   environ.get("HTTP_TRACESTATE"))
        environ["gateway.trace"] = span
        environ["gateway.trace_id"] = span.trace_id
        environ["HTTP_TRACEPARENT"] = span.traceparent
        if span.tracestate:
            environ["HTTP_TRACESTATE"] = span.tracestate
        else:
            environ.pop("HTTP_TRACESTATE", None)  # W3C: no tracestate without its traceparent
    _REQUEST.set((environ.get("gateway.request_id") or "-", span.trace_id))
    return str(span.trace_id)


def current_ids() -> tuple[str, str]:
    """``(request id, trace id)`` of the request this task or thread serves, or ``("-", "-")``."""
    return _REQUEST.get()


class LogContext(logging.Filter):
    """Add ``record.rid`` and ``record.trace_id`` of the request being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid, trace_id = _REQUEST.get()
        record.rid = getattr(record, "rid", rid)
        record.trace_id = getattr(record, "trace_id", trace_id)
        return True


def install_log_context(level: int = logging.WARNING) -> logging.Handler:
    """Give the root logger one stderr handler whose lines name the request's ids.

    The front's modules log through the root logger (uvicorn's loggers keep
    their own handlers), so this covers every line the front writes about a
    request. Idempotent: a second call returns the handler already installed.
    """
    root = logging.getLogger()
    for handler in root.handlers:
        if any(isinstance(f, LogContext) for f in handler.filters):
            return handler
    handler = logging.StreamHandler()
    handler.addFilter(LogContext())
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    return handler


def rpc_fields(environ: MutableMapping[str, Any]) -> dict[str, Any]:
    """``traceparent``/``tracestate`` keyword arguments for ``Client.call`` (SPEC 3.9)."""
    return {"traceparent": environ.get("HTTP_TRACEPARENT"),
            "tracestate": environ.get("HTTP_TRACESTATE")}
