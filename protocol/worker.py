"""An MDP/0.1 worker that serves a table of functions or an envelope handler (2.7 and 3.x).

::

    from protocol.worker import Worker, current

    def add(a, b):
        return a + b

    w = Worker("tcp://127.0.0.1:5555", u"calc", {u"add": add})
    w.install_signal_handlers()   # SIGTERM/SIGINT: finish in-flight work, then DISCONNECT
    w.run()                       # blocks until stop(); reconnects when the broker restarts

The link to the broker (``link=``, ``--link`` or ``$GATEWAY_BROKER_LINK``):
for a broker on this host with no CURVE (``ipc://``, loopback ``tcp://``) the
worker speaks ZMTP itself on its own thread (:mod:`protocol.zmtplink`), so a
request costs no round trips through libzmq's I/O thread; any other broker
gets a libzmq DEALER (:mod:`protocol.workerlink`). Both behave alike.

Broker restarts (SPEC 2.2): the link reports the connection to the
broker closing (a socket monitor, or the ZMTP socket's own end). The
worker then finishes the handler in hand, drops the requests it has not
started (the broker that sent them is gone, and their clients were
answered or sent them again) and registers again at once.

or from a shell (both interpreters; the arbiter uses this)::

    python -m protocol.worker --broker tcp://127.0.0.1:5555 --service calc mymod:TABLE

``--broker`` (default ``$GATEWAY_BROKER``) may name several brokers, separated
by commas: the command line then runs one Worker per broker
(:mod:`protocol.multiworker`, SPEC 2.15). A non-loopback broker needs CURVE
keys (``--curve-server-key``, ``--curve-secret``, or ``$GATEWAY_CURVE_SERVER_KEY``
and ``$GATEWAY_CURVE_SECRET``); without them the command exits 2.

Readiness: ``on_registered`` runs once, when the broker first confirms the
registration (its HEARTBEAT carrying the interval). The command line uses it
to send ``READY=1`` to ``$NOTIFY_SOCKET`` (sd_notify), so a supervisor learns
that this very process takes traffic before it can serve its first request.

Calls: params that are an object become keyword arguments, a list becomes
positional arguments, null means no arguments, any other value is the one
argument (SPEC 7.1). A body that does not decode is answered ``envelope``
with the id its header frame names, else a fresh one (SPEC 3.4); a reply
kind, or an ``http`` request to a table, is ``envelope`` too. The return value is the
result; an exception becomes an error envelope (a ProtocolError keeps its
code, anything else is ``remote`` with type, message and traceback text).
With ``envelope_handler`` (Envelope -> iterable of Envelopes) the worker
sends each reply as it comes, all but the last with ``more=true``: this is
how a WSGI host streams a response. A handler whose function has
``marks_more = True`` sets ``more`` on its parts itself, so each part is sent
the moment it is produced, without waiting for the next one to learn whether
it was the last (:mod:`protocol.wsgi` does this).

Cancels (SPEC 2.11): READY says ``"cancel": true``. A cancel for a request
received but not started answers it ``cancelled`` at once; a stream stops
before its next part (its iterator is closed) and ends with a ``cancelled``
error; a call already running finishes as usual; an unknown id is ignored.

Threads: the thread in :meth:`Worker.run` owns the socket and runs handlers
one at a time. While a handler runs it hands the socket, under a lock, to a
heartbeat thread, so a long handler is not declared dead. Once a stream's
first part is sent, the rest is produced by a thread of its own
(:mod:`protocol.streaming`) while this thread sends the parts, reads the
socket and beats; requests that arrive meanwhile wait their turn. During a handler
:func:`current` gives the request's deadline, request id and W3C trace span
(``current().trace``, SPEC 3.9), and ``protocol.client.Client.call``,
``Queue.enqueue`` and ``Publisher.publish`` use them by default, so nested
work carries the remaining deadline and the trace on. A request whose
deadline has passed is answered with a ``timeout`` error and never started.
"""
from __future__ import absolute_import, division, print_function

import errno
import fcntl
import logging
import os
import platform
import runpy
import signal
import socket
import sys
import threading
import time

import zmq

from protocol import mdp
from protocol._compat import text_type

# The request context lives in protocol.context (below this module, so that
# the client, the queue and the log filter can read it without importing the
# worker); these names stay importable from here and from ``protocol``.
from protocol.context import CallContext as CallContext
from protocol.context import _bind_context as _bind_context
from protocol.context import _restore_context as _restore_context
from protocol.context import current as current
from protocol.context import inherited as inherited
from protocol.errors import EnvelopeError, ZmtpError
from protocol.handling import Requests
from protocol.replies import error_envelope as error_envelope

