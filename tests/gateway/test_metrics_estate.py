"""Estate collectors against real parts: both brokers, a private redis-server, a real store.

The arbiter's collector runs against a whole ``gateway up`` in
tests/integration/arbiter/test_estate_metrics.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import zmq
from prometheus_client import CollectorRegistry, generate_latest

from gateway.arbiter.control import call
from gateway.arbiter.estate import estate_of
from gateway.arbiter.states import State
from gateway.config import parse
from gateway.metrics.arbiter_stats import ArbiterStats
from gateway.metrics.broker_stats import BrokerStats
from gateway.metrics.estate import Estate, EstateCollector, parts_of
from gateway.metrics.migration_stats import MigrationStats
from gateway.metrics.queue_stats import QueueStats
from gateway.migration.config import MigrationSettings
from gateway.migration.model import MODES
from gateway.migration.store import Comparison, MigrationStore, Observation, Thresholds
from gateway.migration.stores import Store, exists, open_store
from protocol import codec, mdp
from protocol.queue import Consumer, Queue, Reject, connect
from tests.support.broker import IMPLEMENTATIONS, BrokerProcess
from tests.support.procs import ProcessGroup, free_port, wait_until


def sample(collector: Any, name: str, **labels: str) -> float | None:
    """The value of one sample in a fresh scrape, or None when it is absent."""
    for family in collector.collect():
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def names(families: Iterable[Any]) -> list[str]:
    return [s.name for f in families for s in f.samples]


def arbiter_stats(sock: str, timeout: float) -> ArbiterStats:
    """The collector over a control socket, handed what the arbiter's layer hands it."""
    return ArbiterStats(lambda t: call(sock, {"cmd": "status"}, timeout=t),
                        [s.value for s in State], timeout=timeout)


def migration_stats(settings: MigrationSettings) -> MigrationStats:
    """The collector over the store ``settings`` name, opened as the arbiter's layer does."""
    def open_reader() -> Store | None:
        return open_store(settings) if exists(settings) else None
    return MigrationStats(open_reader, MODES)


def sqlite_stats(db: str) -> MigrationStats:
    return migration_stats(MigrationSettings(db=db, token_file=""))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_broker_metrics_follow_a_real_broker(procs: ProcessGroup, impl: str) -> None:
    broker = BrokerProcess(procs, impl, heartbeat_ms=100)
    stats = BrokerStats(broker.endpoint, timeout=2.0)
    assert sample(stats, "gateway_broker_up") == 1.0
    assert sample(stats, "gateway_broker_heartbeat_expiries_total") == 0.0

    worker = zmq.Context.instance().socket(zmq.DEALER)
    worker.linger = 0
    try:
        worker.connect(broker.endpoint)
        worker.send_multipart(mdp.worker_ready(b"svc", {"heartbeat_ms": 100}))
        wait_until(lambda: sample(stats, "gateway_broker_workers", service="svc") == 1.0,
                   10, what="the worker in the broker's metrics")
        # The worker never beats: the broker declares it dead after 3 x 100 ms.
        wait_until(lambda: sample(stats, "gateway_broker_heartbeat_expiries_total") == 1.0,
                   10, what="a heartbeat expiry")
    finally:
        worker.close(linger=0)
    assert sample(stats, "gateway_broker_workers", service="svc") in (None, 0.0)

    before = sample(stats, "gateway_broker_client_requests_total") or 0.0
    client = zmq.Context.instance().socket(zmq.DEALER)
    client.linger = 0
    try:
        client.connect(broker.endpoint)
        env = codec.Envelope("call", method="m", deadline=mdp.now_ms() + 200)
        client.send_multipart(mdp.client_request(b"svc", codec.encode(env)))
        assert client.poll(5000), "the broker did not answer the expired request"
    finally:
        client.close(linger=0)
    assert sample(stats, "gateway_broker_request_outcomes_total", outcome="timeout") == 1.0
    # Per service: svc was served once, so its expired request ends "unavailable" there.
    assert sample(stats, "gateway_broker_service_requests_total", service="svc") == 1.0
    per_outcome = {o: sample(stats, "gateway_broker_requests_total", service="svc", outcome=o)
                   for o in ("ok", "timeout", "unavailable", "worker_lost", "retried",
                             "too_busy")}
    assert per_outcome == {"ok": 0.0, "timeout": 0.0, "unavailable": 1.0, "worker_lost": 0.0,
                           "retried": 0.0, "too_busy": 0.0}
    # Each scrape is a request too (mmi.stats), so the client's shows as at least one more.
    assert (sample(stats, "gateway_broker_client_requests_total") or 0.0) >= before + 1.0


