"""Zero-downtime reload: new replicas start, become ready, take traffic; old ones drain.

``gateway reload [service]`` (over the control channel) and SIGHUP both call
:func:`reload`. The arbiter re-reads the config through its
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
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.arbiter import control
from gateway.arbiter.plan import Program
from gateway.arbiter.states import State
from gateway.arbiter.units import Rollout, Unit
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.arbiter.arbiter import Arbiter


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


FIXED = (("gateway", "run_dir"), ("broker", "endpoint"), ("broker", "events_pub"),
         ("broker", "events_sub"), ("redis", "url"))


def reload(arb: Arbiter, conn: control.Connection | None, service: str | None) -> None:
    """Apply the current config file; answer ``conn`` when every rollout is done."""
    try:
        new = arb.loader()
    except GatewayError as exc:
        arb.log(f"reload refused: {exc}")
        if conn is not None:
            conn.reply(False, str(exc))
        return
    old_d, new_d = arb.config.to_dict(), new.to_dict()
    for table, key in FIXED:
        if old_d[table][key] != new_d[table][key]:
            msg = f"{table}.{key}: changed; this needs a restart, not a reload"
            arb.log(f"reload refused: {msg}")
            if conn is not None:
                conn.reply(False, msg)
            return
    programs = arb.plan(new)
    names = {p.name for p in programs}
    if service is not None and service not in names:
        if conn is not None:
            conn.reply(False, f"no service {service!r} in the config")
        return
    arb.config = new
    arb.write_effective_config(new)
    units = {u.program.name: u for u in arb.units}
    rolled: list[Unit] = []
    added: list[Unit] = []
    updated: list[str] = []
    removed: list[str] = []
    for program in programs:
        unit = units.get(program.name)
        if unit is None:
            added.append(Unit(program))
            arb.units.append(added[-1])
            arb.log(f"{program.name}: added")
            continue
        forced = service == program.name
        if program.signature != unit.program.signature or forced or (
                unit.fatal and service is None):
            start_rollout(arb, unit, program, "restart" if forced else "changed")
            rolled.append(unit)
        elif program != unit.program:
            update_in_place(arb, unit, program)
            updated.append(program.name)
    for unit in arb.units:
        if unit.program.name not in names and not unit.stopping:
            arb.log(f"{unit.program.name}: removed from the config, stopping")
            unit.stopping = True
            removed.append(unit.program.name)
            for r in unit.all_replicas():
                arb.stop_replica(r)
    reread = {"config": arb.config_source, "migrations": changed_migrations(old_d, new_d)}
    if reread["migrations"]:
        arb.log(f"migrations re-read: {', '.join(reread['migrations'])}")
    if conn is not None:
        arb.waiters.append(ReloadWaiter(conn, rolled, added, [], {
            "added": [u.program.name for u in added], "removed": removed,
            "updated": updated, "reread": reread}))


def changed_migrations(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``migrations.NAME`` for each migration added, removed or changed; ``migration``."""
    out = ["migration"] if old["migration"] != new["migration"] else []
    a, b = old["migrations"], new["migrations"]
    return out + [f"migrations.{name}" for name in sorted(set(a) | set(b))
                  if a.get(name) != b.get(name)]

def update_in_place(arb: Arbiter, unit: Unit, program: Program) -> None:
    """Apply a change that needs no new processes (grace, start limits) to the running ones."""
    old = unit.program
    unit.program = program
    for r in unit.replicas:
        r.program = program
        # keep the starts already counted: a flapping replica stays flapping
        r.limit.burst, r.limit.interval = program.burst, program.interval
    changes = [f"{name} {a:g} -> {b:g}" for name, a, b in (
        ("stop_grace_s", old.grace, program.grace),
        ("start_limit_burst", old.burst, program.burst),
        ("start_limit_interval_s", old.interval, program.interval)) if a != b]
    arb.log(f"{program.name}: updated in place" + (f" ({', '.join(changes)})" if changes else ""))


def start_rollout(arb: Arbiter, unit: Unit, program: Program, reason: str) -> None:
    """Begin replacing ``unit``'s replicas with a generation of ``program``."""
    if unit.rollout is not None:
        fail_rollout(arb, unit, "superseded by a newer reload")
    unit.fatal = False
    replicas = unit.new_generation(program, unit.generation + 1)
    unit.rollout = Rollout(program, replicas, time.monotonic() + program.ready_timeout, reason)
    arb.log(f"{program.name}: rolling out generation {unit.generation + 1} ({reason})")

