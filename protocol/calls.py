"""A client's bookkeeping of the requests it has in flight (2.7 and 3.x).

::

    calls = Calls()
    calls.add(pending)                       # a call or request, by its id
    calls.transmit(pending, link.send)       # sent (or failed when the queue is full)
    calls.route(frames)                      # a reply from the broker, to its caller
    calls.recover(lost, True, transmit)      # the broker died: resend or fail each call

Replies are matched by the id in their envelope header; ``mmi.*`` answers
carry no id, so discovery questions wait in the order they were sent. A
reply nobody waits for (a call that timed out, a cancelled stream's late
part) is counted in ``dropped``. This holds no socket and takes no lock:
the client's leader (:class:`protocol.client.Client`) calls it while it
holds the client's I/O lock.
"""
from __future__ import absolute_import, division, print_function

import collections
import time

import zmq

from protocol import codec, mdp
from protocol.errors import EnvelopeError, Unavailable

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Callable  # noqa: F401

    from protocol.pending import Pending  # noqa: F401


class Calls(object):
    """Requests in flight by id, discovery questions in order, and the outbox."""

    def __init__(self):
        # type: () -> None
        self.by_id = {}  # type: dict  # request id -> Pending
        self.mmi = collections.deque()  # type: collections.deque  # sent mmi.* questions
        self.outbox = collections.deque()  # type: collections.deque  # made, not yet sent
        self.dropped = 0  # replies nobody waited for
        self.resent = 0  # idempotent calls sent again after the broker lost them

    def add(self, pending):
        # type: (Pending) -> None
        """Track ``pending`` by its id, so replies find it."""
        self.by_id[pending.id] = pending

    def forget(self, rid):
        # type: (str) -> None
        """Stop waiting for ``rid``: its replies are dropped from now on."""
        self.by_id.pop(rid, None)

    def waiting(self):
        # type: () -> bool
        """True while some caller waits for the broker (a probe alone does not count)."""
        return bool(self.by_id) or any(not p.probe for p in self.mmi)

    def transmit(self, pending, send):
        # type: (Pending, Callable[[list], None]) -> None
        """Send ``pending`` with ``send`` (non-blocking: raises zmq.Again when full)."""
        if pending.oneway:
            try:
                send(pending.frames)
            except zmq.ZMQError:
                pass  # full or closed: a lost cancel leaves the request to run, nothing worse
            return
        if pending.id is not None and pending.id not in self.by_id:
            return  # the caller gave up before it was sent
        try:
            send(pending.frames)
        except zmq.Again:
            self.by_id.pop(pending.id, None)
            pending.fail(Unavailable(u"the send queue to the broker is full"))
            return
        pending.sent_at = time.time()
        if pending.id is None:
            self.mmi.append(pending)

    def route(self, frames):
        # type: (list) -> None
        """Hand one message from the broker to the caller waiting for it."""
        if len(frames) < 4 or frames[1] != mdp.CLIENT:
            self.dropped += 1
            return
        if frames[2].startswith(b"mmi."):
            if self.mmi:
                waiter = self.mmi.popleft()
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
        pending = self.by_id.get(rid)
        if pending is None:
            self.dropped += 1  # a late answer for a call that already timed out
            return
        pending.replies.append((header, frames[3:]))
        if not header.get(u"more"):
            self.by_id.pop(rid, None)
        pending._signal()

    def fail_questions(self, error):
        # type: (Exception) -> None
        """Fail every discovery question sent (their socket is gone)."""
        while self.mmi:
            self.mmi.popleft().fail(error)

    def recover(self, lost, resend, transmit):
        # type: (Exception, bool, Callable[[Pending], None]) -> None
        """The broker lost what it held: ask discovery again, resend or fail each call.

        Only idempotent calls with no reply part yet are sent again (when
        ``resend``), within their deadline; a streamed reply cut in the
        middle cannot be resumed. The others fail with ``lost``.
        """
        waiting = [p for p in self.mmi if not p.probe]
        self.mmi.clear()
        for pending in waiting:  # discovery questions are always safe to ask again
            transmit(pending)
        now = time.time()
        for pending in list(self.by_id.values()):
            if not pending.sent_at:
                continue  # still in the outbox: it was never sent to the old broker
            if resend and pending.idem and not pending.replies and pending.deadline > now:
                self.resent += 1
                transmit(pending)
            else:
                self.by_id.pop(pending.id, None)
                pending.fail(lost)

    def fail_all(self, error):
        # type: (Exception) -> None
        """Fail everything tracked or queued (the client is closing)."""
        for pending in list(self.by_id.values()) + list(self.mmi) + list(self.outbox):
            pending.fail(error)
        self.by_id.clear()
        self.mmi.clear()
        self.outbox.clear()
