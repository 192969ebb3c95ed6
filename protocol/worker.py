"""An MDP/0.1 worker that serves a table of functions or an envelope handler (2.7 and 3.x).

::

    from protocol.worker import Worker, current

    def add(a, b):
        return a + b

    w = Worker("tcp://127.0.0.1:5555", u"calc", {u"add": add})
    w.install_signal_handlers()   # SIGTERM/SIGINT: finish in-flight work, then DISCONNECT
    w.run()                       # blocks until stop(); reconnects when the broker restarts

Broker restarts (SPEC 2.2): a socket monitor reports the connection to the
broker closing. The worker then finishes the handler in hand, drops the
requests it has not started (the broker that sent them is gone, and their
clients were answered or sent them again) and registers again at once.

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

import collections
import errno
import fcntl
import logging
import os
import platform
import signal
import socket
import sys
import threading
import time
import traceback

import zmq
from zmq.utils.monitor import recv_monitor_message

from protocol import brokers, codec, mdp, trace
from protocol._compat import text_type
from protocol.errors import (
    Cancelled,
    EnvelopeError,
    ProtocolError,
    RemoteError,
    Timeout,
    UnknownMethod,
)
from protocol.streaming import ReplyStream

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Mapping  # noqa: F401

log = logging.getLogger("protocol.worker")

# Kinds that are never a request (SPEC 3.3): a worker refuses them with envelope.
_NOT_REQUESTS = (u"result", u"error", u"http-response", u"http-body", u"event")

_local = threading.local()


class CallContext(object):
    """The request being handled on this thread: id, request id, deadline (ms), method,
    and ``trace``, this worker's span of the request's W3C trace (SPEC 3.9)."""

    __slots__ = ("_env", "_trace", "deadline", "id", "method", "rid", "shadow")

    def __init__(self, env):
        # type: (codec.Envelope) -> None
        self.id = env.id
        self.rid = env.rid or env.id
        self.deadline = env.deadline
        self.method = env.method
        self.shadow = env.shadow
        self._env = env
        self._trace = None  # type: trace.TraceContext

    @property
    def trace(self):
        # type: () -> trace.TraceContext
        """This hop's span: made on first use, so a request that never asks costs nothing."""
        if self._trace is None:
            self._trace = trace.from_envelope(self._env)
        return self._trace

    @property
    def sticky(self):
        # type: () -> str
        """The request's traffic-split key (SPEC 2.14), or None; nested calls carry it on."""
        return self._env.sticky

    def remaining(self):
        # type: () -> float
        """Seconds left before the deadline (None when the request has none)."""
        if self.deadline is None:
            return None
        return (self.deadline - mdp.now_ms()) / 1000.0


def _bind_context(env):
    # type: (codec.Envelope) -> None
    """Make ``env`` the current request of this thread (None: no request)."""
    _local.ctx = CallContext(env) if env is not None else None


def _restore_context(ctx):
    # type: (CallContext) -> None
    """Make ``ctx`` (from :func:`current`, or None) the current request of this thread again."""
    _local.ctx = ctx


def current():
    # type: () -> CallContext
    """The :class:`CallContext` of the request this thread is handling, or None."""
    return getattr(_local, "ctx", None)


def inherited(rid, traceparent, tracestate):
    # type: (str, str, str) -> tuple
    """``(rid, traceparent, tracestate)``: what the caller gave, else the current request's
    id and this worker's span (a job or an event sent inside a handler joins its trace)."""
    ctx = current()
    if ctx is not None:
        if rid is None:
            rid = ctx.rid
        if traceparent is None:
            traceparent, tracestate = ctx.trace.traceparent, ctx.trace.tracestate
    return rid, traceparent, tracestate


def _text(exc):
    # type: (BaseException) -> str
    try:
        return text_type(exc)
    except UnicodeError:  # a py2 exception holding non-ASCII bytes
        return text_type(repr(exc))


def _traceback_text():
    # type: () -> str
    text = traceback.format_exc()
    if isinstance(text, bytes):
        return text.decode("utf-8", "replace")
    return text


def error_envelope(request_id, exc):
    # type: (str, BaseException) -> codec.Envelope
    """The error envelope describing ``exc``, as the answer to ``request_id``."""
    if isinstance(exc, ProtocolError):
        wire = exc.to_wire()
    else:
        wire = RemoteError(_text(exc), type=text_type(type(exc).__name__),
                           traceback=_traceback_text()).to_wire()
    return codec.Envelope(u"error", id=request_id, error=wire)


