"""Stored examples of a difference: JSON-safe, credentials redacted, size-capped.

::

    record = sample({"method": "GET", "path": "/api/notes", "headers": [...]},
                    py2_answer, py3_answer, cap=4096, labels=("py2", "py3"))
    redact_headers([("Authorization", "Bearer x")])     # [["Authorization", "[redacted]"]]

Credential headers (``SECRET_HEADERS``) never reach the store, in a request's
headers, an answer's headers, or any mapping key named like one.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.migration.compare import REDACTED, SECRET_HEADERS, HttpAnswer
from gateway.migration.diffs import _storable, render


def redact_headers(headers: Mapping[str, str] | Iterable[Sequence[str]],
                   secret: Sequence[str] = SECRET_HEADERS) -> list[list[str]]:
    """Header pairs as ``[name, value]`` lists with credential values replaced."""
    hidden = {name.lower() for name in secret}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for pair in pairs:
        if isinstance(pair, str | bytes) or len(pair) != 2:
            out.append(["?", REDACTED])  # not a pair: nothing in it is safe to show
            continue
        name = pair[0].decode("latin-1") if isinstance(pair[0], bytes) else str(pair[0])
        value = REDACTED if name.strip().lower() in hidden else pair[1]
        out.append([name, value.decode("latin-1") if isinstance(value, bytes) else str(value)])
    return out


class _Scrub:
    """Turns a value JSON-safe with every string and list capped at limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.cut = False

    def text(self, value: str) -> str:
        if len(value) <= self.limit:
            return _storable(value)
        self.cut = True
        return _storable(value[:self.limit] + "…")

    def __call__(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value[:self.limit + 1])
            try:
                return self.text(raw.decode("utf-8"))
            except UnicodeDecodeError:
                self.cut = self.cut or len(value) > self.limit * 3 // 4
                return {"$bytes": base64.b64encode(raw[:self.limit * 3 // 4]).decode("ascii")}
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, bool | int | float):
            return render(value)
        if depth >= 8:
            self.cut = True
            return "…"
        if isinstance(value, Mapping):
            hidden = dict(itertools.islice(value.items(), self.limit // 16 + 1))
            self.cut = self.cut or len(hidden) < len(value)
            return {self.text(str(k)): self._field(str(k).lower(), v, depth)
                    for k, v in hidden.items()}
        if isinstance(value, list | tuple):
            self.cut = self.cut or len(value) > self.limit // 16 + 1
            return [self(v, depth + 1) for v in value[:self.limit // 16 + 1]]
        return self.text(repr(value))

    def _field(self, name: str, value: Any, depth: int) -> Any:
        if name in SECRET_HEADERS:
            return REDACTED
        if name == "headers" and isinstance(value, Mapping | list | tuple):
            value = redact_headers(value)
        return self(value, depth + 1)

    def answer(self, answer: HttpAnswer) -> dict[str, Any]:
        return {"status": answer.status, "headers": self(redact_headers(answer.headers)),
                "body": self(answer.body), "body_length": len(answer.body),
                "body_sha256": hashlib.sha256(answer.body).hexdigest(),
                "truncated": answer.truncated}


def sample(request: dict[str, Any], left: HttpAnswer, right: HttpAnswer, cap: int = 4096,
           labels: tuple[str, str] = ("left", "right")) -> dict[str, Any]:
    """A stored example of one difference: JSON-safe, credentials redacted, about cap long.

    Strings and lists are capped, halving the cap until the JSON text fits; a body
    that is not UTF-8 is shown as ``{"$bytes": base64}``. ``labels`` names the two
    answers (``("py2", "py3")``). ``capped`` says whether anything was cut.
    """
    limit = max(cap, 16)
    while limit >= 16:
        scrub = _Scrub(limit)
        record = {"request": scrub(request), labels[0]: scrub.answer(left),
                  labels[1]: scrub.answer(right)}
        record["capped"] = scrub.cut or limit < cap
        if len(json.dumps(record)) <= cap:
            return record
        limit //= 2
    scrub = _Scrub(64)
    head = {k: scrub(request.get(k)) for k in ("method", "path") if isinstance(request, dict)}
    return {"request": head, "capped": True,
            **{label: {"status": a.status, "body_length": len(a.body)}
               for label, a in zip(labels, (left, right), strict=True)}}
