"""The shadow-experiment engine: one migration's control, candidate and evidence.

Every migrated request, whether an HTTP route (:mod:`gateway.migration.route`)
or an RPC method (:mod:`gateway.migration.rpc`), goes through the same steps,
written once here. The adapters only translate their request and answer into
the engine's terms (a :class:`Subject`)::

    engine = Experiment(cfg, lab, subject, services={"py2": "notes", "py3": "notes3"})
    trial = engine.begin(environ)            # state read once: control, candidate, shadow?
    engine.check_control(trial)              # 503 problem when the control's service is FATAL
    ...the adapter serves the control and captures its answer...
    engine.served(trial, started, status, error)          # the control's observation
    engine.run(trial, rid, request, answer)  # the candidate's copy, off the critical path

In the shadow job the candidate gets a capped copy; the two answers are
compared; a difference not yet explained by the noise memory sends the
control a second copy (the paths where the control's own answers differ are
noise); the outcome is ``same``, ``diff`` or ``candidate_error`` (the
candidate failed where the control did not); differences keep a sample; the
notebook records it all. A copy that cannot run is recorded as ``uncompared``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from gateway.http.problems import Problem
from gateway.migration.config import MigrationConfig
from gateway.migration.diffs import Difference, normalise_path
from gateway.migration.model import Comparison, MigrationState
from gateway.migration.noise import NoiseMemory
from gateway.migration.notebook import Notebook
from gateway.migration.split import OTHER, TrafficSplit

# Seconds a client is told to wait when the control's service is FATAL (as the
# front's service guards say for routes that are not migrating).
FATAL_RETRY_AFTER = 5

R = TypeVar("R")  # a request as its adapter keeps it for the copies
A = TypeVar("A")  # an answer as its adapter compares it
R_in = TypeVar("R_in", contravariant=True)


class Subject(Protocol[R_in, A]):
    """What an adapter tells the engine about its kind of request and answer."""

    def replay(self, runtime: str, role: str, request: R_in) -> tuple[A, int, bool]:
        """One capped copy to ``runtime``: (its answer, the status and error observed).

        Never raises for the copy's own failure: a failure is an answer too."""

    def differences(self, control: A, other: A) -> list[Difference]:
        """Where ``other`` differs from the control's answer."""

    def failed(self, answer: A) -> bool:
        """True when ``answer`` is a failure (a 5xx, an RPC error)."""

    def sample(self, request: R_in, py2: A, py3: A) -> dict[str, Any]:
        """The evidence sample of a difference (redacted, capped)."""

    def where(self, request: R_in) -> tuple[str, str]:
        """(method, path) naming the request in the evidence."""


class Pool(Protocol):
    """A bounded shadow pool (:class:`~gateway.migration.background.ShadowPool`)."""

    def submit(self, job: Callable[[], None]) -> bool: ...


class Lab(Protocol):
    """The per-process parts the engine uses (:class:`gateway.migration.lab.Migrations`)."""

    split: TrafficSplit
    noise: NoiseMemory
    notebook: Notebook

    @property
    def pools(self) -> Mapping[str, Pool]: ...

    def state(self, name: str) -> MigrationState: ...

    def fatal(self, service: str) -> bool: ...


@dataclass(frozen=True)
class Trial:
    """One request's plan: the state it saw, who answers, and whether a copy is due."""

    state: MigrationState
    control: str
    cookie: str | None  # a fresh gw_canary value to set, or None
    shadow: bool        # the state and the sample ask for a copy (the adapter may decline)

    @property
    def candidate(self) -> str:
        """The runtime that gets the copy."""
        return OTHER[self.control]


class Experiment(Generic[R, A]):
    """The engine of one migration in one process."""

    def __init__(self, cfg: MigrationConfig, lab: Lab, subject: Subject[R, A],
                 services: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        self.lab = lab
        self.subject = subject
        self.services = dict(services or {})  # runtime -> its supervised service, if any

    def begin(self, environ: dict[str, Any]) -> Trial:
        """The trial of one request: the state is read once, so choice and copy agree."""
        state = self.lab.state(self.cfg.name)
        control, cookie = self.lab.split.choose(self.cfg, environ, state)
        return Trial(state, control, cookie, self.lab.split.shadowing(self.cfg, state))

    def service(self, runtime: str) -> str:
        """The supervised service of ``runtime`` ("" when none)."""
        return self.services.get(runtime, "")

    def check_control(self, trial: Trial) -> None:
        """Answer 503 at once when the control's service is FATAL.

        This is a migrated target's only FATAL check: the composition root puts
        no service guard on it, since which service answers is decided here.
        """
        service = self.service(trial.control)
        if self.lab.fatal(service):
            raise Problem(503, f"service {service!r} is down (FATAL)", code="unavailable",
                          headers=[("Retry-After", str(FATAL_RETRY_AFTER))])

    def candidate_down(self, trial: Trial) -> bool:
        """True when the candidate's service is FATAL: a copy would only time out."""
        return self.lab.fatal(self.service(trial.candidate))

    def served(self, trial: Trial, started: float, status: int, error: bool) -> None:
        """The control's answer to the client, observed."""
        self.lab.notebook.observe(self.cfg.name, trial.control, "serve", started, status, error)

    def uncompared(self, trial: Trial, rid: str, request: R, why: str) -> None:
        """A request that should have been compared and was not."""
        method, path = self.subject.where(request)
        self.lab.notebook.uncompared(self.cfg.name, rid, trial.control, why, method, path)

    def run(self, trial: Trial, rid: str, request: R, control: A) -> None:
        """Queue the shadow job, or record that the copy was skipped."""
        def job() -> None:
            self.shadow(trial, rid, request, control)
        if not self.lab.pools[self.cfg.name].submit(job):
            self.uncompared(trial, rid, request, "shadow_concurrency reached: copy skipped")

    def replay(self, runtime: str, role: str, request: R) -> A:
        """One copy to ``runtime``, observed as ``role`` (``shadow`` or ``noise``)."""
        started = time.monotonic()
        answer, status, error = self.subject.replay(runtime, role, request)
        self.lab.notebook.observe(self.cfg.name, runtime, role, started, status, error)
        return answer

    def shadow(self, trial: Trial, rid: str, request: R, control: A) -> None:
        """The shadow job: candidate copy, noise copy, comparison, evidence."""
        cfg, subject, noise = self.cfg, self.subject, self.lab.noise
        candidate = self.replay(trial.candidate, "shadow", request)
        diffs = subject.differences(control, candidate)
        paths = {normalise_path(d.path) for d in diffs}
        second = None
        noise_paths: set[str] = set()
        if noise.wanted(cfg, paths):
            second = self.replay(trial.control, "noise", request)
            noise_paths = {normalise_path(d.path)
                           for d in subject.differences(control, second)}
            noise.learn(cfg, noise_paths)
        if subject.failed(candidate) and not subject.failed(control):
            outcome = "candidate_error"
        else:
            outcome = "diff" if diffs else "same"
        sample: dict[str, Any] = {}
        if outcome != "same":     # samples cost front CPU: only differences keep one
            labelled = {trial.control: control, trial.candidate: candidate}
            sample = subject.sample(request, labelled["py2"], labelled["py3"])
        method, path = subject.where(request)
        self.lab.notebook.compared(Comparison(
            name=cfg.name, at=self.lab.notebook.clock(), rid=rid, primary=trial.control,
            outcome=outcome, paths=tuple(sorted(paths)), noise_paths=tuple(sorted(noise_paths)),
            noise_checked=second is not None, fields=[d.to_json() for d in diffs[:50]],
            sample=sample, method=method, path=path))
