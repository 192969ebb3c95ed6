"""No access-log line is lost when a front drains: on a reload and on SIGTERM, under load.

Each front worker records requests and writes their lines in batches
(:mod:`gateway.metrics.records`); the last batch goes out when the worker
shuts down. A client thread keeps sending requests, each to its own path,
while the estate reloads its front (the old front drains and exits) and
then stops (SIGTERM, every front drains); afterwards every answer the client
got has exactly one line with its status, and no line is there twice.
"""

from __future__ import annotations

import collections
import re
import threading
import time
from collections.abc import Callable

from tests.integration.arbiter.conftest import Estate, alive
from tests.integration.metrics.conftest import access_lines
from tests.support.procs import wait_until

LINE = re.compile(r'"GET /three/d/(\d+) HTTP/1\.1" (\d{3}) ')
MAX_REQUESTS = 3000
MAX_SECONDS = 60.0


class Load:
    """Sequential GETs of ``/three/d/<n>`` from a thread, bounded in count and time."""

    def __init__(self, e: Estate) -> None:
        self.e = e
        self.answers: dict[int, int] = {}      # n -> status (0: no HTTP answer)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        for n in range(MAX_REQUESTS):
            if self.stopping.is_set() or time.monotonic() > deadline:
                return
            self.answers[n] = self.e.get(f"/three/d/{n}", timeout=10.0)[0]

    def answered(self) -> int:
        return sum(1 for status in list(self.answers.values()) if status)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30.0)
        assert not self.thread.is_alive(), "the load thread did not stop"


def test_a_reload_and_a_stop_under_load_lose_no_line(
        metrics_estate: Callable[..., Estate]) -> None:
    e = metrics_estate()
    old = e.program("http")["replicas"][0]["pid"]
    load = Load(e)
    try:
        wait_until(lambda: load.answered() >= 50, timeout=30.0, what="50 answers")
        with open(e.path, encoding="utf-8") as fh:
            text = fh.read().replace("threads = 4", "threads = 6")
        with open(e.path, "w", encoding="utf-8") as fh:
            fh.write(text)
        assert e.reload()["changed"] == ["http"]
        wait_until(lambda: not alive(old), timeout=30.0, what="the old front drained")
        after_reload = load.answered()
        wait_until(lambda: load.answered() >= after_reload + 50, timeout=30.0,
                   what="50 answers from the new front")
    finally:
        load.stop()
    e.close()   # SIGTERM: the new front drains, its last batch goes out at shutdown
    assert e.proc is not None and e.proc.poll() is not None

    logged: dict[int, list[int]] = collections.defaultdict(list)
    for line in access_lines(e):
        match = LINE.search(line)
        if match:
            logged[int(match.group(1))].append(int(match.group(2)))
    answered = {n: status for n, status in load.answers.items() if status}
    assert len(answered) >= 100
    assert {n: statuses for n, statuses in logged.items() if len(statuses) > 1} == {}
    assert {n: logged.get(n) for n, status in answered.items()
            if logged.get(n) != [status]} == {}
    # A request the client got no answer for (cut by the stop) has at most its one line.
    assert set(logged) - set(load.answers) == set()
