"""The per-request context handed from the front to a backend.

::

    call = Call(environ, request_id, target, match)
    backend(call, start_response)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.http.paths import Target
from gateway.http.routing import Match


@dataclass(slots=True)
class Call:
    """One request after checks and routing: environ, request id, target, matched route."""

    environ: dict[str, Any]
    request_id: str
    target: Target
    match: Match
