"""Failure answers (502, 504, 503 + Retry-After) and the rpc backend, through gunicorn.

The rpc routes are also fuzzed with schemathesis against /_gateway/openapi.json,
which must find no server error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from protocol.contract import SPEC_DIR
from tests.integration.http.client import Answer, fetch
from tests.integration.http.conftest import (
    UPSTREAM,
    start_broker,
    start_gateway,
    start_gunicorn,
    wait_for_service,
)
from tests.support.procs import free_port

ECHO = "tests.integration.http.echo_service:TABLE"


@pytest.fixture(scope="module")
def estate(module_procs: Any, module_workdir: str) -> dict[str, Any]:
    upstream = start_gunicorn(module_procs, UPSTREAM)
    endpoint = start_broker(module_procs)
    module_procs.spawn([sys.executable, "-m", "protocol.worker", "--broker", endpoint,
                        "--service", "echo", ECHO])
    wait_for_service(endpoint, "echo")
    contracts = os.path.join(module_workdir, "contracts")
    os.mkdir(contracts)
    shutil.copy(os.path.join(SPEC_DIR, "echo.json"), contracts)
    gateway = start_gateway(module_procs, module_workdir, {
        "broker": endpoint, "retry_after": 3, "contracts_dir": contracts,
        "routes": [
            {"prefix": "/down", "backend": "http", "upstream": f"http://127.0.0.1:{free_port()}"},
            {"prefix": "/slow", "backend": "http", "upstream": upstream.url,
             "strip_prefix": True, "timeout": 0.5},
            {"prefix": "/ghost", "backend": "wsgi", "service": "ghost", "timeout": 1.0},
            {"prefix": "/rpc", "backend": "rpc"},
            {"prefix": "/echo", "backend": "rpc", "service": "echo"}]})
    return {"gateway": gateway, "upstream": upstream, "broker": endpoint}


def _problem(answer: Answer, status: int) -> dict[str, Any]:
    assert answer.status == status, answer.body
    assert answer.header("Content-Type") == "application/problem+json"
    body = json.loads(answer.body)
    assert body["status"] == status and body["request_id"] == answer.header("X-Request-ID")
    assert "Traceback" not in answer.body.decode()
    return dict(body)


def _rpc(port: int, path: str, params: object) -> Answer:
    return fetch(port, "POST", path, {"Content-Type": "application/json"},
                 json.dumps(params).encode())


def test_unreachable_upstream_is_502(estate: dict[str, Any]) -> None:
    _problem(fetch(estate["gateway"].port, "GET", "/down/x"), 502)


def test_slow_upstream_is_504(estate: dict[str, Any]) -> None:
    _problem(fetch(estate["gateway"].port, "GET", "/slow/slow?s=2"), 504)


def test_no_live_worker_is_503_with_retry_after(estate: dict[str, Any]) -> None:
    answer = fetch(estate["gateway"].port, "GET", "/ghost/x")
    _problem(answer, 503)
    assert answer.header("Retry-After") == "3"


def test_rpc_calls_with_json_and_bytes(estate: dict[str, Any]) -> None:
    port = estate["gateway"].port
    assert json.loads(_rpc(port, "/rpc/echo/upper", {"text": "\u00e9t\u00e9"}).body) == \
        "\u00c9T\u00c9"
    data = b"\x00\xffbytes"
    answer = _rpc(port, "/echo/checksum", {"data": {"$bytes": base64.b64encode(data).decode()}})
    digest = hashlib.sha256(data).hexdigest()
    assert json.loads(answer.body) == {"sha256": digest, "size": len(data)}
    echoed = _rpc(port, "/rpc/echo/echo", {"value": {"$bytes": "AAE="}})
    assert json.loads(echoed.body) == {"$bytes": "AAE="}


def test_rpc_errors_map_to_statuses(estate: dict[str, Any]) -> None:
    port = estate["gateway"].port
    assert _problem(_rpc(port, "/rpc/echo/upper", {"text": 5}), 422)["code"] == "invalid_params"
    assert _problem(_rpc(port, "/rpc/echo/nope", {}), 404)["code"] == "unknown_method"
    _problem(fetch(port, "GET", "/rpc/echo/upper"), 405)
    _problem(fetch(port, "POST", "/rpc/echo/upper", {"Content-Type": "application/json"},
                   b"{nope"), 400)
    _problem(fetch(port, "POST", "/rpc/echo/upper", {"Content-Type": "text/plain"}, b"{}"), 415)
    _problem(_rpc(port, "/rpc/nobody/method", {}), 404)
    _problem(fetch(port, "POST", "/rpc/too/many/parts", {}, b"{}"), 404)


def test_openapi_lists_one_post_per_method(estate: dict[str, Any]) -> None:
    doc = json.loads(fetch(estate["gateway"].port, "GET", "/_gateway/openapi.json").body)
    assert doc["openapi"].startswith("3.1")
    for path in ("/rpc/echo/echo", "/rpc/echo/upper", "/rpc/echo/checksum", "/echo/upper"):
        assert list(doc["paths"][path]) == ["post"]


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(estate: dict[str, Any], module_workdir: str) -> None:
    cli = shutil.which("schemathesis", path=os.path.dirname(sys.executable))
    if cli is None:
        pytest.skip("schemathesis is not installed in this environment")
    url = f"{estate['gateway'].url}/_gateway/openapi.json"
    result = subprocess.run(
        [cli, "run", url, "--checks", "not_a_server_error", "--max-examples", "15",
         "--seed", "1", "--request-timeout", "10", "--generation-database", "none",
         "--max-failures", "5"],
        capture_output=True, text=True, timeout=110, cwd=module_workdir, check=False)
    with open(os.path.join(module_workdir, "schemathesis.txt"), "w") as fh:
        fh.write(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