# Readiness notices have a module of their own; these stay importable from here.
from protocol.sdnotify import notify_from as notify_from
from protocol.sdnotify import sd_notify as sd_notify
from protocol.workerlink import open_link

log = logging.getLogger("protocol.worker")


class Worker(object):
    """Serves one service on a broker; see the module docstring."""

    def __init__(self, endpoint, service, table=None, envelope_handler=None, credit=1,
                 context=None, curve=None, max_backoff=2.0, on_registered=None, link=None):
        # type: (str, str, dict, object, int, zmq.Context, tuple, float, object, str) -> None
        if (table is None) == (envelope_handler is None):
            raise TypeError("give exactly one of table and envelope_handler")
        self.endpoint = endpoint
        self.service = service.encode("utf-8") if isinstance(service, text_type) else service
        self.table = dict(table or {})
        self.envelope_handler = envelope_handler
        self.credit = int(credit)
        self.curve = curve
        self.max_backoff = max_backoff
        self.on_registered = on_registered
        self.interval = mdp.DEFAULT_INTERVAL_MS / 1000.0
        self.connected = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_handler = False
        self._leaving = False
        self._wake_r = self._wake_w = -1  # a stream's thread wakes the socket thread (run())
        self._refusal = None  # type: object  # why the last connection attempt failed
        # Two collaborators: the connection to the broker, and the requests it gives us.
        self._link = open_link(endpoint, curve, context, link)
        self._requests = Requests(self.service, self.table, envelope_handler,
                                  self._link.send, self._unlocked, self._wake)

    @property
    def handled(self):
        # type: () -> int
        """Requests taken in hand (started, refused or answered at once)."""
        return self._requests.handled

    # ---------------------------------------------------------- lifecycle --
    def install_signal_handlers(self):
        # type: () -> None
        """Make SIGTERM and SIGINT stop the worker gracefully (call from the main thread)."""
        def handler(signum, frame):
            # type: (int, object) -> None
            self.stop()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def stop(self):
        # type: () -> None
        """Finish the request in hand, answer the ones already received, then DISCONNECT."""
        self._stopping.set()

    def run(self):
        # type: () -> None
        """Serve until :meth:`stop`, reconnecting with backoff when the broker goes away."""
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        beat = threading.Thread(target=self._heartbeat_loop, name="worker-heartbeat")
        beat.daemon = True
        beat.start()
        backoff = 0.0
        try:
            refused = 0
            while not self._stopping.is_set():
                self._lock.acquire()
                try:
                    outcome = self._connect() or self._serve()
                finally:
                    self._close()
                    self._lock.release()
                if outcome == "stopped":
                    break
                if outcome == "refused":
                    # Nothing listens yet, or any more: try again as libzmq would (every
                    # 100 ms), and say so once the broker has been away for a while.
                    refused += 1
                    if refused == 20:
                        log.warning("broker %s: cannot connect (%s); retrying every 0.1 s",
                                    self.endpoint, self._refusal)
                    self._stopping.wait(0.1)
                    continue
                refused = 0
                if outcome == "disconnected":
                    backoff = 0.0
                log.warning("broker %s lost (%s); reconnecting in %.2fs",
                            self.endpoint, outcome, backoff)
                self._stopping.wait(backoff)
                backoff = min(self.max_backoff, max(0.1, backoff * 2))
        finally:
            self._stopping.set()
            beat.join(1.0)
            if all(stream.join(1.0) for stream in self._requests.abandoned):
                os.close(self._wake_r)  # a stream thread still running may yet write
                os.close(self._wake_w)

    # -------------------------------------------------------------- socket --
    def _connect(self):
        # type: () -> str
        """Connect and register; ``refused`` when no broker takes the connection."""
        metadata = {u"runtime": u"%s-%s" % (platform.python_implementation().lower(),
                                            platform.python_version()),
                    u"pid": os.getpid(), u"credit": self.credit,
                    u"methods": sorted(text_type(k) for k in self.table),
                    u"cancel": True, u"heartbeat_ms": int(self.interval * 1000)}
        try:
            self._link.open(self.service, metadata, self.interval)
        except (socket.error, OSError, ZmtpError) as exc:  # a plain-socket link connects at once
            self._refusal = exc
            log.debug("broker %s: cannot connect (%s)", self.endpoint, exc)
            return "refused"
        return ""

    def _close(self):
        # type: () -> None
        self.connected.clear()
        self._requests.drop()
        self._link.close()

    def _heartbeat_loop(self):
        # type: () -> None
        """Beat for the main thread while it is inside a handler (it beats itself when idle)."""
        while not self._stopping.wait(self.interval / 4.0):
            if not self._in_handler or time.time() - self._link.last_sent < self.interval:
                continue
            with self._lock:
                if self._in_handler and self._link.is_open:
                    self._link.send(mdp.heartbeat())

    # ---------------------------------------------------------------- loop --
    def _serve(self):
        # type: () -> str
        """Serve on the current socket; return why it ended: stopped, lost or disconnected."""
        link, requests = self._link, self._requests
        poller = link.poller()
        poller.register(self._wake_r, zmq.POLLIN)
        self._leaving = False
        requests.accepting = True
        while True:
            if self._stopping.is_set() and not self._leaving:
                # Answer what was already received (at most the credit's worth), then leave.
                self._leaving = True
                for _ in range(self.credit):
                    frames = link.recv()
                    if frames is None:
                        break
                    self._on_message(frames)
                requests.accepting = False
            requests.start_next()
            if requests.waiting():
                timeout = 0  # read the socket (cancels) before starting the next one
            elif self._leaving and requests.stream is None:
                return self._leave()
            else:
                wait = link.last_sent + self.interval - time.time()
                timeout = max(0, min(int(wait * 1000), 100))
            events = dict(poller.poll(timeout))
            if link.gone():
                # Whatever is still queued came from a broker that no longer exists.
                return "disconnected"
            if self._wake_r in events:
                self._drain_wake()
                requests.send_stream()
            if link.signalled(events):
                # Every message in hand: cheaper than polling again for each.
                while True:
                    frames = link.recv()
                    if frames is None:
                        break
                    outcome = self._on_message(frames)
                    if outcome:
                        return outcome
                    # A handler may have run long: the broker may have died meanwhile.
                    if link.gone():
                        return "disconnected"
                    if not link.readable():
                        break
                if link.gone():
                    return "disconnected"
            now = time.time()
            if now - link.last_sent >= self.interval:
                link.send(mdp.heartbeat())
            if now - link.last_recv > mdp.LIVENESS * self.interval:
                return "lost"

    def _leave(self):
        # type: () -> str
        self._link.leave(int(min(self.interval, 1.0) * 1000))
        return "stopped"

    def _drain_wake(self):
        # type: () -> None
        try:
            os.read(self._wake_r, 4096)
        except OSError:
            pass

    def _wake(self):
        # type: () -> None
        """Wake the socket thread (called by a stream's thread)."""
        try:
            os.write(self._wake_w, b"\0")
        except OSError as exc:  # a full pipe already means "wake up"; closed: we are gone
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBADF):
                raise

    def _on_message(self, frames):
        # type: (list) -> str
        try:
            command, rest = mdp.split_worker(frames)
        except EnvelopeError as exc:
            log.warning("ignoring a malformed message from the broker: %s", exc)
            return ""
        now = time.time()
        stalled = now - self._link.last_sent > mdp.LIVENESS * self.interval
        self._link.last_recv = now
        if command == mdp.REQUEST:
            if stalled:
                # We were frozen (SIGSTOP, swap) long enough for the broker to give our
                # requests away: executing them now could run them twice.
                return "lost"
            try:
                client, body = mdp.split_address(rest)
            except EnvelopeError as exc:  # no client address, so nobody to answer
                log.warning("dropping a malformed REQUEST from the broker: %s", exc)
                return ""
            self._requests.receive(client, body)
        elif command == mdp.HEARTBEAT:
            interval = mdp.parse_interval(rest)
            if interval is not None:
                self.interval = interval / 1000.0
                self.connected.set()
                if self.on_registered is not None:
                    callback, self.on_registered = self.on_registered, None
                    callback()  # type: ignore[operator]
        elif command == mdp.DISCONNECT:
            return "disconnected"
        return ""

    # ------------------------------------------------------------ requests --
    def _unlocked(self, fn, *args):
        # type: (object, object) -> object
        """Run handler code without the socket lock, so the heartbeat thread can beat."""
        self._in_handler = True
        self._lock.release()
        try:
            return fn(*args)  # type: ignore[operator]
        finally:
            self._lock.acquire()
            self._in_handler = False


__all__ = ["CallContext", "Worker", "current", "error_envelope", "inherited", "notify_from",
           "sd_notify"]


if __name__ == "__main__":
    # ``python -m protocol.worker`` is ``python -m protocol worker``. The command
    # line lives above this module (protocol.multiworker runs the Workers), and
    # the package's entry runs it on the copy of this module in sys.modules, so
    # handlers that import protocol.worker share current() with the worker serving them.
    sys.argv[1:1] = ["worker"]
    runpy.run_module("protocol", run_name="__main__", alter_sys=True)
