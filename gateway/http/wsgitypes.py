"""The WSGI types every part of the front shares (PEP 3333), written once.

::

    from gateway.http.wsgitypes import Backend, StartResponse, WsgiApp
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]: ...

``Backend`` is what every backend is (:mod:`gateway.http.backends`): a
callable from a checked, routed request to a WSGI answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway.http.config import Route
    from gateway.http.context import Call

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Backend(Protocol):
    """A callable from a checked request to a WSGI answer."""

    def __call__(self, call: Call, start_response: StartResponse) -> Iterable[bytes]: ...


BackendFactory = Callable[["Route"], Backend]
