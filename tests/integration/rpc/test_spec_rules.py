"""SPEC rules across real processes and both interpreters (sections 3.3, 3.4, 7.1, 7.2).

A broker process, reference workers and a raw echoing worker under 2.7 and
3.x, and clients under both: a reply of the wrong kind is never a result,
an undecodable request is answered with the id its header names, and a
worker refuses kinds it does not serve.
"""

import json
import re
import subprocess

import pytest
import zmq

from protocol import codec, mdp
from protocol.errors import EnvelopeError

MAIN = "tests.integration.rpc.spec_rules_main"
RUNTIMES = ["py2", "py3"]


def run_call(rpc, which: str, service: str, method: str, params: object) -> dict:
    """One ``Client.call`` from a child under ``which``; its JSON outcome."""
    proc = rpc.procs.spawn([rpc.interpreter(which), "-m", MAIN, "call", rpc.endpoint, service,
                            method, json.dumps(params)], stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return json.loads(out.decode("utf-8").strip().splitlines()[-1])


@pytest.mark.parametrize("client_side", RUNTIMES)
@pytest.mark.parametrize("worker_side", RUNTIMES)
def test_a_call_echoed_back_by_a_worker_is_an_envelope_error(rpc, worker_side: str,
                                                             client_side: str) -> None:
    rpc.broker()
    rpc.procs.spawn([rpc.interpreter(worker_side), "-m", MAIN, "mirror", rpc.endpoint,
                     "mirror"])
    rpc.wait_workers("mirror", 1)
    answer = run_call(rpc, client_side, "mirror", "add", {"a": 1, "b": 2})
    assert answer["class"] == "EnvelopeError", answer
    assert answer["error"]["code"] == "envelope"
    assert "'call' is no answer to a request of kind 'call'" in answer["error"]["message"]
    if client_side == "py3":  # and the same in-process, where the class itself shows
        with pytest.raises(EnvelopeError):
            rpc.client().call("mirror", "add", [1, 2], timeout=10.0)


def raw_request(rpc, service: bytes, body: list[bytes]) -> codec.Envelope:
    """Send one body through the broker on a bare DEALER; decode the one reply."""
    sock = rpc.ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(rpc.endpoint)
        sock.send_multipart(mdp.client_request(service, body))
        assert sock.poll(10000), "no reply within 10 s"
        frames = sock.recv_multipart()
    finally:
        sock.close(linger=0)
    assert frames[:3] == [b"", mdp.CLIENT, service]
    return codec.decode(frames[3:])


def header(**fields: object) -> bytes:
    return json.dumps(dict({"v": 1, "deadline": mdp.deadline_in(10)}, **fields)).encode()


@pytest.mark.parametrize("which", RUNTIMES)
def test_worker_error_ids_and_kinds(rpc, which: str) -> None:
    rpc.broker()
    rpc.worker(which, "calc")
    rpc.wait_workers("calc", 1)
    rid = "0123456789abcdef0123456789abcdef"
    # The payload is broken: the error carries the id the header names.
    reply = raw_request(rpc, b"calc", [header(id=rid, kind="call", method="echo"), b"{"])
    assert (reply.kind, reply.id, reply.error["code"]) == ("error", rid, "envelope")
    # The header breaks a rule past its id (version 2): still that id.
    reply = raw_request(rpc, b"calc", [header(id="req-7", kind="call", method="echo", v=2),
                                       b"null"])
    assert (reply.id, reply.error["code"]) == ("req-7", "envelope")
    # An empty id is no id: a fresh one.
    reply = raw_request(rpc, b"calc", [header(id="", kind="call", method="echo"), b"null"])
    assert reply.error["code"] == "envelope" and re.fullmatch("[0-9a-f]{32}", reply.id)
    # Kinds an RPC worker does not serve.
    for kind, fragment in (("http", "serves call requests, not 'http'"),
                           ("result", "'result' is not a request kind")):
        reply = raw_request(rpc, b"calc", [header(id=rid, kind=kind, http={}), b"null"])
        assert (reply.id, reply.error["code"]) == (rid, "envelope")
        assert fragment in reply.error["message"]


@pytest.mark.parametrize("worker_side", RUNTIMES)
def test_params_map_by_form_across_interpreters(rpc, worker_side: str) -> None:
    rpc.broker()
    rpc.worker(worker_side, "calc")
    rpc.wait_workers("calc", 1)
    for client_side in RUNTIMES:
        assert run_call(rpc, client_side, "calc", "echo", [7]) == {"result": 7}
        assert run_call(rpc, client_side, "calc", "echo", {"value": 7}) == {"result": 7}
        answer = run_call(rpc, client_side, "calc", "echo", [7, 8])  # one positional too many
        assert answer["error"]["code"] == "remote" and answer["error"]["type"] == "TypeError"


@pytest.mark.parametrize("which", RUNTIMES)
def test_an_http_host_refuses_a_call(rpc, which: str) -> None:
    rpc.broker()
    rpc.procs.spawn([rpc.interpreter(which), "-m", "protocol.wsgi", "--broker", rpc.endpoint,
                     "--service", "web", "tests.integration.arbiter.wsgiapp:app"])
    rpc.wait_workers("web", 1)
    rid = "fedcba9876543210fedcba9876543210"
    reply = raw_request(rpc, b"web", [header(id=rid, kind="call", method="echo"), b"null"])
    assert (reply.id, reply.error["code"]) == (rid, "envelope")
    assert "expected an http envelope" in reply.error["message"]
