"""The migration store's contract, run against both implementations: SQLite and a real Redis.

Each test gets a :class:`~tests.support.stores.Backend`: a fresh SQLite file, or a
fresh key prefix on one redis-server per module, started on a free port. Tests
that need "another gateway" open a second store on the same backend.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.migration.store import (
    MAX_COMPARISONS,
    MAX_OBSERVATIONS,
    MODES,
    NOISE_MEMORY_S,
    GateRefused,
    StoreError,
    Thresholds,
    TransitionError,
)
from gateway.migration.stores import Store
from tests.support.procs import wait_until
from tests.support.redis_server import RedisServer
from tests.support.stores import T0, Backend, Clock, comp, in_thread, obs

BACKENDS = ("sqlite", "redis")
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(str(tmp_path_factory.mktemp("redis")))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Backend]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    b = Backend(request.param, clock, db=str(tmp_path / "migrations.sqlite3"), url=url,
                prefix=f"t{next(_prefixes)}:")
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()


# -- transitions ------------------------------------------------------------------------------

ROUTES = {  # how to reach each mode from a fresh py2 state
    "py2": [],
    "shadow": [("shadow", 0)],
    "canary": [("shadow", 0), ("canary", 10)],
    "py3": [("shadow", 0), ("py3", 0)],
    "retired": [("shadow", 0), ("py3", 0), ("retired", 0)],
}
LEGAL = {
    ("py2", "shadow"),
    ("shadow", "shadow"), ("shadow", "canary"), ("shadow", "py3"), ("shadow", "py2"),
    ("canary", "canary"), ("canary", "shadow"), ("canary", "py3"), ("canary", "py2"),
    ("py3", "retired"), ("py3", "py2"),
}


def reach(store: Store, name: str, mode: str) -> None:
    store.ensure(name)
    for step, percent in ROUTES[mode]:
        store.transition(name, step, percent, actor="setup")
    assert store.get(name).mode == mode


@pytest.mark.parametrize("source", MODES)
@pytest.mark.parametrize("target", MODES)
def test_every_transition_is_legal_or_refused(store: Store, source: str,
                                               target: str) -> None:
    reach(store, "m", source)
    before = store.get("m")
    if (source, target) in LEGAL:
        after = store.transition("m", target, 40, actor="ops")
        assert (after.mode, after.version) == (target, before.version + 1)
        assert after.percent == (40 if target == "canary" else 0)
        assert store.get("m") == after
    else:
        with pytest.raises(TransitionError, match=f"from {source}.* to {target}"):
            store.transition("m", target, 40, actor="ops")
        assert store.get("m") == before


def test_retired_goes_back_to_py3_only_when_forced(store: Store) -> None:
    reach(store, "m", "retired")
    with pytest.raises(TransitionError, match="without force"):
        store.transition("m", "py3", actor="ops")
    assert store.transition("m", "py3", actor="ops", forced=True).mode == "py3"
    assert store.audit("m", limit=1)[0].forced is True


def test_bad_percent_unknown_mode_and_unknown_name(store: Store) -> None:
    reach(store, "m", "shadow")
    for percent in (0, 100, -5):
        with pytest.raises(TransitionError, match=r"1\.\.99"):
            store.transition("m", "canary", percent, actor="ops")
    with pytest.raises(TransitionError, match="unknown mode"):
        store.transition("m", "py4", actor="ops")
    with pytest.raises(KeyError):
        store.transition("nope", "shadow", actor="ops")
    with pytest.raises(KeyError):
        store.get("nope")
    with pytest.raises(TransitionError, match=r"1\.\.99"):
        store.ensure("c", "canary", 0)
    assert store.get("m").version == 2


def test_entering_shadow_starts_a_new_epoch(store: Store, clock: Clock) -> None:
    store.ensure("m")
    t1 = clock.advance(10)
    assert store.transition("m", "shadow", actor="ops").epoch_started == t1
    clock.advance(10)
    assert store.transition("m", "canary", 5, actor="ops").epoch_started == t1
    assert store.transition("m", "canary", 50, actor="ops").epoch_started == t1
    t2 = clock.advance(10)
    assert store.transition("m", "shadow", actor="ops").epoch_started == t2
    t3 = clock.advance(10)
    assert store.transition("m", "shadow", actor="ops").epoch_started == t3
    clock.advance(10)
    assert store.transition("m", "py3", actor="ops").epoch_started == t3
    assert store.transition("m", "py2", actor="ops").epoch_started == t3


def test_ensure_creates_once_and_audits_as_config(store: Store, clock: Clock) -> None:
    first = store.ensure("a", "canary", 20)
    assert (first.mode, first.percent, first.version, first.updated_by) == ("canary", 20, 1,
                                                                            "config")
    assert first.primary_share() == 0.2
    store.transition("a", "shadow", actor="ops")
    assert store.ensure("a", "py2").mode == "shadow"  # unchanged when it exists
    created = [e for e in store.audit("a") if e.actor == "config"]
    assert [e.to_json()["to"] for e in created] == ["canary 20%"]
    assert created[0].from_mode == ""
    assert set(store.all()) == {"a"}


def test_every_change_writes_one_audit_row(store: Store, clock: Clock) -> None:
    store.ensure("m")
    store.ensure("other")
    steps = [("shadow", 0, "alice", "port ready"), ("canary", 10, "bob", "looks good"),
             ("canary", 30, "bob", ""), ("py2", 0, "carol", "pager")]
    for mode, percent, actor, reason in steps:
        clock.advance(1)
        store.transition("m", mode, percent, actor=actor, reason=reason)
    entries = store.audit("m")
    assert [e.to_json()["from"] for e in entries] == ["canary 30%", "canary 10%", "shadow", "py2",
                                                       ""]
    assert [e.to_json()["to"] for e in entries] == ["py2", "canary 30%", "canary 10%", "shadow",
                                                     "py2"]
    assert [e.actor for e in entries] == ["carol", "bob", "bob", "alice", "config"]
    assert [e.reason for e in entries][:2] == ["pager", ""]
    assert not any(e.forced for e in entries)
    assert entries[0].at == clock.now and entries[0].id > entries[1].id
    assert set(entries[0].to_json()) == {"id", "at", "actor", "name", "from", "to", "reason",
                                         "forced"}
    assert len(store.audit()) == 6 and len(store.audit(limit=2)) == 2
    assert store.audit("other")[0].to_mode == "py2"


def test_expect_version_is_a_compare_and_set(store: Store) -> None:
    v = store.ensure("m").version
    store.transition("m", "shadow", actor="a", expect_version=v)
    with pytest.raises(TransitionError, match="changed concurrently"):
        store.transition("m", "canary", 10, actor="b", expect_version=v)
    assert store.get("m").mode == "shadow" and len(store.audit("m")) == 2


def test_a_closed_store_refuses_work(backend: Backend) -> None:
    s = backend.open()
    s.ensure("m")
    s.close()
    with pytest.raises(StoreError):
        s.get("m")
    with pytest.raises(StoreError, match="closed"):
        in_thread(lambda: s.get("m"))


def test_changed_sees_other_threads_and_ignores_observations(store: Store, backend: Backend,
                                                             clock: Clock) -> None:
    store.ensure("m")
    assert store.changed() is True
    assert store.changed() is False
    in_thread(lambda: store.transition("m", "shadow", actor="ops"))
    assert store.changed() is True
    assert store.changed() is False
    in_thread(lambda: store.record([obs("m", clock.now)], [comp("m", clock.now)]))
    assert store.changed() is False
    store.transition("m", "canary", 5, actor="ops")  # this thread's own write
    assert store.changed() is True
    other = backend.open()  # another gateway (Redis) or process (SQLite)
    other.ensure("n")
    other.close()
    wait_until(store.changed, timeout=2, what="the other store's change seen")
    assert set(store.all()) == {"m", "n"}
    assert store.changed() is False


def test_two_stores_race_a_transition_and_one_wins(backend: Backend) -> None:
    """Two gateways moving the same state at once: one compare-and-set wins, one audit row."""
    a, b = backend.open(), backend.open()
    a.ensure("m")
    a.transition("m", "shadow", actor="setup")
    rounds = 10
    for i in range(rounds):
        v = a.get("m").version
        barrier = threading.Barrier(2)
        won: list[int] = []
        refused: list[str] = []

        def move(s: Store, percent: int, barrier: threading.Barrier = barrier, v: int = v,
                 won: list[int] = won, refused: list[str] = refused) -> None:
            barrier.wait(timeout=5)
            try:
                s.transition("m", "canary", percent, actor="ops", expect_version=v)
                won.append(percent)
            except TransitionError as exc:
                refused.append(str(exc))

        threads = [threading.Thread(target=move, args=(s, p))
                   for s, p in ((a, 10 + i), (b, 50 + i))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=10)
        assert len(won) == 1 and len(refused) == 1, (won, refused)
        assert "changed concurrently" in refused[0]
        assert (b.get("m").version, b.get("m").percent) == (v + 1, won[0])
    assert len(a.audit("m", limit=1000)) == 2 + rounds  # creation, shadow, one per round


# -- evidence and the promote gate ------------------------------------------------------------

def test_gate_needs_samples_then_a_low_diff_rate(store: Store, clock: Clock) -> None:
    t = Thresholds(min_samples=10, max_diff_rate=0.1)
    reach(store, "m", "shadow")
    at = clock.advance(1)
    store.record([], [comp("m", at) for _ in range(5)] + [comp("m", at, "uncompared")])
    refused = store.gate("m", t)
    assert (refused.ok, refused.reasons) == (False, ("5 of 10 samples",))
    with pytest.raises(GateRefused, match="5 of 10 samples") as info:
        store.promote("m", t, actor="ops")
    assert info.value.gate.evidence.samples == 5 and store.get("m").mode == "shadow"

    store.record([], [comp("m", at) for _ in range(5)])
    passed = store.gate("m", t)
    assert passed.ok and passed.reasons == () and passed.evidence.uncompared == 1

    store.record([], [comp("m", at, "diff", ("/body",)), comp("m", at, "candidate_error")])
    ev = store.evidence("m")
    assert (ev.samples, ev.regressions, ev.candidate_errors) == (12, 2, 1)
    assert store.gate("m", t).reasons == ("diff rate 16.7% > 10.0% (noise rate 0.0%)",)
    assert store.gate("m", t).to_json()["evidence"]["regressions"] == 2


def test_noise_learned_from_the_primary_excuses_a_diff(store: Store,
                                                       clock: Clock) -> None:
    t = Thresholds(min_samples=4, max_diff_rate=0.2)
    reach(store, "m", "shadow")
    at = clock.advance(1)
    store.record([], [
        comp("m", at, "same", noise=("/generated_at",)),
        comp("m", at, "same", checked=True),
        comp("m", at, "diff", ("/generated_at",)),
        comp("m", at, "diff", ("/generated_at",)),
    ])
    ev = store.evidence("m")
    assert ev.noisy_paths == frozenset({"/generated_at"})
    assert (ev.samples, ev.regressions, ev.noise, ev.noise_rate) == (4, 0, 1, 0.5)
    assert store.gate("m", t).ok
    store.record([], [comp("m", at, "diff", ("/generated_at", "/total"))])  # not all noise
    assert store.evidence("m").regressions == 1
    assert store.gate("m", t).ok  # 1 of 5 is exactly the limit, not above it
    store.record([], [comp("m", at, "diff", ("/total",))])
    assert store.gate("m", t).reasons == ("diff rate 33.3% > 20.0% (noise rate 50.0%)",)


def test_noise_stays_learned_across_an_epoch_restart_for_a_day(store: Store,
                                                               clock: Clock) -> None:
    reach(store, "m", "shadow")
    store.record([], [comp("m", clock.advance(1), "same", noise=("/ts",))])
    clock.advance(3600)
    store.transition("m", "shadow", actor="ops", reason="port fixed")  # new epoch
    store.record([], [comp("m", clock.advance(1), "diff", ("/ts",))])
    ev = store.evidence("m")
    assert (ev.samples, ev.regressions, ev.noise, ev.noisy_paths) == (1, 0, 0,
                                                                      frozenset({"/ts"}))
    clock.advance(NOISE_MEMORY_S)
    store.transition("m", "shadow", actor="ops")  # the old noise is now over a day older
    store.record([], [comp("m", clock.advance(1), "diff", ("/ts",))])
    ev = store.evidence("m")
    assert (ev.samples, ev.regressions, ev.noisy_paths) == (1, 1, frozenset())


def test_promote_forced_and_ungated(store: Store, clock: Clock) -> None:
    t = Thresholds(min_samples=3)
    reach(store, "a", "canary")
    forced = store.promote("a", t, actor="ops", force=True, reason="deadline")
    assert forced.mode == "py3"
    entry = store.audit("a", limit=1)[0]
    assert entry.forced and entry.reason == "deadline; gate overridden: 0 of 3 samples"
    assert store.promote("a", t, actor="ops").mode == "retired"  # py3 -> retired: no gate
    assert store.audit("a", limit=1)[0].forced is False
    with pytest.raises(TransitionError, match="cannot promote from retired"):
        store.promote("a", t, actor="ops")

    reach(store, "b", "shadow")
    store.record([], [comp("b", clock.advance(1)) for _ in range(3)])
    assert store.promote("b", t, actor="ops").mode == "py3"
    assert store.audit("b", limit=1)[0].forced is False
    reach(store, "c", "py2")
    with pytest.raises(TransitionError, match="cannot promote from py2"):
        store.promote("c", t, actor="ops")


# -- error budget and automatic rollback ------------------------------------------------------

def test_error_budget_counts_py3_serving_in_the_window_since_the_mode(store: Store,
                                                                      clock: Clock) -> None:
    t = Thresholds(error_budget=0.05, min_error_samples=20, window_s=300)
    reach(store, "m", "shadow")
    early = clock.advance(1)
    store.record([obs("m", early, error=True) for _ in range(30)], [])  # before canary
    clock.advance(1)
    store.transition("m", "canary", 10, actor="ops")
    assert store.error_budget_spent("m", t) is None
    at = clock.advance(1)
    batch = [obs("m", at, error=i < 7) for i in range(19)]
    batch += [obs("m", at, "py2", error=True), obs("m", at, role="shadow", error=True)]
    store.record(batch, [])
    assert store.error_budget_spent("m", t) is None  # 19 < min_error_samples
    store.record([obs("m", at)], [])
    assert store.error_budget_spent("m", t) == "py3 failed 7 of 20 requests (35.0% > 5.0%)"
    store.transition("m", "canary", 50, actor="ops")  # same mode: the window keeps counting
    assert store.error_budget_spent("m", t) is not None
    clock.advance(301)
    assert store.error_budget_spent("m", t) is None  # out of the window
    store.record([obs("m", clock.now, error=True) for _ in range(20)], [])
    store.transition("m", "shadow", actor="ops")
    assert store.error_budget_spent("m", t) is None  # shadow: the candidate serves nobody
    assert store.auto_rollback("m", t) is None


def test_auto_rollback_happens_once_when_two_stores_race(backend: Backend,
                                                         clock: Clock) -> None:
    t = Thresholds(error_budget=0.1, min_error_samples=5)
    a, b = backend.open(), backend.open()
    try:
        a.ensure("m")
        rounds = 15
        for _ in range(rounds):
            clock.advance(1000)
            a.transition("m", "shadow", actor="ops")
            a.transition("m", "canary", 25, actor="ops")
            a.record([obs("m", clock.now, error=True) for _ in range(5)], [])
            barrier = threading.Barrier(2)
            results: list[Any] = []

            def race(s: Store, barrier: threading.Barrier = barrier,
                     results: list[Any] = results) -> None:
                barrier.wait(timeout=5)
                results.append(s.auto_rollback("m", t))

            threads = [threading.Thread(target=race, args=(s,)) for s in (a, b)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(timeout=10)
            assert len(results) == 2
            assert sum(r is not None for r in results) == 1
            assert b.get("m").mode == "py2"
        autos = [e for e in a.audit("m", limit=1000) if e.actor == "gateway:auto"]
        assert len(autos) == rounds
        assert autos[0].reason == "py3 failed 5 of 5 requests (100.0% > 10.0%)"
        assert autos[0].to_json()["from"] == "canary 25%"
    finally:
        a.close()
        b.close()


# -- recording, trimming, reports -------------------------------------------------------------

def test_record_trims_each_name_oldest_first(store: Store, backend: Backend) -> None:
    extra = 50
    store.record([obs("a", T0 + i) for i in range(MAX_OBSERVATIONS + extra)]
                 + [obs("b", T0)],
                 [comp("a", T0 + i, rid=str(i)) for i in range(MAX_COMPARISONS + 3)])
    assert backend.stored("observation", "a") == (MAX_OBSERVATIONS, T0 + extra)
    assert backend.stored("comparison", "a") == (MAX_COMPARISONS, T0 + 3)
    assert backend.stored("observation", "b") == (1, T0)
    store.record([obs("a", T0 + 10**6)], [])
    assert backend.stored("observation", "a") == (MAX_OBSERVATIONS, T0 + extra + 1)


def test_two_stores_recording_add_up(backend: Backend, clock: Clock) -> None:
    """Two gateways' evidence is one body of evidence: the gate and report see the sum."""
    a, b = backend.open(), backend.open()
    a.ensure("m")
    a.transition("m", "shadow", actor="ops")
    at = clock.advance(1)

    def write(s: Store, tag: str) -> None:
        for i in range(20):
            s.record([obs("m", at, "py2", ms=2.0)] * 3,
                     [comp("m", at, "diff" if i % 10 == 0 else "same", ("/x",) if i % 10 == 0
                           else (), rid=f"{tag}{i}")])

    threads = [threading.Thread(target=write, args=(s, tag)) for s, tag in ((a, "a"), (b, "b"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=20)
    for s in (a, b):
        ev = s.evidence("m")
        assert (ev.samples, ev.regressions) == (40, 4)
        assert s.report("m", Thresholds())["traffic"]["py2"] == 120
        assert len(s.recent_diffs("m", limit=50)) == 4


def test_report_splits_traffic_and_takes_nearest_rank_percentiles(store: Store,
                                                                 clock: Clock) -> None:
    t = Thresholds(window_s=60)
    reach(store, "m", "canary")
    old = clock.now
    clock.advance(120)
    now = clock.now
    store.record(
        [obs("m", now, "py2", ms=float(ms)) for ms in range(10, 0, -1)]
        + [obs("m", now, "py3", ms=5.0), obs("m", now, "py3", ms=7.0, error=True)]
        + [obs("m", now, "py3", "shadow", ms=3.0), obs("m", now, "py2", "noise", ms=99.0)]
        + [obs("m", old, "py3", ms=1000.0)],  # outside the window
        [comp("m", now)],
    )
    report = store.report("m", t)
    assert report["name"] == "m" and report["state"]["label"] == "canary 10%"
    assert report["traffic"] == {"py2": 10, "py3": 2, "py3_share": 2 / 12}
    assert report["runtimes"]["py2"] == {"requests": 10, "errors": 0, "error_rate": 0.0,
                                         "p50_ms": 5.0, "p99_ms": 10.0}
    assert report["runtimes"]["py3"] == {"requests": 2, "errors": 1, "error_rate": 0.5,
                                         "p50_ms": 5.0, "p99_ms": 7.0}
    assert report["shadow"]["py3"]["p50_ms"] == 3.0
    assert report["shadow"]["py2"] == {"requests": 0, "errors": 0, "error_rate": 0.0,
                                       "p50_ms": None, "p99_ms": None}
    assert report["gate"]["reasons"] == ["1 of 50 samples"]
    assert report["evidence"]["samples"] == 1


def test_series_buckets_and_recent_diffs(store: Store, clock: Clock) -> None:
    reach(store, "m", "shadow")
    clock.now = 1000.0 + T0 // 10 * 10  # on a bucket boundary
    base = clock.now - 20  # first of three 10 s buckets
    store.record([], [
        comp("m", base - 5, "diff", ("/old",), rid="before"),
        comp("m", base + 1, "same", noise=("/ts",), rid="n"),
        comp("m", base + 2, "diff", ("/ts",), rid="ts"),
        comp("m", base + 11, "diff", ("/body",), rid="body"),
        comp("m", base + 12, "uncompared", rid="u"),
        comp("m", base + 20, "candidate_error", rid="err"),
    ])
    assert store.series("m", 10.0, 3) == [[base, 2, 0], [base + 10, 1, 1], [base + 20, 1, 1]]
    assert len(store.series("m")) == 30
    with pytest.raises(ValueError, match="bucket_s > 0"):
        store.series("m", 0.0, 3)
    diffs = store.recent_diffs("m", limit=3)
    assert [d["rid"] for d in diffs] == ["err", "body", "ts"]
    assert [d["noise"] for d in diffs] == [False, False, True]
    assert diffs[1]["paths"] == ["/body"] and diffs[1]["fields"] == [{"path": "/body"}]
    assert diffs[1]["sample"] == {"request": {"path": "/x"}}
    assert (diffs[1]["method"], diffs[1]["path"], diffs[1]["primary"]) == ("GET", "/x", "py2")
    assert len(store.recent_diffs()) == 4 and store.recent_diffs("other") == []

