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

import base64
import binascii
import json
import math
import os
import re

from protocol._compat import PY2, binary_type, integer_types, is_ascii, text_type
from protocol.errors import EnvelopeError

MYPY = False  # mypy treats this name as True; 2.7 never imports typing here
if MYPY:  # pragma: no cover
    from typing import Callable, Sequence  # noqa: F401

VERSION = 1
KINDS = (u"call", u"result", u"error", u"http", u"http-response", u"http-body", u"event",
         u"cancel")
MAX_DEPTH = 128
MAX_FRAME = 64 * 1024 * 1024
MAX_FRAMES = 4096

_SURROGATE_ESCAPE = re.compile(br"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile(u"[\ud800-\udfff]")
_ENCODED_SURROGATE = re.compile(b"\xed[\xa0-\xbf]")  # U+D800..U+DFFF written as UTF-8


class Bytes(binary_type):
    """Explicitly bytes. On Python 2 this is how a ``str`` says "not text"."""

    __slots__ = ()


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


# --------------------------------------------------------------- encoding --

_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                            allow_nan=False)


_ENCODE_STRING = json.encoder.encode_basestring  # what _ENCODER uses (ensure_ascii=False)


def _utf8(text):
    # type: (str) -> bytes
    """Encode JSON text as UTF-8, refusing lone surrogates on both interpreters."""
    try:
        out = text.encode("utf-8") if isinstance(text, text_type) else text
    except UnicodeEncodeError:
        raise EnvelopeError(u"text holds a lone surrogate")
    # 2.7's UTF-8 codec writes lone surrogates as CESU-8 instead of failing.
    if PY2 and _ENCODED_SURROGATE.search(out):
        raise EnvelopeError(u"text holds a lone surrogate")
    return out


def dumps(obj):
    # type: (object) -> bytes
    """Canonical JSON bytes of an already-packed value (sorted keys, compact, UTF-8)."""
    try:
        text = _ENCODER.encode(obj)
    except (TypeError, ValueError) as exc:
        raise EnvelopeError(u"cannot encode as JSON: %s" % (exc,))
    return _utf8(text)


def _path(where):
    # type: (object) -> str
    """Render a lazily built field path: ("payload", "user", 3) -> payload.user[3]."""
    parts = []  # type: list
    while isinstance(where, tuple):
        where, key = where
        parts.append(u"[%d]" % key if isinstance(key, int) else u".%s" % (key,))
    parts.append(where)
    return u"".join(reversed(parts))


def _kind(schema, root):
    # type: (dict, dict) -> tuple
    """Resolve local ``$ref``s and return (schema, "text"|"bytes"|None)."""
    seen = 0
    while isinstance(schema, dict) and u"$ref" in schema:
        ref = schema[u"$ref"]
        if not ref.startswith(u"#/") or seen > 32:
            raise EnvelopeError(u"unsupported $ref %r" % (ref,))
        node = root
        for part in ref[2:].split(u"/"):
            node = node[part]
        schema = node
        seen += 1
    if not isinstance(schema, dict):
        return {}, None
    if schema.get(u"type") == u"string":
        if schema.get(u"contentEncoding") == u"base64":
            return schema, u"bytes"
        return schema, u"text"
    return schema, None


_PLAIN = (text_type, bool, type(None)) + integer_types
_NO_SCHEMA = {}  # type: dict


