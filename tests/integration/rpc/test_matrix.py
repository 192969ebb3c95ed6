"""{py2, py3} client x {py2, py3} worker through a broker process: identical results."""

import json
import subprocess
import sys

import pytest

from protocol import codec
from tests.integration.rpc.cases import cases

pytestmark = pytest.mark.slow


def run_client(rpc, which: str, service: str) -> list[dict]:
    """Run client_main under ``which``; return its JSON lines."""
    proc = rpc.procs.spawn([rpc.interpreter(which), "-m", "tests.integration.rpc.client_main",
                            rpc.endpoint, service], stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0
    return [json.loads(line) for line in out.decode("utf-8").splitlines()]


def test_cross_version_matrix(rpc) -> None:
    rpc.broker()
    for which in ("py2", "py3"):
        rpc.worker(which, f"echo-{which}")
    for which in ("py2", "py3"):
        rpc.wait_workers(f"echo-{which}", 1)
    expected = [{"case": name, "result": codec.to_json(value)} for name, value in cases()]
    outputs = {}
    for client in ("py2", "py3"):
        for worker in ("py2", "py3"):
            lines = run_client(rpc, client, f"echo-{worker}")
            py3 = f"{sys.version_info[0]}.{sys.version_info[1]}"
            assert lines[-1] == {"runtime": "2.7" if worker == "py2" else py3}
            outputs[(client, worker)] = lines[:-1]
    for pair, lines in outputs.items():
        assert [line["case"] for line in lines] == [e["case"] for e in expected], pair
        for got, want in zip(lines, expected, strict=True):
            assert got == want, (pair, got["case"])
    assert len({json.dumps(v, sort_keys=True) for v in outputs.values()}) == 1
