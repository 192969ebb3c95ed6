"""Interpreter-aware differences between two decoded values, and the noise vocabulary.

The core of :mod:`gateway.migration.compare` (which adds HTTP answers on top
and re-exports these names): two JSON or protocol values are walked side by
side, and only what a port changed is reported, not what the interpreter
change alone produces (JSON key order, ``1.0`` vs ``1``, ``1e-05`` vs
``1e-5``, ``u"x"`` vs ``b"x"``). Pure functions: no I/O, no threads, no
clocks::

    compare_values({"a": 1.0}, {"a": 1}, Rules())        # [] : the same answer
    normalise_path("body/items/3/ts")                    # "body/items/*/ts"
    is_noise(["body/items/7/ts"], {"body/items/*/ts"})   # True: learned noise explains it

Paths name where two values differ: the root (``body``, ``result``,
``error``) followed by an RFC 6901 JSON pointer. Hostile input is bounded:
nesting deeper than :data:`MAX_DEPTH` is compared as a whole, and at most
:data:`MAX_DIFFERENCES` differences are listed.
"""

from __future__ import annotations

import base64
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ConfigError
from protocol.codec import decode_base64
from protocol.errors import EnvelopeError

MAX_DEPTH = 64
MAX_DIFFERENCES = 100
RENDER_CAP = 200
# Interpreters print the same double differently ("1e-05" vs "1e-5", "1.0" vs "1"), which
# parses back to (nearly) the same value; a few ulps absorb that. A looser tolerance would
# hide real changes: at 1e-9 two epoch timestamps a millisecond apart compare equal.
FLOAT_REL_TOL = 4 * sys.float_info.epsilon


# Headers that differ between two correct answers: per-request values (date,
# x-request-id), the runtime's name (server, x-powered-by, via) and per-connection
# framing (RFC 9110 7.6.1 hop-by-hop, and content-length, which changes with chunking
# or compression but not meaning). ETag and Last-Modified are kept on purpose:
# clients cache and revalidate with them, so a port that changes them changes
# behaviour; when a service derives them from something volatile, noise learning
# on two primary answers finds that out.
DEFAULT_IGNORED_HEADERS = frozenset({
    "date", "server", "x-request-id", "via", "content-length", "connection", "keep-alive",
    "transfer-encoding", "x-powered-by",
})

_DIGITS = re.compile(r"[0-9]+")



