"""A worker's connection to its broker: the DEALER, its monitor and the heartbeat clocks.

::

    link = open_link("tcp://127.0.0.1:5555", curve=None)   # this, or a ZMTP link
    link.open(u"calc", metadata, interval)    # connect and send READY
    poller = link.poller()                    # poll(ms) -> {socket or fd: events}
    frames = link.recv()                      # one message, or None (never blocks)
    link.send(mdp.heartbeat())                # every send restarts the heartbeat clock
    if link.gone(): ...                       # the monitor saw the broker go
    link.leave(linger_ms)                     # DISCONNECT, then close letting replies out
    link.close()                              # drop the socket (the broker requeues)

:func:`open_link` picks the link (SPEC 2.2 holds for both): a libzmq DEALER
(this module), or for a broker on this host with no CURVE the worker's own
ZMTP connection (:class:`protocol.zmtplink.ZmtpWorkerLink`), which spares
each request two round trips through libzmq's I/O thread. ``link`` (or
``$GATEWAY_BROKER_LINK``) is ``auto``, ``zmtp`` or ``libzmq``.

SPEC 2.2: a close counts as the broker going only after a handshake, so a
refused CURVE handshake is not a broker loss. ``last_sent`` and
``last_recv`` are the clocks the worker's loop beats and judges liveness by
(MDP's heartbeat rules). The worker holds its socket lock around every call.
"""
from __future__ import absolute_import, division, print_function

import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from protocol import brokers, mdp
from protocol.zmtplink import ZmtpWorkerLink

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Any  # noqa: F401

def open_link(endpoint, curve=None, context=None, link=None):
    # type: (str, tuple, zmq.Context, str) -> Any
    """The worker's link to ``endpoint``, as :func:`protocol.brokers.choose_link` picks it."""
    if brokers.choose_link(endpoint, curve, link) == "zmtp":
        return ZmtpWorkerLink(endpoint)
    return WorkerLink(context or zmq.Context.instance(), endpoint, curve)


class WorkerLink(object):
    """The DEALER of one worker to one broker; opened again for each registration."""

    def __init__(self, ctx, endpoint, curve=None):
        # type: (zmq.Context, str, tuple) -> None
        self.ctx = ctx
        self.endpoint = endpoint
        self.curve = curve
        self.sock = None  # type: zmq.Socket
        self.monitor = None  # type: zmq.Socket
        self._linked = False  # a handshake with the broker succeeded on this socket
        self.last_sent = 0.0
        self.last_recv = 0.0

    def open(self, service, metadata, interval):
        # type: (bytes, dict, float) -> None
        """Connect and register (READY with ``metadata``)."""
        sock = self.ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.sndhwm = sock.rcvhwm = 10000
        if self.curve is not None:
            server_public, public, secret = self.curve
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = \
                server_public, public, secret
        # A close counts only after a handshake: a refused one (CURVE) is no broker loss.
        self.monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED
                                               | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._linked = False
        if self.endpoint.startswith("tcp://"):
            brokers.tune(sock, interval)  # a silent link is noticed, not waited out
        sock.connect(self.endpoint)
        self.sock = sock
        self.send(mdp.worker_ready(service, metadata))
        self.last_recv = time.time()

    @property
    def is_open(self):
        # type: () -> bool
        return self.sock is not None

    def poller(self):
        # type: () -> zmq.Poller
        """A poller watching the socket and its monitor (the worker adds its wake pipe)."""
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        return poller

    def signalled(self, events):
        # type: (dict) -> bool
        return self.sock in events

    def recv(self):
        # type: () -> list
        """One message if one is queued, else None."""
        try:
            frames = mdp.recv_frames(self.sock, mdp.NOBLOCK)
        except zmq.Again:
            return None
        return frames

    def readable(self):
        # type: () -> bool
        """True when a message is queued (ZMQ_EVENTS: cheaper than ending on Again)."""
        return mdp.readable(self.sock)

    def close(self):
        # type: () -> None
        """Close the socket and its monitor, dropping whatever is queued."""
        if self.monitor is not None:
            if self.sock is not None:
                self.sock.disable_monitor()
            self.monitor.close(linger=0)
            self.monitor = None
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    def send(self, frames):
        # type: (list) -> None
        """Send ``frames`` (blocking at the high-water mark) and restart the heartbeat clock."""
        mdp.send_frames(self.sock, frames)
        self.last_sent = time.time()

    def gone(self):
        # type: () -> bool
        """True when the monitor reports the connection to the broker closed."""
        if not mdp.readable(self.monitor):  # ZMQ_EVENTS, not a Poller per call
            return False
        gone = False
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)[u"event"]
            except zmq.Again:
                return gone
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._linked = True
            elif event == zmq.EVENT_DISCONNECTED and self._linked:
                self._linked, gone = False, True

    def leave(self, linger_ms):
        # type: (int) -> None
        """DISCONNECT, then close letting the last replies out for up to ``linger_ms``.

        The last replies and the DISCONNECT must reach the broker, or what they
        answer would be reported lost; so they linger instead of being discarded.
        """
        self.send(mdp.disconnect())
        self.sock.disable_monitor()
        self.sock.close(linger=linger_ms)
        self.sock = None
