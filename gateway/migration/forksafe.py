"""Locks that a forked child gets fresh.

A lock that one of the parent's threads holds at the moment of a fork stays
held in the child forever: that thread does not exist there to release it.
The migration store's objects are shared by a process's threads and may be
inherited by a child (a front forks its workers), so their locks are renewed
in the child::

    class Copy:
        def __init__(self) -> None:
            self._lock = fork_safe_lock(self, "_lock")   # a new Lock in every child
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any


def fork_safe_lock(owner: object, attr: str) -> threading.Lock:
    """A new lock, replaced by another as ``owner.<attr>`` in each forked child.

    Only a weak reference to ``owner`` is kept: a closed store is not held alive.
    """
    ref = weakref.ref(owner)

    def renew() -> None:
        obj = ref()
        if obj is not None:
            setattr(obj, attr, threading.Lock())

    os.register_at_fork(after_in_child=renew)
    return threading.Lock()


def fork_safe_pool(client: Any) -> None:
    """Renew the lock of ``client``'s connection pool in each forked child.

    redis-py resets an inherited pool on its first use in the child, under the
    pool's own lock; when a parent's thread (the state copy's watcher) held
    that lock at the fork, the child's first Redis call waits forever. A new
    lock before that first use avoids it.
    """
    ref = weakref.ref(client)

    def renew() -> None:
        pool = getattr(ref(), "connection_pool", None)
        if pool is not None and hasattr(pool, "_lock"):
            pool._lock = threading.RLock()

    os.register_at_fork(after_in_child=renew)
