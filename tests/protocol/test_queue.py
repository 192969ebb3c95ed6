"""protocol.queue: producer, status, dead letters and replay against a real redis-server.

Runs unchanged on Python 2.7 and 3.x; every test gets a private redis-server.
"""
from __future__ import absolute_import, division, print_function

import os
import re
import time

import pytest
import redis

from protocol import codec
from protocol.queue import (
    DEAD,
    DONE,
    FAILED,
    QUEUED,
    Consumer,
    Job,
    JobNotFound,
    Queue,
    QueueConfigError,
    QueueTimeout,
    QueueUnavailable,
    Reject,
    connect,
    exponential_backoff,
    now_ms,
)
from protocol.queue.lua import SCRIPTS
from tests.support.procs import REPO, free_port


@pytest.fixture
def client(redis_server):
    c = connect(redis_server.url)
    try:
        yield c
    finally:
        c.connection_pool.disconnect()


def make(client, name=u"jobs", **kw):
    kw.setdefault("backoff", lambda attempt: 0.0)
    return Queue(client, name, **kw)


def text(raw):
    return raw.decode("utf-8")


def test_enqueue_stores_canonical_job_json_in_the_wire_layout(client):
    q = make(client, max_attempts=4)
    job_id = q.enqueue({u"name": u"caf\u00e9", u"blob": codec.Bytes(b"\x00\xff")},
                       deadline=now_ms() + 60000, rid=u"req-1")
    assert re.match(r"^[0-9a-f]{32}$", job_id)
    assert client.lrange(u"gw:q:jobs:ready", 0, -1) == [job_id.encode("ascii")]
    body = client.hget(u"gw:q:jobs:job:" + job_id, u"job")
    fields = codec.loads(body)
    assert body == codec.dumps(codec.to_json(fields))
    assert body.startswith(b'{"attempts":0,"deadline":')
    assert sorted(fields) == [u"attempts", u"deadline", u"enqueued", u"id", u"idem_key",
                              u"max_attempts", u"payload", u"queue", u"rid", u"v"]
    assert fields[u"payload"] == {u"name": u"caf\u00e9", u"blob": b"\x00\xff"}
    assert b'{"$bytes":"AP8="}' in body
    assert (fields[u"max_attempts"], fields[u"rid"], fields[u"v"]) == (4, u"req-1", 1)
    assert q.status(job_id).state == QUEUED


def test_idempotency_key_returns_the_same_job_and_adds_nothing(client):
    q = make(client)
    first = q.enqueue({u"n": 1}, idem_key=u"order-7")
    again = q.enqueue({u"n": 2}, idem_key=u"order-7")
    other = q.enqueue({u"n": 3}, idem_key=u"order-8")
    assert first == again != other
    assert q.counts()[u"ready"] == 2
    assert client.pttl(u"gw:q:jobs:idem:order-7") > 0


def test_a_retried_enqueue_with_the_same_id_stores_one_job(client):
    q = make(client)
    args = [u"a" * 32, b'{"attempts":0}', now_ms(), 1000]
    keys = [q.keys.ready, q.keys.job(u"a" * 32)]
    assert q.script("enqueue", keys, args) == q.script("enqueue", keys, args)
    assert client.llen(q.keys.ready) == 1


def test_consumer_acks_and_stores_result_with_ttl(client):
    q = make(client, result_ttl=120)
    job_id = q.enqueue({u"x": 20}, rid=u"r-9")
    seen = []

    def handler(job):
        seen.append((job.attempts, job.rid, job.queue))
        return {u"double": job.payload[u"x"] * 2, u"raw": codec.Bytes(b"\x01")}

    consumer = Consumer(q, handler)
    try:
        assert consumer.process_one(timeout=1.0) == job_id
    finally:
        consumer.close()
    st = q.wait(job_id, timeout=2.0)
    assert st.state == DONE and st.result == {u"double": 40, u"raw": b"\x01"}
    assert seen == [(1, u"r-9", u"jobs")]
    assert 0 < client.pttl(q.keys.job(job_id)) <= 120000
    assert q.counts() == {u"ready": 0, u"delayed": 0, u"dead": 0, u"processing": 0,
                          u"consumers": 0}


def test_failures_retry_with_backoff_then_dead_letter_then_replay(client):
    delays = []

    def backoff(attempt):
        delays.append(attempt)
        return 0.0 if attempt < 2 else 60.0

    q = make(client, max_attempts=3, backoff=backoff)
    job_id = q.enqueue({u"poison": True})
    broken = [True]

    def handler(job):
        if broken[0]:
            raise ValueError("bad input %d" % job.attempts)
        return u"fixed"

    consumer = Consumer(q, handler, reap_interval=0)
    try:
        consumer.process_one(0.5)
        assert q.status(job_id).state == FAILED
        assert q.promote() == 1                      # backoff 0 s: due at once
        consumer.process_one(0.5)
        assert client.zscore(q.keys.delayed, job_id) > now_ms() + 50000  # 60 s backoff
        assert q.promote() == 0
        client.zadd(q.keys.delayed, {job_id: 0})     # let the clock "pass"
        assert q.promote() == 1
        consumer.process_one(0.5)
        st = q.status(job_id)
        assert st.state == DEAD and st.attempts == 3
        assert st.error[u"code"] == u"remote" and st.error[u"type"] == u"ValueError"
        assert st.error[u"message"] == u"bad input 3"
        assert str(st.exception()) == "ValueError: bad input 3"
        assert [s.id for s in q.dead_letters()] == [job_id]
        assert delays == [1, 2]
        broken[0] = False
        assert q.replay(job_id) == 1 and q.replay(job_id) == 0
        assert q.status(job_id).attempts == 0 and q.status(job_id).error is None
        consumer.process_one(0.5)
    finally:
        consumer.close()
    st = q.status(job_id)
    assert (st.state, st.result, st.attempts) == (DONE, u"fixed", 1)
    assert q.dead_letters() == []


