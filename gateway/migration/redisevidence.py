"""Evidence in Redis: observations and comparisons per migration, capped inside Redis.

Every gateway appends to the same keys, so two gateways' evidence adds up. Each
kind is a sorted set scored by the time it happened, one per migration, whose
members start with a global sequence number (zero-padded, so ties in time sort
in insertion order as the SQLite store's ``ORDER BY at, id`` does)::

    <prefix>obs:<name>     "<id>|<runtime>|<role>|<ms>|<status>|<error>"   the report's latency
    <prefix>py3:<name>     "<id>"    py3 serving a client: the error budget's denominator ...
    <prefix>py3err:<name>  "<id>"    ... and its failures (two ZCOUNTs judge the budget)
    <prefix>cmp:<name>     "<id>|{json}"  every comparison, without its field diffs and sample
    <prefix>diff:<name>    "<id>|{json}"  diffs and candidate errors in full, for the dashboard

Caps are enforced by Redis in the same script as the insert
(``ZREMRANGEBYRANK`` drops the oldest), so no gateway can grow them. Each
batch carries an op id: sent twice, it is counted once.

::

    keys = EvidenceKeys("gw:mig:")
    write(client, keys, observations, comparisons, op="5f1c...", now=time.time())  # one script
    comparisons_since(client, keys, "notes", t0)        # [(at, {...}), ...] oldest first
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import redis

from gateway.migration.model import MAX_COMPARISONS, MAX_OBSERVATIONS, Comparison, Observation

DIFF_OUTCOMES = ("diff", "candidate_error")
MAX_WAITING = 20_000  # evidence items one process keeps for a Redis that is down


class EvidenceKeys:
    """The Redis key names of one store's evidence."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.seq = prefix + "seq"
        self.ops = prefix + "evops"  # the op ids of recently applied batches, by time

    def obs(self, name: str) -> str:
        """Every observation of ``name``."""
        return f"{self.prefix}obs:{name}"

    def py3(self, name: str) -> str:
        """py3 answering clients of ``name`` (the error budget's requests)."""
        return f"{self.prefix}py3:{name}"

    def py3_errors(self, name: str) -> str:
        """py3 failing clients of ``name``."""
        return f"{self.prefix}py3err:{name}"

    def comparisons(self, name: str) -> str:
        """Every comparison of ``name``, light."""
        return f"{self.prefix}cmp:{name}"

    def diffs(self, name: str) -> str:
        """Diffs and candidate errors of ``name``, with fields and sample."""
        return f"{self.prefix}diff:{name}"


# RECORD  KEYS: seq, ops, then every set the batch touches
#         ARGV: op_id, now, OP_MEMORY_S, ids to reserve, the cap of each set (in KEYS order
#         from KEYS[3]), then per member: set index in KEYS, id offset, score, text.
# One script: the ids are reserved and the members added and trimmed together, or not at
# all. Returns 1 when applied, 0 when op_id was applied already: redis-py resends a script
# once when the connection broke, and a reply lost after the script ran must not add the
# batch twice (the reserved ids would differ, so the members would too).
RECORD = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
local n = tonumber(ARGV[4])
local first = redis.call('INCRBY', KEYS[1], n) - n + 1
local sets = #KEYS - 2
local i = 5 + sets
while i <= #ARGV do
  local member = string.format('%015d|', first + tonumber(ARGV[i + 1])) .. ARGV[i + 3]
  redis.call('ZADD', KEYS[tonumber(ARGV[i])], ARGV[i + 2], member)
  i = i + 4
end
for k = 1, sets do
  redis.call('ZREMRANGEBYRANK', KEYS[k + 2], 0, -tonumber(ARGV[4 + k]) - 1)