def _pack(value, schema, root, where, frames, depth):
    # type: (object, dict, dict, object, list, int) -> object
    # The common case first: text, numbers and None with no schema need no work.
    vtype = type(value)
    if vtype in _PLAIN and not schema:
        return value
    kind = None
    if schema:
        schema, kind = _kind(schema, root)
    if kind == u"bytes":
        if isinstance(value, (binary_type, bytearray)):
            frames.append(bytes(value))
            return {u"$b": len(frames) - 1}
        raise EnvelopeError(u"%s: declared bytes, got %s" % (_path(where), vtype.__name__))
    if kind == u"text" and not isinstance(value, (text_type, binary_type)):
        raise EnvelopeError(u"%s: declared text, got %s" % (_path(where), vtype.__name__))
    if vtype in _PLAIN:
        return value
    if isinstance(value, (Bytes, bytearray)) or (not PY2 and isinstance(value, binary_type)):
        if kind == u"text":
            raise EnvelopeError(u"%s: declared text, got bytes" % (_path(where),))
        frames.append(bytes(value))
        return {u"$b": len(frames) - 1}
    if isinstance(value, binary_type):  # a Python 2 str
        if is_ascii(value):
            return value.decode("ascii")
        raise EnvelopeError(
            u"%s: non-ASCII str is ambiguous on Python 2; use unicode for text, "
            u"protocol.Bytes for bytes, or declare the field in the contract" % (_path(where),))
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise EnvelopeError(u"%s: NaN and infinities have no JSON form" % (_path(where),))
        return value
    if isinstance(value, (text_type, bool) + integer_types):  # subclasses
        return value
    if not isinstance(value, (dict, list, tuple)):
        raise EnvelopeError(u"%s: cannot encode %s" % (_path(where), vtype.__name__))
    # Only lists and objects are levels (SPEC 4.8): a bytes value is a leaf, so the
    # 128 lists plus a bytes value that a decoder accepts encode again.
    if depth >= MAX_DEPTH:
        raise EnvelopeError(u"%s: nested deeper than %d levels" % (_path(where), MAX_DEPTH))
    if isinstance(value, dict):
        return _pack_dict(value, schema, root, where, frames, depth)
    items = schema.get(u"items", _NO_SCHEMA) if schema else _NO_SCHEMA
    if isinstance(items, list):  # tuple form (SPEC 10.3): one schema per position
        extra = schema.get(u"additionalItems", _NO_SCHEMA)
        if not isinstance(extra, dict):
            extra = _NO_SCHEMA
        return [_pack(item, items[i] if i < len(items) else extra, root, (where, i), frames,
                      depth + 1) for i, item in enumerate(value)]
    return [_pack(item, items, root, (where, i), frames, depth + 1)
            for i, item in enumerate(value)]


def _pack_dict(value, schema, root, where, frames, depth):
    # type: (dict, dict, dict, object, list, int) -> dict
    props = schema.get(u"properties", _NO_SCHEMA) if schema else _NO_SCHEMA
    extra = schema.get(u"additionalProperties", _NO_SCHEMA) if schema else _NO_SCHEMA
    if not isinstance(extra, dict):
        extra = _NO_SCHEMA
    pairs = []
    for key, item in value.items():
        if type(key) is not text_type:
            if isinstance(key, binary_type) and not isinstance(key, Bytes) and is_ascii(key):
                key = key.decode("ascii")
            elif not isinstance(key, text_type):
                raise EnvelopeError(u"%s: object keys must be text, got %s" % (
                    _path(where), type(key).__name__))
        pairs.append((u"$" + key if key[:1] == u"$" else key, key, item))
    # Frames are numbered in the order the sorted JSON text names them, so the
    # output is canonical whatever the dict's iteration order (arbitrary on 2.7).
    pairs.sort(key=lambda pair: pair[0])
    out = {}
    for wire_key, key, item in pairs:
        out[wire_key] = _pack(item, props.get(key, extra), root, (where, key), frames, depth + 1)
    return out


def pack(value, schema=None, where=u"payload"):
    # type: (object, dict, str) -> tuple
    """Return (json_bytes, byte_frames) for a payload value."""
    frames = []  # type: list
    packed = _pack(value, schema or _NO_SCHEMA, schema or _NO_SCHEMA, where, frames, 0)
    return dumps(packed), frames


_SCALARS = frozenset((text_type, bool, type(None)) + integer_types)
_CONTAINERS = frozenset((dict, list, tuple))


