"""The comparer process of ``gateway up``: broker shadow pairs in, evidence out.

``gateway up`` runs it as a supervised program (``comparer``) whenever the
config has a service migration: the arbiter restarts it when it dies, and a
``gateway reload`` that changes a migration rolls it, like the front. It is one
process for the whole estate because the broker publishes every pair once to
each subscriber: a comparer inside each front worker would record each pair as
many times as there are workers::

    gateway comparer        # (internal) what the arbiter runs; reads $GATEWAY_CONFIG

It subscribes to the broker's pair endpoint (``ipc://<run_dir>/shadow-pairs.ipc``),
compares each pair, asks the primary again on an unexplained difference
(:class:`~gateway.migration.brokercompare.NoiseCheck`), and writes the
comparisons into the migration store in batches
(:class:`~gateway.migration.background.Recorder`), where the promote gate,
``gateway migrate report``/``status`` and the dashboard read them.
"""

from __future__ import annotations

import logging
import threading
import time

from gateway.migration.background import Recorder
from gateway.migration.brokercompare import NoiseCheck, PairComparer
from gateway.migration.config import MigrationSettings
from gateway.migration.startup import first_states
from gateway.migration.stores import open_store

log = logging.getLogger(__name__)


def run(settings: MigrationSettings, broker: str, stop: threading.Event) -> int:
    """Compare pairs until ``stop`` is set; the exit status."""
    services = [m for m in settings.migrations if m.kind == "service"]
    # The store the fronts use (SQLite here, or the Redis several gateways share): each
    # gateway host's comparer records the pairs of its own broker there.
    store = open_store(settings)
    try:
        # A store that does not answer yet (Redis down at start) gets the states later,
        # from the recorder; the pairs' evidence waits for it meanwhile.
        _, created = first_states(store, services, time.time,
                                  "shadow pairs' evidence is kept until then")
        # Only service migrations: their error budget is judged from the broker's
        # counters by the front (brokersplits.ErrorBudget), never from observations here.
        recorder = Recorder(store, services, created=created)
        comparer = PairComparer(settings.pairs_endpoint, services, recorder.add,
                                NoiseCheck(broker))
        comparer.start()
        log.info("comparing shadow pairs of %s from %s",
                 ", ".join(m.service for m in services) or "nothing", settings.pairs_endpoint)
        stop.wait()
        comparer.stop()
        recorder.close()
    finally:
        store.close()
    return 0
