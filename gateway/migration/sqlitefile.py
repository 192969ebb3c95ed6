"""One SQLite file shared by processes and threads: connections, transactions, the schema.

The plumbing under :class:`~gateway.migration.store.MigrationStore`: one
connection per thread (and per process: a connection never crosses a fork),
WAL journal, ``BEGIN IMMEDIATE`` for every read-modify-write, the schema
versioned with ``PRAGMA user_version``, and every SQLite failure turned into a
:class:`~gateway.migration.model.StoreError` that says what to check::

    class MyStore(SqliteFile):
        def names(self) -> list[str]:
            return [r[0] for r in self._read("SELECT name FROM state")]

        def rename(self, old: str, new: str) -> None:
            with self._write("rename") as conn:      # committed, or rolled back
                conn.execute("UPDATE state SET name = ? WHERE name = ?", (new, old))
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from gateway.migration.model import StoreError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS state (
        name TEXT PRIMARY KEY, mode TEXT NOT NULL, percent INTEGER NOT NULL,
        version INTEGER NOT NULL, epoch_started REAL NOT NULL, mode_entered REAL NOT NULL,
        updated_at REAL NOT NULL, updated_by TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
        name TEXT NOT NULL, from_mode TEXT NOT NULL, from_percent INTEGER NOT NULL,
        to_mode TEXT NOT NULL, to_percent INTEGER NOT NULL, reason TEXT NOT NULL,
        forced INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audit_name ON audit (name, id)",
    """CREATE TABLE IF NOT EXISTS observation (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, at REAL NOT NULL, runtime TEXT NOT NULL,
        role TEXT NOT NULL, ms REAL NOT NULL, status INTEGER NOT NULL, error INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS observation_name_at ON observation (name, at)",
    # Covers the error-budget count and the report, which run often on a full table.
    """CREATE INDEX IF NOT EXISTS observation_role
        ON observation (name, role, runtime, at, error, ms)""",
    """CREATE TABLE IF NOT EXISTS comparison (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, at REAL NOT NULL, rid TEXT NOT NULL,
        primary_rt TEXT NOT NULL, outcome TEXT NOT NULL, paths TEXT NOT NULL,
        noise_paths TEXT NOT NULL, noise_checked INTEGER NOT NULL, fields TEXT NOT NULL,
        sample TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS comparison_name_at ON comparison (name, at)",
    # Rows per (name, table), kept in the inserting transaction so trimming never counts.
    """CREATE TABLE IF NOT EXISTS tally (
        name TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (name, kind))""",
)



class Local:
    """One thread's connection, and what :meth:`MigrationStore.changed` saw on it last."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()
        self.thread = threading.current_thread()
        self.data_version = -1
        self.seen: tuple[int, int] | None = None
        self.wrote = False


def use_wal(conn: sqlite3.Connection, patience: float = 5.0) -> str:
    """Switch ``conn``'s database to WAL; the journal mode it is in afterwards.

    The switch needs the database to itself, and SQLite answers "database is
    locked" at once (the busy timeout does not apply to it) while another
    process opens the same new store: the front's workers start together.
    """
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
            if mode.lower() == "wal":
                return mode
            return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)   # a backoff against another process, not a synchronisation
        pause = min(pause * 2, 0.1)


def explain(path: str, action: str, exc: sqlite3.Error) -> str:
    msg = str(exc)
    low = msg.lower()
    if "locked" in low or "busy" in low:
        hint = f"another writer held the lock for more than {BUSY_TIMEOUT_MS / 1000:g} s"
    elif "full" in low:
        hint = "no space left for it"
    elif "not a database" in low or "malformed" in low or "corrupt" in low:
        hint = "the file is not a migration store database, or it is corrupt"
    elif "readonly" in low or "unable to open" in low:
        hint = "check that the file and its directory are writable"
    else:
        hint = "SQLite error"
    return f"migration store {path}: {action} failed: {hint} ({msg})"


class SqliteFile:
    """The migration database at ``path``: created 0600, its schema current, WAL on."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._tls = threading.local()
        self._lock = threading.Lock()
        self._conns: list[Local] = []
        self._closed = False
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(path, 0o600)
        except OSError as exc:
            raise StoreError(f"migration store {path}: cannot open: {exc.strerror}") from exc
        try:
            self._open_schema()
        except BaseException:
            self.close()
            raise

    def _open_schema(self) -> None:
        conn = self._local().conn
        with self._guard("open"):
            found = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"migration store {self.path}: schema version {found} is newer than "
                    f"{SCHEMA_VERSION}; upgrade the gateway"
                )
            journal = use_wal(conn)
            if journal.lower() != "wal":
                raise StoreError(f"migration store {self.path}: cannot use WAL ({journal})")
        if found == SCHEMA_VERSION:
            return
        with self._write("create schema") as conn:
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) < SCHEMA_VERSION:
                for statement in SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close every connection this process opened; the store is unusable afterwards."""
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for local in conns:
            # A connection inherited across fork belongs to the parent; leave it alone.
            if local.pid == os.getpid():
                local.conn.close()

    def _local(self) -> Local:
        local: Local | None = getattr(self._tls, "local", None)
        if local is not None and local.pid == os.getpid():
            return local
        with self._lock:
            if self._closed:
                raise StoreError(f"migration store {self.path} is closed")
            with self._guard("connect"):
                conn = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_MS / 1000.0, isolation_level=None,
                    check_same_thread=False,  # only close() touches it from another thread
                )
                try:
                    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                    conn.execute("PRAGMA synchronous = NORMAL")
                except BaseException:
                    conn.close()
                    raise
            local = Local(conn)
            self._conns.append(local)
            self._close_orphans()
        self._tls.local = local
        return local

    def _close_orphans(self) -> None:
        """Close the connections of threads that have ended (called with the lock held)."""
        keep = []
        for other in self._conns:
            if other.pid == os.getpid() and not other.thread.is_alive():
                other.conn.close()
            else:
                keep.append(other)
        self._conns = keep

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(explain(self.path, action, exc)) from exc

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """A short ``BEGIN IMMEDIATE`` transaction: committed, or rolled back on any error."""
        conn = self._local().conn
        with self._guard(action):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT, so the next BEGIN starts clean.
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the original error is the one worth reporting
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        conn = self._local().conn
        with self._guard("read"):
            return conn.execute(sql, params).fetchall()
