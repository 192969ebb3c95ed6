"""One request followed by its trace id: HTTP client -> front -> broker -> py2 WSGI worker,
which calls a py3 peer over the broker and enqueues a job that a py3 consumer takes.

Every part is a real process over loopback: the compiled broker, the front, a
Python 2.7 worker, a Python 3 worker, a Python 3 queue consumer, a private
redis-server. The same trace id must show up in the py2 worker's environ,
the envelope the py3 peer received, the job and the consumer's context, and
the py2 worker's log line, and the front's access-log line for the request;
each hop must name the previous hop's span as its parent. A request the front
refuses before it reads the trace context logs ``trace=-``.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from typing import Any

from protocol import trace
from protocol.queue import Queue, connect
from tests.integration.http.conftest import (
    start_broker,
    start_gateway,
    wait_for_service,
)
from tests.integration.metrics.test_access_log import fields
from tests.support.procs import wait_until

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TIMEOUT = 20.0


def get(port: int, path: str, headers: dict[str, str], method: str = "GET",
        body: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, json.loads(data)
    finally:
        conn.close()


def logged_line(path: str, rid: str) -> dict[str, str]:
    """The access-log fields of request ``rid``, once the front has flushed its line."""
    found: list[dict[str, str]] = []

    def written() -> bool:
        if os.path.exists(path):
            with open(path) as fh:
                found[:] = [f for f in map(fields, fh.read().splitlines()) if f["rid"] == rid]
        return bool(found)
    wait_until(written, TIMEOUT, what=f"the access-log line of {rid}")
    assert len(found) == 1, found
    return found[0]


def test_one_trace_id_from_the_client_to_the_py3_consumer(
        procs: Any, workdir: str, redis_server: Any, py2: str) -> None:
    endpoint = start_broker(procs)
    queue_name = "traced"
    env = {"TRACE_BROKER": endpoint, "TRACE_REDIS": redis_server.url, "TRACE_QUEUE": queue_name}
    log_path = os.path.join(workdir, "py2-worker.log")
    with open(log_path, "w") as log_file:
        procs.spawn([py2, "-m", "protocol.wsgi", "--broker", endpoint, "--service", "traced",
                     "tests.integration.http.trace_app:app"], env=env, stderr=log_file)
    procs.spawn([sys.executable, "-m", "protocol.worker", "--broker", endpoint,
                 "--service", "tracepeer", "tests.integration.http.trace_peer:TABLE"])
    consumer = procs.spawn([sys.executable, "-m", "tests.integration.http.trace_peer",
                            redis_server.url, queue_name])
    wait_for_service(endpoint, "traced")
    wait_for_service(endpoint, "tracepeer")
    access_log = os.path.join(workdir, "access.log")
    gateway = start_gateway(procs, workdir, {"broker": endpoint, "routes": [
        {"prefix": "/t", "backend": "wsgi", "service": "traced"},
        {"prefix": "/rpc", "backend": "rpc", "service": "tracepeer"}]},
        observability={"metrics": False, "access_log": access_log})

    status, headers, seen = get(gateway.port, "/t/hello", {
        "traceparent": f"00-{TRACE}-{CLIENT_SPAN}-01", "tracestate": "congo=t61rcWkgMzE",
        "X-Request-ID": "e2e-trace-1"})
    assert status == 200, seen
    assert headers["x-request-id"] == "e2e-trace-1"

    # The py2 worker's environ: the client's trace, with the gateway's span as parent.
    trace_id, gateway_span, flags = trace.parse(seen["traceparent"])
    assert (trace_id, flags) == (TRACE, 1)
    assert gateway_span != CLIENT_SPAN
    assert seen["tracestate"] == "congo=t61rcWkgMzE"

    # The py3 peer's envelope: same trace, the py2 worker's own span as parent.
    peer = seen["peer"]
    assert peer["trace_id"] == TRACE and peer["rid"] == "e2e-trace-1"
    assert peer["parent_id"] not in (None, gateway_span, CLIENT_SPAN)
    assert peer["tracestate"] == "congo=t61rcWkgMzE"
    py2_span = peer["parent_id"]

    # The job and the py3 consumer that ran it.
    queue = Queue(connect(redis_server.url), queue_name)
    done = queue.wait(seen["job_id"], timeout=TIMEOUT)
    assert done.state == "done", done.error
    result = done.result
    assert trace.parse(result["job_traceparent"]) == (TRACE, py2_span, 1)
    assert result["job_tracestate"] == "congo=t61rcWkgMzE"
    assert result["job_rid"] == "e2e-trace-1"
    assert result["context"]["trace_id"] == TRACE
    assert result["context"]["parent_id"] == py2_span
    assert result["context"]["rid"] == "e2e-trace-1"
    wait_until(lambda: consumer.poll() is not None, TIMEOUT, what="consumer exit")

    # The py2 worker's log line about the request names its request id and trace id.
    def logged() -> bool:
        with open(log_path) as fh:
            return any("handled /hello" in line for line in fh)
    wait_until(logged, TIMEOUT, what="py2 worker log line")
    with open(log_path) as fh:
        line = next(x for x in fh if "handled /hello" in x)
    assert f"rid=e2e-trace-1 trace_id={TRACE}" in line

    # The front's access-log line about it: the same request id and trace id.
    front = logged_line(access_log, "e2e-trace-1")
    assert front["trace"] == TRACE
    assert (front["request"], front["status"]) == ("GET /t/hello HTTP/1.1", "200")
    assert (front["route"], front["service"], front["upstream"]) == ("/t", "traced",
                                                                     "broker:traced")

    # RPC over HTTP: the call envelope carries the gateway's span under the client's trace.
    status, _, peer = get(gateway.port, "/rpc/whoami", {
        "traceparent": f"00-{TRACE}-{CLIENT_SPAN}-00", "Content-Type": "application/json"},
        method="POST", body=b"{}")
    assert status == 200, peer
    assert peer["trace_id"] == TRACE
    assert peer["parent_id"] not in (None, CLIENT_SPAN)

    # No traceparent from the client: the gateway starts a trace and passes it on.
    status, _, fresh = get(gateway.port, "/rpc/whoami", {"Content-Type": "application/json"},
                           method="POST", body=b"{}")
    assert status == 200, fresh
    assert fresh["trace_id"] != TRACE and len(fresh["trace_id"]) == 32
    assert fresh["parent_id"] is not None
    # ...and that trace id, the gateway's own, is the one its access log names.
    fresh_rid = fresh["rid"]
    assert logged_line(access_log, fresh_rid)["trace"] == fresh["trace_id"]

    # Refused before the front reads any trace context (414, here): the line says "-",
    # even though the client sent a traceparent.
    status, headers, problem = get(gateway.port, "/t/" + "x" * 5000, {
        "traceparent": f"00-{TRACE}-{CLIENT_SPAN}-01"})
    assert status == 414, problem
    refused = logged_line(access_log, headers["x-request-id"])
    assert (refused["status"], refused["trace"]) == ("414", "-")
