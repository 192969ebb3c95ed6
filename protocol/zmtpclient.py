"""A client's link to a local broker in ZMTP, used by the leading caller thread (2.7 and 3.x).

A libzmq DEALER passes every request and reply through libzmq's I/O thread:
an eventfd wake-up and a context switch each way. For a broker on this host
(``ipc://``, or ``tcp://`` on loopback, no CURVE) the client can be the
DEALER itself, on a plain stream socket that the calling thread holding the
client's I/O lock reads and writes (:mod:`protocol.turns`). It keeps
:class:`protocol.link.BrokerLink`'s contract, which the client relies on:

- ``send`` never blocks: before the handshake, while the broker is away and
  when the kernel takes only part of a message, messages wait in a bounded
  queue (a DEALER's pipe); past the bound it raises ``zmq.Again``.
- Connection attempts repeat every 100 ms while the broker is away, as
  libzmq's reconnect interval does; a call waits out its deadline, never
  hangs. A connection made waits (at most 0.5 s) for the broker's side of the
  handshake, so what is sent next goes out at once even if nobody reads.
- A connection that closes after a handshake is a broker loss (SPEC 2.1):
  :meth:`connection_lost` says so once, what was queued for the dead broker
  is dropped, and the client decides what to resend.
- A peer that breaks ZMTP, or sends an ERROR command, is cut and tried again.
- Lazy Pirate's clock (``heard``, ``silence``) and ``reopen`` for a broker
  gone silent are :class:`protocol.link.BrokerLink`'s.
"""
from __future__ import absolute_import, division, print_function

import collections
import errno
import logging
import socket
import time

import zmq

from protocol import zmtp
from protocol.link import Clock
from protocol.zmtplink import DealerStream, _errno

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Any, Dict, Optional  # noqa: F401

log = logging.getLogger("protocol.client")

MAX_MESSAGE = 256 << 20
MAX_QUEUED = 100000        # messages waiting to be written, as the DEALER's high-water mark
RETRY = 0.1                # between connection attempts (libzmq's ZMQ_RECONNECT_IVL)
CONNECT_TIMEOUT = 0.5      # a local connect is immediate or refused
_AGAIN = (errno.EAGAIN, errno.EWOULDBLOCK)


