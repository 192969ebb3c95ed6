"""The WSGI types every part of the front shares (PEP 3333), written once.

::

    from gateway.http.wsgitypes import StartResponse, WsgiApp
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]: ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
