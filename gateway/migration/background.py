"""The background side of migrations in a front process: the evidence recorder, the shadow
pools, and the admin token.

::

    recorder = Recorder(store, migrations)      # a thread: batches evidence into the store
    recorder.add(Observation(...))              # never blocks a request thread
    pool = ShadowPool("notes", size=4)
    pool.submit(job)                            # False (and not run) when every slot is busy
    token = ensure_token("/srv/gw/var/run/admin.token")
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from gateway.migration.config import MigrationConfig
from gateway.migration.store import Comparison, Observation
from gateway.migration.stores import Store, StoreUnavailable

log = logging.getLogger(__name__)

FLUSH_S = 0.2
BUDGET_CHECK_S = 1.0


def ensure_token(path: str) -> str:
    """The admin token in ``path``, created (0600, 256 random bits) when missing."""
    try:
        with open(path, encoding="ascii") as fh:
            token = fh.read().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    try:
        os.link(tmp, path)           # first writer wins; a racing one reads the winner's
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    with open(path, encoding="ascii") as fh:
        return fh.read().strip()


class Recorder:
    """Collects evidence from request threads; one background thread writes it in batches.

    It also judges the error budget of migrations in canary or py3 and rolls
    them back (the store makes that exactly-once across processes). A py3
    error that served a client wakes it at once: it writes the batch and
    judges then, not at its next tick, so a port that fails every request is
    rolled back once ``min_error_samples`` have failed, not after a second of
    failures (which, at hundreds of requests a second, was every request).
    """

    def __init__(self, store: Store, migrations: Iterable[MigrationConfig],
                 after_judge: Callable[[], None] | None = None, created: bool = True) -> None:
        self.store = store
        self.migrations = list(migrations)
        self._created = created  # False: the store did not answer at start (see judge)
        # Runs after every judgement: pushes a rollback (or another process's change)
        # to the broker's splits.
        self._after_judge = after_judge
        self._queue: queue.SimpleQueue[Observation | Comparison] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._urgent = threading.Event()
        self._thread = threading.Thread(target=self._run, name="migration-recorder",
                                        daemon=True)
        self._thread.start()

    def add(self, item: Observation | Comparison) -> None:
        """Queue one observation or comparison (never blocks)."""
        self._queue.put(item)
        if isinstance(item, Observation) and item.error and item.runtime == "py3" \
                and item.role == "serve":
            self._urgent.set()

    def flush(self) -> int:
        """Write everything queued so far; the number of items written."""
        obs: list[Observation] = []
        cmps: list[Comparison] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Comparison):
                cmps.append(item)
            else:
                obs.append(item)
        try:
            # Also with nothing new: a store that kept batches while it was down sends them.
            self.store.record(obs, cmps)
        except Exception:
            log.exception("migration evidence could not be stored (%d items)",
                          len(obs) + len(cmps))
        return len(obs) + len(cmps)

    def judge(self) -> None:
        """Roll back every canary / py3 migration whose py3 error budget is spent.

        A process that started while the store was down first creates the states
        the store lacks, as configured; until the store answers, nothing is judged.
        """
        try:
            if not self._created:
                for m in self.migrations:
                    self.store.ensure(m.name, m.state, m.percent)
                self._created = True
            for m in self.migrations:
                self._judge_one(m)
        except StoreUnavailable as exc:
            # Tried again every second; the outage is said once per process.
            self.store.outage.down(f"error budgets not judged while the store is down: {exc}")
        except Exception:
            log.exception("migration states could not be created in the store")
        else:
            self.store.outage.up()
        if self._after_judge is not None:
            self._after_judge()

    def _judge_one(self, m: MigrationConfig) -> None:
        try:
            state = self.store.auto_rollback(m.name, m.thresholds)
        except KeyError:
            # The store lost it (a shared Redis restarted without its data): recreate it
            # as configured, audited as "config", rather than fail every admin call.
            self._recreate(m)
            return
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("error budget check of %s failed", m.name)
            return
        if state is not None:
            log.warning("migration %s rolled back to py2: error budget spent", m.name)

    def _recreate(self, m: MigrationConfig) -> None:
        try:
            self.store.ensure(m.name, m.state, m.percent)
        except Exception:
            log.exception("migration %s could not be recreated", m.name)
        else:
            log.warning("migration %s was missing from the store: recreated as configured",
                        m.name)

    def _run(self) -> None:
        next_judge = time.monotonic() + BUDGET_CHECK_S
        while True:
            urgent = self._urgent.wait(FLUSH_S)
            if self._stop.is_set():
                break
            self._urgent.clear()
            self.flush()
            if urgent or time.monotonic() >= next_judge:
                self.judge()
                next_judge = time.monotonic() + BUDGET_CHECK_S
        self.flush()

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread after a last flush."""
        self._stop.set()
        self._urgent.set()
        self._thread.join(timeout)


class ShadowPool:
    """At most ``size`` shadow jobs in flight; a job that finds no slot is not run."""

    def __init__(self, name: str, size: int) -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"shadow-{name}")

    def submit(self, job: Callable[[], None]) -> bool:
        """Run ``job`` in the pool if a slot is free; False when it was skipped."""
        if not self._slots.acquire(blocking=False):
            return False

        def run() -> None:
            try:
                job()
            except Exception:
                log.exception("shadow job failed")
            finally:
                self._slots.release()
        try:
            self._executor.submit(run)
        except RuntimeError:          # shutting down
            self._slots.release()
            return False
        return True

    def close(self) -> None:
        """Stop taking jobs; running ones finish within their own time caps."""
        self._executor.shutdown(wait=False, cancel_futures=True)
