"""Python 2.7 and 3.x agree byte for byte on every golden vector.

The 2.7 interpreter (``.venv2``) runs ``python -m protocol.vectors --report``
in a child process; its JSON report is compared with this interpreter's and
with the committed frames.
"""
from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from protocol import vectors
from tests.support.procs import ProcessGroup, python2


@pytest.fixture(scope="module")
def py2_report() -> dict[str, Any]:
    group = ProcessGroup()
    try:
        proc = group.spawn([python2(), "-m", "protocol.vectors", "--report"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode("utf-8", "replace")
    finally:
        group.close()
    report: dict[str, Any] = json.loads(out.decode("utf-8"))
    assert report["python"] == "2.7"
    return report


@pytest.fixture(scope="module")
def py3_report() -> dict[str, Any]:
    return vectors.report()


def test_both_interpreters_saw_every_vector(py2_report: dict[str, Any],
                                            py3_report: dict[str, Any]) -> None:
    names = {v["name"] for v in vectors.load_good()}
    assert set(py2_report["good"]) == set(py3_report["good"]) == names
    assert set(py2_report["bad"]) == set(py3_report["bad"]) == {
        v["name"] for v in vectors.load_bad()}


@pytest.mark.parametrize("vector", vectors.load_good(), ids=lambda v: v["name"])
def test_py2_encodes_the_golden_frames(vector: dict[str, Any],
                                       py2_report: dict[str, Any],
                                       py3_report: dict[str, Any]) -> None:
    name = vector["name"]
    assert py2_report["good"][name]["frames"] == vector["frames"]
    assert py3_report["good"][name]["frames"] == vector["frames"]


@pytest.mark.parametrize("vector", vectors.load_good(), ids=lambda v: v["name"])
def test_py2_decodes_to_the_same_view(vector: dict[str, Any],
                                      py2_report: dict[str, Any],
                                      py3_report: dict[str, Any]) -> None:
    name = vector["name"]
    assert py2_report["good"][name]["header"] == py3_report["good"][name]["header"]
    assert py2_report["good"][name]["value"] == py3_report["good"][name]["value"]


# Where 2.7 and 3.x still differ on bad input; strict, so a fix shows up here.
KNOWN_SPLITS: dict[str, str] = {}  # name -> reason, for vectors 2.7 and 3.x decide differently


@pytest.mark.parametrize("vector", [
    pytest.param(v, id=v["name"], marks=[pytest.mark.xfail(
        strict=True, reason=KNOWN_SPLITS[v["name"]])] if v["name"] in KNOWN_SPLITS else [])
    for v in vectors.load_bad()])
def test_py2_rejects_what_py3_rejects(vector: dict[str, Any],
                                      py2_report: dict[str, Any],
                                      py3_report: dict[str, Any]) -> None:
    name = vector["name"]
    py2, py3 = py2_report["bad"][name], py3_report["bad"][name]
    assert (py2 is None) == (py3 is None)
    if py2 is not None and vector["required"]:
        assert vector["error"] in py2
        assert vector["error"] in py3


# The id an error for an undecodable request carries (SPEC 3.4) is one rule on both sides.
HEADER_ID_CASES = [
    b'{"id":"req-1","kind":"call","v":2}', b'{"id":"a","id":"b"}', b'{"id":""}',
    b'{"id":7}', b'{"id":"\\ud800"}', b'{"id":"\\ud83d\\ude00"}', b'["x"]', b"{",
    b"\xff", b'{"id":"caf\xc3\xa9"}', b' {"id":"spaced"}', b"\xef\xbb\xbf{\"id\":\"bom\"}",
    b'{"id":"\xed\xa0\x80"}', b"[" * 3000,
]
HEADER_ID_SCRIPT = """
import binascii, json, sys
from protocol import codec
cases = [binascii.unhexlify(h) for h in json.loads(sys.stdin.read())]
print(json.dumps([codec.header_id(c) for c in cases]))
"""


def test_both_interpreters_read_the_same_error_id() -> None:
    from protocol import codec

    group = ProcessGroup()
    try:
        proc = group.spawn([python2(), "-c", HEADER_ID_SCRIPT], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(json.dumps([c.hex() for c in HEADER_ID_CASES]).encode(),
                                    timeout=60)
        assert proc.returncode == 0, err.decode("utf-8", "replace")
    finally:
        group.close()
    py3 = [codec.header_id(c) for c in HEADER_ID_CASES]
    assert json.loads(out) == py3
    assert py3[:3] == ["req-1", "b", None] and py3[5] == "\U0001F600"
