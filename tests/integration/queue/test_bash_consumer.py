"""examples/queue-consumer.sh (bash, redis-cli, jq) between a Python 2 producer and Python 3."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from protocol.queue import DEAD, DONE, Reaper, now_ms
from tests.support.procs import free_port, wait_until

# CI installs both (scripts/bootstrap.sh): there a missing one fails the tests (the
# script exits 2 naming it) instead of skipping them.
pytestmark = pytest.mark.skipif(
    not (shutil.which("jq") and shutil.which("redis-cli")) and not os.environ.get("CI"),
    reason="needs jq and redis-cli (scripts/bootstrap.sh)")


def produce_py2(queue_procs, url, queue, **kw):
    proc = queue_procs.producer("py2", url, queue, 1, stdout=subprocess.PIPE, **kw)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, queue_procs.log_text("producer-py2")
    return out.decode("ascii").strip()


def test_bash_consumes_a_python2_job_and_python3_reads_the_result(redis_server, queue_procs,
                                                                  queue_of):
    job_id = produce_py2(queue_procs, redis_server.url, "bash")
    handler = ["jq", "-c", "{n: (.n + 40), text: (.text | ascii_upcase), blob, "
               "attempt: env.QUEUE_ATTEMPTS, rid: env.QUEUE_RID}"]
    proc = queue_procs.bash_consumer(redis_server.url, "bash", ["--once"], handler)
    wait_until(lambda: proc.poll() is not None, timeout=20, what="bash consumer exit")
    assert proc.returncode == 0, queue_procs.log_text("bash-consumer")

    q = queue_of(redis_server.url, "bash")
    st = q.wait(job_id, timeout=5)
    assert st.state == DONE and st.consumer.startswith("bash:")
    assert st.result == {"n": 40, "text": "HéLLO WöRLD", "blob": b"\x00\x01\xfe",
                         "attempt": "1", "rid": "rid-0"}
    raw = q.redis.hget(q.keys.job(job_id), "result")
    assert raw == b'{"attempt":"1","blob":{"$bytes":"AAH+"},"n":40,"rid":"rid-0",' \
                  b'"text":"H\xc3\xa9LLO W\xc3\xb6RLD"}'
    assert q.counts() == {"ready": 0, "delayed": 0, "dead": 0, "processing": 0,
                          "consumers": 0}


def test_the_unix_socket_url_of_a_default_estate_works_on_2_7_bash_and_3(redis_server,
                                                                        queue_procs, queue_of):
    """A default estate's private Redis listens on a unix socket only (GATEWAY_REDIS_URL).

    protocol.queue.connect on 2.7 (redis-py 3.5, which refuses a connect timeout there)
    produces, the bash consumer (redis-cli wants -s, not a URL) works the job, and 3.x
    reads the result, all through ``unix://...?db=0``.
    """
    url = redis_server.unix_url
    job_id = produce_py2(queue_procs, url, "sock")
    handler = ["jq", "-c", "{text: (.text | ascii_upcase)}"]
    proc = queue_procs.bash_consumer(url, "sock", ["--once"], handler)
    wait_until(lambda: proc.poll() is not None, timeout=20, what="bash consumer exit")
    assert proc.returncode == 0, queue_procs.log_text("bash-consumer")
    st = queue_of(url, "sock").wait(job_id, timeout=5)
    assert st.state == DONE and st.consumer.startswith("bash:")
    assert st.result == {"text": "HéLLO WöRLD"}


def test_the_bash_consumer_refuses_a_url_it_cannot_use(queue_procs):
    """An unknown scheme or a bad database is a usage error (exit 2) naming the URL."""
    for url in ("http://127.0.0.1:1/", "unix:///tmp/x.sock?db=one"):
        proc = queue_procs.bash_consumer(url, "q", ["--once"], ["jq", "-c", "."])
        wait_until(lambda p=proc: p.poll() is not None, timeout=10, what="bash consumer exit")
        assert proc.returncode == 2
        assert url in queue_procs.log_text("bash-consumer")


def test_bash_hands_the_job_trace_to_its_handler(redis_server, queue_procs, queue_of):
    q = queue_of(redis_server.url, "traced")
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    # No rid but a deadline and a trace: empty fields must not shift the others.
    job_id = q.enqueue({"n": 1}, traceparent=parent, tracestate="k=v",
                       deadline=now_ms() + 60000)
    handler = ["jq", "-c", "{rid: env.QUEUE_RID, tp: env.QUEUE_TRACEPARENT, "
               "ts: env.QUEUE_TRACESTATE, deadline: env.QUEUE_DEADLINE}"]
    proc = queue_procs.bash_consumer(redis_server.url, "traced", ["--once"], handler)
    wait_until(lambda: proc.poll() is not None, timeout=20, what="bash consumer exit")
    assert proc.returncode == 0, queue_procs.log_text("bash-consumer")
    st = q.wait(job_id, timeout=5)
    assert st.state == DONE
    assert st.result == {"rid": "", "tp": parent, "ts": "k=v",
                         "deadline": str(st.job.deadline)}


def test_bash_retries_a_failing_job_then_dead_letters_it(redis_server, queue_procs, queue_of):
    job_id = produce_py2(queue_procs, redis_server.url, "bashfail", max_attempts=2)
    handler = ["bash", "-c", "cat >/dev/null; echo 'cannot resize' >&2; exit 1"]
    proc = queue_procs.bash_consumer(redis_server.url, "bashfail",
                                     ["--max-jobs", "2", "--idle-exit", "10", "--block", "0.2",
                                      "--backoff-ms", "10"], handler)
    wait_until(lambda: proc.poll() is not None, timeout=30, what="bash consumer exit")
    assert proc.returncode == 0, queue_procs.log_text("bash-consumer")
    q = queue_of(redis_server.url, "bashfail")
    st = q.status(job_id)
    assert st.state == DEAD and st.attempts == 2
    assert st.error == {"code": "remote", "message": "cannot resize", "type": "exit 1",
                        "traceback": ""}
    assert q.replay(job_id) == 1
    assert q.status(job_id).state == "queued"


def test_bash_consumer_exits_3_when_redis_is_unreachable(queue_procs):
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = queue_procs.bash_consumer(url, "nowhere", ["--once", "--retry-for", "1"], ["jq", "."])
    wait_until(lambda: proc.poll() is not None, timeout=15, what="bash consumer exit")
    assert proc.returncode == 3
    assert "redis unavailable" in queue_procs.log_text("bash-consumer")


def test_bash_dead_letters_a_job_whose_json_does_not_parse(redis_server, queue_procs, queue_of):
    q = queue_of(redis_server.url, "bashbroken")
    # passes the canonical-prefix check of the START step, then is not JSON at all
    q.redis.hset(q.keys.job("broken"), mapping={"job": '{"attempts":0,"deadline":null,"x',
                                                "state": "queued"})
    q.redis.lpush(q.keys.ready, "broken")
    proc = queue_procs.bash_consumer(redis_server.url, "bashbroken", ["--once"], ["jq", "."])
    wait_until(lambda: proc.poll() is not None, timeout=20, what="bash consumer exit")
    assert proc.returncode == 0, queue_procs.log_text("bash-consumer")
    st = q.status("broken")
    assert st.state == DEAD and st.error["code"] == "envelope", st.error
    assert q.counts()["dead"] == 1


def test_bash_times_a_handler_out(redis_server, queue_procs, queue_of):
    q = queue_of(redis_server.url, "bashslow")
    job_id = q.enqueue({"n": 1}, max_attempts=1)
    proc = queue_procs.bash_consumer(redis_server.url, "bashslow",
                                     ["--once", "--handler-timeout", "0.5"],
                                     ["bash", "-c", "cat >/dev/null; exec sleep 30"])
    wait_until(lambda: proc.poll() is not None, timeout=15, what="bash consumer exit")
    assert proc.returncode == 0, queue_procs.log_text("bash-consumer")
    st = q.status(job_id)
    assert st.state == DEAD and st.error["code"] == "timeout", st.error


def test_a_kill_9_consumer_stops_heartbeating_so_its_job_is_reaped(redis_server, queue_procs,
                                                                   queue_of):
    q = queue_of(redis_server.url, "bashkilled", visibility_timeout=1)
    job_id = q.enqueue({"n": 1})
    proc = queue_procs.bash_consumer(redis_server.url, "bashkilled", ["--visibility", "1"],
                                     ["bash", "-c", "cat >/dev/null; exec sleep 60"])
    wait_until(lambda: q.status(job_id).state == "running", timeout=15, what="job running")
    queue_procs.kill9(proc)
    reaper = Reaper(q)
    wait_until(lambda: reaper.run_once() >= 1, timeout=10, interval=0.2,
               what="the dead consumer's job reaped")
    assert q.status(job_id).state == "queued"
