"""The estate's metrics as the arbiter's front collects them: readers handed down to metrics.

::

    estate = estate_of(config)                       # a GatewayConfig
    registry.register(EstateCollector(estate))       # gateway.metrics.estate, per scrape

:mod:`gateway.metrics` sits below the arbiter and beside migration, so it
cannot import the arbiter's control channel or the migration store without
closing an import circle. This module, in the layer that owns the arbiter and
sees everything below it, hands them in: the control socket's ``status``
round trip with the arbiter's state names, and an opener for whichever
migration store the config names.
"""

from __future__ import annotations

from typing import Any

from gateway.arbiter.control import call
from gateway.arbiter.states import State
from gateway.config import GatewayConfig
from gateway.metrics.sources import Estate
from gateway.migration.model import MODES
from gateway.migration.stores import Store, exists, open_store


def estate_of(config: GatewayConfig) -> Estate:
    """The :class:`Estate` of ``config``: its parts, and how to read the arbiter and the store."""
    sock = config.control_socket
    settings = config.migration_settings

    def status(timeout: float) -> Any:
        return call(sock, {"cmd": "status"}, timeout=timeout)

    def open_migrations() -> Store | None:
        return open_store(settings) if exists(settings) else None

    return Estate(config, arbiter_status=status, arbiter_states=[s.value for s in State],
                  open_migrations=open_migrations, migration_modes=MODES)
