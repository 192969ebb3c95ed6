"""Fixtures for migrations end to end: ``gateway up`` with the notes API and htmldiff migrating.

::

    def test_x(notes_estate):
        e = notes_estate()                     # running: front, broker, py2 + py3 services
        e.get("/api/notes?limit=2")            # through the front (shadowed)
        e.migrate("promote", "notes")          # `gateway migrate ... --json` -> (exit, doc)
        e.api("GET", "/_gateway/api/overview") # the admin API with the token

The services are the example estate's: ``py2_services.notes`` and its port
``py3_services.notes`` (whose ``round()`` differs until ``NOTES_ROUNDING =
"half-up"``), and htmldiff on both interpreters behind ``/rpc``. They share
one legacy SQLite database holding two notes of 2 and 3 words.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.arbiter.conftest import Estate
from tests.support.procs import REPO, ProcessGroup, wait_until

SPEC = os.path.join(REPO, "protocol", "spec")


def estate_body(db: str, rounding: str = "bankers", state: str = "shadow",
                extra: str = "", notes: str = "") -> str:
    """The config below ``[gateway]``: routes, services and migrations.

    ``notes`` adds keys to ``[migrations.notes]`` (``percent``, ``sticky``).
    """
    return f"""
[http]
contracts_dir = {json.dumps(SPEC)}

[[routes]]
prefix = "/api/notes"
backend = "wsgi"
service = "notes"
timeout_ms = 2000

[[routes]]
prefix = "/rpc"
backend = "rpc"
timeout_ms = 5000

[services.notes]
runtime = "py2"
app = "py2_services.notes:app"
env = {{ LEGACY_DB = {json.dumps(db)} }}

[services.notes3]
runtime = "py3"
app = "py3_services.notes:app"
env = {{ LEGACY_DB = {json.dumps(db)}, NOTES_ROUNDING = "{rounding}" }}

[services.htmldiff]
runtime = "py2"
module = "py2_services.htmldiff:TABLE"

[services.htmldiff3]
runtime = "py3"
module = "py3_services.htmldiff:TABLE"

[migrations.notes]
route = "/api/notes"
py3 = "notes3"
state = "{state}"
min_samples = 20
shadow_timeout_ms = 1000
shadow_concurrency = 2
min_error_samples = 5
{notes}
[migrations.htmldiff-diff]
rpc = "htmldiff/diff"
py3 = "htmldiff3"
state = "shadow"
min_samples = 10
{extra}
"""


class MigrationEstate(Estate):
    """An arbiter :class:`Estate` plus the migration CLI and admin API."""

    db = ""

    @property
    def token(self) -> str:
        """The admin token the front wrote into the run dir."""
        with open(os.path.join(self.run_dir, "admin.token"), encoding="ascii") as fh:
            return fh.read().strip()

    def migrate(self, *args: str) -> tuple[int, Any]:
        """``gateway migrate --json ARGS``: (exit code, JSON document or stderr text)."""
        proc = subprocess.run(
            [sys.executable, "-m", "gateway", "-c", self.path, "migrate", "--json",
             "--actor", "test", *args],
            capture_output=True, text=True, timeout=30, cwd=REPO, check=False)
        if proc.returncode == 0:
            return 0, json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc.returncode, proc.stderr

    def api(self, method: str, path: str, body: Any = None, token: str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """One admin API call: (status, decoded JSON)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method)
        req.add_header("Authorization", f"Bearer {self.token if token is None else token}")
        req.add_header("X-Gateway-Actor", "test")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            doc = json.loads(exc.read() or b"null")
            exc.close()
            return exc.code, doc

    def report(self, name: str) -> dict[str, Any]:
        """The migration's report from the admin API."""
        status, doc = self.api("GET", "/_gateway/api/migrations")
        assert status == 200, doc
        return next(r for r in doc["migrations"] if r["name"] == name)

    def wait_samples(self, name: str, count: int, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until ``count`` comparisons (any outcome) are stored; the report then."""
        def enough() -> Any:
            r = self.report(name)
            ev = r["evidence"]
            return r if ev["samples"] + ev["uncompared"] >= count else None
        return wait_until(enough, timeout=timeout, interval=0.1,
                          what=f"{count} comparisons of {name}")


def add_notes(db: str) -> None:
    """Two notes of 2 and 3 words: an average of 2.5, where py2 and py3 round apart."""
    from py3_services import store
    conn = store.connect(db)
    try:
        uid = store.create_user(conn, "ada", "correct horse")
        store.add_note(conn, uid, "one two")
        store.add_note(conn, uid, "one two three")
    finally:
        conn.close()


@pytest.fixture
def notes_estate(procs: ProcessGroup, workdir: str) -> Iterator[Callable[..., MigrationEstate]]:
    """Factory: ``notes_estate(rounding="bankers", state="shadow", extra="")``, started."""
    made: list[MigrationEstate] = []

    def make(rounding: str = "bankers", state: str = "shadow",
             extra: str = "") -> MigrationEstate:
        db = os.path.join(workdir, "legacy.sqlite3")
        add_notes(db)
        e = MigrationEstate(procs, workdir, estate_body(db, rounding, state, extra))
        e.db = db
        made.append(e)
        e.start(timeout=90)
        wait_until(lambda: os.path.exists(os.path.join(e.run_dir, "admin.token")),
                   timeout=20, what="the admin token")
        return e

    try:
        yield make
    finally:
        for e in made:
            e.close()
