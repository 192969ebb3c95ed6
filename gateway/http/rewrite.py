"""What an ``http`` upstream says about its own URLs, said again under the gateway's mount.

::

    reverse = ReverseMap("http://127.0.0.1:9000/base", mount="/hb")
    reverse.location("/base/get?a=1", sent_host="example.test", public=("https", "example.test"))
    # -> "/hb/get?a=1"
    reverse.location("http://127.0.0.1:9000/base/x", "example.test", ("https", "example.test"))
    # -> "https://example.test/hb/x"
    reverse.cookie("sid=1; Path=/base/; HttpOnly")       # -> "sid=1; Path=/hb/; HttpOnly"

An upstream behind a route that strips its prefix knows nothing of the
prefix, so its redirects and cookie paths point outside the mount. This is
nginx's ``proxy_redirect default`` plus ``proxy_cookie_path`` (Apache's
``ProxyPassReverse`` and ``ProxyPassReverseCookiePath``), for one route:

- ``Location``, ``Content-Location`` and the URL in ``Refresh``: an
  absolute path under the upstream's base path gets the mount instead of
  the base; an absolute URL at the upstream's own origin (the route
  target's scheme, host and port), or at the Host the request was sent
  with, becomes the client-facing URL (the scheme and host the gateway
  forwards as X-Forwarded-Proto/-Host) under the mount. Relative
  references (``x``, ``../x``, ``?q``) are left alone: the client resolves
  them against its own URL, which already has the mount.
- ``Set-Cookie``: a ``Path`` under the upstream's base path moves under the
  mount (``Path=/`` becomes ``Path=/hb``). A cookie without ``Path``
  already defaults to the client-facing directory.
- Left alone: other origins, paths outside the upstream's base path, and
  paths already under the mount (an upstream that reads X-Forwarded-Prefix
  writes those itself; prefixing them again would break it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_URL_IN_REFRESH = re.compile(r"(?i)(url\s*=\s*['\"]?)([^'\"]*)")


def _netloc(scheme: str, netloc: str) -> str:
    """``host:port`` lower-cased, with the scheme's default port spelled out."""
    netloc = netloc.lower().rsplit("@", 1)[-1]
    host, sep, port = netloc.rpartition(":")
    if not sep or "]" in port:  # no port (a bare IPv6 literal's colons are inside [])
        return f"{netloc}:{_DEFAULT_PORTS.get(scheme, '')}"
    return f"{host}:{port}"


def _split(url: str) -> tuple[str, str]:
    """(path, the rest from ``?`` or ``#``) of a reference's path part."""
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    return url[:cut], url[cut:]


class ReverseMap:
    """Maps the upstream's own URLs back under the mount, for one route and upstream."""

    def __init__(self, upstream: str, mount: str) -> None:
        scheme, _, rest = upstream.partition("://")
        netloc, _, path = rest.partition("/")
        self.scheme = scheme.lower()
        self.origin = _netloc(self.scheme, netloc)
        self.base = ("/" + path).rstrip("/")
        self.mount = mount.rstrip("/")

    def path(self, path: str) -> str | None:
        """The client-facing path for an upstream path, or None to leave it alone."""
        mount = self.mount
        if mount and (path == mount or path.startswith(mount + "/")):
            return None  # already under the mount
        base = self.base
        if base:
            if path != base and not path.startswith(base + "/"):
                return None
            path = path[len(base):]
        return (mount + path) or "/"

    def location(self, value: str, sent_host: str, public: tuple[str, str]) -> str:
        """A Location (or Content-Location) value as the client must see it."""
        if value.startswith("/") and not value.startswith("//"):
            path, rest = _split(value)
            mapped = self.path(path)
            return value if mapped is None else mapped + rest
        scheme, sep, after = value.partition("://")
        if value.startswith("//"):
            scheme, sep, after = self.scheme, "//", value[2:]
        scheme = scheme.lower()
        if not sep or scheme not in _DEFAULT_PORTS:
            return value  # relative, or not an http URL
        path, rest = _split(after)
        netloc, slash, path = path.partition("/")
        written = _netloc(scheme, netloc)
        own = scheme == self.scheme and written == self.origin
        if not own and written != _netloc(scheme, sent_host):
            return value
        mapped = self.path("/" + path if slash else "/")
        if mapped is None:
            return value
        return f"{public[0]}://{public[1]}{mapped}{rest}"

    def refresh(self, value: str, sent_host: str, public: tuple[str, str]) -> str:
        """A Refresh value (``5; url=/x``) with its URL rewritten like a Location."""
        return _URL_IN_REFRESH.sub(
            lambda m: m.group(1) + self.location(m.group(2).strip(), sent_host, public),
            value, count=1)

    def cookie(self, value: str) -> str:
        """A Set-Cookie value with its Path attribute moved under the mount."""
        parts = value.split(";")
        for i, part in enumerate(parts[1:], 1):
            name, eq, path = part.partition("=")
            if not eq or name.strip().lower() != "path":
                continue
            path = path.strip()
            if not path.startswith("/"):
                continue
            mapped = self.path(path)
            if mapped is not None:
                # Path=/ covers the whole upstream: under the mount that is the mount
                # itself, which also matches the mount without its trailing slash.
                if path.rstrip("/") == self.base and len(mapped) > 1:
                    mapped = mapped.rstrip("/")
                parts[i] = f"{name}={mapped}"
        return ";".join(parts)

    def headers(self, pairs: Iterable[tuple[str, str]], sent_host: str,
                public: tuple[str, str], redirects: bool,
                cookies: bool) -> list[tuple[str, str]]:
        """The response headers with ``redirects`` and/or ``cookies`` rewritten."""
        out = []
        for name, value in pairs:
            lname = name.lower()
            if redirects and lname in ("location", "content-location"):
                value = self.location(value, sent_host, public)
            elif redirects and lname == "refresh":
                value = self.refresh(value, sent_host, public)
            elif cookies and lname == "set-cookie":
                value = self.cookie(value)
            out.append((name, value))
        return out
