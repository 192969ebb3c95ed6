"""The arbiter: starts the estate in dependency order and keeps it running.

Shaped like gunicorn's arbiter. Signal handlers only enqueue the signal; the
main loop dispatches to ``handle_<signal>`` and otherwise reads as verbs:
``reap_workers`` (collect exits, schedule restarts with backoff or mark the
unit FATAL), ``check_readiness``, ``spawn_workers`` (start what is due),
``murder_workers`` (SIGKILL what outlived its grace) and ``advance_rollouts``
(finish reloads).

Restarts: a replica that dies after it was READY restarts at once (the start
limit still turns flapping into FATAL); one that dies while STARTING is a
failed start and waits out an exponential backoff. Readiness is settled
before that choice: a worker that sent ``READY=1`` on NOTIFY_SOCKET, or a
probe that passed, counts even if the process died before the loop saw it::

    arbiter = Arbiter(config, loader=lambda: load_config(path), python3=sys.executable,
                      sink=LogSink(sys.stdout))
    sys.exit(arbiter.run())

Signals: SIGINT / SIGTERM stop gracefully (a second one kills), SIGQUIT kills
at once, SIGHUP reloads the config (like ``gateway reload``).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from gateway.arbiter import control, rollout
from gateway.arbiter.child import Child
from gateway.arbiter.guard import Guard
from gateway.arbiter.logs import LogSink
from gateway.arbiter.plan import CODE_ROOT, Program, build, effective_config_path
from gateway.arbiter.ready import BrokerCheck, Check, NotifyCheck, make_check
from gateway.arbiter.sockets import SocketPool
from gateway.arbiter.statefile import write_state
from gateway.arbiter.states import State
from gateway.arbiter.units import Replica, Unit
from gateway.arbiter.writes import WriteLog
from gateway.config import GatewayConfig
from gateway.errors import GatewayError, SpawnError

TICK = 0.05


class Arbiter:
    """Supervises every program of one gateway configuration."""

    SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGCHLD)

    def __init__(self, config: GatewayConfig, loader: Callable[[], GatewayConfig],
                 python3: str, sink: LogSink, inherited_fds: list[int] | None = None,
                 env: dict[str, str] | None = None, config_source: str = "") -> None:
        self.config = config
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
        self.selector = selectors.DefaultSelector()
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ready")
        self.notices: dict[int, int] = {}
        self.versions: dict[str, str] = {}
        self.guard: Guard | None = None
        self.waiters: list[rollout.ReloadWaiter] = []
        self.published = ""
        self.exit_code = 0
        self.writes = WriteLog(log=self.log)

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, supervise until asked to stop, stop everything; the exit code."""
        self.setup()
        try:
            while not (self.stopping and not any(u.alive() for u in self.units)):
                self.dispatch_signals()
                self.reap_workers()
                self.check_readiness()
                self.spawn_workers()
                self.stop_units()
                self.murder_workers()
                self.advance_rollouts()
                self.publish_state()
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
        self.selector.register(self.control, selectors.EVENT_READ, ("control", None))
        self.notify_path = os.path.join(run_dir, "notify.sock")
        if os.path.exists(self.notify_path):
            os.unlink(self.notify_path)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.notify.setblocking(False)
        self.selector.register(self.notify, selectors.EVENT_READ, ("notify", None))
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        signal.set_wakeup_fd(self.wake_w)
        for sig in self.SIGNALS:
            signal.signal(sig, self.signal)
        self.guard = Guard.start(self.python3, grace=2.0, cwd=self.config.base_dir,
                                 env=self.child_env({"PYTHONPATH": CODE_ROOT}))
        self.write_pid_file(os.path.join(run_dir, "arbiter.pid"))
        self.write_effective_config(self.config)
        self.units = [Unit(p) for p in self.plan(self.config)]
        self.log(f"arbiter {os.getpid()} up; run dir {run_dir}; guard {self.guard.pid}")
        insecure = self.config.broker.tcp_endpoints() if self.config.broker.enabled else []
        if insecure:
            self.log(f"WARNING: broker.allow_insecure_tcp: {', '.join(insecure)} without "
                     f"CURVE: any local user can register as a worker for any service")

    def teardown(self) -> None:
        """Close what ``setup`` opened; say goodbye to the guard."""
        signal.set_wakeup_fd(-1)
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        for waiter in self.waiters:
            waiter.conn.reply(False, "the arbiter is stopping")
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.guard is not None:
            self.guard.close()
        for path in (self.config.control_socket, self.notify_path,
                     os.path.join(self.config.gateway.run_dir, "arbiter.pid")):
            try:
                os.unlink(path)
            except OSError:
                pass
        self.control.close()
        self.notify.close()
        self.sockets.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        self.log("arbiter stopped")

    def plan(self, config: GatewayConfig) -> list[Program]:
        """The programs of ``config`` (and note each interpreter's version for status)."""
        programs = build(config, self.python3)
        for p in programs:
            if p.interpreter and p.interpreter not in self.versions:
                self.versions[p.interpreter] = _version(p.interpreter)
        return programs

    def write_pid_file(self, path: str) -> None:
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

    def log(self, line: str) -> None:
        """A line from the arbiter itself."""
        self.sink.emit("arbiter", os.getpid(), line)

    def reload(self, conn: control.Connection | None, service: str | None) -> None:
        """Apply the config file again (see :mod:`gateway.arbiter.rollout`)."""
        rollout.reload(self, conn, service)

    def advance_rollouts(self) -> None:
        """Finish, or give up on, reloads in progress."""
        rollout.advance_rollouts(self)

    def fail_rollout(self, unit: Unit, reason: str) -> None:
        """Abandon ``unit``'s reload; its old generation stays."""
        rollout.fail_rollout(self, unit, reason)

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
        """A child exited; ``reap_workers`` collects it on this same turn."""

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

    def spawn_worker(self, unit: Unit, replica: Replica) -> None:
        """Start one replica's process; SpawnError counts as a failed start."""
        p = replica.program
        now = time.monotonic()
        argv = list(p.argv)
        fds: tuple[int, ...] = ()
        env = self.child_env(p.env)
        env["NOTIFY_SOCKET"] = self.notify_path
        env["GATEWAY_REPLICA"] = str(replica.index)
        replica.limit.record(now)
        replica.starts += 1
        try:
            # Inside the try: a socket that cannot be bound is a failed start of this
            # program (backoff, then FATAL), not an error that takes the estate down.
            if p.listen:
                sock = self.sockets.get(p.listen)
                fd = sock.fileno()
                port = sock.getsockname()[1] if sock.family != socket.AF_UNIX else 0
                argv = [a.replace("{fd}", str(fd)).replace("{port}", str(port)) for a in argv]
                env["GATEWAY_LISTEN_FD"] = str(fd)
                fds = (fd,)
            replica.child = Child.spawn(argv, env, p.cwd, pass_fds=fds)
        except SpawnError as exc:
            self.log(f"{replica.label}: {exc}")
            replica.child = None
            self.after_exit(unit, replica, None, now)
            return
        assert self.guard is not None
        self.guard.watch(replica.child.pgid)
        replica.state = State.STARTING
        replica.started_at, replica.started_wall = now, time.time()
        replica.kill_at = 0.0
        fd_out = replica.child.output_fd
        if fd_out is not None:
            self.selector.register(fd_out, selectors.EVENT_READ, ("output", replica))
        self.log(f"{replica.label}: started pid {replica.child.pid}")

    def spawn_workers(self) -> None:
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
            for r in unit.replicas + (unit.rollout.replicas if unit.rollout else []):
                if r.state is State.WAITING or (r.state is State.BACKOFF and now >= r.restart_at):
                    if r.state is State.BACKOFF:
                        r.restarts += 1
                    self.spawn_worker(unit, r)

    def reap_workers(self) -> None:
        """Collect exited children: restart with backoff, or FATAL when flapping."""
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
                    self.read_notices()
                    noticed = True
                self.settle_readiness(unit, r, now)
                self.notices.pop(r.child.pid, None)
                self.drain_output(r, final=True)
                r.child.kill_group()  # grandchildren left behind go with it
                assert self.guard is not None
                self.guard.forget(r.child.pgid)
                self.after_exit(unit, r, code, now)

    def after_exit(self, unit: Unit, r: Replica, code: int | None, now: float) -> None:
        """Decide what follows an exit (or a failed spawn)."""
        r.last_exit = code
        expected = r.state is State.STOPPING or r.retiring or unit.stopping or self.stopping
        how = f"exited with {code}" if code is not None and code >= 0 else (
            f"killed by {signal.Signals(-code).name}" if code is not None else "failed to start")
        r.probing = None
        if r in unit.draining:
            unit.draining.remove(r)
            r.state = State.STOPPED
            self.log(f"{r.label}: drained, {how}")
            return
        if expected:
            r.state = State.STOPPED
            self.log(f"{r.label}: stopped, {how}")
            return
        if r.limit.hit(now):
            r.state = State.FATAL
            self.log(f"{r.label}: {how}; {r.limit.burst} starts within "
                     f"{r.limit.interval:g}s: FATAL")
            self.mark_fatal(unit, r)
            return
        # A run that got READY was not a failed start: no reason to wait.
        delay = 0.0 if r.state is State.READY else r.backoff.next()
        r.state = State.BACKOFF
        r.restart_at = now + delay
        self.log(f"{r.label}: {how}; restarting in {delay:.2f}s")

    def settle_readiness(self, unit: Unit, r: Replica, now: float) -> None:
        """Before judging an exit: mark READY a STARTING replica that had become ready."""
        if r.state is not State.STARTING or r.child is None:
            return
        probe, r.probing = r.probing, None
        # A finished probe that passed, unharvested yet; a broker count (an int) is moot.
        passed = probe is not None and probe.done() and not probe.cancelled() \
            and probe.exception() is None and probe.result() is True
        if passed or self.noticed_ready(r, r.child.pid):
            self.mark_ready(unit, r, now)

    def noticed_ready(self, r: Replica, pid: int) -> bool:
        """True when ``pid`` announced readiness on NOTIFY_SOCKET (notify and broker checks).

        Our protocol workers send ``READY=1`` once the broker confirmed their
        registration, which names this process exactly, unlike a count of
        workers that the broker reports.
        """
        if r.program.ready == "notify":
            return self.notices.get(pid, 0) >= 1 + r.program.workers
        return r.program.ready == "broker" and self.notices.get(pid, 0) >= 1

    def mark_fatal(self, unit: Unit, r: Replica) -> None:
        """A flapping replica takes its unit (or only its rollout) down."""
        if unit.rollout is not None and r in unit.rollout.replicas:
            self.fail_rollout(unit, "a new replica kept crashing")
            return
        unit.fatal = True
        for other in unit.replicas:
            self.stop_replica(other)

    def check_readiness(self) -> None:
        """Probe STARTING replicas (off the loop for blocking checks)."""
        now = time.monotonic()
        for unit in self.units:
            for r in unit.replicas + (unit.rollout.replicas if unit.rollout else []):
                if r.state is not State.STARTING or r.pid is None:
                    continue
                if r.program.ready == "broker" and self.noticed_ready(r, r.pid):
                    r.probing = None  # a count probe still running is moot now
                    self.mark_ready(unit, r, now)
                    continue
                limit = r.program.ready_timeout
                if now - r.started_at > limit and r.child is not None:
                    # Like systemd's TimeoutStartSec: a start that never gets ready failed.
                    self.log(f"{r.label}: not ready after {limit:g}s, killing it")
                    r.child.kill_group()
                    continue
                if r.probing is not None:
                    if not r.probing.done():
                        continue
                    result = r.probing.result()
                    r.probing = None
                    # A broker probe answers a worker count: each registration vouches
                    # for one replica only, even when several were probed on this tick.
                    ok = result > unit.ready_count if type(result) is int else bool(result)
                    if ok and r.state is State.STARTING:
                        self.mark_ready(unit, r, now)
                    continue
                check = self.check_for(r.program, unit)
                if isinstance(check, NotifyCheck) or check.kind == "none":
                    if check.probe(r.pid):
                        self.mark_ready(unit, r, now)
                else:
                    probe = check.workers if isinstance(check, BrokerCheck) else check.probe
                    r.probing = self.pool.submit(probe, r.pid)
                    # Harvest a pass at once, not on the next tick: a replica killed right
                    # after its first answer was then ready, and restarts without backoff.
                    # (Failures and worker counts wait for the tick: no probe spinning.)
                    r.probing.add_done_callback(self.wake_on_pass)

    def wake_on_pass(self, probe: Future[Any]) -> None:
        """Wake the main loop when a readiness probe passed (runs in the probe's thread)."""
        if not probe.cancelled() and probe.exception() is None and probe.result() is True:
            self.wake()

    def wake(self) -> None:
        """Make the main loop's ``sleep`` return now (safe from any thread)."""
        try:
            os.write(self.wake_w, b"\0")
        except OSError:  # full (a wake-up is pending anyway) or closed at teardown
            pass

    def check_for(self, p: Program, unit: Unit) -> Check:
        """The readiness check of program ``p``."""
        if p.ready == "notify":
            return NotifyCheck(self.notices, p.workers)
        return make_check(p.ready, broker=self.config.broker.endpoint, service=p.service)

    def mark_ready(self, unit: Unit, r: Replica, now: float) -> None:
        """The replica takes traffic."""
        r.state = State.READY
        r.ready_at = now
        r.backoff.reset()
        if r in unit.replicas:
            unit.ever_ready = True
        self.log(f"{r.label}: ready in {now - r.started_at:.2f}s")

    def stop_replica(self, r: Replica, grace: float | None = None) -> None:
        """SIGTERM the replica's main process; ``murder_workers`` SIGKILLs it after grace."""
        if r.state in (State.WAITING, State.BACKOFF):
            r.state = State.STOPPED
            return
        if not r.state.alive or r.state is State.STOPPING or r.child is None:
            return
        r.state = State.STOPPING
        r.kill_at = time.monotonic() + (r.program.grace if grace is None else grace)
        r.child.terminate()

    def stop_units(self) -> None:
        """While stopping, stop each unit once nothing that needs it is still running."""
        if not self.stopping:
            return
        for unit in self.units:
            if unit.stopping:
                continue
            dependents = [u for u in self.units
                          if unit.program.name in u.program.needs and u.alive()]
            if dependents and not self.quick:
                continue
            unit.stopping = True
            for r in unit.all_replicas():
                self.stop_replica(r)

    def murder_workers(self) -> None:
        """SIGKILL the process group of every replica that outlived its grace period."""
        now = time.monotonic()
        for unit in self.units:
            for r in unit.all_replicas():
                if r.state is State.STOPPING and r.child is not None and now >= r.kill_at:
                    self.log(f"{r.label}: grace period over, SIGKILL")
                    r.child.kill_group()
                    r.kill_at = now + 1.0

    def publish_state(self) -> None:
        """Rewrite the state file for the HTTP front when a service's state changed."""
        services = {u.program.name: {"state": u.state.value, "ready": u.ready_count,
                                     "replicas": u.program.replicas}
                    for u in self.units}
        key = json.dumps(services, sort_keys=True)
        # A failed write is retried on a due tick until one succeeds (even when the states
        # came back to what the file last held); the estate goes on either way, and the
        # front keeps its last good view of the file.
        stale = key != self.published or self.writes.failing("state")
        if stale and self.writes.due("state"):
            path = self.config.state_file
            if self.writes.attempt("state", path,
                                   lambda: write_state(path, services, os.getpid())):
                self.published = key

    # -- waiting for events --------------------------------------------------------------------

    def sleep(self) -> None:
        """Wait for output, a control request, a notice or a signal, at most one tick."""
        for key, _ in self.selector.select(TICK):
            what, obj = key.data
            if what == "wake":
                try:
                    while os.read(self.wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            elif what == "output":
                self.drain_output(obj, final=False)
            elif what == "notify":
                self.read_notices()
            elif what == "control":
                self.accept_control()
            elif what == "conn":
                self.serve_control(obj)

    def drain_output(self, r: Replica, final: bool) -> None:
        """Copy the replica's available output to the log sink."""
        child = r.child
        if child is None:
            return
        while True:
            data = child.read_output()
            if data is None:
                break
            if data == b"":
                self.unregister_output(child)
                lines = r.output.flush()
            else:
                lines = r.output.feed(data)
            for line in lines:
                self.sink.emit(r.label, child.pid, line)
            if data == b"" or not final:
                break

    def unregister_output(self, child: Child) -> None:
        """Stop watching a child's output pipe and close it."""
        fd = child.output_fd
        if fd is not None:
            try:
                self.selector.unregister(fd)
            except (KeyError, ValueError):
                pass
        child.close_output()

    def read_notices(self) -> None:
        """sd_notify datagrams: count READY=1 / WORKER_READY=1 per main PID."""
        while True:
            try:
                data, anc, _, _ = self.notify.recvmsg(4096, socket.CMSG_SPACE(12))
            except BlockingIOError:
                return
            fields = dict(line.partition("=")[::2]
                          for line in data.decode("ascii", "replace").splitlines())
            pid = 0
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", cdata[:12])[0]
            if fields.get("MAINPID", "").isdigit():
                pid = int(fields["MAINPID"])
            if fields.get("READY") == "1" or fields.get("WORKER_READY") == "1":
                self.notices[pid] = self.notices.get(pid, 0) + 1

    def accept_control(self) -> None:
        """Accept a CLI connection on the control socket."""
        try:
            sock, _ = self.control.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        conn = control.Connection(sock)
        self.selector.register(sock, selectors.EVENT_READ, ("conn", conn))

    def serve_control(self, conn: control.Connection) -> None:
        """Read a control request and answer it (a reload answers once done)."""
        try:
            request = conn.read_request()
        except BlockingIOError:
            return
        except (EOFError, OSError, ValueError) as exc:
            self.selector.unregister(conn.sock)
            conn.reply(False, f"bad request: {exc}")
            return
        if request is None:
            return
        self.selector.unregister(conn.sock)
        cmd = request["cmd"]
        if cmd == "status":
            conn.reply(True, self.status())
        elif cmd == "stop":
            conn.reply(True, {"stopping": True})
            self.begin_stop(quick=bool(request.get("now")))
        elif cmd == "reload":
            service = request.get("service")
            self.reload(conn, service if isinstance(service, str) and service else None)
        else:
            conn.reply(False, f"unknown command {cmd!r}")

    def status(self) -> dict[str, Any]:
        """The status document: arbiter, programs and their replicas, routes."""
        now = time.monotonic()
        units = {u.program.name: u for u in self.units}
        routes = []
        for route in self.config.routes:
            unit = units.get(route.service) if route.service else None
            state = "up" if unit is None else (
                "fatal" if unit.fatal else "up" if unit.ready_count else "down")
            routes.append({"prefix": route.prefix, "backend": route.backend,
                           "service": route.service, "target": route.target, "state": state})
        return {
            "arbiter": {"pid": os.getpid(), "uptime_s": round(now - self.started, 3),
                        "guard_pid": self.guard.pid if self.guard else None,
                        "config": self.config_source, "run_dir": self.config.gateway.run_dir,
                        "listen": self.config.gateway.listen,
                        "broker": self.config.broker.endpoint,
                        # What services get as GATEWAY_REDIS_URL ("" when no Redis is used).
                        "redis": self.config.redis_url if (
                            self.config.redis.url or self.config.wants_private_redis) else "",
                        "state_file": self.config.state_file, "stopping": self.stopping,
                        "write_errors": self.writes.describe(),
                        "log_lines_dropped": self.sink.dropped},
            "programs": [u.describe(now, self.versions) for u in self.units],
            "routes": routes,
        }


def _version(interpreter: str) -> str:
    """``cpython-2.7.18``-style version of a Python interpreter, or "" if it does not run."""
    code = ("import platform,sys;"
            "print('%s-%s' % (platform.python_implementation().lower(), "
            "platform.python_version()))")
    try:
        out = subprocess.run([interpreter, "-c", code], capture_output=True, timeout=10,
                             check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.decode("ascii", "replace").strip()


__all__ = ["Arbiter", "GatewayError"]
