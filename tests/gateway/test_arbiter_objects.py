"""Supervision as objects: replicas' own transitions, the restart policy, rollouts, handlers.

Replicas here run real child processes (a sleeping Python); rollouts reload real
parsed configs through the :class:`~gateway.arbiter.rollout.Estate` interface,
and control handlers answer over a real unix socket pair.
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

import pytest

from gateway.arbiter import control, handlers
from gateway.arbiter.child import Child
from gateway.arbiter.plan import Program, build
from gateway.arbiter.policy import Restart, RestartPolicy
from gateway.arbiter.rollout import Rollouts
from gateway.arbiter.states import State
from gateway.arbiter.units import Unit, describe_exit
from gateway.config import GatewayConfig, parse
from tests.support.procs import wait_until

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")


def program(name: str = "svc", replicas: int = 1, burst: int = 3, **kw: Any) -> Program:
    return Program(name, SLEEPER, replicas=replicas, burst=burst, interval=10.0, grace=5.0,
                   **kw)


@pytest.fixture
def children():
    """Spawn real sleeping children; every one is killed by its group at the end."""
    made: list[Child] = []

    def spawn() -> Child:
        made.append(Child.spawn(SLEEPER, {}, "/"))
        return made[-1]
    yield spawn
    for child in made:
        child.kill_group()
        wait_until(lambda c=child: c.poll() is not None, timeout=10, what="child reaped")
        child.close_output()


def test_restart_policy_backs_off_failed_starts_and_restarts_a_ready_run_at_once():
    policy = RestartPolicy(burst=4, interval=10.0)
    for t in (0.0, 1.0):
        policy.started(t)
    assert policy.after_exit(1.5, was_ready=False) == Restart(0.1)
    assert policy.after_exit(1.6, was_ready=False) == Restart(0.2)
    assert policy.after_exit(1.7, was_ready=True) == Restart(0.0)
    policy.ready()
    assert policy.after_exit(1.8, was_ready=False) == Restart(0.1)  # backoff forgotten
    policy.started(2.0)
    policy.started(3.0)
    assert policy.after_exit(3.5, was_ready=True) is None  # 4 starts in 10 s: FATAL
    assert policy.describe_limit() == "4 starts within 10s"
    policy.retune(10, 10.0)  # a reload raised the limit; counted starts stay
    assert policy.after_exit(3.6, was_ready=True) == Restart(0.0)
    assert len(policy.limit.starts) == 4


def test_a_replica_walks_its_states_with_a_real_process(children):
    unit = Unit(program())
    r = unit.replicas[0]
    assert r.state is State.WAITING and r.due(0.0)
    r.begin_start(100.0)
    r.spawned(children(), 100.0)
    assert r.state is State.STARTING and r.pid is not None and not r.due(100.0)
    assert unit.mark_ready(r, 100.5) == "svc.0: ready in 0.50s"
    assert r.state is State.READY and unit.ever_ready and unit.ready_count == 1
    r.stop(101.0)
    assert r.state is State.STOPPING and r.kill_at == 106.0
    assert r.child is not None
    code = wait_until(r.child.poll, timeout=10, what="SIGTERM honoured")
    outcome = unit.replica_exited(r, code, 102.0, estate_stopping=False)
    assert outcome.message == "svc.0: stopped, killed by SIGTERM" and not outcome.fatal
    assert r.state is State.STOPPED and r.last_exit == -15


def test_unexpected_exits_back_off_then_go_fatal(children):
    unit = Unit(program(burst=3))
    r = unit.replicas[0]
    outcomes = []
    for now in (0.0, 1.0, 2.0):
        assert r.due(now + 1.0)
        r.begin_start(now)
        r.spawned(children(), now)
        outcomes.append(unit.replica_exited(r, 1, now + 0.5, estate_stopping=False))
    assert [o.message for o in outcomes] == [
        "svc.0: exited with 1; restarting in 0.10s",
        "svc.0: exited with 1; restarting in 0.20s",
        "svc.0: exited with 1; 3 starts within 10s: FATAL"]
    assert [o.fatal for o in outcomes] == [False, False, True]
    assert r.state is State.FATAL and (r.starts, r.restarts) == (3, 2)
    unit.give_up(3.0)
    assert unit.state is State.FATAL


def test_a_stop_that_outlives_its_grace_is_killed(children):
    unit = Unit(program())
    r = unit.replicas[0]
    r.begin_start(0.0)
    child = children()
    r.spawned(child, 0.0)
    child.proc.send_signal(19)  # SIGSTOP: SIGTERM stays pending, the process stays
    r.stop(1.0, grace=2.0)
    assert not r.overdue(2.9)
    assert r.overdue(3.0) and r.kill_at == 4.0
    assert wait_until(child.poll, timeout=10, what="SIGKILL") == -9
    assert unit.replica_exited(r, -9, 3.1, False).message == "svc.0: stopped, killed by SIGKILL"


def test_unit_rollout_promotes_the_new_generation_and_drains_the_old(children):
    unit = Unit(program(replicas=2))
    for r in unit.replicas:
        r.begin_start(0.0)
        r.spawned(children(), 0.0)
        unit.mark_ready(r, 0.1)
    new = program(replicas=2, ready_timeout=30.0, env={"V": "2"})
    unit.begin_rollout(new, "changed", 1.0)
    assert unit.rollout is not None and unit.rollout.deadline == 31.0
    assert [r.label for r in unit.rollout.replicas] == ["svc.0@1", "svc.1@1"]
    assert all(unit.in_rollout(r) for r in unit.rollout.replicas)
    for r in unit.rollout.replicas:
        r.begin_start(1.0)
        r.spawned(children(), 1.0)
        unit.mark_ready(r, 1.2)
    old = list(unit.replicas)
    assert unit.promote(2.0) == 2
    assert unit.generation == 1 and unit.program is new and unit.rollout is None
    assert unit.draining == old and all(r.state is State.STOPPING for r in old)
    assert unit.ready_count == 2
    for r in old:
        assert r.child is not None
        code = wait_until(r.child.poll, timeout=10, what="old replica drained")
        assert unit.replica_exited(r, code, 3.0, False).message.endswith(
            "drained, killed by SIGTERM")
    assert unit.draining == [] and unit.state is State.READY


def test_an_abandoned_rollout_keeps_the_old_generation():
    unit = Unit(program())
    unit.begin_rollout(program(env={"V": "2"}), "changed", 0.0)
    new = unit.rollout.replicas if unit.rollout else []
    assert unit.abandon_rollout(1.0) and not unit.abandon_rollout(1.0)
    assert unit.rollout is None and [r.state for r in new] == [State.STOPPED]
    assert unit.replicas[0].state is State.WAITING and unit.generation == 0


def test_update_in_place_retunes_limits_without_new_replicas():
    unit = Unit(program(burst=3))
    r = unit.replicas[0]
    changes = unit.update_in_place(program(burst=7))
    assert changes == ["start_limit_burst 3 -> 7"]
    assert unit.replicas == [r] and r.policy.limit.burst == 7


def test_exit_descriptions():
    assert describe_exit(None) == "failed to start"
    assert describe_exit(3) == "exited with 3"
    assert describe_exit(-9) == "killed by SIGKILL"


BASE = """
[gateway]
front = false
[broker]
enabled = false
[services.a]
runtime = "command"
command = ["/bin/true"]
"""


class Estate:
    """A real, minimal supervisor for rollouts: config, units, a log; no processes."""

    def __init__(self, config: GatewayConfig, path: str) -> None:
        self.config = config
        self.config_source = path
        self.path = path
        self.units = [Unit(p) for p in self.plan(config)]
        self.lines: list[str] = []
        self.adopted = 0

    def log(self, line: str) -> None:
        self.lines.append(line)

    def load(self) -> GatewayConfig:
        with open(self.path, encoding="utf-8") as fh:
            return parse(fh.read(), base_dir=self.config.base_dir)

    def plan(self, config: GatewayConfig) -> list[Program]:
        return build(config, sys.executable)

    def adopt(self, config: GatewayConfig) -> None:
        self.config = config
        self.adopted += 1

    def add_unit(self, unit: Unit) -> None:
        self.units.append(unit)


def answer(conn_client: socket.socket) -> Any:
    conn_client.settimeout(5)
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn_client.recv(65536)
        assert chunk, "closed without a reply"
        data += chunk
    return json.loads(data)


@pytest.fixture
def estate(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text(BASE)
    return Estate(parse(BASE, base_dir=str(tmp_path)), str(path)), path


def test_rollouts_add_remove_and_answer_once_settled(estate):
    est, path = estate
    path.write_text(BASE.replace("[services.a]", "[services.b]"))
    replaced: list[str] = []
    rollouts = Rollouts(est, on_replaced=replaced.append)
    server, client = socket.socketpair()
    with client:
        rollouts.reload(control.Connection(server), None)
        assert est.adopted == 1 and "b: added" in est.lines
        assert "a: removed from the config, stopping" in est.lines
        rollouts.advance(1.0)
        assert rollouts.waiters  # b is not ready yet
        b = next(u for u in est.units if u.program.name == "b")
        unit_a = next(u for u in est.units if u.program.name == "a")
        assert unit_a.stopping
        b.mark_ready(b.replicas[0], 1.5)
        rollouts.advance(2.0)
        assert rollouts.waiters == []
        reply = answer(client)
    assert reply["ok"] and reply["result"]["added"] == ["b"]
    assert reply["result"]["removed"] == ["a"] and reply["result"]["restarted"] == []
    assert replaced == []


def test_a_rollout_that_misses_its_deadline_fails_the_reload(estate):
    est, path = estate
    path.write_text(BASE.replace('command = ["/bin/true"]', 'command = ["/bin/true", "x"]'))
    rollouts = Rollouts(est)
    server, client = socket.socketpair()
    with client:
        rollouts.reload(control.Connection(server), None)
        unit = est.units[0]
        assert unit.rollout is not None
        rollouts.advance(unit.rollout.deadline + 1)
        reply = answer(client)
    assert not reply["ok"]
    assert reply["error"].startswith("a: not ready within 60s (restarted a)")
    assert unit.rollout is None and unit.generation == 0


def test_a_reload_that_changes_a_fixed_key_is_refused(estate):
    est, path = estate
    path.write_text(BASE + '[redis]\nurl = "redis://127.0.0.1:1/0"\n')
    rollouts = Rollouts(est)
    server, client = socket.socketpair()
    with client:
        rollouts.reload(control.Connection(server), None)
        reply = answer(client)
    assert reply == {"ok": False,
                     "error": "redis.url: changed; this needs a restart, not a reload"}
    assert est.adopted == 0 and est.lines == [f"reload refused: {reply['error']}"]


def test_a_promoted_generation_is_announced_once_the_old_one_drained(estate):
    est, _ = estate
    replaced: list[str] = []
    rollouts = Rollouts(est, on_replaced=replaced.append)
    unit = est.units[0]
    rollouts.start(unit, unit.program, "restart", 0.0)
    assert unit.rollout is not None
    unit.mark_ready(unit.rollout.replicas[0], 0.5)
    rollouts.advance(1.0)
    assert unit.generation == 1 and replaced == []  # announced on the next turn
    rollouts.advance(1.1)
    assert replaced == ["a"]


class Sup:
    """A supervisor that records what the control handlers asked of it."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def status(self) -> dict[str, Any]:
        return {"programs": []}

    def begin_stop(self, quick: bool) -> None:
        self.calls.append(("stop", quick))

    def reload(self, conn: control.Connection | None, service: str | None) -> None:
        self.calls.append(("reload", service))
        assert conn is not None
        conn.reply(True, {"service": service})


