"""An MDP/0.1 client with deadlines, typed errors and many calls in flight (2.7 and 3.x).

::

    from protocol.client import Client
    with Client("tcp://127.0.0.1:5555", timeout=5.0) as client:
        client.call(u"calc", u"add", {u"a": 1, u"b": 2})          # -> 3
        pending = [client.submit(u"calc", u"add", [i, i]) for i in range(100)]
        results = [p.result() for p in pending]                      # pipelined
        for env in client.request(u"web", http_envelope, idle_timeout=60.0):  # a stream
            ...                       # leaving the loop early cancels the request
        client.cancel(u"web", request_id)                            # or by hand

``call`` returns the result or raises :class:`~protocol.errors.Timeout`,
:class:`~protocol.errors.Unavailable` (and its ``UnknownService``),
:class:`~protocol.errors.WorkerLost` or :class:`~protocol.errors.RemoteError`
(with the remote type, message and traceback text).

Thread-safety: a Client is safe to share between threads, and has no I/O
thread of its own (a thread handoff costs tens of microseconds each way, more
than a broker hop). It uses the leader/follower pattern: whichever calling
thread holds the client's I/O lock is the leader and the only code touching
the DEALER socket; the lock is the full memory barrier ZeroMQ asks for when a
socket moves between threads. A caller encodes its request in its own
thread and queues it; if the lock is free it becomes the leader, sends every
queued request, and reads replies, routing each by the id in its header to
the caller's pending slot (setting that slot's event), until its own reply
is in. Otherwise it wakes the leader through an OS pipe and waits on its own
event with its own deadline. A leader that is done hands the lead to a
waiting caller, so replies for others are always being read. Do not use a
Client across ``fork()``; make one per process.

Broker restarts (SPEC 2.1): a socket monitor on the DEALER reports when the
connection to the broker closes. On loopback that means the broker process
died, and every request it held died with it, so the client acts at once
rather than waiting for its deadlines: idempotent calls that got no reply
part yet are sent again (ZeroMQ delivers them when the connection to the
restarted broker is up), and the others fail with ``Unavailable``.
``broker_losses`` counts these events.

Reconnects (Lazy Pirate, zguide chapter 4): while calls are waiting and the
broker has been silent for ``probe_interval``, the I/O thread sends an
``mmi.service`` probe. If that too goes unanswered, it drops the socket and
opens a new one: idempotent calls are sent again, the others fail with
``Unavailable`` (they may or may not have run), and later calls use the new
connection. Inside a worker handler, calls without an explicit timeout take
the remaining deadline and request id of the request being handled.

Streams and cancels (SPEC 2.7, 2.11): the deadline of a :meth:`Client.request`
bounds the wait for its first reply part; after it, each wait for the next
part is bounded by ``idle_timeout``. A caller that stops before the final part
(it closes the generator, or a timeout ends it) cancels the request: the
broker drops it if still queued or tells the worker to stop, and late parts
are dropped here.
"""
from __future__ import absolute_import, division, print_function

import collections
import errno
import os
import threading
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from protocol import brokers, codec, mdp
from protocol._compat import text_type
from protocol.errors import BrokerLost, EnvelopeError, Timeout, Unavailable, from_wire
from protocol.worker import current

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Any  # noqa: F401

# How long past its deadline a caller still waits for the broker's typed answer.
GRACE = 0.25


