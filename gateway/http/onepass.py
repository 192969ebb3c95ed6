"""A plain ``wsgi`` request read once: from the ASGI scope straight to its envelope.

The general path reads a request three times on its way to the broker: the
scope becomes a full WSGI environ (:mod:`gateway.http.environ`), the front
checks and routes that environ (:meth:`GatewayApp.prepare`), and the backend
walks it again for the forwarded headers (:meth:`WsgiBackend.envelope`). For a
request that the fast path serves nobody reads the rest of that environ.
:class:`ScopeReader` makes the same checks in one pass over ``scope["headers"]``,
with what it can know per route ahead of time (the route, its backend, its
guard and admission gate, its service name as bytes), and keeps only the keys
the envelope, the trace and the observing layer read::

    reader = ScopeReader(gateway_app, admission)
    call = reader.read(scope)      # a ScopeCall, or None: the general path serves it
    reader.begin(call)             # request id and trace, once its body may be read
    env = call.envelope(body)      # the same envelope WsgiBackend.envelope makes

It accepts only a request the general path would serve on the fast path,
unchanged: anything to refuse (framing, limits, Host, a path read strictly,
an unexpected expectation), the gateway's own endpoints, a route that is
migrated or not ``wsgi``, a route its guard refuses, and the rare shapes the
general path handles alone (an absolute-form target) return None, so every
refusal is still written, and answered, in one place. The reduced environ
(``call.fields``) holds the request's ``HTTP_*`` fields in the order and
joined form the full environ gives them, so :mod:`gateway.http.forwarding`
and :mod:`gateway.http.tracing` run on it unchanged; it is also what the
observing layer reads (``scope["gateway.environ"]``).
"""

from __future__ import annotations

import re
import urllib.parse
import uuid
from typing import Any

from gateway.http import tracing
from gateway.http.admission import Admission, Gate
from gateway.http.app import HEALTH, INTERNAL, GatewayApp, Guard, host_allowed
from gateway.http.asgi import serve_problem_page
from gateway.http.asgitypes import Receive, Scope, Send
from gateway.http.bodies import header_sizes, parse_length
from gateway.http.bridge import WsgiBackend
from gateway.http.chunked import buffer_chunked
from gateway.http.fastpath import FastWsgi, receive_body
from gateway.http.forwarding import request_id
from gateway.http.paths import BadPath, Target, check_path
from gateway.http.problems import Problem
from gateway.http.routing import Match
from protocol import codec

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CACHED = 4096   # distinct header names and paths remembered per process


class Plan:
    """What one plain ``wsgi`` route needs per request, computed once."""

    __slots__ = ("backend", "gate", "guard", "service")

    def __init__(self, backend: WsgiBackend, guard: Guard | None, gate: Gate | None) -> None:
        self.backend = backend
        self.guard = guard
        self.gate = gate
        self.service = backend.route.service.encode("utf-8")


class ScopeCall:
    """One request accepted by :class:`ScopeReader`: its checked parts and reduced environ."""

    __slots__ = ("chunked", "fields", "length", "match", "plan", "request_id", "scope",
                 "target")

    def __init__(self, scope: Scope, fields: dict[str, Any], target: Target, match: Match,
                 plan: Plan, length: str | None, chunked: bool) -> None:
        self.scope = scope
        self.fields = fields
        self.target = target
        self.match = match
        self.plan = plan
        self.length = length      # the Content-Length as sent (None: none)
        self.chunked = chunked    # Transfer-Encoding: chunked
        self.request_id = ""

    def envelope(self, body: bytes) -> codec.Envelope:
        """The ``http`` envelope of this request with ``body`` (SPEC "HTTP over ZeroMQ"),
        field for field what :meth:`WsgiBackend.envelope` makes of the full environ."""
        fields = self.fields
        scope = self.scope
        method = scope["method"]
        backend = self.plan.backend
        rid = self.request_id
        headers = [[n, v] for n, v in backend.forwarding.request_headers(fields, rid)]
        server = scope.get("server") or ("", 0)
        client = scope.get("client") or ("", 0)
        target = self.target
        http = {
            "method": method, "script_name": self.match.script_name,
            "path_info": self.match.path_info, "raw_path": target.raw_path,
            "query_string": target.query or "", "headers": headers,
            "scheme": fields["wsgi.url_scheme"],
            "server_name": fields["SERVER_NAME"],
            "server_port": str(server[1] or ""),
            "remote_addr": fields["REMOTE_ADDR"],
            "remote_port": str(client[1] or ""),
            "protocol": fields["SERVER_PROTOCOL"],
        }
        return codec.Envelope("http", rid=rid, idem=method in _SAFE, http=http,
                              payload=codec.Bytes(body))


