"""Request bodies as bounded streams: never read whole, never past their framing.

::

    body = request_body(environ, max_body=8 << 20)   # None when there is no body
    body.length        # the Content-Length, or None for a chunked upload
    body.read(65536)   # raises Problem(413) once a chunked body passes max_body

:func:`check_framing` is the one framing check (the front runs it on every
request; :func:`request_body` again, as backends may be used alone):
Content-Length together with Transfer-Encoding is refused (400) for servers
that let both through; gunicorn already refuses it while parsing.
:func:`header_sizes` measures the header block for the 431 limits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO

from gateway.http.problems import Problem

CHUNK = 64 * 1024
# str.isdigit() also accepts "²" or "٣", which int() then rejects or reads differently.
_DIGITS = re.compile(r"[0-9]+")


def parse_length(value: str | None) -> int | None:
    """A Content-Length value as an int, or None unless it is ASCII digits only."""
    if value is None or not _DIGITS.fullmatch(value):
        return None
    return int(value)


class BoundedBody:
    """A read-only stream over ``wsgi.input`` that stops at the body's end or its cap."""

    def __init__(self, stream: BinaryIO, length: int | None, cap: int) -> None:
        self._stream = stream
        self.length = length
        self._remaining = length if length is not None else cap
        self._cap = cap
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when ``size`` < 0)."""
        if size == 0:
            return b""
        if self.length is not None:
            if self._remaining <= 0:
                return b""
            want = self._remaining if size is None or size < 0 else min(size, self._remaining)
            data = self._stream.read(want)
            if not data:
                raise Problem(400, "the request body ended before its Content-Length",
                              code="truncated_body")
        else:
            # One byte more than allowed tells "exactly at the cap" from "over it".
            limit = self._remaining + 1
            want = limit if size is None or size < 0 else min(size, limit)
            data = self._stream.read(want)
            if len(data) > self._remaining:
                raise Problem(413, f"the request body exceeds {self._cap} bytes",
                              code="too_large")
        self._remaining -= len(data)
        self.consumed += len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.read(CHUNK)
            if not data:
                return
            yield data

    def read_all(self) -> bytes:
        """The whole (capped) body; for backends that ship it in one message."""
        return b"".join(iter(self))


def check_framing(environ: Mapping[str, Any], max_body: int) -> int | None:
    """The body's Content-Length (None when chunked or absent), or the framing problem.

    400 for Content-Length with Transfer-Encoding, a coding other than
    chunked, or a Content-Length that is not a number; 413 past ``max_body``.
    """
    te = environ.get("HTTP_TRANSFER_ENCODING")
    cl = environ.get("CONTENT_LENGTH")
    if te:
        if cl:
            raise Problem(400, "Content-Length together with Transfer-Encoding is ambiguous",
                          code="ambiguous_framing")
        if te.strip().lower() != "chunked":
            raise Problem(400, "only the chunked transfer coding is accepted",
                          code="bad_framing")
        return None
    if not cl:
        return None
    length = parse_length(cl)
    if length is None:
        raise Problem(400, "Content-Length is not a number", code="bad_framing")
    if length > max_body:
        raise Problem(413, f"the request body exceeds {max_body} bytes", code="too_large")
    return length


def request_body(environ: Mapping[str, Any], max_body: int) -> BoundedBody | None:
    """The request body of ``environ``, checked by :func:`check_framing`; None when empty."""
    length = check_framing(environ, max_body)
    if length is None and not environ.get("HTTP_TRANSFER_ENCODING"):
        return None
    if length == 0:
        return None
    return BoundedBody(environ["wsgi.input"], length, max_body)


def header_sizes(environ: Mapping[str, Any],
                 keys: Iterable[str] | None = None) -> tuple[int, int, int]:
    """(fields, total bytes, longest field) of the ``HTTP_*`` entries, as the limits count them.

    A field's size is its name, ": " and value less the "HTTP_" prefix: an
    environ key is five longer than its header name. ``keys`` lists the
    ``HTTP_*`` keys when the caller knows them (the ASGI bridge, which builds
    the environ), saving a walk over every key of the environ.
    """
    if keys is None:
        keys = [key for key in environ if key.startswith("HTTP_")]
    count = total = longest = 0
    for key in keys:
        size = len(key) + len(environ[key]) - 1
        count += 1
        total += size
        if size > longest:
            longest = size
    return count, total, longest
