"""RPC peer and queue consumer for the trace test (Python 3): both report the trace they saw.

::

    python -m protocol.worker --broker EP --service tracepeer \
        tests.integration.http.trace_peer:TABLE
    python -m tests.integration.http.trace_peer REDIS_URL QUEUE     # consumes one job, exits
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from protocol.queue import Consumer, Job, Queue, connect
from protocol.worker import current


def seen() -> dict[str, Any]:
    """The request id and the span this process made for the request it handles."""
    ctx = current()
    assert ctx is not None, "called outside a request"
    span = ctx.trace
    return {"rid": ctx.rid, "trace_id": span.trace_id, "parent_id": span.parent_id,
            "span_id": span.span_id, "tracestate": span.tracestate}


def whoami() -> dict[str, Any]:
    """What the callee of a nested call sees."""
    return seen()


TABLE = {"whoami": whoami}


def handle(job: Job) -> dict[str, Any]:
    """What a py3 consumer sees of a job: its fields and the context it runs in."""
    return {"job_traceparent": job.traceparent, "job_tracestate": job.tracestate,
            "job_rid": job.rid, "context": seen()}


def main(argv: list[str]) -> int:
    """Consume one job from queue ``argv[2]`` on Redis ``argv[1]``, then exit."""
    queue = Queue(connect(argv[1]), argv[2])
    Consumer(queue, handle, block=0.2).run(threading.Event(), max_jobs=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