# header name as sent -> its environ key ("" for a name with "_", never passed on)
_KEYS: dict[bytes, str] = {}


def _learn(name_b: bytes) -> str:
    """The environ key of a header name, exactly as :func:`environ_from_scope` makes it."""
    name = name_b.decode("latin-1")
    if "_" in name:
        key = ""
    elif name == "content-type":
        key = "CONTENT_TYPE"
    elif name == "content-length":
        key = "CONTENT_LENGTH"
    else:
        key = "HTTP_" + name.upper().replace("-", "_")
    if len(_KEYS) < _CACHED:
        _KEYS[name_b] = key
    return key


class ScopeReader:
    """Reads the ASGI scopes of one front worker's plain ``wsgi`` routes in one pass."""

    def __init__(self, app: GatewayApp, admission: Admission | None = None) -> None:
        self.app = app
        self.limits = app.limits
        self.allowed_hosts = app.allowed_hosts
        self.plans: dict[str, Plan] = {}
        for prefix, backend in app.backends.items():
            # Exactly the plain backend: a migrated route's backend is another type.
            if type(backend) is WsgiBackend:
                gate = admission.route_gate(backend.route) if admission else None
                self.plans[prefix] = Plan(backend, app.guards.get(prefix), gate)
        # raw path -> (decoded path, match, plan), or None for a path not served here
        self._paths: dict[str, tuple[str, Match, Plan] | None] = {}

    def read(self, scope: Scope) -> ScopeCall | None:
        """The checked request of ``scope``, or None when the general path must serve it."""
        extensions = scope.get("extensions") or {}
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        query: bytes = scope.get("query_string") or b""
        sent: bytes | None = extensions.get("gateway.target")
        try:
            raw = raw_path.decode("ascii")
            qs = query.decode("ascii")
            uri = sent.decode("ascii") if sent else (f"{raw}?{qs}" if qs else raw)
        except UnicodeDecodeError:
            return None
        limits = self.limits
        if len(uri) > limits.max_uri or uri[:1] != "/":
            return None   # 414, or an absolute-form target: read by the general path
        path_part, sep, query_part = uri.partition("?")
        if sep and (_CONTROL.search(query_part) or " " in query_part):
            return None
        try:
            known = self._paths[path_part]
        except KeyError:
            known = self._learn_path(path_part)
        if known is None:
            return None
        path, match, plan = known
        headers = scope["headers"]
        fields: dict[str, Any] = {}
        keys = _KEYS
        for name_b, value_b in headers:
            key = keys.get(name_b)
            if key is None:
                key = _learn(name_b)
            if not key:
                continue
            value = value_b.decode("latin-1")
            old = fields.get(key)
            if old is None:
                fields[key] = value
            elif key == "HTTP_HOST":
                return None   # more than one Host
            else:
                fields[key] = f"{old},{value}"
        if not self._acceptable(scope, fields, len(headers)):
            return None
        host = fields.get("HTTP_HOST")
        if self.allowed_hosts and path != HEALTH and \
                not host_allowed(host or "", self.allowed_hosts):
            return None
        if plan.guard is not None:
            try:
                plan.guard(match)
            except Problem:
                return None   # the general path answers the guard's problem
        te = fields.get("HTTP_TRANSFER_ENCODING")
        length = fields.get("CONTENT_LENGTH")
        server = scope.get("server") or ("", 0)
        client = scope.get("client") or ("", 0)
        # What forwarding, the envelope and the observing layer read besides the fields.
        fields["SERVER_NAME"] = str(server[0] or "")
        fields["SERVER_PROTOCOL"] = "HTTP/" + scope.get("http_version", "1.1")
        fields["REMOTE_ADDR"] = str(client[0] or "")
        fields["wsgi.url_scheme"] = scope.get("scheme", "http")
        fields["RAW_URI"] = uri
        fields["PATH_INFO"] = raw if "%" not in raw else \
            urllib.parse.unquote_to_bytes(raw).decode("latin-1")
        target = Target(path, path_part, query_part if sep else None)
        return ScopeCall(scope, fields, target, match, plan, length, bool(te))

    def _learn_path(self, raw_path: str) -> tuple[str, Match, Plan] | None:
        """Read and route ``raw_path`` strictly; None when the fast path does not serve it."""
        try:
            path = check_path(raw_path)
        except BadPath:
            return None   # not remembered: the general path answers 400 each time
        known: tuple[str, Match, Plan] | None = None
        if not (path.startswith(INTERNAL) or path == INTERNAL[:-1]):
            match = self.app.table.match(path)
            plan = self.plans.get(match.route.prefix) if match is not None else None
            if match is not None and plan is not None:
                known = (path, match, plan)
        if len(self._paths) < _CACHED:
            self._paths[raw_path] = known
        return known

    def _acceptable(self, scope: Scope, fields: dict[str, Any], count: int) -> bool:
        """False for what :func:`environ_from_scope` or :meth:`GatewayApp.check_limits`
        would refuse: Host, Expect, framing, header limits."""
        if "HTTP_HOST" not in fields and scope.get("http_version", "1.1") == "1.1":
            return False
        expect = fields.get("HTTP_EXPECT")
        if expect is not None and expect.strip().lower() != "100-continue":
            return False
        te = fields.get("HTTP_TRANSFER_ENCODING")
        cl = fields.get("CONTENT_LENGTH")
        if te is not None:
            # An empty value is read three different ways on the general path: left to it.
            if not te or cl or scope.get("http_version") == "1.0" or \
                    te.strip().lower() != "chunked":
                return False
        elif cl:
            length = parse_length(cl)
            if length is None or length > self.limits.max_body:
                return False
        elif cl is not None:
            return False   # an empty Content-Length: left to the general path
        limits = self.limits
        fields_n, total, longest = header_sizes(fields)
        return longest <= limits.max_header_line and \
            max(fields_n, count) <= limits.max_header_count and \
            total <= limits.max_header_total

    def begin(self, call: ScopeCall) -> None:
        """The request's id and trace (as :meth:`GatewayApp.prepare` sets them), and its
        route for the observing layer."""
        fields = call.fields
        call.request_id = fields["gateway.request_id"] = request_id(fields)
        tracing.begin(fields)
        fields["gateway.route"] = call.match.route


