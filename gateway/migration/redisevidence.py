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

Caps are enforced by Redis in the same transaction as the insert
(``ZREMRANGEBYRANK`` drops the oldest), so no gateway can grow them.

::

    keys = EvidenceKeys("gw:mig:")
    write(client, keys, observations, comparisons)       # one INCRBY, one MULTI/EXEC
    comparisons_since(client, keys, "notes", t0)        # [(at, {...}), ...] oldest first
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import redis

from gateway.migration.model import MAX_COMPARISONS, MAX_OBSERVATIONS, Comparison, Observation

DIFF_OUTCOMES = ("diff", "candidate_error")


class EvidenceKeys:
    """The Redis key names of one store's evidence."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.seq = prefix + "seq"

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


def _member(seq: int, text: str) -> str:
    return f"{seq:015d}|{text}"


def write(client: redis.Redis, keys: EvidenceKeys, observations: list[Observation],
          comparisons: list[Comparison]) -> None:
    """Append one batch and trim every touched set to its cap; atomic per batch."""
    diffs = [c for c in comparisons if c.outcome in DIFF_OUTCOMES]
    total = len(observations) + len(comparisons) + len(diffs)
    if not total:
        return
    # One id per member, reserved up front so that members are unique across gateways.
    seq = int(client.incrby(keys.seq, total)) - total + 1
    adds: dict[str, dict[str, float]] = defaultdict(dict)
    caps: dict[str, int] = {}
    for o in observations:
        text = f"{o.runtime}|{o.role}|{float(o.ms)!r}|{int(o.status)}|{int(bool(o.error))}"
        adds[keys.obs(o.name)][_member(seq, text)] = o.at
        caps[keys.obs(o.name)] = MAX_OBSERVATIONS
        if o.role == "serve" and o.runtime == "py3":
            adds[keys.py3(o.name)][_member(seq, "")] = o.at
            caps[keys.py3(o.name)] = MAX_OBSERVATIONS
            if o.error:
                adds[keys.py3_errors(o.name)][_member(seq, "")] = o.at
                caps[keys.py3_errors(o.name)] = MAX_OBSERVATIONS
        seq += 1
    for c in comparisons:
        light = {"rid": c.rid, "primary": c.primary, "outcome": c.outcome,
                 "paths": sorted(c.paths), "noise_paths": sorted(c.noise_paths),
                 "noise_checked": bool(c.noise_checked), "method": c.method, "path": c.path}
        adds[keys.comparisons(c.name)][_member(seq, json.dumps(light))] = c.at
        caps[keys.comparisons(c.name)] = MAX_COMPARISONS
        seq += 1
        if c.outcome in DIFF_OUTCOMES:
            full = dict(light, fields=c.fields, sample=c.sample)
            adds[keys.diffs(c.name)][_member(seq, json.dumps(full, default=str))] = c.at
            caps[keys.diffs(c.name)] = MAX_COMPARISONS
            seq += 1
    pipe = client.pipeline(transaction=True)
    for key, mapping in adds.items():
        pipe.zadd(key, mapping)
        pipe.zremrangebyrank(key, 0, -caps[key] - 1)
    pipe.execute()


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
