"""Leader and followers: which caller thread reads a client's socket (2.7 and 3.x).

::

    turns = Turns()
    turns.enqueue(flush)                      # after queueing a request: send it now or wake
    reply = turns.wait(pending, lead, forget) # a caller waits, leading when nobody else is
    turns.close()

A client has no I/O thread of its own: a thread handoff costs tens of
microseconds each way, more than a broker hop. Whichever calling thread holds
``lock`` is the leader and the only one touching the socket (the lock is the
full memory barrier ZeroMQ asks for when a socket moves between threads). A
caller that finds the lock taken registers as a waiter, wakes the leader
through an OS pipe when it has something to send, and waits on its own
event with its own deadline. A leader that is done hands the lead to a
waiting caller, so replies for others are always being read.
"""
from __future__ import absolute_import, division, print_function

import errno
import os
import threading
import time

from protocol.errors import Timeout

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Callable  # noqa: F401

    from protocol.pending import Pending  # noqa: F401

# How long past its deadline a caller still waits for the broker's typed answer.
GRACE = 0.25


class Turns(object):
    """The I/O lock, the callers waiting on it, and the pipe that wakes its holder."""

    def __init__(self):
        # type: () -> None
        self.lock = threading.Lock()
        self.waiters = set()  # type: set
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            _set_nonblocking(fd)
        self.woken = False

    def enqueue(self, flush):
        # type: (Callable[[], None]) -> None
        """Something was queued: ``flush()`` it now if the lock is free, else wake the leader."""
        if self.lock.acquire(False):
            try:  # send now; replies are read by whoever waits (no poll on this path)
                flush()
            finally:
                self.lock.release()
            if self.waiters:
                self.promote()  # a caller that found the lock taken must not wait leaderless
        elif not self.woken:
            self.woken = True
            self.wake()

    def wait(self, pending, lead, forget):
        # type: (Pending, Callable[[Pending], None], Callable[[str], None]) -> tuple
        """Wait for ``pending``'s next reply, running ``lead(pending)`` whenever we hold the lock.

        Past its deadline (plus :data:`GRACE`) ``forget(pending.id)`` is called
        and :class:`~protocol.errors.Timeout` raised; a failure is raised as is.
        """
        while True:
            if pending.done():
                # A caller woken to lead may find its answer already routed: it must
                # pass the wake-up on, or the other waiters are left leaderless.
                if self.waiters and not self.lock.locked():
                    self.promote()
                if pending.replies:
                    return pending.replies.popleft()
                raise pending.error
            left = pending.deadline + GRACE - time.time()
            if left <= 0:
                forget(pending.id)
                raise Timeout(u"no answer before the deadline", id=pending.id)
            led = self.lock.acquire(False)
            if not led:
                if pending.event is None:
                    pending.event = threading.Event()
                # Register, then try the lock again: either that succeeds, or whoever
                # holds it releases it later and, stepping down, sees us registered.
                self.waiters.add(pending)
                try:
                    led = self.lock.acquire(False)
                    # The event exists now, so a reply routed after this check sets it.
                    if not led and not pending.done():
                        pending.event.wait(left)
                        pending.event.clear()  # the loop re-checks, so a racing set() is kept
                finally:
                    self.waiters.discard(pending)
            if led:
                try:
                    lead(pending)
                finally:
                    self.lock.release()
                # Only a leader stepping down hands over. A follower that woke and found
                # a leader still in place must not wake another: followers waking each
                # other in turn spin the CPU while the leader sits in poll().
                self.promote()

    def promote(self):
        # type: () -> None
        """Wake one waiting caller so that someone keeps reading the socket."""
        for waiter in list(self.waiters)[:1]:
            waiter._signal()

    def wake(self):
        # type: () -> None
        """Interrupt the leader's poll (the pipe is in its poller)."""
        try:
            os.write(self.wake_w, b"\0")
        except OSError as exc:  # a full pipe already means "wake up"
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBADF):
                raise

    def woke(self):
        # type: () -> None
        """The leader saw the pipe readable: empty it, so the next wake-up is seen."""
        try:
            os.read(self.wake_r, 4096)
        except OSError:
            pass
        self.woken = False

    def close(self):
        # type: () -> None
        """Close the pipe (the client is closing, holding the lock)."""
        os.close(self.wake_r)
        os.close(self.wake_w)


def _set_nonblocking(fd):
    # type: (int) -> None
    import fcntl
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
