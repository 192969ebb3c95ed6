"""Outlier ejection in a whole estate (``gateway up``), with each broker implementation.

The ``[broker] outlier_*`` keys of gateway.toml reach the broker the arbiter starts: a
py2 service with two replicas, replica 1 lagging past the route's timeout, is served
without a 504 once the broker has ejected the lagging replica (SPEC 2.13).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from gateway.arbiter.ready import mmi_stats
from tests.support.procs import wait_until

SERVICE = """
[[routes]]
prefix = "/lag"
backend = "wsgi"
service = "lag"
timeout_ms = 500

[services.lag]
runtime = "py2"
app = "tests.integration.http.lagging_app:app"
replicas = 2
env = { LAGGING_APP_MS = "1500", LAGGING_APP_REPLICA = "1" }
"""
OUTLIER = "outlier_consecutive = 2\noutlier_base_ejection_ms = 60000\n"


def lag_stats(endpoint: str) -> dict[str, Any]:
    stats = mmi_stats(endpoint)
    assert stats is not None, "the estate's broker did not answer mmi.stats"
    return dict(stats["services"].get("lag", {}))


@pytest.mark.parametrize("implementation", ["native", "python"])
def test_the_estate_ejects_a_lagging_replica(estate: Any, implementation: str) -> None:
    e = estate(SERVICE, start=False, heartbeat_ms=100)
    # The header already has a [broker] table: the keys go into it.
    broker_keys = f'implementation = "{implementation}"\n{OUTLIER}'
    with open(e.path, "w", encoding="utf-8") as fh:
        fh.write(e.header().replace("[runtimes]", broker_keys + "[runtimes]", 1) + SERVICE)
    e.start()
    endpoint = "ipc://" + os.path.join(e.run_dir, "broker.ipc")
    wait_until(lambda: lag_stats(endpoint).get("workers") == 2, timeout=30,
               what="both replicas registered")

    def get_when_idle() -> tuple[int, bytes]:
        # Neither replica busy: the lagging one could take this request.
        wait_until(lambda: lag_stats(endpoint).get("inflight") == 0, timeout=10,
                   what="idle replicas")
        status, body, _ = e.get("/lag/x", timeout=10)
        return status, body

    statuses = []
    for _ in range(20):
        statuses.append(get_when_idle()[0])
        if lag_stats(endpoint).get("ejected") == 1:
            break
    assert lag_stats(endpoint).get("ejected") == 1, f"no ejection after {statuses}"
    assert statuses.count(504) >= 2 and set(statuses) <= {200, 504}, statuses
    answers = [get_when_idle() for _ in range(10)]
    assert [status for status, _ in answers] == [200] * 10
    assert {json.loads(body)["replica"] for _, body in answers} == {"0"}
    stats = mmi_stats(endpoint)
    assert stats is not None and stats["counters"]["ejections"] == 1
    assert lag_stats(endpoint)["workers"] == 2
