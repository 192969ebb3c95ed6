"""A front process's first migration states, also when the store does not answer yet.

A gateway that starts while its shared store (Redis) is down has no last
known state to serve. It serves what its config declares (``state`` and
``percent`` of each ``[migrations.X]``) until the store answers, then the
store's states: the recorder creates any state the store lacks
(:meth:`~gateway.migration.background.Recorder.judge`) and the process's
state copy picks them up::

    states, created = first_states(store, settings.migrations, time.time)
    # created is False: the store did not answer; states are the configured ones,
    # and the store's outage record holds the one line that said so.

A store that answers but fails otherwise (a SQLite file that is not a
database) still fails the start: that is a broken setup, not an outage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gateway.migration.config import MigrationConfig
from gateway.migration.model import MigrationState, label
from gateway.migration.redisstore import StoreUnavailable
from gateway.migration.stores import Store


def configured(migrations: Iterable[MigrationConfig], now: float) -> dict[str, MigrationState]:
    """Each migration in the state its config declares (version 0: never stored)."""
    return {m.name: MigrationState(m.name, m.state, m.percent if m.state == "canary" else 0,
                                   0, now, now, "config")
            for m in migrations}


MEANWHILE = "admin calls answer 503 meanwhile and automatic rollbacks wait"


def first_states(store: Store, migrations: Iterable[MigrationConfig],
                 clock: Callable[[], float],
                 meanwhile: str = MEANWHILE) -> tuple[dict[str, MigrationState], bool]:
    """(the states to serve first, whether the store answered and holds every one).

    ``meanwhile`` ends the log line: what else waits for the store in this process.
    """
    migrations = list(migrations)
    try:
        for m in migrations:
            store.ensure(m.name, m.state, m.percent)
        return store.all(), True
    except StoreUnavailable as exc:
        states = configured(migrations, clock())
        listing = ", ".join(f"{s.name}: {label(s.mode, s.percent)}" for s in states.values())
        store.outage.down(
            f"migration store unreachable at start: serving the configured states "
            f"({listing or 'none'}) until it answers; {meanwhile} ({exc})")
        return states, False
