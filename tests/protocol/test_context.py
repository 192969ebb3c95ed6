"""protocol.context: the request a worker thread handles, and its old import paths.

Runs unchanged on Python 2.7 and 3.x. ``current()`` moved out of
``protocol.worker``; ``from protocol import current`` and
``protocol.worker.current`` must stay the very same function, or a handler
importing one would read another thread-local than the worker binds.
"""
from __future__ import absolute_import, division, print_function

import threading

import pytest

import protocol
from protocol import codec, context, mdp, replies, streaming, worker
from protocol.errors import RemoteError, Timeout


@pytest.fixture
def unbound():
    saved = context.current()
    context._bind_context(None)
    yield
    context._restore_context(saved)


def test_old_import_paths_are_the_same_objects():
    assert protocol.current is context.current
    assert worker.current is context.current
    assert worker.CallContext is context.CallContext
    assert worker.inherited is context.inherited
    assert worker.error_envelope is replies.error_envelope
    assert streaming.error_envelope is replies.error_envelope


def test_no_request_outside_a_handler(unbound):
    assert context.current() is None
    assert context.inherited(None, None, None) == (None, None, None)


def test_a_bound_request_is_this_threads_only(unbound):
    deadline = mdp.now_ms() + 5000
    context._bind_context(codec.Envelope(u"call", id=u"in-1", method=u"m", rid=u"r-1",
                                         deadline=deadline))
    ctx = context.current()
    assert (ctx.id, ctx.rid, ctx.method, ctx.deadline) == (u"in-1", u"r-1", u"m", deadline)
    assert 0 < ctx.remaining() <= 5.0
    rid, traceparent, _ = context.inherited(None, None, None)
    assert rid == u"r-1" and traceparent == ctx.trace.traceparent
    assert context.inherited(u"mine", u"tp", u"ts") == (u"mine", u"tp", u"ts")

    seen = []
    other = threading.Thread(target=lambda: seen.append(context.current()))
    other.start()
    other.join(10)
    assert seen == [None]  # another thread has no request bound


def test_error_envelope_keeps_a_protocol_code_and_describes_anything_else():
    typed = replies.error_envelope(u"a", Timeout(u"late"))
    assert (typed.kind, typed.id, typed.error[u"code"]) == (u"error", u"a", u"timeout")
    try:
        raise KeyError("k")
    except KeyError as exc:
        env = replies.error_envelope(u"b", exc)
    assert env.error[u"code"] == RemoteError.code
    assert env.error[u"type"] == u"KeyError"
    assert u"Traceback" in env.error[u"traceback"]
