"""The access log: one line per request, nginx "combined" plus the gateway's fields, or JSON.

::

    log = AccessLog("/srv/gw/var/run/logs/access.log", "combined")
    log.write(entry)          # an Entry; buffered in memory
    log.flush()               # one write(2) of whole lines; on a timer and at shutdown
    log.close()

A combined line (nginx ``log_format combined``, then ``key=value`` pairs)::

    127.0.0.1 - - [03/Dec/2026:13:34:38 +0000] "GET /v2/hello HTTP/1.1" 200 12 "-" "curl/8.5"
      rid=6f0c... route=/v2 backend=wsgi service=v2 runtime=py3 upstream=broker:v2
      migration=- duration=0.004 ttfb=0.003 in=0 trace=4bf92f35...

(one line in the file). ``duration`` is seconds from the request head to
the last body byte; ``ttfb`` to the response head, i.e. the upstream's
answer time plus the front's routing; ``in`` the request body bytes. The
JSON variant has the same fields under these names, plus ``time`` in
RFC 3339. As nginx does, ``"`` ``\\`` and bytes outside printable ASCII in
quoted fields are written ``\\xHH``, so a client cannot forge a line.

Why batched: every front worker appends to the same file with
``O_APPEND``; a batch of whole lines goes out in one ``write(2)``, so lines
from two workers never interleave, and the request path only appends to a
list. The batch is written every ``FLUSH_S`` by the worker's loop, when it
passes ``MAX_BUFFER`` bytes, and at shutdown.

Rotation needs no signal: before each batch the path is looked up again, and
when the file there is not the one held open (logrotate moved it away), the
new path is opened, as nginx does on ``USR1``; the moved file got every line
written before.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote

log = logging.getLogger(__name__)

MAX_BUFFER = 64 * 1024
_ESCAPE = {c: f"\\x{c:02X}" for c in (*range(0x20), *range(0x7F, 0x100), 0x22, 0x5C)}


def escape(text: str) -> str:
    """``text`` with ``"``, ``\\`` and non-printable or non-ASCII characters as ``\\xHH``."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if code in _ESCAPE:
            out.append(_ESCAPE[code])
        elif code > 0xFF:
            out.extend(f"\\x{b:02X}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


@dataclass(slots=True)
class Entry:
    """One finished request, as the access log and the metrics see it."""

    remote: str
    user: str
    when: float          # time.time() at the request head
    method: str
    target: str
    protocol: str
    status: int
    bytes_out: int
    referer: str
    agent: str
    request_id: str
    route: str
    backend: str
    service: str
    runtime: str
    upstream: str
    migration: str
    duration: float
    ttfb: float
    bytes_in: int
    trace_id: str


class _Clock:
    """nginx's ``$time_local`` for a timestamp, formatted once per second."""

    def __init__(self) -> None:
        self.second = -1
        self.text = ""
        self.utc_second = -1
        self.utc_text = ""

    def local(self, when: float) -> str:
        second = int(when)
        if second != self.second:
            self.second = second
            self.text = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
        return self.text

    def utc(self, when: float) -> str:
        """RFC 3339 in UTC with milliseconds (``2026-12-03T13:34:38.123Z``)."""
        second = int(when)
        if second != self.utc_second:
            self.utc_second = second
            self.utc_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self.utc_text}.{int((when - second) * 1000):03d}Z"


_clock = _Clock()


def _plain(text: str) -> bool:
    """Whether ``text`` needs no escaping: printable ASCII, no ``"`` or ``\\`` (then
    :func:`escape` leaves it as it is)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def combined(e: Entry) -> str:
    """The nginx combined line of ``e``, then the gateway's fields."""
    request = f"{e.method} {e.target} {e.protocol}" if e.method else "-"
    user, referer, agent, upstream = e.user, e.referer, e.agent, e.upstream
    # One check of the escaped fields together, rather than a call of escape() for each:
    # nearly every line has nothing to escape.
    if not _plain(request + user + referer + agent + upstream):
        request, user, referer = escape(request), escape(user), escape(referer)
        agent, upstream = escape(agent), escape(upstream)
    return (f'{e.remote or "-"} - {user or "-"} '
            f'[{_clock.local(e.when)}] "{request}" {e.status} {e.bytes_out} '
            f'"{referer or "-"}" '
            f'"{agent or "-"}" rid={e.request_id or "-"} '
            f"route={e.route or '-'} backend={e.backend or '-'} service={e.service or '-'} "
            f"runtime={e.runtime or '-'} upstream={upstream or '-'} "
            f"migration={e.migration or '-'} duration={e.duration:.6f} ttfb={e.ttfb:.6f} "
            f"in={e.bytes_in} trace={e.trace_id or '-'}\n")


