"""W3C Trace Context (``traceparent``, ``tracestate``) for every hop, on Python 2.7 and 3.x.

One :class:`TraceContext` is one hop's span in a trace: the trace id it
shares with the whole request, the span id this hop made for itself, and the
parent span id it was given (None at the root)::

    from protocol import trace

    ctx = trace.continue_from(u"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    ctx.trace_id       # u"4bf92f3577b34da6a3ce929d0e0e4736", kept from the caller
    ctx.parent_id      # u"00f067aa0ba902b7", the caller's span
    ctx.traceparent    # u"00-4bf9...4736-<ctx.span_id>-01": what to pass on
    trace.continue_from(u"garbage").parent_id   # None: a fresh trace, never an error

Parsing follows W3C Trace Context level 1, section 3.2 ("traceparent"):
lowercase hex only; version ``ff`` is invalid; version ``00`` is exactly 55
characters; a later version may append ``-...`` fields, which are dropped
when the header is passed on as version ``00``; an all-zero trace id or
parent id is invalid. ``tracestate`` travels only with a valid traceparent
(section 3.3: a receiver that starts a new trace discards it), is passed on
unchanged and is cut off when it is longer than 512 characters or holds
anything but printable ASCII (the spec's size limit and character set).
"""
from __future__ import absolute_import, division, print_function

import random
import re

from protocol._compat import binary_type, text_type

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from protocol.codec import Envelope  # noqa: F401

_TRACEPARENT = re.compile(
    u"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x21-\x7e]*)?$")
_ZERO_TRACE = u"0" * 32
_ZERO_SPAN = u"0" * 16
_PRINTABLE = re.compile(u"^[\x20-\x7e]*$")
MAX_TRACESTATE = 512
FLAG_SAMPLED = 0x01


# Ids come from the random module, not os.urandom: W3C asks for random ids, not secret
# ones, and a getrandom() system call per id cost more than the rest of a span here.
# Python 3 reseeds the generator in a forked child (random's register_at_fork), so front
# processes forked from one parent do not repeat each other's ids.
_bits = random.getrandbits
_MASK64 = (1 << 64) - 1


def new_trace_id():
    # type: () -> str
    """A fresh trace id: 32 lowercase hex digits (never all zero)."""
    return u"%032x" % (_bits(128) or 1)


def new_span_id():
    # type: () -> str
    """A fresh span id: 16 lowercase hex digits (never all zero)."""
    return u"%016x" % (_bits(64) or 1)


def _as_text(value):
    # type: (object) -> str
    """A header value as text, or None when it cannot be one (non-ASCII bytes, not a string)."""
    if isinstance(value, text_type):
        return value
    if isinstance(value, binary_type):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return None


def parse(traceparent):
    # type: (object) -> tuple
    """``(trace_id, parent_id, flags)`` of a valid traceparent, else None."""
    value = _as_text(traceparent)
    if value is None:
        return None
    match = _TRACEPARENT.match(value.strip(u" \t"))
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == u"ff" or (version == u"00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id, int(flags, 16)


def clean_tracestate(tracestate):
    # type: (object) -> str
    """``tracestate`` fit to pass on, or None (absent, too long or not printable ASCII)."""
    value = _as_text(tracestate)
    if value is None:
        return None
    value = value.strip(u" \t")
    if not value or len(value) > MAX_TRACESTATE or not _PRINTABLE.match(value):
        return None
    return value


class TraceContext(object):
    """One hop's span: ``trace_id``, its own ``span_id``, the caller's ``parent_id``."""

    __slots__ = ("flags", "parent_id", "span_id", "trace_id", "tracestate")

    def __init__(self, trace_id, span_id, parent_id=None, flags=0, tracestate=None):
        # type: (str, str, str, int, str) -> None
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.flags = flags
        self.tracestate = tracestate

    @property
    def traceparent(self):
        # type: () -> str
        """The version-00 traceparent naming this span as the parent, for the next hop."""
        # Only the sampled bit is defined for version 00; other bits are not passed on.
        return u"00-%s-%s-%02x" % (self.trace_id, self.span_id, self.flags & FLAG_SAMPLED)

    def child(self):
        # type: () -> TraceContext
        """A new span in the same trace whose parent is this one."""
        return TraceContext(self.trace_id, new_span_id(), self.span_id, self.flags,
                            self.tracestate)

    def __eq__(self, other):
        # type: (object) -> bool
        return isinstance(other, TraceContext) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __ne__(self, other):
        # type: (object) -> bool
        return not self == other

    __hash__ = None

    def __repr__(self):
        # type: () -> str
        return "TraceContext(%r, span=%r, parent=%r)" % (self.trace_id, self.span_id,
                                                         self.parent_id)


def new_trace():
    # type: () -> TraceContext
    """The root span of a fresh trace (not sampled: nothing records it unless asked)."""
    bits = _bits(192)  # one draw for both ids
    return TraceContext(u"%032x" % (bits >> 64 or 1), u"%016x" % (bits & _MASK64 or 1))


def continue_from(traceparent, tracestate=None):
    # type: (object, object) -> TraceContext
    """This hop's span under the caller's ``traceparent``; a fresh trace when it is invalid."""
    parsed = parse(traceparent) if traceparent is not None else None
    if parsed is None:
        return new_trace()
    trace_id, parent_id, flags = parsed
    return TraceContext(trace_id, new_span_id(), parent_id, flags, clean_tracestate(tracestate))


def http_header(headers, name):
    # type: (object, str) -> str
    """The value of header ``name`` (lower case) in a list of ``[name, value]`` pairs.

    Repeated fields are joined with ``,`` as HTTP allows for list-valued fields
    such as tracestate; None when absent or when the list is malformed.
    """
    if not isinstance(headers, list):
        return None
    found = []
    for pair in headers:
        if isinstance(pair, (list, tuple)) and len(pair) == 2 \
                and isinstance(pair[0], text_type) and pair[0].lower() == name:
            found.append(pair[1])
    if not found:
        return None
    if not all(isinstance(v, text_type) for v in found):
        return None
    return u",".join(found)


def from_envelope(env):
    # type: (Envelope) -> TraceContext
    """The receiving hop's span for a request envelope (SPEC 3.9).

    The header's ``traceparent`` wins; an ``http`` request without one is
    read from its ``traceparent``/``tracestate`` HTTP headers (SPEC 6.1).
    """
    parent, state = env.traceparent, env.tracestate
    if parent is None and isinstance(env.http, dict):
        headers = env.http.get(u"headers")
        parent = http_header(headers, u"traceparent")
        if parent is not None:
            state = http_header(headers, u"tracestate")
    return continue_from(parent, state)
