"""The estate's metrics: broker, arbiter, migrations and queues, as one custom collector.

The HTTP front's ``/_gateway/metrics`` registers it beside its own metrics::

    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry()
    registry.register(EstateCollector(estate))      # an Estate, from gateway.arbiter.estate
    generate_latest(registry)

Each scrape asks each part once, each ask bounded by ``timeout`` seconds: the
broker's ``mmi.stats`` (:mod:`gateway.metrics.broker_stats`), the arbiter's
control socket (:mod:`gateway.metrics.arbiter_stats`), the migration store
(:mod:`gateway.metrics.migration_stats`) and Redis for the queues services
consume (:mod:`gateway.metrics.queue_stats`). A part that cannot be read
yields its ``*_up 0`` gauge and nothing else; a scrape never fails because
of the estate. Parts that are not configured (no broker, no queues, no
migrations) yield nothing at all.

The arbiter and the migration store belong to layers above (or beside)
metrics, so an :class:`~gateway.metrics.sources.Estate` carries how to read them, handed in by the
arbiter's layer (:func:`gateway.arbiter.estate.estate_of`); without them their
parts are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import Metric

from gateway.metrics.arbiter_stats import ArbiterStats
from gateway.metrics.broker_stats import BrokerStats
from gateway.metrics.migration_stats import MigrationStats
from gateway.metrics.queue_stats import QueueStats
from gateway.metrics.sources import Estate

__all__ = ["DEFAULT_TIMEOUT", "Estate", "EstateCollector", "parts_of"]

DEFAULT_TIMEOUT = 0.5  # per part; a scrape of all four stays within Prometheus' 10 s default


class EstateCollector:
    """Collects every part of ``estate``; ``parts`` (collectors) may be given instead."""

    def __init__(self, estate: Estate | None, timeout: float = DEFAULT_TIMEOUT,
                 parts: list[Any] | None = None) -> None:
        self.parts: list[Any] = list(parts) if parts is not None else []
        if estate is not None and parts is None:
            self.parts = parts_of(estate, timeout)

    def collect(self) -> Iterator[Metric]:
        """Every part's families, in a fixed order: broker, arbiter, migrations, queues."""
        for part in self.parts:
            yield from part.collect()

    def close(self) -> None:
        """Release the connections parts keep between scrapes (Redis, SQLite)."""
        for part in self.parts:
            closer = getattr(part, "close", None)
            if closer is not None:
                closer()


def parts_of(estate: Estate, timeout: float = DEFAULT_TIMEOUT) -> list[Any]:
    """The collectors for the parts ``estate`` runs."""
    config = estate.config
    parts: list[Any] = []
    if config.broker.enabled and config.broker.endpoint:
        parts.append(BrokerStats(config.broker.endpoint, timeout))
    if estate.arbiter_status is not None:
        parts.append(ArbiterStats(estate.arbiter_status, estate.arbiter_states, timeout))
    if config.migrations and estate.open_migrations is not None:
        parts.append(MigrationStats(estate.open_migrations, estate.migration_modes))
    queues = sorted({q for svc in config.services for q in svc.queues})
    if queues:
        parts.append(QueueStats(config.redis_url, queues, timeout))
    return parts
