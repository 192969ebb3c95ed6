"""Two gateways, one migration state: two ``gateway up`` estates share one real redis-server.

Each estate has its own run dir, port, broker and services (the notes API on
py2 and its py3 port, which rounds like py2 here: no regression). Only
``[migration] store = "redis"`` joins them. The test shows, in order:

- a promote issued on A is obeyed by B's data plane within 1 s, with one audit entry;
- shadow evidence gathered through A and through B adds up in ``gateway migrate report``;
- a port failing on both gateways is rolled back once (one ``gateway:auto`` entry);
- redis-server killed (AOF, ``appendfsync always``) and restarted: both gateways keep
  serving the last state while it is down, admin commands answer 503, and no
  acknowledged change is lost.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.migration.conftest import MigrationEstate, add_notes, estate_body
from tests.support.procs import ProcessGroup, wait_until
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow

NOTES = "/api/notes?limit=2"
OBEY_S = 1.0  # the promise: every gateway follows a change within a second


def runtime_of(body: bytes) -> str:
    """Which side answered: Python 2 prints the average as a float ("3.0")."""
    return "py2" if b'"avg_words":3.0' in body else "py3"


class Pair:
    """Two estates on one Redis, and the Redis."""

    def __init__(self, procs: ProcessGroup, workdir: str) -> None:
        os.makedirs(os.path.join(workdir, "redis"))
        self.redis = RedisServer(os.path.join(workdir, "redis"), appendfsync="always")
        self.estates: list[MigrationEstate] = []
        shared = (f'[migration]\nstore = "redis"\nredis_url = "{self.redis.url}"\n'
                  'redis_prefix = "e2e:"\n')
        for side in ("a", "b"):
            home = os.path.join(workdir, side)
            os.makedirs(home)
            db = os.path.join(home, "legacy.sqlite3")
            add_notes(db)
            body = estate_body(db, rounding="half-up", extra=shared)
            e = MigrationEstate(procs, home, body)
            e.db = db
            self.estates.append(e)
        for e in self.estates:
            e.launch()
        for e in self.estates:
            e.wait_ready(120)
            wait_until(lambda e=e: os.path.exists(os.path.join(e.run_dir, "admin.token")),
                       timeout=20, what="the admin token")

    def close(self) -> None:
        for e in self.estates:
            e.close()
        self.redis.stop()


@pytest.fixture
def pair(procs: ProcessGroup, workdir: str) -> Iterator[Pair]:
    p = Pair(procs, workdir)
    try:
        yield p
    finally:
        p.close()


def served(e: MigrationEstate, count: int) -> list[str]:
    """``count`` GETs through ``e``, each answered 200; which runtime answered each."""
    out = []
    for _ in range(count):
        status, body, _ = e.get(NOTES)
        assert status == 200, (status, body[:300])
        out.append(runtime_of(body))
    return out


def evidence(e: MigrationEstate) -> dict[str, Any]:
    """The notes migration's evidence, from ``gateway migrate report --json`` run against ``e``."""
    code, doc = e.migrate("report", "notes")
    assert code == 0, doc
    return dict(doc[0]["evidence"])


def stored(e: MigrationEstate, count: int) -> dict[str, Any] | None:
    """The evidence once ``count`` comparisons (compared or not) are stored, else None."""
    ev = evidence(e)
    return ev if ev["samples"] + ev["uncompared"] >= count else None


def audit(e: MigrationEstate) -> list[dict[str, Any]]:
    """The notes migration's audit, oldest first."""
    code, doc = e.migrate("audit", "notes")
    assert code == 0, doc
    return list(reversed(doc["audit"]))


def obeyed(e: MigrationEstate, runtime: str) -> float:
    """Seconds until a request through ``e`` is served by ``runtime``, polled for ``OBEY_S``."""
    t0 = time.monotonic()
    wait_until(lambda: served(e, 1) == [runtime], timeout=OBEY_S, interval=0.005,
               what=f"{runtime} serving through the other gateway")
    return time.monotonic() - t0