def fail_rollout(arb: Arbiter, unit: Unit, reason: str) -> None:
    """Abandon a rollout: its replicas drain, the old generation stays."""
    rollout = unit.rollout
    if rollout is None:
        return
    unit.rollout = None
    for r in rollout.replicas:
        r.retiring = True
        if r.state.alive:
            unit.draining.append(r)
        arb.stop_replica(r)
    arb.log(f"{unit.program.name}: reload failed: {reason}")
    for waiter in arb.waiters:
        if unit in waiter.rolled:
            waiter.failed.append(f"{unit.program.name}: {reason}")

def advance_rollouts(arb: Arbiter) -> None:
    """Finish rollouts whose replicas are all ready; time out the others; answer waiters."""
    now = time.monotonic()
    for unit in arb.units:
        if unit.evidence_stale and not unit.draining:
            # Only now: a draining old replica may still answer a shadow copy.
            unit.evidence_stale = False
            restart_evidence(arb, unit.program.name)
        rollout = unit.rollout
        if rollout is None:
            continue
        if all(r.state is State.READY for r in rollout.replicas):
            old, unit.replicas = unit.replicas, rollout.replicas
            unit.program, unit.rollout = rollout.program, None
            unit.generation += 1
            unit.ever_ready = True
            for r in old:
                r.retiring = True
                if r.state.alive:
                    unit.draining.append(r)
                arb.stop_replica(r)
            arb.log(f"{unit.program.name}: generation {unit.generation} ready; "
                     f"draining {sum(1 for r in old if r.state.alive)} old")
            unit.evidence_stale = True
        elif now > rollout.deadline:
            fail_rollout(arb, unit, f"not ready within {rollout.program.ready_timeout:g}s")
    arb.units = [u for u in arb.units if not (u.stopping and not u.alive()
                                                and not arb.stopping)]
    still: list[ReloadWaiter] = []
    for waiter in arb.waiters:
        if not waiter.settled():
            still.append(waiter)
            continue
        failed = waiter.failed + [f"{u.program.name}: added, but FATAL (it kept crashing)"
                                  for u in waiter.added if u.fatal]
        restarted = [u.program.name for u in waiter.rolled]
        if failed:
            done = ", ".join(f"{k} {', '.join(v)}" for k, v in (
                ("added", waiter.report["added"]), ("removed", waiter.report["removed"]),
                ("restarted", restarted)) if v)
            waiter.conn.reply(False, "; ".join(failed) + (f" ({done})" if done else ""))
        else:
            waiter.conn.reply(True, {"changed": restarted, "restarted": restarted,
                                     "failed": [], **waiter.report})
    arb.waiters = still


def restart_evidence(arb: Arbiter, service: str) -> None:
    """A reloaded py3 port of a migration in shadow starts a new evidence epoch.

    The comparisons gathered so far judged the old port; the gate must judge the
    new one. This is ``gateway migrate shadow NAME`` done by the arbiter, audited
    as actor ``gateway:reload``, once the old replicas have drained (so no answer
    of the old port lands in the new epoch). In canary or py3 the evidence stays:
    restart it with ``gateway migrate shadow`` if wanted.
    """
    settings = arb.config.migration_settings
    names = [m.name for m in settings.migrations if m.py3 == service]
    from gateway.migration import stores
    from gateway.migration.store import StoreError
    if not names or not stores.exists(settings):
        return
    store: stores.Store | None = None
    try:
        store = stores.open_store(settings, arb.config.gateway.run_dir)
        for name in names:
            state = store.get(name)
            if state.mode != "shadow":
                continue
            store.transition(name, "shadow", actor="gateway:reload",
                             reason=f"{service} reloaded: evidence restarts",
                             expect_version=state.version)
            arb.log(f"migration {name}: {service} reloaded, evidence restarts")
    except (StoreError, KeyError) as exc:
        arb.log(f"migrations: evidence not restarted after reloading {service}: {exc}")
    finally:
        if store is not None:
            store.close()