class OnePass:
    """Serves, before the general path, the requests :class:`ScopeReader` accepts.

    ::

        onepass = OnePass(fast, gateway_app, admission, chunked_cap=max_body)
        if await onepass(scope, receive, send):
            return              # served (or refused) here
        ...the general path...

    The steps are the general path's, in its order: a chunked body read
    ahead (``chunked_cap``, as :class:`~gateway.http.asgi.WsgiBridge` does),
    the request id and trace, the route's admission gate, then one broker
    round trip through ``fast`` (:meth:`FastWsgi.exchange`).
    """

    def __init__(self, fast: FastWsgi, app: GatewayApp, admission: Admission | None = None,
                 chunked_cap: int = 0) -> None:
        self.fast = fast
        self.reader = ScopeReader(app, admission)
        self.chunked_cap = chunked_cap
        self.served = 0   # requests this step took
        self.retry_after = admission.retry_after if admission is not None else \
            app.config.retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        call = self.reader.read(scope)
        if call is None:
            return False
        self.served += 1
        scope["gateway.environ"] = call.fields   # what gateway.metrics labels it with
        if call.chunked and self.chunked_cap:
            buffered = await buffer_chunked(receive, self.chunked_cap)
            if buffered is None:
                return True   # the parser refused the body (it answered 400) or the client left
            if isinstance(buffered, Problem):
                await serve_problem_page(send, buffered, uuid.uuid4().hex)
                return True
            receive = buffered
        self.reader.begin(call)
        gate = call.plan.gate
        if gate is not None and not await gate.acquire():
            await serve_problem_page(send, gate.refusal(self.retry_after), call.request_id)
            return True
        try:
            self.fast.served += 1
            await self.serve(call, receive, send)
        finally:
            if gate is not None:
                gate.release()
        return True

    async def serve(self, call: ScopeCall, receive: Receive, send: Send) -> None:
        """The body, the envelope, the broker round trip."""
        plan = call.plan
        backend = plan.backend
        try:
            body = await receive_body(receive, backend.limits.max_body, call.length,
                                      call.chunked)
        except Problem as problem:
            await serve_problem_page(send, problem, call.request_id)
            return
        if body is None:
            return  # the client left while sending its body
        hook = (call.scope.get("extensions") or {}).get("gateway.disconnect")
        await self.fast.exchange(backend, plan.service, call.envelope(body), call.request_id,
                                 hook, receive, send)
