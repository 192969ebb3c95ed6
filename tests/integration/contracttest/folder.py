"""A team's own folder, outside the repo: a py2 RPC table, its py3 port and their contract.

The port is faithful except for one thing the interpreter changed under it:
``str.upper()`` on Python 3 applies the full Unicode case mapping (``"ß"`` becomes
``"SS"``, ``"ﬁ"`` becomes ``"FI"``), where Python 2's ``unicode.upper()`` kept one
character per character. :data:`FIXED_PORT` is the port with that fixed::

    root = make_folder(tmpdir)      # legacy/textsvc.py, port/textsvc.py, contracts/textsvc.json,
                                    # requirements-py2.txt (six), requirements-py3.txt (attrs)
"""

import json
import os

LEGACY = '''\
# The original, Python 2.7 only; six is its own dependency (requirements-py2.txt).
from __future__ import division

import six


def upper(text):
    return text.upper()


def words(text):
    return sorted(set(six.text_type(text).split()))


def checksum(data):
    total = 0
    for ch in data:
        total = (total * 31 + ord(ch)) % 65521
    return {u"size": len(data), u"sum": total}


def mean(values):
    if not values:
        return None
    return sum(values) / len(values)


NOTES = []


def note(text):
    NOTES.append(text)
    return len(NOTES)


TABLE = {u"upper": upper, u"words": words, u"checksum": checksum, u"mean": mean,
         u"note": note}
'''

PORT = '''\
"""The Python 3 port of legacy/textsvc.py; attrs is its own dependency (requirements-py3.txt)."""

import attrs


@attrs.frozen
class Sum:
    size: int
    sum: int


def upper(text: str) -> str:
    return text.upper()


def words(text: str) -> list[str]:
    return sorted(set(text.split()))


def checksum(data: bytes) -> dict[str, int]:
    total = 0
    for byte in data:
        total = (total * 31 + byte) % 65521
    return attrs.asdict(Sum(len(data), total))


def mean(values: list[int]) -> float | None:
    if not values:
        return None
    return sum(values) / len(values)


NOTES: list[str] = []


def note(text: str) -> int:
    NOTES.append(text)
    return len(NOTES)


TABLE = {"upper": upper, "words": words, "checksum": checksum, "mean": mean, "note": note}
'''

# One character at a time, as Python 2 did: the port now answers like the original.
FIXED_PORT = PORT.replace(
    "    return text.upper()\n",
    "    return \"\".join(c.upper() if len(c.upper()) == 1 else c for c in text)\n")

CONTRACT = {
    "service": "textsvc",
    "version": 1,
    "description": "Text utilities of the legacy app.",
    "methods": {
        "upper": {
            "idempotent": True,
            "params": {"type": "object", "properties": {"text": {"type": "string"}},
                       "required": ["text"], "additionalProperties": False},
            "result": {"type": "string"},
            "examples": [{"name": "ascii", "params": {"text": "hello"}, "result": "HELLO"},
                         {"name": "accents", "params": {"text": "caf\u00e9"},
                          "result": "CAF\u00c9"}],
        },
        "words": {
            "idempotent": True,
            "params": {"type": "object", "properties": {"text": {"type": "string"}},
                       "required": ["text"], "additionalProperties": False},
            "result": {"type": "array", "items": {"type": "string"}},
            "examples": [{"params": {"text": "b a b"}, "result": ["a", "b"]}],
        },
        "checksum": {
            "idempotent": True,
            "params": {"type": "object",
                       "properties": {"data": {"type": "string", "contentEncoding": "base64"}},
                       "required": ["data"], "additionalProperties": False},
            "result": {"type": "object",
                       "properties": {"size": {"type": "integer"}, "sum": {"type": "integer"}},
                       "required": ["size", "sum"], "additionalProperties": False},
            "examples": [{"name": "three-bytes", "params": {"data": {"$bytes": "AAEC"}},
                          "result": {"size": 3, "sum": 33}}],
        },
        "mean": {
            "idempotent": True,
            "params": {"type": "object",
                       "properties": {"values": {"type": "array", "maxItems": 5,
                                                 "items": {"type": "integer", "minimum": 0,
                                                           "maximum": 100}}},
                       "required": ["values"], "additionalProperties": False},
            "result": {"type": ["number", "null"]},
            "examples": [{"name": "halves", "params": {"values": [1, 2]}, "result": 1.5},
                         {"name": "empty", "params": {"values": []}, "result": None}],
        },
        "note": {
            "description": "Keeps a note: a write, so never called with made-up params "
                           "on a running estate.",
            "params": {"type": "object", "properties": {"text": {"type": "string"}},
                       "required": ["text"], "additionalProperties": False},
            "result": {"type": "integer", "minimum": 1},
            "examples": [{"name": "first", "params": {"text": "hello"}}],
        },
    },
}


def write(path, text):
    # type: (str, str) -> None
    """Write ``text`` to ``path``, making its directory."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def make_folder(root):
    # type: (str) -> str
    """The team's folder under ``root``; returns its path."""
    folder = os.path.join(root, "textshop")
    write(os.path.join(folder, "legacy", "__init__.py"), "")
    write(os.path.join(folder, "legacy", "textsvc.py"), LEGACY)
    write(os.path.join(folder, "port", "__init__.py"), "")
    write(os.path.join(folder, "port", "textsvc.py"), PORT)
    write(os.path.join(folder, "contracts", "textsvc.json"),
          json.dumps(CONTRACT, indent=1, ensure_ascii=False))
    write(os.path.join(folder, "requirements-py2.txt"), "six==1.17.0\n")
    write(os.path.join(folder, "requirements-py3.txt"), "attrs\n")
    return folder
