"""Finished requests, recorded raw on the request path and accounted for in batches.

::

    records = Records(metrics, log, runtimes)
    records.add(record)        # per request: one tuple of values already at hand
    records.drain()            # counts and log lines of everything recorded so far

Why batches: counting a request (its labels, the histogram bucket) and
formatting its log line cost two to three times as much when they run
between two requests' worth of routing, envelope building and socket calls
as when the same work runs back to back for many requests (measured in
``bench/observe_stack.py`` against ``bench observe``'s bookkeeping table):
interleaved with a long path, their code and data fall out of the CPU's
caches every time. So a request only appends one tuple (:data:`FIELDS`);
the accounting runs over the whole buffer at once, when it holds
``BATCH`` records, on the worker's timer (every ``DRAIN_S``), and before
the counts or the log are read or written out (a scrape, a flush, shutdown),
so counts stay exact and no line is lost.

Labels and the metric's count list are looked up once per distinct route,
migration choice (service, runtime, upstream), method and status, and kept
until the counts are flushed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from gateway.metrics.accesslog import AccessLog, Entry
from gateway.metrics.http import BUCKETS, METHODS, HttpMetrics

BATCH = 256       # records; about 0.1 s of one busy front worker
DRAIN_S = 0.1     # the worker's timer: a quiet worker's records wait at most this long
# Problem codes the front answers when it refuses a request itself (limits, framing, a
# strict path, Host, admission, slow or greedy clients): gateway_http_rejections_total.
REFUSALS = frozenset({"too_large", "uri_too_long", "header_too_large", "headers_too_large",
                      "bad_framing", "bad_path", "bad_request", "truncated_body",
                      "host_not_allowed", "expectation_failed", "overloaded",
                      "request_timeout", "too_many_connections"})
# One record, in this order (``method`` None: a refusal by the HTTP parser layer, which has
# no request line and no route; it counts as a rejection only). ``route``: the matched
# gateway.http.config.Route or None; ``gateway``: the request was the gateway's own
# (/_gateway/...); ``target``: RAW_URI, or the scope's raw path (bytes) without an environ;
# the other strings may be None when the front did not set them.
FIELDS = ("when", "duration", "ttfb", "status", "bytes_in", "bytes_out", "code", "method",
          "protocol", "remote", "route", "service", "runtime", "upstream", "migration",
          "request_id", "trace_id", "target", "auth", "referer", "agent", "path", "gateway")
Labels = tuple[str, str, str, str, str]
Row = tuple[Any, Labels, "list[float] | None", bool]
NO_ROUTE: Labels = ("", "", "", "", "")   # refused before a route matched (400, 404, ...)
GATEWAY: Labels = ("/_gateway", "gateway", "", "gateway", "")
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2"}


class Records:
    """One process's buffer of finished requests and the batch that accounts for them."""

    def __init__(self, metrics: HttpMetrics | None, log: AccessLog | None,
                 runtimes: Mapping[str, str]) -> None:
        self.metrics = metrics
        self.log = log
        self.runtimes = runtimes
        self.pending: list[tuple[Any, ...]] = []
        # Bound once: the request path's only call into this object.
        self.add = self.pending.append
        self._labels: dict[tuple[int, Any, Any, Any], tuple[Any, Labels]] = {}
        self._rows: dict[tuple[Any, ...], Row] = {}
        self._counts: Any = None    # the metrics' count dict the rows' lists belong to
        self._codes = {status: str(status) for status in range(100, 600)}

    def drain(self) -> None:
        """Count and format every record buffered so far (exceptions are the caller's)."""
        pending = self.pending
        if not pending:
            return
        # Taken and emptied first: a log flush inside the batch drains again, and must
        # find nothing left to do rather than count these twice.
        batch = pending.copy()
        pending.clear()
        metrics, log = self.metrics, self.log
        if metrics is not None and metrics.counts is not self._counts:
            self._rows.clear()   # flushed since: the rows' count lists are no longer its own
            self._counts = metrics.counts
        fmt = log.format if log is not None else None
        lines: list[str] = []
        line = lines.append
        rows, row_of = self._rows, self.row
        for (when, duration, ttfb, status, bytes_in, bytes_out, code, method, protocol,
             remote, route, service, runtime, upstream, migration, rid, trace, target, auth,
             referer, agent, path, gateway) in batch:
            if method is None:
                entry = self.refusal(when, status, code, remote, rid)
                if fmt is not None:
                    line(fmt(entry))
                continue
            # Keyed by the method's label, not the method: a client picks the method, and a
            # row per made-up method would grow without bound.
            label = method if method in METHODS else "other"
            row = rows.get((id(route), service, runtime, upstream, label, status))
            if row is None or row[0] is not route or row[3]:
                row = row_of(route, service, runtime, upstream, path, gateway, label, status)
            labels, slots = row[1], row[2]
            if slots is not None:
                # HttpMetrics.request, inline: [requests, bytes in, bytes out, buckets..., sum]
                slots[0] += 1
                slots[1] += bytes_in
                slots[2] += bytes_out
                slots[3 + bisect_left(BUCKETS, duration)] += 1
                slots[-1] += duration
                if code and code in REFUSALS:
                    metrics.rejection(code, str(status))  # type: ignore[union-attr]
            if fmt is not None:
                # Positional: keyword arguments to a 21-field constructor cost more than
                # the line itself.
                line(fmt(Entry(
                    str(remote[0] or "") if remote else "",
                    _basic_user(auth) if auth else "", when, method,
                    target if target.__class__ is str else (target or b"").decode("latin-1"),
                    _PROTOCOLS.get(protocol) or "HTTP/" + protocol,
                    status, bytes_out, referer or "", agent or "", rid or "", *labels,
                    migration or "", duration, ttfb, bytes_in, trace or "")))
        if log is not None and lines:
            log.extend(lines)

    def row(self, route: Any, service: str | None, runtime: str | None, upstream: str | None,
            path: str | None, gateway: bool, label: str, status: int) -> Row:
        """(route, labels, the metric's count list or None, whether the labels depend on
        the path) of a request; kept per distinct route, migration choice, method and
        status."""
        labels = self.labels_of(route, service, runtime, upstream, path, gateway)
        slots = None if self.metrics is None else self.metrics.slots(
            (label, self._codes.get(status) or str(status), *labels[:4]))
        # POST <rpc prefix>/<service>/...: the service label comes from the path.
        by_path = route is not None and route.backend == "rpc" and not service
        row: Row = (route, labels, slots, by_path)
        if not by_path:
            # The route is held in the row, so its id stays its own while the row lives.
            self._rows[(id(route), service, runtime, upstream, label, status)] = row
        return row

    def refusal(self, when: float, status: int, code: str, remote: Any, rid: str) -> Entry:
        """Count a refusal of the parser layer; its log entry: no request line (``"-"``),
        no route."""
        if self.metrics is not None:
            self.metrics.rejection(code, str(status))
        return Entry(
                remote=str(remote[0]) if remote else "", user="", when=when, method="",
                target="", protocol="", status=status, bytes_out=0, referer="", agent="",
                request_id=rid, route="", backend="", service="", runtime="", upstream="",
                migration="", duration=0.0, ttfb=0.0, bytes_in=0, trace_id="")

    def labels_of(self, route: Any, service: str | None, runtime: str | None,
                  upstream: str | None, path: str | None, gateway: bool) -> Labels:
        """(route, backend, service, runtime, upstream) of a request, looked up once per
        distinct route and migration choice."""
        if route is None:
            return GATEWAY if gateway else NO_ROUTE
        if route.backend == "rpc" and not service:
            return self.compute(route, service, runtime, upstream, path)
        key = (id(route), service, runtime, upstream)
        hit = self._labels.get(key)
        if hit is not None and hit[0] is route:
            return hit[1]
        labels = self.compute(route, service, runtime, upstream, path)
        self._labels[key] = (route, labels)   # the route is held, so its id stays its own
        return labels

    def compute(self, route: Any, service: str | None, runtime: str | None,
                upstream: str | None, path: str | None) -> Labels:
        """The labels of a matched route (a migration's choice of service, runtime and
        upstream overrides the route's own)."""
        backend = route.backend
        service = service or route.service
        if backend == "rpc" and not service:
            # POST <prefix>/<service>/<method>: only configured names, so the label is bounded.
            rest = (path or "")[len(route.prefix.rstrip("/")):]
            name = rest.lstrip("/").split("/", 1)[0]
            service = name if name in self.runtimes else ("other" if name else "")
        runtime = runtime or self.runtimes.get(service or "") or \
            ("http" if backend == "http" else backend)
        if backend == "http":
            upstream = upstream or route.upstream
        elif backend == "static":
            upstream = ""
        else:
            upstream = f"broker:{service}" if service else "broker"
        return route.prefix, backend, service or "", runtime or "", upstream or ""


def _basic_user(auth: str) -> str:
    """The user name of HTTP Basic credentials (nginx's ``$remote_user``), else ""."""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "basic":
        return ""
    import base64
    import binascii
    try:
        return base64.b64decode(value.strip(), validate=True).decode("latin-1").split(":")[0]
    except (binascii.Error, ValueError):
        return ""
