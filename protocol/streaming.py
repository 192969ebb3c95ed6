"""A streamed reply in progress: a handler thread produces parts, the socket thread sends them.

The worker's socket thread must stay free while a response streams: it has
to send each part as soon as the application yields it (SPEC 2.7, 6.3), read
cancels (SPEC 2.11) and heartbeat. So the rest of a stream is produced in a
thread of its own::

    stream = ReplyStream(client, env, parts_iter, wake, marks_more=True)
    stream.start()
    ...                                   # the socket thread, woken through ``wake``:
    for part in stream.take():            # what is queued, joined (bounded) into few parts
        send(part)
    stream.cancel()                       # stop before the next part; last part: cancelled

A lone part goes out at once; parts queued while the socket thread was busy
sending are joined into one (``http-body`` payloads, up to
:data:`COALESCE_BYTES`), so an application that yields many tiny chunks
costs few broker hops. A handler that marks its parts may yield a middle
body chunk as plain bytes (``protocol.wsgi`` does): the envelope is built
here, once per part sent, not once per chunk. Runs on Python 2.7 and 3.x.
"""
from __future__ import absolute_import, division, print_function

import collections
import logging
import threading

from protocol import codec
from protocol.errors import Cancelled, RemoteError
from protocol.replies import error_envelope

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Any, Callable, Iterator, List  # noqa: F401

log = logging.getLogger("protocol.worker")

# Parts joined into one reply at most this big: large enough that per-part costs vanish,
# small enough that a part never waits long behind the one before it.
COALESCE_BYTES = 64 * 1024
# Body bytes a producer may have queued and not yet taken before it waits: an app that
# yields faster than the broker takes (a big file to a slow reader) must not fill memory.
MAX_QUEUED = 1024 * 1024

_END = object()


