"""The backend registry and the redirect backend, in-process (werkzeug's test client)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from werkzeug.test import Client

from gateway.commands.frontcfg import http_config
from gateway.config import BACKENDS, parse
from gateway.config import Route as ConfigRoute
from gateway.config.backends import REGISTRY as ROUTE_SPECS
from gateway.errors import ConfigError
from gateway.http.app import make_app
from gateway.http.backends import NAMES, REGISTRY, Parts, build_openapi, spec
from gateway.http.backends.redirect import RedirectBackend
from gateway.http.config import GatewayHttpConfig, Route


def test_one_list_of_names_and_a_module_for_each():
    assert NAMES == BACKENDS == tuple(ROUTE_SPECS) and set(REGISTRY) == set(BACKENDS)
    assert Route is ConfigRoute  # one Route type: the config's and the front's
    for name, s in REGISTRY.items():
        route_spec = ROUTE_SPECS[name]
        assert route_spec.name == name and route_spec.front.endswith(":FRONT")
        assert callable(route_spec.validate) and callable(s.build) and callable(s.openapi)
        # A backend's own keys are fields of the one Route (the built-in ones need no options).
        assert set(route_spec.keys) <= {f.name for f in dataclasses.fields(Route)}
    assert [n for n, s in ROUTE_SPECS.items() if s.broker] == ["rpc", "wsgi"]
    with pytest.raises(ConfigError, match="one of"):
        spec("ftp")
    with pytest.raises(ConfigError, match=r"http.routes\['/x'\].backend: one of"):
        Route("/x", "ftp")


def test_every_backend_is_built_from_the_registry_with_shared_parts(tmp_path):
    config = GatewayHttpConfig(routes=(
        Route("/a", "http", upstream="http://127.0.0.1:9"),
        Route("/s", "static", directory=str(tmp_path)),
        Route("/old", "redirect", target="/new")))
    parts = Parts(config)
    app = make_app(config, parts=parts).app
    kinds = {p: type(b).__name__ for p, b in app.backends.items()}
    assert kinds == {"/a": "HttpBackend", "/s": "StaticBackend", "/old": "RedirectBackend"}
    assert app.forwarding is parts.forwarding and app.backends["/a"].forwarding is parts.forwarding
    app.close()


@pytest.mark.parametrize("kwargs, message", [
    ({"target": ""}, "target: the redirect backend needs a URL or a path"),
    ({"target": "new"}, "target: the redirect backend needs a URL or a path"),
    ({"target": "//evil.example/x"}, "target: the redirect backend needs a URL or a path"),
    ({"target": "ftp://h/x"}, "target: an http:// or https:// URL or a path"),
    ({"target": "/new?x=1"}, "no query, fragment or whitespace"),
    ({"target": "/new#top"}, "no query, fragment or whitespace"),
    ({"target": "/new", "status": 303}, "status: one of 301, 302, 307, 308, got 303"),
    ({"target": "/new", "status": True}, "status: one of"),
])
def test_a_bad_redirect_config_is_a_config_error_naming_the_key(kwargs: dict[str, Any],
                                                                 message: str):
    with pytest.raises(ConfigError, match=r"http.routes\['/old'\]\." ) as info:
        Route("/old", "redirect", **kwargs)
    assert message in str(info.value)


def _client(*routes: Route) -> Client:
    return Client(make_app(GatewayHttpConfig(routes=routes)))


@pytest.mark.parametrize("path, location", [
    ("/old", "/new"),
    ("/old/", "/new/"),
    ("/old/a/b?x=1&y", "/new/a/b?x=1&y"),
    ("/old/caf%C3%A9?", "/new/caf%C3%A9?"),
    ("/old/a%20b", "/new/a%20b"),
])
def test_a_redirect_keeps_the_path_below_the_mount_and_the_query(path: str, location: str):
    resp = _client(Route("/old", "redirect", target="/new/")).get(path)
    assert resp.status_code == 308 and resp.headers["Location"] == location
    assert resp.headers["X-Request-ID"] and resp.data == b""


def test_a_redirect_to_another_host_and_status():
    client = _client(Route("/v1", "redirect", target="https://api.example.com/v2", status=301),
                     Route("/", "redirect", target="/"))
    resp = client.post("/v1/users/7?full=1", data=b"{}")
    assert resp.status_code == 301
    assert resp.headers["Location"] == "https://api.example.com/v2/users/7?full=1"
    resp = client.head("/v1")
    assert resp.status_code == 301 and resp.headers["Location"] == "https://api.example.com/v2"
    assert client.get("/x/y").headers["Location"] == "/x/y"
    assert client.get("/").headers["Location"] == "/"


def test_the_front_still_refuses_bad_paths_before_the_redirect():
    resp = _client(Route("/old", "redirect", target="/new")).get("/old/../etc")
    body = json.loads(resp.data)
    assert resp.status_code == 400 and body["code"] == "bad_path" and body["request_id"]


def test_redirect_routes_from_the_gateway_config_and_no_openapi_paths(tmp_path):
    cfg = parse('[gateway]\nfront = false\n[broker]\nenabled = false\n'
                '[[routes]]\nprefix = "/old"\nbackend = "redirect"\ntarget = "/new"\n'
                'status = 307\n', base_dir=str(tmp_path))
    front = http_config(cfg)
    route = front.routes[0]
    assert (route.backend, route.target, route.status) == ("redirect", "/new", 307)
    assert isinstance(make_app(front).app.backends["/old"], RedirectBackend)
    assert build_openapi(front, {})["paths"] == {}
    for body, message in [
        ('backend = "redirect"\n', "routes[0].target: a URL or path is required"),
        ('backend = "static"\ntarget = "d"\nstatus = 301\n', "routes[0].status: only the "
         "redirect backend"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse(f'[[routes]]\nprefix = "/old"\n{body}', base_dir=str(tmp_path))
    # The route's own check runs when the config is parsed, as it would for the front.
    with pytest.raises(ConfigError, match=r"http.routes\['/old'\].status: one of 301, 302, 307"):
        parse('[gateway]\nfront = false\n[broker]\nenabled = false\n[[routes]]\n'
              'prefix = "/old"\nbackend = "redirect"\ntarget = "/new"\nstatus = 303\n',
              base_dir=str(tmp_path))
