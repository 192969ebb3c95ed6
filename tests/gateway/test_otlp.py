"""gateway.metrics.otlp: the OTLP JSON a span becomes, and a bounded queue that never blocks.

Export over HTTP to a receiver is covered end to end in
tests/integration/http/test_otlp_export.py.
"""

from __future__ import annotations

import json

import pytest

from gateway.errors import ConfigError
from gateway.metrics import otlp
from gateway.metrics.config import ObservabilityConfig
from gateway.metrics.otlp import SpanExporter

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_span_in_otlp_json() -> None:
    spans = SpanExporter("http://127.0.0.1:9/v1/traces", service_name="gw")
    spans.add(TRACE, "00f067aa0ba902b7", "", "GET /a", 1.5, 1.75, 503,
              {"http.response.status_code": 503, "gateway.route": "/a", "gateway.migration": "",
               "cached": False})
    doc = json.loads(spans.payload(list(spans.spans)))
    (rs,) = doc["resourceSpans"]
    assert rs["resource"] == {"attributes": [{"key": "service.name",
                                              "value": {"stringValue": "gw"}}]}
    (span,) = rs["scopeSpans"][0]["spans"]
    assert span["traceId"] == TRACE and "parentSpanId" not in span
    assert (span["startTimeUnixNano"], span["endTimeUnixNano"]) == ("1500000000", "1750000000")
    assert span["status"] == {"code": otlp.STATUS_ERROR}   # 5xx: an error server span
    assert span["attributes"] == [
        {"key": "http.response.status_code", "value": {"intValue": "503"}},
        {"key": "gateway.route", "value": {"stringValue": "/a"}},
        {"key": "cached", "value": {"boolValue": False}}]   # empty values left out
    spans.spans.clear()


def test_a_full_queue_drops_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp, "MAX_QUEUE", 2)
    spans = SpanExporter("http://127.0.0.1:9/v1/traces")
    monkeypatch.setattr(spans, "_thread", object())   # no export thread: the queue only fills
    for i in range(5):
        spans.add(TRACE, f"{i + 1:016x}", "", "GET", 0.0, 1.0, 200, {})
    assert len(spans.spans) == 2 and spans.dropped == 3


def test_endpoint_must_be_an_http_url() -> None:
    with pytest.raises(ConfigError, match="otlp_endpoint"):
        ObservabilityConfig(metrics=False, otlp_endpoint="127.0.0.1:4318")
    assert ObservabilityConfig(metrics=False, otlp_endpoint="http://127.0.0.1:4318").enabled
