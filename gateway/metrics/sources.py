"""What the estate's collectors read, handed in by the layers that own each part.

::

    estate = Estate(config, arbiter_status=status, arbiter_states=names,
                    open_migrations=opener, migration_modes=MODES)
    EstateCollector(estate)                         # gateway.metrics.estate

:mod:`gateway.metrics` sits below the arbiter and beside migration: it reads
the arbiter's ``status`` and the migration store through the callables here,
which :func:`gateway.arbiter.estate.estate_of` makes. This module imports
neither prometheus_client nor any other layer, so the front master can hold
an :class:`Estate` before prometheus_client picks its multi-process values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.config import GatewayConfig

# status(timeout) -> the arbiter's status document; raises when it cannot be asked
StatusReader = Callable[[float], Any]


class StoreReader(Protocol):
    """What the collector reads of a migration store (:class:`gateway.migration.stores.Store`)."""

    def all(self) -> Mapping[str, Any]:
        """Every migration's current state (``mode``, ``percent``, ``version``), by name."""

    def audit(self, name: str | None = None, limit: int = 100) -> Iterable[Any]:
        """Audit entries (``name``, ``actor``, ``to_mode``)."""

    def evidence(self, name: str) -> Any:
        """The current epoch's evidence (attributes as in ``migration_stats.EVIDENCE``)."""

    def close(self) -> None:
        """Close the store's connections."""


@dataclass(frozen=True)
class Estate:
    """What to collect: the config, and readers for the parts owned by other layers."""

    config: GatewayConfig
    # status(timeout) -> the arbiter's status document, and the state names it uses
    arbiter_status: StatusReader | None = None
    arbiter_states: Sequence[str] = ()
    # open() -> the migration store, or None while it does not exist; the mode names
    open_migrations: Callable[[], StoreReader | None] | None = None
    migration_modes: Sequence[str] = ()
