"""The files the arbiter keeps in the run dir for others to read.

``arbiter.pid`` (for tools), the effective config as JSON (the HTTP front reads
it when it starts) and the state file (the front answers 503 for a FATAL
service). A failed write never stops the estate: it goes through the
:class:`~gateway.arbiter.writes.WriteLog`, which logs it, reports it in the
status and says when to retry::

    files = RunFiles(WriteLog(log=print))
    files.write_pid(os.path.join(run_dir, "arbiter.pid"))
    files.write_effective_config(config)
    files.publish_state(units, config.state_file)   # each turn; writes on change
"""

from __future__ import annotations

import json
import os

from gateway.arbiter.plan import effective_config_path
from gateway.arbiter.statefile import write_state
from gateway.arbiter.units import Unit
from gateway.arbiter.writes import WriteLog
from gateway.config import GatewayConfig


class RunFiles:
    """Writes the pid file, the effective config and the state file, failures logged."""

    def __init__(self, writes: WriteLog) -> None:
        self.writes = writes
        self.published = ""  # the services' states the state file last held

    def write_pid(self, path: str) -> None:
        """``arbiter.pid`` for tools that look for it; a failure is logged and reported."""
        def write() -> None:
            with open(path, "w", encoding="ascii") as fh:
                fh.write(f"{os.getpid()}\n")
        self.writes.attempt("pid", path, write)

    def write_effective_config(self, config: GatewayConfig) -> bool:
        """The resolved config, as JSON, for children that read it (the HTTP front).

        False when it could not be written (logged and reported in the status): the
        front then reads the last good copy, and the next reload writes it again.
        """
        path = effective_config_path(config)

        def write() -> None:
            try:
                with open(path + ".tmp", "w", encoding="utf-8") as fh:
                    json.dump(config.to_dict(), fh, indent=1, sort_keys=True)
                os.replace(path + ".tmp", path)
            except OSError:
                try:
                    os.unlink(path + ".tmp")
                except OSError:
                    pass
                raise
        return self.writes.attempt("effective config", path, write)

    def publish_state(self, units: list[Unit], path: str) -> None:
        """Rewrite the state file for the HTTP front when a service's state changed."""
        services = {u.program.name: {"state": u.state.value, "ready": u.ready_count,
                                     "replicas": u.program.replicas}
                    for u in units}
        key = json.dumps(services, sort_keys=True)
        # A failed write is retried on a due tick until one succeeds (even when the states
        # came back to what the file last held); the estate goes on either way, and the
        # front keeps its last good view of the file.
        stale = key != self.published or self.writes.failing("state")
        if not (stale and self.writes.due("state")):
            return
        if self.writes.attempt("state", path, lambda: write_state(path, services, os.getpid())):
            self.published = key
