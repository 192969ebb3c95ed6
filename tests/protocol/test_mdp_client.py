"""protocol.Client against a ROUTER thread playing broker and worker (2.7 and 3.x)."""
from __future__ import absolute_import, division, print_function

import threading
import time

import pytest
import zmq

from protocol import codec, mdp
from protocol.client import Client
from protocol.errors import RemoteError, Timeout, Unavailable, UnknownService, WorkerLost
from protocol.link import BrokerLink
from protocol.zmtpclient import ZmtpClientLink
from tests.support.procs import wait_until


@pytest.fixture(autouse=True, params=["zmtp", "libzmq"])
def broker_link(request, monkeypatch):
    """Every test here runs on both of the client's links (GATEWAY_BROKER_LINK)."""
    monkeypatch.setenv("GATEWAY_BROKER_LINK", request.param)
    return request.param


class FakeBroker(object):
    """Answers MDPC01 requests in a thread: "add" sums, "sleep" answers late, and so on."""

    def __init__(self, endpoint=None):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        if endpoint is None:
            port = self.sock.bind_to_random_port("tcp://127.0.0.1")
            self.endpoint = "tcp://127.0.0.1:%d" % port
        else:  # a broker coming back where an earlier one was
            self.endpoint = endpoint
            wait_until(self._bind, timeout=5, what="the endpoint free again")
        self.muted = set()  # client identities the broker ignores (a dead connection)
        self.last_client = None
        self.seen = []
        self.generation = 1
        self._restart = threading.Event()
        self.restarted = threading.Event()
        self._stop = threading.Event()
        self._delayed = []
        self._thread = threading.Thread(target=self._run)
        self._thread.daemon = True
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            if self._restart.is_set():
                self._rebind()
            if self.sock.poll(10):
                frames = self.sock.recv_multipart()
                self.last_client = frames[0]
                if frames[0] not in self.muted:
                    self._answer(frames)
            now = time.time()
            for item in [d for d in self._delayed if d[0] <= now]:
                self._delayed.remove(item)
                self.sock.send_multipart(item[1])
        self.sock.close(linger=0)

    def restart(self):
        """Die with every request held and come back on the same endpoint, as kill -9 and
        a supervisor's restart would; returns once the new socket is bound."""
        self._restart.set()
        assert self.restarted.wait(5)

    def _rebind(self):
        self.sock.close(linger=0)
        self._delayed = []
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        wait_until(self._bind, timeout=5, what="the endpoint free again")
        self.generation += 1
        self._restart.clear()
        self.restarted.set()

    def _bind(self):
        try:
            self.sock.bind(self.endpoint)
        except zmq.ZMQError:
            return False
        return True

    def _answer(self, frames):
        client, service, body = frames[0], frames[3], frames[4:]
        prefix = [client, b"", mdp.CLIENT, service]
        if service == mdp.MMI_SERVICE:
            self.sock.send_multipart(prefix + [b"200" if body[0] == b"calc" else b"404"])
            return
        env = codec.decode(body)
        self.seen.append(env)
        if service == b"ghost":
            self.sock.send_multipart(prefix + mdp.error_body(env.id, UnknownService(u"?")))
        elif env.method == u"add":
            reply = codec.Envelope(u"result", id=env.id, payload=sum(env.payload))
            self.sock.send_multipart(prefix + codec.encode(reply))
        elif env.method == u"sleep":
            reply = codec.encode(codec.Envelope(u"result", id=env.id, payload=env.payload))
            self._delayed.append((time.time() + env.payload, prefix + reply))
        elif env.method == u"fail":
            err = {u"code": u"remote", u"message": u"bad", u"type": u"ValueError",
                   u"traceback": u"Traceback ..."}
            reply = codec.Envelope(u"error", id=env.id, error=err)
            self.sock.send_multipart(prefix + codec.encode(reply))
        elif env.method == u"hold":  # held for ever by the first broker, answered after
            if self.generation > 1:
                reply = codec.Envelope(u"result", id=env.id, payload=env.payload)
                self.sock.send_multipart(prefix + codec.encode(reply))
        elif env.method == u"lost":
            self.sock.send_multipart(prefix + mdp.error_body(env.id, WorkerLost(u"died")))
        elif env.kind == u"http":
            for i in range(3):
                part = codec.Envelope(u"http-body", id=env.id, more=i < 2,
                                      payload=codec.Bytes(b"%d" % i))
                self.sock.send_multipart(prefix + codec.encode(part))

    def close(self):
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def broker():
    fake = FakeBroker()
    yield fake
    fake.close()


@pytest.fixture
def client(broker):
    c = Client(broker.endpoint, timeout=5.0, probe_interval=0.3)
    yield c
    c.close()


def test_call_returns_the_result(client):
    assert client.call(u"calc", u"add", [1, 2, 3]) == 6


