"""The gates a migration passes: the promote gate and the error budget, written once.

Both stores (SQLite and Redis) answer the same evidence queries; the gates
judge what those queries return, and :class:`GatedMoves` (which both stores
extend) makes the gated moves with them::

    gate = PromoteGate.of(Thresholds(min_samples=50, max_diff_rate=0.01))
    gate.judge(store.evidence("notes"))           # GateResult(ok, reasons, evidence)
    budget = ErrorBudgetGate.of(thresholds)
    budget.spent(requests=40, errors=3)            # "py3 failed 3 of 40 requests (...)" or None
    store.promote("notes", thresholds, actor="ops")    # GateRefused until the gate passes
    store.auto_rollback("notes", thresholds)           # once, when the budget is spent

A store keeps persistence and evidence queries only: ``get``, ``_load`` (the
state and when its mode was entered), ``transition``, ``_evidence`` (the
epoch's comparisons judged against the learned noise) and ``_budget_counts``
(py3 requests served and failed since a time).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Thresholds are config values ([migrations.NAME]): parsed below this package, judged here.
from gateway.config.sections.migration import Thresholds as Thresholds
from gateway.migration.model import MigrationState, StoreError, TransitionError, label


class GateRefused(StoreError):
    """Promotion refused by the gate; ``gate`` holds the evidence and the reasons."""

    def __init__(self, message: str, gate: GateResult) -> None:
        super().__init__(message)
        self.gate = gate




@dataclass(frozen=True)
class Evidence:
    """The comparisons of the current epoch, judged against the learned noise."""

    samples: int
    regressions: int
    noise: int
    candidate_errors: int
    uncompared: int
    noisy_paths: frozenset[str]
    diff_rate: float
    noise_rate: float

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form; ``noisy_paths`` sorted."""
        return {
            "samples": self.samples, "regressions": self.regressions, "noise": self.noise,
            "candidate_errors": self.candidate_errors, "uncompared": self.uncompared,
            "noisy_paths": sorted(self.noisy_paths), "diff_rate": self.diff_rate,
            "noise_rate": self.noise_rate,
        }


@dataclass(frozen=True)
class GateResult:
    """The promote gate's verdict; ``reasons`` is empty when ``ok``."""

    ok: bool
    reasons: tuple[str, ...]
    evidence: Evidence

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"ok": self.ok, "reasons": list(self.reasons), "evidence": self.evidence.to_json()}


@dataclass(frozen=True)
class PromoteGate:
    """shadow|canary -> py3 needs ``min_samples`` compared and a diff rate of at most
    ``max_diff_rate`` (regressions over samples; learned noise is not a regression)."""

    min_samples: int
    max_diff_rate: float

    @classmethod
    def of(cls, thresholds: Thresholds) -> PromoteGate:
        """The gate a migration's thresholds set."""
        return cls(thresholds.min_samples, thresholds.max_diff_rate)

    def judge(self, evidence: Evidence) -> GateResult:
        """The verdict on ``evidence``, with every reason it falls short."""
        reasons = []
        if evidence.samples < self.min_samples:
            reasons.append(f"{evidence.samples} of {self.min_samples} samples")
        if evidence.samples and evidence.diff_rate > self.max_diff_rate:
            reasons.append(f"diff rate {evidence.diff_rate:.1%} > {self.max_diff_rate:.1%} "
                           f"(noise rate {evidence.noise_rate:.1%})")
        return GateResult(not reasons, tuple(reasons), evidence)


@dataclass(frozen=True)
class ErrorBudgetGate:
    """py3 may fail at most ``error_budget`` of what it served over the last ``window_s``
    (since it entered its mode, if later), judged from ``min_error_samples`` on."""

    error_budget: float
    min_error_samples: int
    window_s: float

    JUDGED = ("canary", "py3")  # the modes in which py3 answers clients

    @classmethod
    def of(cls, thresholds: Thresholds) -> ErrorBudgetGate:
        """The budget a migration's thresholds set."""
        return cls(thresholds.error_budget, thresholds.min_error_samples, thresholds.window_s)

    def since(self, now: float, entered: float) -> float:
        """Where the window starts: ``window_s`` ago, or when the mode was entered."""
        return max(now - self.window_s, entered)

    def spent(self, requests: int, errors: int, what: str = "requests") -> str | None:
        """Why ``errors`` of ``requests`` spend the budget, or None while they do not."""
        if requests < self.min_error_samples or errors / requests <= self.error_budget:
            return None
        return (f"py3 failed {errors} of {requests} {what} "
                f"({errors / requests:.1%} > {self.error_budget:.1%})")


