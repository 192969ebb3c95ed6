"""A migration whose chosen side is FATAL, under ``gateway up``: the service states reach it.

The arbiter publishes its service states; the supervised front hands them to
the migrations (migration itself never reads the arbiter). While the state
makes a FATAL port the control, its requests answer 503 at once; a rollback
makes the healthy original the control again, on the same running front.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.integration.migration.conftest import MigrationEstate, add_notes
from tests.support.procs import ProcessGroup, wait_until

NOTES = "/api/notes?limit=2"


def body(db: str) -> str:
    """notes (py2) migrating to a port that never starts, already promoted to py3."""
    return f"""
[[routes]]
prefix = "/api/notes"
backend = "wsgi"
service = "notes"
timeout_ms = 2000

[services.notes]
runtime = "py2"
app = "py2_services.notes:app"
env = {{ LEGACY_DB = {json.dumps(db)} }}

[services.broken3]
runtime = "py3"
app = "py3_services.notes:no_such_app"
env = {{ LEGACY_DB = {json.dumps(db)} }}

[migrations.notes]
route = "/api/notes"
py3 = "broken3"
state = "py3"
"""


@pytest.fixture
def broken_port(procs: ProcessGroup, workdir: str) -> Iterator[MigrationEstate]:
    db = os.path.join(workdir, "legacy.sqlite3")
    add_notes(db)
    e = MigrationEstate(procs, workdir, body(db))
    e.launch()
    try:
        yield e
    finally:
        e.close()


@pytest.mark.timeout(120)
def test_a_fatal_control_answers_503_until_rollback_moves_the_route_back(broken_port):
    e = broken_port
    wait_until(lambda: e.states().get("broken3") == "FATAL", timeout=40, what="broken3 FATAL")
    wait_until(lambda: e.states().get("http") == "READY", timeout=30, what="the front")
    wait_until(lambda: os.path.exists(os.path.join(e.run_dir, "admin.token")),
               timeout=20, what="the admin token")
    code, raw, took = e.get(NOTES)
    problem = json.loads(raw)
    assert code == 503 and problem["code"] == "unavailable", raw
    assert "'broken3' is down (FATAL)" in problem["detail"] and problem["request_id"]
    assert took < 1.0   # at once: the route's timeout is 2 s
    status, doc = e.api("GET", "/_gateway/api/overview")
    assert status == 200 and doc["services"]["broken3"]["state"] == "FATAL", doc
    assert doc["services"]["notes"]["state"] == "READY"
    status, doc = e.api("POST", "/_gateway/api/migrations/notes/rollback",
                        {"reason": "the port does not start"})
    assert status == 200 and doc["state"]["mode"] == "py2", doc
    wait_until(lambda: e.get(NOTES)[0] == 200, timeout=10, what="py2 answering again")
