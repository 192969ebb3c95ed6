"""Hostile requests through the real gunicorn-served gateway, data-driven.

- traversal and encoding variants (data/traversal.txt) sent to an /api mount
  while /admin is mounted elsewhere: the /admin upstream must count no hit;
- smuggling and oversized requests (data/smuggle/*.http) sent over raw
  sockets: each gets its exact 4xx as problem+json, and no backend is called.
"""

from __future__ import annotations

import glob
import json
import os
import urllib.request
from typing import Any

import pytest

from tests.integration.http.conftest import (
    UPSTREAM,
    Server,
    start_gateway,
    start_gunicorn,
)
from tests.integration.http.rawhttp import exchange, load_case

DATA = os.path.join(os.path.dirname(__file__), "data")
with open(os.path.join(DATA, "traversal.txt"), encoding="latin-1") as _fh:
    TRAVERSALS = [line for line in _fh.read().split("\n") if line and not line.startswith("#")]
SMUGGLING = sorted(glob.glob(os.path.join(DATA, "smuggle", "*.http")))


def hits(server: Server) -> int:
    """Requests the upstream has seen (read directly, not through the gateway)."""
    with urllib.request.urlopen(server.url + "/__hits", timeout=5) as resp:
        return int(json.load(resp)["hits"])


@pytest.fixture(scope="module")
def estate(module_procs: Any, module_workdir: str) -> dict[str, Server]:
    api = start_gunicorn(module_procs, UPSTREAM)
    admin = start_gunicorn(module_procs, UPSTREAM)
    gateway = start_gateway(module_procs, module_workdir, {
        "routes": [{"prefix": "/api", "backend": "http", "upstream": api.url},
                   {"prefix": "/admin", "backend": "http", "upstream": admin.url}],
        "limits": {"max_body": 1024 * 1024}})
    return {"api": api, "admin": admin, "gateway": gateway}


def test_there_are_enough_cases() -> None:
    assert len(TRAVERSALS) >= 100
    assert len(SMUGGLING) >= 20


def test_the_admin_mount_itself_works(estate: dict[str, Server]) -> None:
    before = hits(estate["admin"])
    answer = exchange(estate["gateway"].port,
                      b"GET /admin/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.status == 200
    assert hits(estate["admin"]) == before + 1


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_never_reaches_admin(estate: dict[str, Server], target: str) -> None:
    before = hits(estate["admin"])
    raw = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1")
    answer = exchange(estate["gateway"].port, raw)
    assert answer.status < 500
    assert hits(estate["admin"]) == before, f"{target!r} reached /admin"
    if answer.status == 200:
        seen = json.loads(answer.body)
        assert seen["raw_uri"].startswith("/api")
    else:
        assert answer.status in (400, 404)
        assert answer.problem()["status"] == answer.status


@pytest.mark.parametrize("path", SMUGGLING, ids=[os.path.basename(p) for p in SMUGGLING])
def test_smuggling_and_oversize_get_the_right_4xx(estate: dict[str, Server], path: str) -> None:
    expect, raw = load_case(path)
    before = hits(estate["api"])
    answer = exchange(estate["gateway"].port, raw)
    assert answer.status == expect
    problem = answer.problem()
    assert problem["status"] == expect and problem["request_id"]
    assert hits(estate["api"]) == before, "the backend was called"


def test_underscored_header_names_are_dropped_not_merged(estate: dict[str, Server]) -> None:
    """X_Forwarded_For would map onto X-Forwarded-For in WSGI; gunicorn drops it."""
    answer = exchange(estate["gateway"].port, b"GET /api/echo HTTP/1.1\r\nHost: x\r\n"
                      b"X_Forwarded_For: 6.6.6.6\r\nConnection: close\r\n\r\n")
    seen = json.loads(answer.body)["headers"]
    assert seen["x-forwarded-for"] == "127.0.0.1"


DEV_CASES = ["001_cl_then_te", "002_te_then_cl", "024_header_line_too_long",
             "026_headers_too_large_in_total", "027_body_over_limit", "029_dot_segments",
             "030_encoded_slash"]


def test_the_dev_server_gives_the_same_answers(module_procs: Any, module_workdir: str,
                                               estate: dict[str, Server]) -> None:
    """werkzeug's server lets more through; the app's own checks give the same 4xx."""
    dev = start_gateway(module_procs, module_workdir, {
        "routes": [{"prefix": "/api", "backend": "http", "upstream": estate["api"].url}],
        "limits": {"max_body": 1024 * 1024}}, dev=True)
    before = hits(estate["api"])
    for name in DEV_CASES:
        expect, raw = load_case(os.path.join(DATA, "smuggle", name + ".http"))
        answer = exchange(dev.port, raw)
        assert answer.status == expect, name
        assert answer.problem()["status"] == expect
    assert hits(estate["api"]) == before


def test_a_chunked_body_over_the_limit_gets_413(estate: dict[str, Server]) -> None:
    """The cap holds for bodies without a Content-Length too (counted while streaming)."""
    from tests.integration.http.client import fetch
    answer = fetch(estate["gateway"].port, "POST", "/api/upload",
                   body=iter([b"x" * 65536] * 32), chunked=True)
    assert answer.status == 413
    assert json.loads(answer.body)["code"] == "too_large"


@pytest.mark.parametrize("target", ["http://169.254.169.254/api/echo",
                                    "http://127.0.0.1:1/api/echo", "https://admin/api/echo"])
def test_upstreams_come_from_config_not_from_the_request(estate: dict[str, Server],
                                                         target: str) -> None:
    """Absolute-form targets and Host headers never choose the upstream (no SSRF)."""
    before = hits(estate["admin"])
    raw = (f"GET {target} HTTP/1.1\r\nHost: 169.254.169.254\r\n"
           "Connection: close\r\n\r\n").encode()
    answer = exchange(estate["gateway"].port, raw)
    assert answer.status == 200
    assert json.loads(answer.body)["raw_uri"] == "/api/echo"
    assert hits(estate["admin"]) == before
