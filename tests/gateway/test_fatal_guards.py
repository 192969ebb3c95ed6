"""FATAL guards as the composition root applies them: after the one parse and route match.

A route naming a service gets a route guard; an rpc mount checks each call's
service in the caller composed at the root; a migrated target is left to its
migration (tests/gateway/test_rpc_caller.py has the rpc side through the root).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from werkzeug.test import Client

from gateway.arbiter.fatalgate import FatalGuards
from gateway.arbiter.statefile import ServiceStates, write_state
from gateway.assemble import build_front, route_guards
from gateway.http.app import make_app
from gateway.http.config import GatewayHttpConfig, Route
from gateway.http.context import Call
from gateway.http.problems import Problem

StartResponse = Callable[..., Any]


class Recording:
    """A backend that records the paths it was handed and answers 200."""

    calls: list[str] = []

    def __init__(self, route: Route) -> None:
        self.route = route

    def __call__(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        Recording.calls.append(call.target.path)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]


def _front(tmp_path: Any, states: dict[str, Any],
           services: dict[str, str] | None = None) -> Client:
    path = str(tmp_path / "state.json")
    write_state(path, states, 1)
    config = GatewayHttpConfig(routes=(
        Route("/api", "rpc"), Route("/", "wsgi", service="legacy"),
        Route("/hl", "wsgi", service="hl"), Route("/site", "http", upstream="http://127.0.0.1:9"),
    ), broker="ipc:///nonexistent")
    fatal = FatalGuards(ServiceStates(path), services or {})
    Recording.calls = []
    app = make_app(config, {"rpc": Recording, "wsgi": Recording, "http": Recording},
                   guards=route_guards(config.routes, fatal))
    return Client(app)


def test_a_fatal_service_gets_a_503_problem_with_a_request_id(tmp_path):
    client = _front(tmp_path, {"hl": {"state": "FATAL"}, "legacy": {"state": "READY"}})
    for path in ("/hl", "/hl/x"):
        resp = client.post(path, headers={"X-Request-ID": "rid-1"})
        body = json.loads(resp.data)
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert body["code"] == "unavailable" and "'hl' is down (FATAL)" in body["detail"]
        assert body["request_id"] == resp.headers["X-Request-ID"]
    assert client.get("/hlx").status_code == 200
    # An rpc mount has no route guard: its caller checks each call's service.
    assert client.post("/api/hl/render").status_code == 200
    assert Recording.calls == ["/hlx", "/api/hl/render"]


def test_the_guard_reads_the_strict_path_not_the_raw_one(tmp_path):
    client = _front(tmp_path, {"hl": {"state": "FATAL"}})
    # "/hl/../x" is refused by the one strict parse before any guard; "/%68l" is /hl.
    assert client.get("/hl/../x").status_code == 400
    assert client.get("/%68l").status_code == 503
    assert Recording.calls == []


def test_the_root_guards_only_routes_that_no_other_wrapper_checks(tmp_path):
    path = str(tmp_path / "s.json")
    write_state(path, {"web": {"state": "FATAL"}, "x": {"state": "FATAL"}}, 1)
    fatal = FatalGuards(ServiceStates(path), {"/site": "web"})
    routes = (Route("/api/notes", "wsgi", service="notes"), Route("/rpc", "rpc"),
              Route("/calc", "rpc", service="calc"), Route("/", "wsgi", service="x"),
              Route("/site", "http", upstream="http://127.0.0.1:9"),
              Route("/s", "static", directory="/tmp"))
    guards = route_guards(routes, fatal, frozenset({"/api/notes"}))
    # migrated: the migration's check; rpc mounts: the caller's; static: no service
    assert sorted(guards) == ["/", "/site"]
    assert fatal.for_route(Route("/s", "static", directory="/tmp")) is None
    assert fatal.for_route(Route("/api/notes", "wsgi", service="notes")) is not None
    assert route_guards(routes, None) == {}
    fatal.check("calc")          # not FATAL: nothing raised
    fatal.check("")              # no service: nothing raised
    for name in ("web", "x"):
        with pytest.raises(Problem) as info:
            fatal.check(name)
        assert info.value.status == 503 and ("Retry-After", "5") in info.value.headers


def test_an_http_route_named_in_the_config_is_guarded(tmp_path):
    client = _front(tmp_path, {"web": {"state": "FATAL"}}, services={"/site": "web"})
    assert client.get("/site/a").status_code == 503
    assert client.get("/").status_code == 200


def test_the_composition_root_without_guards_serves_as_before(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    config = GatewayHttpConfig(routes=(Route("/files", "static", directory=str(tmp_path)),))
    fatal = FatalGuards(ServiceStates(str(tmp_path / "none.json")))
    for app in (build_front(config), build_front(config, fatal)):
        resp = Client(app).get("/files/a.txt")
        try:
            assert resp.status_code == 200 and resp.data == b"hello"
        finally:
            resp.close()


def test_a_request_prepared_on_the_loop_is_checked_once(tmp_path, monkeypatch):
    from werkzeug.test import EnvironBuilder

    from gateway.http.app import GatewayApp
    config = GatewayHttpConfig(routes=(Route("/", "wsgi", service="legacy"),),
                               broker="ipc:///nonexistent")
    guard = make_app(config, {"wsgi": Recording})
    gateway = guard.app
    assert isinstance(gateway, GatewayApp)
    checks: list[str] = []
    real = GatewayApp.check_limits
    monkeypatch.setattr(GatewayApp, "check_limits",
                        lambda self, environ, raw: (checks.append(raw), real(self, environ, raw)))
    environ = EnvironBuilder(path="/a").get_environ()
    Recording.calls = []
    call = gateway.prepare(environ)          # what the event loop does (admission, fast path)
    statuses: list[str] = []
    body = guard(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert call is not None and b"".join(body) == b"ok" and statuses == ["200 OK"]
    assert checks == ["/a"] and Recording.calls == ["/a"]


def test_the_fast_paths_hook_asks_the_same_guards(tmp_path):
    from gateway.http.app import GatewayApp
    path = str(tmp_path / "state.json")
    write_state(path, {"hl": {"state": "FATAL"}}, 1)
    config = GatewayHttpConfig(routes=(Route("/", "wsgi", service="legacy"),
                                       Route("/hl", "wsgi", service="hl")),
                               broker="ipc:///nonexistent")
    guards = route_guards(config.routes, FatalGuards(ServiceStates(path)))
    gateway = make_app(config, {"wsgi": Recording}, guards=guards).app
    assert isinstance(gateway, GatewayApp)
    assert gateway.refuses("/hl/a") and gateway.refuses("/hl")
    assert not gateway.refuses("/hlx") and not gateway.refuses("/")
    write_state(path, {"hl": {"state": "READY"}}, 1)
    assert not gateway.refuses("/hl/a")