def test_typed_errors(client):
    with pytest.raises(RemoteError) as info:
        client.call(u"calc", u"fail")
    assert (info.value.type, info.value.message) == (u"ValueError", u"bad")
    assert info.value.traceback == u"Traceback ..."
    with pytest.raises(WorkerLost):
        client.call(u"calc", u"lost")
    with pytest.raises(UnknownService):
        client.call(u"ghost", u"x")


def test_timeout_is_raised_close_to_the_deadline(client):
    started = time.time()
    with pytest.raises(Timeout):
        client.call(u"calc", u"sleep", 2.0, timeout=0.3)
    assert 0.3 <= time.time() - started < 1.3


def test_many_threads_share_one_client(client):
    results = {}
    errors = []

    def run(n):
        try:
            for i in range(20):
                results[(n, i)] = client.call(u"calc", u"add", [n, i])
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert results == {(n, i): n + i for n in range(8) for i in range(20)}


def test_slow_call_does_not_block_others(client):
    slow = client.submit(u"calc", u"sleep", 1.0)
    started = time.time()
    assert client.call(u"calc", u"add", [1, 1]) == 2
    assert time.time() - started < 0.8
    assert slow.result() == 1.0


def test_pipelined_submits(client):
    pending = [client.submit(u"calc", u"add", [i, i]) for i in range(300)]
    assert [p.result() for p in pending] == [2 * i for i in range(300)]


def test_request_yields_streamed_replies(client):
    env = codec.Envelope(u"http", http={u"method": u"GET"})
    parts = list(client.request(u"web", env, timeout=5.0))
    assert [p.payload for p in parts] == [b"0", b"1", b"2"]
    assert [p.more for p in parts] == [True, True, False]


def test_mmi_service(client):
    assert client.mmi(u"calc") == u"200"
    assert client.mmi(u"other") == u"404"


def test_silent_broker_reconnect_resends_only_idempotent_calls(broker, client):
    assert client.call(u"calc", u"add", [1]) == 1
    broker.muted.add(broker.last_client)  # the old connection goes dead
    idem = client.submit(u"calc", u"add", [2], idem=True)
    plain = client.submit(u"calc", u"add", [3])
    with pytest.raises(Unavailable):
        plain.result()
    assert client.reconnects == 1
    assert idem.result() == 2  # sent again on the new connection
    assert client.call(u"calc", u"add", [4]) == 4


def test_a_broker_restart_resends_idempotent_calls_and_fails_the_rest_at_once(broker):
    # Lazy Pirate probes are out of the way: the socket monitor alone must notice.
    c = Client(broker.endpoint, timeout=30.0, probe_interval=60.0)
    try:
        idem = c.submit(u"calc", u"hold", 7, idem=True)
        plain = c.submit(u"calc", u"hold", 8)
        wait_until(lambda: len(broker.seen) == 2, timeout=5, what="both calls at the broker")
        broker.restart()
        with pytest.raises(Unavailable):
            plain.result()
        # Failed on the connection closing, not when its 30 s deadline ran out.
        assert time.time() < plain.deadline
        assert idem.result() == 7  # sent again, and answered by the new broker
        assert (c.broker_losses, c.resent, c.reconnects) == (1, 1, 0)
        assert [e.id for e in broker.seen] == [idem.id, plain.id, idem.id]
        assert c.call(u"calc", u"add", [4]) == 4
    finally:
        c.close()


def test_closed_client_refuses_calls(broker):
    c = Client(broker.endpoint)
    c.close()
    with pytest.raises(Unavailable):
        c.call(u"calc", u"add", [1])
    with pytest.raises(Unavailable):
        c.mmi(u"calc")


def test_the_client_takes_the_link_the_environment_names(broker, broker_link):
    c = Client(broker.endpoint)
    try:
        kind = ZmtpClientLink if broker_link == "zmtp" else BrokerLink
        assert type(c._link) is kind
        assert c.call(u"calc", u"add", [2, 3]) == 5
    finally:
        c.close()


def test_with_no_broker_a_full_queue_refuses_and_a_call_times_out_then_is_served(broker_link):
    fake = FakeBroker()
    endpoint = fake.endpoint
    fake.close()  # the port is free: nothing listens there
    c = Client(endpoint, timeout=0.3, probe_interval=60.0)
    try:
        with pytest.raises(Timeout):
            c.call(u"calc", u"add", [1])  # waits its deadline, never hangs
        if broker_link == "zmtp":
            c._link.max_queued = len(c._link._out)  # the queue is at its bound now
            with pytest.raises(Unavailable, match="send queue to the broker is full"):
                c.call(u"calc", u"add", [1])
            c._link.max_queued = 1000
        again = FakeBroker(endpoint)
        try:
            assert c.call(u"calc", u"add", [6], timeout=5.0) == 6
        finally:
            again.close()
    finally:
        c.close()