@dataclass(frozen=True)
class Rules:
    """What to ignore and how close two floats must be; validated on construction."""

    ignore_headers: frozenset[str] = DEFAULT_IGNORED_HEADERS
    ignore_pointers: tuple[str, ...] = ()
    float_rel_tol: float = 1e-9
    max_body: int = 1 << 20
    _patterns: dict[int, list[tuple[str, ...]]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        for pointer in self.ignore_pointers:
            if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
                raise ConfigError(f"ignore pointer {pointer!r} must be '' or start with '/'")
        if not (0.0 <= self.float_rel_tol < 1.0) or self.max_body < 0:
            raise ConfigError("float_rel_tol must be in [0, 1) and max_body >= 0")
        lowered = frozenset(name.lower() for name in self.ignore_headers)
        object.__setattr__(self, "ignore_headers", lowered)
        object.__setattr__(self, "ignore_pointers", tuple(self.ignore_pointers))
        for pointer in self.ignore_pointers:  # indexed by length: most nodes match none
            pattern = tuple(_unescape(s) for s in pointer.split("/")[1:])
            self._patterns.setdefault(len(pattern), []).append(pattern)

    def ignores(self, segments: tuple[str, ...]) -> bool:
        """True when an ignore pointer matches exactly these segments under the root."""
        for pattern in self._patterns.get(len(segments), ()):
            if all(p == "*" or p == s for p, s in zip(pattern, segments, strict=True)):
                return True
        return False


@dataclass(frozen=True)
class Difference:
    """One place where the two answers differ; left and right are capped renderings."""

    path: str
    kind: str
    left: Any
    right: Any

    def to_json(self) -> dict[str, Any]:
        """The JSON-safe form stored with a comparison."""
        return {"path": self.path, "kind": self.kind, "left": self.left, "right": self.right}


class _Full(Exception):
    """Raised inside a walk once the difference cap is reached."""


class _Collector:
    """Collects differences up to the cap, then ends the walk with one marker."""

    def __init__(self) -> None:
        self.items: list[Difference] = []

    def add(self, path: str, kind: str, left: Any, right: Any) -> None:
        if len(self.items) >= MAX_DIFFERENCES:
            self.items.append(Difference("...", "truncated", None, None))
            raise _Full
        self.items.append(Difference(path, kind, render(left), render(right)))


# --- rendering -------------------------------------------------------------------------


def render(value: Any) -> Any:
    """A JSON-safe rendering of any value, at most about RENDER_CAP characters long."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= 600 else f"<int of {value.bit_length()} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else json.dumps(value)
    if isinstance(value, str):
        return _storable(value if len(value) <= RENDER_CAP else value[:RENDER_CAP] + "…")
    out = _Writer()
    try:
        _compact(value, out)
    except _Full:
        return _storable("".join(out.parts)[:RENDER_CAP] + "…")
    return json.loads(_storable("".join(out.parts)))


def _storable(text: str) -> str:
    """Lone surrogates (JSON "\\ud800", surrogateescape) become "?": stores need UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


class _Writer:
    """Accumulates compact JSON text and stops once it passes RENDER_CAP characters."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > RENDER_CAP:
            raise _Full


def _compact(value: Any, out: _Writer) -> None:
    """Writes compact JSON for any value; each level writes a bracket, so depth is bounded."""
    if isinstance(value, bytes | bytearray | memoryview):
        value = {"$bytes": base64.b64encode(bytes(value[:RENDER_CAP])).decode("ascii")}
    if isinstance(value, Mapping):
        out.write("{")
        for i, (key, item) in enumerate(value.items()):
            out.write((", " if i else "") + json.dumps(str(key), ensure_ascii=False) + ": ")
            _compact(item, out)
        out.write("}")
    elif isinstance(value, list | tuple):
        out.write("[")
        for i, item in enumerate(value):
            out.write(", " if i else "")
            _compact(item, out)
        out.write("]")
    else:
        plain = value is None or isinstance(value, bool | int | float | str)
        out.write(json.dumps(render(value) if plain else repr(value)[:RENDER_CAP],
                             ensure_ascii=False))


# --- values ----------------------------------------------------------------------------


def compare_values(left: Any, right: Any, rules: Rules, root: str = "result") -> list[Difference]:
    """Differences between two decoded values (JSON or protocol payloads), under root."""
    out = _Collector()
    try:
        _walk(left, right, root, (), rules, out)
    except _Full:
        pass
    return out.items


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _unwrap(value: Any) -> Any:
    """The codec's inline ``{"$bytes": base64}`` form is bytes; anything else is itself."""
    if type(value) in _KINDS and type(value) is not dict:
        return value
    if isinstance(value, Mapping) and len(value) == 1 and "$bytes" in value:
        try:
            return decode_base64(value["$bytes"])
        except EnvelopeError:
            return value
    return value


# Exact types first (the common case, and fast); subclasses go through _kind.
_KINDS = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "text",
          bytes: "text", dict: "object", list: "array", tuple: "array"}
_SCALARS = frozenset({type(None), bool, int, float, str, bytes})
_NUMBERS = frozenset({int, float})
_ABSENT = object()


def _same_scalar(left: Any, right: Any) -> bool:
    """The walk's fast path: equal values of one exact scalar type need no further look."""
    tl, tr = type(left), type(right)
    if tl is tr or (tl in _NUMBERS and tr in _NUMBERS):  # 1 == 1.0 exactly is also close
        return tl in _SCALARS and bool(left == right)
    return False


