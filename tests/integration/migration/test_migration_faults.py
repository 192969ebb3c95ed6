"""Shadow isolation, canary stickiness, automatic rollback, pinning, rpc and the admin API's
errors: each against the running estate of :mod:`tests.integration.migration.conftest`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from http.cookies import SimpleCookie
from typing import Any

import pytest

from tests.integration.arbiter.conftest import alive
from tests.support.procs import wait_until

pytestmark = pytest.mark.slow

NOTES = "/api/notes?limit=2"


def runtime_of(body: bytes) -> str:
    """Which side answered: Python 2 prints the average as a float ("3.0")."""
    return "py2" if b'"avg_words":3.0' in body else "py3"


def get(port: int, path: str, headers: dict[str, str] | None = None,
        ) -> tuple[int, bytes, Any]:
    """GET with headers: (status, body, response headers)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        return exc.code, body, exc.headers


@pytest.mark.timeout(180)
def test_a_hung_or_killed_candidate_never_fails_the_primary(notes_estate):
    e = notes_estate()
    pid = e.program("notes3")["replicas"][0]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        statuses = [e.get(NOTES)[0] for _ in range(30)]
        assert statuses == [200] * 30
        report = e.wait_samples("notes", 30)
        ev = report["evidence"]
        # Each copy either timed out at the cap (candidate_error) or found no free slot.
        assert ev["candidate_errors"] + ev["uncompared"] >= 30 - ev["regressions"]
        assert ev["candidate_errors"] >= 1 and ev["uncompared"] >= 1, ev
    finally:
        os.kill(pid, signal.SIGCONT)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), timeout=5, what="the port killed")
    statuses = [e.get(NOTES)[0] for _ in range(20)]
    assert statuses == [200] * 20
    report = wait_until(lambda: (lambda r: r if r["runtimes"]["py2"]["requests"] >= 50
                                 else None)(e.report("notes")),
                        timeout=10, what="50 requests recorded")
    assert report["runtimes"]["py2"]["errors"] == 0


@pytest.mark.timeout(180)
def test_canary_is_sticky_per_client_and_a_spent_error_budget_rolls_back(notes_estate):
    e = notes_estate(rounding="half-up")
    code, doc = e.migrate("canary", "notes", "30")
    assert code == 0 and doc["state"]["mode"] == "canary", doc
    seen: dict[str, set[str]] = {}
    for _ in range(40):
        status, body, headers = get(e.port, NOTES)
        assert status == 200
        jar: SimpleCookie = SimpleCookie()
        jar.load(headers["Set-Cookie"])
        cookie = jar["gw_canary"].value
        runtimes = {runtime_of(body)}
        for _ in range(3):
            status, body, headers = get(e.port, NOTES, {"Cookie": f"gw_canary={cookie}"})
            assert status == 200 and "Set-Cookie" not in headers
            runtimes.add(runtime_of(body))
        seen[cookie] = runtimes
    assert all(len(r) == 1 for r in seen.values()), "a client switched runtimes"
    on_py3 = sum(1 for r in seen.values() if r == {"py3"})
    assert 2 <= on_py3 <= 24, f"{on_py3} of 40 clients on py3 at 30%"

    # The port hangs: its canary clients time out (504) until the budget is spent.
    pid = e.program("notes3")["replicas"][0]["pid"]
    py3_cookie = next(c for c, r in seen.items() if r == {"py3"})
    os.kill(pid, signal.SIGSTOP)
    try:
        def rolled_back() -> bool:
            get(e.port, NOTES, {"Cookie": f"gw_canary={py3_cookie}"})
            return bool(e.report("notes")["state"]["mode"] == "py2")
        wait_until(rolled_back, timeout=60, interval=0.05, what="automatic rollback")
    finally:
        os.kill(pid, signal.SIGCONT)
    status, body, _ = get(e.port, NOTES, {"Cookie": f"gw_canary={py3_cookie}"})
    assert status == 200 and runtime_of(body) == "py2"
    code, doc = e.migrate("audit", "notes")
    auto = doc["audit"][0]
    assert auto["actor"] == "gateway:auto" and auto["to"] == "py2", auto
    assert "py3 failed" in auto["reason"], auto


@pytest.mark.timeout(120)
def test_a_trusted_caller_pins_a_runtime_and_nobody_else_can(notes_estate):
    e = notes_estate(rounding="half-up", state="py2")
    pin = {"X-Gateway-Runtime": "py3", "X-Gateway-Token": e.token}
    status, body, _ = get(e.port, NOTES, pin)
    assert status == 200 and runtime_of(body) == "py3"
    for token in ("", "wrong", e.token + "x"):
        status, body, _ = get(e.port, NOTES, {"X-Gateway-Runtime": "py3",
                                              "X-Gateway-Token": token})
        assert status == 200 and runtime_of(body) == "py2"
    # py2 state: nothing is shadowed, so nothing is compared.
    assert e.report("notes")["evidence"]["samples"] == 0


