"""The private Redis of a default ``gateway up`` keeps acknowledged jobs across kill -9s.

Issue 14, item 3 (R12 on the default estate): no ``[redis]`` table at all, so the arbiter
runs redis-server with its defaults (AOF, ``appendfsync everysec``). A py2 producer
enqueues under load while a py2 consumer, a service of the estate, finishes jobs; the
test kills redis-server with SIGKILL three times and the arbiter restarts it each time.
Every job whose enqueue Redis confirmed, and every job whose ack it confirmed, must be
there afterwards, done.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest

from tests.integration.arbiter.conftest import alive
from tests.support.procs import REPO, python2, wait_until

JOBS = 600
RATE = 150.0
KILL_AT = (100, 250, 400)


def lines(path: str) -> list[str]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [x.strip() for x in fh if x.strip()]


def info(sock_path: str) -> dict[str, str]:
    """``INFO persistence`` of the private server over its unix socket ({} while it is down)."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2.0)
            s.connect(sock_path)
            s.sendall(b"INFO persistence\r\n")
            data = b""
            while not data.endswith(b"\r\n") or data.count(b"\r\n") < 2 or (
                    len(data) < int(data[1:data.index(b"\r\n")]) + 4):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return {}
    fields = (ln.partition(":") for ln in data.decode("ascii", "replace").splitlines())
    return {k: v for k, _, v in fields if v}


def consumer_service(acked: str) -> str:
    return f"""
[services.consumer]
runtime = "command"
command = [{json.dumps(python2())}, "-m", "tests.integration.queue.consumer_main",
           "--url", "$URL", "--queue", "faults", "--work-ms", "1",
           "--acked-log", {json.dumps(acked)}]
queues = ["faults"]
env = {{ PYTHONPATH = {json.dumps(REPO)} }}
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_default_estate_redis_loses_no_acknowledged_job_over_three_kill_9s(estate, procs,
                                                                          workdir):
    acked = os.path.join(workdir, "acked.txt")
    enqueued = os.path.join(workdir, "enqueued.txt")
    e = estate("", start=False)
    url = "unix://" + os.path.join(e.run_dir, "redis.sock")
    e.write(consumer_service(acked).replace("$URL", url))
    e.start()
    sock_path = os.path.join(e.run_dir, "redis.sock")
    first = info(sock_path)
    assert first.get("aof_enabled") == "1", first     # the default persists
    with open(os.path.join(workdir, "producer.log"), "ab") as log:
        producer = procs.spawn(
            [python2(), "-m", "tests.integration.queue.producer_main", "--url", url,
             "--queue", "faults", "--count", str(JOBS), "--rate", str(RATE),
             "--log", enqueued], stdout=log, stderr=log)
    kills = []
    for mark in KILL_AT:
        wait_until(lambda m=mark: len(lines(enqueued)) >= m or producer.poll() is not None,
                   timeout=60, what=f"{mark} jobs enqueued")
        assert producer.poll() is None, "the producer stopped early"
        assert lines(acked), "the consumer has finished no job yet"
        # everysec writes the AOF buffer to the file before it answers, except while a
        # slow fsync is still running (then Redis may postpone the write up to 2 s):
        # kill only when none is pending, as the default-config figure assumes.
        wait_until(lambda: info(sock_path).get("aof_pending_bio_fsync") == "0",
                   timeout=10, interval=0.01, what="no fsync pending")
        pid = e.program("redis")["replicas"][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        wait_until(lambda pid=pid: not alive(pid), timeout=5, what="redis killed")
        wait_until(lambda pid=pid: e.program("redis")["replicas"][0]["pid"] not in (None, pid)
                   and info(sock_path).get("aof_enabled") == "1"
                   and info(sock_path).get("loading") == "0",
                   timeout=30, interval=0.02, what="redis restarted by the arbiter")
        kills.append(time.monotonic() - t0)
    wait_until(lambda: producer.poll() is not None, timeout=60, what="producer exit")
    assert producer.returncode == 0
    produced = lines(enqueued)
    assert len(produced) == len(set(produced)) == JOBS

    from protocol.queue import Queue, connect
    q = Queue(connect(url, timeout=3.0), "faults")
    try:
        def all_done() -> bool:
            pipe = q.redis.pipeline(transaction=False)
            for job_id in produced:
                pipe.hget(q.keys.job(job_id), "state")
            return all(state == b"done" for state in pipe.execute())
        wait_until(all_done, timeout=60, interval=0.2, what="every acknowledged job done")
        confirmed = set(lines(acked))
        lost = [j for j in set(produced) | confirmed
                if (s := q.status(j)) is None or s.state != "done"]
    finally:
        q.redis.connection_pool.disconnect()
    assert e.program("redis")["replicas"][0]["restarts"] == 3
    print(f"\ndefault-config redis kill -9 x{len(kills)}: jobs={len(produced)} "
          f"acked={len(confirmed)} lost={len(lost)} "
          f"back in {','.join(f'{k:.2f}' for k in kills)} s")
    assert confirmed and confirmed <= set(produced)
    assert lost == []
