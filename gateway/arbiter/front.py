"""The HTTP front as the arbiter runs it: the front server on an inherited socket, FATAL-gated.

:class:`SupervisedFront` is :class:`gateway.http.server.FrontServer` (uvicorn
workers, pinned, problem+json parser errors) with two additions:

* it serves the arbiter's (or systemd's, or supervisord's) listening socket,
  inherited as a descriptor, so a reload starts a new front on the same
  socket before the old one drains: no connection is refused meanwhile;
* the front is built by the composition root (:mod:`gateway.assemble`) with
  :class:`~gateway.arbiter.fatalgate.FatalGuards`, so routes of a FATAL
  service answer 503 at once, and with the configured migrations;
* it measures requests and writes the access log (:mod:`gateway.metrics`) as
  ``[metrics]`` and ``[http] access_log`` say, and serves the estate's
  metrics (:mod:`gateway.arbiter.estate`) beside the front's.

Readiness notices (``READY=1`` from the master, ``WORKER_READY=1`` from each
worker once it accepts) go to ``NOTIFY_SOCKET``::

    SupervisedFront(config, http_config, fd=5).run()   # `python -m gateway front --fd 5`
"""

from __future__ import annotations

from typing import Any

from gateway.arbiter.estate import estate_of
from gateway.arbiter.fatalgate import FatalGuards
from gateway.arbiter.statefile import ServiceStates
from gateway.assemble import build_front, observer
from gateway.config import GatewayConfig
from gateway.http.server import FrontServer, socket_from_fd
from gateway.metrics.config import observability


class SupervisedFront(FrontServer):
    """The front server for one gateway config on an inherited socket."""

    def __init__(self, config: GatewayConfig, http_config: Any, fd: int) -> None:
        g = config.gateway
        # keyed as the front's routes are (no trailing slash)
        services = {r.prefix.rstrip("/") or "/": r.service for r in config.routes if r.service}

        def build(front_config: Any) -> Any:
            states = ServiceStates(config.state_file)
            return build_front(front_config, FatalGuards(states, services), health=states)

        super().__init__(http_config, socket_from_fd(fd), workers=g.workers, threads=g.threads,
                         grace=max(1.0, g.stop_grace_s), build=build)
        self.observer = observer(observability(config), estate_of(config))
