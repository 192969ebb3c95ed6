"""Poison jobs against Python 2 consumer processes: dead-lettered after the retries, replayed."""
from __future__ import annotations

import pytest

from protocol.queue import DEAD, DONE
from tests.support.procs import wait_until


def test_poison_job_is_dead_lettered_after_retries_and_replays(redis_server, queue_procs,
                                                               queue_of):
    q = queue_of(redis_server.url, "poison", max_attempts=3)
    good = [q.enqueue({"n": i}) for i in range(5)]
    bad = q.enqueue({"poison": True, "n": 99}, rid="rid-poison")
    queue_procs.consumer("py2", redis_server.url, "poison", backoff=0.05)

    st = q.wait(bad, timeout=20)
    assert st.state == DEAD and st.attempts == 3
    assert st.error["code"] == "remote" and st.error["type"] == "ValueError"
    assert st.error["message"] == f"poison job {bad}"
    assert "Traceback" in st.error["traceback"]
    assert [s.id for s in q.dead_letters()] == [bad]
    assert int(q.redis.hget("test:runs", bad)) == 3
    assert all(q.wait(j, timeout=10).state == DONE for j in good)

    q.redis.set("test:fixed", "1")                  # the bug is fixed: replay
    assert q.replay(bad) == 1
    st = q.wait(bad, timeout=10)
    assert (st.state, st.attempts) == (DONE, 1)
    assert st.result["n"] == 198 and st.result["rid"] == "rid-poison"
    assert st.result["runtime"].startswith("cpython-2.7")
    assert q.dead_letters() == []


@pytest.mark.slow
def test_a_job_that_kills_its_consumer_ends_dead_as_worker_lost(redis_server, queue_procs,
                                                                 queue_of):
    q = queue_of(redis_server.url, "crash", max_attempts=2, visibility_timeout=0.5)
    bad = q.enqueue({"crash": True})
    ok = q.enqueue({"n": 1})
    deaths = []

    def respawn_until_dead():
        st = q.status(bad)
        if st.state == DEAD:
            return True
        if not deaths or deaths[-1].poll() is not None:
            which = ("py2", "py3")[len(deaths) % 2]
            deaths.append(queue_procs.consumer(which, redis_server.url, "crash",
                                               visibility=0.5))
        return False

    wait_until(respawn_until_dead, timeout=30, interval=0.05, what="crash job dead")
    st = q.status(bad)
    assert st.error["code"] == "worker_lost" and st.attempts == 2
    assert int(q.redis.hget("test:runs", bad)) == 2
    assert sum(1 for p in deaths if p.poll() == 17) == 2
    assert q.wait(ok, timeout=10).state == DONE
