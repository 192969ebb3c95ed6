"""The copy of every migration state that one process keeps while the store is in Redis.

The data plane asks for the state on every request, so it must not wait on
Redis. A :class:`StateCopy` holds the states in memory; a thread refreshes
them when another gateway's change is announced on the store's pub/sub
channel, and polls the store's change counter every ``POLL_S`` in case a
notice was lost (a reconnect, a failover)::

    copy = StateCopy(client, "gw:mig:changes", "gw:mig:version", read_all, outage)
    copy.changed()        # per thread: True when a newer copy arrived (starts the thread)
    copy.states()         # the last copy (None before the first read)
    copy.remember(state, entered)   # this process's own write, at once

In a forked child the first :meth:`StateCopy.changed` starts the child's own
copy and thread: the parent's thread does not cross a fork, so the copy it
left would never move again.

While Redis is down the copy stays as it was: the last known states. The
thread reports the outage and the recovery to the store's
:class:`~gateway.migration.outage.Outage` (one line each per process).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import redis

from gateway.migration.forksafe import fork_safe_lock
from gateway.migration.model import MigrationState, StoreError
from gateway.migration.outage import Outage

POLL_S = 0.5
WAKE_S = 0.2  # how often the thread looks at its stop flag between notices

States = dict[str, tuple[MigrationState, float]]  # name -> (state, when its mode was entered)


class StateCopy:
    """Every state in memory, refreshed by one thread per process on notice or poll."""

    def __init__(self, client: redis.Redis, channel: str, counter: str,
                 read_all: Callable[[], States], outage: Outage) -> None:
        self._client = client
        self.channel = channel
        self._counter = counter
        self._read_all = read_all
        self._outage = outage
        # The parent's watcher may hold the lock at a fork: the child gets its own.
        self._lock = fork_safe_lock(self, "_lock")
        self._tls = threading.local()
        self._states: States | None = None
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()
        self._closed = False

    def states(self) -> States | None:
        """The last copy read (or remembered), None before the first."""
        with self._lock:
            return self._states

    def changed(self) -> bool:
        """True when a newer copy arrived since this thread's previous call (True the first)."""
        if self._pid != os.getpid():  # none yet, or the parent's (a thread never forks)
            self._start()
        seen = getattr(self._tls, "seen", None)
        self._tls.seen = self._generation
        return seen != self._generation

    def remember(self, state: MigrationState, entered: float) -> None:
        """Put this process's own write into the copy at once (the others get a notice)."""
        with self._lock:
            if self._states is None:
                return
            old = self._states.get(state.name)
            if old is None or old[0].version < state.version:
                self._states = dict(self._states, **{state.name: (state, entered)})
                self._generation += 1

    def close(self, timeout: float) -> None:
        """Stop the thread (waiting up to ``timeout`` for it)."""
        self._closed = True
        self._stop.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout)

    def alive(self) -> bool:
        """True while the refreshing thread runs in this process."""
        return self._thread is not None and self._pid == os.getpid() and self._thread.is_alive()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid() or self._closed:
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._states, self._generation = None, self._generation + 1
            self._thread = threading.Thread(target=self._watch, name="migration-watcher",
                                            daemon=True)
        # The first copy before the first request, when Redis answers. A process that
        # already found the store down leaves the first read to the thread: a request
        # must not spend two socket timeouts on a Redis that did not answer just now.
        if not self._outage.is_down:
            try:
                self._refresh(None)
            except (redis.RedisError, StoreError) as exc:
                self._unreachable(exc)
            else:
                self._outage.up()
        self._thread.start()

    def _refresh(self, known: int | None) -> int | None:
        """Read the change counter; on a change, the states too. The counter read."""
        version = int(self._client.get(self._counter) or 0)
        if version == known:
            return known
        states = self._read_all()
        with self._lock:
            # This process's own writes are in the copy already: no second "changed".
            if states != self._states:
                self._states = states
                self._generation += 1
        return version

    def _unreachable(self, exc: Exception) -> None:
        self._outage.down(f"migration store {self._outage.where} unreachable, serving the "
                          f"last known states: {exc}")

    def _watch(self) -> None:
        known: int | None = None
        pubsub = None
        next_poll = 0.0
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self._client.pubsub(  # type: ignore[no-untyped-call]
                        ignore_subscribe_messages=True)
                    pubsub.subscribe(self.channel)
                    known = None  # notices may have been missed while unsubscribed
                notice = pubsub.get_message(timeout=min(WAKE_S, POLL_S))
                if notice is None and time.monotonic() < next_poll:
                    continue
                next_poll = time.monotonic() + POLL_S
                known = self._refresh(known)
                self._outage.up()
            except Exception as exc:  # the thread must outlive any failure; it logs them
                if self._stop.is_set():
                    break  # closed under it: not an outage
                self._unreachable(exc)
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except redis.RedisError:
                        pass
                    pubsub = None
                self._stop.wait(POLL_S)
        if pubsub is not None:
            pubsub.close()