class Pending(object):
    """One request in flight: its frames, deadline and the replies received so far.

    Each reply is kept as (parsed header, body frames); the header is None for mmi.
    """

    __slots__ = ("client", "deadline", "error", "event", "frames", "id", "idem", "oneway",
                 "probe", "replies", "sent_at", "service")

    def __init__(self, client, rid, service, frames, deadline, idem=False, probe=False,
                 oneway=False):
        # type: (Client, str, bytes, list, float, bool, bool, bool) -> None
        self.client = client
        self.id = rid
        self.service = service
        self.frames = frames
        self.deadline = deadline  # time.time() seconds
        self.idem = idem
        self.replies = collections.deque()  # type: collections.deque
        # Made only when the caller has to wait as a follower: most calls are read by
        # their own thread as leader, and an Event (a Condition and its lock) is not free.
        self.event = None  # type: threading.Event
        self.error = None  # type: Exception
        self.sent_at = 0.0
        self.probe = probe
        self.oneway = oneway  # a message nobody answers (a cancel): sent, never awaited

    def _wait_frames(self):
        # type: () -> tuple
        """Block until a reply (header, frames) or a failure arrives, or the deadline passes."""
        return self.client._await(self)

    def result(self):
        # type: () -> object
        """The call's result, or raise its typed error (see :meth:`Client.call`)."""
        env = _decode(self._wait_frames())
        if env.kind == u"error":
            raise from_wire(env.error or {})
        return env.payload

    def done(self):
        # type: () -> bool
        """True once a reply or a failure is waiting."""
        return bool(self.replies) or self.error is not None

    def _signal(self):
        # type: () -> None
        event = self.event
        if event is not None:
            event.set()


# The reply kinds that answer each request kind (SPEC 3.3); anything else with the
# request's id (a worker echoing the request back, say) is no answer at all.
_ANSWERS = {u"call": (u"result", u"error"),
            u"http": (u"http-response", u"http-body", u"error")}


def _decode(reply, asked=u"call"):
    # type: (tuple, str) -> codec.Envelope
    """Decode a reply routed by :meth:`Client._route`: (parsed header, body frames).

    ``asked`` is the kind of the request it answers: a reply of a kind that does
    not answer it raises :class:`EnvelopeError` instead of passing for a result.
    """
    header, body = reply
    if header[u"kind"] not in _ANSWERS.get(asked, (u"error",)):
        raise EnvelopeError(u"header.kind: '%s' is no answer to a request of kind '%s' (id %s)"
                            % (header[u"kind"], asked, header[u"id"]))
    return codec.decode(body, header=header)


