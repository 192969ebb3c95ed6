"""The error envelope a worker answers with when a handler fails (2.7 and 3.x; SPEC 3.4).

::

    from protocol.replies import error_envelope

    error_envelope(request_id, exc)   # -> Envelope(kind="error", id=request_id, error=...)

A :class:`~protocol.errors.ProtocolError` keeps its code; anything else is
``remote`` with its type, message and traceback text. The worker answers
calls with it and :mod:`protocol.streaming` ends a failing stream with it,
so it sits below both.
"""
from __future__ import absolute_import, division, print_function

import traceback

from protocol import codec
from protocol._compat import text_type
from protocol.errors import ProtocolError, RemoteError


def _text(exc):
    # type: (BaseException) -> str
    try:
        return text_type(exc)
    except UnicodeError:  # a py2 exception holding non-ASCII bytes
        return text_type(repr(exc))


def _traceback_text():
    # type: () -> str
    text = traceback.format_exc()
    if isinstance(text, bytes):
        return text.decode("utf-8", "replace")
    return text


def error_envelope(request_id, exc):
    # type: (str, BaseException) -> codec.Envelope
    """The error envelope describing ``exc``, as the answer to ``request_id``."""
    if isinstance(exc, ProtocolError):
        wire = exc.to_wire()
    else:
        wire = RemoteError(_text(exc), type=text_type(type(exc).__name__),
                           traceback=_traceback_text()).to_wire()
    return codec.Envelope(u"error", id=request_id, error=wire)
