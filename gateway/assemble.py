"""The composition root: the one place the front is put together from its parts.

::

    app = build_front(http_config)                                  # routes and backends only
    states = ServiceStates(state_file)                            # gateway.arbiter
    fatal = FatalGuards(states, services, migrated)
    app = build_front(http_config, fatal.guards(http_config.routes), health=states)

Per request the front does one strict parse and one route match
(:class:`gateway.http.app.GatewayApp`), then the route's wrappers, each
applied here and nowhere else:

* service health: the guards handed in (the arbiter's
  :class:`~gateway.arbiter.fatalgate.FatalGuards`, one on each route with a
  supervised service) answer 503 while its service is FATAL;
* migration: migrated ``http`` and ``wsgi`` routes get their backends
  wrapped, migrated rpc methods a wrapper the rpc backend calls
  (:mod:`gateway.migration.wiring`), and ``/_gateway/`` serves the admin API.
  A migrated route's FATAL check is the migration's own, since which service
  answers depends on its state; it reads the same ``health`` handed in.

Every refusal is a :class:`~gateway.http.problems.Problem`, so it carries a
request id like any other. :mod:`gateway.http` imports neither migration nor
the arbiter: they are handed in from here. This module sits above http and
migration and below the arbiter, whose front hands its guards in.

Measuring is handed in the same way: :func:`observer` gives a
:class:`~gateway.http.server.FrontServer` its metrics and access log
(:mod:`gateway.metrics`), so the server imports nothing from metrics::

    server.observer = observer(observability(config), estate_of(config))
"""

from __future__ import annotations

from typing import Any

from gateway.http.app import Guard, ProblemGuard, make_app
from gateway.http.backends import Parts, build_openapi
from gateway.http.config import GatewayHttpConfig
from gateway.http.parsing import ProblemProtocol
from gateway.metrics.config import ObservabilityConfig
from gateway.metrics.multiproc import prepare_metrics_dir, process_dead, remove_metrics_dir
from gateway.metrics.observe import Observed
from gateway.metrics.sources import Estate
from gateway.migration.admin import AdminApi
from gateway.migration.lab import Migrations, ServiceHealth
from gateway.migration.wiring import migrated_methods, migrating_factories


def build_front(config: GatewayHttpConfig, guards: dict[str, Guard] | None = None,
                health: ServiceHealth | None = None) -> ProblemGuard:
    """The WSGI front of one process (broker client, contracts and forwarding made once here).

    ``health`` is the supervisor's view of its services (which are FATAL), for the
    migrations; None when nothing supervises them.
    """
    parts = Parts(config)
    factories = {}
    admin = None
    if config.migration is not None:
        migrations = Migrations(config.migration, broker=config.broker,
                                contracts_dir=config.contracts_dir, health=health)
        admin = AdminApi(migrations, config)
        if any(m.kind == "rpc" for m in config.migration.migrations):
            parts.methods.update(migrated_methods(migrations, parts.contracts))
        factories = migrating_factories(config, parts, migrations)
    return make_app(config, factories, build_openapi(config), admin=admin, parts=parts,
                    guards=guards)


class MetricsObserver:
    """A front server's metrics and access log (:class:`gateway.http.server.Observer`).

    The master keeps prometheus_client's multi-process directory (made before
    it forks, a dead worker's live gauges marked, removed at exit); each
    worker's app is wrapped in :class:`~gateway.metrics.observe.Observed`,
    which also counts and logs the parser's refusals.
    """

    def __init__(self, obs: ObservabilityConfig, estate: Estate | None = None) -> None:
        self.obs = obs
        self.estate = estate  # the estate's collectors are served beside the front's metrics
        self.metrics_path = ""

    def master_started(self) -> None:
        """Make this master's metrics directory (metrics on only)."""
        if self.obs.metrics:
            self.metrics_path = prepare_metrics_dir(self.obs.metrics_dir)

    def master_stopped(self) -> None:
        """Remove it: nobody scrapes a stopped front."""
        if self.metrics_path:
            remove_metrics_dir(self.metrics_path)

    def worker_exited(self, pid: int) -> None:
        """Stop counting the dead worker's live gauges."""
        if self.metrics_path:
            process_dead(self.metrics_path, pid)

    def wrap(self, app: Any, config: GatewayHttpConfig) -> Any:
        """``app`` measured, when anything is to be measured."""
        if not self.obs.enabled:
            return app
        observed = Observed(app, self.obs, config, estate=self.estate)
        ProblemProtocol.on_refusal = observed.refused
        return observed


def observer(obs: ObservabilityConfig | None,
             estate: Estate | None = None) -> MetricsObserver | None:
    """The observer a front server is given for ``obs`` (None: nothing to measure)."""
    return None if obs is None else MetricsObserver(obs, estate)
