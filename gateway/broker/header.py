"""What the broker reads from a request's header frame (SPEC 2.6, 2.11).

::

    fields = request_fields(frame)      # None for a raw MDP body
    if fields is not None:
        rid, deadline, idem, kind = fields

One ``json.loads`` and type checks on the four fields the broker routes by,
without the full header validation the codec does: ``id`` (non-empty text),
``deadline`` (an integer, not a boolean; ``None`` otherwise), ``idem``
(exactly ``true``) and ``kind`` (text, or ``None``). The compiled broker's
scanner (``native/header.c``) implements the same rules.
"""

from __future__ import annotations

import json

Fields = tuple[str, int | None, bool, str | None]


def request_fields(frame: bytes) -> Fields | None:
    """(id, deadline, idem, kind) from a request header, or None when it is not one of ours."""
    if not frame or frame[:1] != b"{":
        return None
    try:
        header = json.loads(frame.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RuntimeError):  # RuntimeError: nested too deeply
        return None
    if not isinstance(header, dict):
        return None
    rid = header.get("id")
    if not isinstance(rid, str) or not rid:
        return None
    deadline = header.get("deadline")
    if not isinstance(deadline, int) or isinstance(deadline, bool):
        deadline = None
    kind = header.get("kind")
    return rid, deadline, header.get("idem") is True, kind if isinstance(kind, str) else None
