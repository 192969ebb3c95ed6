"""Interpreter-aware comparison of two answers to the same request.

This module owns the question "did the Python 3 port answer like the Python 2
original?" for HTTP answers and for decoded RPC values. Pure functions: no I/O,
no threads, no clocks. Differences that come from the interpreter change alone
(JSON key order, ``1.0`` vs ``1``, ``1e-05`` vs ``1e-5``, escaped vs raw UTF-8,
``u"x"`` vs ``b"x"``, header case and order, ``Server:``) are not reported::

    from gateway.migration.compare import HttpAnswer, Rules, compare_http
    rules = Rules(ignore_pointers=("/generated_at", "/items/*/id"))
    py2 = HttpAnswer(200, (("Content-Type", "application/json"),), b'{"a": 1.0, "b": 2}')
    py3 = HttpAnswer(200, (("content-type", "application/json"),), b'{"b":2,"a":1}')
    assert compare_http(py2, py3, rules) == []

Paths name where two answers differ: ``status``, ``header:<name>``, ``body``,
or ``body``/``result``/``error`` followed by an RFC 6901 JSON pointer.
Hostile input is bounded: nesting deeper than :data:`MAX_DEPTH` is compared as
a whole, and at most :data:`MAX_DIFFERENCES` differences are listed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ConfigError
from protocol.codec import decode_base64
from protocol.errors import EnvelopeError

MAX_DEPTH = 64
MAX_DIFFERENCES = 100
RENDER_CAP = 200
REDACTED = "[redacted]"
SECRET_HEADERS = ("authorization", "cookie", "set-cookie", "proxy-authorization",
                  "x-gateway-token")

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


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP answer as captured; ``truncated`` when the capture stopped at its cap."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    truncated: bool = False


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


# --- HTTP ------------------------------------------------------------------------------


def compare_http(left: HttpAnswer, right: HttpAnswer, rules: Rules) -> list[Difference]:
    """Differences between two HTTP answers: status, headers, then body."""
    out = _Collector()
    try:
        if left.status != right.status:
            out.add("status", "changed", left.status, right.status)
        _compare_headers(left.headers, right.headers, rules, out)
        _compare_body(left, right, rules, out)
    except _Full:
        pass
    return out.items


def _media(value: str) -> tuple[str, dict[str, str]]:
    """``text/html; Charset="UTF-8"`` -> ("text/html", {"charset": "utf-8"})."""
    mime, *rest = value.split(";")
    params = {}
    for part in rest:
        key, _, val = part.partition("=")
        key, val = key.strip().lower(), val.strip().strip('"')
        if key:
            params[key] = val.lower() if key == "charset" else val
    return mime.strip().lower(), params


def _cookie(value: str) -> str:
    """A Set-Cookie without its value: ``name; attr; attr=value``.

    Cookie values are session ids, CSRF tokens and signed blobs that differ on
    every answer, so the name and attribute set are what is compared. Expires
    and Max-Age count by name only: their values move with the clock.
    """
    name, *attrs = value.split(";")
    kept = set()
    for attr in attrs:
        key, sep, val = attr.partition("=")
        key = key.strip().lower()
        if key:
            timed = key in ("expires", "max-age") or not sep
            kept.add(key if timed else f"{key}={val.strip()}")
    return "; ".join([name.partition("=")[0].strip(), *sorted(kept)])


def _header_values(headers: Iterable[tuple[str, str]], rules: Rules) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in headers:
        key, text = str(name).strip().lower(), str(value).strip()
        if key in rules.ignore_headers:
            continue
        if key == "content-type":
            mime, params = _media(text)
            text = ";".join([mime, *(f"{k}={v}" for k, v in sorted(params.items()))])
        elif key == "set-cookie":
            text = _cookie(text)
        values.setdefault(key, []).append(text)
    return values


def _shown(name: str, values: list[str] | None) -> Any:
    if values is None:
        return None
    if name in SECRET_HEADERS and name != "set-cookie":  # Set-Cookie is shown without values
        values = [REDACTED] * len(values)  # compared, never shown: diffs are stored
    return values[0] if len(values) == 1 else sorted(values)


def _compare_headers(left: Iterable[tuple[str, str]], right: Iterable[tuple[str, str]],
                     rules: Rules, out: _Collector) -> None:
    lv, rv = _header_values(left, rules), _header_values(right, rules)
    for name in sorted(set(lv) | set(rv)):
        a, b = lv.get(name), rv.get(name)
        shown_a, shown_b = _shown(name, a), _shown(name, b)
        if b is None:
            out.add("header:" + name, "missing", shown_a, None)
        elif a is None:
            out.add("header:" + name, "added", None, shown_b)
        elif Counter(a) != Counter(b):
            out.add("header:" + name, "changed", shown_a, shown_b)


def _content_type(headers: Iterable[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    for name, value in headers:
        if str(name).strip().lower() == "content-type":
            return _media(str(value))
    return "", {}


def _is_json(mime: str) -> bool:
    return mime == "application/json" or (mime.startswith("application/") and
                                          mime.endswith("+json"))


_NOT_JSON = object()


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # also UnicodeDecodeError and huge-int errors
        return _NOT_JSON


def _decode(body: bytes, charset: str | None) -> str:
    # surrogateescape, not replace: two different invalid bytes must not both turn
    # into U+FFFD and compare equal. _storable makes what is shown safe to store.
    try:
        return body.decode(charset or "utf-8", errors="surrogateescape")
    except (LookupError, TypeError):  # unknown or non-text codec named by the sender
        return body.decode("utf-8", errors="surrogateescape")


def _shown_line(lines: list[str], i: int) -> str:
    line = lines[i] if i < len(lines) else "<end of text>"
    return _storable(f"line {i + 1}: " + line[:RENDER_CAP])


def _first_mismatch(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Index of the first differing item; blockwise so a megabyte costs little."""
    i, n = 0, min(len(a), len(b))
    while i < n and a[i:i + 4096] == b[i:i + 4096]:
        i += 4096
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _compare_body(left: HttpAnswer, right: HttpAnswer, rules: Rules, out: _Collector) -> None:
    lb, rb = bytes(left.body), bytes(right.body)
    cut = left.truncated or right.truncated
    if cut:  # only what both captures hold can be compared
        lb, rb = lb[:min(len(lb), len(rb))], rb[:min(len(lb), len(rb))]
    if lb == rb:
        return
    if not cut and len(lb) != len(rb) and max(len(lb), len(rb)) > rules.max_body:
        out.add("body", "length", len(lb), len(rb))
        return
    if max(len(lb), len(rb)) > rules.max_body:
        ld, rd = (f"sha256:{hashlib.sha256(b).hexdigest()} ({len(b)} bytes)" for b in (lb, rb))
        out.add("body", "changed", ld, rd)
        return
    (lm, lp), (rm, rp) = _content_type(left.headers), _content_type(right.headers)
    if not cut and ((_is_json(lm) and _is_json(rm)) or (not lm and not rm)):
        lv, rv = _parse_json(lb), _parse_json(rb)
        if lv is not _NOT_JSON and rv is not _NOT_JSON:
            _walk(lv, rv, "body", (), rules, out)
            return
    if lm.startswith("text/") and rm.startswith("text/"):
        lt, rt = _decode(lb, lp.get("charset")), _decode(rb, rp.get("charset"))
        if lt != rt:
            ll, rl = lt.splitlines(keepends=True), rt.splitlines(keepends=True)
            i = _first_mismatch(ll, rl)
            out.add("body", "changed", _shown_line(ll, i), _shown_line(rl, i))
        return
    if not cut and len(lb) != len(rb):
        out.add("body", "length", len(lb), len(rb))
    else:
        i = _first_mismatch(lb, rb)
        out.add("body", "changed", {"offset": i, "bytes": repr(lb[i:i + 40])},
                {"offset": i, "bytes": repr(rb[i:i + 40])})
