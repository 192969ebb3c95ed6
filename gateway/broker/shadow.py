"""Shadow copies of migrated services' calls inside the broker (SPEC 2.14).

::

    shadows = Shadows(max_inflight=8, timeout_ms=2000)
    shadows.load(text_of_the_split_file)            # with every split-file reload
    copy = shadows.copy(request, live, now_ms)      # a Request for the candidate, or None
    shadows.finished(copy, reply_body_or_None)      # its final reply, or its error
    shadows.to_json()                               # what mmi.stats reports

A split-file line ``shadow SERVICE CANDIDATE METHODS [OPTION=VALUE ...]``
(METHODS: comma-separated method names, or ``*`` for every method) asks the
broker to send a copy of each ``call`` of SERVICE for one of METHODS that stays
on SERVICE to CANDIDATE, with the header's ``shadow`` flag set and its own,
shorter deadline. The control plane lists only methods that are idempotent or
declared ``shadow_safe``: the broker cannot read contracts. Options, each at
most once, override the broker's defaults for this service:

- ``sample=F``: the share of those calls that are copied, a decimal from 0 to 1
  with at most four places. It is counted, not drawn: an accumulator gains
  F x 10000 per eligible call and a call is copied when it reaches 10000, so
  ``sample=0.25`` copies exactly every fourth call, in both brokers alike;
- ``timeout_ms=N``: the longest deadline of a copy (``--shadow-timeout-ms``);
- ``max_inflight=N``: copies out at once (``--shadow-max-inflight``).

The copy is dispatched after the primary and its reply never reaches the caller,
so the caller waits for nothing more. A candidate that is slow, hung or dead holds
at most ``max_inflight`` copies per service (beyond that a copy is skipped and
counted) for at most ``timeout_ms`` each; it never touches the primary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.broker.registry import Request
from protocol import codec

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.broker.pairs import Pairs

# The client address a copy is registered under: no ROUTER peer has it (ZeroMQ's
# generated identities start with a zero byte), and the original client follows so
# copies of two callers' calls with the same id never match each other's replies.
SHADOW_CLIENT = b"\x01shadow:"
SAMPLE_ONE = 10000
OPTIONS = ("sample", "timeout_ms", "max_inflight")
Rule = tuple[bytes, "frozenset[str] | None", int, "int | None", "int | None"]


@dataclass(slots=True)
class ShadowRule:
    """Where copies of one service's calls go, and what became of them."""

    candidate: bytes
    methods: frozenset[str] | None     # None: every method
    sample: int = SAMPLE_ONE           # in 10000ths
    timeout_ms: int | None = None      # None: the broker's default
    max_inflight: int | None = None
    inflight: int = 0
    sent: int = 0
    answered: int = 0       # final replies from the candidate's workers
    failed: int = 0         # broker-made errors: timeout, worker lost, unavailable
    skipped_cap: int = 0    # not sent: max_inflight copies already out
    skipped_down: int = 0   # not sent: the candidate had no live worker, or a full queue
    accrued: int = 0        # the sample's accumulator

    def key(self) -> Rule:
        return (self.candidate, self.methods, self.sample, self.timeout_ms, self.max_inflight)


def parse_sample(text: str) -> int | None:
    """``"0.25"`` as 2500 (10000ths); None unless a decimal 0..1 with at most 4 places."""
    whole, dot, frac = text.partition(".")
    if whole not in ("0", "1") or (dot and not frac) or len(frac) > 4 \
            or not all("0" <= c <= "9" for c in frac):
        return None
    value = int(whole) * SAMPLE_ONE + int((frac + "0000")[:4])
    return value if value <= SAMPLE_ONE else None


def _options(words: list[str]) -> tuple[int, int | None, int | None] | None:
    """The OPTION=VALUE words of a shadow line, or None when one is bad or repeated."""
    found: dict[str, int] = {}
    for word in words:
        name, eq, value = word.partition("=")
        if not eq or name not in OPTIONS or name in found:
            return None
        if name == "sample":
            number = parse_sample(value)
        else:  # a positive integer of at most 9 digits (the compiled broker's limit)
            ok = 1 <= len(value) <= 9 and all("0" <= c <= "9" for c in value)
            number = int(value) if ok and int(value) > 0 else None
        if number is None:
            return None
        found[name] = number
    return (found.get("sample", SAMPLE_ONE), found.get("timeout_ms"),
            found.get("max_inflight"))


def parse_shadows(text: str) -> tuple[dict[bytes, Rule], list[str]]:
    """The ``shadow`` lines of a split file's text, and one message per bad one."""
    table: dict[bytes, Rule] = {}
    errors: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        words = [w for w in line.partition("#")[0].replace("\t", " ").replace("\r", " ")
                 .split(" ") if w]
        if not words or words[0] != "shadow" or len(words) == 3:
            continue  # three words: a split of a service named "shadow" (splits.parse)
        options = _options(words[4:]) if len(words) >= 4 else None
        if options is None or words[1] == words[2] or words[1].startswith("mmi.") \
                or words[2].startswith("mmi."):
            errors.append(f"line {number}: expected shadow SERVICE CANDIDATE METHODS "
                          "[sample=F] [timeout_ms=N] [max_inflight=N]")
            continue
        names = frozenset(m for m in words[3].split(",") if m)
        table[words[1].encode()] = (words[2].encode(), None if "*" in names else names,
                                    *options)
    return table, errors


