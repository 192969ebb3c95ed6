"""A client's connection to one broker: the DEALER, its monitor, and Lazy Pirate's clock.

::

    link = BrokerLink(ctx, "tcp://127.0.0.1:5555", curve=None, probe_interval=1.0,
                      poller=poller)
    link.send(frames)                 # non-blocking; zmq.Again when the queue is full
    if link.connection_lost():        # the monitor saw the broker go (after a handshake)
        ...
    action = link.silence(time.time(), waiting=True)   # None, PROBE or RECONNECT
    link.reopen()                     # a new socket: the old one's requests are gone

Two ways to learn that the broker is gone (SPEC 2.1): the socket monitor
reports the connection closing, which on loopback means the broker process
died with every request it held; or the broker stays silent while calls
wait, and an ``mmi.service`` probe goes unanswered for two probe intervals
(Lazy Pirate, zguide chapter 4). What to do about the requests is the
client's decision (:meth:`protocol.calls.Calls.recover`); this object only
owns the socket and says what happened. Only the client's leader thread,
holding its I/O lock, calls it.
"""
from __future__ import absolute_import, division, print_function

import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from protocol import brokers, mdp

PROBE = "probe"
RECONNECT = "reconnect"


class Clock(object):
    """Lazy Pirate's clock: when the broker last spoke, and whether a probe is out."""

    def __init__(self, probe_interval):
        # type: (float) -> None
        self.probe_interval = probe_interval
        self.last_recv = time.time()
        self.probe_at = None  # type: float

    def heard(self):
        # type: () -> None
        """The broker spoke (or the clock starts over): no probe is due."""
        self.last_recv, self.probe_at = time.time(), None

    def silence(self, now, waiting):
        # type: (float, bool) -> str
        """What a silent broker calls for while callers are ``waiting``: PROBE, RECONNECT or None.

        PROBE starts the probe's clock; RECONNECT means it went unanswered.
        """
        if not waiting or now - self.last_recv < self.probe_interval:
            return None
        if self.probe_at is None:
            self.probe_at = now
            return PROBE
        if now - self.probe_at > 2 * self.probe_interval:
            return RECONNECT
        return None


class BrokerLink(Clock):
    """The DEALER to one broker and what is known about the connection."""

    def __init__(self, ctx, endpoint, curve, probe_interval, poller):
        # type: (zmq.Context, str, tuple, float, zmq.Poller) -> None
        Clock.__init__(self, probe_interval)
        self.ctx = ctx
        self.endpoint = endpoint
        self.curve = curve
        self.poller = poller
        self.link_up = None  # type: bool  # None until the first handshake
        self.reconnects = 0
        self.broker_losses = 0
        self._linked = False  # a handshake with the broker succeeded on this socket
        self.sock, self.monitor = self._open()

    def _open(self):
        # type: () -> tuple
        """A connected DEALER and the monitor that reports its connection closing."""
        sock = self.ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.sndhwm = sock.rcvhwm = 100000
        if self.curve is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self.curve
        # A close counts only after a handshake: a refused one (CURVE) is no broker loss.
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._linked = False
        if self.endpoint.startswith("tcp://"):
            brokers.tune(sock, self.probe_interval)  # a silent link is noticed, not waited out
        sock.connect(self.endpoint)
        self.poller.register(sock, zmq.POLLIN)
        self.poller.register(monitor, zmq.POLLIN)
        return sock, monitor

    def shut(self):
        # type: () -> None
        """Close the DEALER and its monitor."""
        self.poller.unregister(self.sock)
        self.poller.unregister(self.monitor)
        self.sock.disable_monitor()
        self.monitor.close(linger=0)
        self.sock.close(linger=0)

    def reopen(self):
        # type: () -> None
        """A new socket for a broker gone silent: suspect until a handshake again."""
        self.reconnects += 1
        self.link_up = False
        self.shut()
        self.sock, self.monitor = self._open()
        self.heard()

    def send(self, frames):
        # type: (list) -> None
        """Queue ``frames`` without blocking (zmq.Again when the queue is full)."""
        mdp.send_frames(self.sock, frames, mdp.NOBLOCK)

    def recv(self):
        # type: () -> list
        """One message if one is queued, else None."""
        try:
            return mdp.recv_frames(self.sock, mdp.NOBLOCK)
        except zmq.Again:
            return None

    def readable(self):
        # type: () -> bool
        """True when a message is queued on the DEALER."""
        return mdp.readable(self.sock)

    def tick(self, now):
        # type: (float) -> float
        """Nothing to do: libzmq reconnects by itself. How long the leader may wait."""
        return self.probe_interval

    def signalled(self, events):
        # type: (dict) -> bool
        """True when the poll's ``events`` say a message waits."""
        return self.sock in events

    def lost_in(self, events):
        # type: (dict) -> bool
        """True when the monitor has something to report (see :meth:`connection_lost`)."""
        return self.monitor in events

    def check(self):
        # type: () -> bool
        """True when the monitor has something to report, without waiting."""
        return mdp.readable(self.monitor)

    def connection_lost(self):
        # type: () -> bool
        """Read the monitor's reports; True when the connection closed after a handshake."""
        lost = False
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)[u"event"]
            except zmq.Again:
                break
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._linked = self.link_up = True
            elif event == zmq.EVENT_DISCONNECTED and self._linked:
                self._linked, lost = False, True
                self.link_up = False
        if lost:
            self.broker_losses += 1
        return lost
