"""The strict request-target reading and the longest-prefix route table."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.http.config import GatewayHttpConfig, Route
from gateway.http.paths import BadPath, parse_target, raw_tail
from gateway.http.routing import RouteTable

GOOD = [
    ("/", "/", "/", None),
    ("/api/users?x=1", "/api/users", "/api/users", "x=1"),
    ("/caf%C3%A9?q=%C3%A9", "/café", "/caf%C3%A9", "q=%C3%A9"),
    ("/a%20b/", "/a b/", "/a%20b/", None),
    ("/a?", "/a", "/a", ""),
    ("http://evil.example/api/x?y", "/api/x", "/api/x", "y"),
    ("/files/report.v1..txt", "/files/report.v1..txt", "/files/report.v1..txt", None),
    ("/x/%7Euser", "/x/~user", "/x/%7Euser", None),
]

BAD = [
    "/api/../admin", "/api/./x", "/api/%2e%2e/admin", "/api/.%2E/admin", "/api/%2E./admin",
    "/api%2f..%2fadmin", "/api%2Fadmin", "/api\\..\\admin", "/api%5c..%5cadmin", "//admin",
    "/api//admin", "/api/%252e%252e/admin", "/api/%252fadmin", "/api/..;/admin",
    "/api/%c0%ae%c0%ae/admin", "/api/%ff", "/api/%00", "/api/%0d%0a", "/api/%zz", "/api/%4",
    "/api/\uff0e\uff0e/admin", "/api/%EF%BC%8E%EF%BC%8E/admin", "*", "admin", "/api/..",
    "/a b", "/api/\x7f",
]


@pytest.mark.parametrize(("raw", "path", "raw_path", "query"), GOOD)
def test_good_targets_decode_once_and_keep_raw(raw: str, path: str, raw_path: str,
                                               query: str | None) -> None:
    target = parse_target(raw)
    assert (target.path, target.raw_path, target.query) == (path, raw_path, query)


@pytest.mark.parametrize("raw", BAD)
def test_ambiguous_targets_are_refused(raw: str) -> None:
    with pytest.raises(BadPath):
        parse_target(raw)


def test_raw_tail_follows_segments() -> None:
    assert raw_tail("/api/caf%C3%A9/x", "/api") == "/caf%C3%A9/x"
    assert raw_tail("/api", "/api") == "/"
    assert raw_tail("/a/b/c", "/a/b") == "/c"
    assert raw_tail("/a/b", "/") == "/a/b"


def _table() -> RouteTable:
    up = "http://127.0.0.1:1"
    return RouteTable([Route("/", "http", upstream=up), Route("/api", "http", upstream=up),
                       Route("/api/v2", "http", upstream=up + "/v2")])


@pytest.mark.parametrize(("path", "prefix", "script", "info"), [
    ("/", "/", "", "/"), ("/apix", "/", "", "/apix"), ("/api", "/api", "/api", ""),
    ("/api/", "/api", "/api", "/"), ("/api/v2/x", "/api/v2", "/api/v2", "/x"),
    ("/api/v20", "/api", "/api", "/v20"), ("/other/api", "/", "", "/other/api"),
])
def test_longest_prefix_on_segment_boundaries(path: str, prefix: str, script: str,
                                              info: str) -> None:
    match = _table().match(path)
    assert match is not None
    assert (match.route.prefix, match.script_name, match.path_info) == (prefix, script, info)


def test_no_root_route_means_no_match() -> None:
    table = RouteTable([Route("/api", "http", upstream="http://127.0.0.1:1")])
    assert table.match("/admin") is None
    assert len(table) == 1


@pytest.mark.parametrize("kwargs", [
    {"prefix": "api", "backend": "http", "upstream": "http://x"},
    {"prefix": "/a/../b", "backend": "http", "upstream": "http://x"},
    {"prefix": "/a", "backend": "ftp"},
    {"prefix": "/a", "backend": "http", "upstream": "ftp://x"},
    {"prefix": "/a", "backend": "wsgi"},
    {"prefix": "/a", "backend": "static"},
])
def test_bad_routes_name_the_key(kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"http\.routes"):
        Route(**kwargs)


def test_config_from_dict_and_its_errors() -> None:
    config = GatewayHttpConfig.from_dict({
        "routes": [{"prefix": "/api/", "backend": "http", "upstream": "http://127.0.0.1:9"}],
        "limits": {"max_body": 10}, "trusted_proxies": 1})
    assert config.routes[0].prefix == "/api"
    assert config.limits.max_body == 10
    with pytest.raises(ConfigError, match="broker"):
        GatewayHttpConfig(routes=(Route("/x", "rpc"),))
    with pytest.raises(ConfigError, match="twice"):
        GatewayHttpConfig(routes=(Route("/x", "static", directory="/"),) * 2)
    with pytest.raises(ConfigError, match="http:"):
        GatewayHttpConfig.from_dict({"nonsense": 1})


def test_bounded_body_read_zero_is_empty_not_truncated() -> None:
    import io

    from gateway.http.bodies import BoundedBody
    body = BoundedBody(io.BytesIO(b"abc"), 3, cap=10)
    assert body.read(0) == b""
    assert body.read() == b"abc"
    assert body.read(0) == b"" and body.read() == b""
