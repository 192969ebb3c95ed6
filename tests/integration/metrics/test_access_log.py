"""The access log and the metrics endpoint of a running estate.

One line per request in nginx combined plus the gateway's fields (or JSON),
with the route, service and runtime that answered; the endpoint answers
loopback clients and refuses others without the admin token.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable

from tests.integration.arbiter.conftest import Estate
from tests.integration.metrics.conftest import access_lines
from tests.support.procs import wait_until

COMBINED = re.compile(
    r'^(?P<remote>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"'
    r"(?P<fields>( \w+=\S+)+)$")


def fetch(e: Estate, path: str, headers: dict[str, str] | None = None,
          method: str = "GET", data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{e.port}{path}", headers=headers or {},
                                 method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=5.0) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, body


def fields(line: str) -> dict[str, str]:
    match = COMBINED.match(line)
    assert match is not None, line
    out = dict(match.groupdict())
    out.update(kv.split("=", 1) for kv in out.pop("fields").split())
    return out


def lines_for(e: Estate, count: int) -> list[str]:
    got: list[str] = []

    def enough() -> bool:
        got[:] = access_lines(e)
        return len(got) >= count
    wait_until(enough, timeout=10.0, what=f"{count} access-log lines")
    return got


def test_combined_lines_name_route_service_and_runtime(
        metrics_estate: Callable[..., Estate]) -> None:
    e = metrics_estate()
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    s2, h2, _ = fetch(e, "/two/a?q=1", {"User-Agent": 'probe "1"', "Referer": "http://r/",
                                         "traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    s3, h3, _ = fetch(e, "/three/b", method="POST", data=b"abc")
    s4, _, _ = fetch(e, "/nowhere")
    assert (s2, s3, s4) == (200, 200, 404)
    lines = lines_for(e, 3)
    by_rid = {fields(ln)["rid"]: fields(ln) for ln in lines}
    two = by_rid[h2["x-request-id"]]
    assert two["request"] == "GET /two/a?q=1 HTTP/1.1"
    assert two["status"] == "200" and int(two["bytes"]) > 0
    assert two["agent"] == "probe \\x221\\x22" and two["referer"] == "http://r/"
    assert (two["route"], two["backend"], two["service"], two["runtime"]) == \
        ("/two", "wsgi", "two", "py2")
    assert two["upstream"] == "broker:two" and two["remote"] == "127.0.0.1"
    assert float(two["duration"]) >= float(two["ttfb"]) > 0
    assert two["trace"] == trace   # the client's trace, continued by the gateway
    three = by_rid[h3["x-request-id"]]
    assert (three["route"], three["runtime"], three["in"]) == ("/three", "py3", "3")
    missing = [f for f in by_rid.values() if f["status"] == "404"]
    assert len(missing) == 1 and missing[0]["route"] == "-"


def test_json_lines(metrics_estate: Callable[..., Estate]) -> None:
    e = metrics_estate(http='access_log_format = "json"')
    status, headers, _ = fetch(e, "/three/j", {"User-Agent": "j\u00e9".encode().decode("latin-1")})
    assert status == 200
    docs = [json.loads(ln) for ln in lines_for(e, 1)]
    doc = next(d for d in docs if d["request_id"] == headers["x-request-id"])
    assert doc["method"] == "GET" and doc["target"] == "/three/j" and doc["status"] == 200
    assert (doc["route"], doc["service"], doc["runtime"]) == ("/three", "three", "py3")
    assert doc["bytes_sent"] > 0 and doc["duration"] >= doc["ttfb"] > 0
    assert doc["time"].endswith("Z")
    assert re.fullmatch(r"[0-9a-f]{32}", doc["trace_id"])   # a trace the gateway started


def test_access_log_off_and_a_path(metrics_estate: Callable[..., Estate], workdir: str) -> None:
    path = os.path.join(workdir, "custom", "front.log")
    e = metrics_estate(http=f'access_log = "{path}"')
    assert fetch(e, "/two/x")[0] == 200
    wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 0, timeout=10.0,
               what="the configured access log written")
    assert access_lines(e) == []   # not the default file
    with open(path, encoding="utf-8") as fh:
        assert fields(fh.readline())["route"] == "/two"


def test_access_log_to_stdout_and_parser_refusals(metrics_estate: Callable[..., Estate]) -> None:
    import socket
    e = metrics_estate(http='access_log = "-"')
    status, headers, _ = fetch(e, "/two/out")
    assert status == 200
    # A request llhttp refuses (Content-Length with Transfer-Encoding) never reaches the app.
    with socket.create_connection(("127.0.0.1", e.port), timeout=5.0) as sock:
        sock.sendall(b"POST /two/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    rid = json.loads(answer.split(b"\r\n\r\n", 1)[1])["request_id"]
    wait_until(lambda: headers["x-request-id"] in e.log() and f"rid={rid}" in e.log(),
               timeout=10.0, what="both lines in the arbiter's output")
    assert access_lines(e) == []
    served = next(ln for ln in e.log().splitlines() if headers["x-request-id"] in ln)
    assert "route=/two" in served and "runtime=py2" in served
    refused = next(ln for ln in e.log().splitlines() if f"rid={rid}" in ln)
    assert '\\"-\\" 400 0 ' in refused   # the arbiter's JSON log escapes the quotes

    def counted() -> bool:
        text = fetch(e, "/_gateway/metrics")[2].decode()
        return 'gateway_http_rejections_total{code="400",reason="bad_request"} 1.0' in text
    wait_until(counted, timeout=10.0, interval=0.1, what="the parser refusal counted")


def test_metrics_endpoint_loopback_token_and_refusal(
        metrics_estate: Callable[..., Estate]) -> None:
    e = metrics_estate()
    assert fetch(e, "/two/x")[0] == 200
    status, headers, body = fetch(e, "/_gateway/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    # The estate's collector is registered beside the front's own series.
    assert b"\ngateway_broker_up 1.0\n" in body and b"\ngateway_arbiter_up 1.0\n" in body
    # The worker that served /two/x writes its counts out within FLUSH_S.
    wait_until(lambda: b'gateway_http_requests_total{backend="wsgi",code="200",method="GET",'
               b'route="/two",runtime="py2",service="two"} 1.0'
               in fetch(e, "/_gateway/metrics")[2], timeout=10.0, interval=0.1,
               what="the request counted")
    # trusted_proxies = 1: the client is the X-Forwarded-For entry, not the loopback peer.
    remote = {"X-Forwarded-For": "203.0.113.9"}
    status, headers, body = fetch(e, "/_gateway/metrics", remote)
    assert status == 403 and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == "forbidden"
    status, _, _ = fetch(e, "/_gateway/metrics", {**remote, "Authorization": "Bearer wrong"})
    assert status == 403
    with open(os.path.join(e.run_dir, "admin.token"), encoding="ascii") as fh:
        token = fh.read().strip()
    status, _, body = fetch(e, "/_gateway/metrics", {**remote,
                                                      "Authorization": f"Bearer {token}"})
    assert status == 200 and b"gateway_http_request_duration_seconds_bucket" in body
    assert fetch(e, "/_gateway/metrics", method="POST", data=b"")[0] == 405


def test_rejections_are_counted_by_reason(metrics_estate: Callable[..., Estate]) -> None:
    e = metrics_estate(extra="[http.limits]\nmax_uri = 64\nmax_body = 10\n")
    assert fetch(e, "/two/" + "a" * 100)[0] == 414
    assert fetch(e, "/two/x", method="POST", data=b"y" * 50)[0] == 413

    def counted() -> bool:
        _, _, body = fetch(e, "/_gateway/metrics")
        text = body.decode()
        return 'gateway_http_rejections_total{code="414",reason="uri_too_long"} 1.0' in text \
            and 'gateway_http_rejections_total{code="413",reason="too_large"} 1.0' in text
    wait_until(counted, timeout=10.0, interval=0.2, what="both rejections counted")
