"""A worker's connection to a local broker in ZMTP, on the worker's own thread (2.7 and 3.x).

A libzmq DEALER hands every message to libzmq's background I/O thread and
back: an eventfd wake-up, a context switch and an epoll round each way,
twice per request. For a broker on this host (``ipc://``, or ``tcp://`` on
loopback, no CURVE) the worker can be the DEALER itself: a plain stream
socket, the ZMTP 3.1 handshake with the NULL mechanism (:mod:`protocol.zmtp`),
each message written with one system call and read by the thread that runs
the handlers. It has :class:`protocol.workerlink.WorkerLink`'s interface::

    link = ZmtpWorkerLink("ipc:///run/gw/broker.ipc")
    link.open(u"calc", metadata, interval)   # socket.error if refused, ZmtpError if not ZMTP
    poller = link.poller()                   # poll(ms) -> {fd: events}; add the wake pipe
    frames = link.recv()                     # one message, or None when none is read yet
    link.send(mdp.heartbeat())
    if link.gone(): ...                      # the broker closed the connection

- ``open`` connects and does the handshake with a deadline (the greeting
  and ZMTP READY in one write, the broker's checked as they arrive), then
  sends the MDP READY.
- A send that cannot finish within its deadline (the broker stopped reading
  for longer than a worker may be silent), a reset, or a peer that breaks
  ZMTP or sends an ERROR command marks the link broken: :meth:`gone` says
  so and the worker connects again. No send raises, so the heartbeat thread
  never dies of one.
- The broker's ZMTP heartbeats (PING) are answered PONG when read.
"""
from __future__ import absolute_import, division, print_function

import collections
import errno
import logging
import select
import socket
import time

from protocol import mdp, zmtp
from protocol.errors import ZmtpError

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Any, Dict, List, Optional  # noqa: F401

log = logging.getLogger("protocol.worker")

MAX_MESSAGE = 256 << 20   # a message from the broker beyond this is a broken peer
READ_SIZE = 65536         # under glibc's mmap threshold: one malloc per read, no mmap
CONNECT_TIMEOUT = 2.0
_AGAIN = (errno.EAGAIN, errno.EWOULDBLOCK)


class FdPoller(object):
    """``poll(2)`` over plain descriptors, with :class:`zmq.Poller`'s ``poll`` result shape."""

    def __init__(self):
        # type: () -> None
        self._poll = select.poll()

    def register(self, fd, events=select.POLLIN):
        # type: (int, int) -> None
        self._poll.register(fd, events)

    def poll(self, timeout_ms):
        # type: (int) -> List
        try:
            return self._poll.poll(timeout_ms)
        except (select.error, OSError) as exc:  # 2.7 does not retry EINTR (PEP 475 does)
            if _errno(exc) == errno.EINTR:
                return []
            raise


