"""A queue producer process for the end-to-end tests; runs on Python 2.7 and 3.x.

::

    python -m tests.integration.queue.producer_main --url redis://... --queue q \\
        --count 1000 --rate 200 --log /tmp/enqueued.txt

Enqueues ``{"n": i, "text": ..., "blob": <bytes>}`` jobs (idempotency key
``job-<i>``, request id ``rid-<i>``), at most ``--rate`` per second, and
appends each job id to ``--log`` once Redis has confirmed it; without
``--log`` it prints the ids. Redis outages shorter than ``--retry-for`` are
ridden through.
"""
# This file also runs on Python 2.7, so ruff must not "upgrade" it:
# ruff: noqa: UP010, UP025, UP031, SIM115
from __future__ import absolute_import, division, print_function

import argparse
import sys
import time

from protocol.codec import Bytes
from protocol.queue import Queue, QueueUnavailable, connect


def main(argv=None):
    # type: (list) -> int
    """Parse arguments and enqueue the jobs."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--queue", required=True)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--max-attempts", type=int, default=5)
    ap.add_argument("--retry-for", type=float, default=20.0)
    ap.add_argument("--log")
    args = ap.parse_args(argv)
    q = Queue(connect(args.url, timeout=3.0), args.queue, max_attempts=args.max_attempts,
              retry_for=args.retry_for)
    log = open(args.log, "a") if args.log else None
    started = time.time()
    try:
        for i in range(args.count):
            if args.rate:
                # Pacing a load generator, not waiting on a condition.
                ahead = started + i / args.rate - time.time()
                if ahead > 0:
                    time.sleep(ahead)
            job_id = q.enqueue({u"n": i, u"text": u"h\u00e9llo w\u00f6rld",
                                u"blob": Bytes(b"\x00\x01\xfe")},
                               idem_key=u"job-%d" % i, rid=u"rid-%d" % i)
            if log is not None:
                log.write(job_id + u"\n")
                log.flush()
            else:
                print(job_id)
                sys.stdout.flush()
    except QueueUnavailable as exc:
        print("producer gave up: %s" % (exc,), file=sys.stderr)
        return 3
    finally:
        if log is not None:
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