class Worker(object):
    """Serves one service on a broker; see the module docstring."""

    def __init__(self, endpoint, service, table=None, envelope_handler=None, credit=1,
                 context=None, curve=None, max_backoff=2.0, on_registered=None):
        # type: (str, str, dict, object, int, zmq.Context, tuple, float, object) -> None
        if (table is None) == (envelope_handler is None):
            raise TypeError("give exactly one of table and envelope_handler")
        self.endpoint = endpoint
        self.service = service.encode("utf-8") if isinstance(service, text_type) else service
        self.table = dict(table or {})
        self.envelope_handler = envelope_handler
        self.credit = int(credit)
        self.ctx = context or zmq.Context.instance()
        self.curve = curve
        self.max_backoff = max_backoff
        self.on_registered = on_registered
        self.interval = mdp.DEFAULT_INTERVAL_MS / 1000.0
        self.handled = 0
        self.connected = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sock = None  # type: zmq.Socket
        self._monitor = None  # type: zmq.Socket
        self._linked = False  # a handshake with the broker succeeded on this socket
        self._in_handler = False
        self._last_sent = 0.0
        self._last_recv = 0.0
        # Requests received and not started yet, oldest first: (client, envelope).
        self._backlog = collections.deque()  # type: collections.deque
        self._stream = None  # type: ReplyStream
        self._leaving = False
        self._accepting = True
        self._abandoned = []  # type: list
        self._marks_more = bool(getattr(envelope_handler, "marks_more", False))
        self._wake_r = self._wake_w = -1  # a stream's thread wakes the socket thread (run())

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
            while not self._stopping.is_set():
                self._lock.acquire()
                try:
                    self._connect()
                    outcome = self._serve()
                finally:
                    self._close()
                    self._lock.release()
                if outcome == "stopped":
                    break
                if outcome == "disconnected":
                    backoff = 0.0
                log.warning("broker %s lost (%s); reconnecting in %.2fs",
                            self.endpoint, outcome, backoff)
                self._stopping.wait(backoff)
                backoff = min(self.max_backoff, max(0.1, backoff * 2))
        finally:
            self._stopping.set()
            beat.join(1.0)
            if all(stream.join(1.0) for stream in self._abandoned):
                os.close(self._wake_r)  # a stream thread still running may yet write
                os.close(self._wake_w)

    # -------------------------------------------------------------- socket --
    def _connect(self):
        # type: () -> None
        sock = self.ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.sndhwm = sock.rcvhwm = 10000
        if self.curve is not None:
            server_public, public, secret = self.curve
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = \
                server_public, public, secret
        # A close counts only after a handshake: a refused one (CURVE) is no broker loss.
        self._monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED
                                                | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._linked = False
        if self.endpoint.startswith("tcp://"):
            brokers.tune(sock, self.interval)  # a silent link is noticed, not waited out
        sock.connect(self.endpoint)
        self._sock = sock
        metadata = {u"runtime": u"%s-%s" % (platform.python_implementation().lower(),
                                            platform.python_version()),
                    u"pid": os.getpid(), u"credit": self.credit,
                    u"methods": sorted(text_type(k) for k in self.table),
                    u"cancel": True, u"heartbeat_ms": int(self.interval * 1000)}
        self._send(mdp.worker_ready(self.service, metadata))
        self._last_recv = time.time()

    def _close(self):
        # type: () -> None
        self.connected.clear()
        # What the old connection held is the broker's to requeue or fail now.
        self._backlog.clear()
        if self._stream is not None:
            self._stream.cancel()
            self._abandoned = [s for s in self._abandoned if not s.join(0)] + [self._stream]
            self._stream = None
        if self._monitor is not None:
            if self._sock is not None:
                self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def _send(self, frames):
        # type: (list) -> None
        mdp.send_frames(self._sock, frames)
        self._last_sent = time.time()

    def _heartbeat_loop(self):
        # type: () -> None
        """Beat for the main thread while it is inside a handler (it beats itself when idle)."""
        while not self._stopping.wait(self.interval / 4.0):
            if not self._in_handler or time.time() - self._last_sent < self.interval:
                continue
            with self._lock:
                if self._in_handler and self._sock is not None:
                    self._send(mdp.heartbeat())

    # ---------------------------------------------------------------- loop --
    def _serve(self):
        # type: () -> str
        """Serve on the current socket; return why it ended: stopped, lost or disconnected."""
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        self._leaving = False
        self._accepting = True
        while True:
            if self._stopping.is_set() and not self._leaving:
                # Answer what was already received (at most the credit's worth), then leave.
                self._leaving = True
                for _ in range(self.credit):
                    if not self._sock.poll(0, zmq.POLLIN):  # not the wake pipe: the socket
                        break
                    self._on_message(mdp.recv_frames(self._sock))
                self._accepting = False
            if self._stream is None and self._backlog:
                self._start(*self._backlog.popleft())
            if self._stream is None and self._backlog:
                timeout = 0  # read the socket (cancels) before starting the next one
            elif self._leaving and self._stream is None:
                return self._leave()
            else:
                wait = self._last_sent + self.interval - time.time()
                timeout = max(0, min(int(wait * 1000), 100))
            events = dict(poller.poll(timeout))
            if self._monitor in events and self._broker_gone():
                # Whatever is still queued came from a broker that no longer exists.
                return "disconnected"
            if self._wake_r in events:
                self._drain_wake()
                self._send_stream()
            if self._sock in events:
                # Until ZMQ_EVENTS says the queue is empty: cheaper than ending on Again.
                while True:
                    try:
                        frames = mdp.recv_frames(self._sock, mdp.NOBLOCK)
                    except zmq.Again:
                        break
                    outcome = self._on_message(frames)
                    if outcome:
                        return outcome
                    # A handler may have run long: the broker may have died meanwhile.
                    # (ZMQ_EVENTS, not Socket.poll: that builds a Poller per call.)
                    if mdp.readable(self._monitor) and self._broker_gone():
                        return "disconnected"
                    if not mdp.readable(self._sock):
                        break
            now = time.time()
            if now - self._last_sent >= self.interval:
                self._send(mdp.heartbeat())
            if now - self._last_recv > mdp.LIVENESS * self.interval:
                return "lost"

    def _broker_gone(self):
        # type: () -> bool
        """True when the monitor reports the connection to the broker closed."""
        gone = False
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)[u"event"]
            except zmq.Again:
                return gone
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._linked = True
            elif event == zmq.EVENT_DISCONNECTED and self._linked:
                self._linked, gone = False, True

    def _leave(self):
        # type: () -> str
        self._send(mdp.disconnect())
        # The last replies and the DISCONNECT must reach the broker, or what they answer
        # would be reported lost; linger briefly instead of discarding them at close.
        self._sock.disable_monitor()
        self._sock.close(linger=int(min(self.interval, 1.0) * 1000))
        self._sock = None
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
        stalled = now - self._last_sent > mdp.LIVENESS * self.interval
        self._last_recv = now
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
            self._receive(client, body)
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

    def _receive(self, client, body):
        # type: (bytes, list) -> None
        """A REQUEST: a cancel acts at once; anything else waits its turn in the backlog."""
        try:
            env = codec.decode(body)
        except EnvelopeError as exc:
            self.handled += 1
            # SPEC 3.4: the request's id whenever the header frame names one, as the
            # broker would; a fresh id (error_envelope's default) otherwise.
            self._reply(client, error_envelope(codec.header_id(body[0]) if body else None, exc))
            return
        if env.kind in _NOT_REQUESTS or (self.envelope_handler is None
                                         and env.kind == u"http"):
            self._reply(client, error_envelope(env.id, self._wrong_kind(env.kind)))
            return
        if env.kind == u"cancel":
            self._cancel(client, env.id)
        elif self._accepting:
            self._backlog.append((client, env))
        # else: it came after we began to leave; the broker requeues it at our DISCONNECT

    def _cancel(self, client, request_id):
        # type: (bytes, str) -> None
        """SPEC 2.11: not started -> answered cancelled; streaming -> stopped; else ignored."""
        for item in self._backlog:
            if item[0] == client and item[1].id == request_id:
                self._backlog.remove(item)
                self._reply(client, error_envelope(request_id, Cancelled(
                    u"the client cancelled the request before it started")))
                return
        stream = self._stream
        if stream is not None and stream.key == (client, request_id):
            stream.cancel()
            self._send_stream()  # parts queued but not sent are dropped now

    def _start(self, client, env):
        # type: (bytes, codec.Envelope) -> None
        self.handled += 1
        if env.deadline is not None and env.deadline <= mdp.now_ms():
            self._reply(client, error_envelope(env.id, Timeout(
                u"the deadline passed before the worker could start it")))
            return
        _local.ctx = CallContext(env)
        try:
            if self.envelope_handler is not None:
                self._begin_stream(client, env)
            else:
                self._reply(client, self._unlocked(self._call, env))  # type: ignore[arg-type]
        finally:
            _local.ctx = None

    def _wrong_kind(self, kind):
        # type: (str) -> EnvelopeError
        """The ``envelope`` error for a request of a kind this worker does not serve (SPEC 3.3)."""
        if kind in _NOT_REQUESTS:
            return EnvelopeError(u"header.kind: '%s' is not a request kind" % (kind,))
        return EnvelopeError(u"header.kind: service %s serves call requests, not '%s'" % (
            self.service.decode("utf-8", "replace"), kind))

    def _call(self, env):
        # type: (codec.Envelope) -> codec.Envelope
        try:
            fn = self.table.get(env.method)
            if fn is None:
                raise UnknownMethod(u"%s has no method %r" % (
                    self.service.decode("utf-8", "replace"), env.method), type=u"UnknownMethod")
            params = env.payload
            if params is None:
                result = fn()
            elif isinstance(params, dict):
                result = fn(**dict((str(k), v) for k, v in params.items()))
            elif isinstance(params, list):
                result = fn(*params)
            else:
                result = fn(params)
            return codec.Envelope(u"result", id=env.id, payload=result)
        except Exception as exc:  # every handler failure becomes an error envelope
            return error_envelope(env.id, exc)

    def _begin_stream(self, client, env):
        # type: (bytes, codec.Envelope) -> None
        """Send the first part here; a reply that goes on is handed to a ReplyStream."""
        sentinel = object()
        try:
            it = iter(self._unlocked(self.envelope_handler, env))  # type: ignore[call-overload]
            first = self._unlocked(next, it, sentinel)
            if first is sentinel:
                raise RemoteError(u"the handler produced no reply", type=u"RuntimeError")
            following = None
            if not self._marks_more:
                following = self._unlocked(next, it, sentinel)
                first.more = following is not sentinel  # type: ignore[attr-defined]
            first.id = env.id  # type: ignore[attr-defined]
            self._reply(client, first)  # type: ignore[arg-type]
        except Exception as exc:  # a failing stream ends with an error envelope
            self._reply(client, error_envelope(env.id, exc))
            return
        if not first.more:  # type: ignore[attr-defined]
            # Run the handler to its end, so it releases what it holds (PEP 3333 close()).
            try:
                self._unlocked(next, it, sentinel)
            except Exception:  # the reply is complete; a failure now can only be logged
                log.exception("finishing the handler of %s failed", env.id)
            return
        # Joining parts is for HTTP bodies (SPEC 6.3); a generic handler's parts are its own.
        self._stream = ReplyStream(client, env, it, self._wake, self._marks_more,
                                   lookahead=following, bind=_bind_context,
                                   join=self._marks_more)
        self._stream.start()

    def _send_stream(self):
        # type: () -> None
        """Send what the stream's thread has queued; forget the stream once it has ended."""
        stream = self._stream
        if stream is None:
            return
        for part in stream.take():
            self._reply(stream.client, part)
        if stream.finished():
            self._stream = None

    def _reply(self, client, env):
        # type: (bytes, codec.Envelope) -> None
        try:
            body = codec.encode(env)
        except EnvelopeError as exc:
            body = codec.encode(error_envelope(env.id, RemoteError(
                u"the handler's answer cannot be encoded: %s" % (exc.message,),
                type=u"EnvelopeError")))
        self._send(mdp.worker_reply(client, body))


