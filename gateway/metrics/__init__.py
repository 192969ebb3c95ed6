"""Observability: Prometheus metrics of the front and the estate, the access log, the endpoint.

::

    obs = observability(gateway_config)        # ObservabilityConfig (gateway.metrics.config)
    prepare_metrics_dir(obs.metrics_dir)       # the front master, before it forks
    app = Observed(asgi_app, obs, ...)         # each front worker (gateway.metrics.observe)

Modules:

- :mod:`~gateway.metrics.config`: ``[metrics]``, ``[tracing]`` and ``[http]
  access_log*``, validated;
- :mod:`~gateway.metrics.multiproc`: prometheus_client's multi-process directory
  (one per front master, cleaned when it starts and stops; dead workers marked);
- :mod:`~gateway.metrics.http`: the HTTP metrics, aggregated per process and
  written to the shared files on a timer;
- :mod:`~gateway.metrics.accesslog`: one line per request, nginx "combined"
  plus the gateway's fields, or JSON, written in batches;
- :mod:`~gateway.metrics.observe`: the ASGI layer that measures every request
  and serves ``/_gateway/metrics``;
- :mod:`~gateway.metrics.estate`: the estate's collector (the broker, the
  arbiter, migrations and queues, from :mod:`~gateway.metrics.broker_stats`,
  :mod:`~gateway.metrics.arbiter_stats`, :mod:`~gateway.metrics.migration_stats`
  and :mod:`~gateway.metrics.queue_stats`), registered by the endpoint;
- :mod:`~gateway.metrics.live`: a route's per-runtime numbers from the same files,
  for the migration dashboard (quantiles as PromQL's ``histogram_quantile``);
- :mod:`~gateway.metrics.otlp`: the optional OpenTelemetry export, one span per
  request over OTLP/HTTP.

Nothing here imports ``prometheus_client`` at import time: its value class is
chosen from ``PROMETHEUS_MULTIPROC_DIR`` when it is first imported, and the
front master sets that variable before its workers import it.
"""

from __future__ import annotations

from gateway.metrics.config import ObservabilityConfig, observability

__all__ = ["ObservabilityConfig", "observability"]
