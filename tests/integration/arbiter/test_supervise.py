"""``gateway up`` over real processes: start order, readiness, restarts, FATAL, graceful stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import sys
import time

import pytest

from tests.integration.arbiter.conftest import alive, fdhttp_service, group_members
from tests.support.procs import free_port, wait_until


def web_route(port: int, name: str = "web") -> str:
    return f"""
[[routes]]
prefix = "/{name}"
backend = "http"
target = "http://127.0.0.1:{port}"
service = "{name}"
"""


def test_starts_in_dependency_order_and_serves(estate):
    port = free_port()
    e = estate(web_route(port) + fdhttp_service("web", port))
    status = e.status()
    names = [p["name"] for p in status["programs"]]
    assert names == ["broker", "http", "web"]
    lines = [json.loads(x) for x in e.log().splitlines() if x.startswith("{")]
    started = [x["line"].split(":")[0] for x in lines
               if x["proc"] == "arbiter" and ": started pid" in x["line"]]
    assert started == ["broker.0", "http.0", "web.0"]
    code, body, _ = e.get("/web/x")
    assert code == 200 and json.loads(body)["impl"] == "py3"
    assert status["routes"][0]["state"] == "up"
    web = e.program("web")
    assert web["replicas"][0]["pid"] and web["replicas"][0]["uptime_s"] >= 0


def test_supervises_plain_commands_without_front(estate):
    e = estate("""
[services.sleeper]
runtime = "command"
command = "sh -c 'echo hello from sh; exec sleep 60'"
replicas = 3
""", front=False)
    prog = e.program("sleeper")
    assert prog["ready"] == 3
    pids = [r["pid"] for r in prog["replicas"]]
    assert len(set(pids)) == 3 and all(alive(p) for p in pids)
    # each replica leads its own process group
    assert all(os.getpgid(p) == p for p in pids)
    wait_until(lambda: "hello from sh" in e.log(), timeout=5, what="prefixed output")


def arbiter_lines(e, prefix: str) -> list[str]:
    """The arbiter's own log lines (the whole log, not the tail ``e.log()`` keeps)."""
    with open(e.log_path, encoding="utf-8", errors="replace") as fh:
        lines = [json.loads(x) for x in fh if x.startswith('{"ts"')]
    return [x["line"] for x in lines if x["proc"] == "arbiter" and x["line"].startswith(prefix)]


def test_kill_9_of_a_ready_replica_restarts_at_once(estate):
    e = estate("""
[services.sleeper]
runtime = "command"
command = ["sleep", "60"]
""", front=False)
    pid = e.program("sleeper")["replicas"][0]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: (r := e.program("sleeper")["replicas"][0])["pid"] not in (None, pid)
               and r["state"] == "READY", timeout=5, what="restart")
    assert e.program("sleeper")["replicas"][0]["restarts"] == 1
    # It had been READY, so this was no failed start: no backoff.
    assert arbiter_lines(e, "sleeper.0: killed by SIGKILL") == [
        "sleeper.0: killed by SIGKILL; restarting in 0.00s"]


def test_crash_loop_goes_fatal_and_its_route_answers_503_fast(estate):
    port = free_port()
    body = web_route(port, "crashy") + f"""
[services.crashy]
runtime = "command"
command = ["{sys.executable}", "-c", "import sys; print('boom'); sys.exit(3)"]
listen = "127.0.0.1:{port}"
ready = "http:http://127.0.0.1:{port}/"
"""
    e = estate(body, start=False).launch()
    wait_until(lambda: e.states().get("crashy") == "FATAL", timeout=20, what="FATAL")
    starts = [x for x in e.log().splitlines() if '"crashy.0: started pid' in x]
    assert len(starts) == 5, e.log()
    # Failed starts (it never got ready) back off exponentially before the start limit hits.
    delays = [line.rsplit(" ", 1)[1] for line in arbiter_lines(e, "crashy.0: exited with 3;")]
    assert delays == ["0.10s", "0.20s", "0.40s", "0.80s", "FATAL"], e.log()
    wait_until(lambda: e.states().get("http") == "READY", timeout=10, what="front")
    timings = []
    for _ in range(20):
        code, body_, took = e.get("/crashy/anything")
        assert code == 503, body_
        timings.append(took)
    assert json.loads(body_)["code"] == "unavailable"
    # "At once": no request waits for a worker or a deadline (the route's timeout is
    # seconds); the median is printed for the report.
    print(f"FATAL route 503: median {statistics.median(timings) * 1000:.1f} ms")
    assert max(timings) < 1.0, timings
    assert e.status()["routes"][0]["state"] == "fatal"