class DealerStream(object):
    """The broker's side of a plain-socket DEALER link: reading its stream and commands.

    Shared by the worker's and the client's links (:mod:`protocol.zmtpclient`),
    which say what a failure, a completed handshake and a PONG mean to them.
    """

    endpoint = ""
    address = None  # type: Any  # zmtp.parse_endpoint's answer
    max_message = 0
    fd = -1
    linked = False
    pings = 0
    sock = None  # type: Optional[socket.socket]
    _decoder = None  # type: Any  # a zmtp.Decoder per connection
    _inbox = None  # type: Any  # a deque of whole messages not yet taken

    def recv(self):
        # type: () -> Optional[list]
        """The next message from the broker, reading the socket once if none is in hand."""
        if not self._inbox:
            self._read()
        if self._inbox:
            return self._inbox.popleft()
        return None

    def readable(self):
        # type: () -> bool
        """True when a message is already in hand."""
        return bool(self._inbox)

    def _read(self):
        # type: () -> None
        """Read the socket once; whole messages go to the inbox, commands are acted on."""
        sock = self.sock
        if sock is None or self._over():
            return
        try:
            data = sock.recv(READ_SIZE)
        except socket.error as exc:
            code = _errno(exc)
            if code not in _AGAIN and code != errno.EINTR:
                self._fail(u"the connection failed: %s" % (exc,))
            return
        if not data:
            self._fail(u"the broker closed the connection")
            return
        try:
            for item in self._decoder.feed(data):
                if type(item) is list:
                    if not self.linked:
                        raise ZmtpError(u"the broker sent a message before its READY")
                    self._inbox.append(item)
                elif type(item) is zmtp.Command:
                    self._command(item)
        except ZmtpError as exc:  # the owner says it, once per outage
            self._fail(u"%s" % (exc,))

    def _command(self, cmd):
        # type: (zmtp.Command) -> None
        if cmd.name == b"READY":
            if self.linked:
                raise ZmtpError(u"the broker sent READY twice")
            kind = zmtp.parse_properties(cmd.data).get(b"socket-type", b"")
            if kind not in zmtp.PEERS_OF_DEALER:
                raise ZmtpError(u"the broker's socket is a %r; a DEALER needs a ROUTER" % (kind,))
            self.linked = True
            self._on_linked()
        elif cmd.name == b"PING":
            self.pings += 1
            self._send_pong(zmtp.pong(cmd))
        elif cmd.name == b"ERROR":
            raise ZmtpError(u"the broker refused the link: %s" % (zmtp.error_reason(cmd),))
        # PONG and unknown commands are ignored, as RFC 37 asks.

    def _dial(self, timeout):
        # type: (float) -> None
        """Connect to ``self.address`` and send our greeting and READY; ``socket.error`` if refused.

        The socket is non-blocking from then on. A local connect is immediate
        or refused, so ``timeout`` only bounds a pathological one.
        """
        kind, host, port = self.address
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = host  # type: Any
        else:
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                 socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            target = (host, port)
        try:
            sock.settimeout(timeout)
            sock.connect(target)
            sock.setblocking(False)
            sock.send(zmtp.GREETING + zmtp.READY_DEALER)  # 100 bytes into an empty buffer
        except socket.error:
            sock.close()
            raise
        self.sock, self.fd = sock, sock.fileno()
        self.linked = False
        self._decoder = zmtp.Decoder(self.max_message)

    def _handshake(self, timeout):
        # type: (float) -> bool
        """Read until the broker's greeting and READY arrive; False at the deadline or on failure.

        Waited for because libzmq takes a message that arrives before its own
        READY is sent for a broken handshake and drops the connection, and so
        that what is sent next goes out even if nobody reads.
        """
        waiter = select.poll()
        waiter.register(self.fd, select.POLLIN)
        deadline = time.time() + timeout
        while not self.linked and self.sock is not None and not self._over():
            left = deadline - time.time()
            if left <= 0:
                return False
            try:
                waiter.poll(int(left * 1000) + 1)
            except (select.error, OSError) as exc:
                if _errno(exc) != errno.EINTR:
                    raise
            self._read()
        return self.linked

    def _over(self):
        # type: () -> bool
        """True when the connection is known to be over (nothing more is read)."""
        return False

    def _fail(self, why):
        # type: (str) -> None
        raise NotImplementedError

    def _on_linked(self):
        # type: () -> None
        """The broker's READY arrived: the handshake is complete."""

    def _send_pong(self, data):
        # type: (bytes) -> None
        raise NotImplementedError


