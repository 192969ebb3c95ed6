"""Envelope and payload codec: Python values <-> ZeroMQ frames (SPEC sections 3-4).

Pure functions, bytes in and bytes out, identical output on Python 2.7 and
3.x for the same logical value::

    from protocol import codec
    env = codec.Envelope(u"call", method=u"render", payload={u"code": u"x = 1"})
    frames = codec.encode(env)            # [header, payload, *byte frames]
    assert codec.decode(frames).payload == {u"code": u"x = 1"}

A payload is JSON (UTF-8, canonical: sorted keys, no spaces) in which every
bytes value is replaced by ``{"$b": n}``, a reference to the n-th raw frame
after the payload frame. ``{"$bytes": "<base64>"}`` is the inline form used
where only JSON can travel (HTTP RPC, Redis jobs, vectors). Object keys that
start with ``$`` are escaped by doubling the ``$``.

Text and bytes are never guessed. Python 3 ``str`` is text and ``bytes`` is
bytes. On Python 2, ``unicode`` is text, :class:`Bytes` / ``bytearray`` are
bytes, and a plain ``str`` is text only when it is ASCII: anything else is
ambiguous and raises :class:`~protocol.errors.EnvelopeError` naming the
field, unless a schema declares the field as bytes. Decoded bytes come back
as :class:`Bytes`, so re-encoding them on Python 2 keeps them bytes.
"""
from __future__ import absolute_import, division, print_function

import binascii
import json
import os

from protocol._compat import PY2, binary_type, integer_types, text_type
from protocol.errors import EnvelopeError
from protocol.payload import (
    _ENCODE_STRING,
    _ENCODED_SURROGATE,
    _FIRST_FRAME,
    _NO_SCHEMA,
    _RAW,
    _SCALARS,
    MAX_DEPTH,
    Bytes,
    _dumps_plain,
    _pack,
    _plain,
    _plain_text,
    _utf8,
    dumps,
    pack,
    to_json,
)
from protocol.unpack import _LONE_SURROGATE, decode_base64, from_json, loads

# The payload's halves live in protocol.payload and protocol.unpack; their public
# names stay importable from here, where every caller has always found them.
__all__ = ["KINDS", "MAX_DEPTH", "MAX_FRAME", "MAX_FRAMES", "VERSION", "Bytes", "Envelope",
           "check_header", "decode", "decode_base64", "decode_header", "dumps", "encode",
           "from_json", "header_id", "loads", "new_id", "pack", "to_json"]

VERSION = 1
KINDS = (u"call", u"result", u"error", u"http", u"http-response", u"http-body", u"event",
         u"cancel")
MAX_FRAME = 64 * 1024 * 1024
MAX_FRAMES = 4096


class Envelope(object):
    """One message body: a header plus a payload value (SPEC section 3)."""

    __slots__ = ("deadline", "error", "http", "id", "idem", "kind", "method", "more",
                 "payload", "rid", "shadow", "sticky", "traceparent", "tracestate")

    def __init__(self, kind, id=None, method=None, deadline=None, rid=None,  # noqa: A002
                 shadow=False, idem=False, more=False, error=None, http=None,
                 payload=None, traceparent=None, tracestate=None, sticky=None):
        # type: (str, str, str, int, str, bool, bool, bool, dict, dict, object, str, str, str) -> None
        self.kind = kind
        self.id = id if id is not None else new_id()
        self.method = method
        self.deadline = deadline
        self.rid = rid
        self.shadow = shadow
        self.idem = idem
        self.more = more
        self.error = error
        self.http = http
        self.payload = payload
        self.traceparent = traceparent
        self.tracestate = tracestate
        self.sticky = sticky

    def header(self):
        # type: () -> dict
        """The header as a JSON-ready dict; optional fields at their defaults are left out."""
        out = {u"v": VERSION, u"kind": self.kind, u"id": self.id}
        for name in ("method", "deadline", "rid", "error", "http", "traceparent",
                     "tracestate", "sticky"):
            value = getattr(self, name)
            if value is not None:
                out[text_type(name)] = value
        for name in ("shadow", "idem", "more"):
            if getattr(self, name):
                out[text_type(name)] = True
        return out

    def __eq__(self, other):
        # type: (object) -> bool
        return isinstance(other, Envelope) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __ne__(self, other):
        # type: (object) -> bool
        return not self == other

    __hash__ = None

    def __repr__(self):
        # type: () -> str
        return "Envelope(%r, id=%r, method=%r)" % (self.kind, self.id, self.method)


