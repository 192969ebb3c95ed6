"""The shadow engine and its parts (split, noise memory, notebook), without processes.

The engine is composed here from the same small objects a front process
composes (:class:`gateway.migration.lab.Migrations`), around a subject that
answers in-process, so every step of an experiment can be looked at: the
candidate's copy, the noise re-ask, the outcome and what is written down.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from gateway.arbiter.statefile import ServiceStates, write_state
from gateway.assemble import build_front
from gateway.commands.frontcfg import http_config
from gateway.config import parse
from gateway.http.problems import Problem
from gateway.migration.background import ShadowPool
from gateway.migration.compare import Difference, Rules, compare_values
from gateway.migration.config import MigrationConfig
from gateway.migration.engine import Experiment, Trial
from gateway.migration.model import Comparison, MigrationState, Observation
from gateway.migration.noise import NoiseMemory
from gateway.migration.notebook import Notebook
from gateway.migration.split import TrafficSplit
from tests.gateway.test_migration_config import BASE
from tests.support.procs import wait_until

Answer = tuple[str, Any]


def _config(tmp_path: Any, state: str = "shadow", extra: str = "") -> Any:
    return parse(BASE + f'[migrations.notes]\nroute = "/api/notes"\npy3 = "notes3"\n'
                        f'state = "{state}"\n{extra}', base_dir=str(tmp_path))


class Bench:
    """The engine's lab made of the real parts, with everything written down in a list."""

    def __init__(self, cfg: MigrationConfig, mode: str = "shadow", pool_size: int = 4,
                 fatal: frozenset[str] = frozenset()) -> None:
        self.entries: list[Observation | Comparison] = []
        self.split = TrafficSplit("t0ken")
        self.noise = NoiseMemory(rand=lambda: 1.0)   # no random refresh: re-asks are exact
        self.notebook = Notebook(self.entries.append)
        self.pools = {cfg.name: ShadowPool(cfg.name, pool_size)}
        self.mode = mode
        self.down = fatal

    def state(self, name: str) -> MigrationState:
        return MigrationState(name, self.mode, 0, 1, 0.0, 0.0, "test")

    def fatal(self, service: str) -> bool:
        return service in self.down

    def comparisons(self) -> list[Comparison]:
        return [e for e in self.entries if isinstance(e, Comparison)]

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()


class Values:
    """A subject answering from per-runtime scripts of results; counts each copy."""

    def __init__(self, py2: Iterator[Answer], py3: Iterator[Answer],
                 gate: threading.Event | None = None) -> None:
        self.scripts = {"py2": py2, "py3": py3}
        self.asked: list[tuple[str, str]] = []
        self.gate = gate

    def replay(self, runtime: str, role: str, request: str) -> tuple[Answer, int, bool]:
        self.asked.append((runtime, role))
        if self.gate is not None:
            self.gate.wait(10)    # bounded: a stuck test fails instead of hanging
        answer = next(self.scripts[runtime])
        return (answer, 500, True) if answer[0] == "error" else (answer, 200, False)

    def differences(self, control: Answer, other: Answer) -> list[Difference]:
        if control[0] != other[0]:
            return [Difference("outcome", "changed", control[0], other[0])]
        return compare_values(control[1], other[1], Rules(), root=control[0])

    def failed(self, answer: Answer) -> bool:
        return answer[0] == "error"

    def sample(self, request: str, py2: Answer, py3: Answer) -> dict[str, Any]:
        return {"request": request, "py2": repr(py2), "py3": repr(py3)}

    def where(self, request: str) -> tuple[str, str]:
        return "rpc", request


def _ticking(**fixed: Any) -> Iterator[Answer]:
    """Results whose ``ts`` changes on every answer (noise) next to fixed fields."""
    tick = 0
    while True:
        tick += 1
        yield "result", {"ts": tick, **fixed}


def test_the_control_own_noise_is_learned_and_a_real_change_is_still_found(tmp_path):
    cfg = _config(tmp_path).migration_settings.get("notes")
    lab = Bench(cfg)
    subject = Values(_ticking(n="a"), _ticking(n="a"))
    engine = Experiment(cfg, lab, subject, {"py2": "notes", "py3": "notes3"})
    try:
        trial = engine.begin({})
        assert (trial.control, trial.candidate, trial.shadow) == ("py2", "py3", True)
        engine.shadow(trial, "r1", "/notes", ("result", {"ts": 0, "n": "a"}))
        first = lab.comparisons()[-1]
        # ts differs from the candidate, and between the control's own answers: noise.
        assert (first.outcome, first.paths, first.noise_paths) == ("diff", ("result/ts",),
                                                                   ("result/ts",))
        assert first.noise_checked and subject.asked == [("py3", "shadow"), ("py2", "noise")]
        engine.shadow(trial, "r2", "/notes", ("result", {"ts": 0, "n": "a"}))
        second = lab.comparisons()[-1]
        # Known noise is not re-asked (the refresh never fires here).
        assert not second.noise_checked and subject.asked[-1] == ("py3", "shadow")
        subject.scripts["py3"] = _ticking(n="B")
        engine.shadow(trial, "r3", "/notes", ("result", {"ts": 0, "n": "a"}))
        third = lab.comparisons()[-1]
        assert third.paths == ("result/n", "result/ts") and third.noise_checked
        assert third.sample["request"] == "/notes" and (third.method, third.path) == ("rpc",
                                                                                      "/notes")
        roles = [(o.runtime, o.role) for o in lab.entries if isinstance(o, Observation)]
        assert roles.count(("py2", "noise")) == 2 and roles.count(("py3", "shadow")) == 3
    finally:
        lab.close()


