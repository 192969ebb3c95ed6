"""The HTTP front as the arbiter runs it: gunicorn on an inherited socket, behind the FATAL gate.

:class:`SupervisedFront` is :class:`gateway.http.GatewayApplication` (gthread,
pinned workers, problem+json parser errors) with three additions:

* it binds ``fd://N``, the arbiter's (or systemd's, or supervisord's) socket;
* the app is wrapped in :class:`~gateway.arbiter.fatalgate.FatalGate`, so routes of
  a FATAL service answer 503 at once;
* readiness notices (``READY=1`` from the master, ``WORKER_READY=1`` from each
  worker) go to ``NOTIFY_SOCKET``, so a reload routes to a new front only
  once its workers accept.

::

    SupervisedFront(config, fd=5).run()       # what `python -m gateway front --fd 5` does
"""

from __future__ import annotations

from typing import Any

from gateway.arbiter import gunicorn_conf
from gateway.arbiter.fatalgate import FatalGate
from gateway.arbiter.statefile import ServiceStates
from gateway.config import GatewayConfig
from gateway.http.server import GatewayApplication, post_fork


class SupervisedFront(GatewayApplication):
    """gunicorn serving the front for one gateway config on an inherited socket."""

    def __init__(self, config: GatewayConfig, http_config: Any, fd: int) -> None:
        self.gateway_config = config
        g = config.gateway
        super().__init__(
            http_config, bind=[f"fd://{fd}"], workers=g.workers, threads=g.threads,
            graceful_timeout=max(1, int(g.stop_grace_s)), post_fork=post_fork,
            when_ready=gunicorn_conf.when_ready, post_worker_init=gunicorn_conf.post_worker_init,
            proc_name="gateway-front")

    def load(self) -> Any:
        """Build the front in the worker, behind the FATAL gate."""
        app = super().load()
        routes = [(r.prefix, r.backend, r.service) for r in self.gateway_config.routes]
        migrated = frozenset(m.target for m in
                             self.gateway_config.migration_settings.migrations)
        return FatalGate(app, ServiceStates(self.gateway_config.state_file), routes,
                         migrated=migrated)
