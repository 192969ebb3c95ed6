"""No orphans: kill -9 the arbiter and every process of the estate is gone within 5 s.

Verified by process group and PID (from the status output and /proc), never by name:
gunicorn's workers (grandchildren of the arbiter) and a shell's children included.
"""

from __future__ import annotations

import os
import signal

from tests.integration.arbiter.conftest import alive, fdhttp_service, group_members
from tests.support.procs import free_port, wait_until


def test_kill_9_of_the_arbiter_leaves_no_process_behind(estate):
    port = free_port()
    e = estate(fdhttp_service("web", port, replicas=2) + """
[services.shell]
runtime = "command"
command = "sh -c 'sleep 300 & sleep 300 & wait'"
""")
    status = e.status()
    groups = {r["pgid"] for p in status["programs"] for r in p["replicas"]}
    pids = {pid for g in groups for pid in group_members(g)}
    guard = status["arbiter"]["guard_pid"]
    front = e.program("http")["replicas"][0]["pgid"]
    shell = e.program("shell")["replicas"][0]["pgid"]
    assert len(group_members(front)) >= 3  # gunicorn master + 2 workers
    wait_until(lambda: len(group_members(shell)) >= 3, timeout=5, what="sh and its sleeps")
    pids |= set(group_members(shell))
    assert alive(guard)

    os.kill(e.proc.pid, signal.SIGKILL)
    e.proc.wait()

    def all_gone() -> bool:
        return not any(group_members(g) for g in groups) and not any(alive(p) for p in pids)
    wait_until(all_gone, timeout=5, interval=0.05, what="every process of the estate gone")
    wait_until(lambda: not alive(guard), timeout=5, what="the guard exits")


def test_sigterm_to_the_arbiter_stops_children_and_grandchildren(estate):
    e = estate("""
[services.shell]
runtime = "command"
command = "sh -c 'sleep 300 & sleep 300 & wait'"
stop_grace_s = 1
""", front=False)
    shell = e.program("shell")["replicas"][0]["pgid"]
    wait_until(lambda: len(group_members(shell)) >= 3, timeout=5, what="sh and its sleeps")
    e.proc.send_signal(signal.SIGTERM)
    assert e.proc.wait(timeout=15) == 0
    assert group_members(shell) == []
