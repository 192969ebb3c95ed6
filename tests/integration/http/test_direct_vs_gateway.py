"""The same requests, straight to an upstream and through the gateway (both under gunicorn).

Only documented forwarding headers may differ (gateway/http/forwarding.py):
Via, X-Forwarded-*, hop-by-hop fields, and Date/Server from the serving gunicorn.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pytest

from tests.integration.http.client import Answer, fetch
from tests.integration.http.conftest import UPSTREAM, Server, rss_kib, start_gateway, start_gunicorn
from tests.support.procs import wait_until

RESPONSE_NOISE = {"date", "server", "via", "connection", "keep-alive", "transfer-encoding"}
# What an intermediary adds on purpose: forwarding fields, and the W3C trace context
# naming its own span (a direct request has none).
REQUEST_NOISE = {"via", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                 "x-forwarded-prefix", "connection", "keep-alive", "te", "traceparent",
                 "tracestate"}
RID = {"X-Request-ID": "req-0123456789"}

CASES: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("GET", "/echo/plain", {}, None),
    ("HEAD", "/echo/plain", {}, None),
    ("POST", "/echo/post", {"Content-Type": "application/json"}, b'{"a": 1}'),
    ("PUT", "/echo/put", {"Content-Type": "text/plain"}, b"put body"),
    ("PATCH", "/echo/patch", {}, b"patch body"),
    ("DELETE", "/echo/delete", {}, None),
    ("OPTIONS", "/echo/options", {}, None),
    ("POST", "/echo/empty", {}, b""),
    ("GET", "/redirect", {}, None),
    ("GET", "/redirect-abs", {}, None),
    ("GET", "/cookies", {"Cookie": "sid=abc; theme=dark"}, None),
    ("GET", "/gzip", {"Accept-Encoding": "gzip"}, None),
    ("GET", "/stream?n=40&size=1000", {}, None),
    ("GET", "/download?size=200000", {}, None),
    ("HEAD", "/download?size=200000", {}, None),
    ("GET", "/etag", {}, None),
    ("GET", "/etag", {"If-None-Match": '"v1"'}, None),
    ("HEAD", "/etag", {"If-None-Match": '"v1"'}, None),
    ("GET", "/nocontent", {}, None),
    ("GET", "/echo/caf%C3%A9/%E2%9C%93?q=%C3%A9t%C3%A9&x=a+b&y=%2F%2f", {}, None),
    ("GET", "/echo/%E6%97%A5%E6%9C%AC?%E3%81%82=1", {}, None),
    ("GET", "/echo/q?", {}, None),
    ("GET", "/echo/keep%20space;param=1?a=%25&b=%26", {}, None),
]


def _scrub(answer: Answer) -> tuple[int, list[tuple[str, str]], Any]:
    headers = [(k.lower(), v) for k, v in answer.headers if k.lower() not in RESPONSE_NOISE]
    headers = [h for h in headers if h[0] != "x-request-id"]
    body: Any = answer.body
    if answer.header("Content-Type") == "application/json":
        # Echoed request headers include the forwarding fields, so the length differs.
        headers = [h for h in headers if h[0] != "content-length"]
        if answer.body:
            body = json.loads(answer.body)
            if isinstance(body, dict) and "headers" in body:
                body["headers"] = {k: v for k, v in body["headers"].items()
                                   if k not in REQUEST_NOISE}
    return answer.status, headers, body


@pytest.fixture(scope="module")
def pair(module_procs: Any, module_workdir: str) -> tuple[Server, Server]:
    upstream = start_gunicorn(module_procs, UPSTREAM)
    gateway = start_gateway(module_procs, module_workdir, {"routes": [
        {"prefix": "/", "backend": "http", "upstream": upstream.url}]})
    return upstream, gateway


@pytest.mark.parametrize(("method", "target", "headers", "body"), CASES,
                         ids=[f"{c[0]} {c[1][:40]}" for c in CASES])
def test_same_answer_direct_and_through_the_gateway(pair: Any, method: str, target: str,
                                                    headers: dict[str, str],
                                                    body: bytes | None) -> None:
    upstream, gateway = pair
    direct = fetch(upstream.port, method, target, {**RID, **headers}, body)
    proxied = fetch(gateway.port, method, target, {**RID, **headers}, body)
    assert _scrub(proxied) == _scrub(direct)
    assert proxied.header("Via") == "1.1 gateway"
    assert proxied.header("X-Request-ID") == RID["X-Request-ID"]


def test_chunked_upload_is_streamed_through(pair: Any) -> None:
    upstream, gateway = pair
    pieces = [bytes([i]) * 7777 for i in range(30)]
    direct = fetch(upstream.port, "POST", "/upload", body=iter(pieces), chunked=True)
    proxied = fetch(gateway.port, "POST", "/upload", body=iter(pieces), chunked=True)
    assert json.loads(proxied.body) == json.loads(direct.body)
    assert json.loads(direct.body)["body_len"] == 30 * 7777


def test_forwarding_headers_reach_the_service(pair: Any) -> None:
    _, gateway = pair
    answer = fetch(gateway.port, "GET", "/echo/h", {
        "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil", "Forwarded": "for=6.6.6.6",
        "Connection": "X-Secret", "X-Secret": "drop me", "Via": "1.0 upstream-proxy"})
    seen = json.loads(answer.body)["headers"]
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-host"] == "example.test"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["via"] == "1.0 upstream-proxy, 1.1 gateway"
    assert "forwarded" not in seen and "x-secret" not in seen
    assert len(seen["x-request-id"]) == 32
    assert answer.header("X-Request-ID") == seen["x-request-id"]


def test_trusted_proxies_keep_the_chain(upstream: Any, gateway_factory: Any) -> None:
    gateway = gateway_factory({"trusted_proxies": 1, "routes": [
        {"prefix": "/", "backend": "http", "upstream": upstream.url}]})
    seen = json.loads(fetch(gateway.port, "GET", "/echo/t", {
        "X-Forwarded-For": "1.1.1.1, 10.0.0.9", "X-Forwarded-Proto": "https"}).body)["headers"]
    assert seen["x-forwarded-for"] == "10.0.0.9, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "https"


def test_50_mib_both_ways_without_growing_the_worker(pair: Any) -> None:
    _, gateway = pair
    size = 50 * 1024 * 1024
    fetch(gateway.port, "GET", "/download?size=100000")  # warm the pools
    (worker,) = gateway.worker_pids()
    before = rss_kib(worker)
    piece = b"\xa5" * 65536
    up = fetch(gateway.port, "POST", "/upload", body=iter([piece] * (size // 65536)),
               chunked=True, timeout=60)
    assert json.loads(up.body) == {"body_len": size,
                                   "body_sha256": hashlib.sha256(piece * (size // 65536)
                                                                 ).hexdigest()}
    down = fetch(gateway.port, "GET", f"/download?size={size}", timeout=60)
    assert len(down.body) == size
    with open(f"/proc/{worker}/status") as fh:
        peak = next(int(x.split()[1]) for x in fh if x.startswith("VmHWM:"))
    assert peak - before < 20 * 1024, f"worker RSS grew {peak - before} KiB"
    assert rss_kib(worker) - before < 20 * 1024


def test_gunicorn_workers_are_pinned_to_their_own_cpus(upstream: Any,
                                                       gateway_factory: Any) -> None:
    """post_fork pins each gthread worker (unpinned, a run can collapse; see pinned_conf)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: nothing to pin")
    gateway = gateway_factory({"routes": [
        {"prefix": "/", "backend": "http", "upstream": upstream.url}]}, workers=2)
    wait_until(lambda: len(gateway.worker_pids()) == 2, 20, what="two workers")

    def allowed(pid: int) -> str:
        with open(f"/proc/{pid}/status") as fh:
            return next(x.split()[1] for x in fh if x.startswith("Cpus_allowed_list:"))

    wait_until(lambda: all("," not in allowed(p) and "-" not in allowed(p)
                           for p in gateway.worker_pids()), 20, what="pinned workers")
    cpus = {allowed(p) for p in gateway.worker_pids()}
    assert len(cpus) == 2
    assert fetch(gateway.port, "GET", "/echo/pinned").status == 200