def sd_notify(address, message=b"READY=1"):
    # type: (str, bytes) -> bool
    """Send one sd_notify(3) datagram to ``address``; False when nobody listens there.

    ``address`` is what ``$NOTIFY_SOCKET`` holds: a path, or ``@name`` for
    Linux's abstract namespace. Never raises: readiness is advice.
    """
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.sendto(message, target)
        return True
    except (OSError, socket.error):
        return False
    finally:
        sock.close()


def notify_from(environ):
    # type: (Mapping[str, str]) -> object
    """The ``on_registered`` callback for a worker started with ``$NOTIFY_SOCKET``, or None."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return None
    message = ("READY=1\nMAINPID=%d" % os.getpid()).encode("ascii")
    return lambda: sd_notify(address, message)


def load_target(spec):
    # type: (str) -> object
    """Import ``module:attribute`` and return the attribute."""
    import importlib
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError("expected module:ATTRIBUTE, got %r" % (spec,))
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def main(argv=None):
    # type: (list) -> int
    """The ``python -m protocol.worker`` command line."""
    import argparse

    from protocol.multiworker import add_broker_arguments, serve_from_args
    parser = argparse.ArgumentParser(prog="python -m protocol.worker")
    add_broker_arguments(parser)
    parser.add_argument("--service", required=True)
    parser.add_argument("--credit", type=int, default=1)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("target", help="module:TABLE (a dict of callables) or "
                                       "module:HANDLER (an envelope handler)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    from protocol import logcontext
    logcontext.install()  # every line about a request names its rid and trace id
    target = load_target(args.target)
    if isinstance(target, dict):
        return serve_from_args(parser, args, table=target, credit=args.credit)
    return serve_from_args(parser, args, envelope_handler=target, credit=args.credit)


if __name__ == "__main__":
    # Run the copy in sys.modules, so handlers that import protocol.worker share current().
    from protocol.worker import main as _main
    sys.exit(_main())
