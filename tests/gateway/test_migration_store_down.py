"""A front process whose Redis store is down when it starts, and is started afterwards.

The process serves the configured states (routes and the broker's split file),
says so in one log line without a traceback, lets the automatic rollback wait,
and follows the store once a real redis-server answers on the configured port.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.migration.config import MigrationSettings, parse_settings
from gateway.migration.lab import Migrations
from gateway.migration.outage import Outage
from gateway.migration.redisstore import RedisStore
from tests.support.procs import wait_until
from tests.support.redis_server import RedisServer


@pytest.fixture
def later_redis(workdir: str) -> Iterator[RedisServer]:
    """A redis-server whose port is known now and that the test starts when it wants."""
    server = RedisServer(workdir, start=False)
    try:
        yield server
    finally:
        server.stop()


def settings_for(url: str, run_dir: str) -> MigrationSettings:
    """A route migration in canary 30% and a service migration in canary 40%, in Redis."""
    return parse_settings(
        {"store": "redis", "redis_url": url, "redis_prefix": "down:"},
        {"notes": {"route": "/api/notes", "py3": "notes3", "state": "canary", "percent": 30},
         "tax": {"service": "tax", "py3": "tax3", "state": "canary", "percent": 40}},
        run_dir, run_dir)


def said(caplog: Any, words: str) -> int:
    return sum(words in r.getMessage() for r in caplog.records)


def test_outage_is_said_once_until_the_store_answers_again(caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.migration.outage")
    outage = Outage("redis://127.0.0.1:1/0")
    assert outage.down("store unreachable: first") is True
    assert outage.down("store unreachable: second") is False and outage.is_down
    outage.up()
    outage.up()  # was not down any more: nothing to say
    assert not outage.is_down and outage.down("store unreachable: third") is True
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["store unreachable: first",
                        "migration store redis://127.0.0.1:1/0 answers again: serving its states",
                        "store unreachable: third"]


def test_a_front_started_while_redis_is_down_serves_the_configured_states_then_the_stores(
        later_redis: RedisServer, workdir: str, caplog: Any, monkeypatch: Any) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.migration")
    run_dir = os.path.join(workdir, "run")
    settings = settings_for(later_redis.url, run_dir)
    migrations = Migrations(settings)  # before: StoreUnavailable out of here, the worker died
    other = RedisStore(later_redis.url, prefix="down:")
    readers: list[str] = []  # the threads that asked Redis for the states
    copy = migrations.store._copy  # type: ignore[attr-defined]
    refresh = copy._refresh
    monkeypatch.setattr(copy, "_refresh", lambda known: (
        readers.append(threading.current_thread().name), refresh(known))[1])
    try:
        notes = migrations.state("notes")  # a request's first look: it must not ask Redis
        assert (notes.mode, notes.percent, notes.version) == ("canary", 30, 0)
        with open(settings.splits_file, encoding="utf-8") as fh:
            assert "tax tax3 40\n" in fh.read()  # the broker follows the configured state too
        migrations.recorder.judge()            # the rollback judge waits, without an error
        assert migrations.state("notes").version == 0
        assert said(caplog, "unreachable") == 1, caplog.text
        assert "serving the configured states (notes: canary 30%, tax: canary 40%)" in \
            caplog.text
        assert not [r for r in caplog.records if r.exc_info], caplog.text

        later_redis.start()
        # Created in the store as configured (by the recorder, within a second), then read.
        wait_until(lambda: migrations.state("notes").version >= 1, timeout=10,
                   what="the states created in the store and read back")
        assert [e.actor for e in other.audit("notes")] == ["config"]
        other.transition("notes", "py3", actor="ops")
        wait_until(lambda: migrations.state("notes").mode == "py3", timeout=5,
                   what="the front following the store")
        other.transition("tax", "py3", actor="ops")

        def split() -> str:
            migrations.broker.sync()
            with open(settings.splits_file, encoding="utf-8") as fh:
                return fh.read()
        wait_until(lambda: "tax tax3 100\n" in split(), timeout=5, what="the split followed")
        assert said(caplog, "answers again") == 1 and said(caplog, "unreachable") == 1
        assert readers and set(readers) == {"migration-watcher"}, readers
        assert not [r for r in caplog.records if r.exc_info], caplog.text
    finally:
        other.close()
        migrations.close()
