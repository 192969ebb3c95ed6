"""The brokers' event loops: they sleep when idle, and they answer every queued request.

The compiled broker waits with poll(2) on its sockets' ZMQ_FD, which fires on an
edge: a loop that slept with a message still queued would strand it, and a loop
that never trusted the descriptor would spin. Both brokers are real processes;
their CPU time comes from ``/proc``.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import zmq

from protocol import mdp
from tests.support.broker import IMPLEMENTATIONS, NATIVE_BINARY, BrokerProcess
from tests.support.procs import ProcessGroup, wait_until

BURST = 2000  # several times the compiled broker's batch of 256 messages per wake-up
BURST_DEADLINE_S = 10.0
CLIENTS, CALLS, DEPTH, ECHOES = 8, 400, 4, 3


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, every thread included."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(params=IMPLEMENTATIONS)
def broker(request: pytest.FixtureRequest, procs: ProcessGroup) -> BrokerProcess:
    return BrokerProcess(procs, str(request.param), heartbeat_ms=20)


@pytest.fixture
def dealer() -> Iterator[zmq.Socket[bytes]]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    yield sock
    sock.close(linger=0)


def test_an_idle_broker_with_a_worker_sleeps_between_heartbeats(
        broker: BrokerProcess, dealer: zmq.Socket[bytes]) -> None:
    # Every heartbeat the broker sends is a zmq call after which the loop must read
    # again before it sleeps; a loop that got this wrong would spin.
    dealer.connect(broker.endpoint)
    dealer.send_multipart(mdp.worker_ready(b"idle"))
    wait_until(lambda: broker.workers("idle") == 1, timeout=5, what="worker registered")
    before = cpu_seconds(broker.pid)
    beats = 0
    while beats < 50:  # about a second of 20 ms heartbeats
        assert dealer.poll(5000), "the broker stopped sending heartbeats"
        command, _ = mdp.split_worker(dealer.recv_multipart())
        if command == mdp.HEARTBEAT:
            beats += 1
            dealer.send_multipart(mdp.heartbeat())
    used = cpu_seconds(broker.pid) - before
    # A spinning loop burns a whole core (tens of times this) even on a shared machine.
    assert used < 0.25, f"the {broker.impl} broker used {used:.2f} s of CPU over 50 beats"
    assert broker.workers("idle") == 1


def test_a_burst_larger_than_a_batch_is_answered_in_full(
        broker: BrokerProcess, dealer: zmq.Socket[bytes]) -> None:
    dealer.connect(broker.endpoint)
    for _ in range(BURST):
        dealer.send_multipart(mdp.client_request(b"mmi.service", [b"nobody"]))
    # One deadline for the whole burst, about a hundred times what it takes: a loop that
    # slept with messages queued would answer one per heartbeat, 40 s for the burst.
    deadline = time.monotonic() + BURST_DEADLINE_S
    answers: list[list[bytes]] = []
    while len(answers) < BURST:
        left = deadline - time.monotonic()
        assert left > 0 and dealer.poll(int(left * 1000) + 1), \
            f"only {len(answers)} of {BURST} answers came within {BURST_DEADLINE_S} s"
        answers.append(dealer.recv_multipart())
    assert all(a[-1] == b"404" for a in answers)
    assert broker.stats()["counters"]["requests"] == BURST + 1  # and this mmi.stats


def echo_worker(endpoint: str, stop: threading.Event) -> None:
    """A raw RFC 7 worker that sends every request's body straight back."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send_multipart(mdp.worker_ready(b"echo"))
        while not stop.is_set():
            if sock.poll(100):
                command, rest = mdp.split_worker(sock.recv_multipart())
                if command == mdp.REQUEST:
                    sock.send_multipart(mdp.worker_reply(*mdp.split_address(rest)))
    finally:
        sock.close(linger=0)


def pipelined_client(endpoint: str, answered: list[int]) -> None:
    """CALLS raw requests, DEPTH in flight; appends how many were answered."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sent = got = 0
    try:
        sock.connect(endpoint)
        while got < CALLS:
            while sent < CALLS and sent - got < DEPTH:
                sock.send_multipart(mdp.client_request(b"echo", [b"%d" % sent]))
                sent += 1
            if not sock.poll(10000):  # with no timer due, a stranded request waits forever
                break
            sock.recv_multipart()
            got += 1
    finally:
        sock.close(linger=0)
        answered.append(got)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_pipelined_clients_are_all_answered_with_no_timer_due(
        procs: ProcessGroup, impl: str) -> None:
    # A 30 s heartbeat: no timed duty wakes the loop, so only the descriptors do, and a
    # request left queued behind a sleep would never be answered.
    broker = BrokerProcess(procs, impl, heartbeat_ms=30000)
    stop = threading.Event()
    echoes = [threading.Thread(target=echo_worker, args=(broker.endpoint, stop), daemon=True)
              for _ in range(ECHOES)]
    answered: list[int] = []
    clients = [threading.Thread(target=pipelined_client, args=(broker.endpoint, answered),
                                daemon=True) for _ in range(CLIENTS)]
    try:
        for t in echoes:
            t.start()
        wait_until(lambda: broker.workers("echo") == ECHOES, timeout=5, what="echo workers")
        for t in clients:
            t.start()
        for t in clients:
            t.join(120)
    finally:
        stop.set()
        for t in echoes:
            t.join(5)
    assert answered == [CALLS] * CLIENTS


def test_the_compiled_broker_answers_getpid_itself() -> None:
    # libzmq asks getpid() on every signal between its threads; the broker's own
    # definition (pid.c) replaces libc's only while the executable exports it.
    out = subprocess.run(["nm", "-D", "--defined-only", NATIVE_BINARY], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    assert any(line.split()[-2:] == ["T", "getpid"] for line in out.splitlines())