class GatedMoves(ABC):
    """promote, rollback and the automatic rollback, for any store that answers the queries."""

    _clock: Callable[[], float]

    @abstractmethod
    def get(self, name: str) -> MigrationState:
        """The state of ``name``; KeyError if it is unknown."""

    @abstractmethod
    def _load(self, name: str) -> tuple[MigrationState, float]:
        """The state of ``name`` and when its mode was entered; KeyError if unknown."""

    @abstractmethod
    def transition(self, name: str, mode: str, percent: int = 0, *, actor: str,
                   reason: str = "", forced: bool = False,
                   expect_version: int | None = None) -> MigrationState:
        """One audited move; TransitionError if illegal or raced."""

    @abstractmethod
    def _evidence(self, state: MigrationState) -> Evidence:
        """The comparisons of ``state``'s epoch, judged against the learned noise."""

    @abstractmethod
    def _budget_counts(self, name: str, since: float) -> tuple[int, int]:
        """(py3 requests served to clients, of them failed) at or after ``since``."""

    def evidence(self, name: str) -> Evidence:
        """The current epoch's comparisons, judged against the learned noise."""
        return self._evidence(self.get(name))

    def gate(self, name: str, thresholds: Thresholds) -> GateResult:
        """Whether the evidence allows promoting ``name``, and if not, why."""
        return PromoteGate.of(thresholds).judge(self.evidence(name))

    def promote(self, name: str, thresholds: Thresholds, *, actor: str, force: bool = False,
                reason: str = "") -> MigrationState:
        """shadow|canary -> py3 when the gate passes (or ``force``); py3 -> retired ungated.

        The move is a compare-and-set against the state the gate judged: a change
        made meanwhile (another admin, another gateway) refuses it.
        """
        cur = self.get(name)
        if cur.mode == "py3":
            return self.transition(name, "retired", actor=actor, reason=reason,
                                   expect_version=cur.version)
        if cur.mode not in ("shadow", "canary"):
            raise TransitionError(f"{name}: cannot promote from {label(cur.mode, cur.percent)} "
                                  "(promote works from shadow, canary or py3)")
        result = PromoteGate.of(thresholds).judge(self._evidence(cur))
        if not result.ok and not force:
            raise GateRefused(f"{name}: promotion refused: {'; '.join(result.reasons)}", result)
        if not result.ok:
            overridden = "gate overridden: " + "; ".join(result.reasons)
            reason = f"{reason}; {overridden}" if reason else overridden
        return self.transition(name, "py3", actor=actor, reason=reason, forced=not result.ok,
                               expect_version=cur.version)

    def rollback(self, name: str, *, actor: str, reason: str = "") -> MigrationState:
        """Send all traffic back to py2 (from shadow, canary or py3)."""
        return self.transition(name, "py2", actor=actor, reason=reason)

    def _budget(self, state: MigrationState, entered: float, thresholds: Thresholds) -> str | None:
        if state.mode not in ErrorBudgetGate.JUDGED:
            return None
        budget = ErrorBudgetGate.of(thresholds)
        count, errors = self._budget_counts(state.name,
                                            budget.since(self._clock(), entered))
        return budget.spent(count, errors)

    def error_budget_spent(self, name: str, thresholds: Thresholds) -> str | None:
        """Why py3 has spent its error budget (canary and py3 only), or None."""
        return self._budget(*self._load(name), thresholds)

    def auto_rollback(self, name: str, thresholds: Thresholds) -> MigrationState | None:
        """Roll back to py2 when the error budget is spent; exactly once across racing callers
        (processes, gateways): the move is a compare-and-set on the judged version."""
        state, entered = self._load(name)
        reason = self._budget(state, entered, thresholds)
        if reason is None:
            return None
        try:
            return self.transition(name, "py2", actor="gateway:auto", reason=reason,
                                   expect_version=state.version)
        except TransitionError:
            return None  # someone else moved it first; they audited it
