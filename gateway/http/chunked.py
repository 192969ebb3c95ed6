"""Request bodies sent chunked, read ahead so the front sees a length; response lengths.

::

    replay = await buffer_chunked(receive, cap)   # a receive() that replays the body,
                                                  # None (client gone) or a 503 Problem
    declared_length(headers)                      # a response's Content-Length, or -1
"""

from __future__ import annotations

import logging
import tempfile

from gateway.http.asgitypes import Message, Receive
from gateway.http.problems import Problem

log = logging.getLogger("gateway.http.asgi")

SPOOL_MEMORY = 1 << 20   # a buffered chunked body past this goes to a temporary file
SPOOL_PIECE = 1 << 16    # ... and is replayed to the front in pieces of this size


def declared_length(headers: list[tuple[str, str]]) -> int:
    """The response's ``Content-Length`` as a number, or -1 when it has none (or a bad one)."""
    for name, value in headers:
        if name.lower() == "content-length":
            value = value.strip()
            return int(value) if value.isdigit() and value.isascii() else -1
    return -1


async def buffer_chunked(receive: Receive, cap: int) -> Receive | Problem | None:
    """Read a chunked body ahead, up to ``cap`` + 1 bytes; a ``receive`` that replays it.

    None when the body never completed: llhttp refused a malformed chunk (and
    :class:`~gateway.http.parsing.ProblemProtocol` answered 400 and closed), or
    the client went away. Past ``cap`` the rest still streams, so the front
    answers its usual 413. The body is held in memory up to ``SPOOL_MEMORY``
    bytes and in an unlinked temporary file beyond (nginx's
    ``client_body_buffer_size`` and ``client_body_temp_path``), so a large
    upload does not grow the worker; a temporary file that cannot be written
    (a full disk) is a 503 problem, never a hang.
    """
    # Not a with-block: the replay below owns the file and closes it once read out; a front
    # that answers without reading the body (404, 401) drops the replay, and the unlinked
    # file goes with it when it is collected.
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
    size = 0
    more = True
    try:
        while more and size <= cap:
            message = await receive()
            if message["type"] == "http.disconnect":
                spool.close()
                return None
            data = message.get("body", b"")
            if data:
                size += len(data)
                spool.write(data)  # page-cache writes of one chunk: short enough for the loop
            more = bool(message.get("more_body", False))
        spool.seek(0)
    except OSError as exc:
        spool.close()
        log.warning("cannot buffer a chunked request body: %s", exc)
        return Problem(503, "the gateway cannot buffer the request body now",
                       code="unavailable", headers=[("Retry-After", "1")])

    async def replaying() -> Message:
        if spool.closed:
            return await receive()
        piece = spool.read(SPOOL_PIECE)
        if piece:
            return {"type": "http.request", "body": piece, "more_body": True}
        spool.close()
        return {"type": "http.request", "body": b"", "more_body": more}
    return replaying
