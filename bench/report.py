"""Result tables: every figure next to a baseline measured in the same run.

::

    t = Table("codec", unit="ops/s", baseline="json.dumps")
    t.add("json.dumps", 100000.0)
    t.add("codec.encode", 80000.0, target=">= 0.5x")
    print(t.markdown())
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Row:
    """One measured figure: a name, its value and an optional target text."""

    name: str
    value: float
    target: str = ""
    extra: str = ""


@dataclass
class Table:
    """A benchmark's rows, rendered with ratios against the baseline row."""

    title: str
    unit: str
    baseline: str
    higher_is_better: bool = True
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: float, target: str = "", extra: str = "") -> None:
        """Append a row."""
        self.rows.append(Row(name, value, target, extra))

    def ratio(self, name: str) -> float:
        """The named row's value divided by the baseline's."""
        base = self._value(self.baseline)
        return self._value(name) / base if base else float("nan")

    def _value(self, name: str) -> float:
        for row in self.rows:
            if row.name == name:
                return row.value
        raise KeyError(name)

    def markdown(self) -> str:
        """The table as GitHub markdown."""
        lines = [f"### {self.title}", "",
                 f"| path | {self.unit} | ratio vs {self.baseline} | target | note |",
                 "|---|---:|---:|---|---|"]
        for row in self.rows:
            lines.append(f"| {row.name} | {row.value:,.1f} | {self.ratio(row.name):.3f}x"
                         f" | {row.target} | {row.extra} |")
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines)


def rate(fn: Callable[[], object], seconds: float, batch: int = 100) -> float:
    """Calls per second of ``fn``, measured over about ``seconds`` (bounded)."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn()
        count += batch
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def paired(fns: dict[str, Callable[[], object]], seconds: float, rounds: int) -> dict[str, float]:
    """Median rate of each function over interleaved rounds, so drift hits all alike."""
    results: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            results[name].append(rate(fn, seconds / rounds))
    return {name: statistics.median(vals) for name, vals in results.items()}