end
return 1
"""
OP_MEMORY_S = 3600.0  # how long an applied batch's op id is remembered


def write(client: redis.Redis, keys: EvidenceKeys, observations: list[Observation],
          comparisons: list[Comparison], op: str, now: float) -> bool:
    """Append one batch and trim every touched set to its cap, atomically.

    ``op`` names the batch: sent again (a resend after a lost reply), it is not
    counted twice. False when ``op`` had been applied already.
    """
    caps: dict[str, int] = {}
    members: list[tuple[str, int, float, str]] = []  # (set, id offset, score, text)
    ids = 0
    for o in observations:
        text = f"{o.runtime}|{o.role}|{float(o.ms)!r}|{int(o.status)}|{int(bool(o.error))}"
        members.append((keys.obs(o.name), ids, o.at, text))
        caps[keys.obs(o.name)] = MAX_OBSERVATIONS
        if o.role == "serve" and o.runtime == "py3":
            members.append((keys.py3(o.name), ids, o.at, ""))
            caps[keys.py3(o.name)] = MAX_OBSERVATIONS
            if o.error:
                members.append((keys.py3_errors(o.name), ids, o.at, ""))
                caps[keys.py3_errors(o.name)] = MAX_OBSERVATIONS
        ids += 1
    for c in comparisons:
        light = {"rid": c.rid, "primary": c.primary, "outcome": c.outcome,
                 "paths": sorted(c.paths), "noise_paths": sorted(c.noise_paths),
                 "noise_checked": bool(c.noise_checked), "method": c.method, "path": c.path}
        members.append((keys.comparisons(c.name), ids, c.at, json.dumps(light)))
        caps[keys.comparisons(c.name)] = MAX_COMPARISONS
        ids += 1
        if c.outcome in DIFF_OUTCOMES:
            full = dict(light, fields=c.fields, sample=c.sample)
            members.append((keys.diffs(c.name), ids, c.at, json.dumps(full, default=str)))
            caps[keys.diffs(c.name)] = MAX_COMPARISONS
            ids += 1
    if not ids:
        return True
    sets = list(caps)
    index = {key: i + 3 for i, key in enumerate(sets)}  # Lua's KEYS[3] is the first set
    args: list[Any] = [op, repr(now), OP_MEMORY_S, ids, *(caps[k] for k in sets)]
    for key, offset, at, text in members:
        args += [index[key], offset, repr(float(at)), text]
    return bool(client.eval(RECORD, 2 + len(sets), keys.seq, keys.ops, *sets, *args))


class Outbox:
    """Evidence batches not yet in Redis, oldest first, each with its op id; capped.

    While Redis is down the batches wait here and go out in order once it
    answers. A batch whose reply was lost goes out again with the same op id,
    so it counts once. Past ``cap`` items the oldest batches are dropped, and
    counted in :attr:`dropped`.
    """

    def __init__(self, cap: int | None = None) -> None:
        self.cap = MAX_WAITING if cap is None else cap
        self.items = 0
        self.dropped = 0
        self._batches: deque[tuple[str, list[Observation], list[Comparison]]] = deque()

    def add(self, observations: list[Observation], comparisons: list[Comparison]) -> None:
        """Queue one batch under a fresh op id (nothing for an empty one)."""
        if observations or comparisons:
            self._batches.append((secrets.token_hex(8), observations, comparisons))
            self.items += len(observations) + len(comparisons)

    def shed(self) -> None:
        """Drop the oldest batches until at most ``cap`` items wait (after a failed send)."""
        while self.items > self.cap:
            self._drop_oldest()

    def send(self, write: Callable[[str, list[Observation], list[Comparison]], object]) -> None:
        """``write(op, observations, comparisons)`` each batch, oldest first.

        A failure stops the round and leaves that batch first in line; it is raised.
        """
        while self._batches:
            op, observations, comparisons = self._batches[0]
            write(op, observations, comparisons)
            self._batches.popleft()
            self.items -= len(observations) + len(comparisons)

    def _drop_oldest(self) -> None:
        _op, observations, comparisons = self._batches.popleft()
        count = len(observations) + len(comparisons)
        self.items -= count
        self.dropped += count

    def discard_first(self) -> None:
        """Give up on the first batch (Redis refused it for good), counting it dropped."""
        if self._batches:
            self._drop_oldest()


def _split(member: bytes | str) -> tuple[int, str]:
    text = member.decode() if isinstance(member, bytes) else member
    seq, _, rest = text.partition("|")
    return int(seq), rest


def observations_since(client: redis.Redis, keys: EvidenceKeys, name: str,
                       since: float) -> list[tuple[str, str, float, int]]:
    """``(role, runtime, ms, error)`` of every observation of ``name`` at or after ``since``."""
    out = []
    rows: Any = client.zrangebyscore(keys.obs(name), since, "+inf", withscores=True)
    for member, _at in rows:
        runtime, role, ms, _status, error = _split(member)[1].split("|")
        out.append((role, runtime, float(ms), int(error)))
    return out


def budget_counts(client: redis.Redis, keys: EvidenceKeys, name: str,
                  since: float) -> tuple[int, int]:
    """(py3 requests served, of them failed) of ``name`` at or after ``since``."""
    pipe = client.pipeline(transaction=False)
    pipe.zcount(keys.py3(name), since, "+inf")
    pipe.zcount(keys.py3_errors(name), since, "+inf")
    count, errors = pipe.execute()
    return int(count), int(errors)


def comparisons_between(client: redis.Redis, keys: EvidenceKeys, name: str, low: float,
                        high: float | str = "+inf") -> list[tuple[float, dict[str, Any]]]:
    """``(at, comparison)`` of ``name`` with ``low <= at <= high``, oldest first."""
    rows: Any = client.zrangebyscore(keys.comparisons(name), low, high, withscores=True)
    return [(float(at), json.loads(_split(member)[1])) for member, at in rows]


def latest_diffs(client: redis.Redis, keys: EvidenceKeys, names: Iterable[str],
                 limit: int) -> list[tuple[float, int, str, dict[str, Any]]]:
    """``(at, id, name, diff)`` of the newest ``limit`` diffs over ``names``, newest first."""
    names = list(names)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.zrevrange(keys.diffs(name), 0, limit - 1, withscores=True)
    found = []
    for name, rows in zip(names, pipe.execute(), strict=True):
        for member, at in rows:
            seq, text = _split(member)
            found.append((float(at), seq, name, json.loads(text)))
    found.sort(key=lambda row: (row[0], row[1]), reverse=True)
    return found[:limit]
