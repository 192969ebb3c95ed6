"""The migration store in Redis: one state, audit and evidence shared by several gateways.

It answers the same calls as the SQLite :class:`~gateway.migration.store.MigrationStore`
with the same rules (the legal moves of :mod:`gateway.migration.model`, the gates of
:mod:`gateway.migration.gates`), so the rest of the gateway cannot tell them apart::

    store = RedisStore("redis://10.0.0.5:6379/0", prefix="gw:mig:")
    store.ensure("notes")                                 # py2, audited as "config"
    store.transition("notes", "shadow", actor="ops")      # a compare-and-set in Lua
    store.changed()                                       # no round trip: a watcher thread

What lives where (``<p>`` is the prefix)::

    <p>states    hash  name -> the state as JSON     <p>versions  hash  name -> version
    <p>version   the global change counter           <p>audit     stream, one entry per change
    <p>changes   pub/sub channel: a name changed     <p>lastop    hash  name -> last change's id
    <p>seq <p>evops <p>obs:... <p>cmp:...  evidence (gateway.migration.redisevidence)

A change is one Lua script (:mod:`gateway.migration.redis_lua`): a transition
that raced with another gateway's fails with :class:`TransitionError`, as it
does in SQLite, and an automatic rollback therefore happens once. The request
path never waits on Redis: once :meth:`RedisStore.changed` has been called, a
:class:`~gateway.migration.rediswatch.StateCopy` keeps every state in memory,
refreshed on a pub/sub notice and by polling the change counter (a lost
notice costs at most one poll), and :meth:`all` answers from it. While Redis is
down that copy is the last known state, evidence waits in memory for Redis
(:attr:`RedisStore.waiting`, capped; logged once per ``LOG_EVERY_S``), and every other call raises
:class:`StoreUnavailable` within about two socket timeouts.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.migration import redis_lua
from gateway.migration import redisevidence as ev
from gateway.migration.forksafe import fork_safe_lock, fork_safe_pool
from gateway.migration.gates import Evidence, GatedMoves, PromoteGate, Thresholds
from gateway.migration.model import (
    MODES,
    NOISE_MEMORY_S,
    AuditEntry,
    Comparison,
    MigrationState,
    Observation,
    StoreError,
    TransitionError,
    is_regression,
    label,
    latency_stats,
    legal_percent,
)
from gateway.migration.outage import Outage
from gateway.migration.rediswatch import WAKE_S, StateCopy

log = logging.getLogger(__name__)

SOCKET_TIMEOUT_S = 1.0
LOG_EVERY_S = 30.0
AUDIT_PAGE = 500


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class StoreUnavailable(StoreError):
    """The shared migration store (Redis) did not answer in time; nothing was changed or read."""


class RedisStore(GatedMoves):
    """States, audit and evidence in one Redis, safe across gateways, processes and threads."""

    def __init__(self, url: str, prefix: str = "gw:mig:",
                 clock: Callable[[], float] = time.time,
                 socket_timeout: float = SOCKET_TIMEOUT_S) -> None:
        self.url = url
        self.where = redact(url)  # errors reach logs and the admin API: never a password
        self.prefix = prefix
        self._clock = clock
        # One retry, at once: it reconnects a pooled connection that a Redis restart
        # broke. Every wait is bounded by the socket timeouts, never by a backoff.
        self._client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 1), health_check_interval=5)
        fork_safe_pool(self._client)
        self._timeout = socket_timeout
        self._keys = ev.EvidenceKeys(prefix)
        self._state_keys = [prefix + k for k in ("states", "versions", "version", "audit",
                                                 "audit:seq")]
        self.channel = prefix + "changes"
        self.outage = Outage(self.where)
        self._copy = StateCopy(self._client, self.channel, self._state_keys[2],
                               self._read_all, self.outage)
        self._outbox = ev.Outbox()
        self._outbox_lock = fork_safe_lock(self, "_outbox_lock")
        self._last_log = 0.0
        self._closed = False

    # -- plumbing ---------------------------------------------------------------------------

    def _fail(self, action: str, exc: redis.RedisError) -> StoreError:
        where = f"migration store {self.where} ({self.prefix})"
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            return StoreUnavailable(f"{where}: {action} failed: Redis did not answer within "
                                    f"{self._timeout:g} s ({exc})")
        return StoreError(f"{where}: {action} failed: {exc}")

    def _call(self, action: str, fn: Callable[[], Any]) -> Any:
        if self._closed:
            raise StoreError(f"migration store {self.where} is closed")
        try:
            return fn()
        except redis.RedisError as exc:
            raise self._fail(action, exc) from exc

    def close(self) -> None:
        """Stop the watcher and drop the connections; the store is unusable afterwards."""
        self._closed = True
        self._copy.close(WAKE_S + 2 * self._timeout)
        self._client.close()

    @staticmethod
    def _parse(name: str, raw: bytes | str) -> tuple[MigrationState, float]:
        d = json.loads(raw)
        state = MigrationState(name, d["mode"], int(d["percent"]), int(d["version"]),
                               float(d["epoch_started"]), float(d["updated_at"]),
                               str(d["updated_by"]))
        return state, float(d["mode_entered"])

    @staticmethod
    def _dump(state: MigrationState, entered: float) -> str:
        return json.dumps({"mode": state.mode, "percent": state.percent,
                           "version": state.version, "epoch_started": state.epoch_started,
                           "updated_at": state.updated_at, "updated_by": state.updated_by,
                           "mode_entered": entered}, sort_keys=True)

    def _load(self, name: str) -> tuple[MigrationState, float]:
        raw = self._call("read", lambda: self._client.hget(self._state_keys[0], name))
        if raw is None:
            raise KeyError(name)
        return self._parse(name, raw)

    def _read_all(self) -> dict[str, tuple[MigrationState, float]]:
        rows = self._call("read", lambda: self._client.hgetall(self._state_keys[0]))
        return {(k.decode() if isinstance(k, bytes) else k): self._parse(
            k.decode() if isinstance(k, bytes) else k, v) for k, v in rows.items()}

    # -- states ---------------------------------------------------------------------------

    def ensure(self, name: str, mode: str = "py2", percent: int = 0) -> MigrationState:
        """Create ``name`` in its configured initial state if missing; else leave it alone."""
        if mode not in MODES:
            raise TransitionError(f"{name}: unknown mode {mode!r} (one of {', '.join(MODES)})")
        if mode == "canary" and not 1 <= percent <= 99:
            raise TransitionError(f"{name}: canary percent must be 1..99, not {percent}")
        percent = percent if mode == "canary" else 0
        now = self._clock()
        state = MigrationState(name, mode, percent, 1, now, now, "config")
        audit = self._audit_args(now, "config", ("", 0), (mode, percent), "", False)
        created = self._call("ensure", lambda: self._client.eval(
            redis_lua.ENSURE, 5, *self._state_keys, name, self.channel,
            self._dump(state, now), *audit))
        if created:
            self._copy.remember(state, now)
        return self.get(name)

    def get(self, name: str) -> MigrationState:
        """The state of ``name``; KeyError if it is unknown."""
        return self._load(name)[0]

    def all(self) -> dict[str, MigrationState]:
        """Every state, by name: the process's copy once :meth:`changed` started it."""
        snapshot = self._copy.states()
        if snapshot is None:
            if self._copy.alive():
                # The copy's first read failed and its thread retries: the request path
                # must not wait on a Redis that just did not answer.
                raise StoreUnavailable(f"migration store {self.where} ({self.prefix}): "
                                       "states not read yet: Redis has not answered")
            snapshot = self._read_all()
        return {name: pair[0] for name, pair in snapshot.items()}

    def changed(self) -> bool:
        """True when any state changed since this thread's previous call (True the first time).

        No round trip: the first call starts this process's :class:`StateCopy`, and
        later calls only ask it whether a newer copy arrived.
        """
        return self._copy.changed()

    def _audit_args(self, at: float, actor: str, old: tuple[str, int], new: tuple[str, int],
                    reason: str, forced: bool) -> list[Any]:
        return [repr(at), actor, old[0], old[1], new[0], new[1], reason, int(forced)]

    def transition(
        self, name: str, mode: str, percent: int = 0, *, actor: str, reason: str = "",
        forced: bool = False, expect_version: int | None = None,
    ) -> MigrationState:
        """Move ``name`` to ``mode`` (audited in the same script); TransitionError if illegal.

        Entering shadow starts a new evidence epoch. ``expect_version`` makes it a
        compare-and-set against the version the caller decided on; without it, a
        race with another writer is retried against what that writer left.
        """
        while True:
            cur, entered = self._load(name)
            if expect_version is not None and cur.version != expect_version:
                raise TransitionError(
                    f"{name}: changed concurrently (version {cur.version}, "
                    f"now {label(cur.mode, cur.percent)}, expected version {expect_version})")
            stored = legal_percent(cur, mode, percent, forced)
            now = self._clock()
            epoch = now if mode == "shadow" else cur.epoch_started
            if mode == "shadow" or mode != cur.mode:
                entered = now
            new = MigrationState(name, mode, stored, cur.version + 1, epoch, now, actor)
            audit = self._audit_args(now, actor, (cur.mode, cur.percent), (mode, stored),
                                     reason, forced)
            # The client resends a script once when the connection broke; the op id
            # makes a resend of one that did apply a no-op, not a second change.
            args = [*self._state_keys, self.prefix + "lastop", name, self.channel,
                    cur.version, new.version, self._dump(new, entered),
                    secrets.token_hex(8), *audit]
            done, _ = self._call("transition", functools.partial(
                self._client.eval, redis_lua.TRANSITION, 6, *args))
            if done == 1:
                self._copy.remember(new, entered)
                return new
            if done == -1:
                raise KeyError(name)
            if expect_version is not None:
                raise TransitionError(f"{name}: changed concurrently (expected version "
                                      f"{expect_version})")

    def audit(self, name: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """State changes, newest first, for one name or all (read from the stream's end)."""
        out: list[AuditEntry] = []
        high = "+"
        while len(out) < limit:
            page = self._call("read audit", functools.partial(
                self._client.xrevrange, self._state_keys[3], high, "-", count=AUDIT_PAGE))
            for _sid, fields in page:
                f = {(k.decode() if isinstance(k, bytes) else k):
                     (v.decode() if isinstance(v, bytes) else v) for k, v in fields.items()}
                if name is None or f["name"] == name:
                    out.append(AuditEntry(int(f["id"]), float(f["at"]), f["actor"], f["name"],
                                          f["from_mode"], int(f["from_percent"]), f["to_mode"],
                                          int(f["to_percent"]), f["reason"],
                                          f["forced"] == "1"))
            if len(page) < AUDIT_PAGE:
                break
            last = page[-1][0].decode() if isinstance(page[-1][0], bytes) else page[-1][0]
            high = "(" + last
        return out[:limit]

    # -- evidence -------------------------------------------------------------------------

    def record(self, observations: Iterable[Observation],
               comparisons: Iterable[Comparison]) -> None:
        """Append a batch, after any kept while Redis was down; while it is down, keep it.

        Kept batches (:attr:`waiting` items, up to ``redisevidence.MAX_WAITING``; the
        oldest beyond are dropped and counted in :attr:`dropped`) go out on the next
        call once Redis answers, each counted once. Logged once per ``LOG_EVERY_S``.
        """
        with self._outbox_lock:
            self._outbox.add(list(observations), list(comparisons))
            try:
                self._outbox.send(lambda op, obs, cmps: self._call(
                    "record", lambda: ev.write(self._client, self._keys, obs, cmps, op,
                                               time.time())))
            except StoreUnavailable as exc:
                self._outbox.shed()
                now = time.monotonic()
                if now - self._last_log >= LOG_EVERY_S:
                    self._last_log = now
                    log.warning("migration evidence waits for the store (%d items kept, %d "
                                "dropped over the cap): %s", self._outbox.items,
                                self._outbox.dropped, exc)
            except StoreError:
                self._outbox.discard_first()  # refused for good: it must not block the rest
                raise

    @property
    def waiting(self) -> int:
        """Evidence items kept in this process until Redis answers."""
        return self._outbox.items

    @property
    def dropped(self) -> int:
        """Evidence items dropped because more than the cap waited."""
        return self._outbox.dropped

    def _comparisons(self, name: str, epoch: float) -> tuple[frozenset[str], list[Any]]:
        """The noise learned since a day before ``epoch``, and the comparisons since it."""
        rows = self._call("read", lambda: ev.comparisons_between(
            self._client, self._keys, name, epoch - NOISE_MEMORY_S))
        noisy = frozenset(p for _, c in rows for p in c["noise_paths"])
        return noisy, [c for at, c in rows if at >= epoch]

    def _evidence(self, state: MigrationState) -> Evidence:
        noisy, rows = self._comparisons(state.name, state.epoch_started)
        outcomes = [c["outcome"] for c in rows]
        regressions = sum(1 for c in rows if is_regression(c["outcome"], c["paths"], noisy))
        noise = sum(1 for c in rows if c["noise_paths"])
        checked = sum(1 for c in rows if c["noise_checked"])
        samples = len(rows) - outcomes.count("uncompared")
        return Evidence(
            samples=samples, regressions=regressions, noise=noise,
            candidate_errors=outcomes.count("candidate_error"),
            uncompared=outcomes.count("uncompared"), noisy_paths=noisy,
            diff_rate=regressions / samples if samples else 0.0,
            noise_rate=noise / checked if checked else 0.0)

    def _budget_counts(self, name: str, since: float) -> tuple[int, int]:
        count, errors = self._call("read", lambda: ev.budget_counts(
            self._client, self._keys, name, since))
        return int(count), int(errors)

    def report(self, name: str, thresholds: Thresholds) -> dict[str, Any]:
        """State, evidence, gate, traffic split and per-runtime latency over ``window_s``."""
        state = self.get(name)
        evidence = self._evidence(state)
        rows = self._call("read", lambda: ev.observations_since(
            self._client, self._keys, name, self._clock() - thresholds.window_s))
        split: dict[tuple[str, str], list[tuple[float, int]]] = {
            (role, rt): [] for role in ("serve", "shadow") for rt in ("py2", "py3")}
        for role, runtime, ms, error in rows:
            if (role, runtime) in split:
                split[(role, runtime)].append((ms, error))
        py2, py3 = len(split[("serve", "py2")]), len(split[("serve", "py3")])
        return {
            "name": name, "state": state.to_json(), "evidence": evidence.to_json(),
            "gate": PromoteGate.of(thresholds).judge(evidence).to_json(),
            "traffic": {"py2": py2, "py3": py3,
                        "py3_share": py3 / (py2 + py3) if py2 + py3 else 0.0},
            "runtimes": {rt: latency_stats(split[("serve", rt)]) for rt in ("py2", "py3")},
            "shadow": {rt: latency_stats(split[("shadow", rt)]) for rt in ("py2", "py3")},
        }

    def series(self, name: str, bucket_s: float = 10.0, buckets: int = 30) -> list[list[Any]]:
        """``[[bucket_start, comparisons, regressions], ...]``, oldest first, ending at now."""
        if not bucket_s > 0 or buckets < 1:
            raise ValueError(f"series needs bucket_s > 0 and buckets >= 1: {bucket_s}, {buckets}")
        now = self._clock()
        first = float((int(now // bucket_s) - (buckets - 1)) * bucket_s)
        noisy, _ = self._comparisons(name, self.get(name).epoch_started)
        out: list[list[Any]] = [[first + i * bucket_s, 0, 0] for i in range(buckets)]
        for at, c in self._call("read", lambda: ev.comparisons_between(
                self._client, self._keys, name, first, now)):
            if c["outcome"] == "uncompared":
                continue
            slot = out[min(buckets - 1, int((at - first) // bucket_s))]
            slot[1] += 1
            slot[2] += int(is_regression(c["outcome"], c["paths"], noisy))
        return out

    def recent_diffs(self, name: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The latest diffs and candidate errors, newest first, each flagged when all noise."""
        names = [name] if name is not None else sorted(self._read_all())
        rows = self._call("read", lambda: ev.latest_diffs(self._client, self._keys, names,
                                                          limit))
        noisy: dict[str, frozenset[str]] = {}
        out = []
        for at, seq, nm, d in rows:
            if nm not in noisy:
                try:
                    epoch = self.get(nm).epoch_started
                except KeyError:
                    epoch = 0.0
                noisy[nm] = self._comparisons(nm, epoch)[0]
            found = d["paths"]
            out.append({
                "id": seq, "name": nm, "at": at, "rid": d["rid"], "method": d["method"],
                "path": d["path"], "primary": d["primary"], "outcome": d["outcome"],
                "noise": d["outcome"] == "diff" and bool(found) and set(found) <= noisy[nm],
                "paths": found, "fields": d["fields"], "sample": d["sample"],
            })
        return out
