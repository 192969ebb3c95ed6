"""A migrated RPC method: the shadow engine's adapter for the gateway's ``rpc`` routes.

::

    method = MigratedMethod(migrations, cfg, client, shadow_safe=contract.is_shadow_safe("diff"))
    result = method(call, params, timeout=10.0, idem=True, schema=None)   # an RpcCall

The composition root (:mod:`gateway.assemble`) hands it to the ``rpc``
backend as the call of the migrated ``(service, method)``
(:mod:`gateway.http.rpccall`).

``POST /rpc/htmldiff/diff`` goes to the py2 service (``htmldiff``) or to the
port (``cfg.py3``) as the state says (:class:`~gateway.migration.engine.Experiment`);
the other gets a shadow copy with the envelope's ``shadow`` flag, and the
decoded results are compared with :func:`gateway.migration.compare.compare_values`
(so ``u'x'`` from Python 2 and ``'x'`` from Python 3, or ``1.0`` and ``1``,
are the same answer). Only idempotent or shadow-safe methods are copied.
Calls between services go through the broker by service name and are not
migrated here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from gateway.http import tracing
from gateway.http.context import Call
from gateway.migration import compare
from gateway.migration.config import MigrationConfig
from gateway.migration.engine import Experiment, Lab
from protocol import codec
from protocol import errors as perrors
from protocol.client import Client

SAMPLE_CAP = 4096

# An answer: ("result", value) or ("error", {"code": ..., "type": ...}).
Outcome = tuple[str, Any]


@dataclass(frozen=True)
class RpcCopy:
    """What a copy of one call needs."""

    client: Client
    call: Call
    params: Any
    idem: bool
    schema: Any


class RpcSubject:
    """The engine's view of an RPC method: copies through the broker, decoded values."""

    def __init__(self, cfg: MigrationConfig) -> None:
        self.cfg = cfg
        self.rules = compare.Rules(ignore_pointers=cfg.ignore_pointers,
                                   float_rel_tol=compare.FLOAT_REL_TOL)

    def service(self, runtime: str) -> str:
        """The broker service of ``runtime``."""
        return self.cfg.rpc_service if runtime == "py2" else self.cfg.py3

    def replay(self, runtime: str, role: str, request: RpcCopy) -> tuple[Outcome, int, bool]:
        """One capped shadow copy; an error is an outcome too."""
        try:
            value = request.client.call(
                self.service(runtime), self.cfg.rpc_method, request.params,
                timeout=self.cfg.shadow_timeout_ms / 1000.0, idem=request.idem, shadow=True,
                rid=f"{request.call.request_id}.{role}", schema=request.schema,
                **tracing.rpc_fields(request.call.environ))
        except perrors.ProtocolError as exc:
            return _outcome_error(exc), int(exc.status), True
        return ("result", value), 200, False

    def differences(self, control: Outcome, other: Outcome) -> list[compare.Difference]:
        """Value differences, or one ``outcome`` difference when one side failed."""
        return _compare(control, other, self.rules)

    def failed(self, answer: Outcome) -> bool:
        """An error outcome."""
        return answer[0] == "error"

    def sample(self, request: RpcCopy, py2: Outcome, py3: Outcome) -> dict[str, Any]:
        """The params and both outcomes, each capped at SAMPLE_CAP characters."""
        return {"request": {"service": self.cfg.rpc_service, "method": self.cfg.rpc_method,
                            "params": _capped(request.params)},
                "py2": _capped(py2), "py3": _capped(py3)}

    def where(self, request: RpcCopy) -> tuple[str, str]:
        """``rpc`` and the migrated ``SERVICE/METHOD``."""
        return "rpc", self.cfg.rpc


class MigratedMethod:
    """One migrated ``SERVICE/METHOD``: the engine, called instead of the broker
    (a :class:`~gateway.http.rpccall.RpcCall`)."""

    def __init__(self, lab: Lab, cfg: MigrationConfig, client: Client,
                 shadow_safe: bool) -> None:
        self.cfg = cfg
        self.client = client
        self.copy_unsafe = cfg.shadow_safe if cfg.shadow_safe is not None else shadow_safe
        self.subject = RpcSubject(cfg)
        self.engine = Experiment(cfg, lab, self.subject,
                                 {"py2": cfg.rpc_service, "py3": cfg.py3})

    def __call__(self, call: Call, params: Any, *, timeout: float, idem: bool,
                 schema: Any) -> Any:
        """Call the control and return its result (or raise its error); shadow the other."""
        client = self.client
        engine = self.engine
        trial = engine.begin(call.environ)
        engine.check_control(trial)
        shadow = trial.shadow and (idem or self.copy_unsafe) and not engine.candidate_down(trial)
        copy = RpcCopy(client, call, params, idem, schema)
        started = time.monotonic()
        try:
            result = client.call(self.subject.service(trial.control), self.cfg.rpc_method,
                                 params, timeout=timeout, idem=idem, rid=call.request_id,
                                 schema=schema, **tracing.rpc_fields(call.environ))
        except perrors.ProtocolError as exc:
            engine.served(trial, started, int(exc.status), True)
            if shadow:
                engine.run(trial, call.request_id, copy, _outcome_error(exc))
            raise
        engine.served(trial, started, 200, False)
        if shadow:
            engine.run(trial, call.request_id, copy, ("result", result))
        return result


def _outcome_error(exc: perrors.ProtocolError) -> Outcome:
    # A remote exception's type is compared (ValueError stays ValueError across
    # interpreters); its message and traceback text are not.
    remote_type = exc.type if isinstance(exc, perrors.RemoteError) else ""
    return ("error", {"code": exc.code, "type": remote_type})


def _compare(left: Outcome, right: Outcome, rules: compare.Rules) -> list[compare.Difference]:
    if left[0] == right[0]:
        return compare.compare_values(left[1], right[1], rules, root=left[0])
    return [compare.Difference("outcome", "changed", left[0], right[0])]


def _capped(value: Any) -> Any:
    """A JSON-safe rendering of ``value`` at most SAMPLE_CAP characters long."""
    try:
        text = json.dumps(codec.to_json(value), ensure_ascii=False, sort_keys=True)
    except Exception:
        text = repr(value)
    return text if len(text) <= SAMPLE_CAP else text[:SAMPLE_CAP] + "...[truncated]"
