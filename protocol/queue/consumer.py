"""Consumers and the reaper of a reliable Redis queue (SPEC section 8).

A :class:`Consumer` registers in the queue's heartbeat ZSET, moves one job
at a time from the ready list to its own processing list (BLMOVE with a
timeout), starts it, runs the handler while a background thread keeps the
heartbeat fresh, and then acks or fails it. The :class:`Reaper` requeues
the jobs of consumers whose heartbeat is older than the visibility timeout
and promotes due retries; every consumer runs it now and then, so no extra
process is needed::

    import threading
    from protocol.queue import Queue, Consumer, connect
    q = Queue(connect(url), u"thumbs", visibility_timeout=10)
    stop = threading.Event()
    Consumer(q, lambda job: {u"size": len(job.payload[u"data"])}).run(stop)
"""
from __future__ import absolute_import, division, print_function

import logging
import os
import socket
import threading
import time
import traceback

from protocol import codec
from protocol._compat import to_bytes, to_text
from protocol.errors import EnvelopeError, ProtocolError, RemoteError
from protocol.queue.errors import QueueError, QueueUnavailable, Reject
from protocol.queue.jobs import Job, now_ms
from protocol.worker import _bind_context, _restore_context, current

MYPY = False
if MYPY:  # typing is not importable on every 2.7 install; only the checker reads this
    from typing import Any  # noqa: F401

    from protocol.queue.core import Queue  # noqa: F401

log = logging.getLogger(__name__)


def _text(raw):
    # type: (object) -> str
    return to_text(to_bytes(raw).decode("utf-8"))


class Reaper(object):
    """Requeues jobs held by dead consumers and promotes due retries."""

    def __init__(self, queue, scan_orphans=True):
        # type: (Queue, bool) -> None
        self.queue = queue
        self.scan_orphans = scan_orphans

    def run_once(self):
        # type: () -> int
        """One pass; returns how many jobs were requeued or dead-lettered."""
        q = self.queue
        cutoff = now_ms() - int(q.visibility_timeout * 1000)
        stale = q.call(q.redis.zrangebyscore, q.keys.consumers,
                       u"-inf", cutoff)
        names = {_text(n) for n in stale}
        if self.scan_orphans:
            names.update(self._orphans())
        moved = 0
        for name in sorted(names):
            n = int(q.script("reap", [q.keys.consumers, q.keys.proc(name), q.keys.ready,
                                      q.keys.dead],
                             [name, now_ms(), int(q.visibility_timeout * 1000),
                              q.keys.prefix, 0]))
            if n > 0:
                log.info("queue %s: reaped %d job(s) of consumer %s", q.name, n, name)
                moved += n
        q.promote()
        return moved

    def _orphans(self):
        # type: () -> list
        """Consumers with a processing list but no heartbeat entry at all."""
        q = self.queue
        match = q.keys.proc(u"*")
        keys = q.call(lambda: list(q.redis.scan_iter(match=match, count=500)))
        cut = len(q.keys.proc(u""))
        out = []
        for key in keys:
            name = _text(key)[cut:]
            if q.call(q.redis.zscore, q.keys.consumers, name) is None:
                out.append(name)
        return out

    def run(self, stop_event, interval=1.0):
        # type: (threading.Event, float) -> None
        """Reap every ``interval`` seconds until ``stop_event`` is set."""
        while not stop_event.is_set():
            self.run_once()
            stop_event.wait(interval)