class ZmtpWorkerLink(DealerStream):
    """The worker's DEALER to one local broker, as a plain socket; see the module docstring."""

    def __init__(self, endpoint, max_message=MAX_MESSAGE, connect_timeout=CONNECT_TIMEOUT):
        # type: (str, int, float) -> None
        self.endpoint = endpoint
        self.address = zmtp.parse_endpoint(endpoint)
        self.max_message = max_message
        self.connect_timeout = connect_timeout
        self.sock = None  # type: Optional[socket.socket]
        self.fd = -1
        self.send_timeout = 5.0
        self.linked = False     # the broker's greeting and READY arrived on this socket
        self.broken = None      # type: Optional[str]  # why the connection is over
        self.pings = 0
        self.last_sent = 0.0
        self.last_recv = 0.0
        self._decoder = zmtp.Decoder(max_message)
        self._inbox = collections.deque()  # type: collections.deque

    @property
    def is_open(self):
        # type: () -> bool
        return self.sock is not None

    def open(self, service, metadata, interval):
        # type: (bytes, dict, float) -> None
        """Connect, do the ZMTP handshake, then register (MDP READY).

        Raises ``socket.error`` when nothing listens and :class:`ZmtpError`
        when the peer does not finish a ZMTP handshake in time.
        """
        self.broken = None
        self._inbox.clear()
        self._dial(self.connect_timeout)
        if not self._handshake(self.connect_timeout):
            why = self.broken or u"no ZMTP handshake within %.1f s" % (self.connect_timeout,)
            self.close()
            raise ZmtpError(u"%s: %s" % (self.endpoint, why))
        # A broker that stops reading for as long as a silent worker is given is gone.
        self.send_timeout = max(1.0, mdp.LIVENESS * interval)
        self.send(mdp.worker_ready(service, metadata))
        self.last_recv = time.time()

    def poller(self):
        # type: () -> FdPoller
        """A poller watching this connection (the worker adds its wake pipe)."""
        poller = FdPoller()
        poller.register(self.fd)
        return poller

    def signalled(self, events):
        # type: (Dict) -> bool
        return self.fd in events

    def close(self):
        # type: () -> None
        """Drop the connection (the broker requeues what this worker held)."""
        sock, self.sock, self.fd = self.sock, None, -1
        if sock is not None:
            sock.close()

    # -------------------------------------------------------------- frames --
    def send(self, frames):
        # type: (list) -> None
        """Write one message and restart the heartbeat clock; a failure breaks the link."""
        self._write(zmtp.encode(frames))
        self.last_sent = time.time()

    def _write(self, data):
        # type: (bytes) -> None
        sock = self.sock
        if sock is None or self.broken is not None:
            return
        try:
            first = sock.send(data)
        except socket.error:
            first = 0  # the loop below sorts out why
        if first == len(data):
            return  # the usual case: the kernel took it all at once
        view = memoryview(data)[first:]
        deadline = None  # type: Optional[float]
        while view:
            try:
                sent = sock.send(view)
            except socket.error as exc:
                code = _errno(exc)
                if code == errno.EINTR:
                    continue
                if code not in _AGAIN:
                    self._break(u"the connection failed: %s" % (exc,))
                    return
                sent = 0
            view = view[sent:]
            if not view:
                return
            now = time.time()
            if deadline is None or sent:  # the clock runs while the broker takes nothing
                deadline = now + self.send_timeout
            if now >= deadline:
                self._break(u"the broker read nothing for %.1f s" % (self.send_timeout,))
                return
            # The kernel buffer is full: wait for room, never past the deadline.
            waiter = select.poll()
            waiter.register(self.fd, select.POLLOUT)
            try:
                waiter.poll(int((deadline - now) * 1000) + 1)
            except (select.error, OSError) as exc:
                if _errno(exc) != errno.EINTR:
                    raise

    # What DealerStream asks of its link.
    def _over(self):
        # type: () -> bool
        return self.broken is not None

    def _fail(self, why):
        # type: (str) -> None
        self._break(why)

    def _send_pong(self, data):
        # type: (bytes) -> None
        self._write(data)

    def _break(self, why):
        # type: (str) -> None
        if self.broken is None:
            self.broken = why
            log.debug("broker link %s: %s", self.endpoint, why)

    # ---------------------------------------------------------------- state --
    def gone(self):
        # type: () -> bool
        """True once the connection is over (closed, reset, refused or stalled)."""
        return self.broken is not None

    def leave(self, linger_ms):
        # type: (int) -> None
        """DISCONNECT, then close once it and the last replies are written.

        Whatever the broker sent meanwhile is read first: a TCP socket closed
        with unread data is reset, and a reset may cost the peer our last bytes.
        """
        self.send_timeout = min(self.send_timeout, linger_ms / 1000.0)
        self.send(mdp.disconnect())
        sock = self.sock
        if sock is not None:
            while self.broken is None:
                try:
                    if not sock.recv(READ_SIZE):
                        break
                except socket.error:
                    break
            try:
                sock.shutdown(socket.SHUT_WR)
            except socket.error:
                pass  # the broker is gone already
        self.close()


def _errno(exc):
    # type: (BaseException) -> Optional[int]
    """The errno of a socket/select error on 2.7 (args tuple) and 3.x (attribute)."""
    code = getattr(exc, "errno", None)
    if code is None and getattr(exc, "args", None):
        code = exc.args[0]
    return code
