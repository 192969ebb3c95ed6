"""FATAL guards as the composition root applies them: after the one parse and route match."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.test import Client

from gateway.arbiter.fatalgate import FatalGuards
from gateway.arbiter.statefile import ServiceStates, write_state
from gateway.assemble import build_front
from gateway.http.app import make_app
from gateway.http.config import GatewayHttpConfig, Route
from gateway.http.context import Call

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


def _front(tmp_path: Any, states: dict[str, Any], migrated: frozenset[str] = frozenset(),
           services: dict[str, str] | None = None) -> Client:
    path = str(tmp_path / "state.json")
    write_state(path, states, 1)
    config = GatewayHttpConfig(routes=(
        Route("/api", "rpc"), Route("/", "wsgi", service="legacy"),
        Route("/hl", "wsgi", service="hl"), Route("/site", "http", upstream="http://127.0.0.1:9"),
    ), broker="ipc:///nonexistent")
    fatal = FatalGuards(ServiceStates(path), services or {}, migrated)
    Recording.calls = []
    app = make_app(config, {"rpc": Recording, "wsgi": Recording, "http": Recording},
                   guards=fatal.guards(config.routes))
    return Client(app)


def test_a_fatal_service_gets_a_503_problem_with_a_request_id(tmp_path):
    client = _front(tmp_path, {"hl": {"state": "FATAL"}, "legacy": {"state": "READY"}})
    for path in ("/api/hl/render", "/hl", "/hl/x"):
        resp = client.post(path, headers={"X-Request-ID": "rid-1"})
        body = json.loads(resp.data)
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert body["code"] == "unavailable" and "'hl' is down (FATAL)" in body["detail"]
        assert body["request_id"] == resp.headers["X-Request-ID"]
    assert client.post("/api/other/m").status_code == 200
    assert client.get("/hlx").status_code == 200
    assert Recording.calls == ["/api/other/m", "/hlx"]


def test_the_guard_reads_the_strict_path_not_the_raw_one(tmp_path):
    client = _front(tmp_path, {"hl": {"state": "FATAL"}})
    # "/hl/../x" is refused by the one strict parse before any guard; "/%68l" is /hl.
    assert client.get("/hl/../x").status_code == 400
    assert client.get("/%68l").status_code == 503
    assert Recording.calls == []


def test_migrated_targets_are_left_to_the_migration(tmp_path):
    fatal = FatalGuards(ServiceStates(str(tmp_path / "s.json")), {"/site": "web"},
                        frozenset({"/api/notes", "htmldiff/diff"}))
    notes, rpc = Route("/api/notes", "wsgi", service="notes"), Route("/rpc", "rpc")
    assert fatal.for_route(notes) is None
    assert fatal.service_for(rpc, "/htmldiff/diff") == ""
    assert fatal.service_for(rpc, "/htmldiff/other") == "htmldiff"
    assert fatal.service_for(Route("/", "wsgi", service="x"), "/page") == "x"
    site = Route("/site", "http", upstream="http://127.0.0.1:9")
    assert fatal.service_for(site, "/a") == "web"
    assert fatal.for_route(Route("/s", "static", directory="/tmp")) is None


def test_an_http_route_named_in_the_config_is_guarded(tmp_path):
    client = _front(tmp_path, {"web": {"state": "FATAL"}}, services={"/site": "web"})
    assert client.get("/site/a").status_code == 503
    assert client.get("/").status_code == 200


def test_the_composition_root_without_guards_serves_as_before(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    config = GatewayHttpConfig(routes=(Route("/files", "static", directory=str(tmp_path)),))
    fatal = FatalGuards(ServiceStates(str(tmp_path / "none.json")))
    for app in (build_front(config), build_front(config, fatal.guards(config.routes))):
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
    guards = FatalGuards(ServiceStates(path)).guards(config.routes)
    gateway = make_app(config, {"wsgi": Recording}, guards=guards).app
    assert isinstance(gateway, GatewayApp)
    assert gateway.refuses("/hl/a") and gateway.refuses("/hl")
    assert not gateway.refuses("/hlx") and not gateway.refuses("/")
    write_state(path, {"hl": {"state": "READY"}}, 1)
    assert not gateway.refuses("/hl/a")