def new_id():
    # type: () -> str
    """A fresh message id: 32 lowercase hex digits (128 random bits), as text."""
    # os.urandom is what uuid4 draws from, without building a UUID object per message.
    return binascii.hexlify(os.urandom(16)).decode("ascii")

def _fast_header(env):
    # type: (Envelope) -> bytes
    """The header frame built directly, or None when a field needs the general path.

    Keys are written in sorted order with the encoder's own escaping, so the
    bytes equal ``dumps(check_header(header))``; every check_header rule that
    this shortcut could break sends the envelope down the general path.
    """
    kind, rid, method, deadline = env.kind, env.id, env.method, env.deadline
    if type(kind) is not text_type or kind not in KINDS or type(rid) is not text_type \
            or not rid:
        return None
    if method is None:
        if kind == u"call":
            return None
    elif type(method) is not text_type or (kind == u"call" and not method):
        return None
    parts = []
    if deadline is not None:
        if type(deadline) not in integer_types:
            return None
        parts.append(u'"deadline":%d' % deadline)
    for name, value in ((u"error", env.error), (u"http", env.http)):
        if value is not None:
            if type(value) is not dict or not _plain(value, 1):
                return None
            # Text, not bytes: the whole header is encoded (and checked) once, below.
            parts.append(u'"%s":' % (name,) + _plain_text(value))
    parts.append(u'"id":' + _ENCODE_STRING(rid))
    if env.idem:
        parts.append(u'"idem":true')
    parts.append(u'"kind":' + _ENCODE_STRING(kind))
    if method is not None:
        parts.append(u'"method":' + _ENCODE_STRING(method))
    if env.more:
        parts.append(u'"more":true')
    if env.rid is not None:
        if type(env.rid) is not text_type:
            return None
        parts.append(u'"rid":' + _ENCODE_STRING(env.rid))
    if env.shadow:
        parts.append(u'"shadow":true')
    if env.sticky is not None:
        if type(env.sticky) is not text_type:
            return None
        parts.append(u'"sticky":' + _ENCODE_STRING(env.sticky))
    for field, text in ((u"traceparent", env.traceparent), (u"tracestate", env.tracestate)):
        if text is not None:
            if type(text) is not text_type:
                return None
            parts.append(u'"%s":' % (field,) + _ENCODE_STRING(text))
    parts.append(u'"v":%d' % VERSION)
    return _utf8(u"{" + u",".join(parts) + u"}")


def encode(env, schema=None):
    # type: (Envelope, dict) -> list
    """Encode an envelope into its body frames: header, payload, byte frames."""
    head = _fast_header(env)
    if head is not None:
        value = env.payload
        if schema is None and type(value) in _RAW:
            # An HTTP body: what pack() makes of it, without packing a dict to JSON.
            return [head, _FIRST_FRAME, bytes(value)]  # type: ignore[call-overload]
        if schema is None and (type(value) in _SCALARS or _plain(value, 0)):
            return [head, _dumps_plain(value)]
        payload, frames = pack(value, schema)
        return [head, payload] + frames
    raw = []  # type: list
    header = check_header(_pack(env.header(), _NO_SCHEMA, _NO_SCHEMA, u"header", raw, 0))
    if raw:
        raise EnvelopeError(u"header: bytes are not allowed in the header")
    payload, frames = pack(env.payload, schema)
    return [dumps(header), payload] + frames

