"""Service migrations reach the broker: states -> split file -> ``mmi.split`` (SPEC 2.14).

The store and the broker are real: a SQLite file in a temp dir and each broker
implementation as a process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from gateway.migration.brokersplits import BrokerSplits, poke, render, share
from gateway.migration.config import MigrationConfig
from gateway.migration.store import MigrationStore, Thresholds
from tests.support.broker import IMPLEMENTATIONS, BrokerProcess
from tests.support.procs import ProcessGroup, free_port

TAX = MigrationConfig(name="tax", py3="tax.py3", service="tax")
NOTES = MigrationConfig(name="notes", py3="notes3", route="/notes")


@pytest.fixture
def store(tmp_path: object) -> Iterator[MigrationStore]:
    s = MigrationStore(os.path.join(str(tmp_path), "m.sqlite3"))
    s.ensure("tax")
    s.ensure("notes")
    yield s
    s.close()


def test_states_map_to_shares_and_only_service_migrations_are_written(
        store: MigrationStore) -> None:
    assert share(store.get("tax")) == 0
    store.transition("tax", "shadow", actor="t")
    assert share(store.get("tax")) == 0
    store.transition("tax", "canary", 30, actor="t")
    assert share(store.get("tax")) == 30
    store.promote("tax", Thresholds(), actor="t", force=True)
    assert share(store.get("tax")) == 100
    text = render([NOTES, TAX], store.all())
    assert [line for line in text.splitlines() if not line.startswith("#")] == \
        ["tax tax.py3 100"]


def test_poke_without_a_broker_gives_up_in_time() -> None:
    assert poke(f"tcp://127.0.0.1:{free_port()}", timeout_s=0.2) is None


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_sync_writes_the_file_once_and_the_broker_follows(
        procs: ProcessGroup, tmp_path: object, store: MigrationStore, impl: str) -> None:
    path = os.path.join(str(tmp_path), "run", "broker-splits")
    broker = BrokerProcess(procs, impl, heartbeat_ms=60_000, extra=("--splits", path))
    splits = BrokerSplits(path, broker.endpoint)
    assert splits.sync([TAX], store.all()) is True
    assert broker.stats()["splits"]["tax"]["percent"] == 0
    assert splits.sync([TAX], store.all()) is False  # unchanged: not written, not poked
    store.transition("tax", "shadow", actor="t")
    store.transition("tax", "canary", 30, actor="t")
    assert splits.sync([TAX], store.all()) is True
    # The heartbeat is a minute: only the poke can have made the broker read it.
    assert broker.stats()["splits"]["tax"] == {"candidate": "tax.py3", "percent": 30,
                                               "sent": 0, "kept": 0, "sent_errors": 0,
                                               "kept_errors": 0}
    store.rollback("tax", actor="t")
    assert splits.sync([TAX], store.all()) is True
    assert broker.stats()["splits"]["tax"]["percent"] == 0


def test_no_service_migration_writes_nothing_but_a_removed_one_is_taken_back(
        tmp_path: object, store: MigrationStore) -> None:
    path = os.path.join(str(tmp_path), "broker-splits")
    splits = BrokerSplits(path, "")
    assert splits.sync([NOTES], store.all()) is False and not os.path.exists(path)
    store.transition("tax", "shadow", actor="t")
    store.transition("tax", "canary", 10, actor="t")
    assert splits.sync([NOTES, TAX], store.all()) is True
    assert splits.sync([NOTES], store.all()) is True  # [migrations.tax] gone after a reload
    with open(path, encoding="utf-8") as fh:
        assert [line for line in fh.read().splitlines() if not line.startswith("#")] == []


def test_the_error_budget_counts_the_port_calls_within_the_window() -> None:
    from gateway.migration.brokersplits import ErrorBudget
    m = MigrationConfig(name="tax", py3="tax.py3", service="tax",
                        thresholds=Thresholds(error_budget=0.1, min_error_samples=10,
                                              window_s=60.0))
    budget = ErrorBudget()
    assert budget.spent(m, None, 0.0) is None
    assert budget.spent(m, {"sent": 9, "sent_errors": 9}, 1.0) is None   # too few calls
    reason = budget.spent(m, {"sent": 20, "sent_errors": 3}, 2.0)        # 3 of 20 > 10%
    assert reason is not None and "3 of 20" in reason
    budget.forget("tax")
    # A split set afresh restarts the counters; old failures outside the window drop out.
    assert budget.spent(m, {"sent": 100, "sent_errors": 5}, 10.0) is None  # 5% <= 10%
    assert budget.spent(m, {"sent": 200, "sent_errors": 5}, 100.0) is None
    # The look at 10 s left the window: judged on the last 10 calls only.
    assert budget.spent(m, {"sent": 210, "sent_errors": 6}, 110.0) is None  # 1 of 10
    assert "2 of 10" in (budget.spent(m, {"sent": 210, "sent_errors": 7}, 111.0) or "")
    assert budget.spent(m, {"sent": 4, "sent_errors": 4}, 112.0) is None    # reset: 4 calls
