"""Migrating one RPC method behind the gateway's ``rpc`` routes.

::

    method = MigratedMethod(migrations, cfg, shadow_safe=contract.is_shadow_safe("diff"))
    result = method.call(client, call, params, timeout=10.0, idem=True, schema=None)

``POST /rpc/htmldiff/diff`` goes to the py2 service (``htmldiff``) or to the
port (``cfg.py3``) as the state says (:meth:`Migrations.choose`); the other
gets a shadow copy with the envelope's ``shadow`` flag, and the decoded
results are compared with :func:`gateway.migration.compare.compare_values`
(so ``u'x'`` from Python 2 and ``'x'`` from Python 3, or ``1.0`` and ``1``,
are the same answer). Only idempotent or shadow-safe methods are copied.
Calls between services go through the broker by service name and are not
migrated here.
"""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.http import tracing
from gateway.http.context import Call
from gateway.migration import compare
from gateway.migration.config import MigrationConfig
from gateway.migration.router import FLOAT_REL_TOL, OTHER, Migrations
from gateway.migration.store import Comparison
from protocol import errors as perrors
from protocol.client import Client

SAMPLE_CAP = 4096


class MigratedMethod:
    """One migrated ``SERVICE/METHOD``: choose, call, shadow, compare."""

    def __init__(self, owner: Migrations, cfg: MigrationConfig, shadow_safe: bool) -> None:
        self.owner = owner
        self.cfg = cfg
        self.copy_unsafe = cfg.shadow_safe if cfg.shadow_safe is not None else shadow_safe
        self.rules = compare.Rules(ignore_pointers=cfg.ignore_pointers,
                                   float_rel_tol=FLOAT_REL_TOL)

    def service(self, runtime: str) -> str:
        """The broker service of ``runtime``."""
        return self.cfg.rpc_service if runtime == "py2" else self.cfg.py3

    def call(self, client: Client, call: Call, params: Any, *, timeout: float, idem: bool,
             schema: Any) -> Any:
        """Call the primary and return its result (or raise its error); shadow the other."""
        owner, cfg = self.owner, self.cfg
        state = owner.state(cfg.name)
        primary, _ = owner.choose(cfg, call.environ, state)
        owner.check_fatal(self.service(primary))
        shadow = (owner.shadowing(cfg, state) and (idem or self.copy_unsafe)
                  and not owner.fatal(self.service(OTHER[primary])))
        started = time.monotonic()
        try:
            result = client.call(self.service(primary), cfg.rpc_method, params, timeout=timeout,
                                 idem=idem, rid=call.request_id, schema=schema,
                                 **tracing.rpc_fields(call.environ))
        except perrors.ProtocolError as exc:
            owner.observe(cfg, primary, "serve", started, int(exc.status), True)
            if shadow:
                self.submit(client, call, params, idem, schema, primary, _outcome_error(exc))
            raise
        owner.observe(cfg, primary, "serve", started, 200, False)
        if shadow:
            self.submit(client, call, params, idem, schema, primary, ("result", result))
        return result

    def submit(self, client: Client, call: Call, params: Any, idem: bool, schema: Any,
               primary: str, answer: tuple[str, Any]) -> None:
        """Queue the shadow job, or record that the copy was skipped."""
        def job() -> None:
            self.shadow(client, call, params, idem, schema, primary, answer)
        if not self.owner.pools[self.cfg.name].submit(job):
            self.owner.recorder.add(Comparison(
                name=self.cfg.name, at=self.owner.clock(), rid=call.request_id,
                primary=primary, outcome="uncompared", paths=(), noise_paths=(),
                noise_checked=False, fields=[],
                sample={"reason": "shadow_concurrency reached: copy skipped"},
                method="rpc", path=self.cfg.rpc))

    def replay(self, client: Client, runtime: str, role: str, call: Call, params: Any,
               idem: bool, schema: Any) -> tuple[str, Any]:
        """One capped shadow copy; its outcome as ("result", value) or ("error", {...})."""
        started = time.monotonic()
        try:
            value = client.call(self.service(runtime), self.cfg.rpc_method, params,
                                timeout=self.cfg.shadow_timeout_ms / 1000.0, idem=idem,
                                shadow=True, rid=f"{call.request_id}.{role}", schema=schema,
                                **tracing.rpc_fields(call.environ))
        except perrors.ProtocolError as exc:
            self.owner.observe(self.cfg, runtime, role, started, int(exc.status), True)
            return _outcome_error(exc)
        self.owner.observe(self.cfg, runtime, role, started, 200, False)
        return ("result", value)

    def shadow(self, client: Client, call: Call, params: Any, idem: bool, schema: Any,
               primary: str, answer: tuple[str, Any]) -> None:
        """The shadow job: candidate copy, noise copy, comparison, evidence."""
        cfg = self.cfg
        candidate = OTHER[primary]
        other = self.replay(client, candidate, "shadow", call, params, idem, schema)
        diffs = _compare(answer, other, self.rules)
        paths = {compare.normalise_path(d.path) for d in diffs}
        noise = None
        noise_paths: set[str] = set()
        if self.owner.wants_noise_check(cfg, paths):
            noise = self.replay(client, primary, "noise", call, params, idem, schema)
            noise_paths = {compare.normalise_path(d.path)
                           for d in _compare(answer, noise, self.rules)}
            self.owner.learn_noise(cfg, noise_paths)
        if other[0] == "error" and answer[0] == "result":
            outcome = "candidate_error"
        else:
            outcome = "diff" if diffs else "same"
        sample: dict[str, Any] = {}
        if outcome != "same":
            labelled = {primary: answer, candidate: other}
            sample = {"request": {"service": cfg.rpc_service, "method": cfg.rpc_method,
                                  "params": _capped(params)},
                      "py2": _capped(labelled["py2"]), "py3": _capped(labelled["py3"])}
        self.owner.recorder.add(Comparison(
            name=cfg.name, at=self.owner.clock(), rid=call.request_id, primary=primary,
            outcome=outcome, paths=tuple(sorted(paths)), noise_paths=tuple(sorted(noise_paths)),
            noise_checked=noise is not None, fields=[d.to_json() for d in diffs[:50]],
            sample=sample, method="rpc", path=cfg.rpc))


def _outcome_error(exc: perrors.ProtocolError) -> tuple[str, Any]:
    # A remote exception's type is compared (ValueError stays ValueError across
    # interpreters); its message and traceback text are not.
    remote_type = exc.type if isinstance(exc, perrors.RemoteError) else ""
    return ("error", {"code": exc.code, "type": remote_type})


def _compare(left: tuple[str, Any], right: tuple[str, Any],
             rules: compare.Rules) -> list[compare.Difference]:
    if left[0] == right[0]:
        return compare.compare_values(left[1], right[1], rules, root=left[0])
    return [compare.Difference("outcome", "changed", left[0], right[0])]


def _capped(value: Any) -> Any:
    """A JSON-safe rendering of ``value`` at most SAMPLE_CAP characters long."""
    from protocol import codec
    try:
        text = json.dumps(codec.to_json(value), ensure_ascii=False, sort_keys=True)
    except Exception:
        text = repr(value)
    return text if len(text) <= SAMPLE_CAP else text[:SAMPLE_CAP] + "...[truncated]"