# --------------------------------------------------------------- decoding --
def header_id(frame):
    # type: (object) -> str
    """The id an error answering this request header frame carries, or None (SPEC 3.4).

    Read as any plain JSON parser reads it, before every other header rule, so
    that a broker and a worker answer one malformed request with the same id:
    the frame must be UTF-8 JSON whose top level is an object with an ``id``
    member holding non-empty text without lone surrogates (the last one when
    ``id`` is repeated). None means "answer with a fresh id".
    """
    if not isinstance(frame, binary_type):
        return None
    try:
        if PY2 and _ENCODED_SURROGATE.search(frame):
            return None
        header = json.loads(frame.decode("utf-8"))
    except (ValueError, RuntimeError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(header, dict):
        return None
    rid = header.get(u"id")
    if not isinstance(rid, text_type) or not rid or _LONE_SURROGATE.search(rid):
        return None
    return rid


_HEADER_TYPES = {
    u"id": (text_type,), u"method": (text_type,), u"rid": (text_type,),
    u"deadline": integer_types, u"shadow": (bool,), u"idem": (bool,),
    u"more": (bool,), u"error": (dict,), u"http": (dict,), u"kind": (text_type,),
    u"traceparent": (text_type,), u"tracestate": (text_type,), u"sticky": (text_type,),
}


def decode_header(data):
    # type: (bytes) -> dict
    """Parse and check a header frame; unknown fields are ignored (SPEC 3.2)."""
    return check_header(loads(data, None, u"header"))


def check_header(header):
    # type: (object) -> dict
    """Check a parsed header's version, required fields and field types."""
    if not isinstance(header, dict):
        raise EnvelopeError(u"header: must be a JSON object")
    version = header.get(u"v")
    if type(version) not in integer_types or version != VERSION:  # not True, not 1.0
        raise EnvelopeError(u"header.v: unsupported version %r (this side speaks %d)"
                            % (version, VERSION))
    for name in (u"kind", u"id"):
        if header.get(name) is None:
            raise EnvelopeError(u"header.%s: missing" % (name,))
    for name, value in header.items():
        types = _HEADER_TYPES.get(name)
        if types is None or value is None:
            continue
        if not isinstance(value, types) or (types is integer_types and isinstance(value, bool)):
            raise EnvelopeError(u"header.%s: wrong type %s" % (name, type(value).__name__))
    if not header[u"id"]:
        raise EnvelopeError(u"header.id: must not be empty")
    if header[u"kind"] not in KINDS:
        raise EnvelopeError(u"header.kind: unknown kind %r" % (header[u"kind"],))
    if header[u"kind"] == u"call" and not header.get(u"method"):
        raise EnvelopeError(u"header.method: a call needs a method")
    return header


def decode(frames, max_frame=MAX_FRAME, header=None):
    # type: (list, int, dict) -> Envelope
    """Decode body frames (header, payload, byte frames) into an :class:`Envelope`.

    ``header`` is the result of :func:`decode_header` on ``frames[0]`` when
    the caller already has it (a router that read it to route the message).
    """
    if not isinstance(frames, (list, tuple)):
        raise EnvelopeError(u"frames: expected a list of frames")
    if len(frames) < 2:
        raise EnvelopeError(u"frames: need a header and a payload frame, got %d" % len(frames))
    if len(frames) > MAX_FRAMES:
        raise EnvelopeError(u"frames: %d frames exceed the limit of %d" % (len(frames), MAX_FRAMES))
    for i, frame in enumerate(frames):
        if not isinstance(frame, binary_type):
            raise EnvelopeError(u"frames[%d]: not bytes" % (i,))
        if len(frame) > max_frame:
            raise EnvelopeError(u"frames[%d]: %d bytes exceed the limit of %d"
                                % (i, len(frame), max_frame))
    if header is None:
        header = decode_header(frames[0])
    payload = loads(frames[1], frames[2:])
    return Envelope(
        header[u"kind"], id=header[u"id"], method=header.get(u"method"),
        deadline=header.get(u"deadline"), rid=header.get(u"rid"),
        shadow=bool(header.get(u"shadow")), idem=bool(header.get(u"idem")),
        more=bool(header.get(u"more")), error=header.get(u"error"),
        http=header.get(u"http"), payload=payload,
        traceparent=header.get(u"traceparent"), tracestate=header.get(u"tracestate"),
        sticky=header.get(u"sticky"))
