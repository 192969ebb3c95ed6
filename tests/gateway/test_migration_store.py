"""gateway.migration.store: transitions, audit, gates, noise, error budget, concurrency."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import GatewayError
from gateway.migration.store import (
    MAX_COMPARISONS,
    MAX_OBSERVATIONS,
    MODES,
    NOISE_MEMORY_S,
    SCHEMA_VERSION,
    Comparison,
    GateRefused,
    MigrationStore,
    Observation,
    StoreError,
    Thresholds,
    TransitionError,
)
from tests.support.procs import ProcessGroup, wait_until

T0 = 1_700_000_000.0


class Clock:
    """A settable clock shared by the stores of one test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "migrations.sqlite3")


@pytest.fixture
def store(db: str, clock: Clock) -> Iterator[MigrationStore]:
    s = MigrationStore(db, clock)
    try:
        yield s
    finally:
        s.close()


def obs(name: str, at: float, runtime: str = "py3", role: str = "serve", ms: float = 1.0,
        error: bool = False) -> Observation:
    return Observation(name, at, runtime, role, ms, 500 if error else 200, error)


def comp(name: str, at: float, outcome: str = "same", paths: tuple[str, ...] = (),
         noise: tuple[str, ...] = (), checked: bool = False, rid: str = "r") -> Comparison:
    return Comparison(name, at, rid, "py2", outcome, paths, noise, checked or bool(noise),
                      [{"path": p} for p in paths], {"request": {"path": "/x"}}, "GET", "/x")


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a fresh thread (its own connection); return or raise its result."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def rows(db: str, sql: str, *params: Any) -> list[Any]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# -- opening ----------------------------------------------------------------------------------

def test_open_creates_private_wal_file_with_schema_version(store: MigrationStore, db: str) -> None:
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    again = MigrationStore(db)  # reopening an up-to-date file changes nothing
    assert again.all() == {}
    again.close()


def test_newer_schema_is_refused(db: str) -> None:
    MigrationStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        MigrationStore(db)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are not the tables you are looking for\n" * 200)
    with pytest.raises(StoreError, match="not a migration store database") as info:
        MigrationStore(str(path))
    assert isinstance(info.value, GatewayError)


READ_ONLY_CHECK = """
import sys
from gateway.migration.store import MigrationStore, StoreError
for path in sys.argv[1:]:
    try:
        MigrationStore(path)
    except StoreError as exc:
        print("StoreError:", exc)
    else:
        sys.exit("opened %s in a read-only directory" % path)
"""


def test_a_read_only_directory_is_a_store_error(tmp_path: Path, procs: ProcessGroup) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    existing = str(ro / "existing.sqlite3")
    MigrationStore(existing).close()
    fresh = str(ro / "fresh.sqlite3")
    ro.chmod(0o500)
    try:
        if os.geteuid() != 0:
            for path in (fresh, existing):
                with pytest.raises(StoreError, match="migration store"):
                    MigrationStore(path)
            return
        # Root ignores permission bits; drop the capabilities that let it.
        setpriv = "/usr/bin/setpriv"
        if not os.path.exists(setpriv):
            pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
        proc = procs.spawn(
            [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--",
             sys.executable, "-c", READ_ONLY_CHECK, fresh, existing],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert len(lines) == 2 and all(line.startswith("StoreError: ") for line in lines)
        assert b"Traceback" not in err
    finally:
        ro.chmod(0o700)
    assert not os.path.exists(fresh)


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


def reach(store: MigrationStore, name: str, mode: str) -> None:
    store.ensure(name)
    for step, percent in ROUTES[mode]:
        store.transition(name, step, percent, actor="setup")
    assert store.get(name).mode == mode


@pytest.mark.parametrize("source", MODES)
@pytest.mark.parametrize("target", MODES)
def test_every_transition_is_legal_or_refused(store: MigrationStore, source: str,
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


def test_retired_goes_back_to_py3_only_when_forced(store: MigrationStore) -> None:
    reach(store, "m", "retired")
    with pytest.raises(TransitionError, match="without force"):
        store.transition("m", "py3", actor="ops")
    assert store.transition("m", "py3", actor="ops", forced=True).mode == "py3"
    assert store.audit("m", limit=1)[0].forced is True


def test_bad_percent_unknown_mode_and_unknown_name(store: MigrationStore) -> None:
    reach(store, "m", "shadow")
    for percent in (0, 100, -5):
        with pytest.raises(TransitionError, match="1..99"):
            store.transition("m", "canary", percent, actor="ops")
    with pytest.raises(TransitionError, match="unknown mode"):
        store.transition("m", "py4", actor="ops")
    with pytest.raises(KeyError):
        store.transition("nope", "shadow", actor="ops")
    with pytest.raises(KeyError):
        store.get("nope")
    with pytest.raises(TransitionError, match="1..99"):
        store.ensure("c", "canary", 0)
    assert store.get("m").version == 2


def test_entering_shadow_starts_a_new_epoch(store: MigrationStore, clock: Clock) -> None:
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


def test_ensure_creates_once_and_audits_as_config(store: MigrationStore, clock: Clock) -> None:
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


def test_every_change_writes_one_audit_row(store: MigrationStore, clock: Clock) -> None:
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


def test_expect_version_is_a_compare_and_set(store: MigrationStore) -> None:
    v = store.ensure("m").version
    store.transition("m", "shadow", actor="a", expect_version=v)
    with pytest.raises(TransitionError, match="changed concurrently"):
        store.transition("m", "canary", 10, actor="b", expect_version=v)
    assert store.get("m").mode == "shadow" and len(store.audit("m")) == 2


def test_changed_sees_other_threads_and_ignores_observations(store: MigrationStore,
                                                             db: str, clock: Clock) -> None:
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
    other = MigrationStore(db, clock)
    other.ensure("n")
    other.close()
    assert store.changed() is True
    assert store.changed() is False
