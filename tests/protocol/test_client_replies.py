"""protocol.Client accepts only the reply kinds that answer its request (2.7 and 3.x, SPEC 3.3).

A ROUTER thread plays a broker whose "worker" answers with whatever the
test scripts: the request echoed back, a reply of the wrong kind, or a
proper one.
"""
from __future__ import absolute_import, division, print_function

import threading

import pytest
import zmq

from protocol import codec, mdp
from protocol.client import Client
from protocol.errors import EnvelopeError, RemoteError


class ScriptedBroker(object):
    """Answers each request with ``answer(env, body)`` -> list of bodies to send back."""

    def __init__(self, answer):
        self.answer = answer
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.linger = 0
        self.endpoint = "tcp://127.0.0.1:%d" % self.sock.bind_to_random_port("tcp://127.0.0.1")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.daemon = True
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            if not self.sock.poll(10):
                continue
            frames = self.sock.recv_multipart()
            client, service, body = frames[0], frames[3], frames[4:]
            env = codec.decode(body)
            if env.kind == u"cancel":
                continue  # SPEC 2.11: a cancel is never answered
            for reply in self.answer(env, body):
                self.sock.send_multipart([client, b"", mdp.CLIENT, service] + reply)
        self.sock.close(linger=0)

    def close(self):
        self._stop.set()
        self._thread.join(5)


def answer(env, body):
    """mirror: the request's own frames; else a reply of the kind named by the method."""
    if env.method == u"mirror" or (env.kind == u"http" and env.http.get(u"path_info") == u"/m"):
        return [body]
    if env.kind == u"http":
        kinds = [u"http-response", u"http-body"]
    else:
        kinds = [env.method]
    out = []
    for i, kind in enumerate(kinds):
        reply = codec.Envelope(kind, id=env.id, more=i < len(kinds) - 1, payload=env.payload,
                               http={u"status": 200, u"headers": []} if i == 0 and
                               kind == u"http-response" else None,
                               error={u"code": u"remote", u"message": u"no"}
                               if kind == u"error" else None)
        out.append(codec.encode(reply))
    return out


@pytest.fixture
def client():
    broker = ScriptedBroker(answer)
    c = Client(broker.endpoint, timeout=5.0, probe_interval=0.3)
    yield c
    c.close()
    broker.close()


def http(path):
    return codec.Envelope(u"http", http={u"method": u"GET", u"path_info": path},
                          payload=codec.Bytes(b"body"))


def test_a_call_echoed_back_is_not_a_result(client):
    with pytest.raises(EnvelopeError, match=u"'call' is no answer to a request of kind 'call'"):
        client.call(u"svc", u"mirror", {u"a": 1})
    assert client.call(u"svc", u"result", {u"a": 1}) == {u"a": 1}  # the client serves on


@pytest.mark.parametrize("kind", [u"http-response", u"http-body", u"event"])
def test_a_call_answered_by_a_non_answer_kind_is_an_envelope_error(client, kind):
    expected = u"'%s' is no answer to a request of kind 'call'" % (kind,)
    with pytest.raises(EnvelopeError, match=expected):
        client.call(u"svc", kind, [1])


def test_a_call_still_takes_result_and_error(client):
    assert client.call(u"svc", u"result", [1, 2]) == [1, 2]
    with pytest.raises(RemoteError):
        client.call(u"svc", u"error")


def test_an_http_request_echoed_back_is_not_a_response(client):
    with pytest.raises(EnvelopeError, match=u"'http' is no answer to a request of kind 'http'"):
        list(client.request(u"svc", http(u"/m")))
    parts = list(client.request(u"svc", http(u"/ok")))
    assert [p.kind for p in parts] == [u"http-response", u"http-body"]
    assert [p.payload for p in parts] == [b"body", b"body"]


def test_a_call_sent_through_request_takes_only_call_answers(client):
    env = codec.Envelope(u"call", method=u"mirror", payload=None)
    with pytest.raises(EnvelopeError, match=u"'call' is no answer"):
        list(client.request(u"svc", env))
    env = codec.Envelope(u"call", method=u"result", payload=3)
    assert [p.payload for p in client.request(u"svc", env)] == [3]