@pytest.mark.parametrize("request_, ok, result, calls", [
    ({"cmd": "status"}, True, {"programs": []}, []),
    ({"cmd": "stop", "now": True}, True, {"stopping": True}, [("stop", True)]),
    ({"cmd": "reload", "service": ""}, True, {"service": None}, [("reload", None)]),
    ({"cmd": "reload", "service": "a"}, True, {"service": "a"}, [("reload", "a")]),
    ({"cmd": "nope"}, False, "unknown command 'nope'", []),
])
def test_control_handlers_table(request_, ok, result, calls):
    sup = Sup()
    server, client = socket.socketpair()
    with client:
        handlers.dispatch(sup, control.Connection(server), request_)
        reply = answer(client)
    assert reply == ({"ok": True, "result": result} if ok else {"ok": False, "error": result})
    assert sup.calls == calls
    assert set(handlers.HANDLERS) == {"status", "stop", "reload"}


def test_status_document_fills_in_the_config_and_the_routes_states(tmp_path):
    from gateway.arbiter.statusdoc import status_document

    cfg = parse(BASE + '[[routes]]\nprefix = "/a"\nbackend = "http"\n'
                'target = "http://127.0.0.1:1"\nservice = "a"\n', base_dir=str(tmp_path))
    units = [Unit(p) for p in build(cfg, sys.executable)]
    doc = status_document(cfg, units, {"pid": 1}, {}, 0.0)
    assert doc["arbiter"]["pid"] == 1 and doc["arbiter"]["run_dir"] == cfg.gateway.run_dir
    assert doc["arbiter"]["redis"] == "" and doc["arbiter"]["state_file"] == cfg.state_file
    assert [p["name"] for p in doc["programs"]] == ["a"]
    assert [r["state"] for r in doc["routes"]] == ["down"]
    units[0].give_up(0.0)
    assert status_document(cfg, units, {}, {}, 0.0)["routes"][0]["state"] == "fatal"
