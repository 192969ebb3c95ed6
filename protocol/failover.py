"""A client of several brokers that fails over between them (2.7 and 3.x; SPEC 2.15).

::

    from protocol.client import Client

    with Client("tcp://10.0.0.1:5555,tcp://10.0.0.2:5555", curve=curve) as client:
        client.call(u"calc", u"add", [1, 2], idem=True)   # -> 3, from whichever broker is up

``Client`` given several endpoints returns a :class:`FailoverClient`; it has
the same methods. It holds one :class:`~protocol.client.Client` per broker
and sends each request to one of them, never to several:

- **Choice.** The broker that answered last keeps the traffic. A broker
  whose link is known down (the socket monitor saw the connection close, or
  ZeroMQ's heartbeats found it dead, or it ignored a probe past
  ``probe_interval``) is skipped while another is up, so a request is never
  sent to a broker already known lost. A skipped broker is tried again once
  its link comes back (a new handshake) or when every other one is down.
- **Loss in flight.** When the broker holding a request is lost (closed
  connection, or silent for the probe window, about three heartbeats),
  an idempotent request with no reply yet is sent to the next broker with
  what is left of its deadline; any other request fails with
  :class:`~protocol.errors.BrokerLost` (an ``Unavailable``), since it may
  or may not have run.
- **Deadline.** Every attempt shares the request's one deadline and id.
  When no broker answers before it, the caller gets
  :class:`~protocol.errors.Timeout`.

A typed error answered by a live broker (``unknown_service``, ``too_busy``,
a handler's error) is an answer, not a loss: it is raised, not failed over.
"""
from __future__ import absolute_import, division, print_function

import threading
import time

from protocol.client import Client
from protocol.errors import BrokerLost, Timeout

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Iterator  # noqa: F401

    import zmq  # noqa: F401


