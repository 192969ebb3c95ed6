"""Migration metrics from the migration store (SQLite or Redis), per migration, for one scrape.

::

    families = list(MigrationStats("var/run/migrations.sqlite3").collect())
    families = list(MigrationStats(settings.db, settings).collect())   # whichever store is set

Comparison numbers are those of the current epoch, the evidence the promote
gate judges (:meth:`MigrationStore.evidence`): a transition starts a new
epoch, so they are gauges, not counters. Auto-rollbacks are counted from the
audit trail (actor ``gateway:auto``), so they survive restarts. A store that
does not exist yet or cannot be read yields ``gateway_migration_store_up 0``
and nothing else, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.config.sections.migration import MigrationSettings
from gateway.migration.store import MODES, StoreError
from gateway.migration.stores import Store, exists, open_store

AUTO_ACTOR = "gateway:auto"
MAX_AUDIT = 100_000

EVIDENCE = (
    ("samples", "gateway_migration_samples", "Compared shadow copies in the current epoch."),
    ("regressions", "gateway_migration_regressions",
     "Comparisons that differ outside learned noise (current epoch)."),
    ("noise", "gateway_migration_noise",
     "Comparisons whose primary replicas disagreed with each other (current epoch)."),
    ("candidate_errors", "gateway_migration_candidate_errors",
     "Shadow copies the candidate failed (current epoch)."),
    ("uncompared", "gateway_migration_uncompared",
     "Shadow copies skipped or not comparable (current epoch)."),
    ("diff_rate", "gateway_migration_diff_rate", "Regressions per sample (current epoch)."),
    ("noise_rate", "gateway_migration_noise_rate", "Noise per noise check (current epoch)."),
)


class MigrationStats:
    """A prometheus_client custom collector over the migration store."""

    def __init__(self, db: str, settings: MigrationSettings | None = None) -> None:
        self.db = db
        self.settings = settings or MigrationSettings(db=db, token_file="")
        self._store: Store | None = None

    def collect(self) -> Iterator[Metric]:
        """Per-migration families; only ``gateway_migration_store_up 0`` when unreadable."""
        up = GaugeMetricFamily("gateway_migration_store_up",
                               "1 when the migration store could be read.")
        try:
            found = self._read()
        except StoreError:
            found = None
        except Exception:  # a scrape must never fail on the estate's account
            found = None
        up.add_metric([], 0.0 if found is None else 1.0)
        yield up
        if found is not None:
            yield from found

    def _read(self) -> list[Metric] | None:
        if not exists(self.settings):
            return None
        if self._store is None:
            self._store = open_store(self.settings)
        store = self._store
        state = GaugeMetricFamily("gateway_migration_state",
                                  "1 for the mode each migration is in, 0 for the others.",
                                  labels=["migration", "mode"])
        percent = GaugeMetricFamily("gateway_migration_py3_percent",
                                    "Percent of traffic py3 serves (canary share; 100 in py3).",
                                    labels=["migration"])
        transitions = CounterMetricFamily("gateway_migration_transitions",
                                          "State changes since the migration was created.",
                                          labels=["migration"])
        rollbacks = CounterMetricFamily("gateway_migration_auto_rollbacks",
                                        "Rollbacks to py2 made by the error budget.",
                                        labels=["migration"])
        evidence = {key: GaugeMetricFamily(name, text, labels=["migration"])
                    for key, name, text in EVIDENCE}
        autos: dict[str, int] = {}
        for entry in store.audit(None, limit=MAX_AUDIT):
            if entry.actor == AUTO_ACTOR and entry.to_mode == "py2":
                autos[entry.name] = autos.get(entry.name, 0) + 1
        for name, current in sorted(store.all().items()):
            for mode in MODES:
                state.add_metric([name, mode], 1.0 if mode == current.mode else 0.0)
            percent.add_metric([name], float(current.percent if current.mode == "canary" else
                                             100 if current.mode in ("py3", "retired") else 0))
            transitions.add_metric([name], float(current.version - 1))
            rollbacks.add_metric([name], float(autos.get(name, 0)))
            found = store.evidence(name)
            for key, family in evidence.items():
                family.add_metric([name], float(getattr(found, key)))
        return [state, percent, transitions, rollbacks, *evidence.values()]

    def close(self) -> None:
        """Close the store's connections."""
        if self._store is not None:
            self._store.close()
            self._store = None
