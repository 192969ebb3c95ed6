"""The comparer of service migrations: shadow pairs from the broker, judged off the path.

The broker copies calls of a migrated service to its port and publishes each
pair (the request, the primary's reply, the port's reply) on an XPUB (SPEC
2.14, :mod:`gateway.broker.pairs`). This module decodes a pair and compares the
two answers with the interpreter-aware rules RPC shadowing uses
(:mod:`gateway.migration.rpc`), so ``u'x'`` and ``'x'`` or ``1.0`` and ``1`` are
the same answer, and hands a :class:`Comparison` to the recorder, which stores
it as evidence for the promote gate::

    comparer = PairComparer("ipc:///srv/gw/var/run/shadow-pairs.sock", migrations,
                            recorder.add)
    comparer.start()      # a thread; comparer.stop() ends it
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import zmq

from gateway.migration import compare
from gateway.migration.config import MigrationConfig
from gateway.migration.router import FLOAT_REL_TOL
from gateway.migration.rpc import _capped, _compare
from gateway.migration.store import Comparison
from protocol import codec
from protocol import errors as perrors

log = logging.getLogger(__name__)

POLL_MS = 200


def answer_of(frames: list[bytes]) -> tuple[str, Any]:
    """A reply body as ("result", value) or ("error", {"code", "type"}), as rpc.py has it."""
    env = codec.decode(frames)
    if env.kind == "error":
        exc = perrors.from_wire(env.error or {})
        remote_type = exc.type if isinstance(exc, perrors.RemoteError) else ""
        return ("error", {"code": exc.code, "type": remote_type})
    return ("result", env.payload)


def comparison_of(cfg: MigrationConfig, frames: list[bytes],
                  clock: Callable[[], float] = time.time) -> Comparison:
    """The evidence of one published pair for the service migration ``cfg``.

    The broker's primary is always the service (py2): a call the split moved to
    the port is never copied.
    """
    meta = json.loads(frames[1])
    n_req, n_pri, n_can = (int(n) for n in meta["frames"])
    request = codec.decode(frames[2:2 + n_req])
    primary = answer_of(frames[2 + n_req:2 + n_req + n_pri])
    other = answer_of(frames[2 + n_req + n_pri:2 + n_req + n_pri + n_can])
    rules = compare.Rules(ignore_pointers=cfg.ignore_pointers, float_rel_tol=FLOAT_REL_TOL)
    diffs = _compare(primary, other, rules)
    paths = {compare.normalise_path(d.path) for d in diffs}
    if other[0] == "error" and primary[0] == "result":
        outcome = "candidate_error"
    else:
        outcome = "diff" if diffs else "same"
    sample: dict[str, Any] = {}
    if outcome != "same":
        sample = {"request": {"service": cfg.service, "method": request.method,
                              "params": _capped(request.payload)},
                  "py2": _capped(primary), "py3": _capped(other)}
    return Comparison(
        name=cfg.name, at=clock(), rid=request.rid or request.id or "", primary="py2",
        outcome=outcome, paths=tuple(sorted(paths)), noise_paths=(), noise_checked=False,
        fields=[d.to_json() for d in diffs[:50]], sample=sample, method="rpc",
        path=f"{cfg.service}/{request.method}")


class PairComparer:
    """Subscribes to the broker's shadow pairs and records one comparison per pair."""

    def __init__(self, endpoint: str, migrations: Iterable[MigrationConfig],
                 record: Callable[[Comparison], None]) -> None:
        self.endpoint = endpoint
        self.by_service = {m.service: m for m in migrations if m.kind == "service"}
        self.record = record
        self.compared = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-comparer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
        sock.linger = 0
        try:
            sock.connect(self.endpoint)
            for service in self.by_service:
                sock.subscribe(service.encode())
            while not self._stop.is_set():
                if sock.poll(POLL_MS):
                    self.handle(sock.recv_multipart())
        finally:
            sock.close(linger=0)

    def handle(self, frames: list[bytes]) -> None:
        """Compare one published pair; a pair that cannot be decoded is counted, not fatal."""
        cfg = self.by_service.get(frames[0].decode("utf-8", "replace")) if frames else None
        if cfg is None:
            return  # a topic that only shares our prefix
        try:
            comparison = comparison_of(cfg, frames)
        except (ValueError, KeyError, TypeError, IndexError, perrors.ProtocolError) as exc:
            self.failed += 1
            log.warning("a shadow pair of %s could not be compared: %s", cfg.service, exc)
            return
        self.compared += 1
        self.record(comparison)
