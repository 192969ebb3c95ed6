"""A Flask 1.1.4 app and a plain werkzeug 1.0 app on Python 2.7, unmodified, behind the gateway.

Direct: werkzeug's server (py2) with the apps mounted at /legacy and /plain.
Through the gateway: each app hosted by ``python -m protocol.wsgi`` on py2,
reached over ZeroMQ through the broker, mounted at the same prefixes.
Only the serving server's Date/Server, Via and X-Request-ID may differ.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest

from tests.integration.http.client import Answer, fetch
from tests.integration.http.conftest import (
    Server,
    start_broker,
    start_gateway,
    start_wsgi_worker,
    wait_for_service,
)
from tests.support.procs import free_port, port_open, python2, wait_until

NOISE = {"date", "server", "via", "x-request-id", "connection", "transfer-encoding",
         "keep-alive"}
BOUNDARY = "----gwtest" + uuid.UUID(int=7).hex
FILE = bytes(range(256)) * 300


def _multipart() -> bytes:
    parts = [
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nh\u00e9llo\r\n",
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n",
    ]
    return ("".join(parts)).encode() + FILE + f"\r\n--{BOUNDARY}--\r\n".encode()


CASES: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("GET", "/legacy/", {}, None),
    ("GET", "/legacy/hello/w%C3%B6rld?q=%C3%A9t%C3%A9&x=1", {}, None),
    ("HEAD", "/legacy/hello/x", {}, None),
    ("GET", "/legacy/go", {}, None),
    ("GET", "/legacy/cookies", {"Cookie": "sid=1; theme=dark"}, None),
    ("POST", "/legacy/upload", {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
     _multipart()),
    ("POST", "/legacy/json", {"Content-Type": "application/json"}, b'{"a": [1, "\\u00e9"]}'),
    ("PUT", "/legacy/json", {"Content-Type": "application/json"}, b'{"b": null}'),
    ("GET", "/legacy/stream", {}, None),
    ("GET", "/legacy/missing", {}, None),
    ("GET", "/legacy/boom", {}, None),
    ("DELETE", "/legacy/json", {}, None),
    ("GET", "/plain/echo/caf%C3%A9?a=1&a=2", {}, None),
    ("POST", "/plain/echo", {"Content-Type": "text/plain"}, b"plain body"),
    ("GET", "/plain/redirect", {}, None),
]


def _scrub(answer: Answer) -> tuple[int, list[tuple[str, str]], bytes]:
    return (answer.status, [(k.lower(), v) for k, v in answer.headers
                            if k.lower() not in NOISE], answer.body)


@pytest.fixture(scope="module")
def legacy(module_procs: Any, module_workdir: str) -> tuple[Server, Server]:
    try:
        py2 = python2()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    port = free_port()
    proc = module_procs.spawn([py2, "-m", "tests.integration.http.legacy_app", str(port)])
    wait_until(lambda: port_open(port) or proc.poll() is not None, 20, what="py2 server")
    direct = Server(f"http://127.0.0.1:{port}", port, proc)
    endpoint = start_broker(module_procs)
    for service, app in (("legacy", "flask_app"), ("plain", "plain_app")):
        start_wsgi_worker(module_procs, endpoint, service,
                          f"tests.integration.http.legacy_app:{app}", python=py2)
    for service in ("legacy", "plain"):
        wait_for_service(endpoint, service)
    gateway = start_gateway(module_procs, module_workdir, {"broker": endpoint, "routes": [
        {"prefix": "/legacy", "backend": "wsgi", "service": "legacy"},
        {"prefix": "/plain", "backend": "wsgi", "service": "plain"}]})
    return direct, gateway


@pytest.mark.parametrize(("method", "target", "headers", "body"), CASES,
                         ids=[f"{c[0]} {c[1][:40]}" for c in CASES])
def test_py2_apps_answer_the_same_behind_the_gateway(legacy: tuple[Server, Server], method: str,
                                                     target: str, headers: dict[str, str],
                                                     body: bytes | None) -> None:
    direct_server, gateway = legacy
    direct = fetch(direct_server.port, method, target, headers, body)
    proxied = fetch(gateway.port, method, target, headers, body)
    assert _scrub(proxied) == _scrub(direct)
    assert proxied.header("Via") == "1.1 gateway"


def test_mount_aware_urls_cookies_and_uploads(legacy: tuple[Server, Server]) -> None:
    _, gateway = legacy
    index = json.loads(fetch(gateway.port, "GET", "/legacy/").body)
    assert index["hello"] == "/legacy/hello/w%C3%B6rld"
    assert index["external"] == "http://example.test/legacy/"
    assert fetch(gateway.port, "GET", "/legacy/go").header("Location") == \
        "http://example.test/legacy/hello/there"
    assert len(fetch(gateway.port, "GET", "/legacy/cookies").all("Set-Cookie")) == 2
    up = json.loads(fetch(gateway.port, "POST", "/legacy/upload", {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, _multipart()).body)
    assert up == {"filename": "a.bin", "size": len(FILE), "note": "h\u00e9llo",
                  "sha256": hashlib.sha256(FILE).hexdigest()}
    streamed = fetch(gateway.port, "GET", "/legacy/stream")
    assert streamed.body.count(b"\n") == 20
    boom = fetch(gateway.port, "GET", "/legacy/boom")
    assert boom.status == 500 and b"Traceback" not in boom.body


def test_a_py3_worker_hosts_a_wsgi_app_too(module_procs: Any, module_workdir: str) -> None:
    """The same host on Python 3: streaming, cookies, unicode paths, uploads, the mount split."""
    endpoint = start_broker(module_procs)
    start_wsgi_worker(module_procs, endpoint, "echo3", "tests.integration.http.upstream:app")
    wait_for_service(endpoint, "echo3")
    gateway = start_gateway(module_procs, module_workdir, {"broker": endpoint, "routes": [
        {"prefix": "/py3", "backend": "wsgi", "service": "echo3"}]})
    seen = json.loads(fetch(gateway.port, "GET", "/py3/caf%C3%A9?q=%C3%A9").body)
    assert (seen["path"], seen["query"]) == ("/caf\u00e9", "q=%C3%A9")
    assert seen["raw_uri"] == "/py3/caf%C3%A9?q=%C3%A9"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    streamed = fetch(gateway.port, "GET", "/py3/stream?n=30&size=500")
    assert len(streamed.body) == 30 * 500
    assert len(fetch(gateway.port, "GET", "/py3/cookies").all("Set-Cookie")) == 2
    up = json.loads(fetch(gateway.port, "POST", "/py3/upload", body=FILE).body)
    assert up == {"body_len": len(FILE), "body_sha256": hashlib.sha256(FILE).hexdigest()}
    assert fetch(gateway.port, "GET", "/py3/nocontent").status == 204
    assert fetch(gateway.port, "GET", "/py3/etag", {"If-None-Match": '"v1"'}).status == 304
