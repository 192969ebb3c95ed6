"""protocol.Worker against a hand-driven ROUTER playing the broker (2.7 and 3.x)."""
from __future__ import absolute_import, division, print_function

import re
import threading
import time

import pytest
import zmq

from protocol import codec, mdp
from protocol.errors import InvalidParams
from protocol.worker import Worker, current
from tests.support.procs import wait_until


def slow(seconds):
    time.sleep(seconds)
    return u"slept"


def context_view():
    ctx = current()
    return {u"rid": ctx.rid, u"deadline": ctx.deadline, u"left": ctx.remaining() > 0}


def picky(x):
    raise InvalidParams(u"x must be even", type=u"InvalidParams")


TABLE = {
    u"add": lambda a, b: a + b,
    u"echo": lambda *args: list(args),
    u"none": lambda: None,
    u"boom": lambda: {}[u"missing"],
    u"slow": slow,
    u"ctx": context_view,
    u"picky": picky,
}


class FakeBroker(object):
    """A ROUTER that records what a worker says and answers by hand."""

    def __init__(self):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.identity = None

    def recv(self, timeout=5.0, skip_heartbeats=True):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.sock.poll(int((deadline - time.time()) * 1000) + 1):
                break
            frames = self.sock.recv_multipart()
            if skip_heartbeats and frames[3] == mdp.HEARTBEAT:
                continue
            self.identity = frames[0]
            return frames[1:]
        raise AssertionError("no message from the worker in %.1fs" % timeout)

    def send(self, frames):
        self.sock.send_multipart([self.identity] + frames)

    def request(self, env, client=b"client-1"):
        self.send([b"", mdp.WORKER, mdp.REQUEST, client, b""] + codec.encode(env))

    def reply(self, timeout=5.0):
        frames = self.recv(timeout)
        command, rest = mdp.split_worker(frames)
        assert command == mdp.REPLY
        client, body = mdp.split_address(rest)
        return client, codec.decode(body)

    def close(self):
        self.sock.close(linger=0)


@pytest.fixture
def broker():
    fake = FakeBroker()
    yield fake
    fake.close()


@pytest.fixture(params=["zmtp", "libzmq"])
def start_worker(request, broker):
    """A Worker on either link: the same broker sees the same messages from both."""
    started = []

    def start(**kwargs):
        kwargs.setdefault("table", TABLE)
        kwargs.setdefault("link", request.param)
        worker = Worker(broker.endpoint, u"calc", **kwargs)
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


def call(method, payload=None, deadline_s=5.0, **kw):
    return codec.Envelope(u"call", method=method, deadline=mdp.deadline_in(deadline_s),
                          payload=payload, **kw)


def test_ready_metadata_and_adopted_interval(start_worker):
    worker, rest = start_worker(credit=3)
    assert rest[0] == b"calc"
    meta = mdp.parse_metadata(rest)
    assert meta[u"credit"] == 3
    assert u"add" in meta[u"methods"]
    assert meta[u"runtime"].startswith(u"cpython-")
    assert worker.interval == 0.2


def test_calls_with_kwargs_args_and_none(broker, start_worker):
    start_worker()
    for env, expected in [(call(u"add", {u"a": 2, u"b": 3}), 5),
                          (call(u"echo", [1, u"\u00e9"]), [1, u"\u00e9"]),
                          (call(u"none"), None)]:
        broker.request(env)
        client, reply = broker.reply()
        assert client == b"client-1"
        assert (reply.kind, reply.id, reply.payload) == (u"result", env.id, expected)


def test_exceptions_become_typed_error_envelopes(broker, start_worker):
    start_worker()
    broker.request(call(u"boom"))
    _, reply = broker.reply()
    assert reply.error[u"code"] == u"remote"
    assert reply.error[u"type"] == u"KeyError"
    assert u"Traceback" in reply.error[u"traceback"]
    broker.request(call(u"nope"))
    assert broker.reply()[1].error[u"code"] == u"unknown_method"
    broker.request(call(u"picky", [1]))
    assert broker.reply()[1].error[u"code"] == u"invalid_params"


@pytest.mark.parametrize("rest", [[], [b"client-1"], [b"client-1", b"not-empty", b"x"]])
def test_malformed_request_is_dropped_and_the_worker_serves_on(broker, start_worker, rest):
    worker, _ = start_worker()
    broker.send([b"", mdp.WORKER, mdp.REQUEST] + rest)
    env = call(u"add", [1, 2])
    broker.request(env)
    client, reply = broker.reply()
    assert (client, reply.id, reply.payload) == (b"client-1", env.id, 3)
    assert worker.handled == 1


def test_expired_request_is_never_started(broker, start_worker):
    start_worker()
    env = codec.Envelope(u"call", method=u"slow", deadline=mdp.now_ms() - 1, payload=[5])
    started = time.time()
    broker.request(env)
    _, reply = broker.reply()
    assert reply.error[u"code"] == u"timeout"
    assert time.time() - started < 2.0  # slow(5) did not run


