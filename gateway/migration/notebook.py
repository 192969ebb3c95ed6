"""The lab notebook: what the shadow engine writes down, handed to the store's recorder.

Two kinds of entries, both queued on the process's
:class:`~gateway.migration.background.Recorder` (which batches them into the
store off the request path):

* an :class:`~gateway.migration.model.Observation` per answer served or
  copied (runtime, role ``serve``/``shadow``/``noise``, latency, status);
* a :class:`~gateway.migration.model.Comparison` per request that was
  compared, or that should have been and was not (``uncompared``, with why)::

    notebook = Notebook(recorder.add, time.time)
    notebook.observe("notes", "py3", "shadow", started, 200, error=False)
    notebook.uncompared("notes", rid, "py2", "shadow_concurrency reached: copy skipped",
                        "GET", "/api/notes/1")
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.migration.model import Comparison, Observation


class Notebook:
    """Writes observations and comparisons for the recorder."""

    def __init__(self, add: Callable[[Observation | Comparison], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.add = add
        self.clock = clock

    def observe(self, name: str, runtime: str, role: str, started: float, status: int,
                error: bool) -> None:
        """One answer of ``runtime``; ``started`` is its ``time.monotonic()`` start."""
        self.add(Observation(
            name=name, at=self.clock(), runtime=runtime, role=role,
            ms=(time.monotonic() - started) * 1000.0, status=status,
            error=error or status >= 500))

    def uncompared(self, name: str, rid: str, control: str, why: str, method: str,
                   path: str) -> None:
        """A request that should have been compared and was not."""
        self.add(Comparison(
            name=name, at=self.clock(), rid=rid, primary=control, outcome="uncompared",
            paths=(), noise_paths=(), noise_checked=False, fields=[], sample={"reason": why},
            method=method, path=path))

    def compared(self, comparison: Comparison) -> None:
        """One finished comparison."""
        self.add(comparison)
