"""The comparer of service migrations: shadow pairs from the broker, judged off the path.

The broker copies calls of a migrated service to its port and publishes each
pair (the request, the primary's reply, the port's reply) on an XPUB (SPEC
2.14, :mod:`gateway.broker.pairs`). This module decodes a pair and compares the
two answers with the interpreter-aware rules RPC shadowing uses
(:mod:`gateway.migration.rpc`), so ``u'x'`` and ``'x'`` or ``1.0`` and ``1`` are
the same answer, and hands a :class:`Comparison` to the recorder, which stores
it as evidence for the promote gate::

    comparer = PairComparer("ipc:///srv/gw/var/run/shadow-pairs.ipc", migrations,
                            recorder.add, NoiseCheck(broker_endpoint))
    comparer.start()      # a thread; comparer.stop() ends it

Noise is learned as for HTTP and RPC shadowing (Diffy): when the port's answer
differs in a path not yet known to be noise, the comparer asks the primary the
same call again, through the broker, flagged ``shadow`` (so the broker copies
it nowhere and the service may dry-run it) and with the original's ``sticky``
key (so a canary split keeps it on the primary). Paths that differ between the
primary's two answers are noise. The broker itself sends nothing twice: a
second primary copy for every call would double the primary's load, while
this asks only on an unexplained difference. The re-ask runs in the comparer's
thread with the migration's ``shadow_timeout_ms`` as its deadline; pairs that
arrive meanwhile wait in the subscriber's queue, and past its high-water mark
the broker drops them and counts them (``shadow_pairs.dropped``).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import zmq

from gateway.migration import compare
from gateway.migration.config import MigrationConfig
from gateway.migration.model import Comparison
from gateway.migration.noise import NOISE_REFRESH, NoiseMemory
from gateway.migration.rpc import _capped, _compare, _outcome_error
from protocol import codec
from protocol import errors as perrors
from protocol.client import Client

log = logging.getLogger(__name__)

POLL_MS = 200
RCVHWM = 1000


def answer_of(frames: list[bytes]) -> tuple[str, Any]:
    """A reply body as ("result", value) or ("error", {"code", "type"}), as rpc.py has it."""
    env = codec.decode(frames)
    if env.kind == "error":
        exc = perrors.from_wire(env.error or {})
        remote_type = exc.type if isinstance(exc, perrors.RemoteError) else ""
        return ("error", {"code": exc.code, "type": remote_type})
    return ("result", env.payload)


@dataclass(frozen=True)
class Pair:
    """One published pair, decoded: the call and both answers."""

    request: codec.Envelope
    primary: tuple[str, Any]
    candidate: tuple[str, Any]


def decode_pair(frames: list[bytes]) -> Pair:
    """``[SERVICE, META, *request, *primary, *candidate]`` decoded (errors: ValueError...)."""
    meta = json.loads(frames[1])
    n_req, n_pri, n_can = (int(n) for n in meta["frames"])
    if len(frames) != 2 + n_req + n_pri + n_can:
        raise ValueError(f"{len(frames)} frames, META says {2 + n_req + n_pri + n_can}")
    return Pair(codec.decode(frames[2:2 + n_req]),
                answer_of(frames[2 + n_req:2 + n_req + n_pri]),
                answer_of(frames[2 + n_req + n_pri:]))


def judge(cfg: MigrationConfig, pair: Pair, clock: Callable[[], float] = time.time,
          noise: tuple[str, Any] | None = None) -> Comparison:
    """The evidence of one pair for the service migration ``cfg``.

    The broker's primary is always the service (py2): a call the split moved to
    the port is never copied. ``noise`` is the primary's second answer, when it
    was asked again: the paths where its two answers differ are noise.
    """
    rules = compare.Rules(ignore_pointers=cfg.ignore_pointers, float_rel_tol=compare.FLOAT_REL_TOL)
    diffs = _compare(pair.primary, pair.candidate, rules)
    paths = {compare.normalise_path(d.path) for d in diffs}
    noise_paths = set() if noise is None else {
        compare.normalise_path(d.path) for d in _compare(pair.primary, noise, rules)}
    if pair.candidate[0] == "error" and pair.primary[0] == "result":
        outcome = "candidate_error"
    else:
        outcome = "diff" if diffs else "same"
    request = pair.request
    sample: dict[str, Any] = {}
    if outcome != "same":
        sample = {"request": {"service": cfg.service, "method": request.method,
                              "params": _capped(request.payload)},
                  "py2": _capped(pair.primary), "py3": _capped(pair.candidate)}
    return Comparison(
        name=cfg.name, at=clock(), rid=request.rid or request.id or "", primary="py2",
        outcome=outcome, paths=tuple(sorted(paths)), noise_paths=tuple(sorted(noise_paths)),
        noise_checked=noise is not None, fields=[d.to_json() for d in diffs[:50]],
        sample=sample, method="rpc", path=f"{cfg.service}/{request.method}")


def comparison_of(cfg: MigrationConfig, frames: list[bytes],
                  clock: Callable[[], float] = time.time) -> Comparison:
    """The evidence of one published pair, without a noise check."""
    return judge(cfg, decode_pair(frames), clock)


class NoiseCheck:
    """Asks the primary again on an unexplained difference, and remembers the noise."""

    def __init__(self, endpoint: str, refresh: float = NOISE_REFRESH,
                 rand: Callable[[], float] = random.random) -> None:
        self.endpoint = endpoint
        self.memory = NoiseMemory(refresh, rand)  # per migration: noise paths seen here
        self.asked = 0
        self._client: Client | None = None

    @property
    def noisy(self) -> dict[str, set[str]]:
        """Per migration, the paths learned as noise."""
        return self.memory.noisy

    def wanted(self, cfg: MigrationConfig, paths: set[str]) -> bool:
        """As the front's shadow engine asks: see :meth:`NoiseMemory.wanted`."""
        return self.memory.wanted(cfg, paths)

    def ask(self, cfg: MigrationConfig, request: codec.Envelope) -> tuple[str, Any]:
        """The primary's second answer to ``request`` (its error, if it fails)."""
        if self._client is None:  # made in the thread that uses it
            self._client = Client(self.endpoint, timeout=cfg.shadow_timeout_ms / 1000.0)
        self.asked += 1
        try:
            value = self._client.call(
                cfg.service, request.method or "", request.payload,
                timeout=cfg.shadow_timeout_ms / 1000.0, idem=request.idem, shadow=True,
                rid=f"{request.rid or request.id}.noise",
                sticky=request.sticky or request.rid or request.id)
        except perrors.ProtocolError as exc:
            return _outcome_error(exc)
        return ("result", value)

    def learn(self, cfg: MigrationConfig, paths: Iterable[str]) -> None:
        self.memory.learn(cfg, paths)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class PairComparer:
    """Subscribes to the broker's shadow pairs and records one comparison per pair."""

    def __init__(self, endpoint: str, migrations: Iterable[MigrationConfig],
                 record: Callable[[Comparison], None], noise: NoiseCheck | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.endpoint = endpoint
        self.by_service = {m.service: m for m in migrations if m.kind == "service"}
        self.record = record
        self.noise = noise
        self.clock = clock
        self.compared = 0
        self.failed = 0
        self.subscribed = threading.Event()
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
        sock.rcvhwm = RCVHWM
        try:
            sock.connect(self.endpoint)
            for service in self.by_service:
                sock.subscribe(service.encode())
            self.subscribed.set()
            while not self._stop.is_set():
                if sock.poll(POLL_MS):
                    self.handle(sock.recv_multipart())
        finally:
            sock.close(linger=0)
            if self.noise is not None:
                self.noise.close()

    def handle(self, frames: list[bytes]) -> None:
        """Compare one published pair; a pair that cannot be decoded is counted, not fatal."""
        cfg = self.by_service.get(frames[0].decode("utf-8", "replace")) if frames else None
        if cfg is None:
            return  # a topic that only shares our prefix
        try:
            pair = decode_pair(frames)
            comparison = judge(cfg, pair, self.clock)
        except (ValueError, KeyError, TypeError, IndexError, perrors.ProtocolError) as exc:
            self.failed += 1
            log.warning("a shadow pair of %s could not be compared: %s", cfg.service, exc)
            return
        if self.noise is not None and comparison.outcome == "diff" \
                and self.noise.wanted(cfg, set(comparison.paths)):
            second = self.noise.ask(cfg, pair.request)
            comparison = replace(judge(cfg, pair, self.clock, second), at=comparison.at)
            self.noise.learn(cfg, comparison.noise_paths)
        self.compared += 1
        self.record(comparison)