def _kind(value: Any) -> str:
    # bool before int: True is an int in Python but not a number in JSON, and
    # py2 and py3 both keep them apart on the wire.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str | bytes | bytearray | memoryview):
        return "text"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return "other"


def _plain_equal(left: Any, right: Any) -> bool:
    try:
        return bool(left == right)
    except (RecursionError, TypeError, ValueError):
        return False


def _text_equal(left: Any, right: Any) -> bool:
    """str and bytes are equal when the bytes are the UTF-8 encoding of the str."""
    if isinstance(left, str) == isinstance(right, str):
        return bool(bytes(left) == bytes(right) if not isinstance(left, str) else left == right)
    text, raw = (left, right) if isinstance(left, str) else (right, left)
    try:
        return bool(bytes(raw).decode("utf-8") == text)
    except UnicodeDecodeError:
        return False


def _numbers_equal(left: int | float, right: int | float, rel_tol: float) -> bool:
    if isinstance(left, int) and isinstance(right, int):
        return left == right  # exact: ids and timestamps must not pass as "close"
    try:
        a, b = float(left), float(right)
    except OverflowError:
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel_tol)


def _walk(left: Any, right: Any, path: str, segs: tuple[str, ...], rules: Rules,
          out: _Collector) -> None:
    if _same_scalar(left, right) or rules.ignores(segs):
        return
    left, right = _unwrap(left), _unwrap(right)
    kl, kr = _KINDS.get(type(left)) or _kind(left), _KINDS.get(type(right)) or _kind(right)
    if kl != kr:
        out.add(path, "type", left, right)
    elif len(segs) >= MAX_DEPTH and kl in ("object", "array"):
        # Deeper than this is hostile or generated; one verdict for the whole subtree.
        if not _plain_equal(left, right):
            out.add(path, "changed", left, right)
    elif kl == "object":
        keys = sorted(set(left) | set(right), key=str)
        for key in keys:
            a, b = left.get(key, _ABSENT), right.get(key, _ABSENT)
            if _same_scalar(a, b):
                continue
            sub, where = (*segs, str(key)), path + "/" + _escape(str(key))
            if b is _ABSENT:
                if not rules.ignores(sub):
                    out.add(where, "missing", a, None)
            elif a is _ABSENT:
                if not rules.ignores(sub):
                    out.add(where, "added", None, b)
            else:
                _walk(a, b, where, sub, rules, out)
    elif kl == "array":
        for i, (a, b) in enumerate(zip(left, right, strict=False)):
            if not _same_scalar(a, b):
                _walk(a, b, f"{path}/{i}", (*segs, str(i)), rules, out)
        if len(left) != len(right):
            out.add(path, "length", len(left), len(right))
    elif kl == "number":
        if not _numbers_equal(left, right, rules.float_rel_tol):
            out.add(path, "changed", left, right)
    elif kl == "text":
        if not _text_equal(left, right):
            out.add(path, "changed", left, right)
    elif not _plain_equal(left, right):
        out.add(path, "changed", left, right)


# --- noise -----------------------------------------------------------------------------


def normalise_path(path: str) -> str:
    """Every all-digit segment becomes ``*``: noise on items/3/ts also covers items/7/ts."""
    return "/".join("*" if _DIGITS.fullmatch(s) else s for s in path.split("/"))


def is_noise(differences: Sequence[Difference] | Sequence[str],
             noisy_paths: AbstractSet[str]) -> bool:
    """True when every difference is at a path learned as noise (noisy holds normalised paths).

    No differences is "same", not noise. The cap marker ``...`` is never noise: the
    differences it stands for were not looked at.
    """
    if not differences:
        return False
    for item in differences:
        path = item.path if isinstance(item, Difference) else item
        if path == "..." or normalise_path(path) not in noisy_paths:
            return False
    return True
