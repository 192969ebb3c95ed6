"""A queue consumer process for the end-to-end tests; runs on Python 2.7 and 3.x.

::

    python -m tests.integration.queue.consumer_main --url redis://... --queue q \\
        --work-ms 5 --acked-log /tmp/acked.txt

The handler counts its runs per job in the hash ``test:runs`` (so duplicates
can be measured), works for ``--work-ms``, raises for ``{"poison": true}``
unless the key ``test:fixed`` exists, and exits the process for
``{"crash": true}``. Each job id whose ack Redis confirmed is appended to
``--acked-log``. SIGTERM stops it after the current job.
"""
# This file also runs on Python 2.7, so ruff must not "upgrade" it:
# ruff: noqa: UP010, UP025, UP031, SIM115
from __future__ import absolute_import, division, print_function

import argparse
import os
import platform
import signal
import sys
import threading
import time

from protocol.queue import Consumer, Queue, QueueUnavailable, connect


def main(argv=None):
    # type: (list) -> int
    """Parse arguments and consume until SIGTERM."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--queue", required=True)
    ap.add_argument("--work-ms", type=float, default=0.0)
    ap.add_argument("--visibility", type=float, default=1.0)
    ap.add_argument("--backoff", type=float, default=0.05)
    ap.add_argument("--retry-for", type=float, default=20.0)
    ap.add_argument("--acked-log")
    args = ap.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    q = Queue(connect(args.url, timeout=3.0), args.queue, visibility_timeout=args.visibility,
              backoff=lambda attempt: args.backoff, retry_for=args.retry_for)
    runtime = u"%s-%s" % (platform.python_implementation().lower(), platform.python_version())
    acked = []

    def handler(job):
        q.call(q.redis.hincrby, u"test:runs", job.id, 1)
        payload = job.payload if isinstance(job.payload, dict) else {}
        if payload.get(u"crash"):
            os._exit(17)
        if args.work_ms:
            time.sleep(args.work_ms / 1000.0)  # the job's simulated work
        if payload.get(u"poison") and not q.call(q.redis.exists, u"test:fixed"):
            raise ValueError(u"poison job %s" % job.id)
        acked.append(job.id)
        return {u"n": payload.get(u"n", 0) * 2, u"runtime": runtime, u"rid": job.rid}

    consumer = Consumer(q, handler, block=0.5)
    log = open(args.acked_log, "a") if args.acked_log else None
    print("consumer %s ready (%s)" % (consumer.name, runtime))
    sys.stdout.flush()
    try:
        while not stop.is_set():
            job_id = consumer.process_one(0.5)
            if job_id is not None and acked and acked[-1] == job_id and log is not None:
                log.write(job_id + u"\n")
                log.flush()
            del acked[:]
    except QueueUnavailable as exc:
        print("consumer gave up: %s" % (exc,), file=sys.stderr)
        return 3
    finally:
        # Deregistering needs Redis too: when it is gone, keep the exit status above
        # (3) instead of letting a second QueueUnavailable replace it.
        try:
            consumer.close()
        except QueueUnavailable as exc:
            print("consumer could not deregister: %s" % (exc,), file=sys.stderr)
        if log is not None:
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
