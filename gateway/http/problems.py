"""RFC 9457 problem details: every error the front answers, in one shape.

::

    raise Problem(504, "the upstream did not answer in time", code="timeout")
    ...
    status, headers, body = render(problem, request_id="ab12...")
    # body: {"type": "about:blank", "title": "Gateway Timeout", "status": 504,
    #        "detail": "...", "code": "timeout", "request_id": "ab12..."}

:func:`from_protocol` maps ``protocol.errors`` exceptions by their ``status``
(protocol/errors.py is the source of the status table). A traceback never
goes into a problem: a remote error's traceback text is dropped here.
"""

from __future__ import annotations

import http
import json
from collections.abc import Mapping, Sequence
from typing import Any

from protocol import errors as perrors

PROBLEM_TYPE = "application/problem+json"

_PHRASES = {s.value: s.phrase for s in http.HTTPStatus}


def reason(status: int) -> str:
    """The standard reason phrase of ``status``."""
    return _PHRASES.get(status, "Error")


class Problem(Exception):
    """An error answer: status, a human detail, a machine code and extra headers."""

    def __init__(self, status: int, detail: str, code: str = "",
                 headers: Sequence[tuple[str, str]] = (),
                 extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _default_code(status)
        self.headers = list(headers)
        # RFC 9457 extension members (say, a refused gate's reasons); never the core ones.
        self.extra = dict(extra or {})


def _default_code(status: int) -> str:
    return reason(status).lower().replace(" ", "_").replace("-", "_")


def render(problem: Problem, request_id: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """The status line, headers and JSON body of ``problem``."""
    body = json.dumps({
        **problem.extra,
        "type": "about:blank",
        "title": reason(problem.status),
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
        "request_id": request_id,
    }, separators=(",", ":"), sort_keys=True).encode("utf-8")
    headers = [("Content-Type", PROBLEM_TYPE), ("Content-Length", str(len(body))),
               ("X-Request-ID", request_id), ("Cache-Control", "no-store")]
    headers.extend(problem.headers)
    return f"{problem.status} {reason(problem.status)}", headers, body


def from_protocol(exc: perrors.ProtocolError, retry_after: int) -> Problem:
    """The problem for a protocol error; 503 carries Retry-After."""
    status = exc.status
    if isinstance(exc, perrors.RemoteError) and exc.code == "remote":
        detail = "the service raised an error"
    else:
        detail = str(exc.message) or reason(status)
    headers = [("Retry-After", str(retry_after))] if status == 503 else []
    return Problem(status, detail, code=exc.code, headers=headers)


def error_page(problem: Problem, request_id: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, for errors found while parsing."""
    status, headers, body = render(problem, request_id)
    lines = [f"HTTP/1.1 {status}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
