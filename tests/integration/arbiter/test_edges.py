"""Issue 14, item 7 on a real ``gateway up`` estate: the Host allow-list, the admin API's
trusted-proxy rule, the dashboard's framing headers and the TCP broker opt-in.

Requests go over raw sockets so the Host and X-Forwarded-For fields are exactly what a
DNS-rebound browser or a same-host reverse proxy would send.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.arbiter.conftest import fdhttp_service
from tests.integration.arbiter.test_supervise import arbiter_lines, web_route
from tests.integration.http.rawhttp import RawAnswer, exchange
from tests.support.procs import free_port, wait_until

WSGI = """
[[routes]]
prefix = "/py2"
backend = "wsgi"
service = "legacy"

[services.legacy]
runtime = "py2"
app = "tests.integration.arbiter.wsgiapp:app"
"""


def ask(port: int, path: str, host: str | None = "127.0.0.1",
        headers: dict[str, str] | None = None) -> RawAnswer:
    """One GET over a raw socket with exactly these fields."""
    lines = [f"GET {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines += ["Connection: close", "", ""]
    return exchange(port, "\r\n".join(lines).encode("latin-1"))


@pytest.fixture
def guarded(estate):
    """An estate with an http and a py2 wsgi route, an allow-list and one trusted proxy."""
    port = free_port()
    e = estate(web_route(port) + fdhttp_service("web", port) + WSGI + """
[http]
allowed_hosts = ["gw.example", "*.gw.example", "127.0.0.1"]
trusted_proxies = 1
""")
    token_path = os.path.join(e.run_dir, "admin.token")
    wait_until(lambda: os.path.exists(token_path), timeout=10, what="admin token")
    with open(token_path, encoding="ascii") as fh:
        e.token = fh.read().strip()
    return e


@pytest.mark.parametrize("path", ["/web/", "/py2/", "/_gateway/", "/_gateway/api/overview",
                                  "/_gateway/openapi.json"])
def test_a_host_not_on_the_allow_list_gets_400_everywhere(guarded, path):
    auth = {"Authorization": f"Bearer {guarded.token}"}
    for host in ("evil.example", "gw.example.evil.example", "127.0.0.2:80"):
        answer = ask(guarded.port, path, host, auth)
        assert answer.status == 400, (host, answer.status)
        assert answer.problem()["code"] == "host_not_allowed"
    for host in ("gw.example", f"GW.example:{guarded.port}", "api.gw.example", "127.0.0.1"):
        answer = ask(guarded.port, path, host, auth)
        assert answer.status == 200, (host, answer.status, answer.body[:200])


def test_health_answers_any_host_and_http11_without_host_is_400(guarded):
    assert ask(guarded.port, "/_gateway/health", "evil.example").status == 200
    answer = ask(guarded.port, "/web/", host=None)
    assert answer.status == 400 and answer.problem()["status"] == 400


def test_the_dashboard_and_admin_api_cannot_be_framed(guarded):
    for path in ("/_gateway/", "/_gateway/dashboard.js", "/_gateway/api/overview"):
        answer = ask(guarded.port, path, headers={"Authorization": f"Bearer {guarded.token}"})
        assert answer.status == 200, path
        assert answer.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path


@pytest.mark.parametrize("forwarded_for, status", [
    (None, 200),                           # the CLI on this host, no proxy in between
    ("127.0.0.1", 200),                    # a local client through the local proxy
    ("203.0.113.9", 403),                  # a remote client through the local proxy
    ("127.0.0.1, 203.0.113.9", 403),       # ... that forged an X-Forwarded-For of its own
    ("::1, 198.51.100.7", 403),
])
def test_the_admin_api_reads_the_client_as_forwarding_does(guarded, forwarded_for, status):
    headers = {"Authorization": f"Bearer {guarded.token}"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    answer = ask(guarded.port, "/_gateway/api/migrations", headers=headers)
    assert answer.status == status, answer.body[:300]
    if status == 403:
        assert answer.problem()["code"] == "forbidden"


def tcp_broker(e, extra: str) -> None:
    port = free_port()
    header = e.header().replace("[broker]\n",
                                f'[broker]\nendpoint = "tcp://127.0.0.1:{port}"\n{extra}')
    e.header = lambda: header
    e.write(WSGI)


def test_a_tcp_broker_without_the_opt_in_is_refused(estate):
    e = estate(WSGI, start=False)
    tcp_broker(e, "")
    e.launch()
    assert e.proc is not None
    wait_until(lambda: e.proc.poll() is not None, timeout=30, what="gateway up refused")
    assert e.proc.returncode != 0
    assert "a tcp:// endpoint has no CURVE authentication" in e.log()
    check = subprocess.run([sys.executable, "-m", "gateway", "-c", e.path, "check"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode != 0 and "broker.allow_insecure_tcp = true" in check.stderr


def test_a_tcp_broker_with_the_opt_in_runs_and_warns(estate):
    e = estate(WSGI, start=False)
    tcp_broker(e, "allow_insecure_tcp = true\n")
    e.start()
    code, body, _ = e.get("/py2/x")
    assert code == 200 and json.loads(body)["impl"].startswith("cpython-2.7")
    assert e.status()["arbiter"]["broker"].startswith("tcp://127.0.0.1:")
    warned = arbiter_lines(e, "WARNING: broker.allow_insecure_tcp")
    assert len(warned) == 1 and "any local user can register as a worker" in warned[0]
