"""gateway.migration.redisstore only: notices, the poll fallback, Redis down, Redis restarted.

The behaviour both stores share is in ``test_migration_store.py``, run on each.
Every server here is a real redis-server on a free loopback port, owned by the test.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import gateway.migration.rediswatch as rediswatch
from gateway.migration import redisevidence
from gateway.migration.redisstore import RedisStore, StoreUnavailable
from gateway.migration.store import StoreError, Thresholds
from tests.support.procs import wait_until
from tests.support.redis_server import RedisServer
from tests.support.stores import Clock, comp, obs


@pytest.fixture
def aof_redis(workdir: str) -> Iterator[RedisServer]:
    """A redis-server that fsyncs its append-only file before every answer."""
    server = RedisServer(workdir, appendfsync="always")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stores() -> Iterator[list[RedisStore]]:
    opened: list[RedisStore] = []
    try:
        yield opened
    finally:
        for s in opened:
            s.close()


def kill_9(server: RedisServer) -> None:
    """SIGKILL by PID: no shutdown save, only what the AOF already holds survives."""
    assert server.proc is not None
    server.procs.signal(server.proc, signal.SIGKILL)
    server.proc.wait(timeout=10)
    server.stop()


def within(fn: Any, timeout: float = 10.0) -> Any:
    """Run ``fn`` in a thread that must finish before ``timeout`` (a hang fails the test)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc
    t = threading.Thread(target=run)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "the store call hung"
    return box


def test_a_notice_reaches_another_gateway_before_any_poll(redis_server: RedisServer,
                                                          stores: list[RedisStore],
                                                          monkeypatch: Any) -> None:
    monkeypatch.setattr(rediswatch, "POLL_S", 30.0)  # only a pub/sub notice can be in time
    a, b = RedisStore(redis_server.url), RedisStore(redis_server.url)
    stores += [a, b]
    a.ensure("m")
    assert b.changed() is True
    assert b.all()["m"].mode == "py2"
    assert b.changed() is False
    wait_until(b._copy.alive, timeout=5,
               what="the watcher running")
    wait_until(lambda: redis.Redis.from_url(redis_server.url).pubsub_numsub(b.channel)[0][1],
               timeout=5, what="the watcher subscribed")
    a.transition("m", "shadow", actor="ops")
    wait_until(b.changed, timeout=5, what="the notice")
    assert b.all()["m"].mode == "shadow"


def test_a_lost_notice_is_made_up_by_polling_the_counter(redis_server: RedisServer,
                                                         stores: list[RedisStore]) -> None:
    a, b = RedisStore(redis_server.url), RedisStore(redis_server.url)
    stores += [a, b]
    a.ensure("m")
    b.changed()
    raw = redis.Redis.from_url(redis_server.url)
    try:
        # A change whose notice never went out: state, version and counter, no PUBLISH.
        doc = raw.hget("gw:mig:states", "m")
        assert doc is not None
        raw.hset("gw:mig:states", "m", doc.replace(b'"py2"', b'"shadow"'))
        raw.hset("gw:mig:versions", "m", 2)
        raw.incr("gw:mig:version")
    finally:
        raw.close()
    wait_until(lambda: b.changed() and b.all()["m"].mode == "shadow", timeout=10,
               what="the poll")


