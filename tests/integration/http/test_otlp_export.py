"""OpenTelemetry export: the front posts one span per request to an OTLP/HTTP receiver.

Real processes over loopback: the compiled broker, a Python 3 worker, the
front; the receiver is a small HTTP server in the test that keeps what it
is sent (OTLP/HTTP with JSON bodies). The gateway's span must be the parent
the worker saw, and the child of the client's span.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.integration.http.conftest import start_broker, start_gateway, wait_for_service
from tests.integration.http.test_trace_e2e import CLIENT_SPAN, TRACE, get
from tests.support.procs import wait_until


class Receiver(ThreadingHTTPServer):
    """Keeps the spans of every ``POST /v1/traces`` (OTLP JSON) it gets."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"

    def find(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["traceId"] == trace_id]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        doc = json.loads(body)
        with self.server.lock:
            self.server.content_types.append(self.headers["Content-Type"])
            for rs in doc["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        span["resource"] = rs["resource"]
                        self.server.spans.append(span)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def attributes(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span["attributes"]}


def test_one_span_per_request_between_the_client_and_the_worker(
        procs: Any, workdir: str, receiver: Receiver) -> None:
    endpoint = start_broker(procs)
    procs.spawn([sys.executable, "-m", "protocol.worker", "--broker", endpoint,
                 "--service", "tracepeer", "tests.integration.http.trace_peer:TABLE"])
    wait_for_service(endpoint, "tracepeer")
    routes = {"broker": endpoint, "routes": [
        {"prefix": "/rpc", "backend": "rpc", "service": "tracepeer"}]}
    gateway = start_gateway(procs, workdir, routes,
                            observability={"metrics": False, "otlp_endpoint": receiver.url})

    status, _, peer = get(gateway.port, "/rpc/whoami", {
        "traceparent": f"00-{TRACE}-{CLIENT_SPAN}-01", "Content-Type": "application/json",
        "X-Request-ID": "otlp-1"}, method="POST", body=b"{}")
    assert status == 200, peer
    wait_until(lambda: receiver.find(TRACE), 20.0, what="the request's span exported")
    (span,) = receiver.find(TRACE)
    assert span["spanId"] == peer["parent_id"]       # the parent the worker was given
    assert span["parentSpanId"] == CLIENT_SPAN        # under the client's own span
    assert span["kind"] == 2 and span["name"] == "POST /rpc"
    assert int(span["endTimeUnixNano"]) > int(span["startTimeUnixNano"]) > 0
    attrs = attributes(span)
    assert attrs["http.response.status_code"] == "200"
    assert attrs["gateway.request_id"] == "otlp-1" and attrs["gateway.service"] == "tracepeer"
    assert attributes({"attributes": span["resource"]["attributes"]}) == {
        "service.name": "gateway"}
    assert set(receiver.content_types) == {"application/json"}

    # No traceparent: the gateway's trace, and a root span.
    status, _, fresh = get(gateway.port, "/rpc/whoami", {"Content-Type": "application/json"},
                           method="POST", body=b"{}")
    assert status == 200, fresh
    wait_until(lambda: receiver.find(fresh["trace_id"]), 20.0, what="the root span exported")
    (root,) = receiver.find(fresh["trace_id"])
    assert "parentSpanId" not in root and root["spanId"] == fresh["parent_id"]


def test_a_collector_that_is_down_costs_nothing_but_spans(procs: Any, workdir: str) -> None:
    endpoint = start_broker(procs)
    procs.spawn([sys.executable, "-m", "protocol.worker", "--broker", endpoint,
                 "--service", "tracepeer", "tests.integration.http.trace_peer:TABLE"])
    wait_for_service(endpoint, "tracepeer")
    # Bound, never listening: connections are refused, and no one else gets the port.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{taken.getsockname()[1]}/v1/traces"
        gateway = start_gateway(procs, workdir, {"broker": endpoint, "routes": [
            {"prefix": "/rpc", "backend": "rpc", "service": "tracepeer"}]},
            observability={"metrics": False, "otlp_endpoint": dead})
        for _ in range(3):
            status, _, peer = get(gateway.port, "/rpc/whoami",
                                  {"Content-Type": "application/json"}, method="POST",
                                  body=b"{}")
            assert status == 200 and len(peer["trace_id"]) == 32
