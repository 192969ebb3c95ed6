"""A per-request hook the HTTP server fires when the client disconnects.

The fast path must notice a client that goes away while its request waits on
the broker (to cancel it there, SPEC 2.11). Awaiting ASGI ``receive`` for
``http.disconnect`` needs a task per request; the server that runs the front
(:class:`gateway.http.parsing.ProblemProtocol`) instead puts one of these in
the scope's extensions and fires it from ``connection_lost``, so a waiting
request is woken by a plain callback::

    hook = scope["extensions"].get("gateway.disconnect")   # None under other servers
    hook.watch(lambda: parts.put(GONE))                     # called at once if gone already
    ...
    hook.unwatch()
"""

from __future__ import annotations

from collections.abc import Callable

KEY = "gateway.disconnect"


class Disconnect:
    """Whether one request's client has gone, and at most one callback to tell."""

    __slots__ = ("callback", "gone")

    def __init__(self) -> None:
        self.callback: Callable[[], None] | None = None
        self.gone = False

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the client disconnects (now, if it already has)."""
        if self.gone:
            callback()
        else:
            self.callback = callback

    def unwatch(self) -> None:
        """The request ended: forget the callback."""
        self.callback = None

    def fire(self) -> None:
        """The connection was lost (the server's side); calls the callback once."""
        self.gone = True
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()
