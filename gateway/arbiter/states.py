"""Process states of supervised replicas: a small table with no dependencies.

Modelled on Supervisor's ``states.py``::

    STOPPED -> STARTING -> READY -> STOPPING -> STOPPED
                  |          |
                  +-> BACKOFF (exited; restart after a delay) -> STARTING
                  +-> FATAL   (start limit hit: StartLimitBurst starts within the interval)
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    """The state of one replica (and, aggregated, of a program)."""

    STOPPED = "STOPPED"
    WAITING = "WAITING"  # not started yet: its dependencies are not ready
    STARTING = "STARTING"  # running, readiness check not yet passed
    READY = "READY"
    BACKOFF = "BACKOFF"  # exited unexpectedly, restart scheduled
    STOPPING = "STOPPING"  # SIGTERM sent, draining
    FATAL = "FATAL"  # restarts stopped: it flapped

    @property
    def alive(self) -> bool:
        """True while a process exists for this state."""
        return self in (State.STARTING, State.READY, State.STOPPING)


def aggregate(states: list[State]) -> State:
    """One state for a program from its replicas' states (worst first, then READY)."""
    if not states:
        return State.STOPPED
    for worst in (State.FATAL, State.BACKOFF, State.STARTING, State.WAITING, State.STOPPING):
        if worst in states and (worst is not State.STARTING or State.READY not in states):
            return worst
    if State.READY in states:
        return State.READY
    return states[0]
