"""Outlier ejection behind a real gateway front (SPEC 2.13), against both brokers.

A ``wsgi`` route over a service with two replicas, a py3 one that answers at once and a
py2 one that lags past the route's timeout: before the broker ejects the lagging
replica, the requests it gets are answered 504; once it is ejected, every request is
served by the healthy replica, while the lagging one stays registered; after its
ejection time it gets requests again.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.integration.http.client import fetch
from tests.integration.http.conftest import start_gateway
from tests.support.broker import IMPLEMENTATIONS, BrokerProcess
from tests.support.procs import ProcessGroup, wait_until

APP = "tests.integration.http.lagging_app:app"
LAG_MS = 1500
# Long enough for a loaded machine to run every check while the replica is out.
EJECTION_MS = 5000


def stats(broker: BrokerProcess) -> dict[str, int]:
    return dict(broker.stats()["services"].get("lag", {}))


def get_when_idle(broker: BrokerProcess, port: int) -> int:
    """One GET once neither replica holds a request, so the lagging one could take it."""
    wait_until(lambda: stats(broker).get("inflight") == 0, timeout=10, what="idle replicas")
    return fetch(port, "GET", "/lag/x", timeout=10).status


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_lagging_replica_is_ejected_and_the_route_is_served_by_the_other(
        procs: ProcessGroup, workdir: str, py2: str, impl: str) -> None:
    broker = BrokerProcess(procs, impl, heartbeat_ms=100, extra=(
        "--outlier-consecutive", "2", "--outlier-base-ejection-ms", str(EJECTION_MS)))
    for python, lag in ((sys.executable, 0), (py2, LAG_MS)):
        procs.spawn([python, "-m", "protocol.wsgi", "--broker", broker.endpoint,
                     "--service", "lag", APP], env={"LAGGING_APP_MS": str(lag)})
    wait_until(lambda: broker.workers("lag") == 2, timeout=20, what="2 lag replicas")
    gateway = start_gateway(procs, workdir, {"broker": broker.endpoint, "routes": [
        {"prefix": "/lag", "backend": "wsgi", "service": "lag", "timeout": 0.5}]})

    statuses: list[int] = []
    # Each request the lagging replica takes times out; two in a row eject it.
    for _ in range(20):
        statuses.append(get_when_idle(broker, gateway.port))
        if stats(broker).get("ejected") == 1:
            break
    assert stats(broker).get("ejected") == 1, f"no ejection after {statuses}"
    assert statuses.count(504) >= 2 and set(statuses) <= {200, 504}

    wait_until(lambda: stats(broker).get("inflight") == 0, timeout=10, what="idle replicas")
    served = [fetch(gateway.port, "GET", "/lag/x", timeout=10) for _ in range(20)]
    assert [a.status for a in served] == [200] * 20
    assert {json.loads(a.body)["python"] for a in served} == {3}
    now = stats(broker)
    assert now["workers"] == 2 and now["ejected"] == 1  # registered, left out

    wait_until(lambda: stats(broker).get("ejected") == 0, timeout=EJECTION_MS / 1000 + 10,
               what="the lagging replica's return")
    lagged = [get_when_idle(broker, gateway.port) for _ in range(6)]
    assert 504 in lagged  # it is back in the line, and still lagging
    assert broker.counter("ejections") >= 1
