"""MDP/0.1 framing helpers (RFC 7), checked frame by frame on 2.7 and 3.x."""
from __future__ import absolute_import, division, print_function

import json

import pytest

from protocol import codec, mdp
from protocol.errors import EnvelopeError, Unavailable, WorkerLost


def test_client_request_frames_follow_rfc7():
    body = [b"h", b"p"]
    assert mdp.client_request(b"echo", body) == [b"", b"MDPC01", b"echo", b"h", b"p"]


def test_ready_carries_service_and_metadata():
    frames = mdp.worker_ready(b"calc", {u"credit": 4, u"pid": 12})
    assert frames[:4] == [b"", b"MDPW01", b"\x01", b"calc"]
    assert json.loads(frames[4].decode("utf-8")) == {u"credit": 4, u"pid": 12}
    assert mdp.parse_metadata(frames[3:]) == {u"credit": 4, u"pid": 12}


def test_ready_without_metadata_is_plain_rfc7():
    assert mdp.worker_ready(b"calc") == [b"", b"MDPW01", b"\x01", b"calc"]
    assert mdp.parse_metadata([b"calc"]) == {}
    assert mdp.parse_metadata([b"calc", b"not json"]) == {}


def test_heartbeat_interval_round_trips():
    frames = mdp.heartbeat(250)
    command, rest = mdp.split_worker(frames)
    assert command == mdp.HEARTBEAT
    assert mdp.parse_interval(rest) == 250
    assert mdp.parse_interval([]) is None
    assert mdp.parse_interval([b"-5"]) is None
    assert mdp.parse_interval([b"x"]) is None


def test_reply_address_split():
    frames = mdp.worker_reply(b"\x00abc", [b"h", b"p"])
    command, rest = mdp.split_worker(frames)
    assert command == mdp.REPLY
    assert mdp.split_address(rest) == (b"\x00abc", [b"h", b"p"])


@pytest.mark.parametrize("frames", [
    [b"", b"MDPC01", b"\x01"],
    [b"x", b"MDPW01", b"\x01"],
    [b"", b"MDPW01", b"\x09"],
    [b""],
])
def test_bad_worker_frames_are_typed_errors(frames):
    with pytest.raises(EnvelopeError):
        mdp.split_worker(frames)


def test_split_address_needs_the_empty_delimiter():
    with pytest.raises(EnvelopeError):
        mdp.split_address([b"client", b"x", b"body"])


def test_routing_fields_reads_id_deadline_idem():
    env = codec.Envelope(u"call", method=u"m", deadline=123456, idem=True)
    header = codec.encode(env)[0]
    assert mdp.routing_fields(header) == (env.id, 123456, True)
    plain = codec.encode(codec.Envelope(u"call", method=u"m"))[0]
    assert mdp.routing_fields(plain)[1:] == (None, False)


@pytest.mark.parametrize("frame", [b"", b"raw bytes", b"{bad json", b"[1]", b'{"id": 5}'])
def test_routing_fields_none_for_raw_bodies(frame):
    assert mdp.routing_fields(frame) is None


DEEP = b'{"id":"x","a":' + b"[" * 200000


def test_deeply_nested_frames_are_not_headers_and_do_not_raise():
    assert mdp.routing_fields(DEEP) is None
    assert mdp.parse_metadata([b"calc", DEEP]) == {}
    assert mdp.peek_header(DEEP) is None


def test_reply_fields_reads_id_and_more_in_one_parse():
    more = codec.encode(codec.Envelope(u"http-body", id=u"r1", more=True, payload=b"x"))[0]
    last = codec.encode(codec.Envelope(u"result", id=u"r2", payload=1))[0]
    assert mdp.reply_fields(more) == (u"r1", True)
    assert mdp.reply_fields(last) == (u"r2", False)
    tricky = codec.encode(codec.Envelope(u"result", id=u"r3", method=u'"more":true'))[0]
    assert mdp.reply_fields(tricky) == (u"r3", False)
    for raw in (b"", b"raw", b"{bad", b"[1]", b'{"id": 5}', DEEP):
        assert mdp.reply_fields(raw)[1] is False
    assert mdp.reply_fields(b'{"id": 5}')[0] is None


def test_error_body_is_an_error_envelope_with_the_request_id():
    env = codec.decode(mdp.error_body(u"ab" * 16, Unavailable(u"no worker")))
    assert env.kind == u"error"
    assert env.id == u"ab" * 16
    assert env.error == {u"code": u"unavailable", u"message": u"no worker"}
    lost = codec.decode(mdp.error_body(None, WorkerLost(u"died", attempt=2)))
    assert lost.id and lost.error == {u"code": u"worker_lost", u"message": u"died",
                                      u"attempt": 2}


def test_deadline_in_is_milliseconds_ahead():
    now = mdp.now_ms()
    assert now + 900 <= mdp.deadline_in(1.0) <= now + 1100
