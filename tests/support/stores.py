"""Migration store test helpers: a settable clock, evidence builders, and one backend per store.

::

    backend = Backend("redis", clock, db=path, url=server.url, prefix="t1:")
    a, b = backend.open(), backend.open()     # two gateways' stores on one backend
    backend.stored("observation", "m")        # (rows kept, the oldest one's time)
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from gateway.migration.redisstore import RedisStore
from gateway.migration.store import Comparison, MigrationStore, Observation
from gateway.migration.stores import Store

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


class Backend:
    """Where the stores of one test keep their data: a SQLite file or a Redis prefix."""

    def __init__(self, kind: str, clock: Clock, db: str = "", url: str = "",
                 prefix: str = "") -> None:
        self.kind, self.clock, self.db, self.url, self.prefix = kind, clock, db, url, prefix
        self.opened: list[Store] = []

    def open(self) -> Store:
        """Another store on the same data (another gateway, or another process's)."""
        store: Store = (RedisStore(self.url, self.prefix, self.clock) if self.kind == "redis"
                        else MigrationStore(self.db, self.clock))
        self.opened.append(store)
        return store

    def close(self) -> None:
        """Close every store opened here."""
        for store in self.opened:
            store.close()

    def stored(self, kind: str, name: str) -> tuple[int, float | None]:
        """How many observations or comparisons of ``name`` are kept, and the oldest's time."""
        if self.kind == "sqlite":
            found = rows(self.db, f"SELECT count(*), min(at) FROM {kind} WHERE name = ?", name)
            return int(found[0][0]), found[0][1]
        import redis
        key = f"{self.prefix}{'obs' if kind == 'observation' else 'cmp'}:{name}"
        client = redis.Redis.from_url(self.url)
        try:
            first = client.zrange(key, 0, 0, withscores=True)
            return int(client.zcard(key)), (float(first[0][1]) if first else None)
        finally:
            client.close()
