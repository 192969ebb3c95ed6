"""Fixtures for the queue end-to-end tests: consumer/producer processes on both interpreters.

::

    def test_x(redis_server, queue_procs):
        c = queue_procs.consumer("py2", redis_server.url, u"q", work_ms=5)
        queue_procs.kill9(c)
"""

import os
import signal

import pytest

from protocol.queue import Queue, connect
from tests.support.procs import REPO, ProcessGroup, python2, python3

BASH_CONSUMER = os.path.join(REPO, "examples", "queue-consumer.sh")


class QueueProcs:
    """Starts queue consumer/producer processes through a ProcessGroup (killed by PID)."""

    procs: ProcessGroup

    def __init__(self, procs, directory):
        self.procs = procs
        self.directory = directory
        self.kills = 0

    @staticmethod
    def interpreter(which):
        """The interpreter path for "py2" or "py3"."""
        return python2() if which == "py2" else python3()

    def consumer(self, which, url, queue, work_ms=0.0, visibility=1.0, backoff=0.05,
                 acked_log=None):
        """Start tests/integration/queue/consumer_main.py under ``which``."""
        argv = [self.interpreter(which), "-m", "tests.integration.queue.consumer_main",
                "--url", url, "--queue", queue, "--work-ms", str(work_ms),
                "--visibility", str(visibility), "--backoff", str(backoff)]
        if acked_log:
            argv += ["--acked-log", acked_log]
        return self._spawn(argv, f"consumer-{which}", log_stdout=True)

    def producer(self, which, url, queue, count, rate=0.0, log=None, max_attempts=5, **kw):
        """Start tests/integration/queue/producer_main.py under ``which``."""
        argv = [self.interpreter(which), "-m", "tests.integration.queue.producer_main",
                "--url", url, "--queue", queue, "--count", str(count), "--rate", str(rate),
                "--max-attempts", str(max_attempts)]
        if log:
            argv += ["--log", log]
        return self._spawn(argv, f"producer-{which}", **kw)

    def bash_consumer(self, url, queue, args, handler):
        """Start examples/queue-consumer.sh with extra ``args`` and a handler command."""
        argv = ["bash", BASH_CONSUMER, "-u", url, "-q", queue, *args, "--", *handler]
        return self._spawn(argv, "bash-consumer")

    def kill9(self, proc):
        """SIGKILL one process by PID and reap it."""
        self.procs.signal(proc, signal.SIGKILL)
        proc.wait()
        self.kills += 1

    def _spawn(self, argv, name, log_stdout=False, **kw):
        """Spawn with stderr (and stdout if asked) appended to <workdir>/<name>.log."""
        # The child keeps its own descriptor; ours is closed right after the spawn.
        log = open(os.path.join(self.directory, f"{name}.log"), "ab")  # noqa: SIM115
        try:
            if log_stdout:
                kw["stdout"] = log
            return self.procs.spawn(argv, stderr=log, **kw)
        finally:
            log.close()

    def log_text(self, name):
        """What a process wrote to its log (for failure messages)."""
        path = os.path.join(self.directory, f"{name}.log")
        if not os.path.exists(path):
            return ""
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]


@pytest.fixture
def queue_procs(procs, workdir):
    """A QueueProcs bound to the test's ProcessGroup and temporary directory."""
    return QueueProcs(procs, workdir)


@pytest.fixture
def queue_of(request):
    """Build a py3 Queue on a URL; clients are disconnected after the test."""
    made = []

    def make(url, name, **kw):
        q = Queue(connect(url, timeout=3.0), name, **kw)
        made.append(q)
        return q
    yield make
    for q in made:
        q.redis.connection_pool.disconnect()
