"""The traffic split of one front process: which runtime is the control for a request.

The state decides the control: py2 in ``py2`` and ``shadow``, py3 in ``py3``
and ``retired``, and in ``canary N%`` the client's sticky bucket (a hash of
the ``gw_canary`` cookie, a header, or the address) below N. A trusted
caller pins a runtime with ``X-Gateway-Runtime: py2|py3`` plus
``X-Gateway-Token: <admin token>``. The other runtime is the candidate::

    split = TrafficSplit(token)
    control, cookie = split.choose(cfg, environ, state)    # cookie: a gw_canary to set, or None
    if split.shadowing(cfg, state): ...                     # copy this one to the candidate
"""

from __future__ import annotations

import hmac
import random
import secrets
import zlib
from http.cookies import CookieError, SimpleCookie
from typing import Any

from gateway.migration.config import MigrationConfig
from gateway.migration.model import MigrationState

COOKIE = "gw_canary"
OTHER = {"py2": "py3", "py3": "py2"}


class TrafficSplit:
    """Control/candidate choice by state, canary bucket and trusted pin."""

    def __init__(self, token: str) -> None:
        self.token = token

    def trusted(self, token: str | None) -> bool:
        """True when ``token`` is the admin token (constant-time)."""
        return bool(token) and hmac.compare_digest((token or "").encode(), self.token.encode())

    def choose(self, cfg: MigrationConfig, environ: dict[str, Any],
               state: MigrationState) -> tuple[str, str | None]:
        """(the control runtime, a new canary cookie to set or None) for one request."""
        pin = environ.get("gateway.pin")
        if pin and pin[0] in OTHER and self.trusted(pin[1]):
            return pin[0], None
        if state.mode in ("py2", "shadow"):
            return "py2", None
        if state.mode in ("py3", "retired"):
            return "py3", None
        key, new_cookie = sticky_key(cfg.sticky, environ)
        bucket = zlib.crc32(f"{cfg.name}:{key}".encode()) % 100
        return ("py3" if bucket < state.percent else "py2"), new_cookie

    @staticmethod
    def shadowing(cfg: MigrationConfig, state: MigrationState) -> bool:
        """True when the state sends copies to the candidate (and the sample says so)."""
        if state.mode not in ("shadow", "canary", "py3"):
            return False
        return cfg.sample >= 1.0 or random.random() < cfg.sample


def sticky_key(sticky: str, environ: dict[str, Any]) -> tuple[str, str | None]:
    """The client's canary key, and a fresh ``gw_canary`` value when one must be set."""
    kind, _, name = sticky.partition(":")
    if kind == "header":
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        if value:
            return f"h:{value}", None
    elif kind == "cookie":
        cookie = _cookie(environ, name or COOKIE)
        if cookie:
            return f"c:{cookie}", None
        if not name:
            fresh = secrets.token_hex(8)
            return f"c:{fresh}", fresh
    return f"a:{environ.get('REMOTE_ADDR', '')}", None


def _cookie(environ: dict[str, Any], name: str) -> str:
    raw = environ.get("HTTP_COOKIE")
    if not raw:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return ""
    morsel = jar.get(name)
    return morsel.value if morsel is not None else ""
