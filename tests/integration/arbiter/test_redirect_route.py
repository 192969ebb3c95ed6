"""A ``redirect`` route through ``gateway up``: the moved route answers where it lives now."""

from __future__ import annotations

import http.client
import json

from tests.integration.arbiter.conftest import fdhttp_service
from tests.support.procs import free_port


def _raw_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET that does not follow redirects (urllib would)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_a_moved_route_redirects_to_its_new_mount_which_serves_it(estate):
    port = free_port()
    e = estate(f"""
[[routes]]
prefix = "/web"
backend = "http"
target = "http://127.0.0.1:{port}"
service = "web"

[[routes]]
prefix = "/old"
backend = "redirect"
target = "/web"

[[routes]]
prefix = "/moved"
backend = "redirect"
target = "http://elsewhere.example/app"
status = 301
""" + fdhttp_service("web", port))
    status, headers, body = _raw_get(e.port, "/old/x/y?q=1&r")
    assert status == 308 and headers["location"] == "/web/x/y?q=1&r", (headers, e.log())
    assert headers["x-request-id"] and body == b""
    code, served, _ = e.get(headers["location"])
    assert code == 200 and json.loads(served)["impl"] == "py3"
    status, headers, _ = _raw_get(e.port, "/moved")
    assert status == 301 and headers["location"] == "http://elsewhere.example/app"
    # The strict parse comes before any backend: a bad path is a problem, not a redirect.
    status, headers, body = _raw_get(e.port, "/old/%2e%2e/secret")
    assert status == 400 and json.loads(body)["code"] == "bad_path"
    assert headers["content-type"] == "application/problem+json"
