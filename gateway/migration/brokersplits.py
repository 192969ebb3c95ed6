"""Service migrations, pushed to the broker: the split file and the ``mmi.split`` poke.

A ``[migrations.X] service = "tax"`` migration is carried out by the broker,
not by the front: every call of ``tax`` passes the broker, whoever makes it
(the gateway's ``/rpc``, a py2 service, a py3 one). The control plane turns
the migration states into the broker's split file (SPEC 2.14) and tells the
broker to read it again::

    splits = BrokerSplits("/srv/gw/var/run/broker-splits", "ipc:///srv/gw/var/run/broker.ipc")
    splits.sync(settings.migrations, store.all())   # True when the file changed

    services = ServiceMigrations(settings, store, endpoint)   # what a front process holds
    # (with the configured states as a 4th argument, the file follows them while the
    # store has not answered: a front that started while Redis was down)
    services.sync()        # after every admin action
    services.tend()        # every second: the port's error budget, then sync()

The file is the single source of truth, so the broker keeps its splits across
its own restarts, and a poke that is lost costs at most one broker beat (it
also re-reads the file when its mtime moves). A state maps to a share::

    py2, shadow -> 0      canary N% -> N      py3, retired -> 100

In ``shadow`` and ``canary`` the file also gets the migration's ``shadow`` line
(:mod:`gateway.migration.brokershadow`): the broker copies the calls that stay on
the py2 service to the port, and the comparer judges the pairs.

The front never sees these calls, so the automatic rollback judges the port by
the broker's counters of calls sent to it and failed (:class:`ErrorBudget`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import zmq

from gateway.migration.brokershadow import shadow_lines, shadowable
from gateway.migration.config import MigrationConfig, MigrationSettings
from gateway.migration.gates import ErrorBudgetGate
from gateway.migration.model import MigrationState, TransitionError
from gateway.migration.stores import Store, StoreUnavailable
from protocol import mdp

log = logging.getLogger(__name__)

MMI_SPLIT = b"mmi.split"
POKE_TIMEOUT_S = 1.0
HEADER = "# written by the gateway from the migration states; SERVICE CANDIDATE PERCENT\n"


def share(state: MigrationState) -> int:
    """The percent of a service's calls its port takes in ``state``."""
    if state.mode == "canary":
        return state.percent
    return 100 if state.mode in ("py3", "retired") else 0


def render(migrations: Iterable[MigrationConfig], states: Mapping[str, MigrationState],
           methods: Mapping[str, str] | None = None) -> str:
    """The split file for the service migrations among ``migrations``.

    ``methods`` ({service: METHODS}, :func:`~gateway.migration.brokershadow.shadowable`)
    says which calls may be copied; without it nothing is.
    """
    migrations = sorted(migrations, key=lambda m: m.service)
    lines = [HEADER]
    for m in migrations:
        if m.kind == "service" and m.name in states:
            lines.append(f"{m.service} {m.py3} {share(states[m.name])}\n")
    return "".join(lines + shadow_lines(migrations, states, methods or {}))