@pytest.mark.timeout(400)
def test_two_gateways_share_one_migration_state_in_redis(pair: Pair) -> None:
    a, b = pair.estates
    assert [x["to"] for x in audit(b)] == ["shadow"]  # created once, by whichever came first

    # -- shadow evidence from both gateways adds up --------------------------------------------
    sent = 0
    for e in itertools.islice(itertools.cycle((a, b)), 200):  # bounded: 200 requests at most
        assert served(e, 1) == ["py2"]
        sent += 1
        if sent % 20 == 0:
            found = wait_until(lambda n=sent: stored(b, n), timeout=20, interval=0.1,
                               what=f"{sent} comparisons stored")
            assert found["samples"] + found["uncompared"] == sent, found
            if found["samples"] >= 25:
                break
    on_a = evidence(a)
    assert on_a == evidence(b) and on_a["samples"] + on_a["uncompared"] == sent
    assert on_a["regressions"] == 0, on_a
    print(f"\nshared evidence: {sent} requests through two gateways, "
          f"{on_a['samples']} compared, {on_a['uncompared']} uncompared")

    # -- promote on A, obeyed by B ----------------------------------------------------------
    code, doc = a.migrate("promote", "notes", "--reason", "shared gate")
    assert code == 0 and doc["state"]["mode"] == "py3", doc
    took = obeyed(b, "py3")
    assert served(b, 10) == ["py3"] * 10 and served(a, 5) == ["py3"] * 5
    changes = [(x["from"], x["to"], x["actor"]) for x in audit(b)]
    assert [c[:2] for c in changes] == [("", "shadow"), ("shadow", "py3")], changes
    print(f"promote on A obeyed by B after {took * 1000:.0f} ms")

    # -- the port fails on both gateways: one automatic rollback ---------------------------------
    pids = [r["pid"] for e in (a, b) for r in e.program("notes3")["replicas"] if r["pid"]]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    statuses: list[int] = []
    back = threading.Event()  # py2 answered: the rollback happened
    try:
        def hammer(e: MigrationEstate) -> None:
            deadline = time.monotonic() + 60
            for _ in range(200):
                if time.monotonic() > deadline or back.is_set():
                    return
                status, body, _ = e.get(NOTES, timeout=10)
                statuses.append(status)
                if status == 200 and runtime_of(body) == "py2":
                    back.set()
        threads = [threading.Thread(target=hammer, args=(e,)) for e in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(70)
        assert not any(t.is_alive() for t in threads)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert 504 in statuses or 502 in statuses, statuses
    obeyed(a, "py2")
    obeyed(b, "py2")
    autos = [x for x in audit(a) if x["actor"] == "gateway:auto"]
    assert len(autos) == 1 and autos[0]["to"] == "py2", autos
    assert "py3 failed" in autos[0]["reason"]
    print(f"automatic rollback once, after {len(statuses)} requests through both gateways")

    # -- Redis killed and restarted: the last state keeps serving, nothing acknowledged is lost --
    for action in (("shadow", "notes"), ("promote", "notes", "--force")):
        code, doc = b.migrate(*action)
        assert code == 0, doc
    obeyed(a, "py3")
    before = audit(a)
    server = pair.redis
    assert server.proc is not None
    server.procs.signal(server.proc, signal.SIGKILL)
    server.proc.wait(timeout=10)
    server.stop()
    during = served(a, 10) + served(b, 10)
    assert during == ["py3"] * 20
    code, err = a.migrate("rollback", "notes")
    assert code != 0 and "503" in err and "store" in err, err
    status, doc = b.api("GET", "/_gateway/api/audit?name=notes")
    assert status == 503 and doc["code"] == "store", doc
    assert served(b, 5) == ["py3"] * 5

    server.start()  # the same port and directory: the append-only file is read back
    after = wait_until(lambda: (lambda c: c if c[0] == 0 else None)(b.migrate("audit", "notes")),
                       timeout=15, what="the admin API answering again")[1]
    assert list(reversed(after["audit"])) == before
    assert [x["to"] for x in before][-2:] == ["shadow", "py3"]
    code, doc = b.migrate("rollback", "notes", "--reason", "after the restart")
    assert code == 0 and doc["state"]["mode"] == "py2", doc
    took = obeyed(a, "py2")
    assert len(audit(a)) == len(before) + 1
    print(f"redis restarted: {len(before)} audit entries kept; rollback on B obeyed by A "
          f"after {took * 1000:.0f} ms")
