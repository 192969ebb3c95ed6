"""ReverseMap: the upstream's Location, Refresh and cookie paths mapped back under the mount."""

from __future__ import annotations

import pytest

from gateway.commands.frontcfg import http_config
from gateway.config import parse
from gateway.errors import ConfigError
from gateway.http.config import Route
from gateway.http.rewrite import ReverseMap

PUBLIC = ("https", "gw.example")
ROOT = ReverseMap("http://127.0.0.1:9000", "/hb")
BASED = ReverseMap("http://127.0.0.1:9000/base/", "/hb")


@pytest.mark.parametrize("value,expected", [
    ("/relative-redirect/2", "/hb/relative-redirect/2"),
    ("/", "/hb/"),
    ("/get?a=1&b=/x#frag", "/hb/get?a=1&b=/x#frag"),
    ("http://127.0.0.1:9000/get?a=1", "https://gw.example/hb/get?a=1"),
    ("HTTP://127.0.0.1:9000", "https://gw.example/hb/"),
    ("http://127.0.0.1:9000#top", "https://gw.example/hb/#top"),
    ("//127.0.0.1:9000/y", "https://gw.example/hb/y"),
    ("http://sent.example/x", "https://gw.example/hb/x"),       # the Host it was sent
    ("http://sent.example:80/x", "https://gw.example/hb/x"),
    # left alone
    ("relative-redirect/1", "relative-redirect/1"),
    ("../x", "../x"),
    ("?page=2", "?page=2"),
    ("#top", "#top"),
    ("http://other.example/x", "http://other.example/x"),
    ("http://127.0.0.1:9001/x", "http://127.0.0.1:9001/x"),
    ("https://127.0.0.1:9000/x", "https://127.0.0.1:9000/x"),   # another origin: scheme
    ("mailto:a@b.example", "mailto:a@b.example"),
    ("/hb/already", "/hb/already"),                               # written by a prefix-aware app
    ("/hb", "/hb"),
])
def test_location(value: str, expected: str) -> None:
    assert ROOT.location(value, "sent.example", PUBLIC) == expected


@pytest.mark.parametrize("value,expected", [
    ("/base/x", "/hb/x"),
    ("/base", "/hb"),
    ("/basement", "/basement"),   # outside the upstream's base path: not ours to move
    ("/other", "/other"),
    ("http://127.0.0.1:9000/base/q?x", "https://gw.example/hb/q?x"),
    ("http://127.0.0.1:9000/other", "http://127.0.0.1:9000/other"),
])
def test_location_under_a_base_path(value: str, expected: str) -> None:
    assert BASED.location(value, "sent.example", PUBLIC) == expected


@pytest.mark.parametrize("value,expected", [
    ("a=1; Path=/; HttpOnly", "a=1; Path=/hb; HttpOnly"),
    ("b=2; path=/cookies", "b=2; path=/hb/cookies"),
    ("c=3; Path=/x/; Secure", "c=3; Path=/hb/x/; Secure"),
    ("d=4", "d=4"),
    ("e=5; Path=/hb/x", "e=5; Path=/hb/x"),
    ("f=6; Path=relative", "f=6; Path=relative"),
    ("g=/path=/; Domain=x.example", "g=/path=/; Domain=x.example"),
    ("h=8; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/a", "h=8; Expires=Wed, 21 Oct 2026 "
                                                            "07:28:00 GMT; Path=/hb/a"),
])
def test_cookie_path(value: str, expected: str) -> None:
    assert ROOT.cookie(value) == expected


def test_cookie_path_under_a_base_path() -> None:
    assert BASED.cookie("a=1; Path=/base/") == "a=1; Path=/hb"
    assert BASED.cookie("a=1; Path=/base/x") == "a=1; Path=/hb/x"
    assert BASED.cookie("a=1; Path=/") == "a=1; Path=/"


def test_refresh_and_header_selection() -> None:
    assert ROOT.refresh("0; url=/x", "h", PUBLIC) == "0; url=/hb/x"
    assert ROOT.refresh("5;URL='/x'", "h", PUBLIC) == "5;URL='/hb/x'"
    pairs = [("Location", "/x"), ("Set-Cookie", "a=1; Path=/"), ("Link", "</x>; rel=next")]
    assert ROOT.headers(pairs, "h", PUBLIC, redirects=True, cookies=False) == [
        ("Location", "/hb/x"), ("Set-Cookie", "a=1; Path=/"), ("Link", "</x>; rel=next")]
    assert ROOT.headers(pairs, "h", PUBLIC, redirects=False, cookies=True) == [
        ("Location", "/x"), ("Set-Cookie", "a=1; Path=/hb"), ("Link", "</x>; rel=next")]


def test_the_rewrites_default_to_strip_prefix() -> None:
    up = "http://127.0.0.1:9000"
    stripped = Route("/hb", "http", upstream=up, strip_prefix=True)
    assert stripped.rewrite_redirects is True and stripped.rewrite_cookie_path is True
    whole = Route("/hb", "http", upstream=up)
    assert whole.rewrite_redirects is False and whole.rewrite_cookie_path is False
    off = Route("/hb", "http", upstream=up, strip_prefix=True, rewrite_cookie_path=False)
    assert off.rewrite_redirects is True and off.rewrite_cookie_path is False


TOML = """
[[routes]]
prefix = "/hb"
backend = "http"
target = "http://127.0.0.1:9000"
strip_prefix = true
{extra}
"""


def test_gateway_toml_keys_reach_the_front() -> None:
    routes = http_config(parse(TOML.format(extra=""), base_dir="/srv")).routes
    assert (routes[0].strip_prefix, routes[0].rewrite_redirects,
            routes[0].rewrite_cookie_path) == (True, True, True)
    cfg = parse(TOML.format(extra="rewrite_redirects = false"), base_dir="/srv")
    route = http_config(cfg).routes[0]
    assert (route.rewrite_redirects, route.rewrite_cookie_path) == (False, True)


def test_gateway_toml_rejects_bad_rewrite_keys() -> None:
    with pytest.raises(ConfigError, match=r"routes\[0\]\.rewrite_redirects: must be true"):
        parse(TOML.format(extra='rewrite_redirects = "yes"'))
    wsgi = '[[routes]]\nprefix = "/w"\nbackend = "wsgi"\nservice = "w"\nrewrite_redirects = true\n'
    with pytest.raises(ConfigError, match=r"routes\[0\]\.rewrite_redirects: only the http"):
        parse(wsgi)
