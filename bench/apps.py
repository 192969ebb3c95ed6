"""Bench-only WSGI apps: the notes port with a delay the benchmark can change while it runs.

``slow_notes`` answers exactly like :mod:`py3_services.notes`, after sleeping
the number of milliseconds written in the file named by ``BENCH_DELAY_FILE``
(read on every request, so one write turns a healthy candidate into a slow
one without a restart; a missing or unreadable file means no delay)::

    [services.notes3]
    runtime = "py3"
    app = "bench.apps:slow_notes"
    env = { LEGACY_DB = "/tmp/x/legacy.sqlite3", BENCH_DELAY_FILE = "/tmp/x/delay_ms" }

    set_delay("/tmp/x/delay_ms", 40.0)      # from the benchmark: 40 ms per request
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from py3_services.notes import app as notes_app

DELAY_ENV = "BENCH_DELAY_FILE"


def delay_ms(path: str | None) -> float:
    """The delay in ``path`` in milliseconds (0 when unset, missing or not a number)."""
    if not path:
        return 0.0
    try:
        with open(path, encoding="ascii") as fh:
            value = float(fh.read().strip() or 0.0)
    except (OSError, ValueError):
        return 0.0
    return max(0.0, value)


def set_delay(path: str, ms: float) -> None:
    """Write the delay atomically, so a request never reads a half-written number."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(f"{ms:.3f}\n")
    os.replace(tmp, path)


def slow_notes(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """:func:`py3_services.notes.app` after the configured delay."""
    delay = delay_ms(os.environ.get(DELAY_ENV))
    if delay:
        time.sleep(delay / 1000.0)  # the slow port being simulated, not a synchronisation
    result: Iterable[bytes] = notes_app(environ, start_response)
    return result
