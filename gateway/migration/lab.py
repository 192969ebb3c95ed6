"""The migrations of one front process: the parts every migrated request shares.

One :class:`Migrations` per front process (made after the fork, in the
worker, by the composition root :mod:`gateway.assemble`) owns the store, the
state cache, the traffic split, the noise memory, the notebook and its
background recorder, and the shadow pools. Each migrated route or method
runs its requests through a shadow engine
(:class:`~gateway.migration.engine.Experiment`) over these parts::

    migrations = Migrations(settings, health=ServiceStates(state_file))  # handed in
    backend = migrations.wrap_route(cfg, py2, py3, py2_shadow, py3_shadow, services)
    method = MigratedMethod(migrations, cfg, shadow_safe=True)          # gateway.migration.rpc

``health`` is how the process learns which services the supervisor gave up
on (FATAL): whoever composes the front hands it in (the arbiter's state file
reader under ``gateway up``), so migration never imports the supervisor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from gateway.http.wsgitypes import Backend
from gateway.migration.background import Recorder, ShadowPool, ensure_token
from gateway.migration.brokersplits import ServiceMigrations
from gateway.migration.config import MigrationConfig, MigrationSettings
from gateway.migration.model import MigrationState, StoreError
from gateway.migration.noise import NoiseMemory
from gateway.migration.notebook import Notebook
from gateway.migration.route import MigratedRoute
from gateway.migration.split import TrafficSplit
from gateway.migration.startup import first_states
from gateway.migration.stores import StoreUnavailable, open_store

log = logging.getLogger(__name__)


class ServiceHealth(Protocol):
    """The supervisor's view of its services (:class:`gateway.arbiter.statefile.ServiceStates`)."""

    def fatal(self, service: str) -> bool: ...

    def services(self) -> dict[str, dict[str, Any]]: ...


class Migrations:
    """The shared parts of every migration in one front process."""

    def __init__(self, settings: MigrationSettings, clock: Callable[[], float] = time.time,
                 broker: str = "", contracts_dir: str = "",
                 health: ServiceHealth | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.store = open_store(settings, clock=clock)
        # Without an answer from the store, the configured states serve until it answers.
        self._states, created = first_states(self.store, settings.migrations, clock)
        self.token = ensure_token(settings.token_file)
        self.broker = ServiceMigrations(settings, self.store, broker, contracts_dir,
                                        None if created else self._states)
        self.broker.sync()
        self.recorder = Recorder(self.store, settings.migrations, self.broker.tend, created)
        self.pools = {m.name: ShadowPool(m.name, m.shadow_concurrency)
                      for m in settings.migrations}
        self._lock = threading.Lock()
        self.split = TrafficSplit(self.token)
        self.noise = NoiseMemory()
        self.notebook = Notebook(self.recorder.add, clock)
        self.health = health

    def close(self) -> None:
        """Stop the pools and the recorder (after a last flush)."""
        for pool in self.pools.values():
            pool.close()
        self.recorder.close()
        self.store.close()

    def state(self, name: str) -> MigrationState:
        """The current state of ``name`` (re-read only when the store changed)."""
        if self.store.changed():
            try:
                states = self.store.all()
            except StoreUnavailable as exc:  # said once per outage, not once per thread
                self.store.outage.down(f"migration states not refreshed: {exc}")
            except StoreError as exc:
                # The last known states keep serving; the next change is picked up again.
                log.warning("migration states not refreshed: %s", exc)
            else:
                with self._lock:
                    # A state missing from the store (a Redis that restarted empty) keeps
                    # serving as last known until the recorder recreates it.
                    self._states = {**self._states, **states}
        return self._states[name]

    def fatal(self, service: str) -> bool:
        """True when the supervisor gave up on ``service`` (FATAL)."""
        return bool(service) and self.health is not None and self.health.fatal(service)

    def services(self) -> dict[str, Any]:
        """The supervisor's published service states ({} without one)."""
        return dict(self.health.services()) if self.health is not None else {}

    def trusted(self, token: str | None) -> bool:
        """True when ``token`` is the admin token (constant-time)."""
        return self.split.trusted(token)

    def choose(self, cfg: MigrationConfig, environ: dict[str, Any],
               state: MigrationState) -> tuple[str, str | None]:
        """(the control runtime, a new canary cookie to set or None) for one request."""
        return self.split.choose(cfg, environ, state)

    def wrap_route(self, cfg: MigrationConfig, py2: Backend, py3: Backend,
                   py2_shadow: Backend, py3_shadow: Backend,
                   services: dict[str, str] | None = None) -> MigratedRoute:
        """The backend of a migrated route (see :class:`~gateway.migration.route.MigratedRoute`).

        ``services`` names each side's supervised service, if any, for the FATAL check.
        """
        return MigratedRoute(self, cfg, {"py2": py2, "py3": py3},
                             {"py2": py2_shadow, "py3": py3_shadow}, services or {})
