"""The noise memory: paths where the control's own two answers differed.

When the candidate differs from the control, the control may be the one that
is not deterministic (a timestamp, a random id). Asking the control again and
comparing its two answers tells: the paths that differ there are noise. This
memory keeps those paths per migration, in one process, so a difference it
already explains is re-checked only now and then (``refresh``) instead of
doubling the control's load::

    memory = NoiseMemory()
    if memory.wanted(cfg, paths):                  # paths: the normalised difference paths
        memory.learn(cfg, paths_between_the_control_answers)

The front's shadow engine (:mod:`gateway.migration.engine`) and the broker
comparer (:mod:`gateway.migration.brokercompare`) each hold one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from gateway.migration.config import MigrationConfig
from gateway.migration.diffs import is_noise

NOISE_REFRESH = 0.05


class NoiseMemory:
    """Per migration, the difference paths learned as noise in this process."""

    def __init__(self, refresh: float = NOISE_REFRESH,
                 rand: Callable[[], float] = random.random) -> None:
        self.refresh = refresh
        self.rand = rand
        self.noisy: dict[str, set[str]] = {}

    def wanted(self, cfg: MigrationConfig, paths: set[str]) -> bool:
        """Whether to ask the control again to explain these difference paths.

        Only a difference needs explaining: when the candidate agrees, nothing is
        asked. A difference whose every path is known noise is re-checked only
        with probability ``refresh``, which keeps the learned noise fresh. The cap
        marker ``...`` is never known noise (:func:`~gateway.migration.diffs.is_noise`).
        """
        if not cfg.noise or not paths:
            return False
        known = self.noisy.setdefault(cfg.name, set())
        return not is_noise(sorted(paths), known) or self.rand() < self.refresh

    def learn(self, cfg: MigrationConfig, paths: Iterable[str]) -> None:
        """Remember paths that differed between two answers of the control."""
        self.noisy.setdefault(cfg.name, set()).update(paths)