def test_a_failing_candidate_is_its_error_and_a_full_pool_is_uncompared(tmp_path):
    cfg = _config(tmp_path).migration_settings.get("notes")
    lab = Bench(cfg, pool_size=1)
    gate = threading.Event()
    failing = iter([("error", {"code": "remote", "type": "KeyError"})] * 2)
    subject = Values(_ticking(), failing, gate)
    engine = Experiment(cfg, lab, subject)
    try:
        trial = engine.begin({})
        engine.run(trial, "r1", "/notes", ("result", {"ts": 0}))   # takes the one slot
        engine.run(trial, "r2", "/notes", ("result", {"ts": 0}))   # finds none
        skipped = lab.comparisons()
        assert [(c.rid, c.outcome) for c in skipped] == [("r2", "uncompared")]
        assert skipped[0].sample == {"reason": "shadow_concurrency reached: copy skipped"}
        gate.set()
        wait_until(lambda: len(lab.comparisons()) == 2, timeout=10, what="the copy compared")
        done = lab.comparisons()[-1]
        assert (done.rid, done.outcome, done.primary) == ("r1", "candidate_error", "py2")
        errors = [o for o in lab.entries if isinstance(o, Observation) and o.error]
        assert [(o.runtime, o.role, o.status) for o in errors] == [("py3", "shadow", 500)]
    finally:
        gate.set()
        lab.close()


def test_the_trial_follows_the_state_and_a_fatal_control_is_refused(tmp_path):
    cfg = _config(tmp_path).migration_settings.get("notes")
    lab = Bench(cfg, mode="py3", fatal=frozenset({"notes3"}))
    engine = Experiment(cfg, lab, Values(_ticking(), _ticking()),
                        {"py2": "notes", "py3": "notes3"})
    try:
        trial = engine.begin({})
        assert isinstance(trial, Trial) and trial.control == "py3" and trial.shadow
        with pytest.raises(Problem) as info:
            engine.check_control(trial)
        assert info.value.status == 503 and ("Retry-After", "5") in info.value.headers
        assert "'notes3' is down (FATAL)" in info.value.detail
        assert not engine.candidate_down(trial)
        lab.mode = "py2"
        trial = engine.begin({})
        engine.check_control(trial)            # py2's service is up
        assert engine.candidate_down(trial) and not trial.shadow   # py2 mode copies nothing
        # A trusted pin picks the control whatever the state says.
        assert engine.begin({"gateway.pin": ("py3", "t0ken")}).control == "py3"
        assert engine.begin({"gateway.pin": ("py3", "wrong")}).control == "py2"
    finally:
        lab.close()


def test_noise_memory_never_counts_the_cap_marker_as_explained(tmp_path):
    cfg = _config(tmp_path).migration_settings.get("notes")
    memory = NoiseMemory(rand=lambda: 1.0)
    assert not memory.wanted(cfg, set())              # nothing differs: nothing to explain
    assert memory.wanted(cfg, {"body/items/*/ts"})
    memory.learn(cfg, {"body/items/*/ts", "..."})
    assert not memory.wanted(cfg, {"body/items/*/ts"})
    # "..." stands for differences past the cap, never looked at: always re-asked.
    assert memory.wanted(cfg, {"body/items/*/ts", "..."})
    assert NoiseMemory(rand=lambda: 0.0).wanted(cfg, {"x"})
    memory.noisy[cfg.name].add("x")
    assert NoiseMemory(rand=lambda: 0.0, refresh=0.05).wanted(cfg, {"x"})
    quiet = _config(tmp_path, extra="noise = false\n").migration_settings.get("notes")
    assert not memory.wanted(quiet, {"anything"})


def test_the_root_hands_service_health_to_migrations_and_the_admin_api(tmp_path):
    """A migrated route's FATAL control answers 503 through the composed front, and the
    admin API shows the states it was handed, with no state file read by migration."""
    cfg = _config(tmp_path, state="py2")
    os.makedirs(cfg.gateway.run_dir)
    path = str(tmp_path / "state.json")
    write_state(path, {"notes": {"state": "FATAL"}, "notes3": {"state": "READY"}}, 1)
    app = build_front(http_config(cfg), health=ServiceStates(path))
    client = Client(app)
    try:
        resp = client.get("/api/notes/1", headers={"X-Request-ID": "rid-7"})
        body = json.loads(resp.data)
        assert resp.status_code == 503 and body["code"] == "unavailable"
        assert "'notes' is down (FATAL)" in body["detail"] and body["request_id"] == "rid-7"
        with open(cfg.migration_settings.token_file, encoding="utf-8") as fh:
            token = fh.read().strip()
        overview = client.get("/_gateway/api/overview",
                              headers={"Authorization": f"Bearer {token}"},
                              environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert overview.status_code == 200
        assert json.loads(overview.data)["services"]["notes"]["state"] == "FATAL"
    finally:
        front = app.app
        front.close()              # the backends, and the migrations' threads and store
        front.parts.client.close()  # the process's one broker client is the process's to close
