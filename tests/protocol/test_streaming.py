"""Streams and cancels at the library level (2.7 and 3.x): protocol.streaming, Worker, Client.

The worker faces a hand-driven ROUTER playing the broker, the client a
ROUTER playing broker and worker, so each rule of SPEC 2.7 and 2.11 is seen
on the exact frames.
"""
from __future__ import absolute_import, division, print_function

import threading
import time

import pytest
import zmq

from protocol import codec, mdp
from protocol.client import Client
from protocol.errors import Timeout
from protocol.streaming import coalesce
from protocol.worker import Worker
from protocol.wsgi import WsgiHost
from tests.protocol.test_mdp_worker import TABLE, FakeBroker, call
from tests.support.procs import wait_until

REQUEST = codec.Envelope(u"http", rid=u"r-1")


def body(payload, more=True):
    return codec.Envelope(u"http-body", more=more, payload=codec.Bytes(payload))


def test_coalesce_joins_ready_body_parts_in_order_and_keeps_the_last_more():
    head = codec.Envelope(u"http-response", http={u"status": 200}, more=True,
                          payload=codec.Bytes(b"h"))
    out = coalesce([head, body(b"a"), b"b", body(b"", more=False)], REQUEST)
    assert len(out) == 1
    assert (out[0].kind, out[0].payload, out[0].more) == (u"http-response", b"hab", False)


def test_coalesce_makes_an_envelope_of_each_run_of_plain_chunks():
    out = coalesce([b"a", b"b", b"c"], REQUEST)
    assert [(p.kind, p.id, p.payload, p.more) for p in out] == [
        (u"http-body", REQUEST.id, b"abc", True)]
    assert coalesce([b"a", b"b"], REQUEST, limit=0)[1].payload == b"b"


def test_coalesce_respects_its_bound_and_never_joins_past_a_final_part():
    parts = [body(b"x" * 4) for _ in range(5)] + [body(b"", more=False)]
    out = coalesce(parts, REQUEST, limit=8)
    assert [p.payload for p in out] == [b"xxxxxxxx", b"xxxxxxxx", b"xxxx"]
    assert [p.more for p in out] == [True, True, False]
    error = codec.Envelope(u"error", error={u"code": u"cancelled", u"message": u""})
    out = coalesce([body(b"a"), error], REQUEST)
    assert [p.kind for p in out] == [u"http-body", u"error"]


# ------------------------------------------------------------------ worker --

@pytest.fixture
def broker():
    fake = FakeBroker()
    yield fake
    fake.close()


@pytest.fixture
def start_worker(broker):
    started = []

    def start(**kwargs):
        worker = Worker(broker.endpoint, u"web", **kwargs)
        thread = threading.Thread(target=worker.run)
        thread.daemon = True
        thread.start()
        started.append((worker, thread))
        command, rest = mdp.split_worker(broker.recv())
        assert command == mdp.READY
        broker.send(mdp.heartbeat(200))
        wait_until(worker.connected.is_set, timeout=5, what="heartbeat agreement")
        return worker, rest

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(5)
        assert not thread.is_alive()


def http(path=u"/"):
    return codec.Envelope(u"http", deadline=mdp.deadline_in(10),
                          http={u"method": u"GET", u"path_info": path},
                          payload=codec.Bytes(b""))


def cancel(broker, env, client=b"client-1"):
    broker.send([b"", mdp.WORKER, mdp.REQUEST, client, b""]
                + codec.encode(codec.Envelope(u"cancel", id=env.id)))


