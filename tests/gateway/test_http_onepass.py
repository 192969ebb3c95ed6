"""The one-pass reader builds the envelope the general path builds, byte for byte.

The general path is ``environ_from_scope`` -> ``GatewayApp.prepare`` ->
``WsgiBackend.envelope``; the one-pass one is ``ScopeReader.read`` ->
``begin`` -> ``ScopeCall.envelope``. Both draw their random ids (request id,
message id, span id) from the same sources, which are made repeatable here,
so the encoded frames must be equal. What the reader declines must be
something the general path refuses or serves some other way.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.http.admission import Admission
from gateway.http.app import GatewayApp
from gateway.http.backends import Parts
from gateway.http.config import GatewayHttpConfig, HttpLimits, Route
from gateway.http.environ import environ_from_scope
from gateway.http.onepass import ScopeReader
from gateway.http.problems import Problem
from protocol import codec

BROKER = "tcp://127.0.0.1:1"   # never connected: envelopes are only built
OBSERVED = ("gateway.route", "gateway.request_id", "gateway.trace_id", "gateway.span_id",
            "gateway.parent_span_id", "RAW_URI", "PATH_INFO", "HTTP_AUTHORIZATION",
            "HTTP_REFERER", "HTTP_USER_AGENT", "gateway.service", "gateway.runtime")
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def scope(target: bytes, headers: list[tuple[bytes, bytes]], method: str = "GET",
          version: str = "1.1", client: tuple[str, int] | None = ("127.0.0.1", 50123),
          host: bool = True) -> dict[str, Any]:
    """An ASGI scope as the front's server makes it (the raw target in its extensions)."""
    path, _, query = target.partition(b"?")
    if host:
        headers = [(b"host", b"gw.example:8080"), *headers]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": version,
            "method": method, "scheme": "http", "path": path.decode("latin-1"),
            "raw_path": path, "query_string": query, "root_path": "",
            "headers": headers, "client": client, "server": ("127.0.0.1", 8080),
            "extensions": {"gateway.target": target}}


