"""The composition root: the one place the front is put together from its parts.

::

    app = build_front(http_config)                                  # routes and backends only
    states = ServiceStates(state_file)                            # gateway.arbiter
    app = build_front(http_config, FatalGuards(states, services), health=states)

Per request the front does one strict parse and one route match
(:class:`gateway.http.app.GatewayApp`), then the route's wrappers. Which
wrapper a route gets is decided here and nowhere else:

* a migrated ``http`` or ``wsgi`` route: the migration's wrapper
  (:mod:`gateway.migration.wiring`), which checks FATAL for the side it
  chose (it reads the same ``health`` handed in);
* any other route that names a service: the service guard of the ``fatal``
  handed in (the arbiter's :class:`~gateway.arbiter.fatalgate.FatalGuards`),
  a 503 while that service is FATAL;
* an ``rpc`` mount: no route guard; its backend makes each call through the
  caller composed here (:func:`rpc_caller`): a migrated method's engine, or
  a FATAL check and the plain broker call;
* ``/_gateway/`` serves the migrations' admin API.

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

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from gateway.http.app import Guard, ProblemGuard, make_app
from gateway.http.backends import Parts, build_openapi
from gateway.http.config import GatewayHttpConfig, Route
from gateway.http.context import Call
from gateway.http.parsing import ProblemProtocol
from gateway.http.rpccall import DirectCall, RpcCall, RpcCaller
from gateway.metrics.config import ObservabilityConfig
from gateway.metrics.multiproc import prepare_metrics_dir, process_dead, remove_metrics_dir
from gateway.metrics.observe import Observed
from gateway.metrics.sources import Estate
from gateway.migration.admin import AdminApi
from gateway.migration.lab import Migrations, ServiceHealth
from gateway.migration.wiring import migrated_methods, migrating_factories


class ServiceGuards(Protocol):
    """FATAL checks (:class:`gateway.arbiter.fatalgate.FatalGuards`)."""

    def for_route(self, route: Route) -> Guard | None: ...

    def check(self, service: str) -> None: ...


def build_front(config: GatewayHttpConfig, fatal: ServiceGuards | None = None,
                health: ServiceHealth | None = None) -> ProblemGuard:
    """The WSGI front of one process (broker client, contracts and forwarding made once here).

    ``fatal`` checks services the supervisor gave up on and ``health`` is its
    view of them, for the migrations; both None when nothing supervises them.
    """
    parts = Parts(config)
    factories = {}
    admin = None
    migrated: frozenset[str] = frozenset()
    methods: dict[tuple[str, str], RpcCall] = {}
    if config.migration is not None:
        migrations = Migrations(config.migration, broker=config.broker,
                                contracts_dir=config.contracts_dir, health=health)
        admin = AdminApi(migrations, config)
        if any(m.kind == "rpc" for m in config.migration.migrations):
            methods = migrated_methods(migrations, parts.contracts, parts.client)
        factories = migrating_factories(config, parts, migrations)
        migrated = frozenset(m.route for m in config.migration.migrations if m.kind == "route")
    if methods or fatal is not None:
        parts.rpc_caller = rpc_caller(parts, methods, fatal)
    return make_app(config, factories, build_openapi(config), admin=admin, parts=parts,
                    guards=route_guards(config.routes, fatal, migrated))


def route_guards(routes: Iterable[Route], fatal: ServiceGuards | None,
                 migrated: frozenset[str] = frozenset()) -> dict[str, Guard]:
    """prefix -> the service guard of each route that gets one.

    Not a migrated route (its migration checks the side it chose) and not an
    ``rpc`` mount (its caller checks each call's service).
    """
    out: dict[str, Guard] = {}
    if fatal is None:
        return out
    for route in routes:
        if route.prefix in migrated or route.backend == "rpc":
            continue
        guard = fatal.for_route(route)
        if guard is not None:
            out[route.prefix] = guard
    return out


class CheckedCall:
    """A plain broker call made only while its service is not FATAL."""

    __slots__ = ("direct", "fatal")

    def __init__(self, fatal: ServiceGuards, direct: DirectCall) -> None:
        self.fatal = fatal
        self.direct = direct

    def __call__(self, call: Call, params: Any, *, timeout: float, idem: bool,
                 schema: Any) -> Any:
        self.fatal.check(self.direct.service)
        return self.direct(call, params, timeout=timeout, idem=idem, schema=schema)


def rpc_caller(parts: Parts, methods: Mapping[tuple[str, str], RpcCall],
               fatal: ServiceGuards | None) -> RpcCaller:
    """The rpc backends' caller: per ``(service, method)``, the migrated method's engine
    adapter, else the plain broker call behind a FATAL check (when anything supervises)."""

    def caller(service: str, method: str) -> RpcCall:
        migrated = methods.get((service, method))
        if migrated is not None:
            return migrated
        direct = DirectCall(parts.client, service, method)
        return direct if fatal is None else CheckedCall(fatal, direct)
    return caller


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
