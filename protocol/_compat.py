"""Python 2.7 / 3.x differences, in one place and nowhere else.

The rest of ``protocol`` imports from here instead of testing versions::

    from protocol._compat import PY2, text_type, to_bytes, to_text

``to_bytes`` and ``to_text`` never guess: a Python 2 ``str`` holding
non-ASCII bytes is ambiguous (is it UTF-8 text or raw bytes?), so asking
for text from it raises ``TypeError`` instead of decoding with a guess.
"""
from __future__ import absolute_import, division, print_function

import sys

PY2 = sys.version_info[0] == 2

if sys.version_info[0] == 2:  # pragma: no cover - the py27 tox leg runs this
    text_type = unicode  # noqa: F821
    binary_type = str
    integer_types = (int, long)  # noqa: F821
    string_types = (str, unicode)  # noqa: F821
    import Queue as queue  # noqa: N813
else:
    text_type = str
    binary_type = bytes
    integer_types = (int,)
    string_types = (str,)
    import queue  # noqa: F401


def is_ascii(data):
    # type: (bytes) -> bool
    """True when every byte of ``data`` is below 0x80."""
    try:
        data.decode("ascii")
    except UnicodeDecodeError:
        return False
    return True


def to_bytes(value, where="value"):
    # type: (object, str) -> bytes
    """Return ``value`` as bytes: bytes pass through, text is UTF-8 encoded."""
    if isinstance(value, binary_type):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, text_type):
        return value.encode("utf-8")
    raise TypeError("%s: expected bytes or text, got %s" % (where, type(value).__name__))


def to_text(value, where="value"):
    # type: (object, str) -> str
    """Return ``value`` as text.

    Text passes through. On Python 2 an ASCII-only ``str`` is accepted as
    text; any other ``str`` is ambiguous and raises ``TypeError`` naming
    ``where``. On Python 3 ``bytes`` is never text.
    """
    if isinstance(value, text_type):
        return value
    if PY2 and isinstance(value, binary_type):
        if is_ascii(value):
            return value.decode("ascii")
        raise TypeError(
            "%s: non-ASCII str is ambiguous on Python 2; pass unicode for text "
            "or declare the field as bytes" % where
        )
    raise TypeError("%s: expected text, got %s" % (where, type(value).__name__))