def test_a_broker_that_does_not_answer_is_up_0_and_nothing_else() -> None:
    stats = BrokerStats(f"tcp://127.0.0.1:{free_port()}", timeout=0.2)
    started = time.monotonic()
    assert names(stats.collect()) == ["gateway_broker_up"]
    assert sample(stats, "gateway_broker_up") == 0.0
    assert time.monotonic() - started < 5.0


def test_no_arbiter_is_up_0(tmp_path: Path) -> None:
    stats = arbiter_stats(str(tmp_path / "arbiter.sock"), timeout=0.2)
    assert names(stats.collect()) == ["gateway_arbiter_up"]
    assert sample(stats, "gateway_arbiter_up") == 0.0


def test_the_arbiter_collector_reads_what_it_is_handed() -> None:
    # The status reader and the state names come from the arbiter's layer; the collector
    # only reads the status document (its shape is the control channel's "status").
    asked: list[float] = []

    def status(timeout: float) -> dict[str, Any]:
        asked.append(timeout)
        return {"programs": [{"name": "web", "state": "FATAL", "generation": 2,
                              "replicas_wanted": 2,
                              "replicas": [{"state": "BACKOFF", "restarts": 3},
                                           {"state": "FATAL", "restarts": 5}]}]}
    stats = ArbiterStats(status, ["READY", "BACKOFF", "FATAL"], timeout=0.3)
    assert sample(stats, "gateway_arbiter_up") == 1.0
    assert asked == [0.3]
    assert sample(stats, "gateway_arbiter_program_state", program="web", state="FATAL") == 1.0
    assert sample(stats, "gateway_arbiter_program_state", program="web", state="READY") == 0.0
    assert sample(stats, "gateway_arbiter_replicas", program="web", state="BACKOFF") == 1.0
    assert sample(stats, "gateway_arbiter_restarts_total", program="web") == 8.0
    assert sample(stats, "gateway_arbiter_reloads_total", program="web") == 2.0
    assert sample(stats, "gateway_arbiter_fatal_programs") == 1.0

    def broken(timeout: float) -> Any:
        raise OSError("no such socket")
    assert names(ArbiterStats(broken, ["READY"]).collect()) == ["gateway_arbiter_up"]


def test_the_estate_leaves_out_parts_it_has_no_reader_for(tmp_path: Path) -> None:
    config = parse(f'[broker]\nenabled = false\n[gateway]\nrun_dir = "{tmp_path}"\n')
    assert parts_of(Estate(config)) == []
    parts = parts_of(estate_of(config))
    assert [type(p) for p in parts] == [ArbiterStats]
    assert names(parts[0].collect()) == ["gateway_arbiter_up"]  # no arbiter runs here


def test_queue_metrics_count_ready_inflight_dead_and_retrying(redis_server: Any) -> None:
    client = connect(redis_server.url)
    try:
        jobs = Queue(client, "jobs", backoff=lambda attempt: 60.0)
        for n in range(4):
            jobs.enqueue({"n": n})

        def handle(job: Any) -> Any:
            if job.payload["n"] == 0:
                raise Reject("poison")
            raise ValueError("try again later")

        consumer = Consumer(jobs, handle, block=0.2)
        try:
            assert consumer.process_one(timeout=1.0)  # n=0: dead at once
            assert consumer.process_one(timeout=1.0)  # n=1: failed, retry in 60 s
        finally:
            consumer.close()
        stats = QueueStats(redis_server.url, ["jobs", "empty"], timeout=1.0)
        try:
            assert sample(stats, "gateway_queue_up") == 1.0
            assert sample(stats, "gateway_queue_depth", queue="jobs") == 2.0
            assert sample(stats, "gateway_queue_dead_letters", queue="jobs") == 1.0
            assert sample(stats, "gateway_queue_retry_waiting", queue="jobs") == 1.0
            assert sample(stats, "gateway_queue_inflight", queue="jobs") == 0.0
            assert sample(stats, "gateway_queue_depth", queue="empty") == 0.0
        finally:
            stats.close()
    finally:
        client.connection_pool.disconnect()


def test_redis_down_is_up_0_and_nothing_else() -> None:
    stats = QueueStats(f"redis://127.0.0.1:{free_port()}/0", ["jobs"], timeout=0.3)
    try:
        assert names(stats.collect()) == ["gateway_queue_up"]
        assert sample(stats, "gateway_queue_up") == 0.0
    finally:
        stats.close()


