"""A backend that lives outside the gateway: one module, registered with one call.

It proves the registry's promise: ``register(SPEC)`` (gateway.config.backends)
is all it takes for ``[[routes]] backend = "teapot"`` to parse, pass
``gateway check`` and be served by the front::

    [[routes]]
    prefix = "/tea"
    backend = "teapot"
    message = "short and stout"     # its own key: a string, default "I'm a teapot"

Every request below the mount is answered ``418`` with the message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.config.backends import RouteContext, RouteSpec
from gateway.config.values import string
from gateway.errors import ConfigError
from gateway.http.backends import BackendSpec, Parts
from gateway.http.context import Call
from gateway.http.wsgitypes import Backend, StartResponse

DEFAULT = "I'm a teapot"


def load(table: Mapping[str, Any], p: str, ctx: RouteContext) -> dict[str, Any]:
    """``message`` is a string; a teapot has no target."""
    if ctx.target:
        raise ConfigError(f"{p}.target: a teapot has no target")
    return {"message": string(table, p, "message", DEFAULT)}


def refuse(table: Mapping[str, Any], p: str, strip_prefix: bool) -> None:
    """Only a teapot has a message."""
    if "message" in table:
        raise ConfigError(f"{p}.message: only the teapot backend has a message")


def to_file(route: Any) -> dict[str, Any]:
    """``message`` travels in ``options`` (it is not a Route field): nothing else to write."""
    return {}


def validate(route: Any, where: str) -> None:
    """A front route made without the config gets the default message."""
    message = route.options.get("message", DEFAULT)
    if not isinstance(message, str) or "\n" in message:
        raise ConfigError(f"{where}.message: one line of text")


class Teapot:
    """Answers 418 and the message."""

    def __init__(self, message: str) -> None:
        self.body = message.encode("utf-8")

    def __call__(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        start_response("418 I'm a teapot", [("Content-Type", "text/plain; charset=utf-8"),
                                            ("Content-Length", str(len(self.body))),
                                            ("X-Request-ID", call.request_id)])
        return [self.body]


def build(route: Any, parts: Parts) -> Backend:
    """Nothing shared."""
    return Teapot(route.options.get("message", DEFAULT))


FRONT = BackendSpec(build)
SPEC = RouteSpec("teapot", f"{__name__}:FRONT", keys=("message",), load=load, refuse=refuse,
                 to_file=to_file, validate=validate)
