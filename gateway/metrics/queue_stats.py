"""Queue metrics from Redis (SPEC 8.1 keys), per configured queue, for one scrape.

::

    families = list(QueueStats("redis://127.0.0.1:6379/0", ["thumbnails"]).collect())

Each queue costs two pipelined round trips (:meth:`protocol.queue.Queue.counts`),
with a socket timeout and a Redis outage ridden out for at most ``timeout``
seconds; Redis down yields ``gateway_queue_up 0`` and nothing else.

Retries are shown as the jobs waiting for one (the ``delayed`` set): the
queue keeps no running count of retries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from protocol.errors import ProtocolError
from protocol.queue import Queue, connect

FIELDS = (
    ("ready", "gateway_queue_depth", "Jobs ready to be taken."),
    ("processing", "gateway_queue_inflight", "Jobs held by live consumers."),
    ("dead", "gateway_queue_dead_letters", "Jobs in the dead-letter list."),
    ("delayed", "gateway_queue_retry_waiting", "Failed jobs waiting for their retry."),
    ("consumers", "gateway_queue_consumers", "Consumers with a heartbeat entry."),
)


class QueueStats:
    """A prometheus_client custom collector over the estate's Redis queues."""

    def __init__(self, url: str, queues: Sequence[str], timeout: float = 0.5) -> None:
        self.url = url
        self.queues = tuple(sorted(set(queues)))
        self.timeout = timeout
        self._client: Any = None

    def collect(self) -> Iterator[Metric]:
        """Per-queue gauges; only ``gateway_queue_up 0`` when Redis cannot be read."""
        up = GaugeMetricFamily("gateway_queue_up", "1 when Redis answered for every queue.")
        try:
            counts = self._counts()
        except (ProtocolError, OSError):
            counts = None
        except Exception:  # a scrape must never fail on the estate's account
            counts = None
        up.add_metric([], 0.0 if counts is None else 1.0)
        yield up
        if counts is None:
            return
        for key, name, text in FIELDS:
            family = GaugeMetricFamily(name, text, labels=["queue"])
            for queue, sizes in counts:
                family.add_metric([queue], float(sizes[key]))
            yield family

    def _counts(self) -> list[tuple[str, dict[str, int]]]:
        if self._client is None:
            self._client = connect(self.url, timeout=self.timeout)
        out = []
        for name in self.queues:
            queue = Queue(self._client, name, retry_for=self.timeout)
            out.append((name, queue.counts()))
        return out

    def close(self) -> None:
        """Drop the Redis connections."""
        if self._client is not None:
            self._client.connection_pool.disconnect()
            self._client = None
