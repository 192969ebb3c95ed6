"""Requests recorded raw, accounted for in batches: exact counts, every line, same bytes.

Each request runs through :class:`gateway.metrics.observe.Observed` around a
small ASGI app; what the batch writes is compared with what the formatter
gives for the same values (the formats themselves are covered by
test_metrics_observe), and the drain points are checked one by one: a read
of the counts, the log's flush, a full buffer, the worker's timer and its
shutdown.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from gateway.http.config import GatewayHttpConfig, Route
from gateway.metrics import observe
from gateway.metrics.accesslog import Entry, as_json, combined
from gateway.metrics.config import ObservabilityConfig
from gateway.metrics.observe import Observed
from gateway.metrics.records import BATCH, FIELDS

ROUTE = Route("/v2", "wsgi", service="v2")
HEADERS = [(b"host", b"gw"), (b"user-agent", b"curl/8 \xc3\xa9"),
           (b"referer", b'http://a/"x"')]


async def _answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A front that matched ``ROUTE``: the environ keys the real front sets (and a server's
    lifespan: startup, then shutdown)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    n = int(scope["path"].rsplit("/", 1)[1])
    scope["gateway.environ"] = {
        "gateway.route": ROUTE, "gateway.request_id": f"{n:032x}",
        "gateway.trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "RAW_URI": scope["path"],
        "PATH_INFO": scope["path"], "HTTP_USER_AGENT": "curl/8 \u00e9",
        "HTTP_REFERER": 'http://a/"x"',
        "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"ann:pw").decode()}
    await receive()
    await send({"type": "http.response.start", "status": 200 + n % 2 * 304,
                "headers": [(b"content-length", b"%d" % n)]})
    await send({"type": "http.response.body", "body": b"x" * n})


def app(tmp_path: Any, fmt: str = "combined") -> Observed:
    return Observed(_answer, ObservabilityConfig(access_log=str(tmp_path / "access.log"),
                                                 access_log_format=fmt,
                                                 metrics_dir=str(tmp_path)),
                    GatewayHttpConfig(routes=(ROUTE,), broker="ipc:///unused"))


async def serve(front: Observed, first: int, count: int) -> None:
    """``count`` requests ``GET /v2/<n>``, n from ``first``; each answers n bytes."""
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"ab", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    for n in range(first, first + count):
        await front({"type": "http", "method": "GET", "http_version": "1.1",
                     "path": f"/v2/{n}", "raw_path": f"/v2/{n}".encode(), "headers": HEADERS,
                     "client": ("192.0.2.7", 5000)}, receive, send)


def written(front: Observed) -> list[str]:
    assert front.log is not None
    try:
        with open(front.log.path, encoding="utf-8") as fh:
            return fh.read().splitlines(keepends=True)
    except FileNotFoundError:
        return []


def test_a_request_appends_one_record_and_a_read_counts_it(tmp_path: Any) -> None:
    front = app(tmp_path)
    asyncio.run(serve(front, 1, 3))
    assert len(front.records.pending) == 3
    assert len(front.records.pending[0]) == len(FIELDS)
    assert front.log is not None and front.log.lines == []    # nothing formatted yet
    assert front.metrics is not None
    assert front.metrics.requests == {("GET", "504", "/v2", "wsgi", "v2", "wsgi"): 2,
                                      ("GET", "200", "/v2", "wsgi", "v2", "wsgi"): 1}
    assert front.metrics.bytes_out == {("/v2", "wsgi", "v2", "wsgi"): 6}
    assert front.metrics.bytes_in == {("/v2", "wsgi", "v2", "wsgi"): 6}
    assert front.records.pending == [] and len(front.log.lines) == 3


@pytest.mark.parametrize("fmt", ["combined", "json"])
def test_batched_lines_are_the_formatter_s_bytes(tmp_path: Any, fmt: str) -> None:
    front = app(tmp_path, fmt)
    asyncio.run(serve(front, 7, 2))
    assert front.log is not None
    times = [(r[FIELDS.index("when")], r[FIELDS.index("duration")], r[FIELDS.index("ttfb")])
             for r in front.records.pending]
    front.log.flush()
    form = combined if fmt == "combined" else as_json
    assert written(front) == [form(Entry(
        "192.0.2.7", "ann", when, "GET", f"/v2/{n}", "HTTP/1.1", 504 if n % 2 else 200, n,
        'http://a/"x"', "curl/8 \u00e9", f"{n:032x}", "/v2", "wsgi", "v2", "wsgi",
        "broker:v2", "", duration, ttfb, 2, "4bf92f3577b34da6a3ce929d0e0e4736"))
        for n, (when, duration, ttfb) in zip((7, 8), times, strict=True)]


def test_a_full_buffer_is_accounted_for_at_once(tmp_path: Any) -> None:
    front = app(tmp_path)
    asyncio.run(serve(front, 0, BATCH - 1))
    assert len(front.records.pending) == BATCH - 1
    asyncio.run(serve(front, BATCH - 1, 1))
    assert front.records.pending == []
    assert front.log is not None   # formatted; some already written (MAX_BUFFER)
    assert len(written(front)) + len(front.log.lines) == BATCH
    assert front.metrics is not None and sum(front.metrics.requests.values()) == BATCH


def test_a_refusal_keeps_its_place_among_the_requests(tmp_path: Any) -> None:
    from gateway.http.problems import Problem
    front = app(tmp_path)
    asyncio.run(serve(front, 1, 1))
    front.refused(Problem(431, "too big", code="headers_too_large"), ("192.0.2.9", 1), "f" * 32)
    asyncio.run(serve(front, 2, 1))
    assert front.metrics is not None
    assert front.metrics.rejections == {("headers_too_large", "431"): 1}
    assert sum(front.metrics.requests.values()) == 2
    assert front.log is not None
    front.log.flush()
    got = written(front)
    assert [ln.split('"', 2)[1] for ln in got] == ["GET /v2/1 HTTP/1.1", "-",
                                                  "GET /v2/2 HTTP/1.1"]
    assert got[1].startswith("192.0.2.9 - - [") and f"rid={'f' * 32}" in got[1]


async def _lifespan(front: Observed, work: Any) -> None:
    """Start ``front`` as a server does, run ``work``, then shut it down."""
    said: list[str] = []
    go_on = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if said:
            await go_on.wait()
            return {"type": "lifespan.shutdown"}
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        said.append(message["type"])

    lifespan = asyncio.create_task(front({"type": "lifespan"}, receive, send))
    while not said:
        await asyncio.sleep(0.001)   # polls the startup, not a clock
    await work()
    go_on.set()
    await asyncio.wait_for(lifespan, 10)
    assert said == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_shutdown_writes_every_line_and_count_still_buffered(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The timer is set beyond the test, so only the shutdown can write these out.
    monkeypatch.setattr(observe, "DRAIN_S", 3600.0)
    front = app(tmp_path)
    seen: dict[str, Any] = {}

    async def work() -> None:
        await serve(front, 1, 5)
        seen["pending"], seen["lines"] = len(front.records.pending), written(front)

    asyncio.run(_lifespan(front, work))
    assert seen == {"pending": 5, "lines": []}
    assert [ln.split('"', 2)[1] for ln in written(front)] == \
        [f"GET /v2/{n} HTTP/1.1" for n in range(1, 6)]
    assert front.metrics is not None and front.metrics.counts == {}   # written out
    family = front.metrics.families()["requests"]
    assert family.labels("GET", "200", "/v2", "wsgi", "v2", "wsgi")._value.get() == 2
    assert family.labels("GET", "504", "/v2", "wsgi", "v2", "wsgi")._value.get() == 3


def test_the_timer_accounts_for_a_quiet_worker_s_records(tmp_path: Any) -> None:
    front = app(tmp_path)
    drained: dict[str, int] = {}

    async def work() -> None:
        await serve(front, 1, 2)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while front.records.pending and loop.time() < deadline:
            await asyncio.sleep(0.01)   # polls the buffer, with a deadline
        assert front.log is not None
        drained["pending"], drained["lines"] = len(front.records.pending), len(front.log.lines)

    asyncio.run(_lifespan(front, work))
    assert drained == {"pending": 0, "lines": 2}


def test_counts_stay_exact_across_a_flush(tmp_path: Any) -> None:
    front = app(tmp_path)
    assert front.metrics is not None
    asyncio.run(serve(front, 2, 3))             # 200, 504, 200
    front.metrics.flush()                       # written out; the counts start afresh
    asyncio.run(serve(front, 4, 2))             # 200, 504
    assert front.metrics.requests == {("GET", "200", "/v2", "wsgi", "v2", "wsgi"): 1,
                                      ("GET", "504", "/v2", "wsgi", "v2", "wsgi"): 1}
    front.metrics.flush()
    family = front.metrics.families()
    assert family["requests"].labels("GET", "200", "/v2", "wsgi", "v2", "wsgi")._value.get() \
        == 3
    assert family["requests"].labels("GET", "504", "/v2", "wsgi", "v2", "wsgi")._value.get() \
        == 2
    assert family["bytes_out"].labels("/v2", "wsgi", "v2", "wsgi")._value.get() == 2 + 3 + 4 + 4 + 5
    child = family["duration"].labels("GET", "/v2", "wsgi", "v2", "wsgi")
    assert sum(bucket.get() for bucket in child._buckets) == 5


def test_without_a_log_requests_and_refusals_are_still_counted(tmp_path: Any) -> None:
    from gateway.http.problems import Problem
    front = Observed(_answer, ObservabilityConfig(access_log="", metrics_dir=str(tmp_path)),
                     GatewayHttpConfig(routes=(ROUTE,), broker="ipc:///unused"))
    asyncio.run(serve(front, 1, 2))
    front.refused(Problem(413, "too big", code="too_large"), ("192.0.2.9", 1), "f" * 32)
    assert front.log is None and front.metrics is not None
    assert sum(front.metrics.requests.values()) == 2
    assert front.metrics.rejections == {("too_large", "413"): 1}


PLAIN = Entry("127.0.0.1", "ann", 1_700_000_000.25, "GET", "/a?b=c&d=%22", "HTTP/1.1", 200, 12,
              "http://ref/x", "curl/8.5 (x86_64) ~!#$%&'()*+,-./:;<=>?@[]^_`{|}", "r" * 32,
              "/a", "wsgi", "s", "py2", "broker:s", "canary10", 0.0123456, 0.01, 3,
              "4bf92f3577b34da6a3ce929d0e0e4736")


@pytest.mark.parametrize("entry", [
    PLAIN,
    Entry("", "", 1.5, "", "", "", 400, 0, "", "", "f" * 32, "", "", "", "", "", "", 0.0,
          0.0, 0, ""),
])
def test_a_line_with_nothing_to_escape_is_the_same_as_escaped(entry: Entry) -> None:
    """The combined format's one check for the whole line gives escape()'s bytes."""
    from gateway.metrics.accesslog import escape
    request = f"{entry.method} {entry.target} {entry.protocol}" if entry.method else "-"
    line = combined(entry)
    assert f'"{escape(request)}"' in line and f'"{escape(entry.agent) or "-"}"' in line
    assert f"upstream={escape(entry.upstream) or '-'} " in line
    assert f' - {escape(entry.user) or "-"} [' in line


def test_one_field_to_escape_escapes_it_and_leaves_the_others() -> None:
    import dataclasses
    import json
    odd = dataclasses.replace(PLAIN, referer='http://r/"q"', agent="caf\u00e9\\")
    line = combined(odd)
    assert '"http://r/\\x22q\\x22" "caf\\xE9\\x5C"' in line
    assert '"GET /a?b=c&d=%22 HTTP/1.1"' in line and "upstream=broker:s " in line
    doc = json.loads(as_json(odd))
    assert doc["referer"] == 'http://r/"q"' and doc["user_agent"] == "caf\u00e9\\"
    assert doc == json.loads(as_json(PLAIN)) | {"referer": 'http://r/"q"',
                                                "user_agent": "caf\u00e9\\"}