class ReplyStream(object):
    """The parts of one streamed reply, produced by a thread and taken by the socket thread.

    ``parts`` is the handler's iterator, already advanced past the parts the
    socket thread sent itself. With ``marks_more`` the handler sets ``more``
    on every part (the WSGI host does); otherwise ``lookahead`` is the part
    the handler produced last, and each part's ``more`` is learned from the
    next one, as a generic envelope handler needs. ``context`` is installed
    in the thread (``protocol.worker.current``) by ``bind``.
    """

    def __init__(self, client, env, parts, wake, marks_more, lookahead=None, bind=None,
                 join=True):
        # type: (bytes, codec.Envelope, Iterator[Any], Callable[[], None], bool, Any, Any, bool) -> None
        self.client = client
        self.env = env
        self.key = (client, env.id)
        self.cancelled = False
        self.done = False
        self.woken = False
        self._parts = parts
        self._wake = wake
        self._marks_more = marks_more
        self._lookahead = lookahead
        self._bind = bind
        self._join = join
        self._queue = collections.deque()  # type: collections.deque
        # Each counter is written by one thread only, so no lock is needed to compare them.
        self._pushed = 0  # body bytes queued, by the producer
        self._taken = 0  # body bytes taken, by the socket thread
        self._room = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="worker-stream")
        self._thread.daemon = True

    def start(self):
        # type: () -> None
        """Start producing the remaining parts."""
        self._thread.start()

    def cancel(self):
        # type: () -> None
        """Stop before the next part; the stream then ends with a ``cancelled`` error."""
        self.cancelled = True

    def join(self, timeout=None):
        # type: (float) -> bool
        """Wait for the producing thread; True when it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ----------------------------------------------------- socket thread --
    def take(self):
        # type: () -> List[codec.Envelope]
        """The parts to send now, joined; after a cancel only the final part is kept."""
        self.woken = False  # before draining: a part queued after this wakes us again
        parts = []
        queue = self._queue
        while queue:
            parts.append(queue.popleft())
        self._taken += sum(_size(p) for p in parts)
        self._room.set()
        if self.cancelled:
            parts = [p for p in parts if not isinstance(p, bytes) and not p.more]
        for part in parts:
            if not isinstance(part, bytes):
                part.id = self.env.id
        return coalesce(parts, self.env, COALESCE_BYTES if self._join else 0)

    def finished(self):
        # type: () -> bool
        """True once every part, the final one included, has been taken."""
        return self.done and not self._queue

    # --------------------------------------------------- producer thread --
    def _push(self, part):
        # type: (codec.Envelope) -> None
        self._queue.append(part)
        self._pushed += _size(part)
        if not self.woken:
            self.woken = True
            self._wake()
        while self._pushed - self._taken > MAX_QUEUED and not self.cancelled:
            self._room.clear()
            if self._pushed - self._taken <= MAX_QUEUED:
                break  # taken between the check and the clear
            self._wake()
            self._room.wait(0.05)

    def _produce(self):
        # type: () -> None
        if self._bind is not None:
            self._bind(self.env)
        final = False
        try:
            final = self._loop()
        except Exception as exc:  # a failing stream ends with an error part (SPEC 2.7)
            self._push(error_envelope(self.env.id, exc))
            final = True
        finally:
            try:
                _close(self._parts)  # PEP 3333: the app's iterable is closed, whatever happened
            finally:
                if not final:
                    self._push(codec.Envelope(u"error", id=self.env.id, error=Cancelled(
                        u"the client cancelled the request").to_wire()))
                if self._bind is not None:
                    self._bind(None)
                self.done = True
                self._wake()

    def _loop(self):
        # type: () -> bool
        """Produce until the final part (True) or a cancel (False)."""
        pending = self._lookahead
        while not self.cancelled:
            part = next(self._parts, _END)
            if self.cancelled:
                return False  # stop before the next part: it is never sent
            if not self._marks_more:
                if part is _END:
                    if pending is None:
                        raise RemoteError(u"the handler produced no reply", type=u"RuntimeError")
                    pending.more = False
                    self._push(pending)
                    return True
                if pending is not None:
                    pending.more = True
                    self._push(pending)
                pending = part
                continue
            if part is _END:
                raise RemoteError(u"the handler ended its stream without a final part",
                                  type=u"RuntimeError")
            self._push(part)  # type: ignore[arg-type]
            if not isinstance(part, bytes) and not part.more:  # type: ignore[attr-defined]
                return True
        return False


def _size(part):
    # type: (Any) -> int
    if isinstance(part, bytes):
        return len(part)
    return len(part.payload) if isinstance(part.payload, bytes) else 0


def _close(parts):
    # type: (Any) -> None
    close = getattr(parts, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:  # the stream has ended; a failing close() can only be logged
        log.exception("closing a stream's handler failed")


def coalesce(parts, env, limit=COALESCE_BYTES):
    # type: (List[Any], codec.Envelope, int) -> List[codec.Envelope]
    """Join each part that has ``more`` with the ``http-body`` parts after it, up to ``limit``.

    ``parts`` are envelopes, or bytes standing for an ``http-body`` part
    with ``more`` answering ``env``. The result carries the same bytes in
    the same order in envelopes, as few as the bound allows; a joined part
    takes the ``more`` of the last part it swallowed, so a trailing empty
    final ``http-body`` ends the part before it.
    """
    out = []  # type: List[codec.Envelope]
    pieces = []  # type: List[bytes]
    size = 0
    for part in parts:
        if isinstance(part, bytes):
            payload, kind, more = part, u"http-body", True
        else:
            payload, kind, more = part.payload, part.kind, part.more
        if pieces and out[-1].more and kind == u"http-body" and isinstance(payload, bytes) \
                and size + len(payload) <= limit:
            pieces.append(payload)
            size += len(payload)
            out[-1].more = more
            continue
        if len(pieces) > 1:
            out[-1].payload = codec.Bytes(b"".join(pieces))
        if isinstance(part, bytes):
            part = codec.Envelope(u"http-body", id=env.id, rid=env.rid, more=True,
                                  payload=codec.Bytes(part))
        out.append(part)
        pieces = [payload] if isinstance(payload, bytes) and kind in (
            u"http-response", u"http-body") else []
        size = len(payload) if pieces else 0
    if len(pieces) > 1:
        out[-1].payload = codec.Bytes(b"".join(pieces))
    return out
