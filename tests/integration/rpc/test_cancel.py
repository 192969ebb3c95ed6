"""Cancel across processes (SPEC 2.11): a client cancels a request in flight at a worker
on Python 2.7 or 3 that announced ``"cancel": true``, and one still queued, through each
broker."""

import json
import subprocess

import pytest
import zmq

from protocol import codec, mdp
from tests.support.procs import wait_until


def call(rid):
    env = codec.Envelope("call", id=rid, method="work", deadline=mdp.deadline_in(20))
    return codec.encode(env)


def cancel(rid):
    head = json.dumps({"id": rid, "kind": "cancel", "v": 1}, separators=(",", ":"),
                      sort_keys=True).encode()
    return [head, b"null"]


class Lines:
    """The worker's stdout lines, read as they come, with a deadline."""

    def __init__(self, proc):
        self.proc = proc
        self.seen = []

    def wait_for(self, line, timeout=10.0):
        import select
        import time
        stop = time.time() + timeout
        while line not in self.seen:
            left = stop - time.time()
            assert left > 0, f"the worker never said {line!r} (said {self.seen})"
            if select.select([self.proc.stdout], [], [], left)[0]:
                got = self.proc.stdout.readline().decode().strip()
                assert got or self.proc.poll() is None, "the worker exited"
                self.seen.append(got)


@pytest.mark.parametrize("which", ["py2", "py3"])
def test_cancel_in_flight_and_queued(rpc, which):
    rpc.broker(heartbeat_ms=100)
    worker = rpc.procs.spawn([rpc.interpreter(which), "-m", "tests.integration.rpc.cancel_worker",
                              rpc.endpoint, "held"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    lines = Lines(worker)
    rpc.wait_workers("held", 1)
    sock = rpc.ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(rpc.endpoint)
        sock.send_multipart(mdp.client_request(b"held", call("first")))
        lines.wait_for("request first")
        sock.send_multipart(mdp.client_request(b"held", call("second")))  # credit 1: queued
        wait_until(lambda: rpc.stats()["services"]["held"]["waiting"] == 1, timeout=10,
                   what="the second call queued")
        sock.send_multipart(mdp.client_request(b"held", cancel("second")))
        wait_until(lambda: rpc.stats()["counters"].get("cancelled") == 1, timeout=10,
                   what="the queued call cancelled")
        sock.send_multipart(mdp.client_request(b"held", cancel("first")))
        lines.wait_for("cancel first")
        assert sock.poll(10000), "no answer to the cancelled call"
        frames = sock.recv_multipart()
        head = json.loads(frames[3])
        assert head["id"] == "first" and head["error"]["code"] == "cancelled"
        stats = rpc.stats()
        assert stats["counters"]["cancels_forwarded"] == 1
        held = stats["services"]["held"]
        assert {key: held[key] for key in ("workers", "waiting", "inflight", "queued_bytes",
                                           "ejected")} == {"workers": 1, "waiting": 0,
                                                           "inflight": 0, "queued_bytes": 0,
                                                           "ejected": 0}
        assert held["outcomes"]["requests"] == 2
        # The worker's credit is free again: the next call reaches it, "second" never does.
        sock.send_multipart(mdp.client_request(b"held", call("third")))
        lines.wait_for("request third")
        assert "request second" not in lines.seen
    finally:
        sock.close(linger=0)
        worker.stdin.close()
