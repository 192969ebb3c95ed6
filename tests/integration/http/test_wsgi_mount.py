"""The ``wsgi`` backend keeps a py2 or py3 app's own URLs under its mount, unrewritten.

The mount travels as SCRIPT_NAME (SPEC 6.2), so an app that builds its
redirects and cookie paths from it is right already: the gateway must pass
them through untouched (no second prefix) and must not also send
X-Forwarded-Prefix, which SPEC 6.4 reserves for routes that strip their
prefix (a prefix-aware middleware would otherwise apply the mount twice).
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
import requests

from tests.integration.http.client import fetch
from tests.integration.http.conftest import (
    Server,
    start_broker,
    start_gateway,
    start_wsgi_worker,
    wait_for_service,
)
from tests.support.procs import python2

APP = "tests.integration.http.mount_app:app"
TIMEOUT = 15.0


@pytest.fixture(scope="module", params=["py3", "py2"])
def gateway(request: Any, module_procs: Any, module_workdir: str) -> Server:
    """The mount app on one runtime, mounted at /mnt."""
    if request.param == "py2":
        try:
            python = python2()
        except RuntimeError as exc:
            pytest.skip(str(exc))
    else:
        python = sys.executable
    endpoint = start_broker(module_procs)
    start_wsgi_worker(module_procs, endpoint, "mnt", APP, python=python)
    wait_for_service(endpoint, "mnt")
    return start_gateway(module_procs, module_workdir, {
        "broker": endpoint, "routes": [{"prefix": "/mnt", "backend": "wsgi", "service": "mnt"}]})


def test_the_apps_redirects_pass_through_and_stay_under_the_mount(gateway: Server) -> None:
    assert fetch(gateway.port, "GET", "/mnt/go/3").header("Location") == "/mnt/go/2"
    assert fetch(gateway.port, "GET", "/mnt/go/1").header("Location") == "done"
    with requests.Session() as session:
        answer = session.get(f"{gateway.url}/mnt/go/3", timeout=TIMEOUT)
    assert answer.status_code == 200
    assert [r.url for r in answer.history] == [
        f"{gateway.url}/mnt/go/3", f"{gateway.url}/mnt/go/2", f"{gateway.url}/mnt/go/1"]
    assert answer.json() == {"script_name": "/mnt", "path_info": "/go/done", "prefix": None,
                             "cookie": None}


def test_the_apps_cookie_path_passes_through(gateway: Server) -> None:
    first = fetch(gateway.port, "GET", "/mnt/cookie")
    assert first.all("Set-Cookie") == ["c=1; Path=/mnt"]
    with requests.Session() as session:
        answer = session.get(f"{gateway.url}/mnt/cookie", timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.json() == {"script_name": "/mnt", "path_info": "/done", "prefix": None,
                             "cookie": "c=1"}