class FailoverClient(object):
    """One :class:`Client` per broker, with failover; see the module docstring."""

    def __init__(self, endpoints, timeout=10.0, context=None, curve=None, probe_interval=1.0):
        # type: (list, float, zmq.Context, tuple, float) -> None
        self.endpoints = list(endpoints)
        self.endpoint = u",".join(self.endpoints)
        self.timeout = timeout
        self.links = []  # type: list
        for endpoint in self.endpoints:
            link = Client(endpoint, timeout, context, curve, probe_interval)
            link.resend_on_loss = False  # we resend elsewhere
            self.links.append(link)
        self.failovers = 0  # requests sent again to another broker
        self._preferred = 0
        self._lock = threading.Lock()

    # Counters summed over the links, as one Client reports them.
    @property
    def reconnects(self):
        # type: () -> int
        """Silent brokers reconnected to, over every link."""
        return sum(link.reconnects for link in self.links)

    @property
    def broker_losses(self):
        # type: () -> int
        """Connections to a broker seen closing, over every link."""
        return sum(link.broker_losses for link in self.links)

    @property
    def dropped(self):
        # type: () -> int
        """Replies nobody waited for, over every link."""
        return sum(link.dropped for link in self.links)

    # ------------------------------------------------------------- choice --
    def order(self, exclude=()):
        # type: (tuple) -> list
        """The links to try, best first: up, then never seen, then known down."""
        with self._lock:
            start = self._preferred
        ranked = []
        count = len(self.links)
        for step in range(count):
            index = (start + step) % count
            link = self.links[index]
            if link in exclude:
                continue
            state = link.refresh()
            rank = 0 if state else (1 if state is None else 2)
            ranked.append((rank, step, index, link))
        ranked.sort(key=lambda item: (item[0], item[1]))
        return [(index, link) for _, _, index, link in ranked]

    def _answered(self, index):
        # type: (int) -> None
        with self._lock:
            self._preferred = index

    def _attempts(self, timeout, idem):
        # type: (float, bool) -> Iterator[tuple]
        """Yield (link, seconds left) until one attempt succeeds or nothing is left."""
        deadline = time.time() + (self.timeout if timeout is None else timeout)
        tried = []  # type: list
        while True:
            left = deadline - time.time()
            candidates = self.order(tuple(tried))
            if left <= 0 or not candidates:
                return
            index, link = candidates[0]
            tried.append(link)
            yield index, link, left

    # ------------------------------------------------------------- public --
    def call(self, service, method, params=None, timeout=None, idem=False, **kwargs):
        # type: (str, str, object, float, bool, object) -> object
        """As :meth:`Client.call`, on one broker at a time; see the module docstring."""
        return self.submit(service, method, params, timeout, idem, **kwargs).result()

    def submit(self, service, method, params=None, timeout=None, idem=False, **kwargs):
        # type: (str, str, object, float, bool, object) -> FailoverPending
        """As :meth:`Client.submit`; ``.result()`` fails over when the broker is lost."""
        return FailoverPending(self, service, method, params, timeout, idem, kwargs)

    def request(self, service, envelope, timeout=None, idle_timeout=None):
        # type: (str, object, float, float) -> object
        """As :meth:`Client.request`; fails over only before the first reply part."""
        last = None  # type: Exception
        for index, link, left in self._attempts(timeout, bool(getattr(envelope, "idem", 0))):
            started = False
            try:
                for part in link.request(service, envelope, left, idle_timeout):
                    started = True
                    yield part
                self._answered(index)
                return
            except BrokerLost as exc:
                if started or not getattr(envelope, "idem", False):
                    raise
                last = exc
                self.failovers += 1
        raise last or Timeout(u"no broker answered before the deadline")

    def mmi(self, service, timeout=None):
        # type: (str, float) -> str
        """RFC 8 discovery on the best broker (u"200" or u"404"), failing over on loss."""
        last = None  # type: Exception
        for index, link, left in self._attempts(timeout, True):
            try:
                answer = link.mmi(service, left)
                self._answered(index)
                return answer
            except (BrokerLost, Timeout) as exc:
                last = exc
        raise last or Timeout(u"no broker answered before the deadline")

    def cancel(self, service, request_id, rid=None):
        # type: (str, str, str) -> None
        """Ask every broker to cancel ``request_id`` (advice; only its holder acts)."""
        for link in self.links:
            link.cancel(service, request_id, rid)

    def close(self):
        # type: () -> None
        """Close every link; calls still waiting fail with Unavailable."""
        for link in self.links:
            link.close()

    def __enter__(self):
        # type: () -> FailoverClient
        return self

    def __exit__(self, *exc):
        # type: (object) -> None
        self.close()


class FailoverPending(object):
    """A call in flight on one broker, moved to the next if that broker is lost."""

    def __init__(self, owner, service, method, params, timeout, idem, kwargs):
        # type: (FailoverClient, str, str, object, float, bool, dict) -> None
        self._owner = owner
        self._args = (service, method, params)
        self._idem = idem
        self._kwargs = kwargs
        self._attempts = owner._attempts(timeout, idem)
        self._current = None  # type: tuple
        self._rid = None  # type: str
        self._next()

    def _next(self):
        # type: () -> bool
        for index, link, left in self._attempts:
            kwargs = dict(self._kwargs)
            if self._current is not None:
                # The same request on the next broker: one id for both (SPEC 2.15).
                kwargs.setdefault("rid", self._rid)
            pending = link.submit(self._args[0], self._args[1], self._args[2], left,
                                  self._idem, **kwargs)
            self._rid = kwargs.get("rid") or pending.id
            self._current = (index, pending)
            return True
        return False

    @property
    def id(self):
        # type: () -> str
        """The message id of the current attempt."""
        return self._current[1].id

    def done(self):
        # type: () -> bool
        """True once the current attempt has a reply or a failure waiting."""
        return self._current[1].done()

    def result(self):
        # type: () -> object
        """The result, from whichever broker answered; typed errors as Client.call raises."""
        while True:
            index, pending = self._current
            try:
                value = pending.result()
            except BrokerLost:
                if not self._idem:
                    raise
                self._owner.failovers += 1
                if not self._next():
                    raise Timeout(u"no broker answered before the deadline")
                continue
            self._owner._answered(index)
            return value
