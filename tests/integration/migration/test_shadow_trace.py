"""A shadow copy joins the request's trace: ``gateway up`` with a route in shadow state.

The py2 primary and the py3 candidate both record the trace headers they were
sent; the copy must carry the client's trace id, the gateway's span as its
parent (the same parent as the primary's), and ``X-Shadow: 1``.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

from protocol import trace
from tests.integration.arbiter.conftest import Estate
from tests.support.procs import ProcessGroup, WaitTimeout, wait_until

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def body(record: str) -> str:
    env = f"env = {{ RECORD_FILE = {json.dumps(record)} }}"
    return f"""
[[routes]]
prefix = "/rec"
backend = "wsgi"
service = "rec"

[services.rec]
runtime = "py2"
app = "tests.integration.migration.record_app:app"
{env}

[services.rec3]
runtime = "py3"
app = "tests.integration.migration.record_app:app"
{env}

[migrations.rec]
route = "/rec"
py3 = "rec3"
state = "shadow"
shadow_timeout_ms = 2000
"""


def records(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(x) for x in fh if x.strip()]


def test_the_shadow_copy_carries_the_trace_and_is_marked(procs: ProcessGroup,
                                                          workdir: str) -> None:
    record = os.path.join(workdir, "record.jsonl")
    e = Estate(procs, workdir, body(record))
    try:
        check(e, record)
    finally:
        e.close()


def check(e: Estate, record: str) -> None:
    e.start()
    req = urllib.request.Request(f"http://127.0.0.1:{e.port}/rec/x", headers={
        "traceparent": f"00-{TRACE}-{CLIENT_SPAN}-01", "tracestate": "k=v",
        "X-Request-ID": "shadow-trace-1"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        # Read the answer: a client that leaves before the body has abandoned it (499),
        # and a migration compares only answers that were delivered.
        assert resp.status == 200 and resp.read() == b'{"ok": true}'
    try:
        wait_until(lambda: len(records(record)) >= 2, 20, what="the primary and the shadow copy")
    except WaitTimeout as exc:
        raise AssertionError(f"{exc}: {records(record)}\n{e.log()}") from None
    seen = {r["runtime"]: r for r in records(record)}
    primary, copy = seen["py2"], seen["py3"]
    assert primary["shadow"] is None and copy["shadow"] == "1"
    parsed_primary = trace.parse(primary["traceparent"])
    parsed_copy = trace.parse(copy["traceparent"])
    assert parsed_primary is not None and parsed_copy is not None
    assert parsed_primary[0] == parsed_copy[0] == TRACE
    assert parsed_primary[1] == parsed_copy[1] != CLIENT_SPAN  # the gateway's span
    assert primary["tracestate"] == copy["tracestate"] == "k=v"
    assert primary["rid"] == "shadow-trace-1"
