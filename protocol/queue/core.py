"""Reliable job queues on Redis: the producer side and the operator side.

This module owns the producer side (enqueue, status, wait) and the operator
side (dead letters, replay, counts); the job format is
:mod:`protocol.queue.jobs`, the errors :mod:`protocol.queue.errors`, and
:mod:`protocol.queue.consumer` owns :class:`Consumer` and :class:`Reaper`,
and :mod:`protocol.queue` exports both::

    from protocol.queue import Queue, Consumer, connect
    q = Queue(connect("redis://127.0.0.1:6379/0"), u"thumbs", max_attempts=5)
    job_id = q.enqueue({u"path": u"/img/1.png"}, idem_key=u"img-1")
    Consumer(q, lambda job: {u"ok": True}).process_one(timeout=1.0)
    q.wait(job_id, timeout=5.0).result        # {u"ok": True}

Errors::

    ProtocolError
     +-- QueueError                      any queue failure
          +-- QueueUnavailable (Unavailable)  Redis unreachable after bounded retries
          +-- QueueTimeout (Timeout)          wait() ran out of time
          +-- QueueConfigError (ValueError)   a client without timeouts, a bad name
          +-- JobNotFound (KeyError)          no record for that job id
          +-- Reject                          raised by a handler: dead-letter now

Every Redis call goes through :meth:`Queue.call`, which retries connection
errors with capped exponential backoff for at most ``retry_for`` seconds and
then raises :class:`QueueUnavailable`, so a restart of Redis is ridden
through and a missing Redis never hangs a caller.
"""
from __future__ import absolute_import, division, print_function

import time

import redis

from protocol import codec
from protocol._compat import binary_type, integer_types, text_type, to_bytes, to_text
from protocol.context import inherited
from protocol.errors import EnvelopeError
from protocol.queue.errors import (
    JobNotFound,
    QueueConfigError,
    QueueError,
    QueueTimeout,
    QueueUnavailable,
    Reject,
)
from protocol.queue.jobs import (
    DEAD,
    DONE,
    FAILED,
    JOB_VERSION,
    QUEUED,
    RUNNING,
    STATES,
    Job,
    JobStatus,
    Keys,
    exponential_backoff,
    now_ms,
)
from protocol.queue.lua import SCRIPTS

MYPY = False
if MYPY:  # typing is not importable on every 2.7 install; only the checker reads this
    from typing import Any, Optional  # noqa: F401

# The job format and the errors have modules of their own; their names stay here too.
__all__ = ["DEAD", "DONE", "FAILED", "JOB_VERSION", "QUEUED", "RUNNING", "STATES", "Job",
           "JobNotFound", "JobStatus", "Keys", "Queue", "QueueConfigError", "QueueError",
           "QueueTimeout", "QueueUnavailable", "Reject", "connect", "exponential_backoff",
           "now_ms"]


def connect(url, timeout=5.0):
    # type: (str, float) -> object
    """A redis-py client for ``url`` with socket and connect timeouts set.

    A ``unix://`` URL gets no connect timeout: a unix-socket connect does not wait
    on the network, and redis-py 3.5 (the 2.7 line) refuses the argument there.
    """
    if url.startswith(u"unix:"):
        return redis.Redis.from_url(url, socket_timeout=timeout)
    return redis.Redis.from_url(url, socket_timeout=timeout,
                                socket_connect_timeout=min(timeout, 2.0))


_RETRYABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Queue(object):
    """A named queue on one Redis: producer, status and dead-letter operations.

    ``redis_client`` is a redis-py client (or a URL for :func:`connect`) that
    must have ``socket_timeout`` set. ``max_attempts`` is stamped into each
    job; ``visibility_timeout`` (s) is how long a consumer may miss heartbeats
    before the reaper requeues its jobs; ``backoff(attempt) -> seconds`` spaces
    retries; results live ``result_ttl`` s, idempotency keys ``idem_ttl`` s;
    ``retry_for`` (s) bounds riding out a Redis outage.
    """

    def __init__(self, redis_client, name, max_attempts=5, visibility_timeout=30.0,
                 backoff=None, result_ttl=3600.0, idem_ttl=86400.0, retry_for=10.0):
        # type: (Any, str, int, float, Any, float, float, float) -> None
        if isinstance(redis_client, (text_type, binary_type)):
            redis_client = connect(to_text(redis_client, u"url"))
        pool_kwargs = getattr(getattr(redis_client, "connection_pool", None),
                              "connection_kwargs", {})
        if not pool_kwargs.get("socket_timeout"):
            raise QueueConfigError(u"the redis client needs socket_timeout so that no call "
                                   u"can hang; use protocol.queue.connect(url)")
        name = to_text(name, u"name")
        if not name or u":" in name or len(name) > 200:
            raise QueueConfigError(u"queue name must be 1-200 characters without ':'")
        if int(max_attempts) < 1:
            raise QueueConfigError(u"max_attempts must be at least 1")
        self.redis = redis_client  # type: Any
        self.name = name
        self.keys = Keys(name)
        self.max_attempts = int(max_attempts)
        self.visibility_timeout = float(visibility_timeout)
        self.backoff = backoff or exponential_backoff()  # type: Any
        self.result_ttl = float(result_ttl)
        self.idem_ttl = float(idem_ttl)
        self.retry_for = float(retry_for)
        self.socket_timeout = float(pool_kwargs["socket_timeout"])
        self.scripts = dict((k, self.redis.register_script(v))
                            for k, v in SCRIPTS.items())

    # ------------------------------------------------------------ transport --

    def call(self, fn, *args, **kwargs):
        # type: (Any, Any, Any) -> Any
        """Run ``fn(*args)``, retrying connection errors with backoff for ``retry_for`` s."""
        give_up = time.time() + self.retry_for
        delay = 0.02
        while True:
            try:
                return fn(*args, **kwargs)
            except _RETRYABLE as exc:
                if time.time() + delay > give_up:
                    raise QueueUnavailable(u"redis unavailable for queue %s: %s"
                                           % (self.name, exc))
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except redis.exceptions.RedisError as exc:
                raise QueueError(u"redis error on queue %s: %s" % (self.name, exc))

    def script(self, name, keys, args):
        # type: (str, list, list) -> Any
        """Run one of the queue's Lua scripts (one round trip, retried on reconnect)."""
        return self.call(self.scripts[name], keys=keys, args=args)

    # ------------------------------------------------------------- producer --

    def enqueue(self, payload, idem_key=None, deadline=None, rid=None, max_attempts=None,
                traceparent=None, tracestate=None):
        # type: (object, str, int, str, int, str, str) -> str
        """Store a job and make it ready; return its id.

        With ``idem_key`` a second enqueue returns the first job's id and adds
        nothing (while the key lives, ``idem_ttl``). ``deadline`` is absolute,
        ms since the epoch; ``rid`` is the request id to carry along. Inside a
        handler ``rid`` and the W3C trace context default to the request's
        (:func:`protocol.worker.current`), so the job joins the request's trace.
        """
        if deadline is not None and (not isinstance(deadline, integer_types)
                                     or isinstance(deadline, bool)):
            raise EnvelopeError(u"deadline: expected int milliseconds since the epoch")
        rid, traceparent, tracestate = inherited(rid, traceparent, tracestate)
        job_id = codec.new_id()
        fields = {
            u"v": JOB_VERSION, u"id": job_id, u"queue": self.name,
            u"payload": codec.to_json(payload), u"enqueued": now_ms(), u"attempts": 0,
            u"max_attempts": int(max_attempts or self.max_attempts),
            u"deadline": deadline,
            u"rid": None if rid is None else to_text(rid, u"rid"),
            u"idem_key": None if idem_key is None else to_text(idem_key, u"idem_key"),
        }
        # Omitted when absent, so a job without a trace is byte for byte what it was.
        if traceparent is not None:
            fields[u"traceparent"] = to_text(traceparent, u"traceparent")
            if tracestate is not None:
                fields[u"tracestate"] = to_text(tracestate, u"tracestate")
        body = codec.dumps(fields)
        keys = [self.keys.ready, self.keys.job(job_id)]
        if idem_key is not None:
            keys.append(self.keys.idem(to_text(idem_key, u"idem_key")))
        out = self.script("enqueue", keys, [job_id, body, now_ms(), int(self.idem_ttl * 1000)])
        return to_text(to_bytes(out).decode("ascii"))

    def status(self, job_id):
        # type: (str) -> Optional[JobStatus]
        """The job's :class:`JobStatus`, or None when it is unknown or expired."""
        fields = self.call(self.redis.hgetall, self.keys.job(job_id))
        if not fields:
            return None
        fields = dict((to_bytes(k), to_bytes(v)) for k, v in fields.items())
        return JobStatus(job_id, fields)

    def wait(self, job_id, timeout=30.0):
        # type: (str, float) -> JobStatus
        """Poll until the job is done or dead; return its status.

        Raises :class:`JobNotFound` for an unknown id and :class:`QueueTimeout`
        when ``timeout`` seconds pass first.
        """
        give_up = time.time() + timeout
        delay = 0.005
        while True:
            st = self.status(job_id)
            if st is None:
                raise JobNotFound(u"no job %s in queue %s" % (job_id, self.name))
            if st.finished:
                return st
            left = give_up - time.time()
            if left <= 0:
                raise QueueTimeout(u"job %s still %s after %.1fs" % (job_id, st.state, timeout))
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.2)

    # ------------------------------------------------------------- operator --

    def dead_letters(self, limit=100):
        # type: (int) -> list
        """Statuses of up to ``limit`` dead jobs, oldest first, each with its error."""
        ids = self.call(self.redis.lrange, self.keys.dead, -limit, -1)
        out = []
        for raw in reversed(ids):
            st = self.status(to_text(to_bytes(raw).decode("ascii")))
            if st is not None:
                out.append(st)
        return out

    def replay(self, job_id):
        # type: (str) -> int
        """Move one dead job back to the ready list, attempts reset; return 1 or 0."""
        return int(self.script("replay", [self.keys.dead, self.keys.ready],
                               [now_ms(), self.keys.prefix, job_id, 1]))

    def replay_all(self, limit=1000):
        # type: (int) -> int
        """Replay up to ``limit`` dead jobs, oldest first; return how many moved."""
        return int(self.script("replay", [self.keys.dead, self.keys.ready],
                               [now_ms(), self.keys.prefix, u"", int(limit)]))

    def promote(self, limit=1000):
        # type: (int) -> int
        """Move retries whose backoff has elapsed back to the ready list."""
        return int(self.script("promote", [self.keys.delayed, self.keys.ready],
                               [now_ms(), self.keys.prefix, int(limit)]))

    def counts(self):
        # type: () -> dict
        """Sizes: ready, delayed, dead, processing (over live consumers) and consumers."""
        # Each attempt builds its own pipeline: redis-py empties a pipeline's command
        # list when execute() fails, so re-running the same one would send nothing.
        def sizes():
            # type: () -> list
            pipe = self.redis.pipeline(transaction=False)
            pipe.llen(self.keys.ready)
            pipe.zcard(self.keys.delayed)
            pipe.llen(self.keys.dead)
            pipe.zrange(self.keys.consumers, 0, -1)
            return pipe.execute()

        def lengths(names):
            # type: (list) -> list
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.llen(self.keys.proc(to_bytes(name).decode("utf-8")))
            return pipe.execute()

        ready, delayed, dead, names = self.call(sizes)
        processing = sum(self.call(lengths, names)) if names else 0
        return {u"ready": ready, u"delayed": delayed, u"dead": dead,
                u"processing": processing, u"consumers": len(names)}
