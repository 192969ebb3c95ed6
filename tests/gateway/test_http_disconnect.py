"""The per-request disconnect hook the front's server fires from connection_lost."""

from __future__ import annotations

from gateway.http.asgi import environ_from_scope
from gateway.http.disconnect import KEY, Disconnect


def test_a_watcher_is_called_once_when_the_client_goes() -> None:
    hook, calls = Disconnect(), []
    hook.watch(lambda: calls.append("gone"))
    hook.fire()
    hook.fire()
    assert calls == ["gone"]
    assert hook.gone


def test_a_watcher_registered_after_the_client_went_is_called_at_once() -> None:
    hook, calls = Disconnect(), []
    hook.fire()
    hook.watch(lambda: calls.append("gone"))
    assert calls == ["gone"]


def test_an_unwatched_request_hears_nothing() -> None:
    hook, calls = Disconnect(), []
    hook.watch(lambda: calls.append("gone"))
    hook.unwatch()
    hook.fire()
    assert calls == []


def test_the_environ_carries_the_servers_hook_only_when_there_is_one() -> None:
    scope = {"type": "http", "method": "GET", "path": "/", "raw_path": b"/",
             "query_string": b"", "headers": [(b"host", b"a")], "http_version": "1.1"}
    plain = environ_from_scope(scope)
    assert isinstance(plain, dict) and "gateway.disconnect" not in plain
    hook = Disconnect()
    hooked = environ_from_scope({**scope, "extensions": {KEY: hook}})
    assert isinstance(hooked, dict) and hooked["gateway.disconnect"] is hook
