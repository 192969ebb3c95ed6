"""A private network of hosts for tests: Linux network namespaces on a bridge.

Each "host" is a network namespace with its own loopback and one veth
``eth0`` on a private /24; the other end of every veth is on a bridge that
lives in a namespace of its own, so nothing touches the machine's own
network. Names carry a random run id (two runs never collide), and
:meth:`Lab.close` removes every namespace (and with it every veth) and kills
every process it started, by PID, even when the test failed::

    lab = Lab.create()                 # raises LabUnavailable (with why) if it cannot
    try:
        ga = lab.host("ga", "10.231.0.11")
        proc = lab.spawn(ga, ["redis-server", "--bind", ga.ip])
        lab.link(ga, up=False)         # pull the cable; up=True puts it back
        lab.kill_host(ga)              # SIGKILL everything in the namespace, by PID
    finally:
        lab.close()

Commands run in a host with ``ip netns exec``, which execs the command in
place, so the PID returned is the command's own.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import IO, Any

from tests.support.procs import REPO, child_env, wait_until

SUBNET = "10.231.0"


class LabUnavailable(Exception):
    """This machine cannot make network namespaces (not root, no iproute2, a sandbox)."""


@dataclass
class Host:
    """One namespace: its name, its address on the lab network, its processes."""

    name: str
    netns: str
    ip: str
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20,
                          check=check)


class Lab:
    """Namespaces, veths and processes of one test run; see the module docstring."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.switch = f"gwt{run_id}sw"
        self.hosts: dict[str, Host] = {}
        self._made: list[str] = []

    @classmethod
    def create(cls) -> Lab:
        """A lab with its bridge up, or LabUnavailable saying why not."""
        if shutil.which("ip") is None:
            raise LabUnavailable("iproute2 (`ip`) is not installed")
        if os.geteuid() != 0:
            raise LabUnavailable("network namespaces need root (ip netns add)")
        lab = cls(secrets.token_hex(3))
        try:
            lab._netns(lab.switch)
            lab._in(lab.switch, "link", "add", "br0", "type", "bridge")
            lab._in(lab.switch, "link", "set", "br0", "up")
        except (subprocess.CalledProcessError, OSError) as exc:
            lab.close()
            err = getattr(exc, "stderr", "") or str(exc)
            raise LabUnavailable(f"cannot create a network namespace here: {err.strip()}") \
                from None
        return lab

    def _netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _in(self, netns: str, *args: str) -> None:
        _ip("-n", netns, *args)

    def host(self, name: str, ip: str) -> Host:
        """A new host on the lab network at ``ip`` (/24)."""
        netns = f"gwt{self.run_id}{name}"
        self._netns(netns)
        peer = f"v{name}"
        # Both ends are made directly inside their namespaces: no name in the machine's
        # own namespace, even for a moment, so parallel runs cannot clash.
        _ip("link", "add", "eth0", "netns", netns, "type", "veth", "peer", "name", peer,
            "netns", self.switch)
        self._in(self.switch, "link", "set", peer, "master", "br0")
        self._in(self.switch, "link", "set", peer, "up")
        self._in(netns, "addr", "add", f"{ip}/24", "dev", "eth0")
        self._in(netns, "link", "set", "eth0", "up")
        host = Host(name, netns, ip)
        self.hosts[name] = host
        return host

    def spawn(self, host: Host, argv: list[str], env: dict[str, str] | None = None,
              stdout: IO[Any] | int | None = None, stderr: IO[Any] | int | None = None,
              cwd: str = REPO) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``host`` (its own session); it is killed by :meth:`close`."""
        proc = subprocess.Popen(["ip", "netns", "exec", host.netns, *argv], cwd=cwd,
                                env=child_env(env), stdout=stdout, stderr=stderr,
                                start_new_session=True)
        host.procs.append(proc)
        return proc

    def run(self, host: Host, argv: list[str], timeout: float,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``host`` to its end (bounded by ``timeout``), output captured."""
        return subprocess.run(["ip", "netns", "exec", host.netns, *argv], cwd=REPO,
                              env=child_env(env), capture_output=True, text=True,
                              timeout=timeout)

    def link(self, host: Host, up: bool) -> None:
        """Put ``host``'s cable in (up) or pull it out (down): silence, no FIN, no RST."""
        self._in(host.netns, "link", "set", "eth0", "up" if up else "down")

    def pids(self, host: Host) -> list[int]:
        """Every process in ``host``'s namespace."""
        out = _ip("netns", "pids", host.netns, check=False).stdout
        return [int(p) for p in out.split()]

    def kill_host(self, host: Host) -> int:
        """SIGKILL every process in ``host`` by PID, as a power cut would; how many."""
        pids = self.pids(host)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in host.procs:
            if proc.poll() is None:
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        return len(pids)

    def close(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL by PID) and remove every namespace."""
        procs = [p for h in self.hosts.values() for p in h.procs]
        for proc in procs:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.time() + 5.0
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(5)
        # Anything left in a namespace (a grandchild in a session of its own).
        for host in self.hosts.values():
            self.kill_host(host)
        for name in reversed(self._made):
            _ip("netns", "del", name, check=False)
        self._made.clear()
        if any(self._exists(name) for name in (self.switch, *(h.netns for h in
                                                              self.hosts.values()))):
            wait_until(lambda: not any(self._exists(h.netns) for h in self.hosts.values()),
                       5.0, what="the lab's namespaces removed")

    @staticmethod
    def _exists(name: str) -> bool:
        return os.path.exists(os.path.join("/var/run/netns", name))


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
