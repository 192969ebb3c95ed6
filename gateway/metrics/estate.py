"""The estate's metrics: broker, arbiter, migrations and queues, as one custom collector.

The HTTP front's ``/_gateway/metrics`` registers it beside its own metrics::

    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry()
    registry.register(EstateCollector(config))      # a GatewayConfig
    generate_latest(registry)

Each scrape asks each part once, each ask bounded by ``timeout`` seconds: the
broker's ``mmi.stats`` (:mod:`gateway.metrics.broker_stats`), the arbiter's
control socket (:mod:`gateway.metrics.arbiter_stats`), the migration store
(:mod:`gateway.metrics.migration_stats`) and Redis for the queues services
consume (:mod:`gateway.metrics.queue_stats`). A part that cannot be read
yields its ``*_up 0`` gauge and nothing else; a scrape never fails because
of the estate. Parts that are not configured (no broker, no queues, no
migrations) yield nothing at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import Metric

from gateway.config import GatewayConfig
from gateway.metrics.arbiter_stats import ArbiterStats
from gateway.metrics.broker_stats import BrokerStats
from gateway.metrics.migration_stats import MigrationStats
from gateway.metrics.queue_stats import QueueStats

DEFAULT_TIMEOUT = 0.5  # per part; a scrape of all four stays within Prometheus' 10 s default


class EstateCollector:
    """Collects every estate part configured in ``config``; ``parts`` may be given instead."""

    def __init__(self, config: GatewayConfig | None, timeout: float = DEFAULT_TIMEOUT,
                 parts: list[Any] | None = None) -> None:
        self.parts: list[Any] = list(parts) if parts is not None else []
        if config is not None and parts is None:
            self.parts = parts_of(config, timeout)

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


def parts_of(config: GatewayConfig, timeout: float = DEFAULT_TIMEOUT) -> list[Any]:
    """The collectors for the parts ``config`` runs."""
    parts: list[Any] = []
    if config.broker.enabled and config.broker.endpoint:
        parts.append(BrokerStats(config.broker.endpoint, timeout))
    parts.append(ArbiterStats(config.control_socket, timeout))
    if config.migrations:
        settings = config.migration_settings
        parts.append(MigrationStats(settings.db, settings))
    queues = sorted({q for svc in config.services for q in svc.queues})
    if queues:
        parts.append(QueueStats(config.redis_url, queues, timeout))
    return parts
