"""The arbiter's side of the control channel: one handler per command, in a table.

Each handler documents its exact wire message (the client side and the framing
are in :mod:`gateway.arbiter.control`). A handler gets the supervisor through
the narrow :class:`Supervisor` interface, the connection and the request, and
answers on the connection itself (a reload answers only once it is done)::

    handler = HANDLERS.get(request["cmd"], unknown)
    handler(arbiter, conn, request)

A new command is one function here plus one line in ``HANDLERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gateway.arbiter.control import Connection


class Supervisor(Protocol):
    """What control commands need from the arbiter."""

    def status(self) -> dict[str, Any]:
        """The status document."""

    def begin_stop(self, quick: bool) -> None:
        """Stop the estate (``quick``: SIGKILL at once)."""

    def reload(self, conn: Connection | None, service: str | None) -> None:
        """Apply the config file again; answer ``conn`` when done."""


Handler = Callable[[Supervisor, Connection, dict[str, Any]], None]


def status(sup: Supervisor, conn: Connection, request: dict[str, Any]) -> None:
    """``{"cmd": "status"}`` -> the status document (arbiter, programs, routes)."""
    conn.reply(True, sup.status())


def stop(sup: Supervisor, conn: Connection, request: dict[str, Any]) -> None:
    """``{"cmd": "stop", "now": false}`` -> ``{"stopping": true}``; ``now`` kills at once."""
    conn.reply(True, {"stopping": True})
    sup.begin_stop(quick=bool(request.get("now")))


def reload(sup: Supervisor, conn: Connection, request: dict[str, Any]) -> None:
    """``{"cmd": "reload", "service": "NAME"}`` -> what changed, once every rollout is done.

    Without ``service`` (or with an empty one) every changed or FATAL program rolls.
    """
    service = request.get("service")
    sup.reload(conn, service if isinstance(service, str) and service else None)


def unknown(sup: Supervisor, conn: Connection, request: dict[str, Any]) -> None:
    """Any other ``cmd``: an error naming it."""
    conn.reply(False, f"unknown command {request['cmd']!r}")


HANDLERS: dict[str, Handler] = {"status": status, "stop": stop, "reload": reload}


def dispatch(sup: Supervisor, conn: Connection, request: dict[str, Any]) -> None:
    """Run the handler of ``request["cmd"]``."""
    HANDLERS.get(request["cmd"], unknown)(sup, conn, request)
