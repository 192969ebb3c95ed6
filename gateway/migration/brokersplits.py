"""Service migrations, pushed to the broker: the split file and the ``mmi.split`` poke.

A ``[migrations.X] service = "tax"`` migration is carried out by the broker,
not by the front: every call of ``tax`` passes the broker, whoever makes it
(the gateway's ``/rpc``, a py2 service, a py3 one). The control plane turns
the migration states into the broker's split file (SPEC 2.14) and tells the
broker to read it again::

    splits = BrokerSplits("/srv/gw/var/run/broker-splits", "ipc:///srv/gw/var/run/broker.ipc")
    splits.sync(settings.migrations, store.all())   # True when the file changed

The file is the single source of truth, so the broker keeps its splits across
its own restarts, and a poke that is lost costs at most one broker beat (it
also re-reads the file when its mtime moves). A state maps to a share::

    py2, shadow -> 0      canary N% -> N      py3, retired -> 100
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import zmq

from gateway.migration.config import MigrationConfig
from gateway.migration.store import MigrationState
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


def render(migrations: Iterable[MigrationConfig], states: Mapping[str, MigrationState]) -> str:
    """The split file for the service migrations among ``migrations``."""
    lines = [HEADER]
    for m in sorted(migrations, key=lambda m: m.service):
        if m.kind == "service" and m.name in states:
            lines.append(f"{m.service} {m.py3} {share(states[m.name])}\n")
    return "".join(lines)


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


def broker_splits(endpoint: str, timeout_s: float = 0.5) -> dict[str, Any] | None:
    """The broker's ``mmi.stats`` ``splits`` (what it routes by now), None without an answer."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send_multipart([b"", mdp.CLIENT, mdp.MMI_STATS], zmq.NOBLOCK)
        if not sock.poll(int(timeout_s * 1000)):
            return None
        frames = sock.recv_multipart()
        splits = json.loads(frames[3]).get("splits") if len(frames) > 3 else None
        return splits if isinstance(splits, dict) else None
    except (zmq.ZMQError, ValueError, AttributeError) as exc:
        log.warning("mmi.stats from %s failed: %s", endpoint, exc)
        return None
    finally:
        sock.close(linger=0)


class BrokerSplits:
    """Keeps the broker's split file equal to the service migrations' states."""

    def __init__(self, path: str, endpoint: str) -> None:
        self.path = path
        self.endpoint = endpoint
        self._lock = threading.Lock()

    def sync(self, migrations: Iterable[MigrationConfig],
             states: Mapping[str, MigrationState]) -> bool:
        """Write the file when it differs from what the states say, then poke the broker.

        The file is compared, not a cache: another front process may have written
        it since (an automatic rollback there).
        """
        text = render(migrations, states)
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
