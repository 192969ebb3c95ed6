"""Which migration store a gateway uses, and the one interface both implementations give.

``[migration] store = "sqlite"`` (the default) keeps states, audit and evidence
in a SQLite file in the run dir, for one machine; ``store = "redis"`` keeps
them in a Redis that several gateways share::

    store = open_store(settings, run_dir)     # a MigrationStore or a RedisStore
    store.ensure("notes")
    if store.changed():                       # cheap on both: the data plane calls it
        states = store.all()

Errors: every failure is a :class:`~gateway.migration.store.StoreError`; Redis not
answering in time is its subclass :class:`StoreUnavailable`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from gateway.migration.config import MigrationSettings
from gateway.migration.outage import Outage
from gateway.migration.redisstore import RedisStore, StoreUnavailable
from gateway.migration.store import (
    AuditEntry,
    Comparison,
    Evidence,
    GateResult,
    MigrationState,
    MigrationStore,
    Observation,
    Thresholds,
)

__all__ = ["Store", "StoreUnavailable", "exists", "open_store"]


class Store(Protocol):
    """What the gateway asks of a migration store (SQLite or Redis)."""

    outage: Outage  # one "unreachable" line per process, whoever notices first

    def close(self) -> None:
        """Release connections and threads."""

    def ensure(self, name: str, mode: str = "py2", percent: int = 0) -> MigrationState:
        """Create ``name`` in its initial state if missing."""

    def get(self, name: str) -> MigrationState:
        """The state of ``name``; KeyError if unknown."""

    def all(self) -> dict[str, MigrationState]:
        """Every state, by name."""

    def changed(self) -> bool:
        """True when a state changed since this thread last asked; cheap enough per request."""

    def transition(self, name: str, mode: str, percent: int = 0, *, actor: str,
                   reason: str = "", forced: bool = False,
                   expect_version: int | None = None) -> MigrationState:
        """One audited move; TransitionError if illegal or raced."""

    def promote(self, name: str, thresholds: Thresholds, *, actor: str, force: bool = False,
                reason: str = "") -> MigrationState:
        """Gated move to py3 (or py3 -> retired)."""

    def rollback(self, name: str, *, actor: str, reason: str = "") -> MigrationState:
        """Back to py2."""

    def audit(self, name: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """State changes, newest first."""

    def record(self, observations: Iterable[Observation],
               comparisons: Iterable[Comparison]) -> None:
        """Store a batch of evidence."""

    def evidence(self, name: str) -> Evidence:
        """The current epoch's comparisons, judged."""

    def gate(self, name: str, thresholds: Thresholds) -> GateResult:
        """The promote gate's verdict."""

    def error_budget_spent(self, name: str, thresholds: Thresholds) -> str | None:
        """Why py3 spent its error budget, or None."""

    def auto_rollback(self, name: str, thresholds: Thresholds) -> MigrationState | None:
        """Roll back once when the error budget is spent."""

    def report(self, name: str, thresholds: Thresholds) -> dict[str, Any]:
        """State, evidence, gate, traffic and latency."""

    def series(self, name: str, bucket_s: float = 10.0, buckets: int = 30) -> list[list[Any]]:
        """Comparisons and regressions per time bucket."""

    def recent_diffs(self, name: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The latest diffs, newest first."""


def open_store(settings: MigrationSettings, run_dir: str = "",
               clock: Callable[[], float] = time.time) -> Store:
    """The store ``settings`` name: SQLite at ``settings.db`` (``run_dir`` when unset) or Redis."""
    if settings.store == "redis":
        return RedisStore(settings.redis_url, settings.redis_prefix, clock)
    return MigrationStore(settings.db or os.path.join(run_dir, "migrations.sqlite3"), clock)


def exists(settings: MigrationSettings) -> bool:
    """Whether there can be states to read yet (a SQLite file appears on first use)."""
    return settings.store == "redis" or os.path.exists(settings.db)
