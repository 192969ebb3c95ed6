"""Supervised units and their replicas, each owning its state transitions.

A :class:`Unit` is one program (see :mod:`gateway.arbiter.plan`) with its live
generation of :class:`Replica` objects, the replicas of an older generation
being drained, and, during a reload, the :class:`Rollout` that replaces them.

A replica is one supervised process slot. Like Supervisor's
``Subprocess.transition``, it changes its own state: the arbiter's loop
reports what it saw (spawned, ready, exited, grace over) and the replica
moves along the table in :mod:`gateway.arbiter.states`, asking its
:class:`~gateway.arbiter.policy.RestartPolicy` what follows an exit::

    unit = Unit(program)
    r = unit.replicas[0]
    r.begin_start(now); r.spawned(child, now)   # WAITING/BACKOFF -> STARTING
    unit.mark_ready(r, now)                     # STARTING -> READY
    outcome = unit.replica_exited(r, code, now, estate_stopping=False)
    outcome.message, outcome.fatal              # BACKOFF, STOPPED or FATAL
    unit.state            # aggregated State of the current replicas
    unit.describe(now)    # the status document's entry
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.arbiter.child import Child
from gateway.arbiter.logs import LineBuffer
from gateway.arbiter.plan import Program
from gateway.arbiter.policy import RestartPolicy
from gateway.arbiter.states import State, aggregate


@dataclass(frozen=True)
class Exit:
    """What an exit led to: the log line, and whether the replica went FATAL."""

    message: str
    fatal: bool = False


def describe_exit(code: int | None) -> str:
    """``exited with 3``, ``killed by SIGKILL`` or ``failed to start`` (code None)."""
    if code is None:
        return "failed to start"
    return f"exited with {code}" if code >= 0 else f"killed by {signal.Signals(-code).name}"


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
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    output: LineBuffer = field(default_factory=LineBuffer)
    probing: Any = None  # the Future of an in-flight readiness probe

    def __post_init__(self) -> None:
        self.policy = RestartPolicy(self.program.burst, self.program.interval)

    # -- transitions -----------------------------------------------------------------------------

    def due(self, now: float) -> bool:
        """True when this replica should be started now (first start, or backoff over)."""
        return self.state is State.WAITING or (
            self.state is State.BACKOFF and now >= self.restart_at)

    def begin_start(self, now: float) -> None:
        """Count a start (and a restart when it leaves BACKOFF) before spawning."""
        if self.state is State.BACKOFF:
            self.restarts += 1
        self.starts += 1
        self.policy.started(now)

    def spawned(self, child: Child, now: float) -> None:
        """The process runs: STARTING until its readiness check passes."""
        self.child = child
        self.state = State.STARTING
        self.started_at, self.started_wall = now, time.time()
        self.kill_at = 0.0

    def became_ready(self, now: float) -> None:
        """STARTING -> READY: it takes traffic; past failed starts are forgiven."""
        self.state = State.READY
        self.ready_at = now
        self.policy.ready()

    def stop(self, now: float, grace: float | None = None) -> None:
        """SIGTERM the main process (STOPPING until it exits); not started yet: STOPPED."""
        if self.state in (State.WAITING, State.BACKOFF):
            self.state = State.STOPPED
            return
        if not self.state.alive or self.state is State.STOPPING or self.child is None:
            return
        self.state = State.STOPPING
        self.kill_at = now + (self.program.grace if grace is None else grace)
        self.child.terminate()

    def overdue(self, now: float) -> bool:
        """SIGKILL the process group once a stop outlived its grace; True if it did."""
        if self.state is not State.STOPPING or self.child is None or now < self.kill_at:
            return False
        self.child.kill_group()
        self.kill_at = now + 1.0
        return True

    def exited(self, code: int | None, now: float, expected: bool,
               verb: str = "stopped") -> Exit:
        """The process exited with ``code`` (None: it never started): STOPPED, BACKOFF, FATAL."""
        expected = expected or self.state is State.STOPPING or self.retiring
        self.last_exit = code
        self.probing = None
        how = describe_exit(code)
        if expected:
            self.state = State.STOPPED
            return Exit(f"{self.label}: {verb}, {how}")
        restart = self.policy.after_exit(now, was_ready=self.state is State.READY)
        if restart is None:
            self.state = State.FATAL
            return Exit(f"{self.label}: {how}; {self.policy.describe_limit()}: FATAL",
                        fatal=True)
        self.state = State.BACKOFF
        self.restart_at = now + restart.delay
        return Exit(f"{self.label}: {how}; restarting in {restart.delay:.2f}s")

    # -- views -----------------------------------------------------------------------------------

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
    replaced_pending: bool = False  # a new generation took over: announce it once drained

    def __post_init__(self) -> None:
        if not self.replicas:
            self.replicas = self.new_generation(self.program, self.generation)

    def new_generation(self, program: Program, generation: int) -> list[Replica]:
        """Fresh replicas (WAITING) of ``program`` for ``generation``."""
        return [Replica(program, i, generation) for i in range(program.replicas)]

    def active_replicas(self) -> list[Replica]:
        """Current and rolling-out replicas: those to start and probe (not the draining)."""
        return self.replicas + (self.rollout.replicas if self.rollout else [])

    def all_replicas(self) -> list[Replica]:
        """Current, rolling-out and draining replicas."""
        out = list(self.replicas) + list(self.draining)
        if self.rollout is not None:
            out += self.rollout.replicas
        return out

    # -- transitions -----------------------------------------------------------------------------

    def mark_ready(self, r: Replica, now: float) -> str:
        """``r`` takes traffic; the log line."""
        r.became_ready(now)
        if r in self.replicas:
            self.ever_ready = True
        return f"{r.label}: ready in {now - r.started_at:.2f}s"

    def replica_exited(self, r: Replica, code: int | None, now: float,
                       estate_stopping: bool) -> Exit:
        """``r`` exited: a drained old replica is done; otherwise its own transition."""
        if r in self.draining:
            self.draining.remove(r)
            return r.exited(code, now, expected=True, verb="drained")
        return r.exited(code, now, expected=self.stopping or estate_stopping)

    def in_rollout(self, r: Replica) -> bool:
        """True when ``r`` belongs to the generation a reload is starting."""
        return self.rollout is not None and r in self.rollout.replicas

    def give_up(self, now: float) -> None:
        """FATAL: a replica flapped; stop the others of the current generation."""
        self.fatal = True
        for other in self.replicas:
            other.stop(now)

    def stop(self, now: float) -> None:
        """Stop every replica of every generation (the unit is going away)."""
        self.stopping = True
        for r in self.all_replicas():
            r.stop(now)

    def update_in_place(self, program: Program) -> list[str]:
        """Apply a change that needs no new processes (grace, start limits); what changed."""
        old, self.program = self.program, program
        for r in self.replicas:
            r.program = program
            # keep the starts already counted: a flapping replica stays flapping
            r.policy.retune(program.burst, program.interval)
        return [f"{name} {a:g} -> {b:g}" for name, a, b in (
            ("stop_grace_s", old.grace, program.grace),
            ("start_limit_burst", old.burst, program.burst),
            ("start_limit_interval_s", old.interval, program.interval)) if a != b]

    def begin_rollout(self, program: Program, reason: str, now: float) -> None:
        """Start a new generation of ``program`` beside the current one."""
        self.fatal = False
        replicas = self.new_generation(program, self.generation + 1)
        self.rollout = Rollout(program, replicas, now + program.ready_timeout, reason)

    def abandon_rollout(self, now: float) -> bool:
        """Drain the new generation; the old one stays. False when none was rolling."""
        rollout, self.rollout = self.rollout, None
        if rollout is None:
            return False
        self.retire(rollout.replicas, now)
        return True

    def promote(self, now: float) -> int:
        """The rollout's replicas become current; the old ones drain. How many drain."""
        assert self.rollout is not None
        old, self.replicas = self.replicas, self.rollout.replicas
        self.program, self.rollout = self.rollout.program, None
        self.generation += 1
        self.ever_ready = True
        self.retire(old, now)
        return sum(1 for r in old if r.state.alive)

    def retire(self, replicas: list[Replica], now: float) -> None:
        """Stop ``replicas`` for good; the running ones are drained until they exit."""
        for r in replicas:
            r.retiring = True
            if r.state.alive:
                self.draining.append(r)
            r.stop(now)

    # -- views -----------------------------------------------------------------------------------

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
