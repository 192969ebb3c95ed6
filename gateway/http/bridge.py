"""The ``wsgi`` and ``rpc`` backends: HTTP requests carried over ZeroMQ through the broker.

::

    backend = WsgiBackend(route, client, limits, forwarding)   # see gateway.http.backends.wsgi
    backend = RpcBackend(route, client, limits, contracts)     # see gateway.http.backends.rpc
    backend = RpcBackend(route, client, limits, contracts, caller)  # calls composed at the root

``wsgi``: the request becomes an envelope of kind ``http`` (SPEC "HTTP over
ZeroMQ"); a worker running :mod:`protocol.wsgi` answers ``http-response``
and, when the body streams, ``http-body`` chunks, which are passed on as
they arrive. The route's timeout bounds the wait for the head; after it,
``idle_timeout`` bounds each gap (SPEC 2.7), and a stream that stalls or
whose HTTP client goes away is cancelled (SPEC 2.11) and its connection cut.
``rpc``: ``POST <prefix>/<service>/<method>`` (or
``<prefix>/<method>`` when the route names its service) with a JSON body in
the JSON-only view; params are checked against the contract at the edge
(422), the call is made by the ``caller`` handed in (:mod:`gateway.http.rpccall`;
the plain broker call by default) and the result comes back as JSON. A
configured rpc service without a contract is called untyped: its JSON goes
through as it is (SPEC 7.3).
Protocol errors become problems by their code; a configured wsgi service
that has no worker is 503, not 404.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from typing import Any, cast

from gateway.http.bodies import request_body
from gateway.http.config import HttpLimits, Route
from gateway.http.context import Call
from gateway.http.forwarding import Forwarding
from gateway.http.problems import Problem
from gateway.http.rpccall import RpcCaller, direct
from gateway.http.wsgitypes import StartResponse
from protocol import codec
from protocol import errors as perrors
from protocol.client import Client
from protocol.contract import Contract

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class BadReply(perrors.ProtocolError):
    """The worker side answered something that is not a valid HTTP reply: 502, not 400.

    The request envelope is built here, so an envelope error in the replies
    is never the HTTP client's fault.
    """

    code = "bad_reply"
    status = 502


class WsgiBackend:
    """Ships requests of one route to the broker service hosting a WSGI app."""

    def __init__(self, route: Route, client: Client, limits: HttpLimits,
                 forwarding: Forwarding) -> None:
        self.route = route
        self.client = client
        self.limits = limits
        self.forwarding = forwarding
        self.timeout = route.timeout or limits.timeout

    def envelope(self, call: Call) -> codec.Envelope:
        """The ``http`` envelope of one request (SPEC "HTTP over ZeroMQ")."""
        environ = call.environ
        body = request_body(environ, self.limits.max_body)
        method = environ["REQUEST_METHOD"]
        headers = [[n, v] for n, v in self.forwarding.request_headers(environ, call.request_id)]
        http = {
            "method": method, "script_name": call.match.script_name,
            "path_info": call.match.path_info, "raw_path": call.target.raw_path,
            "query_string": call.target.query_string, "headers": headers,
            "scheme": environ.get("wsgi.url_scheme", "http"),
            "server_name": environ.get("SERVER_NAME", ""),
            "server_port": str(environ.get("SERVER_PORT", "")),
            "remote_addr": environ.get("REMOTE_ADDR") or "",
            "remote_port": str(environ.get("REMOTE_PORT") or ""),
            "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        }
        return codec.Envelope("http", rid=call.request_id,
                              idem=method in _SAFE, http=http,
                              shadow=bool(environ.get("gateway.shadow")),
                              payload=codec.Bytes(body.read_all() if body else b""))

    def __call__(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        replies = cast(Generator[codec.Envelope, None, None], self.client.request(
            self.route.service, self.envelope(call), self.timeout, self.route.idle_timeout))
        try:
            first = next(replies)
        except perrors.UnknownService:
            replies.close()
            raise perrors.Unavailable("no live worker for this route") from None
        except StopIteration:
            raise perrors.WorkerLost("the worker answered nothing") from None
        except perrors.EnvelopeError as exc:
            replies.close()
            raise BadReply(f"the worker's reply is not a valid envelope: {exc.message}") from None
        if first.kind != "http-response" or not isinstance(first.http, dict):
            replies.close()
            raise BadReply("the worker did not answer http-response")
        try:
            status, pairs = _head(first.http)
        except (KeyError, TypeError, ValueError) as exc:
            replies.close()
            raise BadReply(f"the worker's http-response is malformed: {exc!r}"[:300]) from None
        start_response(status, self.forwarding.response_headers(pairs, call.request_id))
        chunk = first.payload if isinstance(first.payload, bytes) else b""
        if not first.more:
            replies.close()
            return [chunk] if chunk else []
        return StreamedBody(chunk, replies)


def _head(http: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """The status line and header pairs of an http-response (ValueError/TypeError if bad)."""
    status = http["status"]
    if type(status) is not int or not 100 <= status <= 999:
        raise ValueError(f"status {status!r}")
    reason = http.get("reason") or ""
    if not isinstance(reason, str) or not reason.isprintable():
        raise ValueError(f"reason {reason!r}")
    pairs: list[tuple[str, str]] = []
    for name, value in http.get("headers") or ():
        if not (isinstance(name, str) and isinstance(value, str)):
            raise TypeError("header names and values must be strings")
        pairs.append((name, value))
    return f"{status} {reason}".rstrip(), pairs


class StreamedBody:
    """The body of a streamed reply: each part's bytes as it arrives.

    A class, not a generator: the server closes the body when the HTTP
    client goes away, possibly before iterating it, and closing the
    ``request()`` generator is what cancels the request at the broker and
    the worker (SPEC 2.11). A part that fails (an error part, a gap longer
    than the idle timeout) raises, so the server cuts the connection rather
    than end a truncated body as if it were complete.
    """

    def __init__(self, first: bytes, replies: Generator[codec.Envelope, None, None]) -> None:
        self._first = first
        self._replies = replies

    def __iter__(self) -> Iterator[bytes]:
        try:
            if self._first:
                yield self._first
            for env in self._replies:
                if isinstance(env.payload, bytes) and env.payload:
                    yield env.payload
        except perrors.EnvelopeError as exc:
            raise BadReply(f"the worker's reply is not a valid envelope: {exc.message}") from None
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading; a reply not yet complete is cancelled."""
        self._replies.close()


