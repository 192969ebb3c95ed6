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
level 2 draft); the response's ``X-Request-ID`` ties a client's request to
the log lines that name both ids.

:class:`LogContext` puts ``rid`` and ``trace_id`` on every log record the
front writes while it serves that request (a context variable: each asyncio
task and each front thread sees its own request).
"""

from __future__ import annotations

import contextvars
import logging
import random
from collections.abc import MutableMapping
from typing import Any

from protocol import trace

FORMAT = "%(asctime)s %(name)s %(levelname)s rid=%(rid)s trace_id=%(trace_id)s %(message)s"

_bits = random.getrandbits  # see protocol.trace: random ids, reseeded in forked workers
_MASK64 = (1 << 64) - 1

_REQUEST: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "gateway_request", default=("-", "-"))


def begin(environ: MutableMapping[str, Any]) -> str:
    """Continue or start the request's trace in ``environ``; return its trace id.

    Sets ``gateway.trace_id``, ``gateway.span_id`` (the gateway's own span) and
    ``HTTP_TRACEPARENT``/``HTTP_TRACESTATE`` as the backends get them. A second
    call for the same request (routed on the loop, then again in a front
    thread) keeps the first span.
    """
    trace_id = environ.get("gateway.trace_id")
    if trace_id is None:
        # On every request's path: one random draw and one format, no span object.
        bits = _bits(192)
        span = "%016x" % (bits & _MASK64 or 1)
        given = environ.get("HTTP_TRACEPARENT")
        parsed = trace.parse(given) if given else None
        if parsed is None:
            trace_id, flags = "%032x" % (bits >> 64 or 1), 0
            environ.pop("HTTP_TRACESTATE", None)  # W3C: no tracestate without its traceparent
        else:
            trace_id, flags = parsed[0], parsed[2] & trace.FLAG_SAMPLED
            environ["gateway.parent_span_id"] = parsed[1]   # the client's span, for export
            state = environ.get("HTTP_TRACESTATE")
            if state is not None:
                state = trace.clean_tracestate(state)
                if state is None:
                    del environ["HTTP_TRACESTATE"]
                else:
                    environ["HTTP_TRACESTATE"] = state
        environ["HTTP_TRACEPARENT"] = f"00-{trace_id}-{span}-{flags:02x}"
        environ["gateway.trace_id"] = trace_id
        environ["gateway.span_id"] = span
    _REQUEST.set((environ.get("gateway.request_id") or "-", trace_id))
    return str(trace_id)


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
