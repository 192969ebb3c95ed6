"""Optional OpenTelemetry export: one span per request the front answers, over OTLP/HTTP.

::

    [tracing]
    otlp_endpoint = "http://127.0.0.1:4318/v1/traces"   # off when absent or ""

    spans = SpanExporter("http://127.0.0.1:4318/v1/traces")   # one per front worker
    spans.add(trace_id, span_id, parent_id, name, start, end, status, attributes)
    spans.close()                                              # flushes, within a deadline

The span is the gateway's own hop: its id is the parent the gateway sends
downstream in ``traceparent`` (the py2/py3 worker, the upstream, the queue
job name it as parent), and its parent is the client's span when the client
sent one. So a collector shows client -> gateway -> worker as one tree.

Why no SDK: the OTLP/HTTP protocol accepts JSON (the OTLP specification,
"OTLP/HTTP", ``Content-Type: application/json``), which needs nothing beyond
the standard library; the SDK's exporter would add protobuf and a dozen
packages to every front. Spans are batched in memory (at most ``MAX_QUEUE``;
beyond that they are dropped and counted, never blocking a request) and
posted by one thread every ``EXPORT_S`` with a ``TIMEOUT_S`` deadline; a
collector that is down costs dropped spans and one warning, nothing else.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections import deque
from typing import Any

log = logging.getLogger(__name__)

EXPORT_S = 1.0
TIMEOUT_S = 2.0
MAX_QUEUE = 4096
MAX_BATCH = 512
SCOPE = {"name": "gateway", "version": "1"}
SPAN_KIND_SERVER = 2
STATUS_UNSET, STATUS_ERROR = 0, 2


def _attr(key: str, value: Any) -> dict[str, Any]:
    """One OTLP ``KeyValue`` (JSON encoding: 64-bit integers are strings)."""
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


class SpanExporter:
    """Batches finished spans and posts them to an OTLP/HTTP endpoint from one thread."""

    def __init__(self, endpoint: str, service_name: str = "gateway") -> None:
        self.endpoint = endpoint
        self.resource = {"attributes": [_attr("service.name", service_name)]}
        self.spans: deque[dict[str, Any]] = deque()
        self.dropped = 0
        self.failed = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trace_id: str, span_id: str, parent_id: str, name: str, start_s: float,
            end_s: float, status: int, attributes: dict[str, Any]) -> None:
        """Queue one server span (times in seconds since the epoch); never blocks."""
        if len(self.spans) >= MAX_QUEUE:
            self.dropped += 1
            return
        span = {
            "traceId": trace_id, "spanId": span_id, "name": name, "kind": SPAN_KIND_SERVER,
            "startTimeUnixNano": str(int(start_s * 1e9)),
            "endTimeUnixNano": str(int(end_s * 1e9)),
            "attributes": [_attr(k, v) for k, v in attributes.items() if v not in ("", None)],
            # OpenTelemetry's HTTP semantic conventions: a server span is an error on 5xx only.
            "status": {"code": STATUS_ERROR if status >= 500 else STATUS_UNSET},
        }
        if parent_id:
            span["parentSpanId"] = parent_id
        self.spans.append(span)   # deque.append is atomic: the event loop never waits
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(EXPORT_S)
            self._wake.clear()
            self.export()

    def export(self) -> None:
        """Post what is queued, in batches of at most ``MAX_BATCH``; never raises."""
        while self.spans:
            batch: list[dict[str, Any]] = []
            while self.spans and len(batch) < MAX_BATCH:
                batch.append(self.spans.popleft())
            self._post(batch)

    def payload(self, batch: list[dict[str, Any]]) -> bytes:
        """The ``ExportTraceServiceRequest`` of ``batch`` in OTLP's JSON encoding."""
        return json.dumps({"resourceSpans": [{
            "resource": self.resource,
            "scopeSpans": [{"scope": SCOPE, "spans": batch}]}]},
            separators=(",", ":")).encode()

    def _post(self, batch: list[dict[str, Any]]) -> None:
        req = urllib.request.Request(self.endpoint, data=self.payload(batch), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                resp.read()
            self.failed = False
        except (OSError, urllib.error.URLError, ValueError) as exc:
            self.dropped += len(batch)
            if not self.failed:   # once per outage, not once per batch
                log.warning("OTLP export to %s failed: %s (dropping spans)", self.endpoint, exc)
            self.failed = True

    def close(self) -> None:
        """Stop the thread and post what is left (each post bounded by ``TIMEOUT_S``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(TIMEOUT_S + EXPORT_S)
        self.export()