def test_redis_down_serves_the_last_states_keeps_evidence_and_refuses_changes(
        redis_server: RedisServer, stores: list[RedisStore], caplog: Any) -> None:
    clock = Clock()
    a = RedisStore(redis_server.url, clock=clock, socket_timeout=0.5)
    stores.append(a)
    a.ensure("m")
    a.transition("m", "shadow", actor="ops")
    assert a.changed() is True
    redis_server.stop()

    # The data plane (this thread, as a request thread would): the last known states.
    assert a.changed() is False
    assert a.all()["m"].mode == "shadow"
    # Evidence: kept for Redis, logged once per interval, never an error.
    caplog.set_level(logging.WARNING, logger="gateway.migration.redisstore")
    for _ in range(3):
        assert "error" not in within(lambda: a.record([obs("m", clock.now)] * 2,
                                                      [comp("m", clock.now)]))
    assert (a.waiting, a.dropped) == (9, 0)
    assert sum("evidence waits" in r.getMessage() for r in caplog.records) == 1
    # Admin commands, and a store opened meanwhile: a typed error, in time.
    fresh = RedisStore(redis_server.url.replace("redis://", "redis://:hunter2@"),
                       socket_timeout=0.5)
    stores.append(fresh)
    for call in (lambda: a.transition("m", "canary", 10, actor="ops"),
                 lambda: a.promote("m", Thresholds(), actor="ops", force=True),
                 lambda: a.rollback("m", actor="ops"), lambda: a.audit("m"),
                 lambda: fresh.ensure("n")):
        error = within(call)["error"]
        assert isinstance(error, StoreUnavailable) and isinstance(error, StoreError)
        assert "did not answer" in str(error) and "hunter2" not in str(error)

    redis_server.start()  # no AOF here: an empty Redis on the same port
    wait_until(lambda: "error" not in within(lambda: a.ensure("m")), timeout=10,
               what="the store reconnected")
    assert a.get("m").mode == "py2"
    # The next write (here one with nothing new, as the recorder's idle flush) sends them.
    a.record([], [])
    assert (a.waiting, a.dropped) == (0, 0)
    assert a.evidence("m").samples == 3
    assert a.report("m", Thresholds(window_s=1e9))["runtimes"]["py3"]["requests"] == 6


def test_evidence_kept_while_redis_is_down_is_capped_oldest_first(
        redis_server: RedisServer, stores: list[RedisStore], monkeypatch: Any) -> None:
    monkeypatch.setattr(redisevidence, "MAX_WAITING", 5)
    clock = Clock()
    a = RedisStore(redis_server.url, clock=clock, socket_timeout=0.5)
    stores.append(a)
    a.ensure("m")
    redis_server.stop()
    for at in (1.0, 2.0, 3.0):  # three batches of 2; the cap keeps the newest two
        assert "error" not in within(lambda at=at: a.record(
            [obs("m", clock.now + at)] * 2, []))
    assert (a.waiting, a.dropped) == (4, 2)
    redis_server.start()
    wait_until(lambda: "error" not in within(lambda: a.ensure("m")), timeout=10,
               what="the store reconnected")
    a.record([], [])
    raw = redis.Redis.from_url(redis_server.url)
    try:
        kept = raw.zrange("gw:mig:obs:m", 0, -1, withscores=True)
    finally:
        raw.close()
    assert sorted(at - clock.now for _, at in kept) == [2.0, 2.0, 3.0, 3.0]
    assert a.waiting == 0


def test_an_aof_restart_loses_no_acknowledged_change(aof_redis: RedisServer,
                                                     stores: list[RedisStore]) -> None:
    a = RedisStore(aof_redis.url)
    stores.append(a)
    acknowledged = []
    for name in ("m", "n"):
        a.ensure(name)
        for mode, percent in (("shadow", 0), ("canary", 5), ("canary", 25), ("py3", 0)):
            acknowledged.append(a.transition(name, mode, percent, actor="ops"))
    a.record([obs("m", 1.0)] * 7, [comp("m", 1.0, "diff", ("/x",))])
    audit_before = [e.to_json() for e in a.audit(limit=1000)]
    kill_9(aof_redis)
    aof_redis.start()
    b = RedisStore(aof_redis.url)
    stores.append(b)
    for state in acknowledged[-1:] + acknowledged[3:4]:
        assert b.get(state.name) == state
    assert [e.to_json() for e in b.audit(limit=1000)] == audit_before
    assert len(audit_before) == 2 + len(acknowledged)
    assert len(b.recent_diffs("m")) == 1
    # The first store rides through the restart: its next change just works.
    wait_until(lambda: "error" not in within(lambda: a.rollback("m", actor="ops")),
               timeout=10, what="the first store reconnected")
    assert b.get("m").mode == "py2" and b.audit("m", limit=1)[0].to_mode == "py2"


