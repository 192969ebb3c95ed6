"""One client request in flight, and how its replies are read (2.7 and 3.x).

::

    pending = client.submit(u"calc", u"add", [1, 2])   # a Pending
    pending.done()                                      # a reply or a failure is waiting
    pending.result()                                    # 3, or the typed error

A :class:`Pending` holds the request's frames, its deadline and the replies
routed to it (by :class:`protocol.calls.Calls`); its caller waits through the
client that made it (:meth:`protocol.client.Client._await`, the leader and
follower wait). :func:`decode_reply` turns one routed reply into an envelope
and refuses a reply of a kind that does not answer the request (SPEC 3.3).
"""
from __future__ import absolute_import, division, print_function

import collections
import threading  # noqa: F401  # named in type comments

from protocol import codec
from protocol.errors import EnvelopeError, from_wire

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Any  # noqa: F401


class Pending(object):
    """One request in flight: its frames, deadline and the replies received so far.

    Each reply is kept as (parsed header, body frames); the header is None for mmi.
    """

    __slots__ = ("client", "deadline", "error", "event", "frames", "id", "idem", "oneway",
                 "probe", "replies", "sent_at", "service")

    def __init__(self, client, rid, service, frames, deadline, idem=False, probe=False,
                 oneway=False):
        # type: (Any, str, bytes, list, float, bool, bool, bool) -> None
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
        env = decode_reply(self._wait_frames())
        if env.kind == u"error":
            raise from_wire(env.error or {})
        return env.payload

    def done(self):
        # type: () -> bool
        """True once a reply or a failure is waiting."""
        return bool(self.replies) or self.error is not None

    def fail(self, error):
        # type: (Exception) -> None
        """End the wait with ``error``."""
        self.error = error
        self._signal()

    def _signal(self):
        # type: () -> None
        event = self.event
        if event is not None:
            event.set()


# The reply kinds that answer each request kind (SPEC 3.3); anything else with the
# request's id (a worker echoing the request back, say) is no answer at all.
_ANSWERS = {u"call": (u"result", u"error"),
            u"http": (u"http-response", u"http-body", u"error")}


def decode_reply(reply, asked=u"call"):
    # type: (tuple, str) -> codec.Envelope
    """Decode a reply routed by :meth:`protocol.calls.Calls.route`: (parsed header, frames).

    ``asked`` is the kind of the request it answers: a reply of a kind that does
    not answer it raises :class:`EnvelopeError` instead of passing for a result.
    """
    header, body = reply
    if header[u"kind"] not in _ANSWERS.get(asked, (u"error",)):
        raise EnvelopeError(u"header.kind: '%s' is no answer to a request of kind '%s' (id %s)"
                            % (header[u"kind"], asked, header[u"id"]))
    return codec.decode(body, header=header)