def test_migration_metrics_from_a_real_store(tmp_path: Path) -> None:
    db = str(tmp_path / "migrations.sqlite3")
    assert sample(sqlite_stats(db), "gateway_migration_store_up") == 0.0  # no store yet
    store = MigrationStore(db)
    try:
        store.ensure("GET /a")
        store.ensure("GET /b")
        store.transition("GET /b", "shadow", actor="ops")
        store.transition("GET /b", "canary", percent=10, actor="ops")
        now = time.time()

        def comp(outcome: str, paths: tuple[str, ...] = ()) -> Comparison:
            return Comparison("GET /b", now, "r", "py2", outcome, paths, (), False,
                              [], {}, "GET", "/b")
        store.record([], [comp("same"), comp("same"), comp("diff", ("/x",)),
                          comp("candidate_error"), comp("uncompared")])
        # Then py3 fails every request: the error budget rolls it back.
        store.record([Observation("GET /b", now, "py3", "serve", 1.0, 500, True)] * 25, [])
        assert store.auto_rollback("GET /b", Thresholds()) is not None
        before = {n: s.mode for n, s in store.all().items()}
        evidence = store.evidence("GET /b")
    finally:
        store.close()
    stats = sqlite_stats(db)
    try:
        assert sample(stats, "gateway_migration_store_up") == 1.0
        assert before == {"GET /a": "py2", "GET /b": "py2"}
        assert sample(stats, "gateway_migration_state", migration="GET /b", mode="py2") == 1.0
        assert sample(stats, "gateway_migration_state", migration="GET /b", mode="canary") == 0.0
        assert sample(stats, "gateway_migration_auto_rollbacks_total", migration="GET /b") == 1.0
        assert sample(stats, "gateway_migration_auto_rollbacks_total", migration="GET /a") == 0.0
        assert sample(stats, "gateway_migration_transitions_total", migration="GET /b") == 3.0
        # The same numbers as the store's gate reads.
        assert sample(stats, "gateway_migration_samples", migration="GET /b") == \
            evidence.samples == 4
        assert sample(stats, "gateway_migration_uncompared", migration="GET /b") == 1.0
    finally:
        stats.close()


def test_migration_evidence_of_the_current_epoch(tmp_path: Path) -> None:
    db = str(tmp_path / "migrations.sqlite3")
    store = MigrationStore(db)
    try:
        store.ensure("rpc x")
        store.transition("rpc x", "shadow", actor="ops")
        now = time.time() + 1.0  # after the epoch began

        def comp(outcome: str, paths: tuple[str, ...] = ()) -> Comparison:
            return Comparison("rpc x", now, "r", "py2", outcome, paths, (), False,
                              [], {}, "rpc", "x")
        store.record([], [comp("same"), comp("diff", ("/v",)), comp("candidate_error"),
                          comp("uncompared")])
    finally:
        store.close()
    stats = sqlite_stats(db)
    try:
        assert sample(stats, "gateway_migration_state", migration="rpc x", mode="shadow") == 1.0
        assert sample(stats, "gateway_migration_samples", migration="rpc x") == 3.0
        assert sample(stats, "gateway_migration_regressions", migration="rpc x") == 2.0
        assert sample(stats, "gateway_migration_candidate_errors", migration="rpc x") == 1.0
        assert sample(stats, "gateway_migration_uncompared", migration="rpc x") == 1.0
        assert sample(stats, "gateway_migration_py3_percent", migration="rpc x") == 0.0
    finally:
        stats.close()


def test_the_estate_collector_renders_in_a_registry(procs: ProcessGroup, tmp_path: Path) -> None:
    broker = BrokerProcess(procs, "native", heartbeat_ms=100)
    estate = EstateCollector(None, parts=[
        BrokerStats(broker.endpoint, timeout=2.0),
        arbiter_stats(str(tmp_path / "none.sock"), timeout=0.2)])
    registry = CollectorRegistry()
    registry.register(estate)
    text = generate_latest(registry).decode()
    assert "gateway_broker_up 1.0" in text
    assert "gateway_arbiter_up 0.0" in text
    assert 'gateway_broker_drops_total{reason="' in text or "gateway_broker_drops_total" in text
    estate.close()


def test_migration_metrics_from_a_shared_redis_store(redis_server: Any) -> None:
    from gateway.migration.redisstore import RedisStore
    settings = MigrationSettings(db="", token_file="", store="redis",
                                 redis_url=redis_server.url, redis_prefix="m:")
    store = RedisStore(redis_server.url, "m:")
    try:
        store.ensure("GET /b")
        store.transition("GET /b", "shadow", actor="ops")
        store.record([], [Comparison("GET /b", time.time() + 1, "r", "py2", "same", (), (),
                                     False, [], {}, "GET", "/b")])
    finally:
        store.close()
    stats = migration_stats(settings)
    try:
        assert sample(stats, "gateway_migration_store_up") == 1.0
        assert sample(stats, "gateway_migration_state", migration="GET /b", mode="shadow") == 1.0
        assert sample(stats, "gateway_migration_samples", migration="GET /b") == 1.0
        redis_server.stop()
        assert names(stats.collect()) == ["gateway_migration_store_up"]
        assert sample(stats, "gateway_migration_store_up") == 0.0
    finally:
        stats.close()