class RpcBackend:
    """``POST <prefix>/<service>/<method>``: one call, JSON in and out."""

    def __init__(self, route: Route, client: Client, limits: HttpLimits,
                 contracts: dict[str, Contract], caller: RpcCaller | None = None,
                 untyped: tuple[str, ...] = ()) -> None:
        self.route = route
        self.untyped = frozenset(untyped)
        self.limits = limits
        self.contracts = contracts
        self.timeout = route.timeout or limits.timeout
        # What stands behind a call (FATAL check, migration) is the composition root's.
        self.caller = caller or direct(client)

    def target(self, path_info: str) -> tuple[str, str]:
        """(service, method) named by the path below the mount."""
        parts = path_info.strip("/").split("/")
        if self.route.service and len(parts) == 1 and parts[0]:
            return self.route.service, parts[0]
        if not self.route.service and len(parts) == 2 and all(parts):
            return parts[0], parts[1]
        shape = "<method>" if self.route.service else "<service>/<method>"
        raise Problem(404, f"rpc paths look like {self.route.prefix}/{shape}", code="no_route")

    def __call__(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        environ = call.environ
        service, method = self.target(call.match.path_info)
        if environ["REQUEST_METHOD"] != "POST":
            raise Problem(405, "rpc methods are called with POST", headers=[("Allow", "POST")])
        ctype = environ.get("CONTENT_TYPE", "application/json").split(";")[0].strip().lower()
        if ctype and ctype != "application/json" and not ctype.endswith("+json"):
            raise Problem(415, "the body must be application/json", code="unsupported_media")
        body = request_body(environ, self.limits.max_body)
        raw = body.read_all() if body else b""
        try:
            params = rpc_params(raw)
        except perrors.EnvelopeError as exc:
            raise Problem(400, f"the body is not a valid payload: {exc.message}"[:300],
                          code="envelope") from None
        contract = self.contracts.get(service)
        if contract is None and not self.route.service and service not in self.untyped:
            # Services reachable by URL come from the contracts and the config, never
            # from the client.
            raise Problem(404, f"no rpc service {service!r}: no contract describes it and "
                          f"no configured rpc service has that name", code="unknown_service")
        schema: Any = None
        idem = False
        result_schema: Any = None
        if contract is not None:
            contract.validate_params(method, params)  # UnknownMethod 404, InvalidParams 422
            schema = contract.schema_for(method)
            result_schema = contract.result_schema_for(method)
            idem = contract.is_idempotent(method)
        result = self.caller(service, method)(call, params, timeout=self.timeout, idem=idem,
                                              schema=schema)
        try:
            view = codec.to_json(result, result_schema if isinstance(result_schema, dict) else None)
        except perrors.EnvelopeError:
            view = codec.to_json(result)
        data = codec.dumps(view)  # canonical (SPEC 4.8), as 7.3 asks of the result
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(data))),
                                  ("X-Request-ID", call.request_id)])
        return [data]


def rpc_params(raw: bytes) -> Any:
    """The params of an rpc body: its JSON-only view decoded as a payload frame (SPEC 7.3).

    The body goes through the same strict reader as every ZeroMQ payload
    (:func:`protocol.codec.loads`), so what a conforming receiver must reject
    there (SPEC 4.3-4.8: duplicate keys, a byte order mark, lone surrogates,
    NaN and Infinity, numbers overflowing binary64, bad base64, unknown ``$``
    tags, nesting too deep, trailing data) is rejected here too, with the
    same message. There are no frames, so ``{"$b": n}`` is refused as well:
    the JSON-only view carries bytes inline. An empty body means ``null``.
    """
    if not raw:
        return None
    return codec.loads(raw, (), "body")
