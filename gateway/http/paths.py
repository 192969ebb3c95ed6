"""Request-target safety: one strict reading of the path before any routing.

A proxy and the service behind it must agree on which path a request names;
where two readings could differ the request is refused with 400 instead of
guessed at. :func:`parse_target` turns the raw request target into the raw
path, the raw query and the percent-decoded path used for matching::

    target = parse_target("/api/caf%C3%A9?q=1")
    target.path        # "/api/café"   (what routes match against)
    target.raw_path    # "/api/caf%C3%A9" (what is forwarded, byte-exact)

Refused (:class:`BadPath`): a non-ASCII or control byte in the raw target;
a malformed escape; an escaped ``/`` or ``\\`` (%2F, %5C) or a raw backslash;
an empty interior segment (``//``); a dot segment in any spelling (``.``,
``..``, ``%2e``, ``.%2E``, ``..;x``) or one that Unicode compatibility
folding turns into dots or separators; a decoded path that is not UTF-8 or
holds control characters; and double encoding of any of these (``%252e``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Escapes that would change the path's structure if decoded once more.
_DOUBLE = re.compile(r"%(?:2[eEfF]|5[cC]|00)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ALLOWED_RAW = re.compile(r"[!$&'()*+,;=:@/%A-Za-z0-9._~-]*")


class BadPath(ValueError):
    """The request target is malformed or ambiguous; answer 400."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked request target: decoded path, raw path and raw query."""

    path: str
    raw_path: str
    query: str | None

    @property
    def query_string(self) -> str:
        """The raw query as WSGI's QUERY_STRING ("" when there is none)."""
        return self.query or ""

    @property
    def raw(self) -> str:
        """Path and query as received (origin-form), for forwarding byte-exact."""
        return self.raw_path if self.query is None else f"{self.raw_path}?{self.query}"


def split_target(target: str) -> tuple[str, str | None]:
    """Split a request target into (raw path, raw query or None); absolute-form loses its authority.

    The authority of an absolute-form target is never used to pick an
    upstream: upstreams come from configuration only.
    """
    if not target.startswith("/"):
        scheme_end = target.find("://")
        if scheme_end <= 0:
            raise BadPath("the request target must be an absolute path")
        slash = target.find("/", scheme_end + 3)
        if slash < 0:
            query_at = target.find("?", scheme_end + 3)
            return "/", None if query_at < 0 else target[query_at + 1:]
        target = target[slash:]
    path, sep, query = target.partition("?")
    return path, query if sep else None


def _unquote(raw: str) -> str:
    data = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), raw)
    try:
        return data.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("the decoded path is not UTF-8") from None


def check_path(raw_path: str) -> str:
    """Return the decoded path of ``raw_path`` or raise :class:`BadPath`."""
    if not raw_path.startswith("/"):
        raise BadPath("the path must start with /")
    if not raw_path.isascii() or not _ALLOWED_RAW.fullmatch(raw_path):
        raise BadPath("the path holds characters that must be percent-encoded")
    if "%" not in raw_path:
        decoded = raw_path
    else:
        if _BAD_ESCAPE.search(raw_path):
            raise BadPath("malformed percent escape")
        lowered = raw_path.lower()
        if "%2f" in lowered or "%5c" in lowered:
            raise BadPath("an escaped / or \\ is ambiguous")
        decoded = _unquote(raw_path)
        if _CONTROL.search(decoded):
            raise BadPath("control characters in the path")
        if "%" in decoded and _DOUBLE.search(decoded):
            raise BadPath("double-encoded path structure")
    segments = decoded.split("/")
    for i, segment in enumerate(segments[1:], 1):
        if not segment:
            if i != len(segments) - 1:
                raise BadPath("empty path segment (//)")
            continue
        head = segment.partition(";")[0]
        if head in (".", ".."):
            raise BadPath("dot segments are not allowed")
        if not segment.isascii():
            folded = unicodedata.normalize("NFKC", head)
            if folded in (".", "..") or "/" in folded or "\\" in folded:
                raise BadPath("a segment folds to a dot segment or a separator")
    return decoded


def parse_target(target: str) -> Target:
    """Check a raw request target; see the module docstring for what is refused."""
    raw_path, query = split_target(target)
    if query is not None and (not query.isascii() or _CONTROL.search(query) or " " in query):
        raise BadPath("the query holds characters that must be percent-encoded")
    return Target(check_path(raw_path), raw_path, query)


def raw_tail(raw_path: str, prefix: str) -> str:
    """The raw path below the mount ``prefix`` (segment for segment; "/" at least).

    Escaped separators are refused before this runs, so raw and decoded
    paths have the same segments.
    """
    if prefix == "/":
        return raw_path
    depth = prefix.count("/")
    parts = raw_path.split("/", depth + 1)
    if len(parts) <= depth + 1:
        return "/"
    return "/" + parts[depth + 1]
