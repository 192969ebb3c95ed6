"""A plain RFC 7 worker that heartbeats every 2.5 s, idle against both brokers at their defaults.

The ZeroMQ guide's ``mdwrkapi`` heartbeats every 2500 ms and announces nothing
in READY (no ``heartbeat_ms``). Our brokers run at 1000 ms; SPEC 2.4 gives
such a worker 3 x max(1000, 2500) ms before it counts as dead. This runs the
guide's loop (READY once, a HEARTBEAT every 2.5 s, answer HEARTBEATs, reconnect
on DISCONNECT) idle for 5 minutes (10 s with ``--smoke``) against the compiled
and the Python broker, and reports how often the broker dropped it: the
target is never. ``mmi.service`` is asked once a second that whole time, and a
request is served at the end, so "connected" means "reachable", not only
"not disconnected".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import zmq

from bench.report import Table
from tests.support.procs import ProcessGroup, free_port, port_open, python3, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE = os.path.join(REPO, "build", "gateway-broker")
HEARTBEAT_S = 2.5


class GuideWorker:
    """The guide's mdwrkapi loop: READY, heartbeat every 2.5 s, reconnect on DISCONNECT."""

    def __init__(self, endpoint: str, service: bytes) -> None:
        self.endpoint = endpoint
        self.service = service
        self.ctx = zmq.Context.instance()
        self.sock: zmq.Socket[bytes] | None = None
        self.disconnects = 0
        self.readies = 0
        self.next_beat = 0.0
        self.connect()

    def connect(self) -> None:
        """A new DEALER and READY (as the guide does after DISCONNECT)."""
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(self.endpoint)
        self.sock.send_multipart([b"", b"MDPW01", b"\x01", self.service])
        self.readies += 1
        self.next_beat = time.monotonic() + HEARTBEAT_S

    def pump(self, until: float) -> None:
        """Serve the socket until the monotonic time ``until``."""
        assert self.sock is not None
        while True:
            now = time.monotonic()
            if now >= until:
                return
            if now >= self.next_beat:
                self.sock.send_multipart([b"", b"MDPW01", b"\x04"])
                self.next_beat = now + HEARTBEAT_S
            wait = max(0.0, min(until, self.next_beat) - now)
            if not self.sock.poll(int(wait * 1000) + 1):
                continue
            frames = self.sock.recv_multipart()
            command = frames[2] if len(frames) > 2 else b""
            if command == b"\x05":
                self.disconnects += 1
                self.connect()
            elif command == b"\x02":  # REQUEST: [_, MDPW01, 0x02, client, _, body...]
                self.sock.send_multipart([b"", b"MDPW01", b"\x03", frames[3], b"", *frames[5:]])

    def close(self) -> None:
        """Close the socket."""
        if self.sock is not None:
            self.sock.close(linger=0)


def soak(broker: list[str], seconds: float) -> dict[str, float]:
    """Idle ``seconds`` against one broker; its drops, failed probes and the last answer."""
    group = ProcessGroup()
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    proc = group.spawn([*broker, "--bind", endpoint, "--heartbeat-ms", "1000"],
                       stdout=subprocess.DEVNULL)
    worker = None
    client = zmq.Context.instance().socket(zmq.DEALER)
    client.linger = 0
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 20, what="broker")
        worker = GuideWorker(endpoint, b"guide")
        client.connect(endpoint)
        end = time.monotonic() + seconds
        probes = failed = 0
        while time.monotonic() < end:
            worker.pump(min(end, time.monotonic() + 1.0))
            client.send_multipart([b"", b"MDPC01", b"mmi.service", b"guide"])
            deadline = time.monotonic() + 2.0
            answer = None
            while answer is None and time.monotonic() < deadline:
                worker.pump(time.monotonic() + 0.01)
                if client.poll(0):
                    answer = client.recv_multipart()[-1]
            probes += 1
            failed += answer != b"200"
        client.send_multipart([b"", b"MDPC01", b"guide", b"ping"])
        served = 0.0
        deadline = time.monotonic() + 5.0
        while not served and time.monotonic() < deadline:
            worker.pump(time.monotonic() + 0.01)
            if client.poll(0):
                served = float(client.recv_multipart()[-1] == b"ping")
        return {"disconnects": worker.disconnects, "readies": worker.readies,
                "probes": probes, "failed": failed, "served": served}
    finally:
        client.close(linger=0)
        if worker is not None:
            worker.close()
        group.close()


def run(smoke: bool) -> list[Table]:
    """Both brokers, each soaked for 300 s (10 s in smoke mode)."""
    seconds = 10.0 if smoke else 300.0
    brokers = {"python broker": [python3(), "-m", "gateway.broker"]}
    if os.access(NATIVE, os.X_OK):
        brokers = {"compiled broker": [NATIVE], **brokers}
    table = Table(f"interop: an RFC 7 worker heartbeating every 2.5 s, idle {seconds:.0f} s",
                  "DISCONNECTs", next(iter(brokers)), higher_is_better=False)
    for name, argv in brokers.items():
        got = soak(argv, seconds)
        table.add(name, got["disconnects"], target="0: " + (
            "met" if got["disconnects"] == 0 and not got["failed"] and got["served"]
            else "missed"),
            extra=f"{got['failed']:.0f} of {got['probes']:.0f} mmi.service probes not 200; "
                  f"request served at the end: {'yes' if got['served'] else 'no'}")
    table.notes.append("brokers at their default heartbeat of 1000 ms; the worker sends no "
                       "READY metadata, as the ZeroMQ guide's mdwrkapi does")
    return [table]


if __name__ == "__main__":
    for t in run("--smoke" in sys.argv):
        print(t.markdown())
