"""gateway.migration.store (SQLite) only: the file, its schema, locks and processes on one file.

The behaviour both stores share is in ``test_migration_store.py``, run on each.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import GatewayError
from gateway.migration.store import SCHEMA_VERSION, MigrationStore, StoreError
from tests.support.procs import ProcessGroup, wait_until
from tests.support.stores import Clock, obs, rows


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


# -- opening ----------------------------------------------------------------------------------

def test_open_creates_private_wal_file_with_schema_version(store: MigrationStore, db: str) -> None:
    store.ensure("m")  # the WAL and shared-memory files exist while it is open
    for path in (db, db + "-wal", db + "-shm"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    again = MigrationStore(db)  # reopening an up-to-date file changes nothing
    assert set(again.all()) == {"m"}
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


def test_a_held_lock_is_a_store_error_and_the_store_recovers(db: str, clock: Clock,
                                                            monkeypatch: Any) -> None:
    import gateway.migration.sqlitefile as sqlitefile

    monkeypatch.setattr(sqlitefile, "BUSY_TIMEOUT_MS", 50)
    s = MigrationStore(db, clock)
    try:
        s.ensure("m")
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreError, match="held the lock"):
                s.transition("m", "shadow", actor="ops")
            with pytest.raises(StoreError, match="locked"):
                s.record([obs("m", clock.now)], [])
            assert s.get("m").mode == "py2"  # readers are not blocked by a writer in WAL
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert s.transition("m", "shadow", actor="ops").version == 2
        assert [e.to_mode for e in s.audit("m")] == ["shadow", "py2"]
    finally:
        s.close()


# -- several processes on one file ------------------------------------------------------------

WRITER = """
import select, sys, threading, time
from gateway.migration.store import Comparison, MigrationStore, Observation
path, idx, ready = sys.argv[1], sys.argv[2], sys.argv[3]
store = MigrationStore(path)
open(ready, "w").close()
if not select.select([sys.stdin], [], [], 20)[0]:  # "go" from the test, to all at once
    sys.exit("no go within 20 s")
sys.stdin.readline()

def write(part):
    for batch in range(25):   # 25 batches x 10 observations + 2 comparisons per thread
        now = time.time()
        store.record(
            [Observation("GET /m", now, "py3", "serve", float(idx), 200, False)] * 10,
            [Comparison("GET /m", now, "%s-%s-%d-%d" % (idx, part, batch, k), "py2", "same",
                        (), (), False, [], {}) for k in range(2)])

threads = [threading.Thread(target=write, args=(p,)) for p in "ab"]
for t in threads:
    t.start()
for t in threads:
    t.join()
store.close()
print("done", idx)
"""


def test_three_processes_record_into_one_file_without_loss(tmp_path: Path, db: str,
                                                           procs: ProcessGroup) -> None:
    MigrationStore(db).close()
    spawned = []
    for idx in ("1", "2", "3"):
        ready = tmp_path / f"ready{idx}"
        proc = procs.spawn([sys.executable, "-c", WRITER, db, idx, str(ready)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        spawned.append((idx, ready, proc))
    wait_until(lambda: all(r.exists() for _, r, _ in spawned), timeout=15, what="writers ready")
    for _, _, proc in spawned:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    for idx, _, proc in spawned:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and b"locked" not in err, err.decode()
        assert out.decode().split() == ["done", idx]
    per_writer = rows(db, "SELECT ms, count(*) FROM observation GROUP BY ms")
    assert sorted(per_writer) == [(1.0, 500), (2.0, 500), (3.0, 500)]
    assert rows(db, "SELECT count(*), count(DISTINCT rid) FROM comparison") == [(300, 300)]
    assert sorted(rows(db, "SELECT kind, n FROM tally")) == [("comparison", 300),
                                                             ("observation", 1500)]


def _open_at_the_barrier(path: str, barrier: Any, results: Any) -> None:
    barrier.wait(30)
    try:
        MigrationStore(path).close()
        results.put("ok")
    except StoreError as exc:
        results.put(str(exc))


def test_processes_opening_a_new_store_together_all_succeed(tmp_path: Path) -> None:
    """The front's workers open a new store at the same moment; none may fail on the lock
    the switch to WAL takes."""
    import multiprocessing
    ctx = multiprocessing.get_context("spawn")   # fork from a threaded test run warns on 3.12+
    for round_ in range(8):
        path = str(tmp_path / f"race-{round_}.sqlite3")
        barrier, results = ctx.Barrier(4), ctx.Queue()
        workers = [ctx.Process(target=_open_at_the_barrier, args=(path, barrier, results))
                   for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            outcomes = [results.get(timeout=30) for _ in workers]
        finally:
            for worker in workers:
                worker.join(30)
        assert outcomes == ["ok"] * 4, outcomes
