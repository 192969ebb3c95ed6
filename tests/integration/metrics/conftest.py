"""Fixtures for the observability tests: an estate with a py2 and a py3 WSGI route.

::

    def test_x(metrics_estate):
        e = metrics_estate()                 # gateway up: /two on py2, /three on py3
        e.get("/two/x")
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.integration.arbiter.conftest import Estate, estate  # noqa: F401 (a fixture)

ROUTES = """
[http]
trusted_proxies = 1
{http}
{extra}
[[routes]]
prefix = "/two"
backend = "wsgi"
service = "two"

[[routes]]
prefix = "/three"
backend = "wsgi"
service = "three"

[services.two]
runtime = "py2"
app = "tests.integration.arbiter.wsgiapp:app"

[services.three]
runtime = "py3"
app = "tests.integration.arbiter.wsgiapp:app"
"""


@pytest.fixture
def metrics_estate(estate: Callable[..., Estate]) -> Callable[..., Estate]:  # noqa: F811
    """Factory: ``metrics_estate(http='access_log_format = "json"', extra="")``."""
    def make(http: str = "", extra: str = "") -> Estate:
        return estate(ROUTES.format(http=http, extra=extra))
    return make


def access_lines(e: Estate) -> list[str]:
    """The lines of the estate's default access log so far."""
    path = os.path.join(e.run_dir, "logs", "access.log")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return fh.read().splitlines()


def scrape(e: Estate) -> str:
    """The estate's ``/_gateway/metrics`` text (from loopback)."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{e.port}/_gateway/metrics",
                                timeout=5.0) as resp:
        text: str = resp.read().decode("utf-8")
        return text


def total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    out = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        series, value = line.rsplit(" ", 1)
        inner = series[len(name) + 1:-1] if "{" in series else ""
        got = {k: v.strip('"') for k, v in (kv.split("=", 1) for kv in inner.split(",") if kv)}
        if all(got.get(k) == v for k, v in labels.items()):
            out += float(value)
    return out
