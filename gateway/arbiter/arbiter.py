"""The arbiter: starts the estate in dependency order and keeps it running.

Shaped like gunicorn's arbiter. Signal handlers only enqueue the signal; the
main loop dispatches to ``handle_<signal>`` and otherwise reads as verbs:
``reap_replicas`` (collect exits), ``readiness.check``, ``spawn_replicas``
(start what is due), ``stop_units``, ``murder_replicas`` (SIGKILL what outlived
its grace) and ``rollouts.advance`` (finish reloads).

The decisions live with the objects they concern: a
:class:`~gateway.arbiter.units.Replica` makes its own transitions and asks its
:class:`~gateway.arbiter.policy.RestartPolicy` what follows an exit (restart at
once after a run that got READY, after a backoff after a failed start, or FATAL
when it flaps); :class:`~gateway.arbiter.readiness.Readiness` settles readiness
before that choice (a replica that sent ``READY=1`` on NOTIFY_SOCKET, or a probe
that passed, counts even if the process died before the loop saw it);
:class:`~gateway.arbiter.rollout.Rollouts` owns reloads; control commands are
the table in :mod:`gateway.arbiter.handlers`::

    arbiter = Arbiter(config, loader=lambda: load_config(path), python3=sys.executable,
                      sink=LogSink(sys.stdout))
    sys.exit(arbiter.run())

Signals: SIGINT / SIGTERM stop gracefully (a second one kills), SIGQUIT kills
at once, SIGHUP reloads the config (like ``gateway reload``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

from gateway.arbiter import control, handlers, output
from gateway.arbiter.child import Child
from gateway.arbiter.events import Events
from gateway.arbiter.guard import Guard
from gateway.arbiter.logs import LogSink
from gateway.arbiter.plan import CODE_ROOT, Program, build
from gateway.arbiter.readiness import Readiness
from gateway.arbiter.rollout import Rollouts
from gateway.arbiter.runfiles import RunFiles
from gateway.arbiter.sockets import SocketPool
from gateway.arbiter.statusdoc import interpreter_version, status_document
from gateway.arbiter.units import Replica, Unit
from gateway.arbiter.writes import WriteLog
from gateway.config import GatewayConfig
from gateway.errors import GatewayError, SpawnError

TICK = 0.05

# gateway.migration.evidence.restart_evidence fits: the CLI passes it in, so that
# supervision does not depend on the migration package.
Replaced = Callable[[GatewayConfig, str, Callable[[str], None]], None]


class Arbiter:
    """Supervises every program of one gateway configuration."""

    SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGCHLD)

    def __init__(self, config: GatewayConfig, loader: Callable[[], GatewayConfig],
                 python3: str, sink: LogSink, inherited_fds: list[int] | None = None,
                 env: dict[str, str] | None = None, config_source: str = "",
                 on_replaced: Replaced | None = None) -> None:
        self.config = config
        # Told (config, program name, log) once a reloaded program's old replicas drained.
        self.on_replaced = on_replaced
        self.loader = loader
        self.python3 = python3
        self.sink = sink
        self.base_env = dict(env or {})
        self.config_source = config_source
        self.sockets = SocketPool(inherited_fds)
        self.units: list[Unit] = []
        self.sig_queue: list[int] = []
        self.stopping = False
        self.quick = False
        self.started = time.monotonic()
        self.events = Events()
        # The broker endpoint cannot change on reload (see rollout.FIXED).
        self.readiness = Readiness(config.broker.endpoint, log=self.log,
                                   wake=self.events.wake)
        self.versions: dict[str, str] = {}
        self.guard: Guard | None = None
        self.rollouts = Rollouts(self, on_replaced=self.replaced)
        self.exit_code = 0
        self.writes = WriteLog(log=self.log)
        self.files = RunFiles(self.writes)

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, supervise until asked to stop, stop everything; the exit code."""
        self.setup()
        try:
            while not (self.stopping and not any(u.alive() for u in self.units)):
                self.dispatch_signals()
                self.reap_replicas()
                self.readiness.check(self.units, time.monotonic())
                self.spawn_replicas()
                self.stop_units()
                self.murder_replicas()
                self.rollouts.advance(time.monotonic())
                self.forget_removed_units()
                self.files.publish_state(self.units, self.config.state_file)
                self.sleep()
        except BaseException:
            # The guard is about to hear "bye": take the estate down ourselves first.
            self.kill_everything()
            raise
        finally:
            self.teardown()
        return self.exit_code

    def kill_everything(self) -> None:
        """SIGKILL every process group of the estate (the arbiter is failing)."""
        for unit in self.units:
            for r in unit.all_replicas():
                if r.child is not None and r.child.poll() is None:
                    r.child.kill_group()

    def setup(self) -> None:
        """Run dir, sockets, guard, control channel, signal handling, the first plan."""
        run_dir = self.config.gateway.run_dir
        if self.config.gateway.front:
            # First, before anything exists: an estate whose front cannot listen would
            # run headless (the front FATAL), and `gateway up` must say so and exit.
            listen = self.config.gateway.listen
            try:
                self.sockets.get(listen)
            except SpawnError as exc:
                raise SpawnError(f"{exc}; another process (another gateway?) holds it: "
                                 f"stop that one, or set [gateway] listen to a free "
                                 f"address") from None
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        self.control = control.listen(self.config.control_socket)
        self.notify_path = os.path.join(run_dir, "notify.sock")
        self.events.open(self.control, self.readiness.listen(self.notify_path))
        for sig in self.SIGNALS:
            signal.signal(sig, self.signal)
        self.guard = Guard.start(self.python3, grace=2.0, cwd=self.config.base_dir,
                                 env=self.child_env({"PYTHONPATH": CODE_ROOT}))
        self.files.write_pid(os.path.join(run_dir, "arbiter.pid"))
        self.files.write_effective_config(self.config)
        self.units = [Unit(p) for p in self.plan(self.config)]
        self.log(f"arbiter {os.getpid()} up; run dir {run_dir}; guard {self.guard.pid}")
        insecure = self.config.broker.tcp_endpoints() if self.config.broker.enabled else []
        if insecure:
            self.log(f"WARNING: broker.allow_insecure_tcp: {', '.join(insecure)} without "
                     f"CURVE: any local user can register as a worker for any service")

    def teardown(self) -> None:
        """Close what ``setup`` opened; say goodbye to the guard."""
        self.events.close()
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        self.rollouts.close("the arbiter is stopping")
        self.readiness.close()
        if self.guard is not None:
            self.guard.close()
        for path in (self.config.control_socket,
                     os.path.join(self.config.gateway.run_dir, "arbiter.pid")):
            try:
                os.unlink(path)
            except OSError:
                pass
        self.control.close()
        self.sockets.close()
        self.log("arbiter stopped")

    def log(self, line: str) -> None:
        """A line from the arbiter itself."""
        self.sink.emit("arbiter", os.getpid(), line)

    # -- what reloads need (the rollout.Estate interface) --------------------------------------

    def plan(self, config: GatewayConfig) -> list[Program]:
        """The programs of ``config`` (and note each interpreter's version for status)."""
        programs = build(config, self.python3)
        for p in programs:
            if p.interpreter and p.interpreter not in self.versions:
                self.versions[p.interpreter] = interpreter_version(p.interpreter)
        return programs

    def load(self) -> GatewayConfig:
        """Read the config file again through the loader."""
        return self.loader()

    def adopt(self, config: GatewayConfig) -> None:
        """``config`` is in force from now on; the front reads it when it next starts."""
        self.config = config
        self.files.write_effective_config(config)

    def add_unit(self, unit: Unit) -> None:
        """Supervise ``unit`` (a program a reload added)."""
        self.units.append(unit)

    def replaced(self, service: str) -> None:
        """A reloaded program's old generation drained: tell ``on_replaced``."""
        if self.on_replaced is not None:
            self.on_replaced(self.config, service, self.log)

    def reload(self, conn: control.Connection | None, service: str | None) -> None:
        """Apply the config file again (see :mod:`gateway.arbiter.rollout`)."""
        self.rollouts.reload(conn, service)

    # -- signals: the handler only enqueues ------------------------------------------------------

    def signal(self, sig: int, frame: object) -> None:
        """Signal handler: queue the signal; the main loop handles it."""
        if len(self.sig_queue) < 5:
            self.sig_queue.append(sig)

    def dispatch_signals(self) -> None:
        """Call ``handle_<name>`` for each queued signal."""
        while self.sig_queue:
            sig = self.sig_queue.pop(0)
            name = signal.Signals(sig).name[3:].lower()
            getattr(self, f"handle_{name}")()

    def handle_chld(self) -> None:
        """A child exited; ``reap_replicas`` collects it on this same turn."""

    def handle_hup(self) -> None:
        """Reload the configuration, like ``gateway reload``."""
        self.log("SIGHUP: reloading")
        self.reload(None, None)

    def handle_int(self) -> None:
        """Ctrl-C: graceful stop; a second one kills."""
        self.begin_stop(quick=self.stopping)

    def handle_term(self) -> None:
        """Graceful stop; a second one kills."""
        self.begin_stop(quick=self.stopping)

    def handle_quit(self) -> None:
        """Stop at once."""
        self.begin_stop(quick=True)

    def begin_stop(self, quick: bool) -> None:
        """Stop every unit, dependents first (``stop_units`` orders it)."""
        self.log("stopping" + (" now (SIGKILL)" if quick else " gracefully"))
        self.stopping = True
        self.quick = self.quick or quick
        if self.quick:
            for r in (r for u in self.units for r in u.all_replicas()):
                if r.child is not None and r.state.alive:
                    r.child.kill_group()

    # -- the verbs of the main loop ------------------------------------------------------------

    def child_env(self, extra: dict[str, str]) -> dict[str, str]:
        """The base environment plus ``extra``."""
        env = dict(self.base_env)
        env.update(extra)
        return env

    def spawn_replica(self, unit: Unit, replica: Replica) -> None:
        """Start one replica's process; SpawnError counts as a failed start."""
        p = replica.program
        now = time.monotonic()
        argv = list(p.argv)
        fds: tuple[int, ...] = ()
        env = self.child_env(p.env)
        env["NOTIFY_SOCKET"] = self.notify_path
        env["GATEWAY_REPLICA"] = str(replica.index)
        replica.begin_start(now)
        try:
            # Inside the try: a socket that cannot be bound is a failed start of this
            # program (backoff, then FATAL), not an error that takes the estate down.
            if p.listen:
                argv, fds = self.sockets.hand_over(p.listen, argv, env)
            child = Child.spawn(argv, env, p.cwd, pass_fds=fds)
        except SpawnError as exc:
            self.log(f"{replica.label}: {exc}")
            replica.child = None
            self.exited(unit, replica, None, now)
            return
        assert self.guard is not None
        self.guard.watch(child.pgid)
        replica.spawned(child, now)
        self.events.watch_output(replica)
        self.log(f"{replica.label}: started pid {child.pid}")

    def spawn_replicas(self) -> None:
        """Start units whose dependencies are ready, and restart replicas whose backoff ended."""
        if self.stopping:
            return
        now = time.monotonic()
        settled = {u.program.name for u in self.units if u.ever_ready or u.fatal}
        for unit in self.units:
            if unit.fatal or unit.stopping:
                continue
            if not all(n in settled for n in unit.program.needs):
                continue
            for r in unit.active_replicas():
                if r.due(now):
                    self.spawn_replica(unit, r)

    def reap_replicas(self) -> None:
        """Collect exited children; each replica decides what follows (restart or FATAL)."""
        now = time.monotonic()
        noticed = False
        for unit in self.units:
            for r in unit.all_replicas():
                if r.child is None or not r.state.alive:
                    continue
                code = r.child.poll()
                if code is None:
                    continue
                if not noticed:  # a READY=1 sent just before dying still counts
                    self.readiness.read_notices()
                    noticed = True
                self.readiness.settle(unit, r, now)
                self.readiness.forget(r.child.pid)
                self.drain_output(r, final=True)
                r.child.kill_group()  # grandchildren left behind go with it
                assert self.guard is not None
                self.guard.forget(r.child.pgid)
                self.exited(unit, r, code, now)

    def exited(self, unit: Unit, r: Replica, code: int | None, now: float) -> None:
        """Let the replica take its exit (or failed spawn); a flapping one goes FATAL."""
        outcome = unit.replica_exited(r, code, now, estate_stopping=self.stopping)
        self.log(outcome.message)
        if not outcome.fatal:
            return
        if unit.in_rollout(r):
            # A new generation that flaps fails its reload; the old one keeps serving.
            self.rollouts.fail(unit, "a new replica kept crashing")
        else:
            unit.give_up(now)

    def stop_units(self) -> None:
        """While stopping, stop each unit once nothing that needs it is still running."""
        if not self.stopping:
            return
        now = time.monotonic()
        for unit in self.units:
            if unit.stopping:
                continue
            dependents = [u for u in self.units
                          if unit.program.name in u.program.needs and u.alive()]
            if dependents and not self.quick:
                continue
            unit.stop(now)

    def murder_replicas(self) -> None:
        """SIGKILL the process group of every replica that outlived its grace period."""
        now = time.monotonic()
        for unit in self.units:
            for r in unit.all_replicas():
                if r.overdue(now):
                    self.log(f"{r.label}: grace period over, SIGKILL")

    def forget_removed_units(self) -> None:
        """Drop units a reload removed once their last process exited."""
        self.units = [u for u in self.units
                      if not (u.stopping and not u.alive() and not self.stopping)]

    # -- waiting for events --------------------------------------------------------------------

    def sleep(self) -> None:
        """Wait for output, a control request, a notice or a signal, at most one tick."""
        for what, obj in self.events.wait(TICK):
            if what == "output":
                self.drain_output(obj, final=False)
            elif what == "notify":
                self.readiness.read_notices()
            elif what == "request":
                handlers.dispatch(self, *obj)

    def drain_output(self, r: Replica, final: bool) -> None:
        """Copy the replica's available output to the log sink (see :mod:`.output`)."""
        output.drain(r, self.sink, self.events, final)

    def status(self) -> dict[str, Any]:
        """The status document: arbiter, programs and their replicas, routes."""
        now = time.monotonic()
        return status_document(self.config, self.units, {
            "pid": os.getpid(), "uptime_s": round(now - self.started, 3),
            "guard_pid": self.guard.pid if self.guard else None,
            "config": self.config_source, "stopping": self.stopping,
            "write_errors": self.writes.describe(),
            "log_lines_dropped": self.sink.dropped}, self.versions, now)


__all__ = ["Arbiter", "GatewayError"]
