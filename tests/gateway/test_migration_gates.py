"""gateway.migration.gates alone: the promote gate and the error budget as objects.

How the stores use them (promote, auto_rollback) runs on both stores in
``test_migration_store.py``.
"""

from __future__ import annotations

from gateway.migration.gates import (
    ErrorBudgetGate,
    Evidence,
    GatedMoves,
    PromoteGate,
    Thresholds,
)
from gateway.migration.redisstore import RedisStore
from gateway.migration.store import MigrationStore


def evidence(samples: int, regressions: int, noise: int = 0) -> Evidence:
    return Evidence(samples=samples, regressions=regressions, noise=noise, candidate_errors=0,
                    uncompared=0, noisy_paths=frozenset(),
                    diff_rate=regressions / samples if samples else 0.0,
                    noise_rate=noise / samples if samples else 0.0)


def test_the_promote_gate_names_every_reason_it_refuses() -> None:
    gate = PromoteGate.of(Thresholds(min_samples=50, max_diff_rate=0.02))
    assert gate == PromoteGate(50, 0.02)
    passed = gate.judge(evidence(50, 1))
    assert passed.ok and passed.reasons == ()
    short = gate.judge(evidence(10, 1, noise=2))
    assert not short.ok and short.reasons == (
        "10 of 50 samples", "diff rate 10.0% > 2.0% (noise rate 20.0%)")
    assert gate.judge(evidence(0, 0)).reasons == ("0 of 50 samples",)  # no rate without samples


def test_the_error_budget_judges_from_min_error_samples_within_its_window() -> None:
    budget = ErrorBudgetGate.of(Thresholds(error_budget=0.1, min_error_samples=20, window_s=60))
    assert budget.since(now=1000.0, entered=900.0) == 940.0   # the window
    assert budget.since(now=1000.0, entered=990.0) == 990.0   # the mode is younger
    assert budget.spent(19, 19) is None                      # too few to judge
    assert budget.spent(20, 2) is None                       # exactly the budget: not spent
    assert budget.spent(20, 3) == "py3 failed 3 of 20 requests (15.0% > 10.0%)"
    assert budget.spent(40, 5, "calls in the broker") == \
        "py3 failed 5 of 40 calls in the broker (12.5% > 10.0%)"


def test_both_stores_get_their_gated_moves_from_one_place() -> None:
    for store in (MigrationStore, RedisStore):
        assert issubclass(store, GatedMoves)
        for move in ("promote", "rollback", "gate", "auto_rollback", "error_budget_spent"):
            assert move not in vars(store), (store, move)   # written once, in GatedMoves
