"""Payload typing, decoding side (SPEC sections 3.2 and 4): one JSON frame -> Python values.

::

    from protocol.unpack import loads
    loads(b'{"img":{"$b":0}}', [b"\x89PNG"])   # {u"img": Bytes(b"\x89PNG")}

``$b`` references resolve against the raw frames after the payload frame,
``$bytes`` is the inline base64 form, ``$$`` keys are unescaped, and anything
JSON allows but the spec does not (duplicate keys, NaN, lone surrogates,
unknown ``$`` tags) is an :class:`~protocol.errors.EnvelopeError` naming
the field. The encoding side is :mod:`protocol.payload`.
"""
from __future__ import absolute_import, division, print_function

import base64
import binascii
import json
import math
import re

from protocol._compat import PY2, binary_type, integer_types, text_type
from protocol.errors import EnvelopeError
from protocol.payload import _ENCODED_SURROGATE, _FIRST_FRAME, Bytes, dumps

MYPY = False  # mypy treats this name as True; 2.7 never imports typing here
if MYPY:  # pragma: no cover
    from typing import Callable, Sequence  # noqa: F401

_SURROGATE_ESCAPE = re.compile(br"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile(u"[\ud800-\udfff]")


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


def from_json(obj):
    # type: (object) -> object
    """Inverse of :func:`to_json` for an already-parsed JSON value."""
    return loads(dumps(obj))
