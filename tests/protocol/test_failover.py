"""Several brokers (SPEC 2.15): a worker on each, a client failing over (2.7 and 3.x).

Real broker processes (the Python reference, short heartbeats) on loopback
TCP and a real worker process given both endpoints; brokers are killed by PID.
"""
from __future__ import absolute_import, division, print_function

import os
import shutil
import subprocess
import sys
import time

import pytest

from protocol import brokers
from protocol.client import Client
from protocol.errors import BrokerLost, Timeout
from protocol.failover import FailoverClient
from tests.support.broker import BrokerProcess, wait_for_service
from tests.support.procs import free_port, wait_until

SERVICE = u"pidcalc"


def test_split_endpoints_accepts_one_a_list_or_commas():
    assert brokers.split_endpoints("ipc:///x") == ["ipc:///x"]
    assert brokers.split_endpoints(" tcp://a:1 , tcp://b:2,") == ["tcp://a:1", "tcp://b:2"]
    assert brokers.split_endpoints([u"tcp://a:1"]) == [u"tcp://a:1"]
    with pytest.raises(ValueError) as err:
        brokers.split_endpoints(" , ")
    assert "no broker endpoint" in str(err.value)


@pytest.mark.parametrize("endpoint, loopback", [
    ("ipc:///run/x.ipc", True), ("tcp://127.0.0.1:5", True), ("tcp://127.9.9.9:5", True),
    ("tcp://[::1]:5", True), ("tcp://localhost:5", True), ("tcp://10.0.0.1:5", False),
    ("tcp://[fe80::1]:5", False), ("tcp://gw1.example:5", False), ("udp://1.2.3.4:5", False),
])
def test_is_loopback(endpoint, loopback):
    assert brokers.is_loopback(endpoint) is loopback


def test_curve_is_required_off_loopback():
    brokers.check_curve(["tcp://127.0.0.1:5", "ipc:///x"], None)
    brokers.check_curve(["tcp://10.0.0.1:5"], (b"s", b"p", b"k"))
    with pytest.raises(ValueError) as err:
        brokers.check_curve(["tcp://127.0.0.1:5", "tcp://10.0.0.2:5"], None)
    assert "tcp://10.0.0.2:5" in str(err.value) and "CURVE" in str(err.value)


def test_worker_command_line_refuses_a_remote_broker_without_keys(procs):
    proc = procs.spawn([sys.executable, "-m", "protocol", "worker", "--broker",
                        "tcp://10.0.0.9:5555", "--service", SERVICE,
                        "tests.support.pidcalc:TABLE"], stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=30) if sys.version_info[0] > 2 else proc.communicate()
    assert proc.returncode == 2
    assert b"refusing to connect to tcp://10.0.0.9:5555 without CURVE keys" in err


def test_client_from_env_follows_the_supervisors_variables(estate):
    a, b, worker = estate
    client = brokers.client_from_env({brokers.ENV_BROKER: "%s,%s" % (a.endpoint, b.endpoint)},
                                     timeout=5.0)
    try:
        assert isinstance(client, FailoverClient)
        assert client.call(SERVICE, u"pid") == worker.pid
    finally:
        client.close()
    with pytest.raises(ValueError) as err:
        brokers.client_from_env({brokers.ENV_BROKER: "tcp://10.0.0.9:5555"})
    assert "without CURVE keys" in str(err.value)
    with pytest.raises(ValueError):
        brokers.client_from_env({})


def test_client_with_several_endpoints_is_a_failover_client():
    one = Client("tcp://127.0.0.1:%d" % free_port(), timeout=0.5)
    many = Client("tcp://127.0.0.1:%d,tcp://127.0.0.1:%d" % (free_port(), free_port()),
                  timeout=0.5)
    listed = Client(["tcp://127.0.0.1:%d" % free_port()], timeout=0.5)
    try:
        assert type(one) is Client and type(listed) is Client
        assert isinstance(many, FailoverClient) and len(many.links) == 2
    finally:
        for client in (one, many, listed):
            client.close()


