"""Reliable job queues on Redis, for Python 2.7 and 3.x (SPEC section 8).

One import path for users, whatever module holds a name::

    from protocol.queue import Queue, Consumer, connect
    q = Queue(connect("redis://127.0.0.1:6379/0"), u"thumbs", max_attempts=5)
    job_id = q.enqueue({u"path": u"/img/1.png"}, idem_key=u"img-1")
    Consumer(q, lambda job: {u"ok": True}).process_one(timeout=1.0)
    q.wait(job_id, timeout=5.0).result        # {u"ok": True}

The parts: :mod:`protocol.queue.core` (producer and operator side),
:mod:`protocol.queue.jobs` (the job format, key names and clocks),
:mod:`protocol.queue.errors` (the error tree), :mod:`protocol.queue.consumer`
(:class:`Consumer`, :class:`Reaper`) and :mod:`protocol.queue.lua` (the Lua
of every step). The consumer imports the core, never this package, so there
is no import circle.
"""
from __future__ import absolute_import

from protocol.queue.consumer import Consumer, Reaper
from protocol.queue.core import (
    DEAD,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    STATES,
    Job,
    JobNotFound,
    JobStatus,
    Keys,
    Queue,
    QueueConfigError,
    QueueError,
    QueueTimeout,
    QueueUnavailable,
    Reject,
    connect,
    exponential_backoff,
    now_ms,
)

__all__ = [
    "Consumer", "DEAD", "DONE", "FAILED", "Job", "JobNotFound", "JobStatus", "Keys",
    "Queue", "QueueConfigError", "QueueError", "QueueTimeout", "QueueUnavailable",
    "QUEUED", "RUNNING", "Reaper", "Reject", "STATES", "connect", "exponential_backoff",
    "now_ms",
]