def _plain(value, depth):
    # type: (object, int) -> bool
    """True when ``value`` needs no packing: its canonical JSON is its packed form's.

    That is text, exact ints and bools, finite floats, None, and lists, tuples
    and dicts of them with text keys not starting with ``$``, nested less than
    MAX_DEPTH deep. Anything else (bytes, a py2 ``str``, subclasses, a schema)
    takes :func:`_pack`, which also produces the typed error.
    """
    vtype = type(value)
    if vtype in _SCALARS:
        return True
    if vtype is float:
        return value - value == 0.0  # type: ignore[operator]  # false for NaN, infinities
    if vtype not in _CONTAINERS or depth >= MAX_DEPTH:
        return False
    if vtype is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not text_type or key[:1] == u"$":
                return False
            if type(item) not in _SCALARS and not _plain(item, depth + 1):
                return False
        return True
    for item in value:  # type: ignore[attr-defined]
        itype = type(item)
        if itype in _SCALARS:
            continue
        if itype is list and depth + 1 < MAX_DEPTH:
            # A list of scalars (an HTTP header pair) checked here, without a call per pair.
            for sub in item:
                if type(sub) not in _SCALARS and not _plain(sub, depth + 2):
                    return False
            continue
        if not _plain(item, depth + 1):
            return False
    return True


def _chunks(value, out):
    # type: (object, list) -> None
    """Append the canonical JSON of a :func:`_plain` value to ``out`` (2.7's encoder).

    2.7's json module drops to its pure-Python generator encoder whenever
    sort_keys is set; this writes the same text several times faster.
    """
    vtype = type(value)
    if vtype is text_type:
        out.append(_ENCODE_STRING(value))  # type: ignore[arg-type]
    elif value is None:
        out.append(u"null")
    elif value is True:
        out.append(u"true")
    elif value is False:
        out.append(u"false")
    elif vtype is float:
        out.append(repr(value))
    elif vtype is dict:
        if not value:
            out.append(u"{}")
            return
        sep = u"{"
        for key, item in sorted(value.items()):  # type: ignore[attr-defined]
            out.append(sep + _ENCODE_STRING(key) + u":")
            _chunks(item, out)
            sep = u","
        out.append(u"}")
    elif vtype is list or vtype is tuple:
        if not value:
            out.append(u"[]")
            return
        sep = u"["
        for item in value:  # type: ignore[attr-defined]
            out.append(sep)
            _chunks(item, out)
            sep = u","
        out.append(u"]")
    else:  # int, long
        out.append(str(value))


def _dumps_plain(value):
    # type: (object) -> bytes
    """:func:`dumps` of a value that passed :func:`_plain`."""
    return _utf8(_plain_text(value))


def _plain_text(value):
    # type: (object) -> str
    """The canonical JSON text (not yet UTF-8) of a value that passed :func:`_plain`."""
    if not PY2:
        try:
            return _ENCODER.encode(value)
        except (TypeError, ValueError) as exc:
            raise EnvelopeError(u"cannot encode as JSON: %s" % (exc,))
    out = []  # type: list
    _chunks(value, out)
    return u"".join(out)


_FIRST_FRAME = b'{"$b":0}'  # the payload frame of a value that is one raw frame
# Values that pack() always sends as one raw frame (a 2.7 str may be text instead).
_RAW = frozenset((Bytes, bytearray) if PY2 else (Bytes, binary_type, bytearray))


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

def _bad_constant(name):
    # type: (str) -> object
    raise EnvelopeError(u"payload: %s is not valid JSON" % (name,))


def _finite(text):
    # type: (str) -> float
    value = float(text)
    if math.isinf(value):
        raise EnvelopeError(u"payload: number %s overflows a double" % (text[:40],))
    return value


def _make_hook(frames):
    # type: (list) -> Callable[[list], object]
    def hook(pairs):
        # type: (list) -> object
        if len(pairs) == 1:
            key, value = pairs[0]
            if frames is None and key in (u"$b", u"$bytes"):
                raise EnvelopeError(u"payload: bytes are not allowed in the header")
            if key == u"$b":
                if not isinstance(value, integer_types) or isinstance(value, bool) \
                        or not 0 <= value < len(frames):
                    raise EnvelopeError(u"payload: $b reference %r has no frame" % (value,))
                return Bytes(frames[value])
            if key == u"$bytes":
                return decode_base64(value)
        out = {}
        for key, value in pairs:
            if key.startswith(u"$"):
                if not key.startswith(u"$$"):
                    raise EnvelopeError(u"payload: unknown tag %r" % (key,))
                key = key[1:]
            if key in out:
                raise EnvelopeError(u"payload: duplicate key %r" % (key,))
            out[key] = value
        return out
    return hook


class _Duplicate(ValueError):
    """A repeated object key seen by the shared decoder (re-decoded for the message)."""


