"""Interop with pyzmq-mdp 0.2, an MDP/0.1 implementation we did not write (run on Python 2.7).

Its client calls one of our workers through our broker, and our client calls
its worker. pyzmq-mdp's worker heartbeats every 1000 ms with no way to
change it, so the broker here runs with that interval.
"""

import json
import subprocess

import pytest

from tests.support.procs import python2

pytestmark = pytest.mark.slow

MAIN = "tests.integration.rpc.thirdparty_main"


@pytest.fixture(scope="module")
def third_party():
    """Skip (saying why) when pyzmq-mdp is not installed in the Python 2.7 environment."""
    probe = subprocess.run([python2(), "-c", "import mdp.client, mdp.worker"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("pyzmq-mdp 0.2 is not installed in the Python 2.7 environment")


def test_third_party_client_calls_our_worker(rpc, third_party) -> None:
    rpc.broker(heartbeat_ms=1000)
    rpc.worker("py3", "echo")
    rpc.wait_workers("echo", 1)
    text = "h\u00e9llo \U0001F600"
    proc = rpc.procs.spawn([python2(), "-m", MAIN, "client", rpc.endpoint, "echo",
                            json.dumps(text)], stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    answer = json.loads(out.decode("utf-8").strip().splitlines()[-1])
    assert answer["service"] == "echo"
    assert answer["header"]["kind"] == "result"
    assert answer["header"]["id"] == "0" * 32
    assert answer["payload"] == text


def test_our_client_calls_third_party_worker(rpc, third_party) -> None:
    rpc.broker(heartbeat_ms=1000)
    rpc.procs.spawn([python2(), "-m", MAIN, "worker", rpc.endpoint, "reverse"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rpc.wait_workers("reverse", 1)
    client = rpc.client()
    assert client.mmi("reverse") == "200"
    for text in ("abc", "\u00e9t\u00e9 \u4e2d\u6587"):
        assert client.call("reverse", "any", {"text": text}, timeout=10.0) == text[::-1]
    assert rpc.workers("reverse") == 1  # its heartbeats keep it registered