def poke(endpoint: str, timeout_s: float = POKE_TIMEOUT_S) -> str | None:
    """Send ``mmi.split``; the broker's answer (``"200"``), or None when none came in time."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send_multipart([b"", mdp.CLIENT, MMI_SPLIT], zmq.NOBLOCK)
        if not sock.poll(int(timeout_s * 1000)):
            return None
        frames = sock.recv_multipart()
        return frames[3].decode("ascii", "replace") if len(frames) > 3 else None
    except zmq.ZMQError as exc:
        log.warning("mmi.split to %s failed: %s", endpoint, exc)
        return None
    finally:
        sock.close(linger=0)


def broker_splits(endpoint: str, timeout_s: float = 0.5,
                  key: str = "splits") -> dict[str, Any] | None:
    """The broker's ``mmi.stats`` ``splits`` (what it routes by now), None without an answer.

    ``key="shadows"``: its shadow copies per service instead ({} while none are made).
    """
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send_multipart([b"", mdp.CLIENT, mdp.MMI_STATS], zmq.NOBLOCK)
        if not sock.poll(int(timeout_s * 1000)):
            return None
        frames = sock.recv_multipart()
        stats = json.loads(frames[3]) if len(frames) > 3 else None
        found = stats.get(key, {} if key == "shadows" else None) if stats is not None else None
        return found if isinstance(found, dict) else None
    except (zmq.ZMQError, ValueError, AttributeError) as exc:
        log.warning("mmi.stats from %s failed: %s", endpoint, exc)
        return None
    finally:
        sock.close(linger=0)


class ErrorBudget:
    """The port's error budget of service migrations, judged from the broker's counters.

    The broker counts calls ``sent`` to the port and ``sent_errors`` since the split
    took its current percent (SPEC 2.14). Each look is kept for ``window_s``; the
    budget is spent when, between the oldest look in the window (none yet: the
    split's start) and now, at least ``min_error_samples`` calls went to the port and
    more than ``error_budget`` of them failed, as for routes.
    """

    def __init__(self) -> None:
        self._looks: dict[str, deque[tuple[float, int, int]]] = {}

    def spent(self, m: MigrationConfig, split: Mapping[str, Any] | None,
              now: float) -> str | None:
        """Why the port of ``m`` has spent its budget, or None; records this look."""
        if not split:
            return None
        sent, errors = int(split.get("sent", 0)), int(split.get("sent_errors", 0))
        looks = self._looks.setdefault(m.name, deque())
        if looks and (sent < looks[-1][1] or errors < looks[-1][2]):
            looks.clear()  # new counters: the broker restarted or the split changed
        base = (now, 0, 0) if not looks else looks[0]
        looks.append((now, sent, errors))
        while len(looks) > 1 and looks[0][0] < now - m.thresholds.window_s:
            looks.popleft()
        return ErrorBudgetGate.of(m.thresholds).spent(sent - base[1], errors - base[2],
                                                      "calls in the broker")

    def forget(self, name: str) -> None:
        """Start afresh (after a rollback)."""
        self._looks.pop(name, None)


class BrokerSplits:
    """Keeps the broker's split file equal to the service migrations' states."""

    def __init__(self, path: str, endpoint: str, methods: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.endpoint = endpoint
        self.methods = dict(methods or {})
        self._lock = threading.Lock()

    def sync(self, migrations: Iterable[MigrationConfig],
             states: Mapping[str, MigrationState]) -> bool:
        """Write the file when it differs from what the states say, then poke the broker.

        The file is compared, not a cache: another front process may have written
        it since (an automatic rollback there).
        """
        text = render(migrations, states, self.methods)
        with self._lock:
            try:
                with open(self.path, encoding="utf-8") as fh:
                    if fh.read() == text:
                        return False
            except FileNotFoundError:
                if text == HEADER:
                    return False  # no splits, and none to take back

            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, self.path)  # the broker never reads half a file
        if self.endpoint:
            answer = poke(self.endpoint)
            if answer != "200":
                # It still reads the file on its next beat.
                log.warning("the broker at %s answered mmi.split with %r", self.endpoint,
                            answer)
        return True


class ServiceMigrations:
    """The service migrations of one front process: the split file, the error budget."""

    def __init__(self, settings: MigrationSettings, store: Store, endpoint: str,
                 contracts_dir: str = "",
                 configured: Mapping[str, MigrationState] | None = None) -> None:
        self.settings = settings
        self.store = store
        # What the split file says for a state the store does not give (it does not
        # answer, or has not created it yet): the configured one, as the front serves.
        self.configured = dict(configured or {})
        self.endpoint = endpoint
        self.services = [m for m in settings.migrations if m.kind == "service"]
        # Also without service migrations: one removed by a reload must leave the file.
        self.splits = BrokerSplits(settings.splits_file, endpoint,
                                   shadowable(self.services, contracts_dir)) \
            if settings.splits_file else None
        self._budget = ErrorBudget()

    def sync(self) -> None:
        """Bring the broker's splits in line with the service migrations' states."""
        if self.splits is None:
            return
        try:
            states = self._states()
            self.splits.sync(self.settings.migrations, states)
        except StoreUnavailable as exc:  # nothing configured to fall back on: left as it is
            self.store.outage.down(f"the broker's splits not synced: {exc}")
        except Exception:
            log.exception("the broker's split file could not be written")

    def _states(self) -> dict[str, MigrationState]:
        try:
            return {**self.configured, **self.store.all()}
        except StoreUnavailable:
            if not self.configured:
                raise
            return dict(self.configured)

    def tend(self) -> None:
        """Roll back service migrations whose port spent its error budget in the broker
        (exactly once across front processes: a compare-and-set), then :meth:`sync`."""
        try:
            self._judge()
        except StoreUnavailable as exc:  # judged again once the store answers
            self.store.outage.down(f"service error budgets not judged: {exc}")
        except Exception:
            log.exception("the error budget of service migrations could not be judged")
        self.sync()

    def _judge(self) -> None:
        if not self.services:
            return
        states = self.store.all()
        judged = [m for m in self.services
                  if m.name in states and states[m.name].mode in ("canary", "py3")]
        if not judged:
            return
        splits, now = self.live_splits(), time.monotonic()
        for m in judged:
            reason = self._budget.spent(m, splits.get(m.service), now)
            if reason is None:
                continue
            self._budget.forget(m.name)
            try:
                self.store.transition(m.name, "py2", actor="gateway:auto", reason=reason,
                                      expect_version=states[m.name].version)
            except TransitionError:
                continue  # another front process moved it first and audited it
            log.warning("migration %s rolled back to py2: %s", m.name, reason)

    def live_splits(self) -> dict[str, Any]:
        """The broker's splits by service ({} without service migrations or an answer)."""
        if not self.endpoint or not self.services:
            return {}
        return broker_splits(self.endpoint) or {}

    def live_shadows(self) -> dict[str, Any]:
        """The broker's shadow copies by service: sent, answered, failed, skipped."""
        if not self.endpoint or not self.services:
            return {}
        return broker_splits(self.endpoint, key="shadows") or {}