def _unique_pairs(pairs):
    # type: (list) -> dict
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Duplicate()
    return out


_PLAIN_DECODER = json.JSONDecoder(object_pairs_hook=_unique_pairs,
                                  parse_constant=_bad_constant, parse_float=_finite)


def decode_base64(value):
    # type: (object) -> Bytes
    """Decode the inline ``$bytes`` form (standard alphabet, padded)."""
    if not isinstance(value, text_type):
        raise EnvelopeError(u"payload: $bytes must hold a base64 string")
    try:
        raw = value.encode("ascii")
        if len(raw) % 4:
            raise ValueError("bad padding")
        out = base64.b64decode(raw)
        if base64.b64encode(out) != raw:
            raise ValueError("non-canonical base64")
    except (ValueError, TypeError, UnicodeEncodeError, binascii.Error):
        raise EnvelopeError(u"payload: $bytes is not canonical base64")
    return Bytes(out)


def _check_text(value, where):
    # type: (object, str) -> None
    """Reject lone surrogates, which are not Unicode scalar values."""
    if isinstance(value, text_type):
        if _LONE_SURROGATE.search(value):
            raise EnvelopeError(u"%s: text holds a lone surrogate" % (where,))
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, where)
            _check_text(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_text(item, where)


def loads(data, frames=(), where=u"payload"):
    # type: (bytes, Sequence[bytes], str) -> object
    """Parse one JSON frame, resolving ``$b`` references against ``frames``.

    ``frames=None`` parses a frame that must not hold bytes (a header): a
    ``$b`` or ``$bytes`` tag in it is an error, while ``$$`` keys are unescaped
    as in a payload (SPEC 3.2, 4.4).
    """
    if data == _FIRST_FRAME and frames:
        # What every HTTP request and response body is: one raw frame (SPEC 6). The
        # general path below gives the same value, after a JSON parse with a fresh hook.
        return Bytes(frames[0])
    if not isinstance(data, binary_type):
        raise EnvelopeError(u"%s: frame must be bytes" % (where,))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(u"%s: not UTF-8 (%s)" % (where, exc.reason))
    if PY2 and _ENCODED_SURROGATE.search(data):  # 3.x's decoder already refuses these
        raise EnvelopeError(u"%s: not UTF-8 (encoded surrogate)" % (where,))
    # Without "$" nothing is a tag or an escaped key, and without "\\u" no key is
    # spelled with escapes: the shared decoder then only has to catch duplicate keys.
    simple = b"$" not in data and b"\\u" not in data
    try:
        try:
            if simple:
                return _PLAIN_DECODER.decode(text)
        except _Duplicate:
            pass  # decode again below, for the error that names the key
        value = json.loads(text, object_pairs_hook=_make_hook(
                               None if frames is None else list(frames)),
                           parse_constant=_bad_constant, parse_float=_finite)
    except EnvelopeError as exc:
        raise EnvelopeError(exc.message.replace(u"payload", where, 1))
    except ValueError as exc:
        raise EnvelopeError(u"%s: bad JSON (%s)" % (where, exc))
    except RuntimeError:  # RecursionError is a RuntimeError on 3.x too
        raise EnvelopeError(u"%s: JSON nested too deeply" % (where,))
    if _SURROGATE_ESCAPE.search(data):
        _check_text(value, where)
    return value


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


# -------------------------------------------------------------- JSON view --

def to_json(value, schema=None):
    # type: (object, dict) -> object
    """The JSON-only view of a value: bytes become ``{"$bytes": base64}``."""
    frames = []  # type: list
    packed = _pack(value, schema or _NO_SCHEMA, schema or _NO_SCHEMA, u"value", frames, 0)
    return _inline(packed, frames)


def _inline(value, frames):
    # type: (object, list) -> object
    if isinstance(value, dict):
        if len(value) == 1 and u"$b" in value:
            return {u"$bytes": base64.b64encode(frames[value[u"$b"]]).decode("ascii")}
        return dict((k, _inline(v, frames)) for k, v in value.items())
    if isinstance(value, list):
        return [_inline(v, frames) for v in value]
    return value


def from_json(obj):
    # type: (object) -> object
    """Inverse of :func:`to_json` for an already-parsed JSON value."""
    return loads(dumps(obj))
