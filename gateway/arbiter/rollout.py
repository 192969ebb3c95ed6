"""Zero-downtime reload: new replicas start, become ready, take traffic; old ones drain.

``gateway reload [service]`` (over the control channel) and SIGHUP both call
:meth:`Rollouts.reload`. It re-reads the config through the estate's
loader, diffs the programs by signature, and for each changed one starts a
whole new generation beside the old. Both generations serve meanwhile: they
share the arbiter-owned listening socket, or register the same broker
service. Once every new replica is ready the old ones get SIGTERM and drain
(an MDP worker finishes in flight work and sends DISCONNECT; gunicorn stops
accepting and finishes its requests). If the new generation flaps or is not
ready within its ``ready_timeout_s`` the reload fails and the old one stays.

The answer says what the reload did: programs ``added`` (it waits until each
is ready, and fails if one goes FATAL), ``removed``, ``restarted`` (new
generation; also under the old name ``changed``), ``updated`` in place, and
what was ``reread`` (the config file, and the migrations whose table changed:
a changed ``[migration]`` or ``[migrations.*]`` rolls the HTTP front, which
reads them when it starts).

This is also how a service moves from its py2 implementation to its py3 port:
change ``runtime`` and ``module`` and reload. A reload also retries every FATAL
service (``gateway reload NAME`` restarts just that one), and a changed
``[gateway]``, ``[[routes]]`` or ``[http]`` rolls the HTTP front the same way.
``stop_grace_s`` and the start limits apply to the running replicas in place.
``run_dir``, the broker endpoints and the Redis URL cannot change without a restart.

:class:`Rollouts` owns the waiting ``gateway reload`` connections and the
rollout deadlines. It reaches the supervisor only through :class:`Estate`
(the config, the units, a log), so this module does not import the arbiter::

    rollouts = Rollouts(estate, on_replaced=lambda service: ...)
    rollouts.reload(conn, None)     # each SIGHUP / control request
    rollouts.advance(now)           # each turn of the main loop
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.arbiter import control
from gateway.arbiter.plan import Program
from gateway.arbiter.states import State
from gateway.arbiter.units import Unit
from gateway.config import GatewayConfig
from gateway.errors import GatewayError


class Estate(Protocol):
    """What reloads need from the supervisor, and nothing more."""

    @property
    def config(self) -> GatewayConfig:
        """The configuration in force."""

    @property
    def config_source(self) -> str:
        """Where the config was read from (for the reload's answer)."""

    @property
    def units(self) -> list[Unit]:
        """Every supervised unit."""

    def log(self, line: str) -> None:
        """A line in the arbiter's log."""

    def load(self) -> GatewayConfig:
        """Read the config file again (GatewayError when it is wrong)."""

    def plan(self, config: GatewayConfig) -> list[Program]:
        """The programs of ``config``."""

    def adopt(self, config: GatewayConfig) -> None:
        """Make ``config`` the one in force (and write it for the front)."""

    def add_unit(self, unit: Unit) -> None:
        """Supervise a new unit from now on."""


@dataclass
class ReloadWaiter:
    """A ``gateway reload`` waiting for its rollouts and new programs to settle."""

    conn: control.Connection
    rolled: list[Unit]
    added: list[Unit] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    def settled(self) -> bool:
        """Every rollout finished and every added program READY (or FATAL)."""
        return all(u.rollout is None for u in self.rolled) and all(
            u.fatal or u.ready_count >= u.program.replicas for u in self.added)

    def answer(self) -> None:
        """Reply to ``gateway reload``: what the reload did, or why it failed."""
        failed = self.failed + [f"{u.program.name}: added, but FATAL (it kept crashing)"
                                for u in self.added if u.fatal]
        restarted = [u.program.name for u in self.rolled]
        if failed:
            done = ", ".join(f"{k} {', '.join(v)}" for k, v in (
                ("added", self.report["added"]), ("removed", self.report["removed"]),
                ("restarted", restarted)) if v)
            self.conn.reply(False, "; ".join(failed) + (f" ({done})" if done else ""))
        else:
            self.conn.reply(True, {"changed": restarted, "restarted": restarted,
                                   "failed": [], **self.report})


FIXED = (("gateway", "run_dir"), ("broker", "endpoint"), ("broker", "events_pub"),
         ("broker", "events_sub"), ("redis", "url"))


def changed_migrations(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``migrations.NAME`` for each migration added, removed or changed; ``migration``."""
    out = ["migration"] if old["migration"] != new["migration"] else []
    a, b = old["migrations"], new["migrations"]
    return out + [f"migrations.{name}" for name in sorted(set(a) | set(b))
                  if a.get(name) != b.get(name)]


class Rollouts:
    """Reloads in progress: their waiters, deadlines, and the generations they replace."""

    def __init__(self, estate: Estate,
                 on_replaced: Callable[[str], None] | None = None) -> None:
        self.estate = estate
        # Called with a program's name once its old generation has drained.
        self.on_replaced = on_replaced
        self.waiters: list[ReloadWaiter] = []

    def reload(self, conn: control.Connection | None, service: str | None) -> None:
        """Apply the current config file; answer ``conn`` when every rollout is done."""
        estate = self.estate
        try:
            new = estate.load()
        except GatewayError as exc:
            self.refuse(conn, str(exc))
            return
        old_d, new_d = estate.config.to_dict(), new.to_dict()
        for table, key in FIXED:
            if old_d[table][key] != new_d[table][key]:
                self.refuse(conn, f"{table}.{key}: changed; this needs a restart, not a reload")
                return
        programs = estate.plan(new)
        names = {p.name for p in programs}
        if service is not None and service not in names:
            if conn is not None:
                conn.reply(False, f"no service {service!r} in the config")
            return
        estate.adopt(new)
        units = {u.program.name: u for u in estate.units}
        now = time.monotonic()
        rolled: list[Unit] = []
        added: list[Unit] = []
        updated: list[str] = []
        removed: list[str] = []
        for program in programs:
            unit = units.get(program.name)
            if unit is None:
                added.append(Unit(program))
                estate.add_unit(added[-1])
                estate.log(f"{program.name}: added")
                continue
            forced = service == program.name
            if program.signature != unit.program.signature or forced or (
                    unit.fatal and service is None):
                self.start(unit, program, "restart" if forced else "changed", now)
                rolled.append(unit)
            elif program != unit.program:
                changes = unit.update_in_place(program)
                estate.log(f"{program.name}: updated in place" +
                           (f" ({', '.join(changes)})" if changes else ""))
                updated.append(program.name)
        for unit in estate.units:
            if unit.program.name not in names and not unit.stopping:
                estate.log(f"{unit.program.name}: removed from the config, stopping")
                removed.append(unit.program.name)
                unit.stop(now)
        reread = {"config": estate.config_source,
                  "migrations": changed_migrations(old_d, new_d)}
        if reread["migrations"]:
            estate.log(f"migrations re-read: {', '.join(reread['migrations'])}")
        if conn is not None:
            self.waiters.append(ReloadWaiter(conn, rolled, added, [], {
                "added": [u.program.name for u in added], "removed": removed,
                "updated": updated, "reread": reread}))

    def refuse(self, conn: control.Connection | None, reason: str) -> None:
        """Log a refused reload and tell the waiting client why."""
        self.estate.log(f"reload refused: {reason}")
        if conn is not None:
            conn.reply(False, reason)

    def start(self, unit: Unit, program: Program, reason: str, now: float) -> None:
        """Begin replacing ``unit``'s replicas with a generation of ``program``."""
        if unit.rollout is not None:
            self.fail(unit, "superseded by a newer reload")
        unit.begin_rollout(program, reason, now)
        self.estate.log(f"{program.name}: rolling out generation {unit.generation + 1} "
                        f"({reason})")

    def fail(self, unit: Unit, reason: str) -> None:
        """Abandon ``unit``'s rollout: its replicas drain, the old generation stays."""
        if not unit.abandon_rollout(time.monotonic()):
            return
        self.estate.log(f"{unit.program.name}: reload failed: {reason}")
        for waiter in self.waiters:
            if unit in waiter.rolled:
                waiter.failed.append(f"{unit.program.name}: {reason}")

    def advance(self, now: float) -> None:
        """Finish rollouts whose replicas are all ready; time out the others; answer waiters."""
        for unit in self.estate.units:
            if unit.replaced_pending and not unit.draining:
                # Only now: a draining old replica may still be answering.
                unit.replaced_pending = False
                if self.on_replaced is not None:
                    self.on_replaced(unit.program.name)
            rollout = unit.rollout
            if rollout is None:
                continue
            if all(r.state is State.READY for r in rollout.replicas):
                draining = unit.promote(now)
                self.estate.log(f"{unit.program.name}: generation {unit.generation} ready; "
                                f"draining {draining} old")
                unit.replaced_pending = True
            elif now > rollout.deadline:
                self.fail(unit, f"not ready within {rollout.program.ready_timeout:g}s")
        still: list[ReloadWaiter] = []
        for waiter in self.waiters:
            if waiter.settled():
                waiter.answer()
            else:
                still.append(waiter)
        self.waiters = still

    def close(self, reason: str) -> None:
        """Answer every waiting reload with ``reason`` (the arbiter is stopping)."""
        for waiter in self.waiters:
            waiter.conn.reply(False, reason)
        self.waiters = []
