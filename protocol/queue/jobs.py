"""The queue's job format (SPEC 8.2), its Redis key names, and its clocks (2.7 and 3.x).

::

    job = Job.parse(raw)                  # what a consumer's handler gets
    JobStatus(job_id, fields).finished    # what Queue.status and Queue.wait return
    Keys(u"thumbs").job(job_id)           # u"gw:q:thumbs:job:<id>"

The format is in the spec so that any language, or a bash loop with
``redis-cli`` and ``jq``, can consume it. Producer and operator side:
:mod:`protocol.queue.core`; consumer side: :mod:`protocol.queue.consumer`.
"""
from __future__ import absolute_import, division, print_function

import random
import time

from protocol import codec
from protocol._compat import integer_types, text_type, to_bytes
from protocol.errors import EnvelopeError, from_wire

MYPY = False
if MYPY:  # typing is not importable on every 2.7 install; only the checker reads this
    from typing import Any, Optional  # noqa: F401

QUEUED, RUNNING, DONE, FAILED, DEAD = u"queued", u"running", u"done", u"failed", u"dead"
STATES = (QUEUED, RUNNING, DONE, FAILED, DEAD)
JOB_VERSION = 1


def now_ms():
    # type: () -> int
    """Wall-clock milliseconds since the Unix epoch (the unit of deadlines)."""
    return int(time.time() * 1000)


def exponential_backoff(base=1.0, cap=300.0):
    # type: (float, float) -> object
    """A backoff function: ``base * 2**(attempt-1)`` seconds, capped, with 10% jitter."""
    def backoff(attempt):
        # type: (int) -> float
        delay = min(cap, base * (2 ** max(0, attempt - 1)))
        return delay * (0.9 + 0.2 * random.random())
    return backoff


def _text_or_none(value):
    # type: (object) -> str
    return value if isinstance(value, text_type) else None


class Job(object):
    """One job as a consumer's handler sees it (the job JSON of SPEC 8.2)."""

    __slots__ = (
        "attempts",
        "deadline",
        "enqueued",
        "id",
        "idem_key",
        "max_attempts",
        "payload",
        "queue",
        "raw",
        "rid",
        "traceparent",
        "tracestate",
    )

    def __init__(self, fields, raw=b""):
        # type: (dict, bytes) -> None
        self.id = fields[u"id"]
        self.queue = fields[u"queue"]
        self.payload = fields.get(u"payload")
        self.enqueued = fields[u"enqueued"]
        self.attempts = fields[u"attempts"]
        self.max_attempts = fields[u"max_attempts"]
        self.deadline = fields.get(u"deadline")
        self.rid = fields.get(u"rid")
        self.idem_key = fields.get(u"idem_key")
        # Trace context (SPEC 8.2) is advice: a wrong type is dropped, never a reason to fail.
        self.traceparent = _text_or_none(fields.get(u"traceparent"))
        self.tracestate = _text_or_none(fields.get(u"tracestate"))
        self.raw = raw

    @classmethod
    def parse(cls, raw):
        # type: (bytes) -> Job
        """Parse and check stored job JSON; raise EnvelopeError when it is not a job."""
        fields = codec.loads(to_bytes(raw), (), u"job")
        if not isinstance(fields, dict) or fields.get(u"v") != JOB_VERSION:
            raise EnvelopeError(u"job: not a version %d job object" % JOB_VERSION)
        for name, types in ((u"id", (text_type,)), (u"queue", (text_type,)),
                            (u"enqueued", integer_types), (u"attempts", integer_types),
                            (u"max_attempts", integer_types)):
            if not isinstance(fields.get(name), types):
                raise EnvelopeError(u"job.%s: missing or wrong type" % name)
        return cls(fields, to_bytes(raw))

    def __repr__(self):
        # type: () -> str
        return "Job(%r, attempts=%r)" % (self.id, self.attempts)


class JobStatus(object):
    """A job's state (queued/running/done/failed/dead) with its result or error."""

    __slots__ = ("consumer", "error", "id", "job", "result", "state", "updated")

    def __init__(self, job_id, fields):
        # type: (str, dict) -> None
        self.id = job_id
        self.state = fields.get(b"state", b"queued").decode("utf-8")
        self.updated = int(fields.get(b"updated") or 0)
        consumer = fields.get(b"consumer")
        self.consumer = consumer.decode("utf-8") if consumer is not None else None
        self.result = None  # type: Any
        self.error = None  # type: Any
        if fields.get(b"result") is not None:
            self.result = codec.loads(fields[b"result"], (), u"result")
        if fields.get(b"error") is not None:
            self.error = codec.loads(fields[b"error"], (), u"error")
        self.job = None  # type: Optional[Job]
        if fields.get(b"job") is not None:
            try:
                self.job = Job.parse(fields[b"job"])
            except EnvelopeError:
                self.job = None

    @property
    def attempts(self):
        # type: () -> int
        """Attempts started so far (0 when the job record is unreadable)."""
        return self.job.attempts if self.job is not None else 0

    @property
    def finished(self):
        # type: () -> bool
        """True for the terminal states, done and dead."""
        return self.state in (DONE, DEAD)

    def exception(self):
        # type: () -> object
        """The error as a ProtocolError (see protocol.errors.from_wire), or None."""
        return from_wire(self.error) if isinstance(self.error, dict) else None

    def __repr__(self):
        # type: () -> str
        return "JobStatus(%r, %r)" % (self.id, self.state)


class Keys(object):
    """The Redis key names of one queue, all under ``gw:q:<name>:``."""

    def __init__(self, name):
        # type: (str) -> None
        self.prefix = u"gw:q:%s:" % name
        self.ready = self.prefix + u"ready"
        self.delayed = self.prefix + u"delayed"
        self.dead = self.prefix + u"dead"
        self.consumers = self.prefix + u"consumers"

    def job(self, job_id):
        # type: (str) -> str
        """The hash holding one job's JSON, state, result and error."""
        return self.prefix + u"job:" + job_id

    def proc(self, consumer):
        # type: (str) -> str
        """The processing list of one consumer."""
        return self.prefix + u"proc:" + consumer

    def idem(self, key):
        # type: (str) -> str
        """The string mapping an idempotency key to its job id."""
        return self.prefix + u"idem:" + key
