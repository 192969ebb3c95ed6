"""The front's trace context: begin() on the environ, the app's hook, the front's log lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.test import Client

from gateway.http import tracing
from gateway.http.app import make_app
from gateway.http.config import GatewayHttpConfig, Route
from gateway.http.context import Call
from gateway.http.forwarding import Forwarding
from protocol import trace

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
GOOD = f"00-{TRACE}-{PARENT}-01"


def test_a_valid_client_traceparent_is_continued_under_the_gateways_span() -> None:
    environ: dict[str, Any] = {"HTTP_TRACEPARENT": GOOD, "HTTP_TRACESTATE": "congo=t61"}
    assert tracing.begin(environ) == TRACE
    span = environ["gateway.span_id"]
    assert environ["gateway.trace_id"] == TRACE
    assert len(span) == 16 and span != PARENT
    assert environ["HTTP_TRACEPARENT"] == f"00-{TRACE}-{span}-01"
    assert environ["HTTP_TRACESTATE"] == "congo=t61"


def test_a_tracestate_too_long_is_dropped_and_only_the_sampled_flag_passes() -> None:
    environ: dict[str, Any] = {"HTTP_TRACEPARENT": f"00-{TRACE}-{PARENT}-ff",
                               "HTTP_TRACESTATE": "a=" + "b" * 600}
    tracing.begin(environ)
    assert environ["HTTP_TRACEPARENT"].endswith("-01")
    assert "HTTP_TRACESTATE" not in environ


def test_an_invalid_traceparent_starts_a_new_trace_and_its_tracestate_goes() -> None:
    environ: dict[str, Any] = {"HTTP_TRACEPARENT": "00-zz", "HTTP_TRACESTATE": "congo=t61"}
    trace_id = tracing.begin(environ)
    assert trace_id != TRACE and len(trace_id) == 32
    assert trace.parse(environ["HTTP_TRACEPARENT"])[0] == trace_id
    assert "HTTP_TRACESTATE" not in environ


def test_begin_twice_keeps_one_span_per_request() -> None:
    environ: dict[str, Any] = {}
    first = tracing.begin(environ)
    header = environ["HTTP_TRACEPARENT"]
    assert tracing.begin(environ) == first
    assert environ["HTTP_TRACEPARENT"] == header


def test_the_forwarded_headers_and_rpc_fields_carry_the_gateways_span() -> None:
    environ: dict[str, Any] = {"HTTP_TRACEPARENT": GOOD, "HTTP_HOST": "h",
                               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"}
    tracing.begin(environ)
    headers = dict(Forwarding(0, "gw").request_headers(environ, "r-1"))
    assert headers["Traceparent"] == environ["HTTP_TRACEPARENT"]
    fields = tracing.rpc_fields(environ)
    assert fields == {"traceparent": environ["HTTP_TRACEPARENT"], "tracestate": None}


def echo_backend(route: Route) -> Callable[[Call, Callable[..., Any]], Iterable[bytes]]:
    def serve(call: Call, start_response: Callable[..., Any]) -> Iterable[bytes]:
        env = call.environ
        body = json.dumps({"trace_id": env["gateway.trace_id"],
                           "traceparent": env["HTTP_TRACEPARENT"],
                           "ids": tracing.current_ids()}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    return serve


def test_the_app_sets_the_trace_for_every_routed_request() -> None:
    app = make_app(GatewayHttpConfig(routes=(Route("/", "http", upstream="http://127.0.0.1:1"),)),
                   {"http": echo_backend})
    client = Client(app)
    seen = client.get("/x", headers={"traceparent": GOOD, "X-Request-ID": "r-42"}).get_json()
    assert seen["trace_id"] == TRACE
    assert trace.parse(seen["traceparent"])[0] == TRACE
    assert seen["ids"] == ["r-42", TRACE]
    fresh = client.get("/x").get_json()
    assert fresh["trace_id"] != TRACE and fresh["ids"][1] == fresh["trace_id"]


def test_front_log_lines_name_the_request_and_trace() -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    handler.addFilter(tracing.LogContext())
    handler.setFormatter(logging.Formatter("%(rid)s %(trace_id)s %(message)s"))
    logger = logging.getLogger("tests.front.tracing")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        environ: dict[str, Any] = {"HTTP_TRACEPARENT": GOOD, "gateway.request_id": "r-7"}
        tracing.begin(environ)
        logger.warning("served")
    finally:
        logger.removeHandler(handler)
    assert lines == [f"r-7 {TRACE} served"]
