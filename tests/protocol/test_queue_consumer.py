"""protocol.queue.consumer: heartbeats, reaping, lost replies and zombies on a real redis-server.

A consumer "dies" here by taking and starting a job and then never acking
or heartbeating again, which is what the reaper sees of a killed process.
"""
from __future__ import absolute_import, division, print_function

import threading

import pytest

from protocol.queue import DEAD, DONE, QUEUED, Consumer, Queue, Reaper, connect, now_ms
from tests.support.procs import wait_until


@pytest.fixture
def client(redis_server):
    c = connect(redis_server.url)
    try:
        yield c
    finally:
        c.connection_pool.disconnect()


def take_and_start(consumer):
    """Do the first two steps of process_one, as a consumer that then dies would."""
    q = consumer.queue
    consumer.tick()
    job_id = consumer._take(0.5)
    out = q.script("start", [consumer.proc_key, q.keys.job(job_id), q.keys.dead],
                   [job_id, now_ms(), consumer.name])
    assert out[0] == b"run"
    return job_id


def age(client, q, consumer, seconds):
    client.zadd(q.keys.consumers, {consumer.name: now_ms() - int(seconds * 1000)})


def test_reaper_requeues_jobs_of_a_dead_consumer_only(client):
    q = Queue(client, u"r", visibility_timeout=5)
    first, second = q.enqueue(1), q.enqueue(2)
    dead, alive = Consumer(q, None, name=u"dead"), Consumer(q, None, name=u"alive")
    assert take_and_start(dead) == first
    assert take_and_start(alive) == second
    age(client, q, dead, 6)
    assert Reaper(q).run_once() == 1
    assert client.lrange(q.keys.ready, 0, -1) == [first.encode("ascii")]
    assert q.status(first).state == QUEUED and q.status(first).attempts == 1
    assert client.exists(dead.proc_key) == 0
    assert client.zscore(q.keys.consumers, u"dead") is None
    assert client.lrange(alive.proc_key, 0, -1) == [second.encode("ascii")]
    assert Reaper(q).run_once() == 0


def test_a_job_that_kills_its_consumer_every_time_goes_dead_as_worker_lost(client):
    q = Queue(client, u"r", max_attempts=2, visibility_timeout=5)
    job_id = q.enqueue({u"crash": True})
    for n in range(2):
        victim = Consumer(q, None, name=u"victim-%d" % n)
        take_and_start(victim)
        age(client, q, victim, 6)
        assert Reaper(q).run_once() == 1
    st = q.status(job_id)
    assert st.state == DEAD and st.error[u"code"] == u"worker_lost" and st.attempts == 2


def test_orphan_processing_list_is_requeued(client):
    q = Queue(client, u"r")
    job_id = q.enqueue(1)
    client.rpoplpush(q.keys.ready, q.keys.proc(u"ghost"))
    assert Reaper(q).run_once() == 1
    assert client.lrange(q.keys.ready, 0, -1) == [job_id.encode("ascii")]


def test_a_reaped_consumer_that_finishes_records_its_result_and_cancels_the_copy(client):
    q = Queue(client, u"r", visibility_timeout=5)
    job_id = q.enqueue({u"n": 1})
    slow = Consumer(q, None, name=u"slow")
    take_and_start(slow)
    age(client, q, slow, 6)
    assert Reaper(q).run_once() == 1
    # The slow consumer was alive after all and acks its (reaped) job.
    assert q.script("ack", [slow.proc_key, q.keys.job(job_id), q.keys.ready, q.keys.dead],
                    [job_id, now_ms(), b'"late"', 60000, slow.name]) == 1
    assert q.status(job_id).state == DONE and q.status(job_id).result == u"late"
    assert client.llen(q.keys.ready) == 0
    # A second ack of the same job changes nothing.
    assert q.script("ack", [slow.proc_key, q.keys.job(job_id), q.keys.ready, q.keys.dead],
                    [job_id, now_ms(), b'"again"', 60000, slow.name]) == 0
    assert q.status(job_id).result == u"late"


def test_start_refuses_a_job_the_consumer_no_longer_holds(client):
    q = Queue(client, u"r")
    job_id = q.enqueue(1)
    c = Consumer(q, None, name=u"c")
    c.tick()
    assert c._take(0.5) == job_id
    client.delete(c.proc_key)
    out = q.script("start", [c.proc_key, q.keys.job(job_id), q.keys.dead],
                   [job_id, now_ms(), c.name])
    assert out[0] == b"gone"


def test_a_job_left_by_a_lost_blmove_reply_is_processed(client):
    q = Queue(client, u"r")
    job_id = q.enqueue({u"k": 1})
    c = Consumer(q, lambda job: job.payload[u"k"] + 1, name=u"c")
    client.rpoplpush(q.keys.ready, c.proc_key)  # moved, but the reply never arrived
    try:
        c._check_own = False
        assert c.tick() == 1                     # the heartbeat notices the held job
        c._check_own = True
        assert c.process_one(0.2) == job_id
    finally:
        c.close()
    assert q.status(job_id).result == 2


def test_heartbeat_thread_keeps_a_slow_handler_alive(client):
    q = Queue(client, u"r", visibility_timeout=0.3)
    job_id = q.enqueue(1)
    release = threading.Event()
    c = Consumer(q, lambda job: release.wait(5.0) and u"ok", name=u"slow")
    worker = threading.Thread(target=c.process_one, args=(0.5,))
    worker.start()
    try:
        wait_until(lambda: q.status(job_id).state == u"running", timeout=5, what="job started")
        first = client.zscore(q.keys.consumers, c.name)
        wait_until(lambda: client.zscore(q.keys.consumers, c.name) > first + 300,
                   timeout=5, what="heartbeat advanced")
        assert Reaper(q).run_once() == 0          # slow, not dead
    finally:
        release.set()
        worker.join(5.0)
        c.close()
    assert q.status(job_id).state == DONE


def test_run_stops_on_event_or_job_count_and_deregisters(client):
    q = Queue(client, u"r")
    for i in range(3):
        q.enqueue(i)
    c = Consumer(q, lambda job: job.payload, block=0.1)
    assert c.run(threading.Event(), max_jobs=2) == 2
    assert client.zscore(q.keys.consumers, c.name) is None
    stop = threading.Event()
    stop.set()
    assert Consumer(q, lambda job: None).run(stop) == 0
    assert q.counts()[u"ready"] == 1
