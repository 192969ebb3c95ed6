"""One log line per process when the migration store stops answering, one when it answers again.

Several parts of a front process use the store: the request path's state
copy, the recorder with its error-budget judge, and the broker's split
writer. Each notices an outage on its own, most of them every second; a line
from each, every time, would bury the one fact an operator needs. They all
report to the store's :class:`Outage` instead::

    store.outage.down("migration store redis://10.0.0.5:6379/0 unreachable: ...")  # logged
    store.outage.down("error budgets not judged: ...")        # already down: not logged
    store.outage.up()                                          # "answers again", logged once

The record is per process: a forked child starts with none (it has not said
anything yet).
"""

from __future__ import annotations

import logging
import os

from gateway.migration.forksafe import fork_safe_lock

log = logging.getLogger(__name__)


class Outage:
    """Whether this process has said that the store ``where`` is unreachable."""

    def __init__(self, where: str) -> None:
        self.where = where
        self._lock = fork_safe_lock(self, "_lock")
        self._pid = os.getpid()
        self._down = False

    @property
    def is_down(self) -> bool:
        """True from the first :meth:`down` until the next :meth:`up` (in this process)."""
        with self._lock:
            return self._down and self._pid == os.getpid()

    def down(self, message: str) -> bool:
        """Log ``message`` (a warning) unless this process already said the store is down.

        True when it was logged.
        """
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self._down = os.getpid(), False
            if self._down:
                return False
            self._down = True
        log.warning("%s", message)
        return True

    def up(self) -> None:
        """The store answered: say so once if this process had said it was down."""
        with self._lock:
            was = self._down and self._pid == os.getpid()
            self._pid, self._down = os.getpid(), False
        if was:
            log.warning("migration store %s answers again: serving its states", self.where)
