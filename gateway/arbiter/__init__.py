"""Process supervision: ``gateway up`` runs and watches the whole estate.

Modules, one concern each:

=================  ===========================================================
``arbiter``        the main loop (signals, spawn / reap / murder verbs)
``units``          units (programs) and replicas, each making its own transitions
``policy``         the restart decision: backoff, StartLimitBurst -> FATAL
``states``         the state table
``readiness``      when a STARTING replica is READY (notices, probes, timeout)
``ready``          readiness checks (broker mmi.service, http, tcp, notify)
``rollout``        zero-downtime reload (new generation ready, then drain old)
``events``         the loop's one wait (output, control requests, wake-ups)
``handlers``       the control commands, one handler each, in a table
``control``        the CLI <-> arbiter control channel (unix socket, JSON lines)
``statusdoc``      the status document ``gateway status`` shows
``runfiles``       pid file, effective config and state file in the run dir
``plan``           config -> programs in dependency order, with their argv
``child``          spawning a child that cannot outlive the arbiter
``guard``          the orphan guard process (kills groups if the arbiter dies)
``sockets``        arbiter-owned listening sockets, systemd socket activation
``statefile``      the state file the HTTP front reads (FATAL -> 503)
``fatalgate``      the WSGI middleware that answers 503 for FATAL services
``front``          the HTTP front under the arbiter (inherited socket, FATAL gate)
``logs``           colour-prefixed or JSON log lines
``writes``         failed writes in the run dir: logged, retried, reported
``export``         systemd units and supervisord sections
=================  ===========================================================

A *replica* is one supervised process (a program has N of them); a *worker*
is only ever an MDP worker registered with the broker.

::

    from gateway.arbiter import Arbiter, LogSink
    Arbiter(config, loader, python3=sys.executable, sink=LogSink(sys.stdout)).run()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.arbiter.arbiter import Arbiter
    from gateway.arbiter.logs import LogSink
    from gateway.arbiter.statefile import ServiceStates

__all__ = ["Arbiter", "LogSink", "ServiceStates"]
_LAZY = {"Arbiter": "gateway.arbiter.arbiter", "LogSink": "gateway.arbiter.logs",
         "ServiceStates": "gateway.arbiter.statefile"}


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m gateway.arbiter.guard` does not import the arbiter first.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
