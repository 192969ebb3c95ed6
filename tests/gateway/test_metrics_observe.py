"""The observing ASGI layer around the real front (static and wsgi-less routes, no sockets).

Each request runs through :class:`gateway.metrics.observe.Observed` wrapping a
real :class:`gateway.http.asgi.WsgiBridge` and :class:`GatewayApp`; the
per-process counts and the access-log lines are checked directly (the
multi-process export is covered by test_metrics_http and the integration tests).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.http.app import GatewayApp, ProblemGuard
from gateway.http.asgi import WsgiBridge
from gateway.http.config import GatewayHttpConfig, HttpLimits, Route
from gateway.http.problems import Problem
from gateway.metrics.accesslog import Entry, as_json, combined, escape
from gateway.metrics.config import ObservabilityConfig
from gateway.metrics.observe import Observed


def scope(path: str, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None,
          client: str = "127.0.0.1") -> dict[str, Any]:
    raw, _, query = path.partition("?")
    return {"type": "http", "method": method, "http_version": "1.1", "scheme": "http",
            "path": raw, "raw_path": raw.encode(), "query_string": query.encode(),
            "headers": [(b"host", b"gw"), *(headers or [])], "client": (client, 5000),
            "server": ("127.0.0.1", 8080)}


def run(app: Observed, sc: dict[str, Any], body: bytes = b"",
        leave: bool = False) -> tuple[int, bytes]:
    """One request; (status, body) as the client saw them (0 when it left first)."""
    sent: list[dict[str, Any]] = []
    parts = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if parts:
            return parts.pop(0)
        if leave:
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(sc, receive, send))
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), 0)
    return status, b"".join(m.get("body", b"") for m in sent
                            if m["type"] == "http.response.body")


@pytest.fixture
def front(tmp_path: Any) -> Observed:
    files = tmp_path / "files"
    files.mkdir()
    (files / "big.bin").write_bytes(b"z" * 300_000)
    config = GatewayHttpConfig(routes=(Route("/files", "static", directory=str(files)),),
                               limits=HttpLimits(max_uri=64), trusted_proxies=1)
    gateway = GatewayApp(config)
    bridge = WsgiBridge(ProblemGuard(gateway), threads=2, gateway=gateway)
    obs = ObservabilityConfig(access_log=str(tmp_path / "logs" / "access.log"),
                              metrics_dir=str(tmp_path / "metrics"),
                              token_file=str(tmp_path / "token"))
    (tmp_path / "token").write_text("s3cret\n")
    app = Observed(bridge, obs, config)
    yield app
    bridge.close()


def lines(app: Observed) -> list[str]:
    assert app.log is not None
    app.log.flush()
    with open(app.log.path, encoding="utf-8") as fh:
        return fh.read().splitlines()


def test_a_streamed_file_is_counted_whole_at_its_end(front: Observed) -> None:
    status, body = run(front, scope("/files/big.bin"))
    assert status == 200 and len(body) == 300_000
    assert front.metrics is not None
    assert front.metrics.requests == {("GET", "200", "/files", "static", "", "static"): 1}
    assert front.metrics.bytes_out == {("/files", "static", "", "static"): 300_000}
    assert front.metrics.in_flight == 0
    (line,) = lines(front)
    assert '"GET /files/big.bin HTTP/1.1" 200 300000 ' in line and "route=/files" in line


def test_refusals_by_the_front_are_rejections(front: Observed) -> None:
    assert run(front, scope("/files/" + "a" * 80))[0] == 414
    assert run(front, scope("/nothing"))[0] == 404
    assert front.metrics is not None
    assert front.metrics.rejections == {("uri_too_long", "414"): 1}   # a 404 is no refusal
    assert ("GET", "404", "", "", "", "") in front.metrics.requests
    front.refused(Problem(400, "bad", code="bad_framing"), ("192.0.2.1", 4000), "f" * 32)
    assert front.metrics.rejections[("bad_framing", "400")] == 1
    refusal = lines(front)[-1]
    assert refusal.startswith('192.0.2.1 - - [') and '] "-" 400 0 "-" "-" rid=' + "f" * 32 \
        in refusal


async def _half_answer(sc: dict[str, Any], receive: Any, send: Any) -> None:
    """Sends a head and a first chunk, then stops when the client disconnects."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass


def test_a_client_that_leaves_is_logged_499(tmp_path: Any) -> None:
    app = Observed(_half_answer, ObservabilityConfig(access_log=str(tmp_path / "a.log"),
                                                       metrics_dir=str(tmp_path)),
                   GatewayHttpConfig())
    status, body = run(app, scope("/files/big.bin"), leave=True)
    assert (status, body) == (200, b"part")   # what the server was handed before the client left
    assert app.metrics is not None
    assert app.metrics.requests == {("GET", "499", "", "", "", ""): 1}
    assert app.metrics.in_flight == 0
    assert app.metrics.bytes_out == {("", "", "", ""): 4}
    assert " 499 4 " in lines(app)[0]


def test_request_bytes_and_methods_outside_the_list(front: Observed) -> None:
    run(front, scope("/files/x", method="BREW"), body=b"12345")
    assert front.metrics is not None
    (key,) = front.metrics.requests
    assert key[0] == "other"


def test_metrics_endpoint_authorisation(front: Observed) -> None:
    front.authorise({"REMOTE_ADDR": "127.0.0.1"})
    front.authorise({"REMOTE_ADDR": "::1"})
    remote = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    with pytest.raises(Problem) as info:
        front.authorise(remote)
    assert info.value.status == 403 and info.value.code == "forbidden"
    with pytest.raises(Problem):
        front.authorise({**remote, "HTTP_AUTHORIZATION": "Bearer nope"})
    with pytest.raises(Problem):
        front.authorise({**remote, "HTTP_AUTHORIZATION": "Basic s3cret"})
    front.authorise({**remote, "HTTP_AUTHORIZATION": "Bearer s3cret"})


def test_metrics_disabled_leaves_the_endpoint_to_the_front(tmp_path: Any) -> None:
    config = GatewayHttpConfig(routes=())
    gateway = GatewayApp(config)
    bridge = WsgiBridge(ProblemGuard(gateway), threads=1, gateway=gateway)
    app = Observed(bridge, ObservabilityConfig(metrics=False,
                                               access_log=str(tmp_path / "a.log")), config)
    try:
        status, body = run(app, scope("/_gateway/metrics"))
    finally:
        bridge.close()
    assert status == 404 and json.loads(body)["code"] == "not_found"
    assert app.metrics is None and "/_gateway/metrics" in lines(app)[0]


ENTRY = Entry(remote="127.0.0.1", user="", when=1_700_000_000.25, method="GET",
              target='/a?b="c"', protocol="HTTP/1.1", status=200, bytes_out=12, referer="",
              agent="curl/8\n", request_id="r1", route="/a", backend="wsgi", service="s",
              runtime="py2", upstream="broker:s", migration="canary10", duration=0.0123456,
              ttfb=0.01, bytes_in=3, trace_id="4bf92f3577b34da6a3ce929d0e0e4736")


def test_combined_format_escapes_and_carries_the_gateway_fields() -> None:
    line = combined(ENTRY)
    assert line.endswith("\n") and line.count("\n") == 1
    assert line.startswith('127.0.0.1 - - [')
    assert '"GET /a?b=\\x22c\\x22 HTTP/1.1" 200 12 "-" "curl/8\\x0A" rid=r1 route=/a ' in line
    assert ("backend=wsgi service=s runtime=py2 upstream=broker:s migration=canary10 "
            "duration=0.012346 ttfb=0.010000 in=3 "
            "trace=4bf92f3577b34da6a3ce929d0e0e4736\n") in line


