"""Traffic splits of migrated services inside the broker (SPEC 2.14).

::

    splits = Splits("/srv/gw/var/run/broker-splits")   # the file may not exist yet
    splits.reload()                                     # at start, on mmi.split, on change
    splits.route(b"tax", header_frame)                  # b"tax.py3", or None: stay on tax
    splits.to_json()                                    # what mmi.stats reports

The control plane (``gateway migrate canary/promote/rollback``) writes the split
file and then sends ``mmi.split``, which only makes the broker read the file
again. The file is the single source of truth, so a restarted broker comes
back with the same splits and a stray ``mmi.split`` can change nothing.

File format: UTF-8 text, one split per line, ``#`` starts a comment::

    SERVICE CANDIDATE PERCENT       # e.g. "tax tax.py3 30"
    shadow SERVICE CANDIDATE METHODS   # e.g. "shadow tax tax.py3 quote,total"

(``shadow`` lines: :mod:`gateway.broker.shadow`.)

A call for SERVICE goes to CANDIDATE when its sticky bucket, CRC-32 of
``SERVICE:KEY`` modulo 100, is below PERCENT. KEY is the header's ``sticky``
text, else its ``rid``, else its ``id``; a call without a header stays on
SERVICE. The compiled broker (``native/splits.c``) implements the same rules.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from gateway.broker.shadow import Shadows, is_shadow_line

log = logging.getLogger("gateway.broker")


@dataclass(slots=True)
class Split:
    """Where a share of one service's calls goes, and how many went each way."""

    candidate: bytes
    percent: int
    sent: int = 0      # calls routed to the candidate
    kept: int = 0      # calls that stayed on the service
    sent_errors: int = 0   # of those, answered with an error envelope by a worker
    kept_errors: int = 0


def bucket(service: bytes, key: bytes) -> int:
    """The sticky bucket 0..99 of ``key`` for ``service``."""
    return zlib.crc32(service + b":" + key) % 100


def parse(text: str) -> tuple[dict[bytes, tuple[bytes, int]], list[str]]:
    """The splits in a split file's text, and one message per line that was skipped."""
    table: dict[bytes, tuple[bytes, int]] = {}
    errors: list[str] = []
    for number, line in enumerate(text.split("\n"), 1):
        # ASCII whitespace only, as the compiled broker splits words.
        words = line.partition("#")[0].replace("\t", " ").replace("\r", " ").split(" ")
        words = [w for w in words if w]
        if not words or is_shadow_line(words):  # read by gateway.broker.shadow
            continue
        if len(words) != 3 or not 1 <= len(words[2]) <= 3 \
                or not all("0" <= c <= "9" for c in words[2]) or int(words[2]) > 100 \
                or words[0] == words[1] or words[0].startswith("mmi."):
            errors.append(f"line {number}: expected SERVICE CANDIDATE PERCENT(0..100)")
            continue
        table[words[0].encode()] = (words[1].encode(), int(words[2]))
    return table, errors


def is_error(head: bytes) -> bool:
    """True when a reply header frame is an ``error`` envelope (SPEC 5.1)."""
    if b'"error"' not in head:  # cheap: a result never has the word as a key or kind
        return False
    try:
        header = json.loads(head.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RuntimeError):
        return False
    return isinstance(header, dict) and header.get("kind") == "error"


def sticky_key(frame: bytes) -> bytes | None:
    """The header's ``sticky``, ``rid`` or ``id`` text (the first present), or None."""
    if not frame or frame[:1] != b"{":
        return None
    try:
        header = json.loads(frame.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RuntimeError):
        return None
    if not isinstance(header, dict):
        return None
    for name in ("sticky", "rid", "id"):
        value = header.get(name)
        if isinstance(value, str) and value:
            return value.encode("utf-8", "surrogatepass")
    return None


class Splits:
    """The split table the broker routes by, loaded from one file."""

    def __init__(self, path: str | None, shadows: Shadows | None = None) -> None:
        self.path = path
        self.shadows = shadows if shadows is not None else Shadows()
        self.table: dict[bytes, Split] = {}
        self.errors: list[str] = []
        self._seen: tuple[int, int] | None = None

    def reload(self) -> bool:
        """Read the file again (a missing file means no splits); False when unreadable."""
        if not self.path:
            return True
        try:
            st = os.stat(self.path)
            with open(self.path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            st, text = None, ""
        except (OSError, UnicodeDecodeError) as exc:
            # Keep routing as before: a half-readable file must not flip traffic.
            log.error("split file %s unreadable: %s", self.path, exc)
            self.errors = [str(exc)]
            return False
        self._seen = (st.st_mtime_ns, st.st_size) if st else None
        table, self.errors = parse(text)
        self.shadows.load(text)
        self.errors += self.shadows.errors
        for error in self.errors:
            log.warning("split file %s: %s", self.path, error)
        old = self.table
        # Counts survive a reload of the same split, so mmi.stats reads as a running total.
        self.table = {svc: old[svc] if svc in old and (old[svc].candidate, old[svc].percent)
                      == (cand, pct) else Split(cand, pct) for svc, (cand, pct) in table.items()}
        return True

    def changed(self) -> bool:
        """Reload when the file's mtime or size moved (the broker checks once per beat)."""
        if not self.path:
            return False
        try:
            st = os.stat(self.path)
            seen: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            seen = None
        if seen == self._seen:
            return False
        return self.reload()

    def route(self, service: bytes, header: bytes,
              live: Callable[[bytes], bool]) -> bytes | None:
        """The candidate that should take this call of ``service``, or None to keep it.

        A candidate with no live worker takes nothing: its share stays on the
        service rather than wait for a port that is down.
        """
        split = self.table.get(service)
        if split is None:
            return None
        key = sticky_key(header) if split.percent not in (0, 100) else b""
        if key is None or split.percent == 0 or bucket(service, key) >= split.percent \
                or not live(split.candidate):
            split.kept += 1
            return None
        split.sent += 1
        return split.candidate

    def replied(self, service: bytes, moved: bool, head: bytes) -> None:
        """Count a final reply to a call of split ``service`` that failed (``moved``: the
        candidate answered); the control plane's error budget reads these."""
        split = self.table.get(service)
        if split is not None and is_error(head):
            if moved:
                split.sent_errors += 1
            else:
                split.kept_errors += 1

    def to_json(self) -> dict[str, dict[str, object]]:
        """``{SERVICE: {"candidate", "percent", "sent", "kept", ...errors}}`` for mmi.stats."""
        return {svc.decode("utf-8", "replace"): {
            "candidate": s.candidate.decode("utf-8", "replace"), "percent": s.percent,
            "sent": s.sent, "kept": s.kept, "sent_errors": s.sent_errors,
            "kept_errors": s.kept_errors} for svc, s in self.table.items()}
