"""The rpc backend calls through the caller the composition root hands it.

The backend checks the request at the edge and knows nothing else; the root
composes per ``(service, method)`` what stands behind the call: a migrated
method's shadow engine, or a FATAL check and the plain broker call.
"""

from __future__ import annotations

import json
import os
from typing import Any

from werkzeug.test import Client

from gateway.arbiter.fatalgate import FatalGuards
from gateway.arbiter.statefile import ServiceStates, write_state
from gateway.assemble import CheckedCall, build_front
from gateway.commands.frontcfg import http_config
from gateway.config import parse
from gateway.http.app import make_app
from gateway.http.backends import Parts
from gateway.http.config import GatewayHttpConfig, Route
from gateway.http.context import Call
from gateway.http.rpccall import DirectCall
from gateway.migration.rpc import MigratedMethod
from tests.gateway.test_migration_config import BASE

RENDERED = {"css": ".c{}", "html": "<pre>x</pre>", "lexer": "Python"}


class Recorded:
    """A caller that writes down what it was asked and answers ``RENDERED``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any, str, dict[str, Any]]] = []

    def __call__(self, service: str, method: str) -> Any:
        def call(call: Call, params: Any, **kw: Any) -> Any:
            self.calls.append((service, method, params, call.request_id, kw))
            return dict(RENDERED)
        return call


def test_the_rpc_backend_makes_its_call_through_the_caller_handed_in():
    config = GatewayHttpConfig(routes=(Route("/rpc", "rpc"),), broker="ipc:///nonexistent")
    caller = Recorded()
    parts = Parts(config, rpc_caller=caller)
    app = make_app(config, parts=parts)
    client = Client(app)
    try:
        params = {"code": "x = 1\n", "lexer": "python"}
        resp = client.post("/rpc/highlight/render", json=params,
                           headers={"X-Request-ID": "rid-9"})
        assert resp.status_code == 200 and json.loads(resp.data) == RENDERED
        # The edge still checks params against the contract before any call is made.
        bad = client.post("/rpc/highlight/render", json={"lexer": "python"})
        assert bad.status_code == 422
        assert [c[:4] for c in caller.calls] == [("highlight", "render", params, "rid-9")]
        kw = caller.calls[0][4]
        assert kw["idem"] is True and kw["timeout"] == config.limits.timeout
        assert isinstance(kw["schema"], dict)
    finally:
        app.app.close()
        parts.client.close()


def _estate(tmp_path: Any) -> Any:
    cfg = parse(BASE + '[migrations.hd]\nrpc = "htmldiff/diff"\npy3 = "hd3"\nstate = "py3"\n',
                base_dir=str(tmp_path))
    os.makedirs(cfg.gateway.run_dir)
    return cfg


def test_an_rpc_mount_refuses_a_fatal_service_and_leaves_a_migrated_method_to_its_engine(
        tmp_path):
    cfg = _estate(tmp_path)
    path = str(tmp_path / "state.json")
    write_state(path, {"highlight": {"state": "FATAL"}, "htmldiff": {"state": "READY"},
                       "hd3": {"state": "FATAL"}}, 1)
    states = ServiceStates(path)
    app = build_front(http_config(cfg), FatalGuards(states), health=states)
    front = app.app
    client = Client(app)
    try:
        resp = client.post("/rpc/highlight/render", json={"code": "x", "lexer": "python"},
                           headers={"X-Request-ID": "rid-1"})
        body = json.loads(resp.data)
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert body["code"] == "unavailable" and body["request_id"] == "rid-1"
        assert "'highlight' is down (FATAL)" in body["detail"]
        # htmldiff/diff is migrated (state py3): the engine chose hd3 and refused for it,
        # where a check of the mount's service (htmldiff, READY) would have let it through.
        resp = client.post("/rpc/htmldiff/diff", json={"old": "<p>a</p>", "new": "<p>b</p>"},
                           headers={"X-Request-ID": "rid-2"})
        body = json.loads(resp.data)
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
        assert body["request_id"] == "rid-2" and "'hd3' is down (FATAL)" in body["detail"]
        caller = front.parts.rpc_caller
        assert caller is not None
        assert isinstance(caller("htmldiff", "diff"), MigratedMethod)
        assert isinstance(caller("highlight", "render"), CheckedCall)
    finally:
        front.close()
        front.parts.client.close()


def test_without_a_supervisor_or_migrations_the_call_is_the_plain_broker_call(tmp_path):
    config = GatewayHttpConfig(routes=(Route("/rpc", "rpc"),), broker="ipc:///nonexistent")
    app = build_front(config)
    front = app.app
    try:
        assert front.parts.rpc_caller is None      # the backend's default: direct(client)
        backend = front.backends["/rpc"]
        assert isinstance(backend.caller("highlight", "render"), DirectCall)
    finally:
        front.close()
        front.parts.client.close()