def test_context_carries_deadline_and_rid(broker, start_worker):
    start_worker()
    env = call(u"ctx", rid=u"req-42")
    broker.request(env)
    _, reply = broker.reply()
    assert reply.payload == {u"rid": u"req-42", u"deadline": env.deadline, u"left": True}


def test_long_handler_keeps_heartbeating(broker, start_worker):
    start_worker()
    broker.request(call(u"slow", [1.0]))
    beats = 0
    deadline = time.time() + 5
    while time.time() < deadline:
        frames = broker.recv(skip_heartbeats=False)
        if frames[2] == mdp.HEARTBEAT:
            beats += 1
        else:
            assert codec.decode(mdp.split_address(frames[3:])[1]).payload == u"slept"
            break
    assert beats >= 3  # 1 s of work at a 0.2 s interval


def test_envelope_handler_streams_with_more_flags(broker, start_worker):
    def handler(env):
        for i in range(3):
            yield codec.Envelope(u"http-body", payload=codec.Bytes(b"chunk%d" % i))

    start_worker(table=None, envelope_handler=handler)
    env = codec.Envelope(u"http", deadline=mdp.deadline_in(5))
    broker.request(env)
    replies = [broker.reply()[1] for _ in range(3)]
    assert [r.more for r in replies] == [True, True, False]
    assert [r.id for r in replies] == [env.id] * 3
    assert [r.payload for r in replies] == [b"chunk0", b"chunk1", b"chunk2"]


def test_stop_sends_disconnect(broker, start_worker):
    worker, _ = start_worker()
    worker.stop()
    command, _ = mdp.split_worker(broker.recv())
    assert command == mdp.DISCONNECT


def test_disconnect_from_broker_makes_worker_register_again(broker, start_worker):
    start_worker()
    broker.send(mdp.disconnect())
    command, rest = mdp.split_worker(broker.recv())
    assert (command, rest[0]) == (mdp.READY, b"calc")


def test_needs_exactly_one_of_table_and_handler():
    with pytest.raises(TypeError):
        Worker("tcp://127.0.0.1:1", u"x")
    with pytest.raises(TypeError):
        Worker("tcp://127.0.0.1:1", u"x", table={}, envelope_handler=lambda e: [])


HEX32 = r"^[0-9a-f]{32}$"


@pytest.mark.parametrize("header, same_id", [
    (b'{"id":"req-1","kind":"call","v":2}', True),            # header rule broken, id readable
    (b'{"id":"req-1","kind":"cast","method":"add","v":1}', True),
    (b'{"id":"req-1","kind":"call","method":"add","v":1}', True),  # the payload is bad
    (b'{"id":"","kind":"call","method":"add","v":1}', False),  # an empty id is no id
    (b'{"id":7,"kind":"call","method":"add","v":1}', False),
    (b'{"id":"\\ud800","kind":"call","v":1}', False),          # cannot be sent back
    (b'{"id":"req-1","kind":"call"', False),                    # not JSON
    (b'["req-1"]', False),
    (b"raw mdp body", False),
])
def test_undecodable_request_error_carries_the_id_rule(broker, start_worker, header, same_id):
    start_worker()
    broker.send([b"", mdp.WORKER, mdp.REQUEST, b"client-1", b"", header, b"{"])
    client, reply = broker.reply()
    assert (client, reply.kind, reply.error[u"code"]) == (b"client-1", u"error", u"envelope")
    if same_id:
        assert reply.id == u"req-1"
    else:
        assert re.match(HEX32, reply.id)


@pytest.mark.parametrize("kind, fragment", [
    (u"http", u"serves call requests, not 'http'"),
    (u"result", u"'result' is not a request kind"),
    (u"http-body", u"'http-body' is not a request kind"),
    (u"error", u"'error' is not a request kind"),
])
def test_a_kind_the_worker_does_not_serve_is_an_envelope_error(broker, start_worker, kind,
                                                               fragment):
    start_worker()
    env = codec.Envelope(kind, method=u"add", deadline=mdp.deadline_in(5), payload=[1, 2],
                         error={u"code": u"remote", u"message": u""} if kind == u"error" else None)
    broker.request(env)
    _, reply = broker.reply()
    assert (reply.id, reply.error[u"code"]) == (env.id, u"envelope")
    assert fragment in reply.error[u"message"]


def test_an_envelope_handler_never_sees_a_reply_kind(broker, start_worker):
    seen = []

    def handler(env):
        seen.append(env.kind)
        yield codec.Envelope(u"result", payload=env.kind)

    start_worker(table=None, envelope_handler=handler)
    broker.request(codec.Envelope(u"result", payload=None))
    assert broker.reply()[1].error[u"code"] == u"envelope"
    broker.request(call(u"anything"))
    assert broker.reply()[1].payload == u"call"
    assert seen == [u"call"]


def test_params_map_by_form_list_positional_object_named(broker, start_worker):
    start_worker()
    for payload, expected in [([2, 3], 5), ({u"b": 3, u"a": 2}, 5)]:
        env = call(u"add", payload)
        broker.request(env)
        assert broker.reply()[1].payload == expected
    env = call(u"echo", 7)  # any other value is the one positional argument
    broker.request(env)
    assert broker.reply()[1].payload == [7]
