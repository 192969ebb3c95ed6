"""The arbiter -> HTTP front seam: a small JSON state file in the run dir.

The arbiter rewrites ``<run_dir>/state.json`` atomically (write + rename)
whenever a service changes state. The HTTP front checks it per request (one
``stat``; it re-reads only when the file changed) and answers 503 at once for
routes whose service is FATAL, instead of waiting for a broker timeout::

    {"v": 1, "arbiter_pid": 4242, "updated_ms": 1764000000000,
     "services": {"highlight": {"state": "FATAL", "ready": 0, "replicas": 2}}}

    states = ServiceStates("/srv/gw/var/run/state.json")   # in the HTTP front
    if states.fatal("highlight"):
        return ServiceUnavailable()

    write_state(path, {"highlight": {"state": "READY", ...}}, arbiter_pid=os.getpid())
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

FATAL = "FATAL"


def write_state(path: str, services: dict[str, dict[str, Any]], arbiter_pid: int) -> None:
    """Atomically replace the state file with ``services`` (``OSError`` when it cannot)."""
    doc = {"v": 1, "arbiter_pid": arbiter_pid, "updated_ms": int(time.time() * 1000),
           "services": services}
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, sort_keys=True, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        # A full disk leaves a partial temp file behind: do not let it fill the rest.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class ServiceStates:
    """A cached view of the state file; cheap enough to consult on every request."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._services: dict[str, dict[str, Any]] = {}

    def services(self) -> dict[str, dict[str, Any]]:
        """Every service's published state (empty when there is no arbiter)."""
        try:
            st = os.stat(self.path)
        except OSError:
            self._stamp, self._services = None, {}
            return self._services
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self._stamp:
            try:
                with open(self.path, encoding="utf-8") as fh:
                    doc = json.load(fh)
                services = doc.get("services", {})
                self._services = services if isinstance(services, dict) else {}
                self._stamp = stamp
            except (OSError, ValueError):
                pass  # keep the last good view; the next rename brings a whole file
        return self._services

    def state(self, service: str) -> str | None:
        """The state of ``service`` (``READY``, ``FATAL``, ...) or None if unknown."""
        entry = self.services().get(service)
        return entry.get("state") if isinstance(entry, dict) else None

    def fatal(self, service: str) -> bool:
        """True when the arbiter gave up on ``service``: its routes should answer 503."""
        return self.state(service) == FATAL