@pytest.fixture
def estate(procs):
    """Two brokers and one worker process registered with both."""
    a = BrokerProcess(procs, "python", heartbeat_ms=200)
    b = BrokerProcess(procs, "python", heartbeat_ms=200)
    worker = procs.spawn([sys.executable, "-m", "protocol", "worker", "--broker",
                          "%s,%s" % (a.endpoint, b.endpoint), "--service", SERVICE,
                          "tests.support.pidcalc:TABLE"])
    for broker in (a, b):
        wait_for_service(broker.endpoint, SERVICE)
    return a, b, worker


def test_one_worker_process_serves_every_broker_it_is_given(estate):
    a, b, worker = estate
    for broker in (a, b):
        with Client(broker.endpoint, timeout=5.0) as client:
            assert client.call(SERVICE, u"pid") == worker.pid
        assert broker.workers(SERVICE) == 1


def test_calls_fail_over_when_a_broker_dies(procs, estate):
    a, b, worker = estate
    client = Client("%s,%s" % (a.endpoint, b.endpoint), timeout=10.0, probe_interval=0.2)
    try:
        assert client.call(SERVICE, u"pid") == worker.pid
        # An idempotent call in flight on the broker that dies is sent to the other one.
        pending = client.submit(SERVICE, u"slow", [1.0], idem=True)
        procs.stop(a.proc, grace=0)
        started = time.time()
        assert pending.result() == worker.pid
        assert client.failovers == 1
        # A request made after the loss is never sent to the lost broker.
        assert client.call(SERVICE, u"pid", timeout=5.0) == worker.pid
        assert time.time() - started < 5.0
    finally:
        client.close()


def test_a_call_that_may_have_run_is_not_sent_twice(procs, estate):
    a, b, worker = estate
    client = FailoverClient([a.endpoint, b.endpoint], timeout=10.0, probe_interval=0.2)
    try:
        assert client.call(SERVICE, u"pid") == worker.pid  # a answers: a is preferred
        pending = client.submit(SERVICE, u"slow", [1.0])   # not idempotent
        procs.stop(a.proc, grace=0)
        with pytest.raises(BrokerLost) as err:
            pending.result()
        assert a.endpoint in str(err.value.message)
        assert client.failovers == 0
    finally:
        client.close()


def test_no_broker_left_is_a_timeout_within_the_deadline(procs, estate):
    a, b, worker = estate
    client = FailoverClient([a.endpoint, b.endpoint], timeout=5.0, probe_interval=0.2)
    try:
        assert client.call(SERVICE, u"pid") == worker.pid
        procs.stop(a.proc, grace=0)
        procs.stop(b.proc, grace=0)
        started = time.time()
        with pytest.raises((Timeout, BrokerLost)):
            client.call(SERVICE, u"pid", timeout=1.5, idem=True)
        assert time.time() - started < 1.5 + 1.0
    finally:
        client.close()


def test_curve_worker_and_client(procs, workdir):
    import zmq.auth
    keys = os.path.join(workdir, "keys")
    clients = os.path.join(keys, "clients")
    os.makedirs(clients)
    zmq.auth.create_certificates(keys, "broker")
    worker_public, worker_secret = zmq.auth.create_certificates(keys, "worker")
    shutil.copy(worker_public, clients)  # the worker's public key is admitted
    broker = BrokerProcess(procs, "python", heartbeat_ms=200, extra=(
        "--curve-secret", os.path.join(keys, "broker.key_secret"), "--curve-clients", clients))
    worker = procs.spawn([sys.executable, "-m", "protocol", "worker", "--broker",
                          broker.endpoint, "--service", SERVICE,
                          "tests.support.pidcalc:TABLE"],
                         env={brokers.ENV_SERVER_KEY: os.path.join(keys, "broker.key"),
                              brokers.ENV_SECRET: worker_secret})
    curve = brokers.load_curve(os.path.join(keys, "broker.key"), worker_secret)
    with Client(broker.endpoint, timeout=10.0, curve=curve) as client:
        wait_until(lambda: client.mmi(SERVICE, timeout=1.0) == u"200", 20.0,
                   what="the CURVE worker registered")
        assert client.call(SERVICE, u"pid") == worker.pid
    # Without keys, the broker never answers a client (the handshake is refused).
    with Client(broker.endpoint, timeout=0.5) as plain, pytest.raises(Timeout):
        plain.call(SERVICE, u"pid")
    assert zmq.has("curve")
