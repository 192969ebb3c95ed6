"""What a correct intermediary changes in the headers it forwards (RFC 9110 7.6).

::

    fwd = Forwarding(trusted_proxies=0, via="gateway")
    headers = fwd.request_headers(environ, request_id, prefix="/api")
    clean = fwd.response_headers(upstream_pairs, request_id, "HTTP/1.1")

Documented differences between a service's direct answer and its answer
through the gateway:

- request: hop-by-hop fields (Connection, Keep-Alive, Proxy-Connection, TE,
  Trailer, Transfer-Encoding, Upgrade, Proxy-Authorization and every field
  named in Connection) and Expect are removed; X-Forwarded-For, -Proto, -Host
  (and -Prefix for a stripped mount) are set, replacing the client's copies
  unless ``trusted_proxies`` > 0, and Forwarded is dropped unless trusted;
  ``Via: 1.1 <via>`` is appended; X-Request-ID carries the request id.
- response: the same hop-by-hop fields go; Via is appended, X-Request-ID is
  set, and Date and Server come from the gateway's own server.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "proxy-authorization", "proxy-authenticate",
})
_REQUEST_DROP = HOP_BY_HOP | {"expect", "x-request-id", "via", "forwarded", "x-forwarded-for",
                              "x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix",
                              "content-length", "host",
                              # the migration pin and its admin token stop at the gateway,
                              # and only the gateway marks a request as a shadow copy
                              "x-gateway-token", "x-gateway-runtime", "x-shadow"}
_RESPONSE_DROP = HOP_BY_HOP | {"date", "server", "via", "x-request-id"}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+=/-]{1,128}")

# environ key -> header name, computed once per distinct key.
_NAMES: dict[str, str] = {}


def header_name(key: str) -> str:
    """``HTTP_X_FOO_BAR`` -> ``X-Foo-Bar`` (header names are case-insensitive)."""
    name = _NAMES.get(key)
    if name is None:
        name = "-".join(p.capitalize() for p in key[5:].split("_"))
        if len(_NAMES) < 4096:
            _NAMES[key] = name
    return name


# environ key -> (header name, its lower case), or ("", "") for a field never forwarded:
# one dict lookup per field on each request instead of a lower() and a set test.
_FIELDS: dict[str, tuple[str, str]] = {}
_DROPPED = ("", "")


def _field(key: str) -> tuple[str, str]:
    name = header_name(key)
    lname = name.lower()
    field = _DROPPED if lname in _REQUEST_DROP else (name, lname)
    if len(_FIELDS) < 4096:
        _FIELDS[key] = field
    return field


def request_id(environ: Mapping[str, Any]) -> str:
    """The client's X-Request-ID when it is a sane token, else a fresh one."""
    given = environ.get("HTTP_X_REQUEST_ID")
    if given and _REQUEST_ID.fullmatch(given):
        return str(given)
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID


def connection_tokens(value: str | None) -> set[str]:
    """The lower-cased field names listed in a Connection header."""
    if not value:
        return set()
    return {t.strip().lower() for t in value.split(",") if t.strip()}


