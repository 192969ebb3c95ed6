"""The front's HTTP parser: uvicorn's httptools protocol, refusing as problem+json.

::

    ProblemProtocol.header_timeout = limits.client_header_timeout   # per worker, before serving
    uvicorn.Config(app, http=ProblemProtocol, ...)

:class:`ProblemProtocol` answers every parser-level refusal (CL+TE, bad
chunking, a bad request line, a header block past the cap) as problem+json
with a request id, and adds what uvicorn lacks against slow clients: nginx's
``client_header_timeout`` and ``client_body_timeout`` (408) and a cap on
connections per client address (429). :mod:`gateway.http.server` serves it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.http.disconnect import KEY as DISCONNECT
from gateway.http.disconnect import Disconnect
from gateway.http.problems import Problem, error_page

# How long a draining front keeps an idle keep-alive connection open for one last request.
DRAIN_IDLE = 1.0


class ProblemProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; refusals are problem+json, slow clients are cut off.

    llhttp refuses what a strict intermediary must (Content-Length with
    Transfer-Encoding, bad chunk sizes, obs-fold, bare CR, control
    characters); its refusals become 400 problems. A request line or header
    block that grows past ``header_cap`` bytes is refused with 414 or 431
    before it is buffered whole.

    Slow clients (slowloris) hold a connection, never a thread, and not for
    long (the settings are :class:`gateway.http.config.HttpLimits`):

    - ``header_timeout``: from a connection's start, or from the first byte
      of a request head on a kept-alive connection, the whole head must
      arrive within it, else 408 and close (nginx ``client_header_timeout``);
    - ``body_timeout``: the longest gap between two reads of a request body,
      else 408 and close, or only close once the response has started (nginx
      ``client_body_timeout``). A gap while the front itself does not read
      (flow control, a request waiting for admission or ``100-continue``) is
      not the client's and does not count;
    - ``per_client``: the connections one client address may hold open in
      this worker process (0: any); one more is answered 429 on its first
      bytes and closed, without parsing it.

    The timers are armed only for heads and bodies that do not arrive in one
    read, so a request that comes whole costs no timer at all.
    """

    header_cap = 64 * 1024 + 8192
    uri_cap = 8192
    header_timeout = 10.0
    body_timeout = 30.0
    per_client = 0
    retry_after = 1
    # client address -> open connections in this worker process (each worker counts its own)
    clients: dict[str, int] = {}
    # Called with each refusal made here, the client's (host, port) and the request id
    # answered (gateway.metrics counts and logs them); None: neither.
    on_refusal: Any = None

    def _refuse(self, problem: Problem) -> None:
        """Answer ``problem`` and close: the request never reaches the app."""
        rid = uuid.uuid4().hex
        if self.on_refusal is not None:
            self.on_refusal(problem, self.client, rid)
        self.transport.write(error_page(problem, rid))
        self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._in_head = False
        self._in_body = False
        self._body_seen = 0.0
        self._body_timer: asyncio.TimerHandle | None = None
        self._counted: str | None = None
        self._refused = False
        host = self.client[0] if self.client else ""
        if self.per_client and host:
            held = self.clients.get(host, 0)
            if held >= self.per_client:
                self._refused = True
            else:
                self.clients[host] = held + 1
                self._counted = host
        # The first head is awaited from the connection's start: an idle connection counts.
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            # The request being served hears of it by callback (gateway.http.disconnect).
            hook = self.cycle.scope["extensions"].get(DISCONNECT)
            if isinstance(hook, Disconnect):
                hook.fire()
        host = self._counted
        if host is not None:
            self._counted = None
            held = self.clients.get(host, 1) - 1
            if held > 0:
                self.clients[host] = held
            else:
                self.clients.pop(host, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._refuse_connection()
            return
        super().data_received(data)
        # Lazily: only a head or body left unfinished by this read needs a timer.
        if self._in_head and self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
        if self._in_body and self._body_timer is None and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)

    def _refuse_connection(self) -> None:
        """429 for a connection past the per-client cap, before anything is parsed."""
        self._refused = False
        problem = Problem(429, "too many connections from this client address",
                          code="too_many_connections",
                          headers=[("Retry-After", str(self.retry_after))])
        self._refuse(problem)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not (self._in_head or self.cycle is None):
            return
        busy = self.cycle is not None and not self.cycle.response_complete
        if busy or self.flow.read_paused:
            # A pipelined head waits on the front, not on the client: look again later.
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
            return
        problem = Problem(408, f"the request head did not arrive within "
                               f"{self.header_timeout:g} s", code="request_timeout")
        self._refuse(problem)

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if not self._in_body or self.transport.is_closing():
            return
        now = self.loop.time()
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            self._body_seen = now  # the front is not reading: the gap is not the client's
        gap = now - self._body_seen
        if gap < self.body_timeout:
            self._body_timer = self.loop.call_later(self.body_timeout - gap,
                                                    self._body_timed_out)
            return
        started = cycle is None or cycle.response_started
        if cycle is not None and not cycle.response_complete:
            # The app's next receive() sees a disconnect; anything it still sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        if not started:
            problem = Problem(408, f"the request body stalled for {self.body_timeout:g} s",
                              code="request_timeout")
            self._refuse(problem)
            return
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._refusal: Problem | None = None
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.uri_cap:
            self._refusal = Problem(414, f"the request target exceeds {self.uri_cap} bytes",
                                    code="uri_too_long")
            raise ValueError("request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.header_cap:
            self._refusal = Problem(431, "too many or too large header fields",
                                    code="headers_too_large")
            raise ValueError("header block too large")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._in_body = True
        self._body_seen = self.loop.time()
        # The request target exactly as sent (a bare "?" and absolute-form included), for
        # the front's one strict reading of it (gateway.http.asgi, RAW_URI).
        scope: dict[str, Any] = self.scope  # type: ignore[assignment]
        scope["extensions"] = {"gateway.target": bytes(self.url), DISCONNECT: Disconnect()}
        super().on_headers_complete()
        if getattr(self, "_draining", False) and self.cycle is not None:
            self.cycle.keep_alive = False  # the last answer on this connection
        if scope.get("http_version") == "1.0" and self.cycle is not None:
            _close_delimited(self.cycle)

    def on_body(self, body: bytes) -> None:
        self._body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def shutdown(self) -> None:
        """Graceful stop (the front drains): an idle keep-alive connection is not cut at once.

        uvicorn closes it on the spot, which resets a request the client sent a
        moment before (it sits unread in the socket). Here the connection answers
        whatever comes within ``DRAIN_IDLE`` seconds with ``Connection: close``,
        and is closed after that if nothing came; a busy one closes after its
        current answer, as uvicorn does.
        """
        self._draining = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(DRAIN_IDLE, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if (self.cycle is None or self.cycle.response_complete) \
                and not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """Answer a parser-level refusal as problem+json and close the connection."""
        problem = getattr(self, "_refusal", None) or Problem(
            400, "the request is not valid HTTP/1.1 (RFC 9112)", code="bad_request")
        self._refuse(problem)


def _close_delimited(cycle: Any) -> None:
    """Frame an HTTP/1.0 response without Content-Length by closing the connection.

    uvicorn answers such a response with ``Transfer-Encoding: chunked``, which an
    HTTP/1.0 client cannot read (RFC 9112 6.1: a server MUST NOT send
    Transfer-Encoding unless the request is HTTP/1.1). The body is sent as it
    comes and the connection closes after it (uvicorn closes HTTP/1.0 connections).
    """
    send = cycle.send

    async def close_delimited_send(message: Any) -> None:
        if message["type"] == "http.response.start":
            names = {bytes(name).lower() for name, _ in message.get("headers", ())}
            if b"content-length" not in names and b"transfer-encoding" not in names:
                cycle.chunked_encoding = False
                cycle.expected_content_length = 1 << 62
        elif message["type"] == "http.response.body" and not message.get("more_body") \
                and cycle.chunked_encoding is False and cycle.expected_content_length >= 1 << 61:
            cycle.expected_content_length = len(message.get("body", b""))
        await send(message)

    cycle.send = close_delimited_send