class ZmtpClientLink(Clock, DealerStream):
    """The client's DEALER to one local broker, as a plain socket; see the module docstring."""

    def __init__(self, endpoint, probe_interval, poller, max_queued=MAX_QUEUED):
        # type: (str, float, zmq.Poller, int) -> None
        Clock.__init__(self, probe_interval)
        self.endpoint = endpoint
        self.address = zmtp.parse_endpoint(endpoint)
        self.poller = poller
        self.max_queued = max_queued
        self.link_up = None  # type: Optional[bool]  # None until the first handshake
        self.reconnects = 0
        self.broker_losses = 0
        self.sock = None  # type: Optional[socket.socket]
        self.fd = -1
        self.linked = False
        self.pings = 0
        self._lost = False        # a loss not reported by connection_lost yet
        self._why = u""           # why the last connection or handshake failed
        self._warned = False      # that failure was logged at WARNING this outage
        self.max_message = MAX_MESSAGE
        self._retry_at = 0.0
        self._writing = False     # POLLOUT is asked for: the queue's head is half written
        self._out = collections.deque()  # type: collections.deque  # bytes, oldest first
        self._inbox = collections.deque()  # type: collections.deque
        self._connect()
        self.heard()

    # -------------------------------------------------------- connection --
    def _connect(self):
        # type: () -> None
        try:
            self._dial(CONNECT_TIMEOUT)
        except socket.error as exc:
            self._retry_at = time.time() + RETRY
            log.debug("broker %s: cannot connect (%s)", self.endpoint, exc)
            return
        self._writing = False
        self.poller.register(self.fd, zmq.POLLIN)
        self._why = u"no ZMTP handshake within %.1f s" % (CONNECT_TIMEOUT,)
        if self._handshake(CONNECT_TIMEOUT):
            self._warned = False
            return
        # Once per outage: a peer that is not a ZMTP broker would say so ten times a second.
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(level, "broker %s: %s; retrying every %.1f s", self.endpoint, self._why, RETRY)
        self._drop()

    def _drop(self):
        # type: () -> None
        """Close the socket; what was queued for this connection goes with it."""
        sock, self.sock = self.sock, None
        if sock is not None:
            self.poller.unregister(self.fd)
            sock.close()
        self.fd = -1
        self._retry_at = time.time() + (0.0 if self.linked else RETRY)
        if self.linked:
            self._out.clear()  # it went with the dead broker; what never left waits on
        self.linked = self._writing = False

    def _broken(self, why):
        # type: (str) -> None
        self._why = why
        if self.linked:
            self._lost = True
            log.debug("broker %s: %s", self.endpoint, why)
        self._drop()

    def tick(self, now):
        # type: (float) -> float
        """Connect again when due; how long the leader may wait before calling again."""
        if self.sock is not None:
            return self.probe_interval
        if now >= self._retry_at:
            self._connect()
        return RETRY

    def shut(self):
        # type: () -> None
        """Close the connection for good (the client is closing)."""
        self._drop()
        self._inbox.clear()

    def reopen(self):
        # type: () -> None
        """A new connection for a broker gone silent: suspect until a handshake again."""
        self.reconnects += 1
        self.link_up = False
        self.linked = False  # a silent broker's connection is no loss to report
        self._drop()
        self._inbox.clear()
        self._connect()
        self.heard()

    # ------------------------------------------------------------- frames --
    def send(self, frames):
        # type: (list) -> None
        """Queue one message without blocking; ``zmq.Again`` when the queue is full."""
        data = zmtp.encode(frames)
        if self.linked and not self._out:
            try:
                sent = self.sock.send(data)
            except socket.error as exc:
                if _errno(exc) not in _AGAIN and _errno(exc) != errno.EINTR:
                    self._broken(u"the connection failed: %s" % (exc,))
                    return  # the loss is reported; the client resends or fails the call
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        elif len(self._out) >= self.max_queued:
            raise zmq.Again()
        self._out.append(data)
        if self.sock is None:
            self.tick(time.time())
        elif self.linked:
            self._want_write()

    def _want_write(self):
        # type: () -> None
        if not self._writing and self.sock is not None:
            self._writing = True
            self.poller.register(self.fd, zmq.POLLIN | zmq.POLLOUT)

    def _flush(self):
        # type: () -> None
        """Write what the queue holds, as far as the kernel takes it."""
        out = self._out
        while out and self.sock is not None:
            data = out[0]
            try:
                sent = self.sock.send(data)
            except socket.error as exc:
                if _errno(exc) in _AGAIN or _errno(exc) == errno.EINTR:
                    break
                self._broken(u"the connection failed: %s" % (exc,))
                return
            if sent < len(data):
                out[0] = data[sent:]
                break
            out.popleft()
        if self.sock is not None:
            if out:
                self._want_write()
            elif self._writing:
                self._writing = False
                self.poller.register(self.fd, zmq.POLLIN)

    def signalled(self, events):
        # type: (Dict) -> bool
        """Act on the poll's ``events``: write if writable; True when there is input."""
        mask = events.get(self.fd, 0) if self.sock is not None else 0
        if mask & zmq.POLLOUT:
            self._flush()
        return bool(mask & zmq.POLLIN) or bool(self._inbox)

    # What DealerStream asks of its link.
    def _fail(self, why):
        # type: (str) -> None
        self._broken(why)

    def _on_linked(self):
        # type: () -> None
        self.link_up = True
        self._flush()  # what waited for the handshake, in order

    def _send_pong(self, data):
        # type: (bytes) -> None
        # Behind whatever waits: a PONG must not cut into a half-written message.
        self._out.append(data)
        if not self._writing:
            self._flush()

    # -------------------------------------------------------------- state --
    def lost_in(self, events):
        # type: (Dict) -> bool
        """True when a loss waits to be reported (found while reading or writing)."""
        return self._lost

    def check(self):
        # type: () -> bool
        """Read what is there without waiting; True when a loss waits to be reported."""
        if self.sock is not None and not self._lost:
            self._read()
        return self._lost

    def connection_lost(self):
        # type: () -> bool
        """True, once, when the connection closed after a handshake (SPEC 2.1)."""
        if not self._lost:
            return False
        self._lost = False
        self.link_up = False
        self.broker_losses += 1
        return True