def test_the_prefix_separates_two_estates_on_one_redis(redis_server: RedisServer,
                                                       stores: list[RedisStore]) -> None:
    a, b = RedisStore(redis_server.url, "one:"), RedisStore(redis_server.url, "two:")
    stores += [a, b]
    a.ensure("m")
    b.ensure("m", "shadow")
    a.transition("m", "shadow", actor="ops")
    assert (a.get("m").version, b.get("m").version) == (2, 1)
    assert len(a.audit()) == 2 and len(b.audit()) == 1


def test_a_redis_restarted_empty_gets_the_configured_states_back(redis_server: RedisServer,
                                                                 stores: list[RedisStore]) -> None:
    from gateway.migration.background import Recorder
    from gateway.migration.config import MigrationConfig
    a = RedisStore(redis_server.url)
    stores.append(a)
    a.ensure("m", "canary", 10)
    a.transition("m", "py2", actor="ops")
    assert a.changed() is True
    recorder = Recorder(a, [MigrationConfig(name="m", py3="m3", route="/m", state="canary",
                                            percent=10)])
    try:
        redis_server.restart()  # no append-only file: it comes back empty
        entries = wait_until(lambda: within(lambda: a.audit("m")).get("value"), timeout=15,
                             what="the state recreated")
    finally:
        recorder.close()
    assert [(e.actor, e.to_json()["to"]) for e in entries] == [("config", "canary 10%")]
    assert a.get("m").percent == 10


def test_a_resent_transition_script_applies_once(redis_server: RedisServer,
                                                 stores: list[RedisStore]) -> None:
    """The client resends a script whose reply the connection lost; it must not count twice."""
    from gateway.migration import redis_lua
    a = RedisStore(redis_server.url, "r:")
    stores.append(a)
    a.ensure("m")
    keys = ["r:states", "r:versions", "r:version", "r:audit", "r:audit:seq", "r:lastop"]
    state = '{"epoch_started": 1.0, "mode": "shadow", "mode_entered": 1.0, "percent": 0, ' \
            '"updated_at": 1.0, "updated_by": "ops", "version": 2}'
    audit = ["1.0", "ops", "py2", 0, "shadow", 0, "", 0]
    raw = redis.Redis.from_url(redis_server.url)
    try:
        first = raw.eval(redis_lua.TRANSITION, 6, *keys, "m", "r:changes", 1, 2, state, "op1",
                         *audit)
        again = raw.eval(redis_lua.TRANSITION, 6, *keys, "m", "r:changes", 1, 2, state, "op1",
                         *audit)
        other = raw.eval(redis_lua.TRANSITION, 6, *keys, "m", "r:changes", 1, 2, state, "op2",
                         *audit)
    finally:
        raw.close()
    assert first[0] == 1 and again == [1, 0] and other == [0, 2]
    assert a.get("m").mode == "shadow" and len(a.audit("m")) == 2


