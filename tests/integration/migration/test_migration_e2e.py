"""Migrating the notes API from Python 2 to its Python 3 port, end to end over real processes.

The port rounds ``avg_words`` like Python 3 (2.5 -> 2) where the original
answers 3.0: a regression at ``body/avg_words``. Both stamp ``generated_at``,
which differs between any two answers: noise, learned by sending the primary
twice. Shadow reports the first and not the second, refuses promote, and
after the fix (a reload with ``NOTES_ROUNDING = "half-up"``, which restarts the
evidence) promotes; a rollback under load then fails no request.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.integration.migration.conftest import estate_body
from tests.support.procs import wait_until

pytestmark = pytest.mark.slow

NOTES = "/api/notes?limit=2"


def avg_words(body: bytes) -> Any:
    """The answer's avg_words: 3.0 from Python 2, 2 or 3 from the port."""
    return json.loads(body)["avg_words"]


def runtime_of(body: bytes) -> str:
    """Which side answered: Python 2 prints the average as a float ("3.0")."""
    return "py2" if b'"avg_words":3.0' in body else "py3"


def drive_until_compared(e: Any, count: int, limit: int = 200) -> tuple[list[bytes], dict]:
    """GETs in small batches until ``count`` comparisons are stored (a copy that found
    every shadow slot busy is ``uncompared`` and does not count); bounded by ``limit``."""
    bodies: list[bytes] = []
    while len(bodies) < limit:
        bodies += drive(e, 5)
        report = e.wait_samples("notes", len(bodies))
        if report["evidence"]["samples"] >= count:
            return bodies, report
    raise AssertionError(f"fewer than {count} comparisons after {limit} requests")


def drive(e: Any, count: int) -> list[bytes]:
    """``count`` GETs of the notes API, each answered 200; their bodies."""
    bodies = []
    for _ in range(count):
        status, body, _ = e.get(NOTES)
        assert status == 200, body
        bodies.append(body)
    return bodies


@pytest.mark.timeout(240)
def test_shadow_finds_the_regression_not_the_noise_then_promote_and_rollback(notes_estate):
    e = notes_estate()
    # -- shadow: the client always gets the py2 answer --------------------------------------
    bodies, report = drive_until_compared(e, 25)
    assert {avg_words(b) for b in bodies} == {3.0}
    assert all(runtime_of(b) == "py2" for b in bodies)
    ev = report["evidence"]
    assert report["state"]["mode"] == "shadow"
    assert ev["regressions"] == ev["samples"] >= 25
    assert "body/generated_at" in ev["noisy_paths"]
    assert "body/avg_words" not in ev["noisy_paths"]
    assert ev["noise_rate"] == 1.0

    status, doc = e.api("GET", "/_gateway/api/diffs?name=notes&limit=5")
    assert status == 200 and doc["diffs"]
    newest = doc["diffs"][0]
    assert newest["outcome"] == "diff" and newest["noise"] is False
    fields = {f["path"]: f for f in newest["fields"]}
    assert fields["body/avg_words"]["left"] == 3.0 and fields["body/avg_words"]["right"] == 2
    assert "Authorization" not in json.dumps(newest["sample"])

    code, err = e.migrate("promote", "notes")
    assert code == 1 and "gate_refused" in err and "diff rate 100.0%" in err, err
    assert e.report("notes")["state"]["mode"] == "shadow"

    # -- the fix: reload the port with Python 2 rounding; the reload restarts the evidence ---
    epoch = e.report("notes")["state"]["epoch_started"]
    e.write(estate_body(e.db, rounding="half-up"))
    e.reload("notes3")
    # The arbiter restarts the evidence once the old port's replicas have drained.
    wait_until(lambda: e.report("notes")["state"]["epoch_started"] > epoch, timeout=15,
               what="the evidence restarted by the reload")
    state = e.report("notes")["state"]
    assert state["mode"] == "shadow" and state["updated_by"] == "gateway:reload", state
    _, report = drive_until_compared(e, 25)
    ev = report["evidence"]
    assert ev["regressions"] == 0 and ev["samples"] >= 25, ev
    # Differences only at noise learned before are re-checked now and then, not every
    # time; the noise learned in the first epoch still explains generated_at.
    assert "body/generated_at" in ev["noisy_paths"] and ev["noise"] <= ev["samples"]
    assert report["gate"]["ok"], report["gate"]

    code, doc = e.migrate("promote", "notes", "--reason", "no regressions")
    assert code == 0 and doc["state"]["mode"] == "py3", doc
    after = drive(e, 5)
    assert all(runtime_of(b) == "py3" and avg_words(b) == 3 for b in after)

    # -- rollback under load: no request fails ---------------------------------------------
    results: list[tuple[int, bytes]] = []
    stop = threading.Event()

    def load() -> None:
        deadline = time.monotonic() + 30
        for _ in range(2000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            status, body, _ = e.get(NOTES)
            results.append((status, body))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        wait_until(lambda: len(results) >= 40, timeout=20, what="load running on py3")
        code, doc = e.migrate("rollback", "notes", "--reason", "drill")
        assert code == 0 and doc["state"]["mode"] == "py2", doc
        seen = len(results)
        wait_until(lambda: len(results) >= seen + 40, timeout=20, what="load after rollback")
    finally:
        stop.set()
        for w in workers:
            w.join(35)
    failed = [(s, b[:200]) for s, b in results if s != 200]
    assert not failed, failed[:5]
    runtimes = [runtime_of(b) for _, b in results]
    assert runtimes[0] == "py3" and runtimes[-1] == "py2"
    assert drive(e, 3) and all(runtime_of(b) == "py2" for b in drive(e, 3))

    # -- every state change is audited ----------------------------------------------------
    code, doc = e.migrate("audit", "notes")
    assert code == 0
    changes = [(a["from"], a["to"]) for a in reversed(doc["audit"])]
    assert changes == [("", "shadow"), ("shadow", "shadow"), ("shadow", "py3"),
                       ("py3", "py2")], changes
    actors = [a["actor"] for a in doc["audit"][:3]]
    assert actors[0].startswith("cli:test") and actors[1].startswith("cli:test"), actors
    assert actors[2] == "gateway:reload", actors
    reasons = [a["reason"] for a in doc["audit"]]
    assert "notes3 reloaded: evidence restarts" in reasons and "drill" in reasons
