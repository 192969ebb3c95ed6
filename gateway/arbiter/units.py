"""Supervised units and their replicas: the data the arbiter's loop works on.

A :class:`Unit` is one program (see :mod:`gateway.arbiter.plan`) with its live
generation of :class:`Replica` objects, the replicas of an older generation
being drained, and, during a reload, the :class:`Rollout` that replaces them.

::

    unit = Unit(program)
    unit.state            # aggregated State of the current replicas
    unit.describe(now)    # the status document's entry
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gateway.arbiter.child import Child
from gateway.arbiter.logs import LineBuffer
from gateway.arbiter.plan import Program
from gateway.arbiter.policy import Backoff, StartLimit
from gateway.arbiter.states import State, aggregate


@dataclass(eq=False)
class Replica:
    """One process slot: restarted in place, with its own backoff and start limit."""

    program: Program
    index: int
    generation: int = 0
    state: State = State.WAITING
    child: Child | None = None
    started_at: float = 0.0
    started_wall: float = 0.0
    ready_at: float = 0.0
    restarts: int = 0
    starts: int = 0
    restart_at: float = 0.0
    kill_at: float = 0.0
    retiring: bool = False
    last_exit: int | None = None
    backoff: Backoff = field(default_factory=Backoff)
    limit: StartLimit = field(default_factory=StartLimit)
    output: LineBuffer = field(default_factory=LineBuffer)
    probing: Any = None  # the Future of an in-flight readiness probe

    def __post_init__(self) -> None:
        self.limit = StartLimit(self.program.burst, self.program.interval)

    @property
    def label(self) -> str:
        """``name.index``, with the generation once a reload replaced it."""
        gen = f"@{self.generation}" if self.generation else ""
        return f"{self.program.name}.{self.index}{gen}"

    @property
    def pid(self) -> int | None:
        """The main process's PID while it runs."""
        return self.child.pid if self.child is not None and self.state.alive else None

    def describe(self, now: float) -> dict[str, Any]:
        """This replica's entry in the status document."""
        return {
            "index": self.index, "generation": self.generation, "state": self.state.value,
            "pid": self.pid, "pgid": self.child.pgid if self.child and self.pid else None,
            "uptime_s": round(now - self.started_at, 3) if self.pid else None,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started_wall))
            if self.pid else None,
            "restarts": self.restarts, "last_exit": self.last_exit,
        }


@dataclass(eq=False)
class Rollout:
    """A reload of one unit: new replicas start; old ones drain once all new are ready."""

    program: Program
    replicas: list[Replica]
    deadline: float
    reason: str = "changed"


@dataclass(eq=False)
class Unit:
    """One program and its replicas across generations."""

    program: Program
    replicas: list[Replica] = field(default_factory=list)
    draining: list[Replica] = field(default_factory=list)
    rollout: Rollout | None = None
    generation: int = 0
    ever_ready: bool = False
    fatal: bool = False
    stopping: bool = False
    evidence_stale: bool = False  # reloaded: restart migration evidence once drained

    def __post_init__(self) -> None:
        if not self.replicas:
            self.replicas = self.new_generation(self.program, self.generation)

    def new_generation(self, program: Program, generation: int) -> list[Replica]:
        """Fresh replicas (WAITING) of ``program`` for ``generation``."""
        return [Replica(program, i, generation) for i in range(program.replicas)]

    def all_replicas(self) -> list[Replica]:
        """Current, rolling-out and draining replicas."""
        out = list(self.replicas) + list(self.draining)
        if self.rollout is not None:
            out += self.rollout.replicas
        return out

    @property
    def state(self) -> State:
        """FATAL if it flapped; else the aggregate of the current replicas."""
        if self.fatal:
            return State.FATAL
        return aggregate([r.state for r in self.replicas])

    @property
    def ready_count(self) -> int:
        """Replicas of any generation that take traffic now."""
        return sum(1 for r in self.all_replicas() if r.state is State.READY)

    def alive(self) -> bool:
        """True while any process of this unit runs."""
        return any(r.state.alive for r in self.all_replicas())

    def describe(self, now: float, versions: dict[str, str]) -> dict[str, Any]:
        """The unit's entry in the status document."""
        p = self.program
        return {
            "name": p.name, "state": self.state.value, "runtime": p.runtime,
            "interpreter": p.interpreter, "version": versions.get(p.interpreter, ""),
            "service": p.service, "replicas_wanted": p.replicas, "ready": self.ready_count,
            "generation": self.generation, "reloading": self.rollout is not None,
            "argv": list(p.argv),
            "replicas": [r.describe(now) for r in self.all_replicas()],
        }