class Consumer(object):
    """Takes jobs from a queue and runs ``handler(job) -> result`` for each.

    The result must have a JSON view (protocol.codec.to_json). A handler that
    raises fails the attempt (retried with the queue's backoff until the
    job's ``max_attempts``, then dead-lettered with the error); raising
    :class:`~protocol.queue.Reject` dead-letters at once. ``reap_interval``
    (s, None to disable) is how often this consumer also runs the reaper.
    """

    def __init__(self, queue, handler, name=None, block=1.0, reap_interval=None):
        # type: (Queue, object, str, float, float) -> None
        self.queue = queue
        self.handler = handler  # type: Any
        self.name = name or u"%s:%d:%s" % (socket.gethostname(), os.getpid(),
                                           codec.new_id()[:8])
        # A blocking read must return before the socket timeout fires.
        self.block = max(0.01, min(float(block), queue.socket_timeout - 0.5))
        self.heartbeat_interval = max(0.05, queue.visibility_timeout / 3.0)
        if reap_interval is None:
            reap_interval = max(0.1, queue.visibility_timeout / 2.0)
        self.reap_interval = reap_interval
        self.reaper = Reaper(queue)
        self.proc_key = queue.keys.proc(self.name)
        self.processed = 0
        self._next_reap = 0.0
        self._check_own = True
        self._beat_stop = threading.Event()
        self._beat = None  # type: Any

    # ------------------------------------------------------------ heartbeat --

    def tick(self):
        # type: () -> int
        """Heartbeat and promote due retries; return the length of our processing list."""
        q = self.queue
        out = q.script("tick", [q.keys.consumers, q.keys.delayed, q.keys.ready, self.proc_key],
                       [self.name, now_ms(), q.keys.prefix, 100])
        return int(out[1])

    def _beat_loop(self):
        # type: () -> None
        while not self._beat_stop.wait(self.heartbeat_interval):
            try:
                self.tick()
            except QueueError as exc:  # the main loop reports outages
                log.debug("heartbeat of %s failed: %s", self.name, exc)

    def open(self):
        # type: () -> None
        """Register (first heartbeat) and start the heartbeat thread; idempotent."""
        if self._beat is not None:
            return
        self.tick()
        self._beat_stop.clear()
        beat = threading.Thread(target=self._beat_loop, name="queue-heartbeat")
        beat.daemon = True
        beat.start()
        self._beat = beat

    def close(self):
        # type: () -> None
        """Stop heartbeating, requeue anything still held, and deregister."""
        if self._beat is not None:
            self._beat_stop.set()
            self._beat.join(5.0)
            self._beat = None
        q = self.queue
        q.script("reap", [q.keys.consumers, self.proc_key, q.keys.ready, q.keys.dead],
                 [self.name, now_ms(), 0, q.keys.prefix, 1])

    # ----------------------------------------------------------------- work --

    def _take(self, timeout):
        # type: (float) -> Any
        """The next job id: one left in our own list first, else BLMOVE from ready."""
        q = self.queue
        if self._check_own:
            held = q.call(q.redis.lrange, self.proc_key, -1, -1)
            self._check_own = False
            if held:
                return _text(held[0])
        try:
            raw = q.redis.execute_command(
                "BLMOVE", q.keys.ready, self.proc_key, "RIGHT", "LEFT",
                max(0.01, min(timeout, self.block)))
        except Exception:
            # The move may have happened with the reply lost: look at our list next.
            self._check_own = True
            raise
        return _text(raw) if raw is not None else None

    def process_one(self, timeout=1.0):
        # type: (float) -> object
        """Take, run and settle at most one job; return its id, or None if none came."""
        self.open()
        q = self.queue
        if self.reap_interval and time.time() >= self._next_reap:
            self._next_reap = time.time() + self.reap_interval
            self.reaper.run_once()
        job_id = q.call(self._take, timeout)
        if job_id is None:
            self._check_own = self.tick() > 0
            return None
        out = q.script("start", [self.proc_key, q.keys.job(job_id), q.keys.dead],
                       [job_id, now_ms(), self.name])
        verdict = _text(out[0])
        if verdict != u"run":
            return job_id if verdict == u"dead" else None
        try:
            job = Job.parse(out[1])
        except EnvelopeError as exc:
            self._fail(job_id, exc.to_wire(), final=True, attempts=1, max_attempts=1)
            return job_id
        # The job runs as its request would: current() gives its deadline, rid and trace,
        # so calls, jobs and log lines it makes join the request's trace (SPEC 8.6).
        outer = current()
        _bind_context(codec.Envelope(
            u"call", id=job.id, method=u"queue:" + job.queue, deadline=job.deadline,
            rid=job.rid, traceparent=job.traceparent, tracestate=job.tracestate))
        try:
            result = self.handler(job)
            body = codec.dumps(codec.to_json(result))
        except Reject as exc:
            self._fail(job_id, exc.to_wire(), final=True, attempts=job.attempts,
                       max_attempts=job.max_attempts)
        except ProtocolError as exc:
            self._fail(job_id, exc.to_wire(), final=False, attempts=job.attempts,
                       max_attempts=job.max_attempts)
        except Exception as exc:
            err = RemoteError(u"%s" % (exc,), type=type(exc).__name__,
                              traceback=traceback.format_exc())
            self._fail(job_id, err.to_wire(), final=False, attempts=job.attempts,
                       max_attempts=job.max_attempts)
        else:
            q.script("ack", [self.proc_key, q.keys.job(job_id), q.keys.ready, q.keys.dead],
                     [job_id, now_ms(), body, int(q.result_ttl * 1000), self.name])
        finally:
            _restore_context(outer)
        self.processed += 1
        return job_id

    def _fail(self, job_id, error, final, attempts, max_attempts):
        # type: (str, dict, bool, int, int) -> None
        q = self.queue
        due = now_ms()
        if not final and attempts < max_attempts:
            due += int(1000 * q.backoff(attempts))
        q.script("fail", [self.proc_key, q.keys.job(job_id), q.keys.delayed, q.keys.dead],
                 [job_id, now_ms(), codec.dumps(error), due, 1 if final else 0])

    def run(self, stop_event, max_jobs=None):
        # type: (threading.Event, int) -> int
        """Process jobs until ``stop_event`` is set (or ``max_jobs``); return the count.

        Outages shorter than the queue's ``retry_for`` are ridden through;
        a longer one raises :class:`~protocol.queue.QueueUnavailable`.
        """
        done = 0
        try:
            while not stop_event.is_set() and (max_jobs is None or done < max_jobs):
                if self.process_one(self.block) is not None:
                    done += 1
        finally:
            try:
                self.close()
            except QueueUnavailable as exc:
                log.warning("consumer %s could not deregister: %s", self.name, exc)
        return done
