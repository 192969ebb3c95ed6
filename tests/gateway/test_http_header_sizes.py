"""The header limits read the sizes the ASGI bridge measured, the same as a walk would."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.http.app import GatewayApp
from gateway.http.asgi import environ_from_scope
from gateway.http.bodies import header_sizes
from gateway.http.config import GatewayHttpConfig, HttpLimits, Route
from gateway.http.problems import Problem

HEADERS = [(b"host", b"a.example"), (b"accept", b"text/html"), (b"x-tag", b"one"),
           (b"content-type", b"text/plain"), (b"x-tag", b"two"), (b"x_under", b"dropped"),
           (b"cookie", b"k=" + b"v" * 60)]


def _environ(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    environ = environ_from_scope({"type": "http", "method": "GET", "path": "/",
                                  "raw_path": b"/", "query_string": b"", "headers": headers,
                                  "http_version": "1.1"})
    assert isinstance(environ, dict)
    return environ


def test_the_measured_sizes_equal_a_walk_over_the_joined_fields() -> None:
    environ = _environ(HEADERS)
    assert environ["HTTP_X_TAG"] == "one,two"
    walked = header_sizes({k: v for k, v in environ.items() if k != "gateway.header_sizes"})
    assert environ["gateway.header_sizes"] == walked
    # host, accept, x-tag (joined), cookie; content-type and the underscored name not counted
    assert walked[0] == 4
    assert walked[2] == len("HTTP_COOKIE") + 62 - 1


@pytest.mark.parametrize("measured", [True, False])
@pytest.mark.parametrize(("limits", "code"), [
    (HttpLimits(max_header_line=70), "header_too_large"),
    (HttpLimits(max_header_count=3), "headers_too_large"),
    (HttpLimits(max_header_total=100), "headers_too_large"),
    (HttpLimits(), None),
])
def test_the_431s_are_the_same_with_and_without_the_measured_sizes(
        limits: HttpLimits, code: str | None, measured: bool) -> None:
    app = GatewayApp(GatewayHttpConfig(routes=(Route("/", "static", directory="/tmp"),),
                                       limits=limits))
    environ = _environ(HEADERS)
    if not measured:
        del environ["gateway.header_sizes"]
    if code is None:
        app.check_limits(environ, "/")
        return
    with pytest.raises(Problem) as refused:
        app.check_limits(environ, "/")
    assert (refused.value.status, refused.value.code) == (431, code)