@pytest.mark.timeout(120)
def test_an_rpc_method_migrates_on_the_same_evidence(notes_estate):
    e = notes_estate()
    texts = [("<p>caf\u00e9 \U0001F600 one</p>", "<p>caf\u00e9 \U0001F600 two</p>"),
             ("<p>a</p>", "<p>a b</p>")]
    results: list[Any] = []
    # Until 10 comparisons (min_samples) are in: a copy that finds every shadow slot
    # busy is uncompared and does not count. Bounded at 60 calls.
    report: dict[str, Any] = {}
    for i in range(60):
        old, new = texts[i % 2]
        req = urllib.request.Request(
            f"http://127.0.0.1:{e.port}/rpc/htmldiff/diff",
            data=json.dumps({"old": old, "new": new}).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            results.append(json.loads(resp.read()))
        if i >= 11 and i % 4 == 3:
            report = e.wait_samples("htmldiff-diff", i + 1)
            if report["evidence"]["samples"] >= 10:
                break
    assert results[0] == results[2] and results[1] == results[3]
    assert report["evidence"]["regressions"] == 0 and report["gate"]["ok"], report
    code, doc = e.migrate("promote", "htmldiff-diff")
    assert code == 0 and doc["state"]["mode"] == "py3"
    before = e.report("htmldiff-diff")["traffic"].get("py3", 0)
    req = urllib.request.Request(
        f"http://127.0.0.1:{e.port}/rpc/htmldiff/diff",
        data=json.dumps({"old": texts[1][0], "new": texts[1][1]}).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read()) == results[1]
    wait_until(lambda: e.report("htmldiff-diff")["traffic"].get("py3", 0) > before,
               timeout=10, what="the py3 port serving")
    # Named directly, the port answers to its py2 service's contract, not untyped.
    for params, status in (({"old": "<p>a</p>", "new": "<p>b</p>"}, 200), ({"old": 1}, 422)):
        req = urllib.request.Request(
            f"http://127.0.0.1:{e.port}/rpc/htmldiff3/diff", data=json.dumps(params).encode(),
            method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                got = resp.status
        except urllib.error.HTTPError as exc:
            got = exc.code
            exc.close()
        assert got == status, params


@pytest.mark.timeout(120)
def test_the_admin_api_says_what_is_wrong(notes_estate):
    e = notes_estate()
    status, doc = e.api("GET", "/_gateway/api/overview", token="")
    assert status == 401 and doc["code"] == "unauthorized"
    status, doc = e.api("GET", "/_gateway/api/overview", token="nope")
    assert status == 401
    status, doc = e.api("POST", "/_gateway/api/migrations/nope/promote", {})
    assert status == 404 and doc["code"] == "unknown_migration"
    status, doc = e.api("POST", "/_gateway/api/migrations/notes/canary", {"percent": 150})
    assert status == 400
    status, doc = e.api("POST", "/_gateway/api/migrations/notes/retire", {})
    assert status == 409 and doc["code"] == "illegal_transition"
    status, doc = e.api("POST", "/_gateway/api/migrations/notes/promote", {})
    assert status == 409 and doc["code"] == "gate_refused" and doc["reasons"], doc
    status, doc = e.api("POST", "/_gateway/api/migrations/notes/promote",
                        {"force": True, "reason": "tested elsewhere"})
    assert status == 200 and doc["state"]["mode"] == "py3"
    status, doc = e.api("GET", "/_gateway/api/audit?name=notes")
    assert doc["audit"][0]["forced"] is True and doc["audit"][0]["actor"].startswith("test")
    status, doc = e.api("GET", "/_gateway/api/overview")
    assert status == 200 and {m["name"] for m in doc["migrations"]} == {"notes",
                                                                         "htmldiff-diff"}
    assert doc["services"]["notes3"]["state"] == "READY"
    proc = subprocess.run([sys.executable, "-m", "gateway", "-c", e.path, "status", "--json"],
                          capture_output=True, text=True, timeout=30, check=True)
    migrations = json.loads(proc.stdout)["migrations"]
    assert migrations["notes"] == {"target": "/api/notes", "label": "py3", "mode": "py3",
                                   "percent": 0}
    assert migrations["htmldiff-diff"]["mode"] == "shadow"
    req = urllib.request.Request(f"http://127.0.0.1:{e.port}/_gateway/")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
