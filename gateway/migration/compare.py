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
a whole, and at most :data:`MAX_DIFFERENCES` differences are listed. The walk
over decoded values lives in :mod:`gateway.migration.diffs`; its public names
are re-exported here.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.migration.diffs import (
    DEFAULT_IGNORED_HEADERS,
    FLOAT_REL_TOL,
    MAX_DEPTH,
    MAX_DIFFERENCES,
    RENDER_CAP,
    Difference,
    Rules,
    _Collector,
    _Full,
    _storable,
    _walk,
    compare_values,
    is_noise,
    normalise_path,
    render,
)

# The value core lives in gateway.migration.diffs; these are the names callers use here.
__all__ = ["DEFAULT_IGNORED_HEADERS", "FLOAT_REL_TOL", "MAX_DEPTH", "MAX_DIFFERENCES", "REDACTED",
           "RENDER_CAP", "SECRET_HEADERS", "Difference", "HttpAnswer", "Rules", "compare_http",
           "compare_values", "is_noise", "normalise_path", "render"]

REDACTED = "[redacted]"
SECRET_HEADERS = ("authorization", "cookie", "set-cookie", "proxy-authorization",
                  "x-gateway-token")


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP answer as captured; ``truncated`` when the capture stopped at its cap."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    truncated: bool = False


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