def test_a_socket_that_cannot_be_bound_is_a_failed_start_not_an_arbiter_crash(estate):
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        e = estate(fdhttp_service("busy", port) + """
[services.sleeper]
runtime = "command"
command = ["sleep", "60"]
""", front=False, start=False).launch()
        wait_until(lambda: e.states().get("busy") == "FATAL", timeout=30, what="busy FATAL")
        assert e.proc is not None and e.proc.poll() is None, e.log()
        assert e.states()["sleeper"] == "READY"
        log = e.log()
        assert log.count("cannot listen on 127.0.0.1:") == 5, log
    finally:
        taken.close()


def test_ctrl_c_stops_everything_gracefully(estate):
    port = free_port()
    e = estate(web_route(port) + fdhttp_service("web", port, replicas=2))
    status = e.status()
    groups = [r["pgid"] for p in status["programs"] for r in p["replicas"]]
    e.proc.send_signal(signal.SIGINT)
    assert e.proc.wait(timeout=20) == 0
    assert all(not group_members(g) for g in groups)
    assert '"drained"' in e.log()  # the web replicas drained on SIGTERM
    assert not os.path.exists(os.path.join(e.run_dir, "arbiter.sock"))


WSGI_SERVICE = """
[[routes]]
prefix = "/web"
backend = "wsgi"
service = "web"

[services.web]
runtime = "py2"
app = "tests.integration.arbiter.wsgiapp:app"
start_limit_burst = 1000
"""


@pytest.mark.slow
@pytest.mark.timeout(300)  # the loop below has its own 240 s bound
@pytest.mark.parametrize("backend", ["http", "wsgi"])
def test_kill_9_routable_again_after_each_of_50_kills(estate, backend):
    port = free_port()
    if backend == "http":
        e = estate(web_route(port) + fdhttp_service(
            "web", port, extra="start_limit_burst = 1000"))
    else:
        e = estate(WSGI_SERVICE)
    recoveries = []
    t_end = time.monotonic() + 240
    for _ in range(50):
        assert time.monotonic() < t_end, "the 50 kills took too long"
        pid = e.program("web")["replicas"][0]["pid"]
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda pid=pid: not alive(pid), timeout=2, what="killed")

        def routable(pid: int = pid) -> bool:
            code, body, _ = e.get("/web/", timeout=2)
            return code == 200 and json.loads(body)["pid"] != pid
        wait_until(routable, timeout=5, interval=0.01, what="routable again")
        recoveries.append(time.monotonic() - t0)
    if backend == "wsgi":
        # Each worker announced its registration (READY=1 on NOTIFY_SOCKET) before it served
        # the 200 that preceded its kill, so no death counted as a failed start.
        restarts = arbiter_lines(e, "web.0: killed by SIGKILL")
        assert restarts == ["web.0: killed by SIGKILL; restarting in 0.00s"] * 50, restarts
    recoveries.sort()
    p99 = recoveries[int(len(recoveries) * 0.99) - 1]
    # Each recovery is bounded by the 5 s wait above; the p99 is reported, not gated,
    # because timing goals are not CI assertions on a shared 2-CPU machine.
    print(f"{backend}: recovery after kill -9: p50 {recoveries[24]:.3f}s p99 {p99:.3f}s "
          f"max {recoveries[-1]:.3f}s")
    assert len(recoveries) == 50


GATED_WORKER = """
import os, runpy, sys, time
if os.environ["GATEWAY_REPLICA"] == "1":
    deadline = time.time() + 60
    while not os.path.exists(os.environ["GATE"]):  # the test makes the file
        if time.time() > deadline:
            sys.exit("no gate within 60 s")
        time.sleep(0.02)
sys.argv = ["protocol.wsgi", "--broker", os.environ["GATEWAY_BROKER"], "--service", "app",
            "py3_services.highlight:app"]
runpy.run_module("protocol.wsgi", run_name="__main__")
"""


@pytest.mark.slow
def test_one_broker_registration_makes_one_replica_ready(estate, workdir):
    gate = os.path.join(workdir, "gate")
    e = estate(f"""
[services.app]
runtime = "command"
command = [{json.dumps(sys.executable)}, "-c", {json.dumps(GATED_WORKER)}]
ready = "broker"
replicas = 2
env = {{ GATE = {json.dumps(gate)} }}
""", start=False).launch()
    wait_until(lambda: e.states().get("app") in ("READY", "STARTING") and
               e.program("app")["ready"] >= 1, timeout=30, what="first replica READY")
    # Replica 1 has not registered: however often the arbiter probes (every status read
    # below is one of its loop turns), it stays STARTING for its first second and more.
    def unregistered_for_a_second() -> bool:
        replicas = e.program("app")["replicas"]
        states = [r["state"] for r in replicas]
        assert states == ["READY", "STARTING"], states
        return bool(replicas[1]["uptime_s"] and replicas[1]["uptime_s"] >= 1.0)
    wait_until(unregistered_for_a_second, timeout=20, interval=0.1,
               what="replica 1 up for 1 s without registering")
    with open(gate, "w", encoding="ascii"):
        pass
    wait_until(lambda: e.program("app")["ready"] == 2, timeout=20, what="second replica READY")
