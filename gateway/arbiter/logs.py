"""Process output, foreman / honcho style: one colour-prefixed line per child line.

::

    sink = LogSink(sys.stdout, fmt="text", color=True)
    sink.emit("arbiter", 0, "starting broker")
    buf = LineBuffer()
    for line in buf.feed(b"partial"), buf.feed(b" line\\nnext"):
        ...
    # 12:00:01 broker.0   | listening on ipc:///run/broker.ipc
    # {"ts": "2026-01-01T12:00:01.123Z", "proc": "broker.0", "pid": 4242, "line": "..."}
"""

from __future__ import annotations

import json
import time
from typing import TextIO

COLORS = (36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91)


class LineBuffer:
    """Splits a byte stream into complete text lines."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> list[str]:
        """Add bytes; return the lines they complete."""
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        if len(self.pending) > 65536:  # a child that never ends its line
            lines.append(self.pending)
            self.pending = b""
        return [ln.rstrip(b"\r").decode("utf-8", "replace") for ln in lines]

    def flush(self) -> list[str]:
        """The unterminated tail, if any (at end of file)."""
        tail, self.pending = self.pending, b""
        return [tail.decode("utf-8", "replace")] if tail else []


class LogSink:
    """Writes every process's lines to one stream, as text or JSON lines."""

    def __init__(self, stream: TextIO, fmt: str = "text", color: bool = False) -> None:
        self.stream = stream
        self.fmt = fmt
        self.color = color
        self.colors: dict[str, int] = {}
        self.width = 12
        self.dropped = 0

    def _colour(self, proc: str) -> int:
        base = proc.rsplit(".", 1)[0]
        if base not in self.colors:
            self.colors[base] = COLORS[len(self.colors) % len(COLORS)]
        return self.colors[base]

    def emit(self, proc: str, pid: int, line: str) -> None:
        """Write one line from ``proc`` (``name.replica``; ``arbiter`` for our own)."""
        now = time.time()
        if self.fmt == "json":
            ms = int(now * 1000) % 1000
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{ms:03d}Z"
            out = json.dumps({"ts": ts, "proc": proc, "pid": pid, "line": line},
                             ensure_ascii=False)
        else:
            self.width = max(self.width, len(proc))
            prefix = f"{time.strftime('%H:%M:%S', time.localtime(now))} {proc:<{self.width}} |"
            if self.color:
                prefix = f"\x1b[{self._colour(proc)}m{prefix}\x1b[0m"
            out = f"{prefix} {line}"
        try:
            self.stream.write(out + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            # Nobody reads our output any more (EPIPE), or the log file's disk is full
            # (ENOSPC): the line is lost, supervision goes on, and the status counts it.
            self.dropped += 1
