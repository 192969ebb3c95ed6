"""The estate collector against a whole ``gateway up``: broker, arbiter and the private Redis.

The collector is built from the estate's own config file, as the arbiter's front builds it.
"""

from __future__ import annotations

from typing import Any

from gateway.arbiter.estate import estate_of
from gateway.cli import load_config
from gateway.metrics.estate import EstateCollector
from tests.support.procs import wait_until

SERVICE = """
[services.worker]
runtime = "py3"
app = "tests.integration.arbiter.wsgiapp:app"
queues = ["jobs"]
"""


def sample(collector: Any, name: str, **labels: str) -> float | None:
    for family in collector.collect():
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def test_the_estate_collector_reads_a_running_estate(estate: Any) -> None:
    e = estate(SERVICE)
    collector = EstateCollector(estate_of(load_config(e.path)), timeout=2.0)
    try:
        assert sample(collector, "gateway_broker_up") == 1.0
        wait_until(lambda: sample(collector, "gateway_broker_workers", service="worker") == 1.0,
                   20, what="the worker registered at the broker")
        assert sample(collector, "gateway_arbiter_up") == 1.0
        assert sample(collector, "gateway_arbiter_program_state",
                      program="worker", state="READY") == 1.0
        assert sample(collector, "gateway_arbiter_program_state",
                      program="worker", state="FATAL") == 0.0
        assert sample(collector, "gateway_arbiter_replicas",
                      program="worker", state="READY") == 1.0
        assert sample(collector, "gateway_arbiter_reloads_total", program="worker") == 0.0
        assert sample(collector, "gateway_arbiter_fatal_programs") == 0.0
        assert sample(collector, "gateway_queue_up") == 1.0
        assert sample(collector, "gateway_queue_depth", queue="jobs") == 0.0

        e.write(SERVICE.replace('queues = ["jobs"]', 'queues = ["jobs"]\nreplicas = 2'))
        e.reload("worker")
        assert sample(collector, "gateway_arbiter_reloads_total", program="worker") == 1.0
        assert sample(collector, "gateway_arbiter_replicas_wanted", program="worker") == 2.0
    finally:
        collector.close()
