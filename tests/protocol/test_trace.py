"""protocol.trace, and trace context in envelopes, handler contexts, jobs and log lines.

Runs unchanged on Python 2.7 and 3.x. The parse cases follow W3C Trace
Context level 1, section 3.2 (traceparent) and 3.3 (tracestate).
"""
from __future__ import absolute_import, division, print_function

import logging
import os
import re
import time

import pytest

from protocol import codec, logcontext, trace
from protocol.context import inherit_trace
from protocol.errors import EnvelopeError
from protocol.queue import Job
from protocol.worker import _bind_context, _restore_context, current

TRACE = u"4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = u"00f067aa0ba902b7"
GOOD = u"00-%s-%s-01" % (TRACE, PARENT)
HEX32 = re.compile(u"^[0-9a-f]{32}$")
HEX16 = re.compile(u"^[0-9a-f]{16}$")


@pytest.fixture
def no_context():
    saved = current()
    _bind_context(None)
    try:
        yield
    finally:
        _restore_context(saved)


def test_parse_accepts_a_valid_version_00_header():
    assert trace.parse(GOOD) == (TRACE, PARENT, 1)
    assert trace.parse(GOOD.encode("ascii")) == (TRACE, PARENT, 1)
    assert trace.parse(u"  " + GOOD + u"\t") == (TRACE, PARENT, 1)  # OWS around the value


@pytest.mark.parametrize("value", [
    None, 7, u"", u"garbage",
    GOOD.upper(),                                                  # hex is lowercase only
    u"ff-%s-%s-01" % (TRACE, PARENT),                              # version ff is invalid
    u"00-%s-%s-01" % (u"0" * 32, PARENT),                          # all-zero trace id
    u"00-%s-%s-01" % (TRACE, u"0" * 16),                           # all-zero parent id
    u"00-%s-%s-01-extra" % (TRACE, PARENT),                        # 00 is exactly 55 chars
    u"00-%s-%s-01" % (TRACE[:-1], PARENT),                         # short trace id
    u"00-%s-%s-1" % (TRACE, PARENT),                               # one-digit flags
    u"00_%s_%s_01" % (TRACE, PARENT),                              # wrong separator
    u"00-%s-%s-0g" % (TRACE, PARENT),                              # not hex
    b"00-\xff",                                                    # not ASCII
    u"00-%s-%s-01,00-%s-%s-01" % (TRACE, PARENT, TRACE, PARENT),  # two headers joined
])
def test_parse_refuses_what_w3c_calls_invalid(value):
    assert trace.parse(value) is None


def test_a_later_version_may_append_fields_which_are_dropped_on_the_way_on():
    parsed = trace.parse(u"cc-%s-%s-03-what-the-future-holds" % (TRACE, PARENT))
    assert parsed == (TRACE, PARENT, 3)
    span = trace.continue_from(u"cc-%s-%s-03-later" % (TRACE, PARENT))
    # Passed on as version 00, with only the flag bit version 00 defines.
    assert span.traceparent == u"00-%s-%s-01" % (TRACE, span.span_id)


def test_continue_from_keeps_the_trace_and_makes_a_span_under_the_callers():
    span = trace.continue_from(GOOD, u"congo=t61rcWkgMzE")
    assert span.trace_id == TRACE
    assert span.parent_id == PARENT
    assert HEX16.match(span.span_id) and span.span_id != PARENT
    assert span.flags == 1
    assert span.tracestate == u"congo=t61rcWkgMzE"
    assert span.traceparent == u"00-%s-%s-01" % (TRACE, span.span_id)
    assert trace.parse(span.traceparent) == (TRACE, span.span_id, 1)


def test_an_invalid_traceparent_starts_a_new_trace_and_drops_tracestate():
    span = trace.continue_from(u"00-nonsense", u"congo=t61rcWkgMzE")
    assert HEX32.match(span.trace_id) and span.trace_id != TRACE
    assert span.parent_id is None
    assert span.tracestate is None
    assert span.flags == 0
    assert trace.parse(span.traceparent) == (span.trace_id, span.span_id, 0)


@pytest.mark.parametrize("state", [u"a=" + u"b" * 600, u"k=caf\u00e9", u"", u"  "])
def test_tracestate_that_is_too_long_or_not_printable_ascii_is_not_passed_on(state):
    assert trace.continue_from(GOOD, state).tracestate is None


def test_fresh_ids_are_distinct_and_never_zero():
    ids = {trace.new_trace_id() for _ in range(200)}
    assert len(ids) == 200 and all(HEX32.match(i) for i in ids)
    assert u"0" * 32 not in ids


def test_child_is_a_new_span_of_the_same_trace():
    root = trace.continue_from(GOOD, u"a=1")
    kid = root.child()
    assert (kid.trace_id, kid.parent_id, kid.flags, kid.tracestate) == \
        (TRACE, root.span_id, 1, u"a=1")
    assert kid.span_id != root.span_id


