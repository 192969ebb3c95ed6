"""Publish and subscribe to events through the broker's XSUB/XPUB proxy (2.7 and 3.x).

::

    from protocol.events import Publisher, Subscriber
    pub = Publisher("tcp://127.0.0.1:5556")              # the broker's --events-pub
    sub = Subscriber("tcp://127.0.0.1:5557", [u"thumbs."])  # the broker's --events-sub
    pub.publish(u"thumbs.done", {u"id": 7, u"png": protocol.Bytes(b"...")})
    event = sub.recv(timeout=1.0)     # -> Event(topic, envelope), or None after 1 s

Frames: ``[topic (UTF-8), header JSON (kind "event"), payload JSON, *byte frames]``.

Delivery is at most once. An event is lost, never duplicated, when no
subscriber matched it yet (a subscription takes a moment to travel through
the proxy to the publisher: the "slow joiner"), when a subscriber falls more
than the high-water mark behind, or when any process on the path restarts.
Anything that must not be lost belongs on a queue (``protocol.queue``).
Topics match by prefix, as ZeroMQ SUB does.

Threads: a Publisher may be shared (a lock guards its socket); a Subscriber
belongs to the thread that reads from it.
"""
from __future__ import absolute_import, division, print_function

import threading

import zmq

from protocol import codec
from protocol._compat import text_type, to_bytes
from protocol.context import inherited
from protocol.errors import EnvelopeError

MYPY = False  # mypy treats this name as True; 2.7 never imports typing here
if MYPY:  # pragma: no cover
    from typing import Any  # noqa: F401

HWM = 10000


class Event(object):
    """One received event: its topic (text) and its decoded envelope."""

    __slots__ = ("envelope", "topic")

    def __init__(self, topic, envelope):
        # type: (str, codec.Envelope) -> None
        self.topic = topic
        self.envelope = envelope

    @property
    def payload(self):
        # type: () -> object
        """The event's payload value."""
        return self.envelope.payload

    def __repr__(self):
        # type: () -> str
        return "Event(%r)" % (self.topic,)


def _topic_text(topic):
    # type: (object) -> str
    if isinstance(topic, text_type):
        return topic
    return to_bytes(topic, "topic").decode("utf-8")


class Publisher(object):
    """Publishes events to the broker's XSUB endpoint; thread-safe."""

    def __init__(self, endpoint, context=None, curve=None):
        # type: (str, zmq.Context, tuple) -> None
        self.ctx = context or zmq.Context.instance()
        self._lock = threading.Lock()
        self._sock = self.ctx.socket(zmq.PUB)
        self._sock.linger = 0
        self._sock.sndhwm = HWM
        if curve is not None:
            self._sock.curve_serverkey, self._sock.curve_publickey, \
                self._sock.curve_secretkey = curve
        self._sock.connect(endpoint)

    def publish(self, topic, payload=None, rid=None, traceparent=None, tracestate=None):
        # type: (str, object, str, str, str) -> None
        """Send one event; never blocks (a full queue drops it: at most once).

        Inside a handler ``rid`` and the trace context default to the request's.
        """
        topic = _topic_text(topic)
        rid, traceparent, tracestate = inherited(rid, traceparent, tracestate)
        env = codec.Envelope(u"event", method=topic, rid=rid, payload=payload,
                             traceparent=traceparent, tracestate=tracestate)
        frames = [topic.encode("utf-8")] + codec.encode(env)
        with self._lock:
            try:
                self._sock.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                pass  # PUB never raises Again today; at most once either way

    def close(self):
        # type: () -> None
        """Close the socket (linger 0: unsent events are dropped)."""
        with self._lock:
            self._sock.close(linger=0)


class Subscriber(object):
    """Receives events whose topic starts with one of ``topics``."""

    def __init__(self, endpoint, topics=(), context=None, curve=None):
        # type: (str, Any, zmq.Context, tuple) -> None
        self.ctx = context or zmq.Context.instance()
        self._sock = self.ctx.socket(zmq.SUB)
        self._sock.linger = 0
        self._sock.rcvhwm = HWM
        if curve is not None:
            self._sock.curve_serverkey, self._sock.curve_publickey, \
                self._sock.curve_secretkey = curve
        self._sock.connect(endpoint)
        self.subscribe(topics)

    def subscribe(self, topics):
        # type: (Any) -> None
        """Add topic prefixes (u"" subscribes to everything)."""
        for topic in topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, _topic_text(topic).encode("utf-8"))

    def unsubscribe(self, topics):
        # type: (Any) -> None
        """Remove topic prefixes."""
        for topic in topics:
            self._sock.setsockopt(zmq.UNSUBSCRIBE, _topic_text(topic).encode("utf-8"))

    def recv(self, timeout=1.0):
        # type: (float) -> Event
        """The next event, or None when ``timeout`` seconds pass first.

        The wait is always bounded: loop on None to wait longer. A malformed
        event raises :class:`~protocol.errors.EnvelopeError`.
        """
        if timeout is None or timeout < 0:
            raise ValueError("recv needs a timeout in seconds (>= 0)")
        if not self._sock.poll(int(timeout * 1000)):
            return None
        frames = self._sock.recv_multipart()
        if len(frames) < 3:
            raise EnvelopeError(u"event: expected topic, header and payload frames")
        try:
            topic = frames[0].decode("utf-8")
        except UnicodeDecodeError:
            raise EnvelopeError(u"event: topic is not UTF-8")
        return Event(topic, codec.decode(frames[1:]))

    def close(self):
        # type: () -> None
        """Close the socket."""
        self._sock.close(linger=0)

