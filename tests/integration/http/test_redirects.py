"""Redirects and cookies of an ``http`` upstream stay under a mount that strips its prefix.

A real upstream (``redirect_upstream``, httpbin's redirect and cookie routes)
knows nothing of the mount. A real client (requests) follows its redirects
through the gateway and keeps its cookies: every hop must stay under
``/hb`` and the chain must end in 200, as behind nginx with
``proxy_redirect default`` and ``proxy_cookie_path``. A route with the
rewrites switched off passes the upstream's headers through untouched.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
import requests

from tests.integration.http.client import fetch
from tests.integration.http.conftest import Server, start_gateway
from tests.support.procs import free_port, port_open, wait_until

TIMEOUT = 15.0
CHAINS = ["redirect/3", "relative-redirect/3", "absolute-redirect/3", "origin-redirect/3",
          "ref/a/3"]


@pytest.fixture(scope="module")
def upstream(module_procs: Any) -> str:
    """The redirecting upstream's base URL."""
    port = free_port()
    proc = module_procs.spawn([sys.executable, "-m", "tests.integration.http.redirect_upstream",
                               str(port)])
    wait_until(lambda: port_open(port) or proc.poll() is not None, 20, what="redirect upstream")
    assert proc.poll() is None, "the redirect upstream exited"
    return f"http://127.0.0.1:{port}"


def _routes(upstream: str) -> list[dict[str, Any]]:
    return [
        {"prefix": "/hb", "backend": "http", "upstream": upstream, "strip_prefix": True},
        {"prefix": "/raw", "backend": "http", "upstream": upstream, "strip_prefix": True,
         "rewrite_redirects": False, "rewrite_cookie_path": False},
    ]


@pytest.fixture(scope="module", params=["preserve_host", "upstream_host"])
def gateway(request: Any, module_procs: Any, module_workdir: str, upstream: str) -> Server:
    """The gateway, sending either the client's Host or the upstream's own."""
    return start_gateway(module_procs, module_workdir, {
        "routes": _routes(upstream), "preserve_host": request.param == "preserve_host"})


@pytest.mark.parametrize("chain", CHAINS)
def test_a_redirect_chain_stays_under_the_mount(gateway: Server, chain: str) -> None:
    with requests.Session() as session:
        answer = session.get(f"{gateway.url}/hb/{chain}", timeout=TIMEOUT)
    hops = [r.headers["Location"] for r in answer.history]
    assert answer.status_code == 200, (hops, answer.text)
    assert len(answer.history) == 3, hops
    for hop in [*answer.history, answer]:
        assert hop.url.startswith(f"{gateway.url}/hb/"), hops
    got = answer.json()
    assert got["path"] == "/get"
    assert got["prefix"] == "/hb"


def test_the_locations_are_rewritten_as_nginx_would(gateway: Server, upstream: str) -> None:
    port = gateway.port

    def location(path: str) -> str | None:
        answer = fetch(port, "GET", path, timeout=TIMEOUT)
        assert answer.status == 302
        return answer.header("Location")

    assert location("/hb/redirect/3") == "/hb/relative-redirect/2"
    assert location("/hb/relative-redirect/1") == "/hb/get"
    # The client's own Host (fetch sends example.test) and scheme, under the mount.
    assert location("/hb/origin-redirect/2") == "http://example.test/hb/origin-redirect/1"
    # A relative reference resolves against the client's URL, which has the mount already.
    assert location("/hb/ref/a/2") == "1"


def test_cookies_set_by_redirects_come_back_under_the_mount(gateway: Server) -> None:
    with requests.Session() as session:
        answer = session.get(f"{gateway.url}/hb/cookies/set?a=1", timeout=TIMEOUT)
        assert answer.status_code == 200 and answer.url == f"{gateway.url}/hb/cookies"
        assert answer.json() == {"cookies": {"a": "1"}}
        answer = session.get(f"{gateway.url}/hb/cookies/scoped?b=2", timeout=TIMEOUT)
        assert answer.status_code == 200
        assert answer.json() == {"cookies": {"a": "1", "b": "2"}}
        paths = {c.name: c.path for c in session.cookies}
    assert paths == {"a": "/hb", "b": "/hb/cookies"}


def test_rewrites_switched_off_pass_the_headers_through(gateway: Server) -> None:
    answer = fetch(gateway.port, "GET", "/raw/redirect/3", timeout=TIMEOUT)
    assert answer.status == 302
    assert answer.header("Location") == "/relative-redirect/2"
    cookie = fetch(gateway.port, "GET", "/raw/cookies/set?a=1", timeout=TIMEOUT)
    assert cookie.all("Set-Cookie") == ["a=1; Path=/; HttpOnly"]
    # ... and that is what leaves the mount: the next hop has no route.
    lost = fetch(gateway.port, "GET", "/relative-redirect/2", timeout=TIMEOUT)
    assert lost.status == 404
    assert json.loads(lost.body)["code"] == "no_route"


def test_configured_in_gateway_toml_under_gateway_up(procs: Any, workdir: str,
                                                      upstream: str) -> None:
    # The whole path a user takes: [[routes]] in gateway.toml, parsed by the CLI and
    # handed by the arbiter to the front it supervises.
    from tests.integration.arbiter.conftest import Estate

    estate = Estate(procs, workdir, f"""
[[routes]]
prefix = "/hb"
backend = "http"
target = "{upstream}"
strip_prefix = true
""")
    try:
        estate.start()
        base = f"http://127.0.0.1:{estate.port}"
        with requests.Session() as session:
            answer = session.get(f"{base}/hb/redirect/3", timeout=TIMEOUT)
            assert answer.status_code == 200, [r.url for r in answer.history]
            assert [r.url for r in answer.history] == [
                f"{base}/hb/redirect/3", f"{base}/hb/relative-redirect/2",
                f"{base}/hb/relative-redirect/1"]
            assert answer.json() == {"path": "/get", "host": f"127.0.0.1:{estate.port}",
                                     "prefix": "/hb"}
            cookies = session.get(f"{base}/hb/cookies/set?a=1", timeout=TIMEOUT)
            assert cookies.json() == {"cookies": {"a": "1"}}
    finally:
        estate.close()