def test_envelope_carries_traceparent_and_tracestate_both_encoder_paths():
    env = codec.Envelope(u"call", id=u"a" * 32, method=u"echo", rid=u"r-1",
                         traceparent=GOOD, tracestate=u"congo=t61rcWkgMzE", payload=None)
    frames = codec.encode(env)
    assert b'"traceparent":"' + GOOD.encode("ascii") + b'"' in frames[0]
    back = codec.decode(frames)
    assert (back.traceparent, back.tracestate) == (GOOD, u"congo=t61rcWkgMzE")
    # The general path (a header the fast path refuses) writes the same fields.
    env.http = {u"$odd": 1}
    slow = codec.decode(codec.encode(env))
    assert (slow.traceparent, slow.tracestate) == (GOOD, u"congo=t61rcWkgMzE")
    assert codec.decode(codec.encode(codec.Envelope(u"result", id=u"x"))).traceparent is None


def test_a_traceparent_that_is_not_text_is_an_envelope_error():
    with pytest.raises(EnvelopeError) as info:
        codec.decode([b'{"id":"x","kind":"result","traceparent":1,"v":1}', b"null"])
    assert u"header.traceparent: wrong type" in info.value.message


def test_an_http_request_without_the_field_is_read_from_its_headers():
    env = codec.Envelope(u"http", id=u"x", http={u"headers": [
        [u"Host", u"h"], [u"traceparent", GOOD], [u"TraceState", u"a=1"],
        [u"tracestate", u"b=2"]]})
    span = trace.from_envelope(env)
    assert (span.trace_id, span.parent_id, span.tracestate) == (TRACE, PARENT, u"a=1,b=2")
    env.traceparent = u"00-%s-%s-00" % (u"1" * 32, u"2" * 16)  # the header field wins
    assert trace.from_envelope(env).trace_id == u"1" * 32
    assert trace.from_envelope(codec.Envelope(u"http", id=u"x", http={u"headers": 5})) \
        .parent_id is None


def test_a_call_made_inside_a_handler_names_the_handlers_span_as_parent(no_context):
    _bind_context(codec.Envelope(u"call", id=u"in", method=u"m", rid=u"r-9",
                                 traceparent=GOOD, tracestate=u"a=1"))
    ctx = current()
    assert ctx.trace is ctx.trace  # one span per request, made once
    out = codec.Envelope(u"call", method=u"nested")
    inherit_trace(out)
    assert out.traceparent == u"00-%s-%s-01" % (TRACE, ctx.trace.span_id)
    assert out.tracestate == u"a=1"
    given = codec.Envelope(u"call", method=u"nested", traceparent=u"explicit")
    inherit_trace(given)
    assert given.traceparent == u"explicit"


def test_outside_a_handler_nothing_is_invented(no_context):
    out = codec.Envelope(u"call", method=u"m")
    inherit_trace(out)
    assert out.traceparent is None


def test_a_job_reads_its_trace_fields_and_ignores_wrong_types():
    raw = codec.dumps({u"v": 1, u"id": u"j", u"queue": u"q", u"enqueued": 1, u"attempts": 1,
                       u"max_attempts": 3, u"payload": None, u"deadline": None,
                       u"rid": u"r", u"idem_key": None, u"traceparent": GOOD,
                       u"tracestate": 5})
    job = Job.parse(raw)
    assert job.traceparent == GOOD
    assert job.tracestate is None


def test_log_lines_name_the_request_and_its_trace(no_context):
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(logcontext.RequestFilter())
    handler.setFormatter(logging.Formatter(u"%(rid)s %(trace_id)s %(message)s"))
    logger = logging.getLogger("tests.trace")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(u"outside")
        _bind_context(codec.Envelope(u"call", id=u"in", method=u"m", rid=u"r-9",
                                     traceparent=GOOD))
        logger.warning(u"inside")
    finally:
        logger.removeHandler(handler)
    assert records == [u"- - outside", u"r-9 %s inside" % TRACE]


def test_an_event_published_inside_a_handler_carries_its_trace(no_context, workdir):
    import zmq

    from protocol.events import Publisher
    endpoint = "ipc://" + os.path.join(workdir, "events")
    sink = zmq.Context.instance().socket(zmq.SUB)
    sink.linger = 0
    sink.setsockopt(zmq.SUBSCRIBE, b"")
    sink.bind(endpoint)
    pub = Publisher(endpoint)
    try:
        _bind_context(codec.Envelope(u"call", id=u"in", method=u"m", rid=u"r-5",
                                     traceparent=GOOD))
        span = current().trace
        got = None
        deadline = time.time() + 10.0
        # PUB drops what it sends before the connection is up (the slow joiner): resend.
        while got is None and time.time() < deadline:
            pub.publish(u"t.x", {u"n": 1})
            if sink.poll(100):
                got = sink.recv_multipart()
        assert got is not None, "no event within 10 s"
        env = codec.decode(got[1:])
        assert env.rid == u"r-5"
        assert env.traceparent == span.traceparent
        assert trace.parse(env.traceparent)[:2] == (TRACE, span.span_id)
    finally:
        pub.close()
        sink.close(linger=0)
