"""A FATAL service behind an rpc mount without a service, under ``gateway up``.

The mount has no route guard; the caller the composition root hands the rpc
backend checks each call's service. A service the arbiter gave up on
answers 503 problem+json at once, while another service on the same mount
is still served.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from email.message import Message

from tests.support.procs import wait_until

BODY = """
[[routes]]
prefix = "/rpc"
backend = "rpc"

[services.broken]
runtime = "py3"
module = "no_such_module_anywhere:TABLE"

[services.htmldiff]
runtime = "py3"
module = "py3_services.htmldiff:TABLE"
"""


def _post(port: int, path: str, params: dict[str, str]) -> tuple[int, Message, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 data=json.dumps(params).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "X-Request-ID": "rid-rpc-fatal"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, exc.headers, exc.read()
        finally:
            exc.close()


def test_a_fatal_rpc_service_answers_503_and_its_mount_still_serves_others(estate):
    e = estate(BODY, start=False).launch()
    wait_until(lambda: e.states().get("broken") == "FATAL", timeout=30, what="broken FATAL")
    wait_until(lambda: e.states().get("http") == "READY"
               and e.states().get("htmldiff") == "READY", timeout=30, what="front, htmldiff")
    status, headers, body = _post(e.port, "/rpc/broken/anything", {"x": "1"})
    problem = json.loads(body)
    assert status == 503 and headers.get("Retry-After") == "5", body
    assert headers.get("Content-Type") == "application/problem+json"
    assert problem["code"] == "unavailable" and "'broken' is down (FATAL)" in problem["detail"]
    assert problem["request_id"] == "rid-rpc-fatal"
    status, _, body = _post(e.port, "/rpc/htmldiff/diff", {"old": "<p>a</p>", "new": "<p>b</p>"})
    assert status == 200 and json.loads(body)["changed"] is True, body
