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
thread of its own: the calling threads take turns leading the socket
(leader/follower, :mod:`protocol.turns`). Do not use a Client across
``fork()``; make one per process.

Broker restarts and silent brokers (SPEC 2.1; Lazy Pirate): idempotent calls
that got no reply part yet are sent again, the others fail with
``Unavailable`` (they may or may not have run); ``broker_losses`` and
``reconnects`` count these events. The connection is a
:class:`protocol.link.BrokerLink` (a libzmq DEALER), or for a broker on this
host with no CURVE a :class:`protocol.zmtpclient.ZmtpClientLink` that speaks
ZMTP itself (``link=`` or ``$GATEWAY_BROKER_LINK``: ``auto``, ``zmtp``,
``libzmq``, as for workers), the calls in flight a
:class:`protocol.calls.Calls`, and streams are read by
:func:`protocol.replystream.stream`. Inside a worker handler, calls without
an explicit timeout take the remaining deadline and request id of the
request being handled (:mod:`protocol.context`).

Streams and cancels (SPEC 2.7, 2.11): the deadline of a :meth:`Client.request`
bounds the wait for its first reply part; after it, each wait for the next
part is bounded by ``idle_timeout``. A caller that stops before the final part
(it closes the generator, or a timeout ends it) cancels the request: the
broker drops it if still queued or tells the worker to stop, and late parts
are dropped here.
"""
from __future__ import absolute_import, division, print_function

import time

import zmq

from protocol import brokers, codec, mdp
from protocol._compat import text_type
from protocol.brokers import choose_link
from protocol.calls import Calls
from protocol.context import call_deadline, inherit_trace, inherited_sticky
from protocol.errors import BrokerLost, EnvelopeError, Unavailable
from protocol.failover import FailoverClient
from protocol.link import PROBE, RECONNECT, BrokerLink
from protocol.pending import Pending
from protocol.replystream import stream
from protocol.turns import GRACE, Turns
from protocol.zmtpclient import ZmtpClientLink

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Any, Iterator  # noqa: F401


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
                kwargs["link_class"] = cls  # the failover client builds one per broker
                return FailoverClient(endpoints, *args, **kwargs)
        return object.__new__(cls)

    def __init__(self, endpoint, timeout=10.0, context=None, curve=None,
                 probe_interval=1.0, link=None):
        # type: (str, float, zmq.Context, tuple, float, str) -> None
        if _several(endpoint):  # a list of one, or "ep," : that one broker
            endpoint = brokers.split_endpoints(endpoint)[0]
        self.endpoint = endpoint
        # False under a FailoverClient: a lost broker's calls fail with BrokerLost, and
        # the FailoverClient sends the idempotent ones to another broker instead.
        self.resend_on_loss = True
        self.timeout = timeout
        self.ctx = context or zmq.Context.instance()
        self.curve = curve
        self.probe_interval = probe_interval
        # Two collaborators, both touched only by the leader (holding self._io): the
        # calls in flight, and the connection to the broker.
        self._calls = Calls()
        # Which caller thread reads the socket (the leader holds self._io).
        self._turns = Turns()
        self._io = self._turns.lock
        self._closed = False
        self._poller = zmq.Poller()
        self._poller.register(self._turns.wake_r, zmq.POLLIN)
        if choose_link(endpoint, curve, link) == "zmtp":
            self._link = ZmtpClientLink(endpoint, probe_interval, self._poller)  # type: Any
        else:
            self._link = BrokerLink(self.ctx, endpoint, curve, probe_interval, self._poller)

    # ------------------------------------------------------------ counts --
    @property
    def link_up(self):
        # type: () -> object
        """True after a handshake, False once the broker is known lost, None before."""
        return self._link.link_up

    @property
    def reconnects(self):
        # type: () -> int
        """Silent brokers reconnected to."""
        return self._link.reconnects

    @property
    def broker_losses(self):
        # type: () -> int
        """Connections to the broker seen closing while linked."""
        return self._link.broker_losses

    @property
    def resent(self):
        # type: () -> int
        """Idempotent calls sent again after the broker lost them."""
        return self._calls.resent

    @property
    def dropped(self):
        # type: () -> int
        """Replies nobody waited for."""
        return self._calls.dropped

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
        (:func:`protocol.context.current`), so nested calls carry them on.
        """
        deadline, rid = call_deadline(timeout, self.timeout, rid)
        env = codec.Envelope(u"call", method=method, deadline=int(deadline * 1000), rid=rid,
                             idem=idem, shadow=shadow, payload=params,
                             traceparent=traceparent, tracestate=tracestate,
                             sticky=inherited_sticky(sticky))
        inherit_trace(env)
        return self._send(service, env, deadline, schema)

    def request(self, service, envelope, timeout=None, idle_timeout=None):
        # type: (str, codec.Envelope, float, float) -> Iterator[codec.Envelope]
        """Send any envelope and yield the reply envelopes until one has ``more=false``.

        An error envelope is raised as its typed exception instead of yielded.
        The envelope's deadline is set from ``timeout`` when it has none; it
        bounds the wait for the first part only. Each later wait for a part
        lasts at most ``idle_timeout`` seconds (default: as long as the first
        part was given), or :class:`Timeout` is raised.
        Leaving before the final part (closing the generator, a timeout)
        sends a cancel for the request (SPEC 2.11). Nothing is sent before the
        first part is asked for.
        """
        return stream(self, service, envelope, timeout, idle_timeout)

    def _start(self, service, envelope, timeout):
        # type: (str, codec.Envelope, float) -> Pending
        """Send ``envelope`` for :meth:`request`, its deadline and trace filled in."""
        if envelope.deadline is None:
            deadline, rid = call_deadline(timeout, self.timeout, envelope.rid)
            envelope.deadline, envelope.rid = int(deadline * 1000), rid
        inherit_trace(envelope)
        return self._send(service, envelope, envelope.deadline / 1000.0, None)

    def cancel(self, service, request_id, rid=None):
        # type: (str, str, str) -> None
        """Ask the broker to cancel ``request_id`` (SPEC 2.11); never blocks, never raises.

        Parts that still arrive for that id are dropped.
        """
        self._calls.forget(request_id)
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
            if self._link.check():
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
        self._turns.wake()
        with self._io:
            self._calls.fail_all(Unavailable(u"the client was closed"))
            self._link.shut()
            self._turns.close()

    def __enter__(self):
        # type: () -> Client
        return self

    def __exit__(self, *exc):
        # type: (object) -> None
        self.close()

    # ------------------------------------------------------------ callers --
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
        self._calls.add(pending)
        self._enqueue(pending)
        return pending

    def _enqueue(self, pending):
        # type: (Pending) -> None
        self._calls.outbox.append(pending)
        self._turns.enqueue(self._flush)

    def _await(self, pending):
        # type: (Pending) -> tuple
        """Wait for ``pending``, leading the socket whenever nobody else is."""
        return self._turns.wait(pending, self._lead, self._calls.forget)

    def _flush(self):
        # type: () -> None
        outbox = self._calls.outbox
        while outbox:
            self._transmit(outbox.popleft())

    # ------------------------------------------------ leader (holds self._io) --
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
        link, calls = self._link, self._calls
        self._flush()
        timeout = min(timeout, link.tick(time.time()))
        events = dict(self._poller.poll(int(timeout * 1000)))
        if self._turns.wake_r in events:
            self._turns.woke()
            self._flush()
        if link.signalled(events):
            link.heard()
            while True:
                frames = link.recv()
                if frames is None:
                    break
                calls.route(frames)
                if me is not None and me.done() and not link.readable():
                    break
        if link.lost_in(events):
            self._check_monitor()

    def _check_monitor(self):
        # type: () -> None
        """Act on the connection closing: the broker died with what it held."""
        link = self._link
        if not link.connection_lost():
            return
        # Replies the broker sent before it went are answers: route them first.
        while True:
            frames = link.recv()
            if frames is None:
                break
            self._calls.route(frames)
        link.heard()
        self._recover(BrokerLost(u"the connection to the broker %s closed while the request "
                                 u"was in flight; it may or may not have run" % (self.endpoint,)))

    def _check_broker(self):
        # type: () -> None
        """Lazy Pirate: probe a silent broker, and reconnect when the probe goes unanswered."""
        now = time.time()
        action = self._link.silence(now, self._calls.waiting())
        if action == PROBE:
            self._transmit(Pending(self, None, mdp.MMI_SERVICE, mdp.client_request(
                mdp.MMI_SERVICE, [mdp.MMI_SERVICE]), now + 1.0, probe=True))
        elif action == RECONNECT:
            self._reconnect()

    def _transmit(self, pending):
        # type: (Pending) -> None
        self._calls.transmit(pending, self._link.send)

    def _reconnect(self):
        # type: () -> None
        """New socket; resend idempotent calls, fail the rest (they may have run)."""
        self._link.reopen()
        self._calls.fail_questions(BrokerLost(u"lost the connection to the broker"))
        self._recover(BrokerLost(u"the broker %s went silent; the request may or may not "
                                 u"have run" % (self.endpoint,)))

    def _recover(self, lost):
        # type: (Unavailable) -> None
        """The broker lost what it held: resend idempotent calls, fail the others."""
        self._calls.recover(lost, self.resend_on_loss, self._transmit)


def client_from_env(environ, **kwargs):
    # type: (dict, Any) -> Any
    """A :class:`Client` on ``$GATEWAY_BROKER`` with the host's CURVE keys.

    What a service under the gateway's supervisor uses to call another service:
    on a worker host that is every gateway host's broker, so the client fails
    over between them (SPEC 2.15). Raises ValueError when the variable is unset
    or names a remote broker without keys.
    """
    endpoints = brokers.split_endpoints(environ.get(brokers.ENV_BROKER, ""))
    curve = brokers.curve_from_env(environ)
    brokers.check_curve(endpoints, curve)
    return Client(u",".join(endpoints), curve=curve, **kwargs)


def _several(endpoint):
    # type: (object) -> bool
    """True when ``endpoint`` is a list of endpoints or text naming several."""
    if isinstance(endpoint, (list, tuple)):
        return True
    return isinstance(endpoint, (str, text_type)) and u"," in endpoint


__all__ = ["GRACE", "Client", "Pending", "EnvelopeError", "client_from_env"]
