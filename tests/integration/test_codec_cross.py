"""Cross-interpreter codec properties: Python 3 writes, Python 2.7 reads and writes back.

A long-lived 2.7 process decodes each envelope that Python 3 encoded and
re-encodes it; Python 3 then requires byte-identical frames and decodes them
back to the original value. So every value crosses 3 -> 2 -> 3 for real.
"""

from __future__ import annotations

import binascii
import json
import select
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from protocol import codec
from protocol.codec import Bytes, Envelope
from tests.protocol.strategies import RECORD_SCHEMA, records, values
from tests.support.procs import ProcessGroup, python2


class Py2Codec:
    """A 2.7 codec_echo process driven over pipes, every read with a deadline."""

    def __init__(self, procs: ProcessGroup) -> None:
        self.proc = procs.spawn([python2(), "-m", "tests.support.codec_echo"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def roundtrip(self, frames: list[bytes], schema: dict[str, Any] | None = None,
                  timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        line = json.dumps({"frames": [binascii.hexlify(f).decode() for f in frames],
                           "schema": schema})
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"Python 2.7 codec did not answer within {timeout}s"
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer


@pytest.fixture(scope="module")
def py2() -> Iterator[Py2Codec]:
    group = ProcessGroup()
    try:
        yield Py2Codec(group)
    finally:
        group.close()


SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def _frames(answer: dict[str, Any]) -> list[bytes]:
    assert "frames" in answer, answer
    return [binascii.unhexlify(f) for f in answer["frames"]]


@SETTINGS
@given(value=values)
def test_python3_writes_python2_reads_and_writes_identical_bytes(py2: Py2Codec, value: Any) -> None:
    frames = codec.encode(Envelope("result", id="a", rid="r", payload=value))
    back = _frames(py2.roundtrip(frames))
    assert back == frames
    assert codec.decode(back).payload == value


@SETTINGS
@given(record=records)
def test_contract_values_cross_both_ways(py2: Py2Codec, record: dict[str, Any]) -> None:
    frames = codec.encode(Envelope("call", method="store", deadline=1, payload=record),
                          RECORD_SCHEMA)
    back = _frames(py2.roundtrip(frames, RECORD_SCHEMA))
    assert back == frames
    decoded = codec.decode(back).payload
    assert decoded == record
    assert isinstance(decoded["blob"], Bytes) and isinstance(decoded["name"], str)


def test_python2_rejects_what_python3_rejects(py2: Py2Codec) -> None:
    bad = [b'{"id":"a","kind":"result","v":1}', b'{"a":1,"a":2}']
    answer = py2.roundtrip(bad)
    assert answer["error"] == "EnvelopeError"
    assert "duplicate key" in answer["message"]