ACCEPTED: dict[str, tuple[dict[str, Any], bytes]] = {
    "plain GET": (scope(b"/", [(b"user-agent", b"curl/8")]), b""),
    "repeated fields": (scope(b"/api/x", [
        (b"accept", b"text/html"), (b"cookie", b"a=1"), (b"accept", b"*/*"),
        (b"cookie", b"b=2"), (b"x-forwarded-for", b"10.0.0.9"), (b"via", b"1.0 edge"),
        (b"x-forwarded-for", b"10.0.0.8")]), b""),
    "percent-encoded UTF-8 path": (scope(b"/api/caf%C3%A9/w%C3%B6rld?q=%C3%A9t%C3%A9", []), b""),
    "non-ASCII header value": (scope(b"/api/x", [(b"x-name", b"caf\xe9"),
                                                 (b"referer", b"http://a/\xff")]), b""),
    "empty query": (scope(b"/api/x?", []), b""),
    "query only marks": (scope(b"/api/x?a=%20b&c&&d=", []), b""),
    "HEAD": (scope(b"/api/x", [], method="HEAD"), b""),
    "POST with a length": (scope(b"/api/form", [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", b"7")], method="POST"), b"a=1&b=2"),
    "chunked body": (scope(b"/api/up", [(b"transfer-encoding", b"chunked"),
                                        (b"content-type", b"text/plain")], method="PUT"),
                     b"x" * 70000),
    "valid traceparent and tracestate": (scope(b"/", [
        (b"tracestate", b"congo=t61rcWkgMzE"), (b"traceparent", TP.encode())]), b""),
    "invalid traceparent drops tracestate": (scope(b"/", [
        (b"traceparent", b"00-zz-yy-01"), (b"tracestate", b"a=b")]), b""),
    "Connection names a field": (scope(b"/api/x", [
        (b"connection", b"keep-alive, x-secret"), (b"x-secret", b"s"), (b"x-kept", b"k"),
        (b"keep-alive", b"timeout=5"), (b"te", b"trailers")]), b""),
    "underscore names dropped": (scope(b"/api/x", [(b"x_forwarded_for", b"1.2.3.4"),
                                                   (b"x-ok", b"1")]), b""),
    "HTTP/1.0 without Host": (scope(b"/api/x", [], version="1.0", host=False), b""),
    "Expect 100-continue": (scope(b"/api/x", [(b"expect", b"100-Continue"),
                                              (b"content-length", b"2")], method="POST"),
                            b"ok"),
    "request id kept": (scope(b"/api/x", [(b"x-request-id", b"abc-123")]), b""),
    "bad request id replaced": (scope(b"/api/x", [(b"x-request-id", b"a b")]), b""),
    "gateway pin and shadow never forwarded": (scope(b"/api/x", [
        (b"x-gateway-runtime", b"py3"), (b"x-gateway-token", b"t"), (b"x-shadow", b"1"),
        (b"authorization", b"Basic dTpw")]), b""),
    "mount root with a slash": (scope(b"/api/", []), b""),
    "mount root without a slash": (scope(b"/api", []), b""),
    "no client address": (scope(b"/api/x", [], client=None), b""),
    "mixed-case names as another server sends them": (scope(b"/api/x", [
        (b"X-Mixed", b"1"), (b"x-mixed", b"2"), (b"Content-Type", b"a/b")]), b""),
}

DECLINED: dict[str, dict[str, Any]] = {
    "escaped slash": scope(b"/api/a%2Fb", []),
    "dot segment": scope(b"/api/%2e%2e/x", []),
    "empty segment": scope(b"/api//x", []),
    "two Host fields": scope(b"/api/x", [(b"host", b"other")]),
    "no Host in HTTP/1.1": scope(b"/api/x", [], host=False),
    "unknown expectation": scope(b"/api/x", [(b"expect", b"magic")]),
    "length and chunked": scope(b"/api/x", [(b"content-length", b"3"),
                                            (b"transfer-encoding", b"chunked")], "POST"),
    "gzip coding": scope(b"/api/x", [(b"transfer-encoding", b"gzip")], "POST"),
    "length over the cap": scope(b"/api/x", [(b"content-length", b"99999999")], "POST"),
    "length not a number": scope(b"/api/x", [(b"content-length", b"1e3")], "POST"),
    "two lengths": scope(b"/api/x", [(b"content-length", b"3"),
                                     (b"content-length", b"3")], "POST"),
    "target too long": scope(b"/api/" + b"a" * 9000, []),
    "field too long": scope(b"/api/x", [(b"x-big", b"v" * 9000)]),
    "too many fields": scope(b"/api/x", [(b"x-n", b"1")] * 120),
    "control byte in the query": scope(b"/api/x?a=\x01", []),
    "non-ASCII target": scope(b"/api/caf\xc3\xa9", []),
    "absolute-form target": scope(b"http://gw.example/api/x", []),
    "the gateway's own endpoint": scope(b"/_gateway/health", []),
    "a static route": scope(b"/files/a.txt", []),
    "a route its guard refuses": scope(b"/down/x", []),
    "Host not allowed": scope(b"/api/x", [(b"x-a", b"1")], host=False) | {
        "headers": [(b"host", b"evil.example")]},
}


def _refuse_down(match: Any) -> None:
    raise Problem(503, "the service is FATAL", code="unavailable")


@pytest.fixture(params=["strict", "behind proxies"])
def app(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[GatewayApp]:
    """A front with wsgi mounts at / and /api, a static one and a guarded one: with
    allowed hosts and no trusted proxy, or any Host behind one trusted proxy."""
    strict = request.param == "strict"
    config = GatewayHttpConfig(
        routes=(Route("/", "wsgi", service="hello"), Route("/api", "wsgi", service="api"),
                Route("/files", "static", directory=str(tmp_path)),
                Route("/down", "wsgi", service="down")),
        limits=HttpLimits(max_body=1 << 20, max_header_count=100),
        broker=BROKER, allowed_hosts=("gw.example", "*.example.org") if strict else (),
        trusted_proxies=0 if strict else 1)
    parts = Parts(config)
    front = GatewayApp(config, parts=parts, guards={"/down": _refuse_down})
    try:
        yield front
    finally:
        front.close()
        parts.client.close()


@pytest.fixture
def repeatable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every random id drawn from a fixed stream (os.urandom and the random module)."""
    monkeypatch.setattr(os, "urandom", lambda n: bytes(range(n)))


def general(app: GatewayApp, sc: dict[str, Any], body: bytes) -> tuple[dict[str, Any], Any]:
    """The general path's environ and envelope for ``sc``."""
    environ = environ_from_scope(dict(sc))
    assert isinstance(environ, dict)
    call = app.prepare(environ)
    assert call is not None
    environ["wsgi.input"] = io.BytesIO(body)
    return environ, app.backends[call.match.route.prefix].envelope(call)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_envelope_equals_the_general_paths(app: GatewayApp, repeatable: None, name: str) -> None:
    sc, body = ACCEPTED[name]
    if app.allowed_hosts and name == "HTTP/1.0 without Host":
        assert ScopeReader(app).read(dict(sc)) is None    # no name to vouch for: 400
        assert _general_outcome(app, sc) == "refused 400"
        return
    random.seed(7)
    environ, expected = general(app, sc, body)
    reader = ScopeReader(app)
    random.seed(7)
    call = reader.read(dict(sc))
    assert call is not None, "the reader declined a request the fast path serves"
    reader.begin(call)
    got = call.envelope(body)
    assert codec.encode(got) == codec.encode(expected)
    assert got.http == expected.http and got.payload == body
    assert call.request_id == environ["gateway.request_id"]
    for key in OBSERVED:
        assert call.fields.get(key) == environ.get(key), key
    assert ("gateway.path" in call.fields) is False


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_second_reading_uses_the_remembered_path(app: GatewayApp, repeatable: None,
                                                 name: str) -> None:
    sc, body = ACCEPTED[name]
    reader = ScopeReader(app)
    if app.allowed_hosts and name == "HTTP/1.0 without Host":
        assert reader.read(dict(sc)) is None and reader.read(dict(sc)) is None
        return
    assert reader.read(dict(sc)) is not None
    random.seed(3)
    call = reader.read(dict(sc))
    assert call is not None
    reader.begin(call)
    random.seed(3)
    _, expected = general(app, sc, body)
    assert codec.encode(call.envelope(body)) == codec.encode(expected)


def _general_outcome(app: GatewayApp, sc: dict[str, Any]) -> str:
    environ = environ_from_scope(dict(sc))
    if isinstance(environ, Problem):
        return f"refused {environ.status}"
    try:
        call = app.prepare(environ)
    except Problem as problem:
        return f"refused {problem.status}"
    if call is None:
        return "gateway endpoint"
    if app.refuses(call.target.path):
        return "guard refuses"
    return f"served by {type(app.backends[call.match.route.prefix]).__name__}"


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_declined_requests_are_not_the_fast_paths(app: GatewayApp, name: str) -> None:
    sc = DECLINED[name]
    if name == "Host not allowed" and not app.allowed_hosts:
        assert ScopeReader(app).read(dict(sc)) is not None   # any Host is served
        return
    assert ScopeReader(app).read(dict(sc)) is None
    outcome = _general_outcome(app, sc)
    if name == "absolute-form target":
        assert outcome == "served by WsgiBackend"   # the general path reads its authority
    else:
        assert not outcome.endswith("WsgiBackend"), outcome


def test_declined_paths_stay_declined_when_remembered(app: GatewayApp) -> None:
    reader = ScopeReader(app)
    for _ in range(2):
        assert reader.read(scope(b"/files/a.txt", [])) is None
        assert reader.read(scope(b"/_gateway/health", [])) is None
        assert reader.read(scope(b"/api/a%2Fb", [])) is None


def test_guard_is_asked_on_every_request(app: GatewayApp) -> None:
    down = [True]

    def guard(match: Any) -> None:
        if down[0]:
            raise Problem(503, "FATAL", code="unavailable")
    app.guards["/api"] = guard
    reader = ScopeReader(app)
    assert reader.read(scope(b"/api/x", [])) is None
    down[0] = False
    assert reader.read(scope(b"/api/x", [])) is not None


def test_route_gate_is_the_gate_admission_picks(app: GatewayApp) -> None:
    routes = (Route("/api", "wsgi", service="api", max_concurrency=2),
              Route("/other", "wsgi", service="api", max_concurrency=1),
              Route("/", "wsgi", service="hello"))
    admission = Admission(routes)
    gate = admission.route_gate(routes[0])
    assert gate is not None and gate is admission.route_gate(routes[1])
    assert gate.limit == 1          # two routes, one service: the smaller limit
    assert admission.route_gate(routes[2]) is None
    reader = ScopeReader(app, admission)
    assert reader.plans["/api"].gate is gate and reader.plans["/"].gate is None
