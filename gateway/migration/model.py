"""The migration store's vocabulary, shared by both stores and the gates.

States and their legal moves, audit entries, evidence rows, and the errors
every store raises. Nothing here touches SQLite or Redis::

    state = MigrationState("notes", "canary", 10, 3, t0, t1, "ops")
    label(state.mode, state.percent)            # "canary 10%"
    legal_percent(state, "py3", 0, False)       # 0; TransitionError for an illegal move

Errors::

    GatewayError
     +-- StoreError           the store cannot be opened, read or written
          +-- TransitionError  an illegal or concurrently changed transition
          +-- GateRefused      (gateway.migration.gates) promotion refused
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# The states a migration can be in: a config value (a migration's first state) too.
from gateway.config.sections.migration import MODES as MODES
from gateway.errors import GatewayError

MAX_OBSERVATIONS = 20_000  # per name; the oldest go first
MAX_COMPARISONS = 2_000
NOISE_MEMORY_S = 86_400.0  # noise learned before the epoch stays learned this long

# From a mode, the modes a transition may go to (retired -> py3 needs forced=True).
_LEGAL = {
    "py2": ("shadow",),
    "shadow": ("shadow", "canary", "py3", "py2"),
    "canary": ("canary", "shadow", "py3", "py2"),
    "py3": ("retired", "py2"),
    "retired": (),
}


class StoreError(GatewayError):
    """The migration database cannot be opened, read or written."""


class TransitionError(StoreError):
    """An illegal transition, or the state changed between reading and writing it."""



def label(mode: str, percent: int) -> str:
    """How a state reads to people: ``"canary 10%"``, ``"py3"``."""
    return f"{mode} {percent}%" if mode == "canary" else mode


@dataclass(frozen=True)
class MigrationState:
    """Where one route or RPC method stands; ``version`` bumps on every transition."""

    name: str
    mode: str
    percent: int
    version: int
    epoch_started: float
    updated_at: float
    updated_by: str

    def primary_share(self) -> float:
        """The share of traffic the py3 side answers."""
        if self.mode == "canary":
            return self.percent / 100.0
        return 1.0 if self.mode in ("py3", "retired") else 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form, with the share and a readable label."""
        return {
            "name": self.name, "mode": self.mode, "percent": self.percent,
            "version": self.version, "epoch_started": self.epoch_started,
            "updated_at": self.updated_at, "updated_by": self.updated_by,
            "label": label(self.mode, self.percent), "primary_share": self.primary_share(),
        }


@dataclass(frozen=True)
class AuditEntry:
    """One state change: who, when, from what to what, and why."""

    id: int
    at: float
    actor: str
    name: str
    from_mode: str  # "" when the state was created
    from_percent: int
    to_mode: str
    to_percent: int
    reason: str
    forced: bool

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form: ``from`` and ``to`` read like ``"canary 10%"``."""
        return {
            "id": self.id, "at": self.at, "actor": self.actor, "name": self.name,
            "from": label(self.from_mode, self.from_percent),
            "to": label(self.to_mode, self.to_percent),
            "reason": self.reason, "forced": self.forced,
        }


@dataclass(frozen=True)
class Observation:
    """One request answered (or shadowed) by one runtime."""

    name: str
    at: float
    runtime: str  # "py2" | "py3"
    role: str  # "serve" | "shadow" | "noise"
    ms: float
    status: int
    error: bool


@dataclass(frozen=True)
class Comparison:
    """One shadowed request: the primary's answer against the candidate's."""

    name: str
    at: float
    rid: str
    primary: str
    outcome: str  # "same" | "diff" | "candidate_error" | "uncompared"
    paths: tuple[str, ...]
    noise_paths: tuple[str, ...]
    noise_checked: bool
    fields: list[dict[str, Any]]
    sample: dict[str, Any]
    method: str = ""
    path: str = ""


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence; None when it is empty."""
    if not ordered:
        return None
    return ordered[max(1, math.ceil(p / 100.0 * len(ordered))) - 1]


def latency_stats(rows: list[tuple[float, int]]) -> dict[str, Any]:
    """Requests, errors, error rate, p50 and p99 of ``(ms, error)`` rows."""
    ms = sorted(r[0] for r in rows)
    errors = sum(r[1] for r in rows)
    return {
        "requests": len(rows), "errors": errors,
        "error_rate": errors / len(rows) if rows else 0.0,
        "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
    }


def is_regression(outcome: str, paths: Iterable[str], noisy: frozenset[str]) -> bool:
    """Whether a comparison counts against the port, given the learned noise."""
    # A diff with no paths cannot be explained by noise, so it counts.
    if outcome == "candidate_error":
        return True
    if outcome != "diff":
        return False
    found = set(paths)
    return not found or not found <= noisy



def legal_percent(cur: MigrationState, mode: str, percent: int, forced: bool) -> int:
    """The percent to store for a legal move from ``cur`` to ``mode``; else TransitionError."""
    if mode not in MODES:
        raise TransitionError(f"{cur.name}: unknown mode {mode!r} (one of {', '.join(MODES)})")
    legal = mode in _LEGAL[cur.mode] or (cur.mode == "retired" and mode == "py3" and forced)
    target = label(mode, percent)
    if not legal:
        extra = " without force" if cur.mode == "retired" and mode == "py3" else ""
        raise TransitionError(
            f"{cur.name}: cannot go from {label(cur.mode, cur.percent)} to {target}{extra}"
        )
    if mode != "canary":
        return 0
    if not 1 <= percent <= 99:
        raise TransitionError(f"{cur.name}: canary percent must be 1..99, not {percent}")
    return percent

