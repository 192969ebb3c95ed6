"""The client's collaborators on their own: the calls table and the link's silence clock.

The client over real sockets is tested in test_mdp_client.py and
test_failover.py; these pin the decisions each part makes, with real MDP
frames and real envelopes (2.7 and 3.x).
"""
from __future__ import absolute_import, division, print_function

import zmq

from protocol import codec, mdp
from protocol.calls import Calls
from protocol.errors import BrokerLost, Unavailable
from protocol.link import PROBE, RECONNECT, BrokerLink
from protocol.pending import Pending, decode_reply


def _call(calls, rid, idem=False, deadline=1e12):
    body = codec.encode(codec.Envelope(u"call", id=rid, method=u"m", idem=idem))
    pending = Pending(None, rid, b"svc", mdp.client_request(b"svc", body), deadline, idem)
    calls.add(pending)
    return pending


def _reply(rid, more=False, payload=1):
    env = codec.Envelope(u"result", id=rid, payload=payload, more=more)
    return [b"broker", mdp.CLIENT, b"svc"] + codec.encode(env)


def test_a_reply_reaches_its_caller_and_a_late_one_is_dropped():
    calls = Calls()
    sent = []
    pending = _call(calls, u"a1")
    calls.transmit(pending, sent.append)
    assert sent == [pending.frames] and pending.sent_at > 0
    calls.route(_reply(u"a1", more=True))
    assert pending.done() and u"a1" in calls.by_id  # a part: still waiting for more
    calls.route(_reply(u"a1", payload=2))
    assert u"a1" not in calls.by_id
    assert [decode_reply(r).payload for r in pending.replies] == [1, 2]
    calls.route(_reply(u"a1"))
    calls.route([b"broker", mdp.CLIENT, b"svc", b"not json", b"null"])
    assert calls.dropped == 2


def test_a_full_send_queue_fails_the_call_and_a_forgotten_one_is_never_sent():
    calls = Calls()

    def full(frames):
        raise zmq.Again()
    pending = _call(calls, u"b1")
    calls.transmit(pending, full)
    assert isinstance(pending.error, Unavailable) and u"b1" not in calls.by_id
    gone = _call(calls, u"b2")
    calls.forget(u"b2")
    sent = []
    calls.transmit(gone, sent.append)
    assert sent == []


def test_a_lost_broker_resends_only_unanswered_idempotent_calls():
    calls = Calls()
    sent = []
    idem = _call(calls, u"c1", idem=True)
    other = _call(calls, u"c2")
    started = _call(calls, u"c3", idem=True)
    queued = _call(calls, u"c4")  # never sent: stays for the new socket
    for pending in (idem, other, started):
        calls.transmit(pending, sent.append)
    calls.route(_reply(u"c3", more=True))
    del sent[:]
    lost = BrokerLost(u"gone")
    calls.recover(lost, True, lambda p: calls.transmit(p, sent.append))
    assert sent == [idem.frames] and calls.resent == 1
    assert other.error is lost and started.error is lost
    assert set(calls.by_id) == {u"c1", u"c4"} and queued.error is None


def test_without_resending_every_sent_call_fails():
    calls = Calls()
    idem = _call(calls, u"d1", idem=True)
    calls.transmit(idem, lambda frames: None)
    lost = BrokerLost(u"gone")
    calls.recover(lost, False, lambda p: None)
    assert idem.error is lost and calls.resent == 0


def test_a_silent_broker_is_probed_then_reconnected():
    ctx = zmq.Context.instance()
    poller = zmq.Poller()
    link = BrokerLink(ctx, "tcp://127.0.0.1:9", None, 1.0, poller)
    try:
        start = link.last_recv
        assert link.silence(start + 5.0, waiting=False) is None  # nobody waits: no probe
        assert link.silence(start + 0.5, waiting=True) is None   # not silent long enough
        assert link.silence(start + 1.5, waiting=True) == PROBE
        assert link.silence(start + 2.5, waiting=True) is None   # the probe has its time
        assert link.silence(start + 3.6, waiting=True) == RECONNECT
        link.reopen()
        assert link.reconnects == 1 and link.link_up is False and link.probe_at is None
    finally:
        link.shut()
