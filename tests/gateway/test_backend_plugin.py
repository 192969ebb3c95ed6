"""A new backend is one module and one registration: config, `gateway check` and the front
accept it (tests/support/teapot.py, registered here and nowhere else)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from werkzeug.test import Client

from gateway import cli
from gateway.commands.frontcfg import http_config
from gateway.config import from_dict, parse
from gateway.config.backends import BACKENDS, names, register, unregister
from gateway.errors import ConfigError
from gateway.http.app import make_app
from tests.support import teapot

CONFIG = """
[gateway]
run_dir = "{run}"
[runtimes]
py2 = "{py}"
[[routes]]
prefix = "/tea"
backend = "teapot"
message = "short and stout"
[[routes]]
prefix = "/pot"
backend = "teapot"
[[routes]]
prefix = "/old"
backend = "redirect"
target = "/tea"
"""


@pytest.fixture
def registered() -> Iterator[None]:
    register(teapot.SPEC)
    try:
        yield
    finally:
        unregister("teapot")
    assert "teapot" not in names()


def _text(tmp_path) -> str:
    return CONFIG.format(run=tmp_path / "run", py=sys.executable)


def test_the_config_parses_checks_and_round_trips_a_registered_backend(tmp_path, registered):
    cfg = parse(_text(tmp_path), base_dir=str(tmp_path))
    tea, pot, _ = cfg.routes
    assert (tea.backend, tea.options, pot.options) == (
        "teapot", {"message": "short and stout"}, {"message": "I'm a teapot"})
    assert from_dict(cfg.to_dict()) == cfg
    assert names() == (*BACKENDS, "teapot")


@pytest.mark.parametrize("old, new, message", [
    ('message = "short and stout"', "message = 7", "routes[0].message: must be a string"),
    ('backend = "teapot"\nmessage = "short and stout"', 'backend = "teapot"\ntarget = "/x"',
     "routes[0].target: a teapot has no target"),
    ('target = "/tea"', 'target = "/tea"\nmessage = "hi"',
     "routes[2].message: only the teapot backend has a message"),
    ('message = "short and stout"', 'message = "two\\nlines"',
     "http.routes['/tea'].message: one line of text"),
])
def test_its_errors_name_the_key(tmp_path, registered, old: str, new: str, message: str):
    text = _text(tmp_path)
    assert old in text
    with pytest.raises(ConfigError) as info:
        parse(text.replace(old, new, 1), base_dir=str(tmp_path))
    assert str(info.value) == message


def test_gateway_check_accepts_it_and_refuses_it_once_unregistered(tmp_path, capsys):
    path = tmp_path / "gateway.toml"
    path.write_text(_text(tmp_path))
    register(teapot.SPEC)
    try:
        assert cli.main(["-c", str(path), "check"]) == 0
        assert "0 services, 3 routes" in capsys.readouterr().out
    finally:
        unregister("teapot")
    assert cli.main(["-c", str(path), "check"]) == 1
    # Unregistered, its key is no key of any backend.
    assert "config error: routes[0].message: unknown key" in capsys.readouterr().err


def test_the_front_serves_it(tmp_path, registered):
    front = http_config(parse(_text(tmp_path), base_dir=str(tmp_path)))
    client = Client(make_app(front))
    resp = client.get("/tea/earl/grey")
    assert (resp.status_code, resp.data) == (418, b"short and stout")
    assert resp.headers["X-Request-ID"]
    assert client.get("/pot").data == b"I'm a teapot"
    assert client.get("/old/x").headers["Location"] == "/tea/x"