class Drip(object):
    """One byte per ``gap`` seconds, up to ``n``; close() is recorded."""

    def __init__(self, n=400, gap=0.02, gate=None):
        self.n, self.gap, self.gate = n, gap, gate
        self.closed = threading.Event()

    def __call__(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return self

    def __iter__(self):
        yield b"1"
        if self.gate is not None:
            self.gate.wait(10)
            yield b"2"
            return
        for _ in range(self.n):
            time.sleep(self.gap)  # the app's own pace
            yield b"."

    def close(self):
        self.closed.set()


def test_ready_says_the_worker_honours_cancels_and_its_heartbeat(start_worker):
    _, rest = start_worker(table=TABLE)
    meta = mdp.parse_metadata(rest)
    assert meta[u"cancel"] is True
    assert meta[u"heartbeat_ms"] > 0 and isinstance(meta[u"heartbeat_ms"], int)


def test_a_chunk_is_sent_before_the_app_makes_the_next(broker, start_worker):
    gate = threading.Event()
    app = Drip(gate=gate)
    start_worker(envelope_handler=WsgiHost(app).parts)
    env = http()
    broker.request(env)
    _, head = broker.reply()
    # The app yields "2" only once the gate opens, which happens after the head arrived.
    assert (head.kind, head.payload, head.more) == (u"http-response", b"1", True)
    gate.set()
    parts = [broker.reply()[1]]
    while parts[-1].more:
        parts.append(broker.reply()[1])
    assert b"".join(p.payload for p in parts) == b"2"
    assert parts[-1].kind == u"http-body"
    wait_until(app.closed.is_set, 5, what="close() of the app's iterable")


def test_a_cancel_stops_a_stream_before_its_next_chunk(broker, start_worker):
    app = Drip()
    start_worker(envelope_handler=WsgiHost(app).parts)
    env = http()
    broker.request(env)
    assert broker.reply()[1].more
    cancel(broker, env)
    last = broker.reply()[1]
    while last.more:
        last = broker.reply()[1]
    assert (last.kind, last.id, last.error[u"code"]) == (u"error", env.id, u"cancelled")
    assert app.closed.is_set()
    # The worker is free again: the next request is served.
    after = http()
    broker.request(after)
    assert broker.reply()[1].id == after.id


def test_a_cancel_for_a_request_not_started_answers_it_at_once(broker, start_worker):
    start_worker(table=TABLE, credit=2)
    running, waiting = call(u"slow", [0.5]), call(u"add", [1, 2])
    broker.request(running)
    broker.request(waiting)
    cancel(broker, waiting)
    replies = {env.id: env for env in (broker.reply()[1], broker.reply()[1])}
    assert replies[running.id].payload == u"slept"  # a running call finishes as usual
    assert replies[waiting.id].error[u"code"] == u"cancelled"


def test_a_cancel_for_a_running_call_or_an_unknown_id_changes_nothing(broker, start_worker):
    worker, _ = start_worker(table=TABLE)
    running = call(u"slow", [0.3])
    broker.request(running)
    wait_until(lambda: worker.handled == 1, 5, what="the call started")
    cancel(broker, running)
    cancel(broker, call(u"add", [0, 0]))  # an id the worker never saw
    reply = broker.reply()[1]
    assert (reply.id, reply.payload) == (running.id, u"slept")
    after = call(u"add", [2, 2])
    broker.request(after)
    reply = broker.reply()[1]  # nothing was sent for either cancel
    assert (reply.id, reply.payload) == (after.id, 4)


# ------------------------------------------------------------------ client --

class StreamingPeer(object):
    """A ROUTER playing broker and worker for one client: it answers by hand."""

    def __init__(self):
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.linger = 0
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = "tcp://127.0.0.1:%d" % port
        self.client = None

    def recv(self, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.sock.poll(int((deadline - time.time()) * 1000) + 1):
                frames = self.sock.recv_multipart()
                if frames[3].startswith(b"mmi."):  # the client's liveness probe
                    self.sock.send_multipart(frames[:4] + [b"200"])
                    continue
                self.client = frames[0]
                return frames[3], codec.decode(frames[4:])
        raise AssertionError("nothing from the client in %.1fs" % timeout)

    def send(self, service, env):
        self.sock.send_multipart([self.client, b"", mdp.CLIENT, service] + codec.encode(env))

    def close(self):
        self.sock.close(linger=0)


@pytest.fixture
def peer():
    p = StreamingPeer()
    yield p
    p.close()


def start_stream(peer, client, **kwargs):
    replies = client.request(u"web", http(), **kwargs)
    got = []
    reader = threading.Thread(target=lambda: got.append(next(replies)))
    reader.start()
    service, env = peer.recv()
    peer.send(service, codec.Envelope(u"http-response", id=env.id, more=True,
                                      http={u"status": 200}, payload=codec.Bytes(b"h")))
    reader.join(5)
    assert got and got[0].payload == b"h"
    return replies, service, env


def test_closing_a_stream_early_cancels_it_and_drops_late_parts(peer):
    with Client(peer.endpoint, timeout=5.0) as client:
        replies, service, env = start_stream(peer, client)
        replies.close()
        service_seen, cancel_env = peer.recv()
        assert (service_seen, cancel_env.kind, cancel_env.id) == (b"web", u"cancel", env.id)
        assert cancel_env.payload is None
        dropped = client.dropped
        peer.send(service, body(b"late"))  # id of a fresh envelope: unknown to the client
        peer.send(service, codec.Envelope(u"http-body", id=env.id, payload=codec.Bytes(b"")))
        with pytest.raises(Timeout):  # the client is still usable; a fresh call waits alone
            client.call(u"web", u"x", timeout=0.3)
        wait_until(lambda: client.dropped >= dropped + 2, 5, what="late parts dropped")


def test_the_deadline_bounds_the_head_and_idle_timeout_the_gaps(peer):
    with Client(peer.endpoint, timeout=5.0) as client:
        # A 0.3 s deadline, a 5 s idle timeout: a part 0.6 s after the head is still read.
        replies, service, env = start_stream(peer, client, timeout=0.3, idle_timeout=5.0)
        later = []
        reader = threading.Thread(target=lambda: later.append(next(replies)))
        reader.start()
        time.sleep(0.6)  # a gap longer than the deadline: what the test is about
        peer.send(service, codec.Envelope(u"http-body", id=env.id, payload=codec.Bytes(b"end")))
        reader.join(5)
        assert later and later[0].payload == b"end" and not later[0].more


def test_a_gap_longer_than_idle_timeout_raises_timeout_and_cancels(peer):
    with Client(peer.endpoint, timeout=5.0) as client:
        replies, _, env = start_stream(peer, client, idle_timeout=0.3)
        with pytest.raises(Timeout) as info:
            next(replies)
        assert u"idle" in info.value.message
        _, cancel_env = peer.recv()
        assert (cancel_env.kind, cancel_env.id) == (u"cancel", env.id)


def test_cancel_never_raises_on_a_closed_client_or_a_broker_that_is_not_there():
    client = Client("tcp://127.0.0.1:1", timeout=0.2)  # nothing listens on port 1
    client.cancel(u"web", u"0" * 32)
    client.close()
    client.cancel(u"web", u"0" * 32)
    assert client.dropped == 0


def test_a_producer_faster_than_the_sender_waits_at_the_queue_bound():
    from protocol.streaming import MAX_QUEUED, ReplyStream

    chunk = 64 * 1024
    produced = [0]

    def endless():
        while True:
            produced[0] += 1
            yield b"x" * chunk

    stream = ReplyStream(b"client", REQUEST, endless(), lambda: None, marks_more=True)
    stream.start()
    try:
        wait_until(lambda: stream._pushed - stream._taken > MAX_QUEUED, 5, what="a full queue")
        # Nothing is taken, so the producer cannot yield again: it waits at the bound.
        queued = produced[0]
        assert queued == MAX_QUEUED // chunk + 1
        # take() makes room, so the producer may run again before the next line: count
        # against what was queued before it, not against a counter it moves.
        parts = stream.take()
        assert sum(len(p.payload) for p in parts) == queued * chunk
        wait_until(lambda: produced[0] > MAX_QUEUED // chunk + 1, 5, what="room again")
    finally:
        stream.cancel()
        assert stream.join(5)
    last = stream.take()[-1]
    assert (last.kind, last.error[u"code"]) == (u"error", u"cancelled")


def test_a_worker_told_to_stop_finishes_its_stream_then_disconnects(broker, start_worker):
    app = Drip(n=10)
    worker, _ = start_worker(envelope_handler=WsgiHost(app).parts)
    env = http()
    broker.request(env)
    assert broker.reply()[1].more
    worker.stop()
    parts = [broker.reply()[1]]
    while parts[-1].more:
        parts.append(broker.reply()[1])
    assert b"".join(p.payload for p in parts) == b"." * 10
    assert parts[-1].kind == u"http-body"
    command, _ = mdp.split_worker(broker.recv())
    assert command == mdp.DISCONNECT
    assert app.closed.is_set()
