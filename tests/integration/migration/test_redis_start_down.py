"""A gateway started while its Redis migration store is down, and the Redis started afterwards.

``gateway up`` with ``[migration] store = "redis"`` pointing at a port where
no redis-server listens yet. The test shows, in order:

- the estate becomes ready, and the notes route serves the state its config
  declares (canary 50%, sticky on a header: one user on each side);
- the admin API answers 503 ``store`` meanwhile;
- each front process says once, without a traceback, that it serves the
  configured states;
- once the test starts redis-server, the states are created there as
  configured, evidence is gathered, and a promote passes its gate and is obeyed.
"""

from __future__ import annotations

import glob
import os
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator

import pytest

from tests.integration.migration.conftest import MigrationEstate, add_notes, estate_body
from tests.support.procs import ProcessGroup, wait_until
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow

NOTES = "/api/notes?limit=2"
PERCENT = 50
START_LINE = "migration store unreachable at start: serving the configured states"


def runtime_of(body: bytes) -> str:
    """Which side answered: Python 2 prints the average as a float ("3.0")."""
    return "py2" if b'"avg_words":3.0' in body else "py3"


def users() -> dict[str, str]:
    """A user id the canary sends to each side (the gateway's sticky bucket, computed here)."""
    out: dict[str, str] = {}
    for i in range(1000):  # bounded: both sides are found within a few ids
        user = f"u{i}"
        side = "py3" if zlib.crc32(f"notes:h:{user}".encode()) % 100 < PERCENT else "py2"
        out.setdefault(side, user)
        if len(out) == 2:
            return out
    raise AssertionError("no user id found for each side")


def served(e: MigrationEstate, user: str, count: int) -> list[str]:
    """``count`` GETs as ``user``, each answered 200; which runtime answered each."""
    out = []
    for _ in range(count):
        req = urllib.request.Request(f"http://127.0.0.1:{e.port}{NOTES}",
                                     headers={"X-User": user})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
            exc.close()
        assert status == 200, (status, body[:300])
        out.append(runtime_of(body))
    return out


def logs(e: MigrationEstate) -> str:
    """Everything the estate logged: the arbiter's output (with the front's) and its log dir."""
    text = []
    for path in [e.log_path, *glob.glob(os.path.join(e.run_dir, "**", "*.log"),
                                        recursive=True)]:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text.append(fh.read())
    return "\n".join(text)


@pytest.fixture
def late(procs: ProcessGroup, workdir: str) -> Iterator[tuple[MigrationEstate, RedisServer]]:
    """An estate started against a Redis port nobody listens on yet, and that Redis."""
    os.makedirs(os.path.join(workdir, "redis"))
    server = RedisServer(os.path.join(workdir, "redis"), start=False)
    home = os.path.join(workdir, "gw")
    os.makedirs(home)
    db = os.path.join(home, "legacy.sqlite3")
    add_notes(db)
    extra = f'[migration]\nstore = "redis"\nredis_url = "{server.url}"\nredis_prefix = "late:"\n'
    body = estate_body(db, rounding="half-up", state="canary", extra=extra,
                       notes=f'percent = {PERCENT}\nsticky = "header:X-User"\n')
    e = MigrationEstate(procs, home, body)
    e.db = db
    try:
        e.start(timeout=120)
        wait_until(lambda: os.path.exists(os.path.join(e.run_dir, "admin.token")),
                   timeout=20, what="the admin token")
        yield e, server
    finally:
        e.close()
        server.stop()


@pytest.mark.timeout(300)
def test_a_gateway_started_while_redis_is_down_serves_the_configured_state(
        late: tuple[MigrationEstate, RedisServer]) -> None:
    e, server = late
    who = users()

    # -- Redis down: the configured canary serves, admin calls are a typed 503 ---------------
    assert served(e, who["py3"], 5) == ["py3"] * 5
    assert served(e, who["py2"], 5) == ["py2"] * 5
    status, doc = e.api("POST", "/_gateway/api/migrations/notes/promote", {})
    assert status == 503 and doc["code"] == "store", doc
    status, doc = e.api("GET", "/_gateway/api/audit?name=notes")
    assert status == 503 and doc["code"] == "store", doc
    text = logs(e)
    assert "Traceback" not in text, text[-4000:]
    said = text.count(START_LINE)
    assert said == 2, text[-4000:]  # one line per front process (workers = 2), no restarts
    assert "(htmldiff-diff: shadow, notes: canary 50%)" in text

    # -- Redis starts: the states are created as configured, then the store rules -------------
    server.start()
    created = wait_until(lambda: (lambda c: c[1] if c[0] == 0 and c[1]["audit"] else None)(
        e.migrate("audit", "notes")), timeout=15, what="the notes state created in Redis")
    assert [(x["to"], x["actor"]) for x in created["audit"]] == [("canary 50%", "config")]
    sent = 0
    for _ in range(10):  # bounded: 10 rounds of 10 requests at most
        served(e, who["py2"], 5)
        served(e, who["py3"], 5)
        sent += 10
        code, doc = e.migrate("report", "notes")
        assert code == 0, doc
        # generated_at differs on every answer: judged once each side learned it as noise
        if doc[0]["evidence"]["samples"] >= 20 and not doc[0]["evidence"]["regressions"]:
            break
    evidence = doc[0]["evidence"]
    assert evidence["samples"] >= 20 and evidence["regressions"] == 0, evidence
    code, doc = e.migrate("promote", "notes", "--reason", "gate passed after the outage")
    assert code == 0 and doc["state"]["mode"] == "py3", doc
    wait_until(lambda: served(e, who["py2"], 1) == ["py3"], timeout=5, interval=0.01,
               what="the promote obeyed")
    assert served(e, who["py2"], 5) == ["py3"] * 5
    code, doc = e.migrate("audit", "notes")
    assert code == 0 and [x["to"] for x in reversed(doc["audit"])] == ["canary 50%", "py3"]
    text = logs(e)
    assert "Traceback" not in text and text.count(START_LINE) == said, text[-4000:]
    print(f"\nstarted with Redis down: {said} front process(es) said so once each; "
          f"{evidence['samples']} samples after {sent} requests, promote obeyed")
