"""The wsgi bridge in-process: a fake broker client stands in for the worker side."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
from werkzeug.test import Client

from gateway.http.app import make_app
from gateway.http.bridge import WsgiBackend
from gateway.http.config import GatewayHttpConfig, HttpLimits, Route
from gateway.http.forwarding import Forwarding
from protocol import codec, wsgi
from protocol import errors as perrors


class FakeClient:
    """Answers every request with the envelopes (or the error) it was given."""

    def __init__(self, replies: list[Any]) -> None:
        self.replies = replies
        self.sent: list[codec.Envelope] = []
        self.closed = 0

    def request(self, service: str, envelope: codec.Envelope,
                timeout: float | None = None,
                idle_timeout: float | None = None) -> Iterator[codec.Envelope]:
        self.sent.append(envelope)
        try:
            for reply in self.replies:
                if isinstance(reply, BaseException):
                    raise reply
                yield reply
        finally:
            self.closed += 1


def _app(client: FakeClient) -> Client:
    config = GatewayHttpConfig(routes=(Route("/", "wsgi", service="legacy"),),
                               broker="ipc:///nowhere", limits=HttpLimits(max_body=100))

    def factory(route: Route) -> WsgiBackend:
        return WsgiBackend(route, cast(Any, client), config.limits, Forwarding(0, "gw"))

    return Client(make_app(config, {"wsgi": factory}))


def _response(http: Any, body: bytes = b"", more: bool = False) -> codec.Envelope:
    return codec.Envelope("http-response", id="1", http=http, more=more,
                          payload=codec.Bytes(body))


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/problem+json"
    return dict(json.loads(resp.data))


def test_a_worker_answer_that_is_not_http_response_is_502() -> None:
    wrong = codec.Envelope("result", id="1", payload=1)
    client = FakeClient([wrong])
    assert _problem(_app(client).get("/x"), 502)["code"] == "bad_reply"
    assert client.closed == 1


def test_an_undecodable_reply_is_502_not_400() -> None:
    client = FakeClient([perrors.EnvelopeError("header: not JSON")])
    assert _problem(_app(client).get("/x"), 502)["code"] == "bad_reply"


def test_a_good_reply_passes_through() -> None:
    client = FakeClient([_response({"status": 201, "reason": "Created",
                                    "headers": [["X-A", "1"]]}, b"made")])
    resp = _app(client).get("/x")
    assert (resp.status_code, resp.data, resp.headers["X-A"]) == (201, b"made", "1")


def test_an_app_with_a_bad_status_is_a_remote_error_not_an_envelope_error() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("OK", [])
        return [b"x"]

    env = codec.Envelope("http", id="1", http={"method": "GET", "path_info": "/"})
    with pytest.raises(perrors.RemoteError) as info:
        list(wsgi.WsgiHost(app).handle(env))
    assert info.value.status == 500


@pytest.mark.parametrize("http", [
    {}, {"status": "x"}, {"status": 42}, {"status": True}, {"status": 200, "reason": 5},
    {"status": 200, "headers": [["X-A"]]}, {"status": 200, "headers": [["X-A", 1]]},
    {"status": 200, "headers": 7}, {"status": 200, "reason": "OK\r\nX-Evil: 1"},
])
def test_a_malformed_http_response_is_a_typed_502(
        http: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    client = FakeClient([_response(http)])
    assert _problem(_app(client).get("/x"), 502)["code"] == "bad_reply"
    assert client.closed == 1
    assert "Traceback" not in caplog.text and "unexpected error" not in caplog.text