class Forwarding:
    """Header rewriting for one gateway, configured once."""

    def __init__(self, trusted_proxies: int, via: str, preserve_host: bool = True) -> None:
        self.trusted = trusted_proxies
        self.via = via
        self.preserve_host = preserve_host

    def request_headers(self, environ: Mapping[str, Any], rid: str, prefix: str = "",
                        upstream_host: str = "") -> list[tuple[str, str]]:
        """The end-to-end request headers plus forwarding fields, as (name, value) pairs."""
        named = connection_tokens(environ.get("HTTP_CONNECTION"))
        out: list[tuple[str, str]] = []
        fields = _FIELDS
        for key, value in environ.items():
            if not key.startswith("HTTP_"):
                continue
            name, lname = fields.get(key) or _field(key)
            if not name or (named and lname in named):
                continue
            out.append((name, value))
        ctype = environ.get("CONTENT_TYPE")
        if ctype:
            out.append(("Content-Type", ctype))
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        out.append(("Host", host if self.preserve_host or not upstream_host else upstream_host))
        out.extend(self.forwarded(environ, host, prefix))
        proto = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        version = proto[5:] if proto.startswith("HTTP/") else "1.1"
        via = environ.get("HTTP_VIA")
        mine = f"{version} {self.via}"
        out.append(("Via", f"{via}, {mine}" if via else mine))
        out.append(("X-Request-ID", rid))
        if environ.get("gateway.shadow"):
            out.append(("X-Shadow", "1"))
        return out

    def client_chain(self, environ: Mapping[str, Any]) -> list[str]:
        """The addresses this request came through, client first, as ``forwarded`` sends them
        upstream in X-Forwarded-For: the last ``trusted_proxies`` entries of the client's
        X-Forwarded-For (what our own proxies appended) and the peer address."""
        remote = environ.get("REMOTE_ADDR") or "unknown"
        if not self.trusted:
            return [remote]
        chain = [p.strip() for p in environ.get("HTTP_X_FORWARDED_FOR", "").split(",")
                 if p.strip()][-self.trusted:]
        return [*chain, remote]

    def client_address(self, environ: Mapping[str, Any]) -> str:
        """The client's address under the trusted-proxy rule (the peer when none is trusted)."""
        return self.client_chain(environ)[0]

    def public_origin(self, environ: Mapping[str, Any]) -> tuple[str, str]:
        """(scheme, host) the client addressed: what X-Forwarded-Proto and -Host say upstream."""
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        if self.trusted:
            scheme = _last(environ.get("HTTP_X_FORWARDED_PROTO")) or scheme
            host = _last(environ.get("HTTP_X_FORWARDED_HOST")) or host
        return scheme, host

    def forwarded(self, environ: Mapping[str, Any], host: str,
                  prefix: str) -> list[tuple[str, str]]:
        """X-Forwarded-* (and, when trusted, Forwarded) for the upstream request."""
        remote = environ.get("REMOTE_ADDR") or "unknown"
        scheme = environ.get("wsgi.url_scheme", "http")
        out: list[tuple[str, str]] = []
        if self.trusted:
            out.append(("X-Forwarded-For", ", ".join(self.client_chain(environ))))
            proto = _last(environ.get("HTTP_X_FORWARDED_PROTO")) or scheme
            out.append(("X-Forwarded-Proto", proto))
            out.append(("X-Forwarded-Host", _last(environ.get("HTTP_X_FORWARDED_HOST")) or host))
            given = _last(environ.get("HTTP_X_FORWARDED_PREFIX")).rstrip("/")
            if given or prefix:
                out.append(("X-Forwarded-Prefix", given + prefix))
            if environ.get("HTTP_FORWARDED"):
                out.append(("Forwarded", environ["HTTP_FORWARDED"]))
        else:
            out.append(("X-Forwarded-For", remote))
            out.append(("X-Forwarded-Proto", scheme))
            out.append(("X-Forwarded-Host", host))
            if prefix:
                out.append(("X-Forwarded-Prefix", prefix))
        return out

    def response_headers(self, pairs: Iterable[tuple[str, str]], rid: str,
                         version: str = "1.1") -> list[tuple[str, str]]:
        """The upstream's response headers less hop-by-hop ones, plus Via and X-Request-ID."""
        pairs = list(pairs)
        named: set[str] = set()
        via = ""
        for name, value in pairs:
            lname = name.lower()
            if lname == "connection":
                named |= connection_tokens(value)
            elif lname == "via":
                via = f"{via}, {value}" if via else value
        out = [(n, v) for n, v in pairs
               if n.lower() not in _RESPONSE_DROP and n.lower() not in named]
        mine = f"{version} {self.via}"
        out.append(("Via", f"{via}, {mine}" if via else mine))
        out.append(("X-Request-ID", rid))
        return out

    def response_head(self, pairs: Iterable[tuple[str, str]], rid: str,
                      version: str = "1.1") -> list[tuple[bytes, bytes]]:
        """:meth:`response_headers` as the latin-1 pairs of an ASGI ``http.response.start``,
        made in one pass with each name's lower case and bytes remembered."""
        names = _ANSWER_NAMES
        out: list[tuple[bytes, bytes]] = []
        lowered: list[str] = []
        named: set[str] | None = None
        via = ""
        for name, value in pairs:
            lname, raw = names.get(name) or _answer_name(name)
            if lname == "connection":
                named = connection_tokens(value) | (named or set())
            elif lname == "via":
                via = f"{via}, {value}" if via else value
            if lname not in _RESPONSE_DROP:
                out.append((raw, value.encode("latin-1")))
                lowered.append(lname)
        if named:
            # A Connection field may name a field sent before it: filtered once all are read.
            out = [pair for pair, lname in zip(out, lowered, strict=True) if lname not in named]
        mine = f"{version} {self.via}"
        out.append((b"Via", (f"{via}, {mine}" if via else mine).encode("latin-1")))
        out.append((b"X-Request-ID", rid.encode("latin-1")))
        return out


# response header name -> (its lower case, its latin-1 bytes), computed once per name
_ANSWER_NAMES: dict[str, tuple[str, bytes]] = {}


def _answer_name(name: str) -> tuple[str, bytes]:
    known = (name.lower(), name.encode("latin-1"))
    if len(_ANSWER_NAMES) < 4096:
        _ANSWER_NAMES[name] = known
    return known


def _last(value: str | None) -> str:
    if not value:
        return ""
    return value.rsplit(",", 1)[-1].strip()