def as_json(e: Entry) -> str:
    """The JSON line of ``e``: one object, keys sorted.

    Assembled by hand around the C string encoder, inline (no helper call per
    field): ``json.dumps`` of a 22-key dict costs more than the rest of the
    request's bookkeeping.
    """
    stamp = _clock.utc(e.when)
    return (f'{{"backend":{_quote(e.backend) if e.backend else "null"}'
            f',"bytes_received":{e.bytes_in}'
            f',"bytes_sent":{e.bytes_out}'
            f',"duration":{e.duration:.6f}'
            f',"method":{_quote(e.method) if e.method else "null"}'
            f',"migration":{_quote(e.migration) if e.migration else "null"}'
            f',"protocol":{_quote(e.protocol) if e.protocol else "null"}'
            f',"referer":{_quote(e.referer) if e.referer else "null"}'
            f',"remote_addr":{_quote(e.remote)}'
            f',"remote_user":{_quote(e.user) if e.user else "null"}'
            f',"request_id":{_quote(e.request_id)}'
            f',"route":{_quote(e.route) if e.route else "null"}'
            f',"runtime":{_quote(e.runtime) if e.runtime else "null"}'
            f',"service":{_quote(e.service) if e.service else "null"}'
            f',"status":{e.status}'
            f',"target":{_quote(e.target) if e.target else "null"}'
            f',"time":"{stamp}"'
            f',"trace_id":{_quote(e.trace_id) if e.trace_id else "null"}'
            f',"ttfb":{e.ttfb:.6f}'
            f',"upstream":{_quote(e.upstream) if e.upstream else "null"}'
            f',"user_agent":{_quote(e.agent) if e.agent else "null"}'
            '}\n')


FORMATS = {"combined": combined, "json": as_json}


def _nothing() -> None:
    return None


class AccessLog:
    """A batched, append-only log file (``"-"``: standard output) for one process."""

    def __init__(self, path: str, fmt: str = "combined") -> None:
        self.path = path
        self.format = FORMATS[fmt]
        self.lines: list[str] = []
        self.size = 0
        self.dropped = 0
        self.fd = -1
        self.inode = (0, 0)
        # Called before a batch is written: whoever buffers requests
        # (gateway.metrics.records) formats their lines first, so none is left behind.
        self.before: Callable[[], None] = _nothing

    def _open(self) -> int:
        if self.path == "-":
            self.fd = 1
            return self.fd
        if self.fd >= 0:
            try:
                st = os.stat(self.path)
                moved = (st.st_dev, st.st_ino) != self.inode
            except FileNotFoundError:
                moved = True
            if not moved:
                return self.fd
            os.close(self.fd)   # rotated: the lines so far are in the moved file
            self.fd = -1
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o750, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                          0o640)
        st = os.fstat(self.fd)
        self.inode = (st.st_dev, st.st_ino)
        return self.fd

    def write(self, entry: Entry) -> None:
        """Buffer the line of ``entry``; write the batch once it is large."""
        line = self.format(entry)
        self.lines.append(line)
        self.size += len(line)
        if self.size >= MAX_BUFFER:
            self.flush()

    def extend(self, lines: list[str]) -> None:
        """Buffer ``lines`` (formatted already); write the batch once it is large."""
        self.lines += lines
        self.size += sum(map(len, lines))
        if self.size >= MAX_BUFFER:
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines in one ``write(2)``; never raises (a full disk drops them)."""
        self.before()
        if not self.lines:
            return
        data = "".join(self.lines).encode("utf-8", "replace")
        count = len(self.lines)
        self.lines, self.size = [], 0
        try:
            fd = self._open()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            if not self.dropped:
                log.warning("access log %s: cannot write: %s", self.path, exc)
            self.dropped += count

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        if self.fd > 2:
            os.close(self.fd)
        self.fd = -1
