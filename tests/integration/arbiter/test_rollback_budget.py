"""The automatic rollback acts once ``min_error_samples`` py3 requests failed, not later.

A port that answers 500 to everything is served in state py3; the front must
roll back to py2 right after the fifth failure (``min_error_samples = 5``),
not a recorder tick later, when a client sending requests one after another
had seen every one of them fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.procs import REPO, child_env

pytestmark = pytest.mark.timeout(120)

FAILING_APP = '''
def app(environ, start_response):
    start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
    return [b"broken port"]
'''

BODY = """
[[routes]]
prefix = "/app"
backend = "wsgi"
service = "app"

[services.app]
runtime = "py2"
app = "tests.integration.arbiter.wsgiapp:app"

[services.app3]
runtime = "py3"
app = "failapp:app"

[migrations.app]
route = "/app"
py3 = "app3"
state = "py3"
min_error_samples = 5
error_budget = 0.05
"""


def test_rollback_after_min_error_samples_failures(estate, workdir):
    with open(os.path.join(workdir, "failapp.py"), "w", encoding="utf-8") as fh:
        fh.write(FAILING_APP)
    e = estate(BODY)
    failures = 0
    statuses = []
    for _ in range(60):  # bounded: the old recorder let every one of them fail
        status, _, _ = e.get("/app/", timeout=10)
        statuses.append(status)
        if status == 200:
            break
        assert status == 500, statuses
        failures += 1
    assert statuses[-1] == 200, f"never rolled back: {statuses}"
    # The fifth failure spends the budget; requests already on their way when the
    # rollback lands may still see py3 (at most a handful, never a tick's worth).
    assert 5 <= failures <= 8, statuses
    out = subprocess.run([sys.executable, "-m", "gateway", "migrate", "audit", "app", "--json",
                          "-c", e.path], cwd=REPO, env=child_env(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    auto = json.loads(out.stdout)["audit"][0]
    assert auto["actor"] == "gateway:auto" and auto["to"] == "py2", auto
    assert "py3 failed" in auto["reason"], auto
