"""The ASGI names the front's modules share: scope, messages, the receive and send callables.

::

    async def app(scope: Scope, receive: Receive, send: Send) -> None: ...

Kept apart from :mod:`gateway.http.asgi` so that the scope reader, the body
pump and the chunked buffer can use them without importing the bridge back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Coroutine[Any, Any, Message]]
Send = Callable[[Message], Awaitable[None]]