def test_json_format() -> None:
    doc = json.loads(as_json(ENTRY))
    assert doc["time"] == "2023-11-14T22:13:20.250Z"
    assert doc["target"] == '/a?b="c"' and doc["user_agent"] == "curl/8\n"
    assert doc["runtime"] == "py2" and doc["migration"] == "canary10"
    assert doc["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and doc["remote_user"] is None


def test_escape() -> None:
    assert escape("plain/path") == "plain/path"
    assert escape('a"b\\c') == "a\\x22b\\x5Cc"
    assert escape("\u00e9\u2603") == "\\xE9\\xE2\\x98\\x83"


def test_the_log_follows_a_rotation_and_survives_a_failing_disk(tmp_path: Any) -> None:
    from gateway.metrics.accesslog import AccessLog
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    log.write(ENTRY)
    log.flush()
    path.rename(tmp_path / "access.log.1")        # logrotate without copytruncate
    log.write(ENTRY)
    log.write(ENTRY)
    log.flush()
    assert len((tmp_path / "access.log.1").read_text().splitlines()) == 1
    assert len(path.read_text().splitlines()) == 2
    log.close()
    full = AccessLog("/dev/full")                  # every write fails with ENOSPC
    full.write(ENTRY)
    full.flush()
    assert full.dropped == 1 and full.lines == []
    full.close()


def test_labels_of_migrated_and_rpc_routes(front: Observed) -> None:
    front.runtimes.update({"notes": "py2", "notes3": "py3", "highlight": "py2"})
    http = Route("/api", "http", upstream="http://127.0.0.1:9000")
    assert front.labels({"gateway.route": http}) == \
        ("/api", "http", "", "http", "http://127.0.0.1:9000")
    assert front.labels({"gateway.route": http, "gateway.runtime": "py3",
                         "gateway.upstream": "http://127.0.0.1:9001"}) == \
        ("/api", "http", "", "py3", "http://127.0.0.1:9001")
    wsgi = Route("/notes", "wsgi", service="notes")
    assert front.labels({"gateway.route": wsgi, "gateway.runtime": "py3",
                         "gateway.service": "notes3"}) == \
        ("/notes", "wsgi", "notes3", "py3", "broker:notes3")
    rpc = Route("/rpc", "rpc")
    assert front.labels({"gateway.route": rpc, "PATH_INFO": "/rpc/highlight/run"}) == \
        ("/rpc", "rpc", "highlight", "py2", "broker:highlight")
    assert front.labels({"gateway.route": rpc, "PATH_INFO": "/rpc/made-up/x"})[2] == "other"
    assert front.labels({"gateway.path": "/_gateway/health"}) == \
        ("/_gateway", "gateway", "", "gateway", "")


async def _whole_answer(sc: dict[str, Any], receive: Any, send: Any) -> None:
    """Hands over every declared byte, then sees the client leave before its last message."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"4")]})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass
    await send({"type": "http.response.body", "body": b""})


def test_a_client_that_leaves_after_every_declared_byte_is_no_499(tmp_path: Any) -> None:
    app = Observed(_whole_answer, ObservabilityConfig(access_log=str(tmp_path / "a.log"),
                                                        metrics_dir=str(tmp_path)),
                   GatewayHttpConfig())
    assert run(app, scope("/x"), leave=True) == (200, b"part")
    assert app.metrics is not None
    assert app.metrics.requests == {("GET", "200", "", "", "", ""): 1}
    assert " 200 4 " in lines(app)[0]


class _HeldBody:
    """A WSGI body that yields every declared byte, then waits before it ends."""

    def __init__(self, release: Any) -> None:
        self.release = release
        self.events: list[str] = []

    def __iter__(self) -> Any:
        yield b"hello"
        assert self.release.wait(10), "the test never released the body"
        self.events.append("ended")

    def close(self) -> None:
        self.events.append("closed")


def test_a_client_that_leaves_with_the_whole_body_does_not_cut_the_response_short() -> None:
    """The body is read to its end and closed after it (a migration sends its shadow
    copy then); only a client that leaves early has the body closed under it."""
    import threading
    release = threading.Event()
    held = _HeldBody(release)

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "5")])
        return held

    bridge = WsgiBridge(wsgi, threads=2)
    sent: list[dict[str, Any]] = []
    parts = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if parts:
            return parts.pop(0)
        while not any(m.get("body") == b"hello" for m in sent):
            await asyncio.sleep(0.001)   # polls what the server was handed, not a clock
        # Runs after the front has seen the disconnect (the same loop step).
        asyncio.get_running_loop().call_soon(release.set)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        asyncio.run(asyncio.wait_for(bridge(scope("/x"), receive, send), 20))
    finally:
        bridge.close()
    assert held.events == ["ended", "closed"]
    assert sent[-1] == {"type": "http.response.body", "body": b""}
