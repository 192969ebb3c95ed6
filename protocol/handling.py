"""What a worker does with the requests the broker gives it (2.7 and 3.x; SPEC 2.11, 3.3, 7.1).

::

    requests = Requests(service, table, None, send, unlocked, wake)
    requests.receive(client, body)     # a REQUEST: decoded, then backlogged or cancelled
    requests.start_next()              # run the oldest waiting request
    requests.send_stream()             # a stream's thread queued parts: send them

A call's params that are an object become keyword arguments, a list becomes
positional arguments, null means no arguments, any other value is the one
argument (SPEC 7.1). A body that does not decode is answered ``envelope``
with the id its header frame names, else a fresh one (SPEC 3.4). With an
``envelope_handler`` the first reply part is sent here and a reply that goes
on is produced by a :class:`~protocol.streaming.ReplyStream` on a thread of
its own. A request whose deadline has passed is answered ``timeout`` and
never started. The worker (:class:`protocol.worker.Worker`) owns the socket
and hands in ``send(frames)``, ``unlocked(fn, *args)`` (run handler code
without its socket lock, so it keeps beating) and ``wake()`` (for the
stream's thread).
"""
from __future__ import absolute_import, division, print_function

import collections
import logging

from protocol import codec, mdp
from protocol.context import _bind_context
from protocol.errors import Cancelled, EnvelopeError, RemoteError, Timeout, UnknownMethod
from protocol.replies import error_envelope
from protocol.streaming import ReplyStream

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Callable  # noqa: F401

log = logging.getLogger("protocol.worker")

# Kinds that are never a request (SPEC 3.3): a worker refuses them with envelope.
NOT_REQUESTS = (u"result", u"error", u"http-response", u"http-body", u"event")


class Requests(object):
    """The backlog of received requests, the one running, and the replies they send."""

    def __init__(self, service, table, envelope_handler, send, unlocked, wake):
        # type: (bytes, dict, object, Callable[[list], None], Callable[..., object], Callable[[], None]) -> None
        self.service = service
        self.table = table
        self.envelope_handler = envelope_handler
        self.marks_more = bool(getattr(envelope_handler, "marks_more", False))
        self.send = send
        self.unlocked = unlocked
        self.wake = wake
        self.handled = 0
        self.accepting = True
        # Requests received and not started yet, oldest first: (client, envelope).
        self.backlog = collections.deque()  # type: collections.deque
        self.stream = None  # type: ReplyStream
        self.abandoned = []  # type: list  # streams cut off by a lost broker, still running

    def waiting(self):
        # type: () -> bool
        """True when a received request waits and nothing streams."""
        return self.stream is None and bool(self.backlog)

    def start_next(self):
        # type: () -> None
        """Start the oldest waiting request, unless a stream is still going."""
        if self.waiting():
            self.start(*self.backlog.popleft())

    def drop(self):
        # type: () -> None
        """The connection is gone: what it held is the broker's to requeue or fail now."""
        self.backlog.clear()
        if self.stream is not None:
            self.stream.cancel()
            self.abandoned = [s for s in self.abandoned if not s.join(0)] + [self.stream]
            self.stream = None

    def receive(self, client, body):
        # type: (bytes, list) -> None
        """A REQUEST: a cancel acts at once; anything else waits its turn in the backlog."""
        try:
            env = codec.decode(body)
        except EnvelopeError as exc:
            self.handled += 1
            # SPEC 3.4: the request's id whenever the header frame names one, as the
            # broker would; a fresh id (error_envelope's default) otherwise.
            self.reply(client, error_envelope(codec.header_id(body[0]) if body else None, exc))
            return
        if env.kind in NOT_REQUESTS or (self.envelope_handler is None
                                         and env.kind == u"http"):
            self.reply(client, error_envelope(env.id, self.wrong_kind(env.kind)))
            return
        if env.kind == u"cancel":
            self.cancel(client, env.id)
        elif self.accepting:
            self.backlog.append((client, env))
        # else: it came after we began to leave; the broker requeues it at our DISCONNECT

    def cancel(self, client, request_id):
        # type: (bytes, str) -> None
        """SPEC 2.11: not started -> answered cancelled; streaming -> stopped; else ignored."""
        for item in self.backlog:
            if item[0] == client and item[1].id == request_id:
                self.backlog.remove(item)
                self.reply(client, error_envelope(request_id, Cancelled(
                    u"the client cancelled the request before it started")))
                return
        stream = self.stream
        if stream is not None and stream.key == (client, request_id):
            stream.cancel()
            self.send_stream()  # parts queued but not sent are dropped now

    def start(self, client, env):
        # type: (bytes, codec.Envelope) -> None
        self.handled += 1
        if env.deadline is not None and env.deadline <= mdp.now_ms():
            self.reply(client, error_envelope(env.id, Timeout(
                u"the deadline passed before the worker could start it")))
            return
        _bind_context(env)
        try:
            if self.envelope_handler is not None:
                self.begin_stream(client, env)
            else:
                self.reply(client, self.unlocked(self.call, env))  # type: ignore[arg-type]
        finally:
            _bind_context(None)

    def wrong_kind(self, kind):
        # type: (str) -> EnvelopeError
        """The ``envelope`` error for a request of a kind this worker does not serve (SPEC 3.3)."""
        if kind in NOT_REQUESTS:
            return EnvelopeError(u"header.kind: '%s' is not a request kind" % (kind,))
        return EnvelopeError(u"header.kind: service %s serves call requests, not '%s'" % (
            self.service.decode("utf-8", "replace"), kind))

    def call(self, env):
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

    def begin_stream(self, client, env):
        # type: (bytes, codec.Envelope) -> None
        """Send the first part here; a reply that goes on is handed to a ReplyStream."""
        sentinel = object()
        try:
            it = iter(self.unlocked(self.envelope_handler, env))  # type: ignore[call-overload]
            first = self.unlocked(next, it, sentinel)
            if first is sentinel:
                raise RemoteError(u"the handler produced no reply", type=u"RuntimeError")
            following = None
            if not self.marks_more:
                following = self.unlocked(next, it, sentinel)
                first.more = following is not sentinel  # type: ignore[attr-defined]
            first.id = env.id  # type: ignore[attr-defined]
            self.reply(client, first)  # type: ignore[arg-type]
        except Exception as exc:  # a failing stream ends with an error envelope
            self.reply(client, error_envelope(env.id, exc))
            return
        if not first.more:  # type: ignore[attr-defined]
            # Run the handler to its end, so it releases what it holds (PEP 3333 close()).
            try:
                self.unlocked(next, it, sentinel)
            except Exception:  # the reply is complete; a failure now can only be logged
                log.exception("finishing the handler of %s failed", env.id)
            return
        # Joining parts is for HTTP bodies (SPEC 6.3); a generic handler's parts are its own.
        self.stream = ReplyStream(client, env, it, self.wake, self.marks_more,
                                   lookahead=following, bind=_bind_context,
                                   join=self.marks_more)
        self.stream.start()

    def send_stream(self):
        # type: () -> None
        """Send what the stream's thread has queued; forget the stream once it has ended."""
        stream = self.stream
        if stream is None:
            return
        for part in stream.take():
            self.reply(stream.client, part)
        if stream.finished():
            self.stream = None

    def reply(self, client, env):
        # type: (bytes, codec.Envelope) -> None
        try:
            body = codec.encode(env)
        except EnvelopeError as exc:
            body = codec.encode(error_envelope(env.id, RemoteError(
                u"the handler's answer cannot be encoded: %s" % (exc.message,),
                type=u"EnvelopeError")))
        self.send(mdp.worker_reply(client, body))
