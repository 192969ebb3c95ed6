"""The ``/rpc`` body is read by the spec's strict payload reader (SPEC 4.3-4.8, 7.3), over HTTP.

Every bad golden vector whose fault lies in its payload frame is sent as an
rpc body, byte for byte: the gateway must answer 400 ``envelope`` with the
same reason the ZeroMQ path gives (``payload:`` reads ``body:``), and never
call the worker. The good vectors' values go through to a py2 and a py3 echo
worker and come back unchanged, so the strictness costs no valid input.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
from typing import Any

import pytest

from protocol import codec
from protocol.contract import SPEC_DIR
from protocol.errors import EnvelopeError
from protocol.vectors import VECTOR_DIR
from tests.integration.http.client import Answer, fetch
from tests.integration.http.conftest import start_broker, start_gateway, wait_for_service
from tests.support.procs import python2

ECHO = "tests.integration.http.echo_service:TABLE"
JSON = {"Content-Type": "application/json"}


def _vectors(kind: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(glob.glob(os.path.join(VECTOR_DIR, f"{kind}-*.json"))):
        with open(path, encoding="utf-8") as fh:
            out.append(json.load(fh))
    return out


def _payload_fault(vector: dict[str, Any]) -> bool:
    """A bad vector whose header is fine and whose fault is in its payload frame.

    Vectors about the frame count (too few, too many) or the header have no
    HTTP counterpart; ``$b`` vectors do, since an HTTP body has no frames.
    """
    frames = [bytes.fromhex(f) for f in vector.get("frames") or ()]
    if not 2 <= len(frames) <= 3:
        return False
    try:
        codec.decode_header(frames[0])
    except EnvelopeError:
        return False
    return True


BAD = [v for v in _vectors("bad") if _payload_fault(v)]
# A value nested 128 deep is nested 129 deep inside {"value": ...}: past what receivers must take.
# The nesting-deep vectors sit at the 128-level limit; wrapped in {"value": ...} they pass it.
GOOD = [v for v in _vectors("good")
        if v["value"] is not None and not v["name"].startswith("nesting-deep")]


@pytest.fixture(scope="module", params=["py3", "py2"])
def gateway(request: Any, module_procs: Any, module_workdir: str) -> int:
    """A gateway with /rpc in front of an echo worker on one runtime; its port."""
    if request.param == "py2":
        try:
            python = python2()
        except RuntimeError as exc:
            pytest.skip(str(exc))
    else:
        python = sys.executable
    endpoint = start_broker(module_procs)
    module_procs.spawn([python, "-m", "protocol.worker", "--broker", endpoint,
                        "--service", "echo", ECHO])
    wait_for_service(endpoint, "echo")
    contracts = os.path.join(module_workdir, f"contracts-{request.param}")
    os.mkdir(contracts)
    shutil.copy(os.path.join(SPEC_DIR, "echo.json"), contracts)
    server = start_gateway(module_procs, module_workdir, {
        "broker": endpoint, "contracts_dir": contracts,
        "routes": [{"prefix": "/rpc", "backend": "rpc"}]})
    return server.port


def _envelope_problem(answer: Answer) -> str:
    assert answer.status == 400, answer.body
    assert answer.header("Content-Type") == "application/problem+json"
    problem = json.loads(answer.body)
    assert problem["code"] == "envelope" and problem["status"] == 400
    return str(problem["detail"])


def test_the_bad_vectors_cover_every_payload_class() -> None:
    names = {v["name"] for v in BAD}
    for name in ("duplicate-key", "duplicate-key-escaped", "payload-bom", "surrogate-lone-high",
                 "surrogate-in-key", "nan", "infinity", "float-overflow", "base64-urlsafe",
                 "base64-unpadded", "tag-unknown", "b-text", "nesting-unbounded",
                 "payload-bad-utf8", "payload-trailing-data"):
        assert name in names


@pytest.mark.parametrize("vector", BAD, ids=[v["name"] for v in BAD])
def test_bad_payload_vector_is_400_envelope(gateway: int, vector: dict[str, Any]) -> None:
    body = bytes.fromhex(vector["frames"][1])
    detail = _envelope_problem(fetch(gateway, "POST", "/rpc/echo/echo", JSON, body))
    # The ZeroMQ path's reason, with the frame named as the body.
    expected = vector["error"].replace("payload:", "body:")
    assert expected in detail, (expected, detail)


@pytest.mark.parametrize("body", [
    b'{"value":{"a":1,"a":2}}',                 # nested: was 422 after the last value won
    b'{"value":1,"value":2}',
    b'{"value":{"$$a":1,"\\u0024\\u0024a":2}}',  # the same key, spelled with escapes
    b'\xef\xbb\xbf{"value":1}',                  # a BOM before otherwise valid JSON
    b'{"value":"\\udc00"}',
    b'{"value":1e400}',
    b'{"value":{"$bytes":"AAE"}}',
], ids=["nested-duplicate", "top-duplicate", "escaped-duplicate", "bom", "lone-surrogate",
        "overflow", "unpadded-base64"])
def test_reported_cases_are_400_envelope(gateway: int, body: bytes) -> None:
    _envelope_problem(fetch(gateway, "POST", "/rpc/echo/echo", JSON, body))


@pytest.mark.parametrize("vector", GOOD, ids=[v["name"] for v in GOOD])
def test_good_values_reach_the_worker_unchanged(gateway: int, vector: dict[str, Any]) -> None:
    body = json.dumps({"value": vector["value"]}, ensure_ascii=False).encode("utf-8")
    answer = fetch(gateway, "POST", "/rpc/echo/echo", JSON, body)
    assert answer.status == 200, answer.body
    assert codec.loads(answer.body) == codec.from_json(vector["value"])
    assert answer.body == codec.dumps(vector["value"])  # the canonical JSON-only view (7.3)


def test_empty_body_is_null_params_and_non_canonical_json_is_accepted(gateway: int) -> None:
    # null params fail the contract (it requires "value"): a 422, not a 400.
    answer = fetch(gateway, "POST", "/rpc/echo/echo", JSON, b"")
    assert answer.status == 422 and json.loads(answer.body)["code"] == "invalid_params"
    spaced = b' { "value" : [ 1E2 , "\\u00e9" ] } \n'
    answer = fetch(gateway, "POST", "/rpc/echo/echo", JSON, spaced)
    assert answer.status == 200 and json.loads(answer.body) == [100.0, "\u00e9"]