def is_shadow_line(words: list[str]) -> bool:
    """True for a ``shadow`` line, which the split parser leaves to this module."""
    return len(words) >= 4 and words[0] == "shadow"


class Shadows:
    """The shadow table the broker copies calls by."""

    def __init__(self, max_inflight: int = 8, timeout_ms: int = 2000,
                 pairs: Pairs | None = None) -> None:
        self.pairs = pairs  # told of each copy's end, to publish the pair
        self.max_inflight = max_inflight
        self.timeout_ms = timeout_ms
        self.table: dict[bytes, ShadowRule] = {}
        self.errors: list[str] = []
        # Copies not yet ended, by object id: the broker holds a copy in flight as long as
        # its worker does, but the cap must not wait for a hung worker (see sweep).
        self.live: dict[int, Request] = {}
        self.method = ""  # of the last copy made

    def load(self, text: str) -> None:
        """Take the shadow lines of a freshly read split file; counts survive a same rule."""
        table, self.errors = parse_shadows(text)
        old = self.table
        self.table = {svc: old[svc] if svc in old and old[svc].key() == rule
                      else ShadowRule(*rule) for svc, rule in table.items()}

    def copy(self, request: Request, live: Callable[[bytes], bool],
             now_ms: int) -> Request | None:
        """The shadow copy of ``request`` for its service's candidate, or None."""
        rule = self.table.get(request.service)
        if rule is None or request.asked is not None or not request.body:
            return None  # a call the split sent to the candidate already is not copied
        header = _call_header(request.body[0])
        if header is None or (rule.methods is not None and header["method"] not in rule.methods):
            return None
        if rule.sample < SAMPLE_ONE:
            rule.accrued += rule.sample
            if rule.accrued < SAMPLE_ONE:
                return None
            rule.accrued -= SAMPLE_ONE
        if not live(rule.candidate):
            rule.skipped_down += 1
            return None
        cap = rule.max_inflight if rule.max_inflight is not None else self.max_inflight
        if rule.inflight >= cap:
            rule.skipped_cap += 1
            return None
        timeout = rule.timeout_ms if rule.timeout_ms is not None else self.timeout_ms
        deadline = min(request.deadline, now_ms + timeout)
        header["shadow"] = True
        header["deadline"] = deadline
        # Re-encoded canonically (sorted keys), so a strict decoder accepts it; the
        # payload and byte frames are the primary's own objects, not copies.
        body = [codec.dumps(header), *request.body[1:]]
        rule.inflight += 1
        rule.sent += 1
        copy = Request(SHADOW_CLIENT + request.client, rule.candidate, body, request.id, deadline,
                   request.idem, asked=request.service, shadow=True)
        copy.size = sum(map(len, body))
        self.live[id(copy)] = copy
        self.method = str(header["method"])
        return copy

    def skipped(self, copy: Request) -> None:
        """A copy that was made but could not be queued (the candidate's queue is full)."""
        rule = self.table.get(copy.asked or b"")
        self.live.pop(id(copy), None)
        if rule is not None:
            rule.inflight = max(0, rule.inflight - 1)
            rule.sent -= 1
            rule.skipped_down += 1

    def finished(self, copy: Request, body: list[bytes] | None) -> None:
        """A copy's final reply (``body``) or broker-made error (None) came in."""
        if self.live.pop(id(copy), None) is None:
            return  # ended already: swept past its deadline, or a reload forgot it
        if self.pairs is not None:
            self.pairs.candidate(copy, body)
        rule = self.table.get(copy.asked or b"")
        if rule is None:
            return
        rule.inflight = max(0, rule.inflight - 1)
        if body is None:
            rule.failed += 1
        else:
            rule.answered += 1

    def sweep(self, now_ms: int) -> None:
        """End the copies past their deadline, in flight or not (once per broker beat).

        The broker never expires a request a worker holds (the worker bounds it), so a
        hung candidate would keep its copies, and the cap, forever: here they end as
        failed, and a reply that still comes is a late one.
        """
        for copy in list(self.live.values()):
            if copy.deadline <= now_ms:
                self.finished(copy, None)

    def to_json(self) -> dict[str, dict[str, object]]:
        """``{SERVICE: {"candidate", "methods", "inflight", "sent", ...}}`` for mmi.stats."""
        return {svc.decode("utf-8", "replace"): {
            "candidate": r.candidate.decode("utf-8", "replace"),
            "methods": sorted(r.methods) if r.methods is not None else "*",
            "inflight": r.inflight, "sent": r.sent, "answered": r.answered, "failed": r.failed,
            "skipped_cap": r.skipped_cap, "skipped_down": r.skipped_down}
            for svc, r in self.table.items()}


def _call_header(frame: bytes) -> dict[str, object] | None:
    """A ``call`` header with a text method, decoded; None for anything else."""
    if not frame or frame[:1] != b"{" or b'"call"' not in frame:
        return None
    try:
        header = json.loads(frame.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RuntimeError):
        return None
    if not isinstance(header, dict) or header.get("kind") != "call" \
            or not isinstance(header.get("method"), str) or header.get("shadow") is True:
        return None  # a copy of a copy would shadow a candidate with itself
    return header