def test_reject_dead_letters_at_once_and_replay_all(client):
    q = make(client, max_attempts=5)
    ids = [q.enqueue({u"i": i}) for i in range(3)]

    def handler(job):
        raise Reject(u"not a picture", field=u"data")

    consumer = Consumer(q, handler)
    try:
        for _ in ids:
            consumer.process_one(0.5)
    finally:
        consumer.close()
    dead = q.dead_letters()
    assert [s.id for s in dead] == ids
    assert dead[0].attempts == 1
    assert dead[0].error == {u"code": u"rejected", u"message": u"not a picture",
                             u"field": u"data"}
    assert q.replay_all() == 3
    assert q.counts()[u"ready"] == 3 and q.counts()[u"dead"] == 0


def test_a_job_past_its_deadline_is_never_started(client):
    q = make(client)
    job_id = q.enqueue({u"late": True}, deadline=now_ms() - 1)
    calls = []
    consumer = Consumer(q, calls.append)
    try:
        assert consumer.process_one(0.5) == job_id
    finally:
        consumer.close()
    st = q.status(job_id)
    assert calls == [] and st.state == DEAD and st.error[u"code"] == u"timeout"
    assert st.attempts == 0


def test_a_malformed_job_is_dead_lettered_as_envelope(client):
    q = make(client)
    client.hset(q.keys.job(u"bad"), u"job", b'{"not": "a job"}')
    client.lpush(q.keys.ready, u"bad")
    consumer = Consumer(q, lambda job: None)
    try:
        consumer.process_one(0.5)
    finally:
        consumer.close()
    assert q.status(u"bad").state == DEAD
    assert q.status(u"bad").error[u"code"] == u"envelope"


def test_wait_times_out_and_unknown_jobs_raise(client):
    q = make(client)
    job_id = q.enqueue(None)
    started = time.time()
    with pytest.raises(QueueTimeout):
        q.wait(job_id, timeout=0.2)
    assert time.time() - started < 2.0
    with pytest.raises(JobNotFound):
        q.wait(u"0" * 32, timeout=1.0)
    assert q.status(u"0" * 32) is None


def test_unreachable_redis_raises_quickly_and_typed():
    port = free_port()
    q = Queue(connect("redis://127.0.0.1:%d/0" % port, timeout=0.5), u"gone", retry_for=0.3)
    started = time.time()
    with pytest.raises(QueueUnavailable) as info:
        q.enqueue({u"x": 1})
    assert info.value.code == u"unavailable"
    with pytest.raises(QueueUnavailable):
        Consumer(q, lambda job: None).process_one(0.1)
    assert time.time() - started < 5.0


def test_configuration_that_could_hang_or_collide_is_refused(redis_server):
    with pytest.raises(QueueConfigError):
        Queue(redis.Redis.from_url(redis_server.url), u"q")   # no socket_timeout
    c = connect(redis_server.url)
    try:
        for bad in (u"", u"a:b"):
            with pytest.raises(QueueConfigError):
                Queue(c, bad)
        with pytest.raises(QueueConfigError):
            Queue(c, u"q", max_attempts=0)
        with pytest.raises(ValueError):
            Queue(c, u"q").enqueue(1, deadline=1.5)
    finally:
        c.connection_pool.disconnect()


def test_job_parse_rejects_non_jobs():
    with pytest.raises(ValueError):
        Job.parse(b'{"v":2}')
    with pytest.raises(ValueError):
        Job.parse(b"[1]")


def test_exponential_backoff_grows_and_caps():
    backoff = exponential_backoff(base=1.0, cap=10.0)
    assert 0.9 <= backoff(1) <= 1.1 and 3.6 <= backoff(3) <= 4.4
    assert backoff(20) <= 11.0


def test_bash_consumer_carries_verbatim_copies_of_the_lua_steps():
    with open(os.path.join(REPO, "examples", "queue-consumer.sh")) as f:
        script = f.read()
    copies = dict(re.findall(r"read -r -d '' LUA_(\w+) <<'LUA' \|\| true\n(.*?)\nLUA\n",
                             script, re.S))
    assert sorted(copies) == [u"ACK", u"FAIL", u"REAP", u"START", u"TICK"]
    for name, body in copies.items():
        assert body.strip() == SCRIPTS[name.lower()].strip(), name