class LosingProxy:
    """A loopback TCP proxy to Redis that can lose one reply of the evidence script.

    Armed with ``lose.set()``, the next request carrying that script reaches Redis
    whole, Redis answers, and the proxy closes the client's connection instead
    of passing the answer on: the client sees a broken connection after the
    script ran, and resends it.
    """

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.lose = threading.Event()
        self.lost = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            t = threading.Thread(target=self._pipe, args=(client,), daemon=True)
            self._threads.append(t)
            t.start()

    def _pipe(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.redis_port), timeout=5)
        losing = False
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([client, upstream], [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        upstream.sendall(data)
                        if self.lose.is_set() and redisevidence.RECORD.encode()[:40] in data:
                            self.lose.clear()
                            losing = True
                    elif losing:  # Redis ran the script: its answer is lost with the connection
                        self.lost += 1
                        return
                    else:
                        client.sendall(data)
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self.listener.close()


def test_a_resent_evidence_batch_is_counted_once(redis_server: RedisServer,
                                                 stores: list[RedisStore]) -> None:
    """The reply to an evidence batch is lost after Redis applied it; the resend adds nothing."""
    clock = Clock()
    proxy = LosingProxy(redis_server.port)
    raw = redis.Redis.from_url(redis_server.url)
    keys = redisevidence.EvidenceKeys("ev:")
    try:
        a = RedisStore(f"redis://127.0.0.1:{proxy.port}/0", "ev:", clock=clock)
        stores.append(a)
        a.ensure("m", "canary", 10)
        batch = ([obs("m", clock.now, error=True), obs("m", clock.now)],
                 [comp("m", clock.now, "diff", ("/x",))])
        scripts = raw.info("commandstats")["cmdstat_eval"]["calls"]
        proxy.lose.set()
        assert "error" not in within(lambda: a.record(*batch))
        assert proxy.lost == 1 and a.dropped == 0
        assert raw.info("commandstats")["cmdstat_eval"]["calls"] == scripts + 2  # resent once
        assert redisevidence.budget_counts(raw, keys, "m", 0) == (2, 1)
        assert (raw.zcard("ev:obs:m"), raw.zcard("ev:cmp:m"), raw.zcard("ev:diff:m")) == (2, 1, 1)
        assert a.evidence("m").regressions == 1 and len(a.recent_diffs("m")) == 1

        # The same op id sent by hand is refused; a new batch (a new op id) counts.
        obs_, cmps = batch
        assert redisevidence.write(raw, keys, obs_, cmps, "op1", clock.now) is True
        assert redisevidence.write(raw, keys, obs_, cmps, "op1", clock.now) is False
        a.record(*batch)
        assert redisevidence.budget_counts(raw, keys, "m", 0) == (6, 3)
        assert a.evidence("m").regressions == 3
    finally:
        raw.close()
        proxy.close()


def _read_line(fd: int, timeout: float) -> str:
    """One line from the pipe ``fd`` within ``timeout`` ("" at end of file)."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0, f"no line from the child within {timeout} s (got {data!r})"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 256)
            if not chunk:
                break
            data += chunk
    return data.decode().strip()


def _forked_child(store: RedisStore, out: int) -> int:
    """In the child: start the copy, report, then wait (10 s at most) for the parent's change."""
    def say(text: str) -> None:
        os.write(out, text.encode() + b"\n")
    try:
        store.changed()  # the parent's thread did not cross the fork: this starts the child's
        say(f"started {store._copy.alive()} {store.all()['m'].mode}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            store.changed()
            if store.all()["m"].mode == "shadow":
                say("saw shadow")
                return 0
            time.sleep(0.01)  # polling the copy, which its own thread refreshes
        say("no change seen")
        return 1
    except BaseException as exc:
        say(f"error {exc!r}")
        return 2


@pytest.mark.filterwarnings("ignore:.*multi-threaded.*:DeprecationWarning")
def test_the_state_copy_restarts_in_a_forked_child(redis_server: RedisServer,
                                                   stores: list[RedisStore]) -> None:
    a = RedisStore(redis_server.url, "fork:")
    stores.append(a)
    a.ensure("m")
    assert a.changed() is True and a._copy.alive()  # the parent's copy and its thread
    read, write = os.pipe()
    lock = a._copy._lock
    lock.acquire()  # held across the fork, as the parent's watcher thread may hold it
    pid = os.fork()
    if pid:
        lock.release()
    if pid == 0:  # the child leaves only through os._exit, never back into pytest
        code = 3
        try:
            os.close(read)
            code = _forked_child(a, write)
        finally:
            os._exit(code)
    os.close(write)
    try:
        assert _read_line(read, 10) == "started True py2"
        a.transition("m", "shadow", actor="ops")  # made after the fork, by the parent
        assert _read_line(read, 10) == "saw shadow"
        done = wait_until(lambda: (lambda r: r if r[0] == pid else None)(
            os.waitpid(pid, os.WNOHANG)), timeout=10, what="the child's exit")
        pid = 0
        assert os.waitstatus_to_exitcode(done[1]) == 0
    finally:
        os.close(read)
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
