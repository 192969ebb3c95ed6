"""Payload typing, encoding side (SPEC section 4): Python values -> canonical JSON + raw frames.

::

    from protocol.payload import Bytes, pack, to_json
    data, frames = pack({u"img": Bytes(b"\x89PNG")})   # b'{"img":{"$b":0}}', [b"\x89PNG"]
    to_json({u"img": Bytes(b"ab")})                     # {u"img": {u"$bytes": u"YWI="}}

Every bytes value becomes ``{"$b": n}``, a reference to the n-th raw frame
after the payload frame, or ``{"$bytes": base64}`` in the JSON-only view.
Object keys starting with ``$`` are escaped by doubling it. Text and bytes
are never guessed (see :mod:`protocol.codec`); a schema may declare a field
text or bytes (``contentEncoding: base64``). The decoding side is
:mod:`protocol.unpack`; :mod:`protocol.codec` re-exports both.
"""
from __future__ import absolute_import, division, print_function

import base64
import json
import math
import re

from protocol._compat import PY2, binary_type, integer_types, is_ascii, text_type
from protocol.errors import EnvelopeError

MAX_DEPTH = 128

_ENCODED_SURROGATE = re.compile(b"\xed[\xa0-\xbf]")  # U+D800..U+DFFF written as UTF-8


class Bytes(binary_type):
    """Explicitly bytes. On Python 2 this is how a ``str`` says "not text"."""

    __slots__ = ()


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