class Client(object):
    """Thread-safe MDP client; see the module docstring for the threading model.

    Given several brokers (a list, or endpoints separated by commas) it is a
    :class:`protocol.failover.FailoverClient` instead (SPEC 2.15).
    """

    def __new__(cls, endpoint=None, *args, **kwargs):
        # type: (Any, Any, Any) -> Any
        if cls is Client and _several(endpoint):
            endpoints = brokers.split_endpoints(endpoint)
            if len(endpoints) > 1:
                from protocol.failover import FailoverClient
                return FailoverClient(endpoints, *args, **kwargs)
        return object.__new__(cls)

    def __init__(self, endpoint, timeout=10.0, context=None, curve=None,
                 probe_interval=1.0):
        # type: (str, float, zmq.Context, tuple, float) -> None
        if _several(endpoint):  # a list of one, or "ep," : that one broker
            endpoint = brokers.split_endpoints(endpoint)[0]
        self.endpoint = endpoint
        # False under a FailoverClient: a lost broker's calls fail with BrokerLost, and
        # the FailoverClient sends the idempotent ones to another broker instead.
        self.resend_on_loss = True
        self.link_up = None  # type: bool  # None until the first handshake
        self.timeout = timeout
        self.ctx = context or zmq.Context.instance()
        self.curve = curve
        self.probe_interval = probe_interval
        self.reconnects = 0
        self.broker_losses = 0
        self.resent = 0
        self.dropped = 0
        self._pending = {}  # type: dict
        self._outbox = collections.deque()  # type: collections.deque
        self._mmi = collections.deque()  # type: collections.deque
        self._waiters = set()  # type: set
        self._io = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            _set_nonblocking(fd)
        self._woken = False
        self._closed = False
        self._linked = False  # a handshake with the broker succeeded on this socket
        self._poller = zmq.Poller()
        self._poller.register(self._wake_r, zmq.POLLIN)
        self._sock, self._monitor = self._open()
        self._last_recv = time.time()
        self._probe_at = None  # type: float

    # ------------------------------------------------------------- public --
    def call(self, service, method, params=None, timeout=None, idem=False, shadow=False,
             rid=None, schema=None, traceparent=None, tracestate=None, sticky=None):
        # type: (str, str, object, float, bool, bool, str, dict, str, str, str) -> object
        """Call ``method`` of ``service`` and return its result (or raise a typed error)."""
        return self.submit(service, method, params, timeout, idem, shadow, rid,
                           schema, traceparent, tracestate, sticky).result()

    def submit(self, service, method, params=None, timeout=None, idem=False, shadow=False,
               rid=None, schema=None, traceparent=None, tracestate=None, sticky=None):
        # type: (str, str, object, float, bool, bool, str, dict, str, str, str) -> Pending
        """Send a call without waiting for it; ``.result()`` on the returned object waits.

        ``sticky`` is the key a broker's traffic split keeps on one side (SPEC 2.14);
        without it the request id decides. Inside a handler it defaults to the
        request's own, as the request id does.

        Replies are read by whichever thread is waiting, so call ``result()``
        (on this or any pending call) to make progress. Inside a handler the
        deadline, request id and trace context default to the request's own
        (:func:`protocol.worker.current`), so nested calls carry them on.
        """
        deadline, rid = self._deadline(timeout, rid)
        if sticky is None:
            ctx = current()
            sticky = ctx.sticky if ctx is not None else None
        env = codec.Envelope(u"call", method=method, deadline=int(deadline * 1000), rid=rid,
                             idem=idem, shadow=shadow, payload=params,
                             traceparent=traceparent, tracestate=tracestate, sticky=sticky)
        _inherit_trace(env)
        return self._send(service, env, deadline, schema)

    def request(self, service, envelope, timeout=None, idle_timeout=None):
        # type: (str, codec.Envelope, float, float) -> object
        """Send any envelope and yield the reply envelopes until one has ``more=false``.

        An error envelope is raised as its typed exception instead of yielded.
        The envelope's deadline is set from ``timeout`` when it has none; it
        bounds the wait for the first part only. Each later wait for a part
        lasts at most ``idle_timeout`` seconds (default: as long as the first
        part was given), or :class:`Timeout` is raised.
        Leaving before the final part (closing the generator, a timeout)
        sends a cancel for the request (SPEC 2.11).
        """
        if envelope.deadline is None:
            deadline, rid = self._deadline(timeout, envelope.rid)
            envelope.deadline, envelope.rid = int(deadline * 1000), rid
        _inherit_trace(envelope)
        pending = self._send(service, envelope, envelope.deadline / 1000.0, None)
        if idle_timeout is None:
            idle_timeout = max(0.0, pending.deadline - time.time())
        finished = started = False
        try:
            while True:
                try:
                    reply = pending._wait_frames()
                except Timeout:
                    if started:
                        raise Timeout(u"no reply part within the idle timeout (%.3gs)"
                                      % (idle_timeout,), id=pending.id)
                    raise
                env = _decode(reply, envelope.kind)
                if not env.more:
                    finished = True
                if env.kind == u"error":
                    raise from_wire(env.error or {})
                started = True
                yield env
                if finished:
                    return
                # From the head on, the stream is bounded by its gaps, not the deadline:
                # the clock runs while we wait for a part, as nginx's proxy_read_timeout.
                pending.deadline = time.time() + idle_timeout
        finally:
            self._pending.pop(pending.id, None)
            if not finished:
                self.cancel(service, pending.id, envelope.rid)

    def cancel(self, service, request_id, rid=None):
        # type: (str, str, str) -> None
        """Ask the broker to cancel ``request_id`` (SPEC 2.11); never blocks, never raises.

        Parts that still arrive for that id are dropped.
        """
        self._pending.pop(request_id, None)
        if self._closed:
            return
        try:
            name = service.encode("utf-8") if isinstance(service, text_type) else service
            body = codec.encode(codec.Envelope(u"cancel", id=request_id, rid=rid))
            self._enqueue(Pending(self, None, name, mdp.client_request(name, body), 0.0,
                                  oneway=True))
        except Exception:  # a cancel is advice: a closed socket or full queue loses nothing
            pass

    def mmi(self, service, timeout=None):
        # type: (str, float) -> str
        """RFC 8 discovery: u"200" when ``service`` has a live worker, u"404" if not."""
        self._check_open()
        name = service.encode("utf-8") if isinstance(service, text_type) else service
        pending = Pending(self, None, mdp.MMI_SERVICE,
                          mdp.client_request(mdp.MMI_SERVICE, [name]),
                          time.time() + (timeout or self.timeout))
        self._enqueue(pending)
        return pending._wait_frames()[1][0].decode("ascii")

    def refresh(self):
        # type: () -> object
        """``link_up`` after reading what the socket monitor reported; never blocks.

        A link that ZeroMQ's heartbeats found dead while no call was waiting is
        reported now, so a caller can choose another broker before sending.
        """
        if self._closed or not self._io.acquire(False):
            return self.link_up
        try:
            if mdp.readable(self._monitor):
                self._check_monitor()
        finally:
            self._io.release()
        return self.link_up

    def close(self):
        # type: () -> None
        """Close the socket; calls still waiting fail with Unavailable."""
        if self._closed:
            return
        self._closed = True
        self._wake()
        with self._io:
            self._fail_all(Unavailable(u"the client was closed"))
            self._shut()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def __enter__(self):
        # type: () -> Client
        return self

    def __exit__(self, *exc):
        # type: (object) -> None
        self.close()

    # ------------------------------------------------------------ callers --
    def _deadline(self, timeout, rid):
        # type: (float, str) -> tuple
        ctx = current()
        if timeout is None and ctx is not None and ctx.deadline is not None:
            deadline = ctx.deadline / 1000.0
        else:
            deadline = time.time() + (self.timeout if timeout is None else timeout)
            if ctx is not None and ctx.deadline is not None:
                deadline = min(deadline, ctx.deadline / 1000.0)
        if rid is None and ctx is not None:
            rid = ctx.rid
        return deadline, rid

    def _check_open(self):
        # type: () -> None
        if self._closed:
            raise Unavailable(u"the client is closed")

    def _send(self, service, env, deadline, schema):
        # type: (str, codec.Envelope, float, dict) -> Pending
        self._check_open()
        name = service.encode("utf-8") if isinstance(service, text_type) else service
        frames = mdp.client_request(name, codec.encode(env, schema))
        pending = Pending(self, env.id, name, frames, deadline, env.idem)
        self._pending[env.id] = pending
        self._enqueue(pending)
        return pending

    def _enqueue(self, pending):
        # type: (Pending) -> None
        self._outbox.append(pending)
        if self._io.acquire(False):
            try:  # send now; replies are read by whoever waits (no poll on this path)
                while self._outbox:
                    self._transmit(self._outbox.popleft())
            finally:
                self._io.release()
            if self._waiters:
                self._promote()  # a caller that found the lock taken must not wait leaderless
        elif not self._woken:
            self._woken = True
            self._wake()

    def _await(self, pending):
        # type: (Pending) -> tuple
        """Wait for ``pending``, leading the socket whenever nobody else is."""
        while True:
            if pending.done():
                # A caller woken to lead may find its answer already routed: it must
                # pass the wake-up on, or the other waiters are left leaderless.
                if self._waiters and not self._io.locked():
                    self._promote()
                if pending.replies:
                    return pending.replies.popleft()
                raise pending.error
            left = pending.deadline + GRACE - time.time()
            if left <= 0:
                self._pending.pop(pending.id, None)
                raise Timeout(u"no answer before the deadline", id=pending.id)
            led = self._io.acquire(False)
            if not led:
                if pending.event is None:
                    pending.event = threading.Event()
                # Register, then try the lock again: either that succeeds, or whoever
                # holds it releases it later and, stepping down, sees us registered.
                self._waiters.add(pending)
                try:
                    led = self._io.acquire(False)
                    # The event exists now, so a reply routed after this check sets it.
                    if not led and not pending.done():
                        pending.event.wait(left)
                        pending.event.clear()  # the loop re-checks, so a racing set() is kept
                finally:
                    self._waiters.discard(pending)
            if led:
                try:
                    self._lead(pending)
                finally:
                    self._io.release()
                # Only a leader stepping down hands over. A follower that woke and found
                # a leader still in place must not wake another: followers waking each
                # other in turn spin the CPU while the leader sits in poll().
                self._promote()

    def _promote(self):
        # type: () -> None
        """Wake one waiting caller so that someone keeps reading the socket."""
        for waiter in list(self._waiters)[:1]:
            waiter._signal()

    def _wake(self):
        # type: () -> None
        try:
            os.write(self._wake_w, b"\0")
        except OSError as exc:  # a full pipe already means "wake up"
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBADF):
                raise

    # ------------------------------------------------ leader (holds self._io) --
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
        self._poller.register(sock, zmq.POLLIN)
        self._poller.register(monitor, zmq.POLLIN)
        return sock, monitor

    def _shut(self):
        # type: () -> None
        """Close the DEALER and its monitor."""
        self._poller.unregister(self._sock)
        self._poller.unregister(self._monitor)
        self._sock.disable_monitor()
        self._monitor.close(linger=0)
        self._sock.close(linger=0)

    def _lead(self, me):
        # type: (Pending) -> None
        """Send queued requests and route replies until ``me`` is answered or times out."""
        while not (me.done() or self._closed):
            left = me.deadline + GRACE - time.time()
            if left <= 0:
                return
            self._pump(min(left, self.probe_interval / 2), me)
            self._check_broker()

    def _pump(self, timeout, me=None):
        # type: (float, Pending) -> None
        """Flush the outbox, wait up to ``timeout`` s, and route whatever arrived.

        Once ``me`` is answered, reading stops as soon as the socket has nothing
        more queued: asking ZMQ_EVENTS is cheaper than the Again raised by an
        empty non-blocking read.
        """
        while self._outbox:
            self._transmit(self._outbox.popleft())
        events = dict(self._poller.poll(int(timeout * 1000)))
        if self._wake_r in events:
            try:
                os.read(self._wake_r, 4096)
            except OSError:
                pass
            self._woken = False
            while self._outbox:
                self._transmit(self._outbox.popleft())
        if self._sock in events:
            self._last_recv = time.time()
            self._probe_at = None
            while True:
                try:
                    frames = mdp.recv_frames(self._sock, mdp.NOBLOCK)
                except zmq.Again:
                    break
                self._route(frames)
                if me is not None and me.done() and not mdp.readable(self._sock):
                    break
        if self._monitor in events:
            self._check_monitor()

    def _check_monitor(self):
        # type: () -> None
        """Act on the connection closing: the broker died with what it held."""
        lost = False
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)[u"event"]
            except zmq.Again:
                break
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._linked = self.link_up = True
            elif event == zmq.EVENT_DISCONNECTED and self._linked:
                self._linked, lost = False, True
                self.link_up = False
        if not lost:
            return
        # Replies the broker sent before it went are answers: route them first.
        while True:
            try:
                frames = mdp.recv_frames(self._sock, mdp.NOBLOCK)
            except zmq.Again:
                break
            self._route(frames)
        self.broker_losses += 1
        self._last_recv, self._probe_at = time.time(), None
        self._recover(BrokerLost(u"the connection to the broker %s closed while the request "
                                 u"was in flight; it may or may not have run" % (self.endpoint,)))

    def _check_broker(self):
        # type: () -> None
        """Lazy Pirate: probe a silent broker, and reconnect when the probe goes unanswered."""
        now = time.time()
        waiting = self._pending or any(not p.probe for p in self._mmi)
        if not waiting or now - self._last_recv < self.probe_interval:
            return
        if self._probe_at is None:
            self._probe_at = now
            self._transmit(Pending(self, None, mdp.MMI_SERVICE, mdp.client_request(
                mdp.MMI_SERVICE, [mdp.MMI_SERVICE]), now + 1.0, probe=True))
        elif now - self._probe_at > 2 * self.probe_interval:
            self._reconnect()

    def _transmit(self, pending):
        # type: (Pending) -> None
        if pending.oneway:
            try:
                mdp.send_frames(self._sock, pending.frames, mdp.NOBLOCK)
            except zmq.ZMQError:
                pass  # full or closed: a lost cancel leaves the request to run, nothing worse
            return
        if pending.id is not None and pending.id not in self._pending:
            return  # the caller gave up before it was sent
        try:
            mdp.send_frames(self._sock, pending.frames, mdp.NOBLOCK)
        except zmq.Again:
            self._pending.pop(pending.id, None)
            self._fail(pending, Unavailable(u"the send queue to the broker is full"))
            return
        pending.sent_at = time.time()
        if pending.id is None:
            self._mmi.append(pending)

    def _route(self, frames):
        # type: (list) -> None
        if len(frames) < 4 or frames[1] != mdp.CLIENT:
            self.dropped += 1
            return
        if frames[2].startswith(b"mmi."):
            if self._mmi:
                waiter = self._mmi.popleft()
                waiter.replies.append((None, frames[3:]))
                waiter._signal()
            return
        # The one parse of this header: result() decodes only the payload.
        try:
            header = codec.decode_header(frames[3])
        except EnvelopeError:
            self.dropped += 1  # not an envelope of ours: nobody to route it to
            return
        rid = header[u"id"]
        pending = self._pending.get(rid)
        if pending is None:
            self.dropped += 1  # a late answer for a call that already timed out
            return
        pending.replies.append((header, frames[3:]))
        if not header.get(u"more"):
            self._pending.pop(rid, None)
        pending._signal()

    def _reconnect(self):
        # type: () -> None
        """New socket; resend idempotent calls, fail the rest (they may have run)."""
        self.reconnects += 1
        self.link_up = False  # silent past the probe: suspect until a handshake again
        self._shut()
        self._sock, self._monitor = self._open()
        self._last_recv, self._probe_at = time.time(), None
        while self._mmi:
            self._fail(self._mmi.popleft(), BrokerLost(u"lost the connection to the broker"))
        self._recover(BrokerLost(u"the broker %s went silent; the request may or may not "
                                 u"have run" % (self.endpoint,)))

    def _recover(self, lost):
        # type: (Unavailable) -> None
        """The broker lost what it held: resend idempotent calls, fail the others.

        Only calls with no reply part yet are sent again, within their deadline;
        a streamed reply cut in the middle cannot be resumed.
        """
        waiting = [p for p in self._mmi if not p.probe]
        self._mmi.clear()
        for pending in waiting:  # discovery questions are always safe to ask again
            self._transmit(pending)
        now = time.time()
        for pending in list(self._pending.values()):
            if not pending.sent_at:
                continue  # still in the outbox: it was never sent to the old broker
            if (self.resend_on_loss and pending.idem and not pending.replies
                    and pending.deadline > now):
                self.resent += 1
                self._transmit(pending)
            else:
                self._pending.pop(pending.id, None)
                self._fail(pending, lost)

    def _fail(self, pending, error):
        # type: (Pending, Exception) -> None
        pending.error = error
        pending._signal()

    def _fail_all(self, error):
        # type: (Exception) -> None
        for pending in list(self._pending.values()) + list(self._mmi) + list(self._outbox):
            self._fail(pending, error)
        self._pending.clear()
        self._mmi.clear()
        self._outbox.clear()


def _several(endpoint):
    # type: (object) -> bool
    """True when ``endpoint`` is a list of endpoints or text naming several."""
    if isinstance(endpoint, (list, tuple)):
        return True
    return isinstance(endpoint, (str, text_type)) and u"," in endpoint


def _inherit_trace(env):
    # type: (codec.Envelope) -> None
    """Give a request made inside a handler the handler's span as its parent (SPEC 3.9)."""
    if env.traceparent is None and env.kind != u"http":
        ctx = current()
        if ctx is not None:
            span = ctx.trace
            env.traceparent, env.tracestate = span.traceparent, span.tracestate


def _set_nonblocking(fd):
    # type: (int) -> None
    import fcntl
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)


__all__ = ["Client", "Pending", "EnvelopeError"]
