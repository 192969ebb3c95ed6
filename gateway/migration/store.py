"""The SQLite store behind migrations: states, audit trail, observations and comparisons.

It owns one database file shared by every front worker (and its threads) and
by the CLI; the connections, transactions and schema are
:class:`~gateway.migration.sqlitefile.SqliteFile`'s. Every SQLite failure (locked,
disk full, not a database) is a :class:`StoreError`. The gated moves (promote,
the automatic rollback) are :class:`~gateway.migration.gates.GatedMoves`; the
vocabulary is :mod:`gateway.migration.model`.

::

    store = MigrationStore("var/run/migrations.sqlite3")
    store.ensure("GET /users")                                  # py2, audited as "config"
    store.transition("GET /users", "shadow", actor="ops", reason="port ready")
    store.record(observations, comparisons)                     # from the router, batched
    store.gate("GET /users", Thresholds()).reasons              # ("12 of 50 samples",)
    store.promote("GET /users", Thresholds(), actor="ops")      # GateRefused until ok

Errors::

    GatewayError
     +-- StoreError           the database cannot be opened, read or written
          +-- TransitionError  an illegal or concurrently changed transition
          +-- GateRefused      promotion refused; ``.gate`` holds the GateResult
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gateway.migration.gates import (
    Evidence,
    GatedMoves,
    GateRefused,
    GateResult,
    PromoteGate,
    Thresholds,
)
from gateway.migration.model import (
    MAX_COMPARISONS,
    MAX_OBSERVATIONS,
    MODES,
    NOISE_MEMORY_S,
    AuditEntry,
    Comparison,
    MigrationState,
    Observation,
    StoreError,
    TransitionError,
    is_regression,
    label,
    latency_stats,
    legal_percent,
)
from gateway.migration.outage import Outage
from gateway.migration.sqlitefile import SCHEMA_VERSION, SqliteFile

# Importers of this module's names from before the vocabulary moved keep working.
__all__ = [
    "MAX_COMPARISONS", "MAX_OBSERVATIONS", "MODES", "NOISE_MEMORY_S", "SCHEMA_VERSION",
    "AuditEntry", "Comparison", "Evidence", "GateRefused", "GateResult", "MigrationState",
    "MigrationStore", "Observation", "StoreError", "Thresholds", "TransitionError", "label",
]

_STATE_COLS = "name, mode, percent, version, epoch_started, updated_at, updated_by, mode_entered"
_AUDIT_COLS = (
    "id, at, actor, name, from_mode, from_percent, to_mode, to_percent, reason, forced"
)


def _state(row: Sequence[Any]) -> MigrationState:
    return MigrationState(
        str(row[0]), str(row[1]), int(row[2]), int(row[3]), float(row[4]), float(row[5]),
        str(row[6]),
    )


class MigrationStore(SqliteFile, GatedMoves):
    """States, audit, observations and comparisons in one SQLite file, safe across processes."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self.outage = Outage(path)
        self._clock = clock
        super().__init__(path)

    def _load(
        self, name: str, conn: sqlite3.Connection | None = None
    ) -> tuple[MigrationState, float]:
        sql = f"SELECT {_STATE_COLS} FROM state WHERE name = ?"
        rows = conn.execute(sql, (name,)).fetchall() if conn else self._read(sql, (name,))
        if not rows:
            raise KeyError(name)
        return _state(rows[0]), float(rows[0][7])

    # -- states ---------------------------------------------------------------------------

    def ensure(self, name: str, mode: str = "py2", percent: int = 0) -> MigrationState:
        """Create ``name`` in its configured initial state if missing; else leave it alone."""
        if mode not in MODES:
            raise TransitionError(f"{name}: unknown mode {mode!r} (one of {', '.join(MODES)})")
        if mode == "canary" and not 1 <= percent <= 99:
            raise TransitionError(f"{name}: canary percent must be 1..99, not {percent}")
        percent = percent if mode == "canary" else 0
        now = self._clock()
        with self._write("ensure") as conn:
            cur = conn.execute(
                f"INSERT OR IGNORE INTO state ({_STATE_COLS}) VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
                (name, mode, percent, now, now, "config", now),
            )
            if cur.rowcount == 1:
                self._audit(conn, now, "config", name, ("", 0), (mode, percent), "", False)
        self._local().wrote = True
        return self.get(name)

    def get(self, name: str) -> MigrationState:
        """The state of ``name``; KeyError if it is unknown."""
        return self._load(name)[0]

    def all(self) -> dict[str, MigrationState]:
        """Every state, by name."""
        return {r[0]: _state(r) for r in self._read(f"SELECT {_STATE_COLS} FROM state")}

    def changed(self) -> bool:
        """True when any state changed since this thread's previous call (True the first time).

        ``PRAGMA data_version`` moves on commits by other connections (other threads and
        processes), including mere observations, so only then is the states' signature
        read. Versions only grow, so (count, sum of versions) changes on every transition.
        """
        local = self._local()
        with self._guard("read"):
            version = int(local.conn.execute("PRAGMA data_version").fetchone()[0])
            if local.seen is not None and version == local.data_version and not local.wrote:
                return False
            row = local.conn.execute(
                "SELECT count(*), coalesce(sum(version), 0) FROM state"
            ).fetchone()
        seen = (int(row[0]), int(row[1]))
        before, local.seen, local.data_version, local.wrote = local.seen, seen, version, False
        return before != seen

    def transition(
        self, name: str, mode: str, percent: int = 0, *, actor: str, reason: str = "",
        forced: bool = False, expect_version: int | None = None,
    ) -> MigrationState:
        """Move ``name`` to ``mode`` (audited in the same transaction); TransitionError if illegal.

        Entering shadow starts a new evidence epoch. ``expect_version`` makes it a
        compare-and-set against the version the caller decided on.
        """
        now = self._clock()
        with self._write("transition") as conn:
            cur, entered = self._load(name, conn)
            if expect_version is not None and cur.version != expect_version:
                raise TransitionError(
                    f"{name}: changed concurrently (version {cur.version}, "
                    f"now {label(cur.mode, cur.percent)}, expected version {expect_version})"
                )
            percent = legal_percent(cur, mode, percent, forced)
            epoch = now if mode == "shadow" else cur.epoch_started
            if mode == "shadow" or mode != cur.mode:
                entered = now
            new = MigrationState(name, mode, percent, cur.version + 1, epoch, now, actor)
            conn.execute(
                "UPDATE state SET mode = ?, percent = ?, version = ?, epoch_started = ?, "
                "mode_entered = ?, updated_at = ?, updated_by = ? WHERE name = ?",
                (mode, percent, new.version, epoch, entered, now, actor, name),
            )
            self._audit(
                conn, now, actor, name, (cur.mode, cur.percent), (mode, percent), reason, forced
            )
        self._local().wrote = True
        return new

    @staticmethod
    def _audit(
        conn: sqlite3.Connection, at: float, actor: str, name: str, old: tuple[str, int],
        new: tuple[str, int], reason: str, forced: bool,
    ) -> None:
        conn.execute(
            f"INSERT INTO audit ({_AUDIT_COLS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (at, actor, name, old[0], old[1], new[0], new[1], reason, int(forced)),
        )

    def audit(self, name: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """State changes, newest first, for one name or all."""
        where, params = ("WHERE name = ?", [name]) if name is not None else ("", [])
        rows = self._read(
            f"SELECT {_AUDIT_COLS} FROM audit {where} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
        return [
            AuditEntry(int(r[0]), float(r[1]), r[2], r[3], r[4], int(r[5]), r[6], int(r[7]),
                       r[8], bool(r[9]))
            for r in rows
        ]

    # -- observations and comparisons ------------------------------------------------------

    def record(
        self, observations: Iterable[Observation], comparisons: Iterable[Comparison]
    ) -> None:
        """Store a batch in one transaction, then trim each name to its cap, oldest first."""
        obs = [
            (o.name, o.at, o.runtime, o.role, float(o.ms), int(o.status), int(bool(o.error)))
            for o in observations
        ]
        comps = [
            (c.name, c.at, c.rid, c.primary, c.outcome, json.dumps(sorted(c.paths)),
             json.dumps(sorted(c.noise_paths)), int(bool(c.noise_checked)),
             json.dumps(c.fields, default=str), json.dumps(c.sample, default=str),
             c.method, c.path)
            for c in comparisons
        ]
        if not obs and not comps:
            return
        with self._write("record") as conn:
            conn.executemany(
                "INSERT INTO observation (name, at, runtime, role, ms, status, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", obs,
            )
            conn.executemany(
                "INSERT INTO comparison (name, at, rid, primary_rt, outcome, paths, noise_paths, "
                "noise_checked, fields, sample, method, path) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", comps,
            )
            self._trim(conn, "observation", Counter(o[0] for o in obs), MAX_OBSERVATIONS)
            self._trim(conn, "comparison", Counter(c[0] for c in comps), MAX_COMPARISONS)

    @staticmethod
    def _trim(conn: sqlite3.Connection, table: str, added: Counter[str], cap: int) -> None:
        for name, n in added.items():
            total = int(conn.execute(
                "INSERT INTO tally (name, kind, n) VALUES (?, ?, ?) ON CONFLICT (name, kind) "
                "DO UPDATE SET n = n + excluded.n RETURNING n", (name, table, n),
            ).fetchall()[0][0])
            if total > cap:
                conn.execute(
                    f"DELETE FROM {table} WHERE id IN "
                    f"(SELECT id FROM {table} WHERE name = ? ORDER BY at, id LIMIT ?)",
                    (name, total - cap),
                )
                conn.execute(
                    "UPDATE tally SET n = ? WHERE name = ? AND kind = ?", (cap, name, table)
                )

    def _noisy(self, name: str, epoch: float) -> frozenset[str]:
        rows = self._read(
            "SELECT noise_paths FROM comparison WHERE name = ? AND at >= ? AND noise_paths != '[]'",
            (name, epoch - NOISE_MEMORY_S),
        )
        return frozenset(p for r in rows for p in json.loads(r[0]))

    def _evidence(self, state: MigrationState) -> Evidence:
        noisy = self._noisy(state.name, state.epoch_started)
        rows = self._read(
            "SELECT outcome, paths, noise_paths != '[]', noise_checked FROM comparison "
            "WHERE name = ? AND at >= ?", (state.name, state.epoch_started),
        )
        outcomes = Counter(str(r[0]) for r in rows)
        regressions = sum(1 for r in rows if is_regression(r[0], json.loads(r[1]), noisy))
        noise = sum(1 for r in rows if r[2])
        checked = sum(1 for r in rows if r[3])
        samples = len(rows) - outcomes["uncompared"]
        return Evidence(
            samples=samples, regressions=regressions, noise=noise,
            candidate_errors=outcomes["candidate_error"], uncompared=outcomes["uncompared"],
            noisy_paths=noisy, diff_rate=regressions / samples if samples else 0.0,
            noise_rate=noise / checked if checked else 0.0,
        )

    def _budget_counts(self, name: str, since: float) -> tuple[int, int]:
        row = self._read(
            "SELECT count(*), coalesce(sum(error), 0) FROM observation WHERE name = ? "
            "AND role = 'serve' AND runtime = 'py3' AND at >= ?", (name, since),
        )[0]
        return int(row[0]), int(row[1])

    # -- reports ---------------------------------------------------------------------------

    def report(self, name: str, thresholds: Thresholds) -> dict[str, Any]:
        """State, evidence, gate, traffic split and per-runtime latency over ``window_s``."""
        state = self.get(name)
        evidence = self._evidence(state)
        rows = self._read(
            "SELECT role, runtime, ms, error FROM observation WHERE name = ? AND at >= ? "
            "AND role IN ('serve', 'shadow')", (name, self._clock() - thresholds.window_s),
        )
        split: dict[tuple[str, str], list[tuple[float, int]]] = {
            (role, rt): [] for role in ("serve", "shadow") for rt in ("py2", "py3")
        }
        for role, runtime, ms, error in rows:
            if (role, runtime) in split:
                split[(role, runtime)].append((float(ms), int(error)))
        py2, py3 = len(split[("serve", "py2")]), len(split[("serve", "py3")])
        share = py3 / (py2 + py3) if py2 + py3 else 0.0
        return {
            "name": name, "state": state.to_json(), "evidence": evidence.to_json(),
            "gate": PromoteGate.of(thresholds).judge(evidence).to_json(),
            "traffic": {"py2": py2, "py3": py3, "py3_share": share},
            "runtimes": {rt: latency_stats(split[("serve", rt)]) for rt in ("py2", "py3")},
            "shadow": {rt: latency_stats(split[("shadow", rt)]) for rt in ("py2", "py3")},
        }

    def series(self, name: str, bucket_s: float = 10.0, buckets: int = 30) -> list[list[Any]]:
        """``[[bucket_start, comparisons, regressions], ...]``, oldest first, ending at now.

        Buckets are aligned to multiples of ``bucket_s`` so they stay put between
        calls; the last one holds now. Uncompared rows are not counted.
        """
        if not bucket_s > 0 or buckets < 1:
            raise ValueError(f"series needs bucket_s > 0 and buckets >= 1: {bucket_s}, {buckets}")
        now = self._clock()
        first = float((math.floor(now / bucket_s) - (buckets - 1)) * bucket_s)
        noisy = self._noisy(name, self.get(name).epoch_started)
        out: list[list[Any]] = [[first + i * bucket_s, 0, 0] for i in range(buckets)]
        for at, outcome, paths in self._read(
            "SELECT at, outcome, paths FROM comparison WHERE name = ? AND at >= ? AND at <= ? "
            "AND outcome != 'uncompared'", (name, first, now),
        ):
            slot = out[min(buckets - 1, int((at - first) // bucket_s))]
            slot[1] += 1
            slot[2] += int(is_regression(outcome, json.loads(paths), noisy))
        return out

    def recent_diffs(self, name: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The latest diffs and candidate errors, newest first, each flagged when all noise."""
        where, params = ("AND name = ?", [name]) if name is not None else ("", [])
        rows = self._read(
            "SELECT id, name, at, rid, method, path, primary_rt, outcome, paths, fields, sample "
            f"FROM comparison WHERE outcome IN ('diff', 'candidate_error') {where} "
            "ORDER BY at DESC, id DESC LIMIT ?", [*params, limit],
        )
        noisy: dict[str, frozenset[str]] = {}
        out = []
        for rid_, nm, at, rid, method, path, primary, outcome, paths, fields, sample in rows:
            if nm not in noisy:
                try:
                    epoch = self.get(nm).epoch_started
                except KeyError:
                    epoch = 0.0
                noisy[nm] = self._noisy(nm, epoch)
            found = json.loads(paths)
            out.append({
                "id": rid_, "name": nm, "at": at, "rid": rid, "method": method, "path": path,
                "primary": primary, "outcome": outcome,
                "noise": outcome == "diff" and bool(found) and set(found) <= noisy[nm],
                "paths": found, "fields": json.loads(fields), "sample": json.loads(sample),
            })
        return out
