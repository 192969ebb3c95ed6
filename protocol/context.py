"""The request a worker thread is handling: :func:`current`, a :class:`CallContext` (2.7 and 3.x).

::

    from protocol import current          # or: from protocol.context import current

    def handler(x):
        ctx = current()                   # None outside a request
        ctx.rid, ctx.remaining(), ctx.trace.traceparent

The worker binds a request to its thread for as long as the handler runs;
:class:`protocol.client.Client`, ``Queue.enqueue``, ``Publisher.publish`` and
the log filter of :mod:`protocol.logcontext` read it from here, so nested
work carries the remaining deadline, the request id and the trace on (SPEC
3.9). It is a module of its own, below the worker, so that those readers do
not import the worker that imports them.
"""
from __future__ import absolute_import, division, print_function

import threading
import time

from protocol import mdp, trace

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from protocol import codec  # noqa: F401

_local = threading.local()


class CallContext(object):
    """The request being handled on this thread: id, request id, deadline (ms), method,
    and ``trace``, this worker's span of the request's W3C trace (SPEC 3.9)."""

    __slots__ = ("_env", "_trace", "deadline", "id", "method", "rid", "shadow")

    def __init__(self, env):
        # type: (codec.Envelope) -> None
        self.id = env.id
        self.rid = env.rid or env.id
        self.deadline = env.deadline
        self.method = env.method
        self.shadow = env.shadow
        self._env = env
        self._trace = None  # type: trace.TraceContext

    @property
    def trace(self):
        # type: () -> trace.TraceContext
        """This hop's span: made on first use, so a request that never asks costs nothing."""
        if self._trace is None:
            self._trace = trace.from_envelope(self._env)
        return self._trace

    @property
    def sticky(self):
        # type: () -> str
        """The request's traffic-split key (SPEC 2.14), or None; nested calls carry it on."""
        return self._env.sticky

    def remaining(self):
        # type: () -> float
        """Seconds left before the deadline (None when the request has none)."""
        if self.deadline is None:
            return None
        return (self.deadline - mdp.now_ms()) / 1000.0


def _bind_context(env):
    # type: (codec.Envelope) -> None
    """Make ``env`` the current request of this thread (None: no request)."""
    _local.ctx = CallContext(env) if env is not None else None


def _restore_context(ctx):
    # type: (CallContext) -> None
    """Make ``ctx`` (from :func:`current`, or None) the current request of this thread again."""
    _local.ctx = ctx


def current():
    # type: () -> CallContext
    """The :class:`CallContext` of the request this thread is handling, or None."""
    return getattr(_local, "ctx", None)


def inherited(rid, traceparent, tracestate):
    # type: (str, str, str) -> tuple
    """``(rid, traceparent, tracestate)``: what the caller gave, else the current request's
    id and this worker's span (a job or an event sent inside a handler joins its trace)."""
    ctx = current()
    if ctx is not None:
        if rid is None:
            rid = ctx.rid
        if traceparent is None:
            traceparent, tracestate = ctx.trace.traceparent, ctx.trace.tracestate
    return rid, traceparent, tracestate


def call_deadline(timeout, default, rid):
    # type: (float, float, str) -> tuple
    """``(deadline in s since the epoch, rid)`` of a call made now.

    Inside a handler a call without ``timeout`` takes the request's remaining
    deadline, a call with one never outlives the request, and ``rid`` defaults
    to the request's; outside one the deadline is ``timeout`` (else ``default``)
    from now.
    """
    ctx = current()
    if timeout is None and ctx is not None and ctx.deadline is not None:
        deadline = ctx.deadline / 1000.0
    else:
        deadline = time.time() + (default if timeout is None else timeout)
        if ctx is not None and ctx.deadline is not None:
            deadline = min(deadline, ctx.deadline / 1000.0)
    if rid is None and ctx is not None:
        rid = ctx.rid
    return deadline, rid


def inherited_sticky(sticky):
    # type: (str) -> str
    """The split key of a call: the one given, else the current request's (SPEC 2.14)."""
    if sticky is None:
        ctx = current()
        sticky = ctx.sticky if ctx is not None else None
    return sticky


def inherit_trace(env):
    # type: (codec.Envelope) -> None
    """Give a request made inside a handler the handler's span as its parent (SPEC 3.9)."""
    if env.traceparent is None and env.kind != u"http":
        ctx = current()
        if ctx is not None:
            span = ctx.trace
            env.traceparent, env.tracestate = span.traceparent, span.tracestate
