"""The front in-process (werkzeug's test client): checks, routing, problems, static, OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from gateway.http.app import make_app
from gateway.http.backends import build_openapi
from gateway.http.config import GatewayHttpConfig, HttpLimits, Route
from gateway.http.context import Call
from protocol import errors as perrors

StartResponse = Callable[..., Any]


class Fake:
    """A backend that answers with what it was handed, or fails as told."""

    def __init__(self, route: Route) -> None:
        self.route = route

    def __call__(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        how = call.match.path_info
        if how == "/boom":
            raise RuntimeError("secret internals")
        if how == "/unavailable":
            raise perrors.Unavailable("no live worker")
        if how == "/timeout":
            raise perrors.Timeout("too slow")
        if how == "/remote":
            raise perrors.RemoteError("x", type="KeyError", traceback="Traceback (most recent")
        if how == "/late":
            return self._late(start_response)
        body = json.dumps({"prefix": self.route.prefix, "script": call.match.script_name,
                           "info": call.match.path_info, "rid": call.request_id,
                           "raw": call.target.raw}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    def _late(self, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise ValueError("failed before the first byte")
        yield b""


@pytest.fixture
def client(tmp_path: Any) -> Client:
    (tmp_path / "a.txt").write_bytes(b"0123456789")
    config = GatewayHttpConfig(
        routes=(Route("/", "http", upstream="http://127.0.0.1:1"),
                Route("/api", "http", upstream="http://127.0.0.1:1"),
                Route("/files", "static", directory=str(tmp_path))),
        limits=HttpLimits(max_body=100, max_uri=200, max_header_line=300, max_header_count=20),
        retry_after=7)
    return Client(make_app(config, {"http": Fake}))


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/problem+json"
    body = json.loads(resp.data)
    assert body["status"] == status
    assert body["request_id"] == resp.headers["X-Request-ID"]
    assert "Traceback" not in resp.get_data(as_text=True)
    return dict(body)


def test_routes_split_script_name_and_path_info(client: Client) -> None:
    body = client.get("/api/users/7?x=%41").json
    assert body["prefix"] == "/api"
    assert (body["script"], body["info"], body["raw"]) == ("/api", "/users/7", "/api/users/7?x=%41")
    assert client.get("/apix").json["prefix"] == "/"


def test_request_id_is_kept_when_sane_and_replaced_otherwise(client: Client) -> None:
    assert client.get("/api/x", headers={"X-Request-ID": "abc-123"}).json["rid"] == "abc-123"
    rid = client.get("/api/x", headers={"X-Request-ID": "bad id\u00e9"}).json["rid"]
    assert rid != "bad id\u00e9" and len(rid) == 32


@pytest.mark.parametrize("path", ["/api/../admin", "/api/%2e%2e/admin", "/api%2Fadmin"])
def test_bad_paths_get_400(client: Client, path: str) -> None:
    assert _problem(client.get(path), 400)["code"] == "bad_path"


def test_limits(client: Client) -> None:
    _problem(client.get("/api/" + "a" * 300), 414)
    _problem(client.get("/api/x", headers={"X-Big": "v" * 400}), 431)
    _problem(client.get("/api/x", headers={f"X-H{i}": "v" for i in range(30)}), 431)
    _problem(client.post("/api/x", data=b"x" * 101), 413)
    resp = client.post("/api/x", data=b"x", headers={"Transfer-Encoding": "chunked",
                                                     "Content-Length": "1"})
    assert _problem(resp, 400)["code"] == "ambiguous_framing"


def test_errors_become_problems_without_tracebacks(client: Client) -> None:
    body = _problem(client.get("/api/boom"), 500)
    assert "secret" not in json.dumps(body)
    resp = client.get("/api/unavailable")
    _problem(resp, 503)
    assert resp.headers["Retry-After"] == "7"
    _problem(client.get("/api/timeout"), 504)
    assert "Traceback" not in json.dumps(_problem(client.get("/api/remote"), 500))


def test_failure_after_start_response_but_before_the_body_is_replaced() -> None:
    """PEP 3333: exc_info replaces headers that were not sent yet (as gunicorn does)."""
    from werkzeug.test import create_environ
    config = GatewayHttpConfig(routes=(Route("/", "http", upstream="http://127.0.0.1:1"),))
    app = make_app(config, {"http": Fake})
    seen: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append((status, headers))
        return lambda data: None

    body = b"".join(app(create_environ("/late"), start_response))
    assert seen[-1][0].startswith("500")
    assert json.loads(body)["code"] == "internal"


def test_static_files_with_etag_and_range(client: Client) -> None:
    # A server closes every body it is handed (PEP 3333); so does this test.
    with client.get("/files/a.txt") as resp:
        assert resp.data == b"0123456789" and resp.headers["ETag"]
    with client.get("/files/a.txt", headers={"If-None-Match": resp.headers["ETag"]}) as cached:
        assert cached.status_code == 304
    with client.get("/files/a.txt", headers={"Range": "bytes=2-4"}) as part:
        assert (part.status_code, part.data) == (206, b"234")
    unsatisfiable = client.get("/files/a.txt", headers={"Range": "bytes=50-60"})
    _problem(unsatisfiable, 416)
    assert unsatisfiable.headers["Content-Range"] == "bytes */10"
    _problem(client.get("/files/missing"), 404)
    _problem(client.post("/files/a.txt"), 405)


def test_openapi_from_contracts(tmp_path: Any) -> None:
    contract = {"service": "echo", "version": 1, "methods": {"echo": {
        "params": {"type": "object", "properties": {"data": {"$ref": "#/definitions/blob"}}},
        "result": {"type": "string"}, "idempotent": True, "shadow_safe": False}},
        "definitions": {"blob": {"type": "string", "contentEncoding": "base64"}}}
    (tmp_path / "echo.json").write_text(json.dumps(contract))
    config = GatewayHttpConfig(routes=(Route("/rpc", "rpc"),), broker="ipc:///nowhere",
                               contracts_dir=str(tmp_path))
    doc = build_openapi(config)
    op = doc["paths"]["/rpc/echo/echo"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["data"]["required"] == ["$bytes"]
    assert doc["openapi"] == "3.1.0" and "503" in op["responses"]
    app = make_app(config, {"rpc": Fake}, doc)
    assert Client(app).get("/_gateway/openapi.json").json == doc


def test_a_missing_contracts_dir_is_a_config_error(tmp_path: Any) -> None:
    from gateway.errors import ConfigError
    config = GatewayHttpConfig(routes=(Route("/rpc", "rpc"),), broker="ipc:///nowhere",
                               contracts_dir=str(tmp_path / "missing"))
    with pytest.raises(ConfigError):
        build_openapi(config)


def test_response_hop_by_hop_fields_go_and_via_is_appended() -> None:
    from gateway.http.forwarding import Forwarding
    out = Forwarding(0, "gw").response_headers(
        [("Connection", "X-Hop, close"), ("X-Hop", "1"), ("Keep-Alive", "timeout=5"),
         ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Via", "1.0 up"), ("Server", "x"),
         ("Transfer-Encoding", "chunked")], "rid1")
    assert out == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Via", "1.0 up, 1.1 gw"),
                   ("X-Request-ID", "rid1")]


def test_gateway_serves_the_user_bar_and_its_own_paths_beat_the_root_mount(
        client: Client) -> None:
    resp = client.get("/_gateway/bar.js")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/javascript")
    assert b"/api/whoami" in resp.data and b"gateway-bar" in resp.data
    assert client.get("/_gateway/health").get_json() == {"status": "ok"}
    _problem(client.get("/_gateway/nope"), 404)  # the "/" route never sees /_gateway/
    _problem(client.post("/_gateway/bar.js"), 405)


def test_protocol_errors_answer_their_own_status() -> None:
    """The status comes from the exception, so a subclass keeps its own."""
    from gateway.http.problems import from_protocol

    class Odd(perrors.ProtocolError):
        code = "unavailable"  # a wire code whose table status (503) must not win
        status = 502

    assert from_protocol(Odd("x"), 1).status == 502
    assert from_protocol(perrors.Unavailable("x"), 1).status == 503
    busy = from_protocol(perrors.TooBusy("x"), 3)
    assert (busy.status, busy.code, busy.headers) == (503, "too_busy", [("Retry-After", "3")])


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "1\u00b2", " 1", "+1", ""])
def test_content_length_is_ascii_digits_only(value: str) -> None:
    import io

    from werkzeug.test import create_environ

    from gateway.http.bodies import parse_length, request_body
    from gateway.http.problems import Problem
    assert parse_length(value) is None
    environ = create_environ("/api/x", method="POST")
    environ.update(CONTENT_LENGTH=value, **{"wsgi.input": io.BytesIO(b"abc")})
    if value:
        with pytest.raises(Problem) as info:
            request_body(environ, 100)
        assert info.value.status == 400
    config = GatewayHttpConfig(routes=(Route("/", "http", upstream="http://127.0.0.1:1"),))
    seen: list[str] = []
    list(make_app(config, {"http": Fake})(environ, lambda s, h, e=None: seen.append(s)))
    assert seen[-1].startswith("400" if value else "200")
    assert parse_length("0012") == 12


def test_framing_is_checked_once_at_the_front_and_a_rebuilt_target_gets_414(
        client: Client) -> None:
    from werkzeug.test import create_environ
    config = GatewayHttpConfig(routes=(Route("/", "http", upstream="http://127.0.0.1:1"),))
    environ = create_environ("/x", method="POST", headers={"Transfer-Encoding": "gzip"})
    seen: list[str] = []
    list(make_app(config, {"http": Fake})(environ, lambda s, h, e=None: seen.append(s)))
    assert seen[-1].startswith("400")  # refused before any backend runs
    config = GatewayHttpConfig(routes=(Route("/", "http", upstream="http://127.0.0.1:1"),),
                               limits=HttpLimits(max_uri=50))
    environ = create_environ("/" + "a" * 60)
    environ.pop("RAW_URI", None)
    environ.pop("REQUEST_URI", None)
    list(make_app(config, {"http": Fake})(environ, lambda s, h, e=None: seen.append(s)))
    assert seen[-1].startswith("414")


def test_a_body_closed_before_iteration_still_closes_the_backend_body() -> None:
    from werkzeug.test import create_environ

    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"x"

        def close(self) -> None:
            closed.append(True)

    config = GatewayHttpConfig(routes=(Route("/", "http", upstream="http://127.0.0.1:1"),))

    def factory(route: Route) -> Callable[[Call, StartResponse], Iterable[bytes]]:
        def backend(call: Call, start_response: StartResponse) -> Iterable[bytes]:
            start_response("200 OK", [])
            return Body()
        return backend

    result = make_app(config, {"http": factory})(create_environ("/x"), lambda *a: None)
    from gateway.http.app import GuardedBody
    assert isinstance(result, GuardedBody)
    result.close()
    result.close()
    assert closed == [True]
