"""Readiness of STARTING replicas: sd_notify notices and probes run off the main loop.

The arbiter owns one :class:`Readiness`. Replicas announce ``READY=1`` (and
the HTTP front ``WORKER_READY=1`` per process it runs) on the datagram
socket ``NOTIFY_SOCKET``; the other checks (broker ``mmi.service``, http, tcp)
run in a small thread pool so that a slow probe never stalls supervision::

    readiness = Readiness(broker_endpoint, log=arbiter.log, wake=arbiter.wake)
    sock = readiness.listen(os.path.join(run_dir, "notify.sock"))  # poll it
    readiness.read_notices()          # when the socket is readable
    readiness.check(units, now)       # each turn: marks replicas READY, kills late ones
    readiness.settle(unit, r, now)    # before judging an exit
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from gateway.arbiter.plan import Program
from gateway.arbiter.ready import BrokerCheck, Check, NotifyCheck, make_check
from gateway.arbiter.states import State
from gateway.arbiter.units import Replica, Unit


class Readiness:
    """Decides when a STARTING replica becomes READY, or that it never will."""

    def __init__(self, broker: str, log: Callable[[str], None],
                 wake: Callable[[], None]) -> None:
        self.broker = broker
        self.log = log
        self.wake = wake
        self.notices: dict[int, int] = {}
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ready")
        self.path = ""
        self.sock: socket.socket | None = None

    def listen(self, path: str) -> socket.socket:
        """Bind the NOTIFY_SOCKET datagram socket (credentials on) at ``path``."""
        if os.path.exists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.setblocking(False)
        self.path, self.sock = path, sock
        return sock

    def close(self) -> None:
        """Abandon running probes; remove and close the notify socket."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.sock is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.sock.close()

    def read_notices(self) -> None:
        """sd_notify datagrams: count READY=1 / WORKER_READY=1 per main PID."""
        if self.sock is None:
            return
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
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

    def forget(self, pid: int) -> None:
        """The process ``pid`` is gone: its notices mean nothing any more."""
        self.notices.pop(pid, None)

    def noticed_ready(self, r: Replica, pid: int) -> bool:
        """True when ``pid`` announced readiness on NOTIFY_SOCKET (notify and broker checks).

        Our protocol workers send ``READY=1`` once the broker confirmed their
        registration, which names this process exactly, unlike a count of
        registrations that the broker reports.
        """
        if r.program.ready == "notify":
            return self.notices.get(pid, 0) >= 1 + r.program.front_processes
        return r.program.ready == "broker" and self.notices.get(pid, 0) >= 1

    def settle(self, unit: Unit, r: Replica, now: float) -> None:
        """Before judging an exit: mark READY a STARTING replica that had become ready."""
        if r.state is not State.STARTING or r.child is None:
            return
        probe, r.probing = r.probing, None
        # A finished probe that passed, unharvested yet; a broker count (an int) is moot.
        passed = probe is not None and probe.done() and not probe.cancelled() \
            and probe.exception() is None and probe.result() is True
        if passed or self.noticed_ready(r, r.child.pid):
            self.log(unit.mark_ready(r, now))

    def check(self, units: list[Unit], now: float) -> None:
        """Probe STARTING replicas (off the loop for blocking checks)."""
        for unit in units:
            for r in unit.active_replicas():
                if r.state is State.STARTING and r.pid is not None:
                    self.check_replica(unit, r, r.pid, now)

    def check_replica(self, unit: Unit, r: Replica, pid: int, now: float) -> None:
        """One STARTING replica: READY, killed for being late, or a probe under way."""
        if r.program.ready == "broker" and self.noticed_ready(r, pid):
            r.probing = None  # a count probe still running is moot now
            self.log(unit.mark_ready(r, now))
            return
        limit = r.program.ready_timeout
        if now - r.started_at > limit and r.child is not None:
            # Like systemd's TimeoutStartSec: a start that never gets ready failed.
            self.log(f"{r.label}: not ready after {limit:g}s, killing it")
            r.child.kill_group()
            return
        if r.probing is not None:
            if not r.probing.done():
                return
            result = r.probing.result()
            r.probing = None
            # A broker probe answers a registration count: each registration vouches
            # for one replica only, even when several were probed on this tick.
            ok = result > unit.ready_count if type(result) is int else bool(result)
            if ok and r.state is State.STARTING:
                self.log(unit.mark_ready(r, now))
            return
        check = self.check_for(r.program)
        if isinstance(check, NotifyCheck) or check.kind == "none":
            if check.probe(pid):
                self.log(unit.mark_ready(r, now))
        else:
            probe = check.workers if isinstance(check, BrokerCheck) else check.probe
            r.probing = self.pool.submit(probe, pid)
            # Harvest a pass at once, not on the next tick: a replica killed right
            # after its first answer was then ready, and restarts without backoff.
            # (Failures and registration counts wait for the tick: no probe spinning.)
            r.probing.add_done_callback(self.wake_on_pass)

    def wake_on_pass(self, probe: Future[Any]) -> None:
        """Wake the main loop when a readiness probe passed (runs in the probe's thread)."""
        if not probe.cancelled() and probe.exception() is None and probe.result() is True:
            self.wake()

    def check_for(self, p: Program) -> Check:
        """The readiness check of program ``p``."""
        if p.ready == "notify":
            return NotifyCheck(self.notices, p.front_processes)
        return make_check(p.ready, broker=self.broker, service=p.service)
