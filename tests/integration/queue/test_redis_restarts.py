"""Redis (appendfsync always) restarted 3 times while a py2 producer and two consumers run.

Every job the producer saw confirmed and every ack a consumer saw confirmed
must survive; producer and consumers ride through each restart.
"""

import os
import threading
import time

import pytest

from tests.support.procs import wait_until
from tests.support.redis_server import RedisServer

JOBS = 1000
RATE = 200.0
RESTART_AT = (200, 450, 700)


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


@pytest.fixture
def aof_redis(workdir):
    data = os.path.join(workdir, "redis-data")
    os.mkdir(data)
    server = RedisServer(data, appendfsync="always")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_acknowledged_jobs_survive_three_redis_restarts(aof_redis, queue_procs, queue_of,
                                                        workdir):
    url = aof_redis.url
    enqueued = os.path.join(workdir, "enqueued.txt")
    acked = [os.path.join(workdir, f"acked-{w}.txt") for w in ("py2", "py3")]
    producer = queue_procs.producer("py2", url, "restarts", JOBS, rate=RATE, log=enqueued)
    consumers = [queue_procs.consumer(w, url, "restarts", work_ms=1, acked_log=log)
                 for w, log in zip(("py2", "py3"), acked, strict=True)]
    started = time.time()
    restarts = []
    for mark in RESTART_AT:
        wait_until(lambda m=mark: len(lines(enqueued)) >= m or producer.poll() is not None,
                   timeout=30, what=f"{mark} jobs enqueued")
        assert producer.poll() is None, queue_procs.log_text("producer-py2")
        t0 = time.time()
        aof_redis.restart()
        restarts.append(time.time() - t0)
    assert wait_until(lambda: producer.poll() is not None, timeout=30,
                      what="producer exit") and producer.returncode == 0, \
        queue_procs.log_text("producer-py2")
    produced = lines(enqueued)
    q = queue_of(url, "restarts")

    def all_done():
        pipe = q.redis.pipeline(transaction=False)
        for job_id in produced:
            pipe.hget(q.keys.job(job_id), "state")
        return all(state == b"done" for state in pipe.execute())
    wait_until(all_done, timeout=30, interval=0.1, what="every enqueued job done")
    elapsed = time.time() - started
    for proc in consumers:
        assert proc.poll() is None, "a consumer gave up during a restart"
    confirmed = set(lines(acked[0])) | set(lines(acked[1]))
    states = {job_id: q.status(job_id) for job_id in set(produced) | confirmed}
    lost = [j for j, s in states.items() if s is None or s.state != "done"]
    stored = sum(1 for _ in q.redis.scan_iter(match=q.keys.job("*"), count=1000))
    down = ",".join(f"{r:.2f}" for r in restarts)
    print(f"\nredis restarts: jobs={len(produced)} restarts={len(restarts)} (down {down} s) "
          f"acked={len(confirmed)} lost={len(lost)} time={elapsed:.1f}s")
    assert len(produced) == len(set(produced)) == JOBS
    assert stored == JOBS                               # retried enqueues made no copies
    assert confirmed <= set(produced) and len(confirmed) >= JOBS - 2 * len(restarts)
    assert lost == []
    assert len(restarts) == 3


def test_counts_rides_through_a_redis_restart(aof_redis, queue_of):
    q = queue_of(aof_redis.url, "counted", retry_for=20.0)
    q.enqueue({"n": 1})
    assert q.counts()["ready"] == 1
    pool = q.redis.connection_pool
    calls = []
    real_get = pool.get_connection

    def get_then_lose_redis(*args, **kwargs):
        # Redis goes away after the first attempt got its connection, so that attempt
        # fails inside execute() (a refused connect would fail before it).
        calls.append(1)
        conn = real_get(*args, **kwargs)
        if len(calls) == 1:
            aof_redis.stop()
        return conn

    pool.get_connection = get_then_lose_redis
    out = {}
    worker = threading.Thread(target=lambda: out.update(q.counts()), daemon=True)
    worker.start()
    # two attempts made: the first pipeline failed on the dead connection, then a retry
    wait_until(lambda: len(calls) >= 2, timeout=10, what="counts() retrying")
    aof_redis.start()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert out == {"ready": 1, "delayed": 0, "dead": 0, "processing": 0, "consumers": 0}
